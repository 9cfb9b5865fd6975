//! The offline merge of one snapshot of a shared store into its origin
//! (`cowmigrate --merge`): the origin then reads as the snapshot did, the
//! snapshot is deleted, and every other snapshot reads as before.
//!
//! A snapshot that reads an origin chunk the merge overwrites gets its own
//! copy first. The job runs in three steps, each restartable:
//!
//! 1. **Prepare** (the live store is not touched): the copies of the origin
//!    chunks other snapshots still need are written, and the tree the store
//!    will have (without the merged snapshot, with those copies) is written
//!    beside the live one, all into chunks the live store does not use; the
//!    store is synced. A cut here leaves the live store as it was; a rerun
//!    prepares again.
//! 2. **Mark**: the merge marker ([`Marker::Merging`]) replaces the header
//!    in sector 0, naming both trees; it is synced before the origin is
//!    written, so the copies and the new tree are durable before any origin
//!    chunk changes. From here on the kernel and every tool refuse the store
//!    and a rerun finishes from the marker.
//! 3. **Finish**: the merged snapshot's chunks (read through the old tree,
//!    which nothing overwrites) are written over the origin, which is
//!    synced; the bitmap of the new tree is written and synced; the header
//!    naming the new tree replaces the marker and is synced. Every write of
//!    this step is idempotent.
//!
//! Before step 1 a journal holding committed transactions is replayed for
//! real ([`replay`]: idempotent, a cut replay is finished by the rerun), so
//! the merge starts from the store's last commit; a damaged journal
//! superblock refuses the merge (cowrepair reformats it).

use byteorder::{ByteOrder, LittleEndian};

use crate::blockdev::BlockDev;
use crate::error::{Error, Result};
use crate::kind::SHARED_MAGIC;
use crate::output::{Marker, Merging, MARKER_BYTES};
use crate::snapshot_image::copy_into_origin;
pub use crate::snapshot_image::MergeReport;

use super::bitmap::ChunkBitmap;
use super::build::StoreBuilder;
use super::geometry::Geometry;
use super::header::{SharedHeader, SHARED_VERSION};
use super::journal::{replay, replay_overlay};
use super::leaf::Exception;
use super::mask;
use super::tree_read::{check_header, map_of, read_tree, require_snapshot, TreeContents};

/// Merges snapshot `id` of the shared store on `store` into `origin`, or
/// finishes the merge of `id` a cut interrupted. A journal holding committed
/// transactions is replayed first; a damaged journal superblock is an
/// [`Error::Invalid`] naming cowrepair, and nothing is written. `progress`
/// gets the chunks written over the origin and their total.
pub fn merge(
    store: &dyn BlockDev,
    origin: &dyn BlockDev,
    id: u32,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<MergeReport> {
    let mut first = vec![0u8; (MARKER_BYTES as u64).min(store.size()) as usize];
    store.read_at(&mut first, 0, &|| "the first sector".to_string())?;
    let mut journal_replayed = 0;
    let (plan, resumed) = match Marker::decode(&first) {
        Some(Marker::Merging(merging)) => (MergePlan::resume(store, origin, id, &merging)?, true),
        Some(other) => {
            return Err(Error::Invalid(format!(
                "{}: holds {}",
                store.path().display(),
                other.describe()
            )))
        }
        None => {
            require_snapshot_after_replay(store, &first, id)?;
            journal_replayed = replay_journal(store, &first)?;
            if journal_replayed > 0 {
                store.read_at(&mut first, 0, &|| "the first sector".to_string())?;
            }
            let plan = prepare(store, origin, id, &first)
                .map_err(|e| after_replay(e, journal_replayed))?;
            (plan, false)
        }
    };
    let chunks =
        finish(store, origin, &plan, progress).map_err(|e| after_replay(e, journal_replayed))?;
    Ok(MergeReport {
        chunks,
        copied_out: plan.copied_out,
        resumed,
        snapmask: plan.snapmask,
        journal_replayed,
    })
}

/// Refuses, before anything is written, a snapshot the header a replay of
/// the journal would leave (read through [`replay_overlay`]) does not have.
fn require_snapshot_after_replay(store: &dyn BlockDev, first: &[u8], id: u32) -> Result<()> {
    let (_, geometry) = check_header(store, first)?;
    let (overlay, _) = replay_overlay(store, &geometry).map_err(|e| journal_refusal(store, e))?;
    let mut replayed = first.to_vec();
    overlay.apply(&mut replayed, 0);
    let (header, _) = check_header(store, &replayed)?;
    require_snapshot(store, &header, id)
}

/// `error` of a merge that replayed `replayed` committed journal
/// transactions into the store first, saying so.
fn after_replay(error: Error, replayed: u64) -> Error {
    if replayed == 0 {
        return error;
    }
    Error::Invalid(format!(
        "{error} (the journal's {replayed} committed transaction{} had been replayed into the store first)",
        if replayed == 1 { "" } else { "s" }
    ))
}

/// The refusal of a merge whose journal superblock is damaged.
fn journal_refusal(store: &dyn BlockDev, error: Error) -> Error {
    match error {
        Error::Journal { chunk, source, .. } => Error::Invalid(format!(
            "{}: journal superblock (chunk {chunk}): {source}: the journal cannot be replayed, so the merge could start from an older state; run cowrepair first (it reformats the journal), then merge",
            store.path().display()
        )),
        other => other,
    }
}

/// Writes the committed transactions of the journal of the store whose
/// header is in `first` home; returns how many there were.
fn replay_journal(store: &dyn BlockDev, first: &[u8]) -> Result<u64> {
    let (_, geometry) = check_header(store, first)?;
    replay(store, &geometry)
        .map(|report| report.transactions)
        .map_err(|e| journal_refusal(store, e))
}

/// What the marker records: enough to finish the merge without the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MergePlan {
    snapshot: u32,
    chunk_size: u32,
    journal_chunks: u32,
    old_root: u64,
    old_level: u32,
    new_root: u64,
    new_level: u32,
    snapmask: u64,
    origin_bytes: u64,
    copied_out: u64,
}

const PLAN_BYTES: usize = 60;

impl MergePlan {
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; PLAN_BYTES];
        LittleEndian::write_u32(&mut out[0..4], self.chunk_size);
        LittleEndian::write_u32(&mut out[4..8], self.journal_chunks);
        LittleEndian::write_u64(&mut out[8..16], self.old_root);
        LittleEndian::write_u32(&mut out[16..20], self.old_level);
        LittleEndian::write_u64(&mut out[20..28], self.new_root);
        LittleEndian::write_u32(&mut out[28..32], self.new_level);
        LittleEndian::write_u64(&mut out[32..40], self.snapmask);
        LittleEndian::write_u64(&mut out[40..48], self.origin_bytes);
        LittleEndian::write_u64(&mut out[48..56], self.copied_out);
        LittleEndian::write_u32(&mut out[56..60], self.snapshot);
        out
    }

    fn decode(state: &[u8]) -> Option<Self> {
        let s = state.get(..PLAN_BYTES)?;
        Some(MergePlan {
            chunk_size: LittleEndian::read_u32(&s[0..4]),
            journal_chunks: LittleEndian::read_u32(&s[4..8]),
            old_root: LittleEndian::read_u64(&s[8..16]),
            old_level: LittleEndian::read_u32(&s[16..20]),
            new_root: LittleEndian::read_u64(&s[20..28]),
            new_level: LittleEndian::read_u32(&s[28..32]),
            snapmask: LittleEndian::read_u64(&s[32..40]),
            origin_bytes: LittleEndian::read_u64(&s[40..48]),
            copied_out: LittleEndian::read_u64(&s[48..56]),
            snapshot: LittleEndian::read_u32(&s[56..60]),
        })
    }

    /// The plan of the interrupted merge `merging` records, checked against
    /// what this run was asked to do.
    fn resume(
        store: &dyn BlockDev,
        origin: &dyn BlockDev,
        id: u32,
        merging: &Merging,
    ) -> Result<Self> {
        let path = store.path().display();
        let plan = MergePlan::decode(&merging.state)
            .filter(|p| merging.original_magic == SHARED_MAGIC && p.snapshot == merging.snapshot)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{path}: the merge marker in sector 0 is not one of a shared store this version writes"
                ))
            })?;
        if plan.snapshot != id {
            return Err(Error::Invalid(format!(
                "{path}: the interrupted merge is of snapshot {}, not {id}; run it again with --snapshot {}",
                plan.snapshot, plan.snapshot
            )));
        }
        if plan.origin_bytes != origin.size() {
            return Err(Error::Invalid(format!(
                "{}: has {} bytes, but the interrupted merge of {path} began on an origin of {} bytes; give that origin",
                origin.path().display(),
                origin.size(),
                plan.origin_bytes
            )));
        }
        Ok(plan)
    }

    fn geometry(&self, store: &dyn BlockDev) -> Geometry {
        Geometry::new(
            store.size(),
            self.chunk_size,
            u64::from(self.journal_chunks),
        )
    }
}

/// Step 1 and 2: copies out, writes the new tree beside the live one, then
/// the marker.
fn prepare(
    store: &dyn BlockDev,
    origin: &dyn BlockDev,
    id: u32,
    first: &[u8],
) -> Result<MergePlan> {
    let (header, geometry) = check_header(store, first)?;
    require_snapshot(store, &header, id)?;
    let tree = read_tree(store, &geometry, header.root_tree_chunk, header.tree_level)?;
    let map = map_of(&tree, geometry.chunk_bytes, id);
    if let Some((last, _)) = map.sorted().last() {
        if last.saturating_mul(geometry.chunk_bytes) >= origin.size() {
            return Err(Error::Invalid(format!(
                "{}: snapshot {id} maps origin chunk {last}, past the end of the origin {} ({} bytes); is this the store's origin?",
                store.path().display(),
                origin.path().display(),
                origin.size()
            )));
        }
    }
    let mut builder = StoreBuilder::new(
        store,
        u64::from(header.chunk_size),
        u64::from(header.nr_journal_chunks),
    )?;
    builder.keep_used(&used_chunks(store, &geometry, &tree)?);
    let others = header.snapmask & !mask::bit(id);
    let mut copier = OriginCopier::new(origin, geometry.chunk_bytes);
    let mut entries = Vec::with_capacity(tree.entries.len());
    for (chunk, records) in &tree.entries {
        let mut kept: Vec<Exception> = records
            .iter()
            .map(|r| Exception {
                share: r.share & others,
                chunk: r.chunk,
            })
            .filter(|r| r.share != 0)
            .collect();
        let merged = records.iter().any(|r| r.share & mask::bit(id) != 0);
        let copied = records.iter().fold(0, |all, r| all | r.share);
        let need = others & !copied;
        if merged && need != 0 {
            let to = builder.allocate()?;
            copier.copy(store, *chunk, to)?;
            kept.push(Exception {
                share: need,
                chunk: to,
            });
        }
        if !kept.is_empty() {
            entries.push((*chunk, kept));
        }
    }
    let mut writer = builder.into_tree();
    for (chunk, records) in &entries {
        writer.push(*chunk, records)?;
    }
    let root = writer.finish_tree()?;
    store.sync()?;
    let plan = MergePlan {
        snapshot: id,
        chunk_size: header.chunk_size,
        journal_chunks: header.nr_journal_chunks,
        old_root: header.root_tree_chunk,
        old_level: header.tree_level,
        new_root: root.root,
        new_level: root.level,
        snapmask: others,
        origin_bytes: origin.size(),
        copied_out: copier.copied,
    };
    let marker = Marker::Merging(Merging {
        original_magic: SHARED_MAGIC,
        snapshot: id,
        state: plan.encode(),
    });
    store.write_at(&marker.encode(), 0)?;
    store.sync()?;
    Ok(plan)
}

/// Every chunk the live store uses: what its bitmap marks, and (should the
/// bitmap miss one) every block and record chunk of its tree.
fn used_chunks(
    store: &dyn BlockDev,
    geometry: &Geometry,
    tree: &TreeContents,
) -> Result<ChunkBitmap> {
    let mut used = ChunkBitmap::load(store, geometry)?;
    for &block in &tree.blocks {
        used.set(block, true);
    }
    for (_, records) in &tree.entries {
        for record in records {
            used.set(record.chunk, true);
        }
    }
    Ok(used)
}

/// Step 3: the merged snapshot's chunks over the origin, the new bitmap,
/// the new header. Returns the chunks written over the origin.
fn finish(
    store: &dyn BlockDev,
    origin: &dyn BlockDev,
    plan: &MergePlan,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64> {
    let geometry = plan.geometry(store);
    let old = read_tree(store, &geometry, plan.old_root, plan.old_level)?;
    let map = map_of(&old, geometry.chunk_bytes, plan.snapshot);
    copy_into_origin(origin, store, &map, progress)?;
    let new = read_tree(store, &geometry, plan.new_root, plan.new_level)?;
    let mut bitmap = ChunkBitmap::empty(&geometry);
    bitmap.set_range(0, geometry.data_start());
    for &block in &new.blocks {
        bitmap.set(block, true);
    }
    for (_, records) in &new.entries {
        for record in records {
            bitmap.set(record.chunk, true);
        }
    }
    bitmap.write_dirty(store)?;
    store.sync()?;
    let header = SharedHeader {
        magic: SHARED_MAGIC,
        valid: 1,
        version: SHARED_VERSION,
        chunk_size: plan.chunk_size,
        root_tree_chunk: plan.new_root,
        snapmask: plan.snapmask,
        tree_level: plan.new_level,
        nr_journal_chunks: plan.journal_chunks,
    };
    store.write_chunk(0, &header.to_chunk(geometry.chunk_bytes as usize))?;
    store.sync()?;
    Ok(map.len() as u64)
}

/// Copies whole origin chunks into store chunks (a partial last chunk
/// padded with zeros).
struct OriginCopier<'a> {
    origin: &'a dyn BlockDev,
    buf: Vec<u8>,
    copied: u64,
}

impl<'a> OriginCopier<'a> {
    fn new(origin: &'a dyn BlockDev, chunk_bytes: u64) -> Self {
        OriginCopier {
            origin,
            buf: vec![0u8; chunk_bytes as usize],
            copied: 0,
        }
    }

    fn copy(&mut self, store: &dyn BlockDev, chunk: u64, to: u64) -> Result<()> {
        let chunk_bytes = self.buf.len() as u64;
        let at = chunk * chunk_bytes;
        let len = (self.origin.size() - at).min(chunk_bytes) as usize;
        self.buf.fill(0);
        self.origin.read_at(&mut self.buf[..len], at, &|| {
            format!("origin chunk {chunk}")
        })?;
        store.write_chunk(to, &self.buf)?;
        self.copied += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crashdev::CrashLog;
    use crate::memdev::MemDev;
    use crate::shared::tree_read::{read_header, snapshot_map};
    use crate::snapshot_image::image_in_memory;

    const CHUNK: usize = 512;
    const S0: u64 = 1;
    const S1: u64 = 2;
    const S2: u64 = 4;

    /// A shared store of 1-sector chunks with snapshots 0, 1 and 2 on 128
    /// chunks, and an origin of 9.5 chunks filled with its chunk number. Data
    /// chunk n is filled with n. The records cover every case of a merge of
    /// snapshot 1: shared with another snapshot, beside another snapshot's
    /// record, not its own (chunk 4), its own alone, seen by all, and the
    /// partial last chunk.
    fn store_and_origin() -> (Vec<u8>, Vec<u8>) {
        let cow = MemDev::new("mem:cow", 128 * CHUNK as u64);
        let entries: Vec<(u64, Vec<Exception>)> = vec![
            (0, vec![rec(S0 | S1, 40)]),
            (2, vec![rec(S1, 41), rec(S0, 42)]),
            (4, vec![rec(S0 | S2, 43)]),
            (5, vec![rec(S1, 44)]),
            (7, vec![rec(S0 | S1 | S2, 45)]),
            (9, vec![rec(S1, 46), rec(S2, 47)]),
        ];
        let mut builder = StoreBuilder::new(&cow, 1, 0).unwrap();
        for (_, records) in &entries {
            for r in records {
                builder.claim(r.chunk).unwrap();
                cow.write_chunk(r.chunk, &[r.chunk as u8; CHUNK]).unwrap();
            }
        }
        let mut writer = builder.into_tree();
        for (chunk, records) in &entries {
            writer.push(*chunk, records).unwrap();
        }
        writer.finish(S0 | S1 | S2).unwrap();
        let origin = (0..9 * CHUNK + CHUNK / 2)
            .map(|i| (i / CHUNK) as u8)
            .collect();
        (cow.to_bytes(), origin)
    }

    fn rec(share: u64, chunk: u64) -> Exception {
        Exception { share, chunk }
    }

    /// Snapshot `id`'s image, read through the store's tree.
    fn image(cow: &dyn BlockDev, origin: &dyn BlockDev, id: u32) -> Vec<u8> {
        image_in_memory(origin, cow, &snapshot_map(cow, id).unwrap())
    }

    /// The bitmap must mark exactly the reserved chunks, the tree and the data.
    fn assert_bitmap_exact(cow: &dyn BlockDev) {
        let (header, geometry) = read_header(cow).unwrap();
        let tree = read_tree(cow, &geometry, header.root_tree_chunk, header.tree_level).unwrap();
        let bitmap = ChunkBitmap::load(cow, &geometry).unwrap();
        let mut expected: Vec<u64> = (0..geometry.data_start()).collect();
        expected.extend(&tree.blocks);
        expected.extend(
            tree.entries
                .iter()
                .flat_map(|(_, r)| r.iter().map(|r| r.chunk)),
        );
        expected.sort_unstable();
        let used: Vec<u64> = (0..geometry.nr_chunks)
            .filter(|&c| bitmap.is_used(c))
            .collect();
        assert_eq!(used, expected);
    }

    #[test]
    fn the_origin_becomes_the_snapshot_and_the_others_read_as_before() {
        let (cow, origin) = store_and_origin();
        let cow = MemDev::from_bytes("mem:cow", cow);
        let origin = MemDev::from_bytes("mem:origin", origin);
        let before: Vec<_> = (0..3).map(|id| image(&cow, &origin, id)).collect();
        let report = merge(&cow, &origin, 1, &mut |_, _| {}).unwrap();
        assert_eq!(report.chunks, 5);
        assert_eq!(
            report.copied_out, 4,
            "chunks 0, 2, 5 (for 2) and 5, 9 (for 0)"
        );
        assert_eq!(report.snapmask, S0 | S2);
        assert!(!report.resumed);
        assert_eq!(origin.to_bytes(), before[1]);
        assert_eq!(image(&cow, &origin, 0), before[0]);
        assert_eq!(image(&cow, &origin, 2), before[2]);
        let err = snapshot_map(&cow, 1).unwrap_err().to_string();
        assert!(err.contains("snapshot 1 does not exist"), "{err}");
        assert_bitmap_exact(&cow);
    }

    #[test]
    fn merging_the_last_snapshot_leaves_an_empty_store() {
        let (cow, origin) = store_and_origin();
        let cow = MemDev::from_bytes("mem:cow", cow);
        let origin = MemDev::from_bytes("mem:origin", origin);
        for id in [0, 2, 1] {
            let expected = image(&cow, &origin, id);
            merge(&cow, &origin, id, &mut |_, _| {}).unwrap();
            assert_eq!(origin.to_bytes(), expected, "snapshot {id}");
            assert_bitmap_exact(&cow);
        }
        let (header, geometry) = read_header(&cow).unwrap();
        assert_eq!(header.snapmask, 0);
        let tree = read_tree(&cow, &geometry, header.root_tree_chunk, header.tree_level).unwrap();
        assert!(tree.entries.is_empty());
    }

    #[test]
    fn a_missing_snapshot_or_another_snapshots_marker_is_refused() {
        let (cow, origin) = store_and_origin();
        let cow = MemDev::from_bytes("mem:cow", cow);
        let origin = MemDev::from_bytes("mem:origin", origin);
        let before = cow.to_bytes();
        let err = merge(&cow, &origin, 5, &mut |_, _| {}).unwrap_err();
        assert!(
            err.to_string()
                .contains("snapshot 5 does not exist (snapshots: 0-2)"),
            "{err}"
        );
        assert_eq!(cow.to_bytes(), before);
        let log = CrashLog::new();
        let cut = log.device("mem:cow", before);
        let cut_origin = log.device("mem:origin", origin.to_bytes());
        merge(&cut, &cut_origin, 1, &mut |_, _| {}).unwrap();
        let marked = (0..log.len())
            .find(|&at| Marker::decode(&log.image(cut.id(), at, &[]).unwrap()).is_some())
            .expect("a marker is written");
        let cow = MemDev::from_bytes("mem:cow", log.image(cut.id(), marked, &[]).unwrap());
        let err = merge(&cow, &origin, 2, &mut |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("is of snapshot 1, not 2"), "{err}");
        let short = MemDev::new("mem:short", 4 * CHUNK as u64);
        let err = merge(&cow, &short, 1, &mut |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("give that origin"), "{err}");
    }

    /// Every cut point of a merge, losing each unsynced write of either
    /// device, or all of one device's: a rerun leaves the origin equal to
    /// the merged snapshot, the other snapshots as they were, and a bitmap
    /// that marks exactly what the store uses.
    #[test]
    fn a_merge_cut_at_any_write_is_finished_by_a_rerun() {
        let (cow_bytes, origin_bytes) = store_and_origin();
        let cow = MemDev::from_bytes("mem:cow", cow_bytes.clone());
        let origin = MemDev::from_bytes("mem:origin", origin_bytes.clone());
        let before: Vec<_> = (0..3).map(|id| image(&cow, &origin, id)).collect();
        let log = CrashLog::new();
        let cow = log.device("mem:cow", cow_bytes);
        let origin = log.device("mem:origin", origin_bytes);
        merge(&cow, &origin, 1, &mut |_, _| {}).unwrap();
        let events = log.len();
        let mut resumed = 0;
        for at in 0..=events {
            for lost in log.loss_cases(&[cow.id(), origin.id()], at) {
                let cow_cut =
                    MemDev::from_bytes("mem:cow", log.image(cow.id(), at, &lost[0]).unwrap());
                let origin_cut =
                    MemDev::from_bytes("mem:origin", log.image(origin.id(), at, &lost[1]).unwrap());
                let rerun = merge(&cow_cut, &origin_cut, 1, &mut |_, _| {});
                let done_before =
                    at == events || read_header(&cow_cut).is_ok_and(|(h, _)| h.snapmask & S1 == 0);
                match rerun {
                    Ok(report) => resumed += u64::from(report.resumed),
                    Err(e) => assert!(
                        done_before && e.to_string().contains("snapshot 1 does not exist"),
                        "cut at {at}, lost {lost:?}: {e}"
                    ),
                }
                let case = format!("cut at {at}, lost {lost:?}");
                assert_eq!(origin_cut.to_bytes(), before[1], "{case}");
                assert_eq!(image(&cow_cut, &origin_cut, 0), before[0], "{case}");
                assert_eq!(image(&cow_cut, &origin_cut, 2), before[2], "{case}");
                assert_bitmap_exact(&cow_cut);
            }
        }
        assert!(resumed > 0, "some cuts leave a marker to finish from");
    }
}
