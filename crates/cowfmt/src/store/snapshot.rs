//! One snapshot's data for every kind: the chunks it reads from its store
//! ([`chunk_map`], for `cowmigrate --to raw` with
//! [`crate::snapshot_image::write_image`]) and its merge back over the origin
//! ([`merge`], `cowmigrate --merge`). The tools claim the devices and render;
//! which snapshot a kind holds and what a merge refuses is decided here.

use std::path::Path;

use crate::device::{Access, Device};
use crate::error::{Error, Result};
use crate::finding::Severity;
use crate::kind::{StoreKind, SHARED_MAGIC};
use crate::output::Marker;
use crate::snapshot_image::{ChunkMap, MergeReport};
use crate::{persistent, shared};

/// What an offline merge did, and to which kind of store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Merged {
    /// The store's kind.
    pub kind: StoreKind,
    /// What the merge did.
    pub report: MergeReport,
}

/// The chunks the snapshot reads from `store`: the snapshot of a classic
/// store (`snapshot` left out, or 0), or snapshot `snapshot` of a shared
/// store.
pub fn chunk_map(store: &Device, kind: StoreKind, snapshot: Option<u32>) -> Result<ChunkMap> {
    if kind == StoreKind::Shared {
        let id = shared_snapshot(store.path(), snapshot, "use")?;
        return shared::tree_read::snapshot_map(store, id);
    }
    refuse_classic_snapshot(store.path(), kind, snapshot)?;
    Ok(persistent::merge::read_snapshot(store)?.map)
}

/// The kind of the store at `path` to merge (`wanted`: `--kind`): a shared
/// store in the middle of a merge carries the merge marker instead of its
/// header; any other store is detected as [`super::open`] does.
pub fn merge_kind(path: &Path, wanted: Option<StoreKind>) -> Result<StoreKind> {
    let device = Device::open(path, Access::ReadOnly)?;
    if let Some(Marker::Merging(merging)) = Marker::read(&device)? {
        if merging.original_magic == SHARED_MAGIC {
            return Ok(StoreKind::Shared);
        }
    }
    drop(device);
    Ok(super::open(path, wanted)?.1)
}

/// Merges the snapshot of `store` (of kind `kind`; snapshot `snapshot` of a
/// shared store) into `origin`, or finishes an interrupted merge. The caller
/// has claimed both devices for writing. A shared store (not in the middle
/// of a merge) whose last commit is not sound is refused before anything is
/// written. `progress` gets the chunks written over the origin and their
/// total.
pub fn merge(
    store: &Device,
    origin: &Device,
    kind: StoreKind,
    snapshot: Option<u32>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Merged> {
    let path = store.path();
    let report = if kind == StoreKind::Shared {
        let id = shared_snapshot(path, snapshot, "merge")?;
        refuse_unsound_shared(path, origin.size_bytes())?;
        shared::merge::merge(store, origin, id, progress)?
    } else {
        refuse_classic_snapshot(path, kind, snapshot)?;
        let report = persistent::merge::merge(store, origin, progress)?;
        MergeReport {
            chunks: report.chunks,
            ..MergeReport::default()
        }
    };
    Ok(Merged { kind, report })
}

/// The snapshot of a shared store a job must be given, to `job` (use,
/// merge) it.
fn shared_snapshot(path: &Path, snapshot: Option<u32>, job: &str) -> Result<u32> {
    snapshot.ok_or_else(|| {
        Error::Invalid(format!(
            "{}: is a shared store: give the snapshot to {job} with --snapshot ID",
            path.display()
        ))
    })
}

/// A classic store holds one snapshot: `snapshot` may only name it as 0.
fn refuse_classic_snapshot(path: &Path, kind: StoreKind, snapshot: Option<u32>) -> Result<()> {
    match snapshot {
        Some(id) if id != 0 => Err(Error::Invalid(format!(
            "{}: a {kind} store holds one snapshot: leave out --snapshot (or give 0), not {id}",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Refuses, before anything is written, the merge of a shared store (not in
/// the middle of a merge) whose last commit, read through its journal's
/// committed transactions, is not sound: the shared checker's first error.
/// A damaged journal superblock is left to the merge, which refuses it.
fn refuse_unsound_shared(path: &Path, origin_bytes: u64) -> Result<()> {
    let device = Device::open(path, Access::ReadOnly)?;
    if Marker::read(&device)?.is_some() {
        return Ok(());
    }
    let options = shared::repair::RepairOptions::default();
    let (view, journal) = shared::repair::read_through_journal(device, &options)?;
    if journal
        .as_ref()
        .is_some_and(|j| j.superblock_damage.is_some())
    {
        return Ok(());
    }
    let replayed = journal.map_or(0, |j| j.transactions_replayed);
    let options = shared::check::CheckOptions {
        kind_forced: true,
        origin_bytes: Some(origin_bytes),
        ..Default::default()
    };
    let report = shared::check::check(&view, &options)?;
    let Some(first) = report
        .findings
        .iter()
        .find(|f| f.severity == Severity::Error)
    else {
        return Ok(());
    };
    let state = if replayed > 0 {
        " (as its committed journal transactions would leave it)"
    } else {
        ""
    };
    Err(Error::Invalid(format!(
        "{}{state}: {}: the merge is refused and nothing was written; cowcheck tells more",
        path.display(),
        first.message
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::classic_store;

    #[test]
    fn a_classic_store_holds_snapshot_zero_only() {
        let (_dir, path) = classic_store();
        let (device, kind) = super::super::open(&path, None).unwrap();
        assert_eq!(merge_kind(&path, None).unwrap(), StoreKind::Persistent);
        assert!(chunk_map(&device, kind, None).is_ok());
        assert!(chunk_map(&device, kind, Some(0)).is_ok());
        let error = chunk_map(&device, kind, Some(3)).unwrap_err().to_string();
        assert!(
            error.ends_with(
                "a persistent store holds one snapshot: leave out --snapshot (or give 0), not 3"
            ),
            "{error}"
        );
        let error = chunk_map(&device, StoreKind::Shared, None)
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with("is a shared store: give the snapshot to use with --snapshot ID"),
            "{error}"
        );
    }
}
