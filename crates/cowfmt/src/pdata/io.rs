//! Where persistent-data blocks are read from and written to: a metadata
//! device (an image file or block device) or, in tests and while building,
//! memory. Readers ask for runs of consecutive blocks so that metadata is read
//! in large sequential batches; writers hand over sealed blocks.

use crate::device::Device;
use crate::error::{Error, Result};

use super::block::{Block, BLOCK_BYTES};

/// Metadata blocks to read from.
pub trait BlockSource {
    /// How many whole blocks the source holds.
    fn nr_blocks(&self) -> u64;

    /// Reads the `out.len() / BLOCK_BYTES` consecutive blocks that start at
    /// `first` into `out` (a multiple of [`BLOCK_BYTES`]); `what` names them
    /// in the error if the read fails.
    fn read_blocks(&self, first: u64, out: &mut [u8], what: &dyn Fn() -> String) -> Result<()>;

    /// Reads one block.
    fn read_block(&self, location: u64, what: &dyn Fn() -> String) -> Result<Box<Block>> {
        let mut block = Box::new([0u8; BLOCK_BYTES]);
        self.read_blocks(location, &mut block[..], what)?;
        Ok(block)
    }
}

/// A window of blocks read together: the distinct locations asked for that
/// lie on the source, sorted, each run of consecutive ones fetched in one
/// read, looked up by location afterwards. Its buffers are kept from one
/// window to the next.
#[derive(Debug, Default)]
pub(crate) struct BlockWindow {
    locations: Vec<u64>,
    buf: Vec<u8>,
}

impl BlockWindow {
    /// Reads the blocks at `locations` (any order, repeats allowed) that lie
    /// on `source`; `what` names them in a read error (`array blocks`).
    pub(crate) fn read(
        &mut self,
        source: &dyn BlockSource,
        locations: impl Iterator<Item = u64>,
        what: &str,
    ) -> Result<()> {
        let nr_blocks = source.nr_blocks();
        self.locations.clear();
        self.locations.extend(locations.filter(|&l| l < nr_blocks));
        self.locations.sort_unstable();
        self.locations.dedup();
        self.buf.resize(self.locations.len() * BLOCK_BYTES, 0);
        let mut i = 0;
        while i < self.locations.len() {
            let first = self.locations[i];
            let mut end = i + 1;
            while end < self.locations.len() && self.locations[end] == first + (end - i) as u64 {
                end += 1;
            }
            let last = self.locations[end - 1];
            source.read_blocks(
                first,
                &mut self.buf[i * BLOCK_BYTES..end * BLOCK_BYTES],
                &|| format!("{what} {first}..={last}"),
            )?;
            i = end;
        }
        Ok(())
    }

    /// The block read at `location`, `None` when it is not on the source.
    pub(crate) fn get(&self, location: u64) -> Option<&[u8]> {
        let slot = self.locations.binary_search(&location).ok()?;
        Some(&self.buf[slot * BLOCK_BYTES..(slot + 1) * BLOCK_BYTES])
    }
}

/// Hands `items` to `each` `size` at a time, in order, until `each` says
/// the walk stopped (`true`); returns whether it did.
pub(crate) fn in_windows<T>(
    items: &[T],
    size: usize,
    mut each: impl FnMut(&[T]) -> Result<bool>,
) -> Result<bool> {
    for window in items.chunks(size) {
        if each(window)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Metadata blocks to write to.
pub trait BlockTarget {
    /// Writes the consecutive blocks of `data` (a multiple of [`BLOCK_BYTES`])
    /// from block `first` on.
    fn write_blocks(&mut self, first: u64, data: &[u8]) -> Result<()>;

    /// Makes every write so far durable (a flush of the device).
    fn flush(&mut self) -> Result<()>;
}

impl BlockSource for Device {
    fn nr_blocks(&self) -> u64 {
        self.size_bytes() / BLOCK_BYTES as u64
    }

    fn read_blocks(&self, first: u64, out: &mut [u8], what: &dyn Fn() -> String) -> Result<()> {
        debug_assert_eq!(out.len() % BLOCK_BYTES, 0);
        let offset = first
            .checked_mul(BLOCK_BYTES as u64)
            .ok_or_else(|| Error::Truncated {
                path: self.path().to_path_buf(),
                offset: u64::MAX,
                len: out.len(),
                size: self.size_bytes(),
                what: what(),
            })?;
        self.read_at(out, offset, what)
    }
}

impl BlockSource for crate::memdev::MemDev {
    fn nr_blocks(&self) -> u64 {
        crate::blockdev::BlockDev::size(self) / BLOCK_BYTES as u64
    }

    fn read_blocks(&self, first: u64, out: &mut [u8], what: &dyn Fn() -> String) -> Result<()> {
        let offset = first.saturating_mul(BLOCK_BYTES as u64);
        crate::blockdev::BlockDev::read_at(self, out, offset, what)
    }
}

impl BlockTarget for Device {
    fn write_blocks(&mut self, first: u64, data: &[u8]) -> Result<()> {
        debug_assert_eq!(data.len() % BLOCK_BYTES, 0);
        self.write_at(data, first * BLOCK_BYTES as u64)
    }

    fn flush(&mut self) -> Result<()> {
        self.sync()
    }
}

/// Metadata held in memory: a whole metadata device as bytes, for tests and
/// for jobs that build metadata before writing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemBlocks {
    bytes: Vec<u8>,
}

impl MemBlocks {
    /// `nr_blocks` zeroed blocks.
    pub fn zeroed(nr_blocks: u64) -> Self {
        MemBlocks {
            bytes: vec![0; nr_blocks as usize * BLOCK_BYTES],
        }
    }

    /// The blocks in `bytes` (a trailing partial block is not a block).
    pub fn from_bytes(mut bytes: Vec<u8>) -> Self {
        bytes.truncate(bytes.len() / BLOCK_BYTES * BLOCK_BYTES);
        MemBlocks { bytes }
    }

    /// The bytes of every block.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes of every block, to damage in tests.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    fn range(
        &self,
        first: u64,
        len: usize,
        what: &dyn Fn() -> String,
    ) -> Result<std::ops::Range<usize>> {
        let start = first
            .checked_mul(BLOCK_BYTES as u64)
            .and_then(|s| usize::try_from(s).ok());
        match start.and_then(|s| s.checked_add(len).map(|e| s..e)) {
            Some(range) if range.end <= self.bytes.len() => Ok(range),
            _ => Err(Error::Truncated {
                path: "memory".into(),
                offset: first.saturating_mul(BLOCK_BYTES as u64),
                len,
                size: self.bytes.len() as u64,
                what: what(),
            }),
        }
    }
}

impl BlockSource for MemBlocks {
    fn nr_blocks(&self) -> u64 {
        (self.bytes.len() / BLOCK_BYTES) as u64
    }

    fn read_blocks(&self, first: u64, out: &mut [u8], what: &dyn Fn() -> String) -> Result<()> {
        let range = self.range(first, out.len(), what)?;
        out.copy_from_slice(&self.bytes[range]);
        Ok(())
    }
}

impl BlockTarget for MemBlocks {
    fn write_blocks(&mut self, first: u64, data: &[u8]) -> Result<()> {
        let range = self.range(first, data.len(), &|| "a write".into())?;
        self.bytes[range].copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_blocks_read_back_what_was_written_and_refuse_past_the_end() {
        let mut mem = MemBlocks::zeroed(4);
        let data = vec![3u8; 2 * BLOCK_BYTES];
        mem.write_blocks(1, &data).unwrap();
        let mut out = vec![0u8; 2 * BLOCK_BYTES];
        mem.read_blocks(1, &mut out, &|| "blocks 1-2".into())
            .unwrap();
        assert_eq!(out, data);
        assert_eq!(mem.read_block(0, &|| "block 0".into()).unwrap()[0], 0);
        let err = mem
            .read_blocks(3, &mut out, &|| "blocks 3-4".into())
            .unwrap_err();
        assert!(err.to_string().contains("blocks 3-4"), "{err}");
        assert_eq!(mem.nr_blocks(), 4);
    }

    #[test]
    fn a_window_reads_each_block_once_and_has_none_past_the_end() {
        let mut mem = MemBlocks::zeroed(6);
        for location in 0..6u8 {
            let block = vec![location; BLOCK_BYTES];
            mem.write_blocks(u64::from(location), &block).unwrap();
        }
        let mut window = BlockWindow::default();
        window
            .read(&mem, [4, 1, 2, 4, 9, 5].into_iter(), "test blocks")
            .unwrap();
        assert_eq!(window.locations, [1, 2, 4, 5]);
        for location in [1u64, 2, 4, 5] {
            let block = window.get(location).unwrap();
            assert!(
                block.iter().all(|&b| u64::from(b) == location),
                "{location}"
            );
        }
        assert_eq!(window.get(9), None, "past the end");
        assert_eq!(window.get(3), None, "not asked for");
    }

    #[test]
    fn windows_stop_where_the_walk_stops() {
        let mut seen = Vec::new();
        let stopped = in_windows(&[1, 2, 3, 4, 5], 2, |window| {
            seen.push(window.to_vec());
            Ok(window.contains(&3))
        })
        .unwrap();
        assert!(stopped);
        assert_eq!(seen, [vec![1, 2], vec![3, 4]]);
    }
}
