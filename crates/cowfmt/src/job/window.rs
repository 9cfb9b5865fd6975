//! Reading the data of a run of output chunks at once: every input chunk and
//! origin piece they need is read once, sorted by position, with neighbouring
//! chunks gathered into one read.

use std::collections::HashMap;

use crate::device::Device;
use crate::error::{Error, Result};

use super::assemble::{OutChunk, Piece, Rechunk};

/// Bytes of data a window aims for (a window holds at least one output chunk).
pub(crate) const WINDOW_BYTES: u64 = 16 << 20;

/// The bytes a window of output chunks needs, in memory.
#[derive(Debug, Default)]
pub(crate) struct Window {
    buf: Vec<u8>,
    cow: HashMap<(u32, u64), usize>,
    origin: HashMap<u64, usize>,
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
        let mut at = 0usize;
        for run in runs(&cow, |a, b| a.0 == b.0 && b.1 == a.1 + 1) {
            let (dev, first) = run[0];
            let device = devices[dev as usize];
            let bytes = &mut self.buf[at..at + run.len() * in_bytes];
            device.read_at(bytes, first * rechunk.in_bytes, || {
                format!("data chunks {first}..{}", first + run.len() as u64 - 1)
            })?;
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
    fn runs_split_at_gaps() {
        let items = [1u64, 2, 3, 7, 9, 10];
        let got: Vec<&[u64]> = runs(&items, |a, b| *b == a + 1).collect();
        assert_eq!(got, vec![&[1, 2, 3][..], &[7][..], &[9, 10][..]]);
    }
}
