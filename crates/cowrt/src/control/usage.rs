//! What a committed shared store holds, read from its devices through
//! cowfmt's codecs: chunks in use (the bitmap), data chunks and the chunks each
//! snapshot reads (the tree). A status reads only committed state.

use std::collections::{BTreeMap, HashSet};

use cowfmt::blockdev::BlockDev;
use cowfmt::error::{Error, Result};
use cowfmt::shared::bitmap::ChunkBitmap;
use cowfmt::shared::geometry::Geometry;
use cowfmt::shared::header::SharedHeader;
use cowfmt::shared::leaf::{Exception, Leaf};
use cowfmt::shared::node::Node;

/// Counts of a committed store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Chunks marked used in the bitmap.
    pub allocated_chunks: u64,
    /// Data chunks the tree's records name.
    pub data_chunks: u64,
    /// Per snapshot id: (chunks it reads, chunks only it reads).
    pub per_snapshot: BTreeMap<u32, (u64, u64)>,
}

/// Reads the counts of the store `header` describes on `cow`.
pub fn read_usage<D: BlockDev + ?Sized>(cow: &D, header: &SharedHeader) -> Result<Usage> {
    let geometry = Geometry::new(
        cow.size(),
        header.chunk_size,
        u64::from(header.nr_journal_chunks),
    );
    let mut usage = Usage {
        allocated_chunks: ChunkBitmap::load(cow, &geometry)?.count_used(),
        ..Usage::default()
    };
    for id in (0..64).filter(|s| header.snapmask & (1 << s) != 0) {
        usage.per_snapshot.insert(id, (0, 0));
    }
    let mut walk = Walk {
        cow,
        geometry: &geometry,
        seen: HashSet::new(),
        buf: vec![0u8; geometry.chunk_bytes as usize],
    };
    walk.block(header.root_tree_chunk, header.tree_level, &mut |records| {
        usage.count(records)
    })?;
    Ok(usage)
}

impl Usage {
    fn count(&mut self, records: &[Exception]) {
        for record in records {
            self.data_chunks += 1;
            for (&id, (chunks, exclusive)) in self.per_snapshot.iter_mut() {
                if record.share & (1 << id) != 0 {
                    *chunks += 1;
                    if record.share == 1 << id {
                        *exclusive += 1;
                    }
                }
            }
        }
    }
}

/// A depth-first walk that follows a chunk only once and only inside the data
/// range, so a damaged tree ends in an error, never a loop.
struct Walk<'a, D: ?Sized> {
    cow: &'a D,
    geometry: &'a Geometry,
    seen: HashSet<u64>,
    buf: Vec<u8>,
}

impl<D: BlockDev + ?Sized> Walk<'_, D> {
    fn block(&mut self, chunk: u64, level: u32, visit: &mut dyn FnMut(&[Exception])) -> Result<()> {
        let corrupt = |detail: String| Error::Corrupt {
            path: self.cow.path().to_path_buf(),
            chunk,
            detail,
        };
        if !self.geometry.in_data_range(chunk) || !self.seen.insert(chunk) {
            return Err(corrupt(format!(
                "tree block at level {level} is outside the data range or visited twice"
            )));
        }
        self.cow.read_chunk(chunk, &mut self.buf)?;
        if level == 0 {
            let leaf = Leaf::decode(&self.buf).map_err(|e| corrupt(format!("leaf: {e}")))?;
            for (_, records) in leaf.entries() {
                visit(records);
            }
            return Ok(());
        }
        let node = Node::decode(&self.buf).map_err(|e| corrupt(format!("node: {e}")))?;
        for entry in node.entries {
            self.block(entry.chunk, level - 1, visit)?;
        }
        Ok(())
    }
}
