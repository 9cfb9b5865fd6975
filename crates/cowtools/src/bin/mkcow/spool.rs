//! The records of a dump, kept in an unnamed temporary file while the dump is
//! read, so that memory does not grow with their number: a restore checks
//! every record before it writes anything, then reads them back once more to
//! write them (a shared restore: twice, to claim the data chunks before the
//! tree goes down).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

/// Bytes of buffer on each side of the spool.
const BUFFER_BYTES: usize = 1 << 20;

/// Fixed-size records of `width` 64-bit numbers, appended and read back in order.
pub struct Spool {
    file: BufWriter<File>,
    width: usize,
    count: u64,
}

impl Spool {
    /// An empty spool of records of `width` numbers, in `$TMPDIR`.
    pub fn new(width: usize) -> io::Result<Self> {
        Ok(Spool {
            file: BufWriter::with_capacity(BUFFER_BYTES, tempfile::tempfile()?),
            width,
            count: 0,
        })
    }

    /// Appends one record; `record` has `width` numbers.
    pub fn push(&mut self, record: &[u64]) -> io::Result<()> {
        debug_assert_eq!(record.len(), self.width);
        for value in record {
            self.file.write_all(&value.to_le_bytes())?;
        }
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
            file: BufReader::with_capacity(BUFFER_BYTES, file),
            width: self.width,
            left: self.count,
        })
    }
}

/// The records of a [`Spool`], in order.
pub struct SpoolReader {
    file: BufReader<File>,
    width: usize,
    left: u64,
}

impl SpoolReader {
    /// Fills `record` (`width` numbers) with the next record; false at the end.
    pub fn next_into(&mut self, record: &mut [u64]) -> io::Result<bool> {
        if self.left == 0 {
            return Ok(false);
        }
        let mut bytes = [0u8; 8];
        for value in record.iter_mut().take(self.width) {
            self.file.read_exact(&mut bytes)?;
            *value = u64::from_le_bytes(bytes);
        }
        self.left -= 1;
        Ok(true)
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
