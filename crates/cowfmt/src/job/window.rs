//! Reading the data of a run of output chunks at once: every input chunk and
//! origin piece they need is read once, sorted by position, with neighbouring
//! chunks gathered into one read.

use crate::device::Device;
use crate::error::{Error, Result};

use super::assemble::{OutChunk, Piece, Rechunk};

/// Output chunks a window aims for: enough for long sorted reads, few enough
/// that the window stays small next to the job's records.
const WINDOW_CHUNKS: u64 = 64;
/// The least data a window aims for, whatever the chunk size.
const WINDOW_MIN_BYTES: u64 = 1 << 20;
/// The most data a window aims for (a window holds at least one output chunk).
const WINDOW_MAX_BYTES: u64 = 16 << 20;

/// Bytes of data a window aims for with output chunks of `out_bytes`.
pub(crate) fn window_bytes(out_bytes: u64) -> u64 {
    out_bytes
        .saturating_mul(WINDOW_CHUNKS)
        .clamp(WINDOW_MIN_BYTES, WINDOW_MAX_BYTES)
}

/// The bytes a window of output chunks needs, in memory: the input chunks
/// in `cow` order, then the origin pieces in `origin` order (both sorted,
/// without repeats), each `in_bytes` and `piece_bytes` long.
#[derive(Debug, Default)]
pub(crate) struct Window {
    buf: Vec<u8>,
    cow: Vec<(u32, u64)>,
    origin: Vec<u64>,
    in_bytes: usize,
    piece_bytes: usize,
}

impl Window {
    /// Reads everything `chunks` need: whole input chunks from `devices`, origin
    /// pieces from `origin` (zeros past its end).
    pub(crate) fn load(
        &mut self,
        chunks: &[OutChunk],
        rechunk: &Rechunk,
        devices: &[&Device],
        origin: Option<&Device>,
    ) -> Result<()> {
        self.cow.clear();
        self.origin.clear();
        for piece in chunks
            .iter()
            .flat_map(|c| c.signatures.iter())
            .flat_map(|s| s.pieces.iter())
        {
            match *piece {
                Piece::Cow { dev, chunk, .. } => self.cow.push((dev, chunk)),
                Piece::Origin { index } => self.origin.push(index),
            }
        }
        self.cow.sort_unstable();
        self.cow.dedup();
        self.origin.sort_unstable();
        self.origin.dedup();
        self.in_bytes = rechunk.in_bytes as usize;
        self.piece_bytes = rechunk.piece_bytes() as usize;
        let (in_bytes, piece_bytes) = (self.in_bytes, self.piece_bytes);
        self.buf.resize(
            self.cow.len() * in_bytes + self.origin.len() * piece_bytes,
            0,
        );
        let mut at = 0usize;
        for run in runs(&self.cow, |a, b| a.0 == b.0 && b.1 == a.1 + 1) {
            let (dev, first) = run[0];
            let device = devices[dev as usize];
            let bytes = &mut self.buf[at..at + run.len() * in_bytes];
            device.read_at(bytes, first * rechunk.in_bytes, || {
                format!("data chunks {first}..{}", first + run.len() as u64 - 1)
            })?;
            at += bytes.len();
        }
        if !self.origin.is_empty() {
            let origin = origin.ok_or_else(|| {
                Error::Invalid(
                    "a larger chunk size needs --origin DEV (the origin device), to read the pieces that never changed"
                        .to_string(),
                )
            })?;
            for run in runs(&self.origin, |a, b| *b == a + 1) {
                let bytes = &mut self.buf[at..at + run.len() * piece_bytes];
                read_origin(origin, bytes, run[0] * piece_bytes as u64)?;
                at += bytes.len();
            }
        }
        Ok(())
    }

    /// The bytes of `piece` (`len` bytes long), which must have been loaded.
    pub(crate) fn piece(&self, piece: &Piece, len: usize) -> &[u8] {
        let start = match *piece {
            Piece::Cow { dev, chunk, offset } => {
                position(&self.cow, &(dev, chunk)) * self.in_bytes + offset as usize
            }
            Piece::Origin { index } => {
                self.cow.len() * self.in_bytes + position(&self.origin, &index) * self.piece_bytes
            }
        };
        &self.buf[start..start + len]
    }
}

/// Where `key` is in the sorted `loaded` keys.
fn position<T: Ord>(loaded: &[T], key: &T) -> usize {
    loaded.partition_point(|k| k < key)
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

    #[test]
    fn pieces_come_from_their_loaded_chunks() {
        use super::super::assemble::Signature;
        let dir = tempfile::tempdir().unwrap();
        let cow_path = dir.path().join("cow.img");
        let origin_path = dir.path().join("origin.img");
        let cow: Vec<u8> = (0u8..8).flat_map(|c| [c; 512]).collect();
        std::fs::write(&cow_path, cow).unwrap();
        std::fs::write(&origin_path, [0xeeu8; 2048]).unwrap();
        let cow = Device::open(&cow_path, crate::device::Access::ReadOnly).unwrap();
        let origin = Device::open(&origin_path, crate::device::Access::ReadOnly).unwrap();
        let rechunk = Rechunk {
            in_bytes: 512,
            out_bytes: 1024,
            origin_bytes: Some(2048),
        };
        let at = |chunk| Piece::Cow {
            dev: 0,
            chunk,
            offset: 0,
        };
        let pieces = vec![at(6), at(2), Piece::Origin { index: 3 }, at(3)];
        let chunks = [OutChunk {
            origin: 0,
            signatures: vec![Signature { mask: 1, pieces }],
        }];
        let mut window = Window::default();
        window
            .load(&chunks, &rechunk, &[&cow], Some(&origin))
            .unwrap();
        assert_eq!(window.piece(&at(6), 512), [6u8; 512]);
        assert_eq!(window.piece(&at(2), 512), [2u8; 512]);
        assert_eq!(window.piece(&at(3), 512), [3u8; 512]);
        assert_eq!(window.piece(&Piece::Origin { index: 3 }, 512), [0xee; 512]);
        let half = Piece::Cow {
            dev: 0,
            chunk: 2,
            offset: 256,
        };
        assert_eq!(window.piece(&half, 256), [2u8; 256]);
    }

    #[test]
    fn windows_are_sized_from_the_chunk_size() {
        assert_eq!(window_bytes(4096), WINDOW_MIN_BYTES);
        assert_eq!(window_bytes(64 << 10), 4 << 20);
        assert_eq!(window_bytes(1 << 30), WINDOW_MAX_BYTES);
    }

    #[test]
    fn runs_split_at_gaps() {
        let items = [1u64, 2, 3, 7, 9, 10];
        let got: Vec<&[u64]> = runs(&items, |a, b| *b == a + 1).collect();
        assert_eq!(got, vec![&[1, 2, 3][..], &[7][..], &[9, 10][..]]);
    }
}
