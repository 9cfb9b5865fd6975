//! Handing out blocks for new metadata and counting their references: what
//! the builders (B-trees, arrays) take, and what the space map written at the
//! end of a transaction is made from.

/// Why no block could be handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// Every block of the metadata device is in use.
    #[error("the metadata device is full: all {nr_blocks} blocks are in use")]
    Full {
        /// Blocks of the device.
        nr_blocks: u64,
    },
}

/// Hands out free blocks and counts references to them.
pub trait Allocator {
    /// A free block, now counted once.
    fn alloc(&mut self) -> Result<u64, AllocError>;

    /// One more reference to `location` (a block shared by two parents, as
    /// dm-array shares one full block of default values).
    fn inc(&mut self, location: u64);
}

/// The simplest allocator: blocks from `next` up to `nr_blocks`, one after the
/// other, with every reference counted. Building fresh metadata needs no more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BumpAllocator {
    next: u64,
    nr_blocks: u64,
    counts: Vec<u32>,
}

impl BumpAllocator {
    /// Hands out blocks `first..nr_blocks`.
    pub fn new(first: u64, nr_blocks: u64) -> Self {
        BumpAllocator {
            next: first,
            nr_blocks,
            counts: Vec::new(),
        }
    }

    /// The reference count of every block below the next free one.
    pub fn counts(&self) -> &[u32] {
        &self.counts
    }

    /// The next block it would hand out.
    pub fn next(&self) -> u64 {
        self.next
    }
}

impl Allocator for BumpAllocator {
    fn alloc(&mut self) -> Result<u64, AllocError> {
        if self.next >= self.nr_blocks {
            return Err(AllocError::Full {
                nr_blocks: self.nr_blocks,
            });
        }
        let location = self.next;
        self.next += 1;
        self.inc(location);
        Ok(location)
    }

    fn inc(&mut self, location: u64) {
        let at = location as usize;
        if self.counts.len() <= at {
            self.counts.resize(at + 1, 0);
        }
        self.counts[at] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_handed_out_in_order_until_the_device_is_full() {
        let mut alloc = BumpAllocator::new(1, 3);
        assert_eq!(alloc.alloc(), Ok(1));
        assert_eq!(alloc.alloc(), Ok(2));
        alloc.inc(2);
        assert_eq!(alloc.alloc(), Err(AllocError::Full { nr_blocks: 3 }));
        assert_eq!(alloc.counts(), [0, 1, 2]);
    }
}
