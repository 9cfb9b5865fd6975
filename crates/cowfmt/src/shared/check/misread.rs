//! Blocks read at the wrong level. The walk descends exactly tree_level levels,
//! so a leaf where a node belongs still decodes as a node when the chunk is
//! large enough for 0x1eaf entries; everything the walk then visits under it is
//! misread bytes and must be passed over, not reported.

use crate::device::Device;
use crate::error::Result;
use crate::shared::geometry::Geometry;
use crate::shared::leaf::{Leaf, LEAF_MAGIC, LEAF_VERSION};
use crate::shared::node::Node;
use crate::shared::walk::BlockAt;

/// A leaf's first four bytes (magic, version 0) read as a node count.
pub(super) const LEAF_HEAD_AS_COUNT: u32 = LEAF_MAGIC as u32 | (LEAF_VERSION as u32) << 16;

/// Re-reads suspicious blocks and remembers which subtree the walk is in that
/// must be passed over.
pub(super) struct Misread {
    skip_below: Option<u32>,
    scratch: Vec<u8>,
}

impl Misread {
    /// Nothing skipped yet.
    pub(super) fn new() -> Self {
        Misread {
            skip_below: None,
            scratch: Vec::new(),
        }
    }

    /// Whether `at` lies under the block passed to [`Misread::skip_under`].
    /// The walk is depth first, so the first block not below it ends the skip.
    pub(super) fn skipping(&mut self, at: &BlockAt) -> bool {
        match self.skip_below {
            Some(level) if at.level < level => true,
            Some(_) => {
                self.skip_below = None;
                false
            }
            None => false,
        }
    }

    /// Passes over everything the walk visits under `at`.
    pub(super) fn skip_under(&mut self, at: &BlockAt) {
        self.skip_below = Some(at.level);
    }

    /// Whether a block that decoded as `node` is a leaf.
    pub(super) fn node_is_leaf(
        &mut self,
        device: &Device,
        geometry: &Geometry,
        at: &BlockAt,
        node: &Node,
    ) -> Result<bool> {
        if node.entries.len() != LEAF_HEAD_AS_COUNT as usize {
            return Ok(false);
        }
        self.holds_leaf(device, geometry, at.chunk)
    }

    /// Whether the chunk decodes as a leaf.
    pub(super) fn holds_leaf(
        &mut self,
        device: &Device,
        geometry: &Geometry,
        chunk: u64,
    ) -> Result<bool> {
        Ok(Leaf::decode(self.read(device, geometry, chunk)?).is_ok())
    }

    /// Whether the chunk decodes as a node whose children all lie in the data range.
    pub(super) fn holds_node(
        &mut self,
        device: &Device,
        geometry: &Geometry,
        chunk: u64,
    ) -> Result<bool> {
        Ok(Node::decode(self.read(device, geometry, chunk)?)
            .is_ok_and(|node| node.entries.iter().all(|e| geometry.in_data_range(e.chunk))))
    }

    fn read(&mut self, device: &Device, geometry: &Geometry, chunk: u64) -> Result<&[u8]> {
        self.scratch.resize(geometry.chunk_bytes as usize, 0);
        device.read_chunk(chunk, &mut self.scratch)?;
        Ok(&self.scratch)
    }
}
