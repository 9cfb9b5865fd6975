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
}
