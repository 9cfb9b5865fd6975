//! The engine's cache of decoded tree blocks: read on first use, changed in
//! memory, written back together at commit.

use std::collections::HashMap;

use crate::device::Device;
use crate::error::{Error, Result};

use super::leaf::Leaf;
use super::node::Node;

/// Clean blocks kept after a commit before the cache is emptied.
const CLEAN_BLOCKS_KEPT: usize = 1 << 16;

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
pub struct BlockCache {
    device: Device,
    chunk_bytes: usize,
    blocks: HashMap<u64, Cached>,
    buf: Vec<u8>,
}

impl BlockCache {
    /// An empty cache over `device` with chunks of `chunk_bytes`.
    pub fn new(device: Device, chunk_bytes: usize) -> Self {
        BlockCache {
            device,
            chunk_bytes,
            blocks: HashMap::new(),
            buf: vec![0; chunk_bytes],
        }
    }

    /// The COW device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Bytes per chunk.
    pub fn chunk_bytes(&self) -> usize {
        self.chunk_bytes
    }

    /// The node at `chunk`.
    pub fn node(&mut self, chunk: u64) -> Result<&Node> {
        let cached = load(&mut self.blocks, &self.device, &mut self.buf, chunk, false)?;
        match &cached.block {
            Block::Node(n) => Ok(n),
            Block::Leaf(_) => Err(corrupt(
                &self.device,
                chunk,
                "expected a node, found a leaf",
            )),
        }
    }

    /// The node at `chunk`, to change (marked dirty).
    pub fn node_mut(&mut self, chunk: u64) -> Result<&mut Node> {
        let cached = load(&mut self.blocks, &self.device, &mut self.buf, chunk, false)?;
        cached.dirty = true;
        match &mut cached.block {
            Block::Node(n) => Ok(n),
            Block::Leaf(_) => Err(corrupt(
                &self.device,
                chunk,
                "expected a node, found a leaf",
            )),
        }
    }

    /// The leaf at `chunk`.
    pub fn leaf(&mut self, chunk: u64) -> Result<&Leaf> {
        let cached = load(&mut self.blocks, &self.device, &mut self.buf, chunk, true)?;
        match &cached.block {
            Block::Leaf(l) => Ok(l),
            Block::Node(_) => Err(corrupt(
                &self.device,
                chunk,
                "expected a leaf, found a node",
            )),
        }
    }

    /// The leaf at `chunk`, to change (marked dirty).
    pub fn leaf_mut(&mut self, chunk: u64) -> Result<&mut Leaf> {
        let cached = load(&mut self.blocks, &self.device, &mut self.buf, chunk, true)?;
        cached.dirty = true;
        match &mut cached.block {
            Block::Leaf(l) => Ok(l),
            Block::Node(_) => Err(corrupt(
                &self.device,
                chunk,
                "expected a leaf, found a node",
            )),
        }
    }

    /// Calls `f` with the leaf at `chunk`, without keeping it in the cache when it
    /// was not there (for walks over the whole tree).
    pub fn with_leaf<T>(&mut self, chunk: u64, f: impl FnOnce(&Leaf) -> T) -> Result<T> {
        if let Some(Cached {
            block: Block::Leaf(leaf),
            ..
        }) = self.blocks.get(&chunk)
        {
            return Ok(f(leaf));
        }
        if self.blocks.contains_key(&chunk) {
            return Err(corrupt(&self.device, chunk, "expected a leaf, found a node"));
        }
        self.device.read_chunk(chunk, &mut self.buf)?;
        let leaf = Leaf::decode(&self.buf)
            .map_err(|err| corrupt(&self.device, chunk, format!("expected a leaf: {err}")))?;
        Ok(f(&leaf))
    }

    /// Puts a new node at `chunk` (dirty).
    pub fn put_node(&mut self, chunk: u64, node: Node) {
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

    /// Encodes and writes every changed block, in chunk order; then, if the cache
    /// has grown large, forgets the clean blocks.
    pub fn write_dirty(&mut self) -> Result<()> {
        let mut dirty: Vec<u64> = self
            .blocks
            .iter()
            .filter(|(_, c)| c.dirty)
            .map(|(&k, _)| k)
            .collect();
        dirty.sort_unstable();
        for chunk in dirty {
            let cached = self.blocks.get_mut(&chunk).expect("listed above");
            match &cached.block {
                Block::Node(n) => n.encode(&mut self.buf),
                Block::Leaf(l) => l.encode(&mut self.buf),
            }
            cached.dirty = false;
            self.device.write_chunk(chunk, &self.buf)?;
        }
        if self.blocks.len() > CLEAN_BLOCKS_KEPT {
            self.blocks.clear();
        }
        Ok(())
    }

    /// Whether any block waits to be written.
    pub fn has_dirty(&self) -> bool {
        self.blocks.values().any(|c| c.dirty)
    }
}

fn corrupt(device: &Device, chunk: u64, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        path: device.path().to_path_buf(),
        chunk,
        detail: detail.into(),
    }
}

/// The cached block at `chunk`, read and decoded (as a leaf or a node) on a miss.
fn load<'a>(
    blocks: &'a mut HashMap<u64, Cached>,
    device: &Device,
    buf: &mut [u8],
    chunk: u64,
    leaf: bool,
) -> Result<&'a mut Cached> {
    use std::collections::hash_map::Entry;
    match blocks.entry(chunk) {
        Entry::Occupied(e) => Ok(e.into_mut()),
        Entry::Vacant(e) => {
            device.read_chunk(chunk, buf)?;
            let block = if leaf {
                Leaf::decode(buf)
                    .map(Block::Leaf)
                    .map_err(|err| corrupt(device, chunk, format!("expected a leaf: {err}")))?
            } else {
                Node::decode(buf)
                    .map(Block::Node)
                    .map_err(|err| corrupt(device, chunk, format!("expected a node: {err}")))?
            };
            Ok(e.insert(Cached {
                block,
                dirty: false,
            }))
        }
    }
}
