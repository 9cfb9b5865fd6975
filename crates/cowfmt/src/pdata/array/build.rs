//! Building a fresh dm-array: values packed into full array blocks (the last
//! one holding the rest), each a new block, then the B-tree over them. When
//! one leaf holds the whole tree, its block is taken first, as the kernel's
//! `dm_array_empty` then resize does (the tree root, then the array blocks
//! in index order); a larger tree comes after its array blocks.

use crate::pdata::alloc::Allocator;
use crate::pdata::btree::{self, max_entries, BuildError, Node, NodeKind};
use crate::pdata::io::BlockTarget;

use super::block::{array_max_entries, encode_array_block};

/// Builds an array of `value_size`-byte values and returns its B-tree root.
pub fn build<I, V>(
    alloc: &mut dyn Allocator,
    target: &mut dyn BlockTarget,
    value_size: u32,
    values: I,
) -> Result<u64, BuildError>
where
    I: IntoIterator<Item = V>,
    I::IntoIter: ExactSizeIterator,
    V: AsRef<[u8]>,
{
    let mut values = values.into_iter();
    let per_block = array_max_entries(value_size) as usize;
    let nr_blocks = values.len().div_ceil(per_block);
    let single_leaf = nr_blocks <= max_entries(8) as usize;
    let leaf_location = match single_leaf {
        true => Some(alloc.alloc()?),
        false => None,
    };
    let mut locations = Vec::with_capacity(nr_blocks);
    let mut packed = Vec::with_capacity(per_block * value_size as usize);
    for _ in 0..nr_blocks {
        packed.clear();
        for value in values.by_ref().take(per_block) {
            let value = value.as_ref();
            if value.len() != value_size as usize {
                return Err(BuildError::ValueSize {
                    key: locations.len() as u64,
                    len: value.len(),
                    value_size,
                });
            }
            packed.extend_from_slice(value);
        }
        let location = alloc.alloc()?;
        target.write_blocks(
            location,
            &encode_array_block(location, value_size, &packed)[..],
        )?;
        locations.push(location);
    }
    let entries = locations
        .iter()
        .enumerate()
        .map(|(index, location)| (index as u64, location.to_le_bytes()));
    match leaf_location {
        Some(root) => {
            let mut leaf = Node::new(NodeKind::Leaf, 8);
            for (key, value) in entries {
                leaf.push(key, &value);
            }
            target.write_blocks(root, &leaf.encode(root)[..])?;
            Ok(root)
        }
        None => btree::build(alloc, target, 8, entries),
    }
}

/// Builds an array of `len` copies of `value`, one new block per full
/// block as the kernel (4.x and later) grows an array, and returns its root.
pub fn build_filled(
    alloc: &mut dyn Allocator,
    target: &mut dyn BlockTarget,
    len: u64,
    value: &[u8],
) -> Result<u64, BuildError> {
    build(
        alloc,
        target,
        value.len() as u32,
        std::iter::repeat_n(value, len as usize),
    )
}
