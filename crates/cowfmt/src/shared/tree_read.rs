//! Reading a whole shared store over any [`BlockDev`] (an image, a block
//! device, a crash image in memory): the header and every record of the
//! tree, strictly (a damaged store is refused, never guessed at). The
//! snapshot export and the offline merge read the store through here.

use crate::blockdev::BlockDev;
use crate::error::{Error, Result};
use crate::snapshot_image::ChunkMap;

use super::geometry::Geometry;
use super::header::{SharedHeader, MAX_TREE_LEVEL};
use super::leaf::{Exception, Leaf};
use super::mask;
use super::node::Node;
use super::open::{self, Policy};
use super::rules::record_unusable;
use super::walk::{walk_strict, BlockAt, TreeVisitor, WalkProblem};

/// A tree's records and the chunks of its blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeContents {
    /// `(origin chunk, records)` in origin order.
    pub entries: Vec<(u64, Vec<Exception>)>,
    /// The chunks of every node and leaf.
    pub blocks: Vec<u64>,
}

/// Decodes and checks the header in `first` (at least its 40 bytes) of a
/// store on `store`: a valid shared store whose root lies in the data range
/// ([`Policy::Strict`]).
pub fn check_header(store: &dyn BlockDev, first: &[u8]) -> Result<(SharedHeader, Geometry)> {
    let path = store.path();
    let header = SharedHeader::decode(first).map_err(|e| Error::format(path, e))?;
    let opened = open::check(store, header, Policy::Strict).map_err(|e| e.into_error(path))?;
    Ok((opened.header, opened.geometry))
}

/// Reads the header of the shared store on `store` ([`check_header`]).
pub fn read_header(store: &dyn BlockDev) -> Result<(SharedHeader, Geometry)> {
    let opened = open::open(store, Policy::Strict).map_err(|e| e.into_error(store.path()))?;
    Ok((opened.header, opened.geometry))
}

/// Reads every block of the tree at `root` with `level` node levels, through
/// the strict walk ([`walk_strict`]). Every block and record chunk must lie in
/// the data range, no block may be reached twice, and the origin chunks must
/// ascend.
pub fn read_tree(
    store: &dyn BlockDev,
    geometry: &Geometry,
    root: u64,
    level: u32,
) -> Result<TreeContents> {
    let mut reader = TreeReader {
        store,
        geometry,
        contents: TreeContents::default(),
    };
    if level == 0 || level > MAX_TREE_LEVEL {
        return Err(reader.corrupt(root, format!("tree level {level} is out of range")));
    }
    walk_strict(
        store,
        geometry,
        root,
        level,
        &mut reader,
        &|at, problem| match problem {
            WalkProblem::OutOfRange { .. } => {
                format!("a tree block lies {}", geometry.where_outside(at.chunk))
            }
            WalkProblem::Revisited => "the tree reaches this block twice".to_string(),
            WalkProblem::BadNode(e) => format!("node: {e}"),
            WalkProblem::BadLeaf(e) => format!("leaf: {e}"),
        },
    )?;
    Ok(reader.contents)
}

/// The chunks snapshot `id` reads from the shared store on `store`.
pub fn snapshot_map(store: &dyn BlockDev, id: u32) -> Result<ChunkMap> {
    let (header, geometry) = read_header(store)?;
    require_snapshot(store, &header, id)?;
    let tree = read_tree(store, &geometry, header.root_tree_chunk, header.tree_level)?;
    Ok(map_of(&tree, geometry.chunk_bytes, id))
}

/// Fails unless snapshot `id` exists in the store `header` describes.
pub fn require_snapshot(store: &dyn BlockDev, header: &SharedHeader, id: u32) -> Result<()> {
    if id >= mask::MAX_SNAPSHOTS || header.snapmask & mask::bit(id) == 0 {
        return Err(Error::Invalid(format!(
            "{}: snapshot {id} does not exist (snapshots: {})",
            store.path().display(),
            mask::describe(header.snapmask)
        )));
    }
    Ok(())
}

/// The chunks snapshot `id` reads in `tree`.
pub fn map_of(tree: &TreeContents, chunk_bytes: u64, id: u32) -> ChunkMap {
    let mut map = ChunkMap::new(chunk_bytes);
    for (origin, records) in &tree.entries {
        if let Some(record) = records.iter().find(|r| r.share & mask::bit(id) != 0) {
            map.insert(*origin, record.chunk);
        }
    }
    map
}

struct TreeReader<'a> {
    store: &'a dyn BlockDev,
    geometry: &'a Geometry,
    contents: TreeContents,
}

impl TreeReader<'_> {
    fn corrupt(&self, chunk: u64, detail: String) -> Error {
        Error::Corrupt {
            path: self.store.path().to_path_buf(),
            chunk,
            detail,
        }
    }
}

impl TreeVisitor for TreeReader<'_> {
    fn node(&mut self, at: &BlockAt, _node: &Node) -> Result<()> {
        self.contents.blocks.push(at.chunk);
        Ok(())
    }

    fn leaf(&mut self, at: &BlockAt, leaf: &Leaf) -> Result<()> {
        self.contents.blocks.push(at.chunk);
        for (origin, records) in leaf.entries() {
            if self
                .contents
                .entries
                .last()
                .is_some_and(|(last, _)| *last >= origin)
            {
                return Err(self.corrupt(
                    at.chunk,
                    format!("origin chunk {origin} does not ascend in the tree"),
                ));
            }
            if let Some(bad) = records
                .iter()
                .find(|r| record_unusable(self.geometry, r).is_some())
            {
                return Err(self.corrupt(
                    at.chunk,
                    format!(
                        "origin chunk {origin}: record {{share {:#x}, chunk {}}} is not usable",
                        bad.share, bad.chunk
                    ),
                ));
            }
            self.contents.entries.push((origin, records.to_vec()));
        }
        Ok(())
    }

    fn problem(&mut self, _at: &BlockAt, _problem: &WalkProblem) -> Result<()> {
        // Never called: the strict walk ends with an error at the first problem.
        Ok(())
    }
}
