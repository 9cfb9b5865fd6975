//! One snapshot's logical image, whatever the store kind: which origin chunks
//! the store maps ([`ChunkMap`], built by each kind), the image written out
//! whole ([`write_image`], `cowmigrate --to raw`), and the mapped chunks
//! written back over the origin ([`copy_into_origin`], the data step of an
//! offline merge).
//!
//! A chunk the store does not map reads from the origin; a mapped one from
//! the store. An origin whose size is not a multiple of the chunk size has a
//! partial last chunk: only its bytes inside the origin are read or written.

use std::collections::HashMap;
use std::io;

use crate::blockdev::BlockDev;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::sparse::{is_zero, Extents};

/// The origin chunks one snapshot reads from its store, and where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkMap {
    chunk_bytes: u64,
    map: HashMap<u64, u64>,
}

impl ChunkMap {
    /// An empty map of chunks of `chunk_bytes`.
    pub fn new(chunk_bytes: u64) -> Self {
        ChunkMap {
            chunk_bytes,
            map: HashMap::new(),
        }
    }

    /// Maps origin chunk `origin` to store chunk `store`; a chunk mapped
    /// already keeps its first mapping (as the snapshot view and repair do).
    pub fn insert(&mut self, origin: u64, store: u64) {
        self.map.entry(origin).or_insert(store);
    }

    /// The chunk size in bytes.
    pub fn chunk_bytes(&self) -> u64 {
        self.chunk_bytes
    }

    /// The store chunk holding origin chunk `origin`, if mapped.
    pub fn lookup(&self, origin: u64) -> Option<u64> {
        self.map.get(&origin).copied()
    }

    /// Mapped chunks.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no chunk is mapped.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The `(origin chunk, store chunk)` pairs in origin order.
    pub fn sorted(&self) -> Vec<(u64, u64)> {
        let mut pairs: Vec<_> = self.map.iter().map(|(&o, &s)| (o, s)).collect();
        pairs.sort_unstable();
        pairs
    }
}

/// Where an image goes, in order from byte 0: data, or holes that read as
/// zeros.
pub trait ImageSink {
    /// Appends `bytes`.
    fn data(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Appends `len` zero bytes (a hole where the sink can make one).
    fn hole(&mut self, len: u64) -> io::Result<()>;
}

/// What [`write_image`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageReport {
    /// Bytes of the image (the origin's size).
    pub bytes: u64,
    /// Chunks read from the store.
    pub from_store: u64,
    /// Chunks read from the origin.
    pub from_origin: u64,
    /// Bytes left as holes (all-zero chunks and holes of the origin).
    pub hole_bytes: u64,
}

/// Writes the whole image of the snapshot `map` describes to `sink`: mapped
/// chunks from `store`, the others from `origin`. Origin holes are not read,
/// and every all-zero chunk goes to the sink as a hole. `progress` gets the
/// chunks done and the total.
pub fn write_image(
    origin: &Device,
    store: &dyn BlockDev,
    map: &ChunkMap,
    sink: &mut dyn ImageSink,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ImageReport> {
    let size = origin.size_bytes();
    let chunk_bytes = map.chunk_bytes();
    let chunks = size.div_ceil(chunk_bytes);
    let mut extents = Extents::new(origin);
    let mut buf = vec![0u8; chunk_bytes as usize];
    let mut report = ImageReport {
        bytes: size,
        ..ImageReport::default()
    };
    for chunk in 0..chunks {
        let at = chunk * chunk_bytes;
        let len = (size - at).min(chunk_bytes) as usize;
        let piece = &mut buf[..len];
        match map.lookup(chunk) {
            Some(stored) => {
                read_store_chunk(store, chunk_bytes, stored, chunk, piece)?;
                report.from_store += 1;
            }
            None if extents.is_hole(at, len as u64) => piece.fill(0),
            None => {
                origin.read_at(piece, at, || format!("origin chunk {chunk}"))?;
                report.from_origin += 1;
            }
        }
        let written = if is_zero(piece) {
            report.hole_bytes += len as u64;
            sink.hole(len as u64)
        } else {
            sink.data(piece)
        };
        written.map_err(Error::Output)?;
        progress(chunk + 1, chunks);
    }
    Ok(report)
}

/// Writes every chunk `map` maps from `store` over the same chunk of
/// `origin`, in origin order, then syncs the origin; a map reaching past the
/// origin's end is refused before anything is written. Idempotent: the store is
/// only read, so a rerun after a cut writes the same bytes again. `progress`
/// gets the chunks done and the total.
pub fn copy_into_origin(
    origin: &dyn BlockDev,
    store: &dyn BlockDev,
    map: &ChunkMap,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let size = origin.size();
    let chunk_bytes = map.chunk_bytes();
    let mut buf = vec![0u8; chunk_bytes as usize];
    let pairs = map.sorted();
    let total = pairs.len() as u64;
    if let Some(&(chunk, _)) = pairs
        .last()
        .filter(|(c, _)| c.saturating_mul(chunk_bytes) >= size)
    {
        return Err(Error::Invalid(format!(
            "{}: the store maps origin chunk {chunk}, past the end of the origin {} ({size} bytes); is this the store's origin?",
            store.path().display(),
            origin.path().display()
        )));
    }
    for (done, (chunk, stored)) in pairs.into_iter().enumerate() {
        let at = chunk * chunk_bytes;
        let piece = &mut buf[..(size - at).min(chunk_bytes) as usize];
        read_store_chunk(store, chunk_bytes, stored, chunk, piece)?;
        origin.write_at(piece, at)?;
        progress(done as u64 + 1, total);
    }
    origin.sync()
}

/// Reads the first `piece.len()` bytes of store chunk `stored` (chunks of
/// `chunk_bytes`), which holds origin chunk `chunk`.
fn read_store_chunk(
    store: &dyn BlockDev,
    chunk_bytes: u64,
    stored: u64,
    chunk: u64,
    piece: &mut [u8],
) -> Result<()> {
    let offset = stored.saturating_mul(chunk_bytes);
    store.read_at(piece, offset, &|| {
        format!("store chunk {stored} (origin chunk {chunk})")
    })
}
