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
use std::io::{self, Read, Write};

use crate::blockdev::BlockDev;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::output::TextOutput;
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

/// A file through the output guard: holes stay holes.
impl ImageSink for TextOutput {
    fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }

    fn hole(&mut self, len: u64) -> io::Result<()> {
        self.skip_zeros(len)
    }
}

/// A stream (stdout, a pipe): holes are written as zeros.
#[derive(Debug)]
pub struct StreamSink<W: Write>(pub W);

impl<W: Write> ImageSink for StreamSink<W> {
    fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn hole(&mut self, len: u64) -> io::Result<()> {
        io::copy(&mut io::repeat(0).take(len), &mut self.0).map(drop)
    }
}

/// Data gathered into writes of up to [`BATCH_BYTES`] before it reaches a sink.
struct Batched<'a> {
    sink: &'a mut dyn ImageSink,
    pending: Vec<u8>,
}

/// Bytes of data handed to a sink at a time.
const BATCH_BYTES: usize = 1 << 20;

impl Batched<'_> {
    fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.pending.len() + bytes.len() > BATCH_BYTES {
            self.flush()?;
        }
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    fn hole(&mut self, len: u64) -> io::Result<()> {
        self.flush()?;
        self.sink.hole(len)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.sink.data(&self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }
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

/// What an offline merge did, whatever the store kind (a classic store
/// copies nothing out, keeps no other snapshot and has no journal).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Chunks written over the origin.
    pub chunks: u64,
    /// Origin chunks copied out first for the snapshots that still read them.
    pub copied_out: u64,
    /// Whether an interrupted merge was finished (from its marker).
    pub resumed: bool,
    /// The snapshots left.
    pub snapmask: u64,
    /// Committed journal transactions replayed into the store before the merge.
    pub journal_replayed: u64,
}

/// Writes the whole image of the snapshot `map` describes to `sink`: mapped
/// chunks from `store`, the others from `origin`. Origin holes are not read,
/// and every all-zero chunk goes to the sink as a hole. `progress` gets the
/// chunks done and the total. The sink is not flushed or committed.
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
    let mut out = Batched {
        sink,
        pending: Vec::with_capacity(BATCH_BYTES),
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
            out.hole(len as u64)
        } else {
            out.data(piece)
        };
        written.map_err(Error::Output)?;
        progress(chunk + 1, chunks);
    }
    out.flush().map_err(Error::Output)?;
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

/// The whole image of the snapshot `map` describes, in memory: the test
/// oracle of the kinds' merges.
#[cfg(test)]
pub(crate) fn image_in_memory(
    origin: &dyn BlockDev,
    store: &dyn BlockDev,
    map: &ChunkMap,
) -> Vec<u8> {
    let mut image = vec![0u8; origin.size() as usize];
    origin.read_at(&mut image, 0, &String::new).unwrap();
    let chunk_bytes = map.chunk_bytes() as usize;
    for (chunk, stored) in map.sorted() {
        let at = chunk as usize * chunk_bytes;
        let len = (image.len() - at).min(chunk_bytes);
        let offset = stored * chunk_bytes as u64;
        store
            .read_at(&mut image[at..at + len], offset, &String::new)
            .unwrap();
    }
    image
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memdev::MemDev;

    const MIB: u64 = 1 << 20;

    /// Records what reaches a sink.
    #[derive(Default)]
    struct Recorder {
        bytes: Vec<u8>,
        hole_bytes: u64,
    }

    impl ImageSink for Recorder {
        fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.bytes.extend_from_slice(bytes);
            Ok(())
        }

        fn hole(&mut self, len: u64) -> io::Result<()> {
            self.hole_bytes += len;
            self.bytes.resize(self.bytes.len() + len as usize, 0);
            Ok(())
        }
    }

    #[test]
    fn the_image_reads_mapped_chunks_from_the_store_and_skips_origin_holes() {
        let dir = tempfile::tempdir().unwrap();
        let size = 8 * MIB + 1536;
        let origin = Device::create_or_extend(dir.path().join("origin.img"), size).unwrap();
        origin.write_at(&[1u8; 4096], 0).unwrap();
        origin.write_at(&[2u8; 1536], 8 * MIB).unwrap();
        let store = MemDev::new("mem:cow", 16 * 4096);
        store.write_chunk(5, &[9u8; 4096]).unwrap();
        store.write_chunk(6, &[7u8; 4096]).unwrap();
        let mut map = ChunkMap::new(4096);
        map.insert(1, 5);
        map.insert(1, 6);
        map.insert(2048, 6);
        let mut sink = Recorder::default();
        let mut last = (0, 0);
        let report =
            write_image(&origin, &store, &map, &mut sink, &mut |d, t| last = (d, t)).unwrap();
        assert_eq!(last, (2049, 2049));
        assert_eq!(report.from_store, 2);
        assert!(
            report.from_origin < 8,
            "origin holes are not read: {report:?}"
        );
        assert_eq!(report.hole_bytes, size - 3 * 4096 + 4096 - 1536);
        let mut expected = vec![0u8; size as usize];
        expected[..4096].fill(1);
        expected[4096..8192].fill(9);
        expected[8 * MIB as usize..].fill(7);
        assert_eq!(
            sink.bytes, expected,
            "the first mapping wins; the last chunk is partial"
        );
    }

    #[test]
    fn chunks_copied_into_the_origin_keep_its_size() {
        let origin = MemDev::from_bytes("mem:origin", vec![1u8; 2560]);
        let store = MemDev::new("mem:cow", 8 * 1024);
        store.write_chunk(3, &[5u8; 1024]).unwrap();
        store.write_chunk(4, &[6u8; 1024]).unwrap();
        let mut map = ChunkMap::new(1024);
        map.insert(0, 3);
        map.insert(2, 4);
        copy_into_origin(&origin, &store, &map, &mut |_, _| {}).unwrap();
        let bytes = origin.to_bytes();
        assert_eq!(bytes.len(), 2560);
        assert!(bytes[..1024].iter().all(|&b| b == 5));
        assert!(bytes[1024..2048].iter().all(|&b| b == 1));
        assert!(bytes[2048..].iter().all(|&b| b == 6));
        map.insert(3, 4);
        let err = copy_into_origin(&origin, &store, &map, &mut |_, _| {}).unwrap_err();
        assert!(
            err.to_string()
                .contains("maps origin chunk 3, past the end"),
            "{err}"
        );
    }
}
