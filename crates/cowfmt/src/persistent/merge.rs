//! One persistent (or legacy) snapshot as a [`ChunkMap`], read the way the
//! kernel loads the store but over any [`BlockDev`], and the offline merge
//! of that snapshot into its origin (`cowmigrate --merge`).
//!
//! The merge needs no marker: writing a chunk's own snapshot data over the
//! origin never changes what the snapshot reads (the exception still maps
//! it), so every state a cut leaves reads the same snapshot. The order:
//! every mapped chunk is written over the origin, the origin is synced, and
//! only then is the store emptied (area 0 zeroed first, then every later
//! area the kernel read). A rerun after a cut before the store was emptied
//! writes the same bytes again; after it, the store maps nothing and the
//! rerun has nothing to do.

use super::area::area_records;
use super::header::{validate_chunk_size, Header};
use super::layout::Geometry;
use super::open;
use super::scan::{AreaScanner, ScanItem, ScanMode};
use crate::blockdev::BlockDev;
use crate::error::{Error, Result};
use crate::snapshot_image::{copy_into_origin, ChunkMap};

/// A persistent store's snapshot as the kernel would load it.
#[derive(Debug, Clone)]
pub struct ClassicSnapshot {
    /// The header as stored.
    pub header: Header,
    /// The geometry of the store.
    pub geometry: Geometry,
    /// The areas the kernel reads, in order (chunks of the device).
    pub area_chunks: Vec<u64>,
    /// Origin chunk to COW chunk; when two records map one origin chunk the
    /// first wins.
    pub map: ChunkMap,
}

/// Reads the header and the areas the kernel reads from `store`. A store
/// marked invalid is refused: the kernel gives I/O errors for its snapshot.
pub fn read_snapshot(store: &dyn BlockDev) -> Result<ClassicSnapshot> {
    let path = store.path();
    let header = open::read_header(store)?;
    header
        .validate_identity()
        .map_err(|e| Error::format(path, e))?;
    validate_chunk_size(u64::from(header.chunk_size)).map_err(|e| Error::format(path, e))?;
    if !header.is_valid() {
        return Err(Error::Invalidated {
            path: path.to_path_buf(),
        });
    }
    let geometry =
        Geometry::new(header.chunk_size, store.size()).map_err(|e| Error::format(path, e))?;
    let mut map = ChunkMap::new(geometry.chunk_bytes() as u64);
    let mut area_chunks = Vec::new();
    let mut scanner = AreaScanner::new(store, geometry, ScanMode::Kernel);
    while let Some(item) = scanner.next_area()? {
        match item {
            ScanItem::Area(view) => {
                for record in area_records(view.bytes, view.parse.entries) {
                    map.insert(record.old_chunk, record.new_chunk);
                }
                area_chunks.push(view.chunk);
            }
            ScanItem::PastEnd { index, chunk } => {
                return Err(Error::Invalid(format!(
                    "{}: area {index} (chunk {chunk}) lies past the end of the device ({} chunks); the kernel cannot load this store",
                    path.display(),
                    geometry.device_chunks()
                )))
            }
        }
    }
    Ok(ClassicSnapshot {
        header,
        geometry,
        area_chunks,
        map,
    })
}

/// What a merge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeReport {
    /// Chunks written over the origin (0: the store was empty already).
    pub chunks: u64,
    /// Areas zeroed to empty the store.
    pub areas_emptied: u64,
}

/// Merges the snapshot of `store` into `origin`: the origin then reads as
/// the snapshot did, and the store is an empty valid store of the same chunk
/// size. Restartable at any point (see the module notes). `progress` gets
/// the chunks written and the total.
pub fn merge(
    store: &dyn BlockDev,
    origin: &dyn BlockDev,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<MergeReport> {
    let snapshot = read_snapshot(store)?;
    copy_into_origin(origin, store, &snapshot.map, progress)?;
    let zeros = vec![0u8; snapshot.geometry.chunk_bytes()];
    for &chunk in &snapshot.area_chunks {
        store.write_chunk(chunk, &zeros)?;
    }
    store.sync()?;
    Ok(MergeReport {
        chunks: snapshot.map.len() as u64,
        areas_emptied: snapshot.area_chunks.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crashdev::{CrashEvent, CrashLog};
    use crate::memdev::MemDev;
    use crate::persistent::area::encode_area;
    use crate::persistent::record::ExceptionRecord;
    use crate::snapshot_image::image_in_memory;

    const CHUNK: usize = 512;

    /// A store of 12 one-sector chunks (header, area 0 at chunk 1) whose
    /// records are `records`, with each COW chunk n filled with 0x80 + n, and
    /// an origin of 5.5 chunks filled with its chunk number.
    fn store_and_origin(records: &[(u64, u64)]) -> (Vec<u8>, Vec<u8>) {
        let mut cow = vec![0u8; 12 * CHUNK];
        cow[..CHUNK].copy_from_slice(&Header::new(1).to_chunk(CHUNK));
        let records: Vec<_> = records
            .iter()
            .map(|&(old_chunk, new_chunk)| ExceptionRecord {
                old_chunk,
                new_chunk,
            })
            .collect();
        encode_area(&records, &mut cow[CHUNK..2 * CHUNK]);
        for n in 2..12 {
            cow[n * CHUNK..(n + 1) * CHUNK].fill(0x80 + n as u8);
        }
        let origin = (0..5 * CHUNK + CHUNK / 2)
            .map(|i| (i / CHUNK) as u8)
            .collect();
        (cow, origin)
    }

    fn snapshot_image(cow: &dyn BlockDev, origin: &dyn BlockDev) -> Vec<u8> {
        image_in_memory(origin, cow, &read_snapshot(cow).unwrap().map)
    }

    #[test]
    fn the_merged_origin_reads_as_the_snapshot_and_the_store_is_empty() {
        let (cow, origin) = store_and_origin(&[(1, 2), (5, 3), (1, 4)]);
        let cow = MemDev::from_bytes("mem:cow", cow);
        let origin = MemDev::from_bytes("mem:origin", origin);
        let expected = snapshot_image(&cow, &origin);
        assert_eq!(expected[CHUNK], 0x82, "the first record of chunk 1 wins");
        assert_eq!(expected[5 * CHUNK + 10], 0x83);
        let report = merge(&cow, &origin, &mut |_, _| {}).unwrap();
        assert_eq!(
            report,
            MergeReport {
                chunks: 2,
                areas_emptied: 1
            }
        );
        assert_eq!(origin.to_bytes(), expected);
        assert!(read_snapshot(&cow).unwrap().map.is_empty());
        let again = merge(&cow, &origin, &mut |_, _| {}).unwrap();
        assert_eq!(again.chunks, 0);
        assert_eq!(origin.to_bytes(), expected);
    }

    #[test]
    fn an_invalid_store_is_refused_before_anything_is_written() {
        let (mut cow, origin) = store_and_origin(&[(1, 2)]);
        cow[4] = 0;
        let cow = MemDev::from_bytes("mem:cow", cow);
        let origin = MemDev::from_bytes("mem:origin", origin);
        let before = origin.to_bytes();
        let err = merge(&cow, &origin, &mut |_, _| {}).unwrap_err();
        assert!(matches!(err, Error::Invalidated { .. }), "{err}");
        assert_eq!(origin.to_bytes(), before);
    }

    #[test]
    fn a_chunk_past_the_origin_is_refused_before_anything_is_written() {
        let (cow, origin) = store_and_origin(&[(1, 2), (9, 3)]);
        let cow = MemDev::from_bytes("mem:cow", cow);
        let origin = MemDev::from_bytes("mem:origin", origin);
        let before = origin.to_bytes();
        let err = merge(&cow, &origin, &mut |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("origin chunk 9"), "{err}");
        assert_eq!(origin.to_bytes(), before);
    }

    /// Every cut point of a merge, with every unsynced write of either device
    /// lost or kept (each alone, and all at once): a rerun on the crash
    /// images leaves the origin equal to the snapshot and the store empty.
    #[test]
    fn a_merge_cut_at_any_write_is_finished_by_a_rerun() {
        let (cow_bytes, origin_bytes) = store_and_origin(&[(0, 5), (1, 2), (3, 7), (5, 3)]);
        let expected = snapshot_image(
            &MemDev::from_bytes("mem:cow", cow_bytes.clone()),
            &MemDev::from_bytes("mem:origin", origin_bytes.clone()),
        );
        let log = CrashLog::new();
        let cow = log.device("mem:cow", cow_bytes);
        let origin = log.device("mem:origin", origin_bytes);
        merge(&cow, &origin, &mut |_, _| {}).unwrap();
        let events = log.len();
        assert!(events >= 7, "{events} events");
        let mut cases = 0;
        for at in 0..=events {
            for lost in log.loss_cases(&[cow.id(), origin.id()], at) {
                let cow_after = log.image(cow.id(), at, &lost[0]).unwrap();
                let origin_after = log.image(origin.id(), at, &lost[1]).unwrap();
                let cow_after = MemDev::from_bytes("mem:cow", cow_after);
                let origin_after = MemDev::from_bytes("mem:origin", origin_after);
                merge(&cow_after, &origin_after, &mut |_, _| {}).unwrap();
                assert_eq!(
                    origin_after.to_bytes(),
                    expected,
                    "cut at {at}, lost {lost:?}"
                );
                assert!(read_snapshot(&cow_after).unwrap().map.is_empty());
                cases += 1;
            }
        }
        assert!(cases > events, "{cases}");
        assert!(matches!(
            log.event(events - 1),
            Some(CrashEvent::Sync { .. })
        ));
    }
}
