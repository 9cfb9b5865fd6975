//! Damage on purpose, for benchmarks: zeroes one leaf in every `n` of a shared
//! store, found by walking its tree.

use std::path::Path;

use anyhow::Result;
use cowfmt::shared::dump::SharedSource;
use cowfmt::shared::walk::{walk_tree, BlockAt, TreeVisitor, WalkProblem};
use cowfmt::shared::{Leaf, Node};
use cowfmt::{Access, Device};

/// Zeroes every `every`-th leaf (in key order) of the shared store at `path`;
/// returns how many.
pub fn zero_leaves(path: &Path, every: u64) -> Result<u64> {
    let source = SharedSource::open(Device::open(path, Access::ReadWrite)?)?;
    let (device, geometry, header) = (source.device(), source.geometry(), source.header());
    let mut leaves = Leaves::default();
    walk_tree(
        device,
        geometry,
        header.root_tree_chunk,
        header.tree_level,
        &mut leaves,
    )?;
    let zeros = vec![0u8; geometry.chunk_bytes as usize];
    let mut zeroed = 0;
    for chunk in leaves
        .0
        .iter()
        .skip(every as usize / 2)
        .step_by(every as usize)
    {
        device.write_chunk(*chunk, &zeros)?;
        zeroed += 1;
    }
    device.sync()?;
    Ok(zeroed)
}

#[derive(Default)]
struct Leaves(Vec<u64>);

impl TreeVisitor for Leaves {
    fn node(&mut self, _: &BlockAt, _: &Node) -> cowfmt::Result<()> {
        Ok(())
    }

    fn leaf(&mut self, at: &BlockAt, _: &Leaf) -> cowfmt::Result<()> {
        self.0.push(at.chunk);
        Ok(())
    }

    fn problem(&mut self, _: &BlockAt, _: &WalkProblem) -> cowfmt::Result<()> {
        Ok(())
    }
}
