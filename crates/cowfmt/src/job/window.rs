//! Reading the data of a run of output chunks at once: every input chunk and
//! origin piece they need is read once, sorted by position, with neighbouring
//! chunks gathered into one read.

use std::collections::HashMap;

use crate::device::Device;
use crate::error::{Error, Result};

use super::assemble::{OutChunk, Piece, Rechunk};

/// Bytes of data a window aims for (a window holds at least one output chunk).
pub(crate) const WINDOW_BYTES: u64 = 16 << 20;

/// What a window does when input chunks cannot be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum ReadPolicy {
    /// The first read error stops the job.
    #[default]
    Strict,
    /// A run of input chunks that cannot be read is read again chunk by
    /// chunk; the chunks that still fail are set aside with their error (the
    /// output chunks needing them are skipped), the others are used. Origin
    /// reads and other errors still stop the job.
    Tolerant,
}

/// The bytes a window of output chunks needs, in memory.
#[derive(Debug, Default)]
pub(crate) struct Window {
    policy: ReadPolicy,
    buf: Vec<u8>,
    cow: HashMap<(u32, u64), usize>,
    origin: HashMap<u64, usize>,
    unreadable: HashMap<(u32, u64), Error>,
}

impl Window {
    /// An empty window reading under `policy`.
    pub(crate) fn new(policy: ReadPolicy) -> Self {
        Window {
            policy,
            ..Window::default()
        }
    }

    /// Reads everything `chunks` need: whole input chunks from `devices`, origin
    /// pieces from `origin` (zeros past its end).
    pub(crate) fn load(
        &mut self,
        chunks: &[OutChunk],
        rechunk: &Rechunk,
        devices: &[&Device],
        origin: Option<&Device>,
    ) -> Result<()> {
        let mut cow: Vec<(u32, u64)> = Vec::new();
        let mut from_origin: Vec<u64> = Vec::new();
        for piece in chunks
            .iter()
            .flat_map(|c| c.signatures.iter())
            .flat_map(|s| s.pieces.iter())
        {
            match *piece {
                Piece::Cow { dev, chunk, .. } => cow.push((dev, chunk)),
                Piece::Origin { index } => from_origin.push(index),
            }
        }
        cow.sort_unstable();
        cow.dedup();
        from_origin.sort_unstable();
        from_origin.dedup();
        let in_bytes = rechunk.in_bytes as usize;
        let piece_bytes = rechunk.piece_bytes() as usize;
        self.buf
            .resize(cow.len() * in_bytes + from_origin.len() * piece_bytes, 0);
        self.cow.clear();
        self.origin.clear();
        self.unreadable.clear();
        let mut at = 0usize;
        for run in runs(&cow, |a, b| a.0 == b.0 && b.1 == a.1 + 1) {
            let (dev, first) = run[0];
            let device = devices[dev as usize];
            let bytes = &mut self.buf[at..at + run.len() * in_bytes];
            let read = device.read_at(bytes, first * rechunk.in_bytes, || {
                format!("data chunks {first}..{}", first + run.len() as u64 - 1)
            });
            match read {
                Ok(()) => {}
                Err(Error::Read { .. }) if self.policy == ReadPolicy::Tolerant => {
                    read_one_by_one(
                        run,
                        bytes,
                        |chunk, one| device.read_chunk(chunk, one),
                        &mut self.unreadable,
                    )?;
                }
                Err(error) => return Err(error),
            }
            for (i, key) in run.iter().enumerate() {
                self.cow.insert(*key, at + i * in_bytes);
            }
            at += bytes.len();
        }
        if !from_origin.is_empty() {
            let origin = origin.ok_or_else(|| {
                Error::Invalid(
                    "a larger chunk size needs --origin DEV (the origin device), to read the pieces that never changed"
                        .to_string(),
                )
            })?;
            for run in runs(&from_origin, |a, b| *b == a + 1) {
                let bytes = &mut self.buf[at..at + run.len() * piece_bytes];
                read_origin(origin, bytes, run[0] * piece_bytes as u64)?;
                for (i, index) in run.iter().enumerate() {
                    self.origin.insert(*index, at + i * piece_bytes);
                }
                at += bytes.len();
            }
        }
        Ok(())
    }

    /// The read error of an input chunk `chunk` needs that could not be read
    /// (only under [`ReadPolicy::Tolerant`]).
    pub(crate) fn unreadable(&self, chunk: &OutChunk) -> Option<&Error> {
        if self.unreadable.is_empty() {
            return None;
        }
        chunk
            .signatures
            .iter()
            .flat_map(|s| s.pieces.iter())
            .find_map(|piece| match *piece {
                Piece::Cow { dev, chunk, .. } => self.unreadable.get(&(dev, chunk)),
                Piece::Origin { .. } => None,
            })
    }

    /// The bytes of `piece` (`len` bytes long), which must have been loaded.
    pub(crate) fn piece(&self, piece: &Piece, len: usize) -> &[u8] {
        let start = match *piece {
            Piece::Cow { dev, chunk, offset } => self.cow[&(dev, chunk)] + offset as usize,
            Piece::Origin { index } => self.origin[&index],
        };
        &self.buf[start..start + len]
    }
}

/// Bytes `chunk` will need loaded (for sizing windows).
pub(crate) fn bytes_needed(chunk: &OutChunk, rechunk: &Rechunk) -> u64 {
    chunk
        .signatures
        .iter()
        .map(|s| s.pieces.len() as u64 * rechunk.piece_bytes())
        .sum()
}

/// Splits sorted `items` into maximal runs where `next(a, b)` holds for each
/// neighbouring pair.
fn runs<T>(items: &[T], next: impl Fn(&T, &T) -> bool) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut n = 1;
        while n < rest.len() && next(&rest[n - 1], &rest[n]) {
            n += 1;
        }
        let (run, tail) = rest.split_at(n);
        rest = tail;
        Some(run)
    })
}

/// Reads each input chunk of `run` into its part of `bytes` alone (with
/// `read`); the chunks whose read fails with [`Error::Read`] go to
/// `unreadable` with their error, any other error stops.
fn read_one_by_one(
    run: &[(u32, u64)],
    bytes: &mut [u8],
    mut read: impl FnMut(u64, &mut [u8]) -> Result<()>,
    unreadable: &mut HashMap<(u32, u64), Error>,
) -> Result<()> {
    let in_bytes = bytes.len() / run.len();
    for (key, one) in run.iter().zip(bytes.chunks_exact_mut(in_bytes)) {
        match read(key.1, one) {
            Ok(()) => {}
            Err(error @ Error::Read { .. }) => {
                unreadable.insert(*key, error);
            }
            Err(other) => return Err(other),
        }
    }
    Ok(())
}

/// Reads `buf.len()` bytes of the origin at `offset`; bytes past its end read as zeros.
fn read_origin(origin: &Device, buf: &mut [u8], offset: u64) -> Result<()> {
    let len = origin
        .size_bytes()
        .saturating_sub(offset)
        .min(buf.len() as u64) as usize;
    if len > 0 {
        origin.read_at(&mut buf[..len], offset, || {
            format!("origin bytes at {offset}")
        })?;
    }
    buf[len..].fill(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_pieces_past_its_end_read_as_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("origin.img");
        std::fs::write(&path, [7u8; 1000]).unwrap();
        let origin = Device::open(&path, crate::device::Access::ReadOnly).unwrap();
        let mut buf = [1u8; 512];
        read_origin(&origin, &mut buf, 512).unwrap();
        assert_eq!(buf[..488], [7u8; 488]);
        assert_eq!(buf[488..], [0u8; 24]);
        read_origin(&origin, &mut buf, 1024).unwrap();
        assert_eq!(buf, [0u8; 512]);
    }

    fn copy_of_512() -> Rechunk {
        Rechunk {
            in_bytes: 512,
            out_bytes: 512,
            origin_bytes: None,
        }
    }

    fn copies_of(chunks: &[u64]) -> Vec<OutChunk> {
        use super::super::assemble::Signature;
        chunks
            .iter()
            .map(|&chunk| OutChunk {
                origin: chunk,
                signatures: vec![Signature {
                    mask: 1,
                    pieces: vec![Piece::Cow {
                        dev: 0,
                        chunk,
                        offset: 0,
                    }],
                }],
            })
            .collect()
    }

    fn eio(chunk: u64) -> Error {
        Error::Read {
            path: "cow.img".into(),
            offset: chunk * 512,
            len: 512,
            source: std::io::Error::from_raw_os_error(libc::EIO),
        }
    }

    #[test]
    fn chunks_read_one_by_one_set_aside_only_those_that_fail() {
        let run = [(0u32, 4u64), (0, 5), (0, 6)];
        let mut bytes = vec![0u8; 3 * 512];
        let mut unreadable = HashMap::new();
        let read = |chunk: u64, buf: &mut [u8]| {
            if chunk == 5 {
                return Err(eio(chunk));
            }
            buf.fill(chunk as u8);
            Ok(())
        };
        read_one_by_one(&run, &mut bytes, read, &mut unreadable).unwrap();
        assert_eq!(bytes[..512], [4u8; 512]);
        assert_eq!(bytes[1024..], [6u8; 512]);
        assert_eq!(unreadable.len(), 1);
        assert!(matches!(
            unreadable[&(0, 5)],
            Error::Read { offset: 2560, .. }
        ));
        let mut chunks = copies_of(&[4, 5]);
        let window = Window {
            unreadable,
            ..Window::new(ReadPolicy::Tolerant)
        };
        assert!(window.unreadable(&chunks[0]).is_none());
        assert!(window.unreadable(&chunks[1]).is_some());
        chunks[1].signatures[0]
            .pieces
            .insert(0, Piece::Origin { index: 5 });
        assert!(window.unreadable(&chunks[1]).is_some());
    }

    #[test]
    fn a_failure_other_than_a_read_error_stops_the_one_by_one_read() {
        let run = [(0u32, 1u64), (0, 2)];
        let mut bytes = vec![0u8; 2 * 512];
        let mut unreadable = HashMap::new();
        let read =
            |chunk: u64, _: &mut [u8]| Err(Error::Invalid(format!("chunk {chunk} is not allowed")));
        let err = read_one_by_one(&run, &mut bytes, read, &mut unreadable).unwrap_err();
        assert_eq!(err.to_string(), "chunk 1 is not allowed");
        assert!(unreadable.is_empty());
    }

    #[test]
    fn a_strict_window_stops_at_a_chunk_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cow.img");
        std::fs::write(&path, [1u8; 1100]).unwrap();
        let device = Device::open(&path, crate::device::Access::ReadOnly).unwrap();
        let rechunk = copy_of_512();
        let chunks = copies_of(&[0, 1, 2]);
        for policy in [ReadPolicy::Strict, ReadPolicy::Tolerant] {
            let err = Window::new(policy)
                .load(&chunks, &rechunk, &[&device], None)
                .unwrap_err();
            assert!(matches!(err, Error::Truncated { .. }), "{err}");
        }
    }

    #[test]
    fn runs_split_at_gaps() {
        let items = [1u64, 2, 3, 7, 9, 10];
        let got: Vec<&[u64]> = runs(&items, |a, b| *b == a + 1).collect();
        assert_eq!(got, vec![&[1, 2, 3][..], &[7][..], &[9, 10][..]]);
    }
}
