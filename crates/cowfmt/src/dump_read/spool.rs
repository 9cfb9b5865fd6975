//! The records of a dump, kept in an unnamed temporary file while the dump is
//! read, so that memory does not grow with their number: a restore checks
//! every record before it writes anything, then reads them back once more to
//! write them (a shared restore: twice, to claim the data chunks before the
//! tree goes down). Each number is stored as the zigzag varint of its
//! difference to the same field of the record before: dumps list data chunks
//! in runs and origin chunks in order, so most records take a few bytes
//! instead of 16 or 24, and the file costs less to write back.

use std::any::Any;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

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

    /// Whether no record was appended.
    pub fn is_empty(&self) -> bool {
        self.count == 0
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

/// Checks records as they are spooled, on the spooling thread, so that a
/// restore whose head fields come before its records need not read the spool
/// back once more to check them.
pub trait RecordCheck: Send {
    /// Checks the next records, `width` numbers each, back to back.
    fn check(&mut self, records: &[u64]);
    /// The check itself, for the restore that planned it to take back.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

/// Records handed to the spooling thread at a time.
const BATCH_RECORDS: usize = 16 << 10;
/// Batches on their way to the spooling thread.
const BATCHES_IN_FLIGHT: usize = 2;

/// What the spooling thread hands back: the spool, and the check that ran.
pub type Spooled = (Spool, Option<Box<dyn RecordCheck>>);

/// A [`Spool`] filled on its own thread: the reader's thread parses the
/// dump while this one stores (and, given a [`RecordCheck`], checks) the
/// records, in batches.
pub struct SpoolWorker {
    width: usize,
    batch: Vec<u64>,
    count: u64,
    sender: Option<SyncSender<Vec<u64>>>,
    recycled: Receiver<Vec<u64>>,
    thread: Option<JoinHandle<io::Result<Spooled>>>,
}

impl SpoolWorker {
    /// Starts a spool of records of `width` numbers, checked by `check`.
    pub fn start(width: usize, check: Option<Box<dyn RecordCheck>>) -> io::Result<Self> {
        let mut spool = Spool::new(width)?;
        let (sender, batches) = sync_channel::<Vec<u64>>(BATCHES_IN_FLIGHT);
        let (give_back, recycled) = sync_channel::<Vec<u64>>(BATCHES_IN_FLIGHT + 1);
        let mut check = check;
        let thread = std::thread::Builder::new()
            .name("spool".to_string())
            .spawn(move || {
                for batch in batches {
                    for record in batch.chunks_exact(width) {
                        spool.push(record)?;
                    }
                    if let Some(check) = &mut check {
                        check.check(&batch);
                    }
                    let _ = give_back.try_send(batch);
                }
                Ok((spool, check))
            })?;
        Ok(SpoolWorker {
            width,
            batch: Vec::with_capacity(BATCH_RECORDS * width),
            count: 0,
            sender: Some(sender),
            recycled,
            thread: Some(thread),
        })
    }

    /// Appends one record (`width` numbers); the count so far.
    #[inline]
    pub fn push(&mut self, record: &[u64]) -> io::Result<u64> {
        debug_assert_eq!(record.len(), self.width);
        self.batch.extend_from_slice(record);
        self.count += 1;
        if self.batch.len() >= BATCH_RECORDS * self.width {
            self.send()?;
        }
        Ok(self.count)
    }

    fn send(&mut self) -> io::Result<()> {
        let next = match self.recycled.try_recv() {
            Ok(mut spare) => {
                spare.clear();
                spare
            }
            Err(_) => Vec::with_capacity(BATCH_RECORDS * self.width),
        };
        let full = std::mem::replace(&mut self.batch, next);
        let sender = self.sender.as_ref().expect("a running spool has a sender");
        if sender.send(full).is_err() {
            // The thread stopped at an error: it says which.
            return Err(self
                .join()
                .err()
                .unwrap_or_else(|| io::Error::other("the spooling thread stopped")));
        }
        Ok(())
    }

    /// Waits for the thread to store every record; the spool and the check.
    pub fn finish(mut self) -> io::Result<Spooled> {
        if !self.batch.is_empty() {
            self.send()?;
        }
        self.join()
    }

    fn join(&mut self) -> io::Result<Spooled> {
        self.sender = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Err(io::Error::other("the spooling thread stopped")),
        }
    }
}

impl Drop for SpoolWorker {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

/// A failure to read the spool back, as a library error naming it.
pub fn read_back_error(source: io::Error) -> crate::Error {
    crate::Error::Io {
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

    /// Counts and sums what it checked.
    struct Tally(u64, u64);

    impl RecordCheck for Tally {
        fn check(&mut self, records: &[u64]) {
            for r in records.chunks_exact(2) {
                self.0 += 1;
                self.1 += r[0] + r[1];
            }
        }

        fn into_any(self: Box<Self>) -> Box<dyn Any> {
            self
        }
    }

    #[test]
    fn the_spooling_thread_stores_and_checks_every_record_in_order() {
        let count = 3 * BATCH_RECORDS as u64 + 7;
        let mut worker = SpoolWorker::start(2, Some(Box::new(Tally(0, 0)))).unwrap();
        for i in 0..count {
            assert_eq!(worker.push(&[i, 2 * i]).unwrap(), i + 1);
        }
        let (mut spool, check) = worker.finish().unwrap();
        let tally = check.unwrap().into_any().downcast::<Tally>().unwrap();
        assert_eq!((tally.0, tally.1), (count, 3 * (count * (count - 1) / 2)));
        assert_eq!(spool.len(), count);
        let mut reader = spool.read().unwrap();
        let mut got = [0u64; 2];
        for i in 0..count {
            assert!(reader.next_into(&mut got).unwrap());
            assert_eq!(got, [i, 2 * i]);
        }
        assert!(!reader.next_into(&mut got).unwrap());
    }
}
