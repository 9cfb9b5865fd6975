//! The records of a dump, kept in an unnamed temporary file while the dump is
//! read, so that memory does not grow with their number: a restore checks
//! every record before it writes anything, then reads them back once more to
//! write them (a shared restore: twice, to claim the data chunks before the
//! tree goes down). Each number is stored as the zigzag varint of its
//! difference to the same field of the record before: dumps list data chunks
//! in runs and origin chunks in order, so most records take a few bytes
//! instead of 16 or 24, and the file costs less to write back.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};

/// Bytes of buffer on each side of the spool.
const BUFFER_BYTES: usize = 1 << 20;

/// Fixed-size records of `width` 64-bit numbers, appended and read back in order.
pub struct Spool {
    file: BufWriter<File>,
    width: usize,
    count: u64,
    last: [u64; MAX_WIDTH],
}

/// Most numbers in a record.
const MAX_WIDTH: usize = 4;

impl Spool {
    /// An empty spool of records of `width` numbers, in `$TMPDIR`.
    pub fn new(width: usize) -> io::Result<Self> {
        assert!(
            width <= MAX_WIDTH,
            "a spool record has at most {MAX_WIDTH} numbers"
        );
        Ok(Spool {
            file: BufWriter::with_capacity(BUFFER_BYTES, tempfile::tempfile()?),
            width,
            count: 0,
            last: [0; MAX_WIDTH],
        })
    }

    /// Appends one record; `record` has `width` numbers.
    pub fn push(&mut self, record: &[u64]) -> io::Result<()> {
        debug_assert_eq!(record.len(), self.width);
        let mut bytes = [0u8; MAX_WIDTH * 10];
        let mut len = 0;
        for (value, last) in record.iter().zip(&mut self.last) {
            let delta = value.wrapping_sub(*last) as i64;
            *last = *value;
            let mut zigzag = ((delta << 1) ^ (delta >> 63)) as u64;
            while zigzag >= 0x80 {
                bytes[len] = zigzag as u8 | 0x80;
                zigzag >>= 7;
                len += 1;
            }
            bytes[len] = zigzag as u8;
            len += 1;
        }
        self.file.write_all(&bytes[..len])?;
        self.count += 1;
        Ok(())
    }

    /// Records appended.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Reads the records back from the first.
    pub fn read(&mut self) -> io::Result<SpoolReader> {
        self.file.flush()?;
        let mut file = self.file.get_ref().try_clone()?;
        file.rewind()?;
        Ok(SpoolReader {
            file,
            buffer: vec![0; BUFFER_BYTES].into_boxed_slice(),
            at: 0,
            end: 0,
            width: self.width,
            left: self.count,
            last: [0; MAX_WIDTH],
        })
    }
}

/// Bytes one record takes at most: ten per number.
const MAX_RECORD_BYTES: usize = MAX_WIDTH * 10;

/// The records of a [`Spool`], in order.
pub struct SpoolReader {
    file: File,
    buffer: Box<[u8]>,
    at: usize,
    end: usize,
    width: usize,
    left: u64,
    last: [u64; MAX_WIDTH],
}

impl SpoolReader {
    /// Fills `record` (`width` numbers) with the next record; false at the end.
    #[inline]
    pub fn next_into(&mut self, record: &mut [u64]) -> io::Result<bool> {
        if self.left == 0 {
            return Ok(false);
        }
        if self.end - self.at < MAX_RECORD_BYTES {
            self.refill()?;
        }
        let bytes = &self.buffer[self.at..self.end];
        let mut used = 0;
        for (value, last) in record.iter_mut().zip(&mut self.last).take(self.width) {
            let mut zigzag = 0u64;
            let mut shift = 0;
            loop {
                let Some(&byte) = bytes.get(used) else {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                };
                used += 1;
                zigzag |= u64::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    break;
                }
                shift += 7;
                if shift > 63 {
                    return Err(io::Error::other("a spooled number is longer than 64 bits"));
                }
            }
            let delta = (zigzag >> 1) as i64 ^ -((zigzag & 1) as i64);
            *last = last.wrapping_add(delta as u64);
            *value = *last;
        }
        self.at += used;
        self.left -= 1;
        Ok(true)
    }

    /// Moves the bytes not read yet to the front and reads more after them.
    #[cold]
    fn refill(&mut self) -> io::Result<()> {
        self.buffer.copy_within(self.at..self.end, 0);
        self.end -= self.at;
        self.at = 0;
        while self.end < self.buffer.len() {
            match self.file.read(&mut self.buffer[self.end..]) {
                Ok(0) => break,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A failure to read the spool back, as a library error naming it.
pub fn read_back_error(source: io::Error) -> cowfmt::Error {
    cowfmt::Error::Io {
        path: std::env::temp_dir().join("(mkcow record spool)"),
        action: "cannot read the records back",
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_as_written() {
        let records = [
            [0u64, 0, u64::MAX],
            [u64::MAX, 1, 0],
            [5, 1 << 40, 0b1011],
            [4, (1 << 40) + 1, u64::MAX >> 1],
            [0, 0, 0],
        ];
        let mut spool = Spool::new(3).unwrap();
        for record in &records {
            spool.push(record).unwrap();
        }
        for _ in 0..2 {
            let mut reader = spool.read().unwrap();
            let mut got = [0u64; 3];
            for record in &records {
                assert!(reader.next_into(&mut got).unwrap());
                assert_eq!(&got, record);
            }
            assert!(!reader.next_into(&mut got).unwrap());
        }
    }
}
