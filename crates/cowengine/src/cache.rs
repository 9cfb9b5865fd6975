//! The engine's cache of decoded tree blocks: read on first use, changed in
//! memory, encoded together at commit (into journal images, or written in
//! place). Clean blocks are dropped only when a commit starts, so a block is
//! never read back from its home chunk while the previous transaction's home
//! write of it may still be under way. A block read from disk is checked
//! before it is cached: every chunk it names (a node's children, a leaf's data
//! chunks) must lie in the data range, so the engine never reads or writes
//! the header, bitmap or journal through a damaged pointer.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use cowfmt::blockdev::BlockDev;
use cowfmt::device::Device;
use cowfmt::error::{Error, Result};

use cowfmt::shared::geometry::Geometry;
use cowfmt::shared::leaf::Leaf;
use cowfmt::shared::node::Node;
use cowfmt::shared::rules;

/// Clean blocks kept after a commit before the cache is emptied.
const CLEAN_BLOCKS_KEPT: usize = 1 << 16;

/// Hashes a chunk number for the block map: one multiply, the high half
/// folded in (chunk numbers are not chosen by an adversary, and SipHash cost
/// more than the rest of a lookup).
#[derive(Debug, Default, Clone, Copy)]
struct ChunkHasher(u64);

impl Hasher for ChunkHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let h = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 32);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type BlockMap = HashMap<u64, Cached, BuildHasherDefault<ChunkHasher>>;

/// A decoded tree block.
#[derive(Debug, Clone)]
enum Block {
    Node(Node),
    Leaf(Leaf),
}

#[derive(Debug)]
struct Cached {
    block: Block,
    dirty: bool,
}

/// Decoded nodes and leaves of one COW device, keyed by chunk.
#[derive(Debug)]
pub struct BlockCache<D: BlockDev = Device> {
    disk: Disk<D>,
    blocks: BlockMap,
    dirty: Vec<u64>,
}

/// Reads and checks tree blocks.
#[derive(Debug)]
struct Disk<D: BlockDev> {
    device: D,
    geometry: Geometry,
    buf: Vec<u8>,
}

/// Which kind of block the tree expects at a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Node,
    Leaf,
}

impl<D: BlockDev> BlockCache<D> {
    /// An empty cache over `device`, laid out as `geometry` says.
    pub fn new(device: D, geometry: &Geometry) -> Self {
        BlockCache {
            disk: Disk {
                device,
                geometry: *geometry,
                buf: vec![0; geometry.chunk_bytes as usize],
            },
            blocks: BlockMap::default(),
            dirty: Vec::new(),
        }
    }

    /// The COW device.
    pub fn device(&self) -> &D {
        &self.disk.device
    }

    /// Bytes per chunk.
    pub fn chunk_bytes(&self) -> usize {
        self.disk.buf.len()
    }

    /// Whether the block at `chunk` is in the cache (a tree block the engine
    /// has read or written since the cache was last emptied).
    pub fn contains(&self, chunk: u64) -> bool {
        self.blocks.contains_key(&chunk)
    }

    /// The node at `chunk`.
    pub fn node(&mut self, chunk: u64) -> Result<&Node> {
        match &self.load(chunk, Kind::Node)?.block {
            Block::Node(n) => Ok(n),
            Block::Leaf(_) => unreachable!("load checks the kind"),
        }
    }

    /// The node at `chunk`, to change (marked dirty).
    pub fn node_mut(&mut self, chunk: u64) -> Result<&mut Node> {
        let (cached, dirty) = self.load_dirty(chunk, Kind::Node)?;
        if !cached.dirty {
            cached.dirty = true;
            dirty.push(chunk);
        }
        match &mut cached.block {
            Block::Node(n) => Ok(n),
            Block::Leaf(_) => unreachable!("load checks the kind"),
        }
    }

    /// The leaf at `chunk`.
    pub fn leaf(&mut self, chunk: u64) -> Result<&Leaf> {
        match &self.load(chunk, Kind::Leaf)?.block {
            Block::Leaf(l) => Ok(l),
            Block::Node(_) => unreachable!("load checks the kind"),
        }
    }

    /// The leaf at `chunk`, to change (marked dirty).
    pub fn leaf_mut(&mut self, chunk: u64) -> Result<&mut Leaf> {
        let (cached, dirty) = self.load_dirty(chunk, Kind::Leaf)?;
        if !cached.dirty {
            cached.dirty = true;
            dirty.push(chunk);
        }
        match &mut cached.block {
            Block::Leaf(l) => Ok(l),
            Block::Node(_) => unreachable!("load checks the kind"),
        }
    }

    /// The cached block at `chunk`, read and checked on a miss; an error when
    /// it is not of `kind`.
    fn load(&mut self, chunk: u64, kind: Kind) -> Result<&mut Cached> {
        Ok(self.load_dirty(chunk, kind)?.0)
    }

    /// [`BlockCache::load`], with the list of dirty chunks beside it.
    fn load_dirty(&mut self, chunk: u64, kind: Kind) -> Result<(&mut Cached, &mut Vec<u64>)> {
        use std::collections::hash_map::Entry;
        let BlockCache {
            disk,
            blocks,
            dirty,
        } = self;
        let cached = match blocks.entry(chunk) {
            Entry::Occupied(e) if e.get().kind() != kind => {
                return Err(disk.kind_mismatch(chunk, kind))
            }
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let block = disk.read(chunk, kind)?;
                e.insert(Cached {
                    block,
                    dirty: false,
                })
            }
        };
        Ok((cached, dirty))
    }

    /// Calls `f` with the leaf at `chunk`, without keeping it in the cache when it
    /// was not there (for walks over the whole tree).
    pub fn with_leaf<T>(&mut self, chunk: u64, f: impl FnOnce(&Leaf) -> T) -> Result<T> {
        match self.blocks.get(&chunk) {
            Some(Cached {
                block: Block::Leaf(leaf),
                ..
            }) => Ok(f(leaf)),
            Some(_) => Err(self.disk.kind_mismatch(chunk, Kind::Leaf)),
            None => match self.disk.read(chunk, Kind::Leaf)? {
                Block::Leaf(leaf) => Ok(f(&leaf)),
                Block::Node(_) => unreachable!("read as a leaf"),
            },
        }
    }

    /// Puts a new node at `chunk` (dirty).
    pub fn put_node(&mut self, chunk: u64, node: Node) {
        self.note_dirty(chunk);
        self.blocks.insert(
            chunk,
            Cached {
                block: Block::Node(node),
                dirty: true,
            },
        );
    }

    /// Puts a new leaf at `chunk` (dirty).
    pub fn put_leaf(&mut self, chunk: u64, leaf: Leaf) {
        self.note_dirty(chunk);
        self.blocks.insert(
            chunk,
            Cached {
                block: Block::Leaf(leaf),
                dirty: true,
            },
        );
    }

    /// Takes the leaf at `chunk` out of the cache (its chunk is being freed).
    pub fn take_leaf(&mut self, chunk: u64) -> Result<Leaf> {
        self.leaf(chunk)?;
        match self.blocks.remove(&chunk).map(|c| c.block) {
            Some(Block::Leaf(l)) => Ok(l),
            _ => unreachable!("checked to be a leaf above"),
        }
    }

    /// Takes the node at `chunk` out of the cache (its chunk is being freed).
    pub fn take_node(&mut self, chunk: u64) -> Result<Node> {
        self.node(chunk)?;
        match self.blocks.remove(&chunk).map(|c| c.block) {
            Some(Block::Node(n)) => Ok(n),
            _ => unreachable!("checked to be a node above"),
        }
    }

    /// Forgets a block without writing it (its chunk was freed).
    pub fn forget(&mut self, chunk: u64) {
        self.blocks.remove(&chunk);
    }

    /// Lists `chunk` as dirty unless its cached block already is.
    fn note_dirty(&mut self, chunk: u64) {
        if !self.blocks.get(&chunk).is_some_and(|c| c.dirty) {
            self.dirty.push(chunk);
        }
    }

    /// At most this many blocks wait to be written (blocks changed and then
    /// freed still count until the next commit).
    pub fn dirty_count(&self) -> usize {
        self.dirty.len()
    }

    /// Whether any block waits to be written.
    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Encodes every changed block, in chunk order, appending its chunk to
    /// `homes` and its image (one chunk) to `images`, and marks it clean. If
    /// the cache has grown large, the clean blocks are dropped first; the
    /// caller must have finished every home write of earlier transactions.
    pub fn capture(&mut self, homes: &mut Vec<u64>, images: &mut Vec<u8>) {
        if self.blocks.len() > CLEAN_BLOCKS_KEPT {
            self.blocks.retain(|_, c| c.dirty);
        }
        let cb = self.disk.buf.len();
        self.dirty.sort_unstable();
        self.dirty.dedup();
        let first = homes.len();
        for &chunk in &self.dirty {
            if let Some(cached) = self.blocks.get_mut(&chunk).filter(|c| c.dirty) {
                homes.push(chunk);
                let at = images.len();
                images.resize(at + cb, 0);
                cached.encode(&mut images[at..]);
                cached.dirty = false;
            }
        }
        debug_assert!(homes[first..].windows(2).all(|w| w[0] < w[1]));
        self.dirty.clear();
    }

    /// Encodes and writes every changed block in place, in chunk order (a
    /// store without a usable journal).
    pub fn write_dirty(&mut self) -> Result<()> {
        if self.blocks.len() > CLEAN_BLOCKS_KEPT {
            self.blocks.retain(|_, c| c.dirty);
        }
        self.dirty.sort_unstable();
        self.dirty.dedup();
        let disk = &mut self.disk;
        for &chunk in &self.dirty {
            if let Some(cached) = self.blocks.get_mut(&chunk).filter(|c| c.dirty) {
                cached.encode(&mut disk.buf);
                cached.dirty = false;
                disk.device.write_chunk(chunk, &disk.buf)?;
            }
        }
        self.dirty.clear();
        Ok(())
    }
}

impl Cached {
    fn encode(&self, out: &mut [u8]) {
        match &self.block {
            Block::Node(n) => n.encode(out),
            Block::Leaf(l) => l.encode(out),
        }
    }

    fn kind(&self) -> Kind {
        match self.block {
            Block::Node(_) => Kind::Node,
            Block::Leaf(_) => Kind::Leaf,
        }
    }
}

impl<D: BlockDev> Disk<D> {
    /// Reads the block at `chunk` as `kind` and checks every chunk it names.
    fn read(&mut self, chunk: u64, kind: Kind) -> Result<Block> {
        self.device.read_chunk(chunk, &mut self.buf)?;
        match kind {
            Kind::Node => {
                let node = Node::decode(&self.buf).map_err(|err| {
                    if Leaf::decode(&self.buf).is_ok() {
                        return self.kind_mismatch(chunk, Kind::Node);
                    }
                    self.corrupt(chunk, format!("expected a node: {err}"))
                })?;
                self.check_children(chunk, &node)?;
                Ok(Block::Node(node))
            }
            Kind::Leaf => {
                let leaf = Leaf::decode(&self.buf)
                    .map_err(|err| self.corrupt(chunk, format!("expected a leaf: {err}")))?;
                self.check_records(chunk, &leaf)?;
                Ok(Block::Leaf(leaf))
            }
        }
    }

    /// Every child of the node at `chunk` lies in the data range. A leaf
    /// misread as a node (chunks of 128 KiB and more hold 0x1eaf entries) is
    /// named as such.
    fn check_children(&self, chunk: u64, node: &Node) -> Result<()> {
        let Some((i, child)) = node
            .entries
            .iter()
            .enumerate()
            .find(|(_, e)| rules::cow_chunk(&self.geometry, e.chunk).is_some())
        else {
            return Ok(());
        };
        if Leaf::decode(&self.buf).is_ok() {
            return Err(self.kind_mismatch(chunk, Kind::Node));
        }
        Err(self.corrupt(
            chunk,
            format!(
                "node entry {i} points at chunk {}, {}",
                child.chunk,
                self.outside(child.chunk)
            ),
        ))
    }

    /// Every record of the leaf at `chunk` names a data chunk in the data range.
    fn check_records(&self, chunk: u64, leaf: &Leaf) -> Result<()> {
        for (origin, records) in leaf.entries() {
            if let Some(r) = records
                .iter()
                .find(|r| rules::cow_chunk(&self.geometry, r.chunk).is_some())
            {
                return Err(self.corrupt(
                    chunk,
                    format!(
                        "a record of origin chunk {origin} names COW chunk {}, {}",
                        r.chunk,
                        self.outside(r.chunk)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Where chunk `c`, outside the data range, lies.
    fn outside(&self, c: u64) -> String {
        format!(
            "which is {}, outside the data range {}..{}",
            self.geometry.where_outside(c),
            self.geometry.data_start(),
            self.geometry.nr_chunks
        )
    }

    fn kind_mismatch(&self, chunk: u64, expected: Kind) -> Error {
        self.corrupt(
            chunk,
            match expected {
                Kind::Node => "expected a node, found a leaf",
                Kind::Leaf => "expected a leaf, found a node",
            },
        )
    }

    fn corrupt(&self, chunk: u64, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            path: self.device.path().to_path_buf(),
            chunk,
            detail: detail.into(),
        }
    }
}
