//! The kind facade: every job a tool runs on a store (probe, check, dump,
//! repair, migrate) enters here, and the dispatch on [`StoreKind`] is written
//! once per job. A new kind (dm-clone) adds an arm to each job and nothing
//! else in the tools.
//!
//! - [`probe`]: what the first block of a device holds;
//! - [`check`]: the checker of every kind behind one [`check::CheckReport`];
//! - [`dump`]: the dump of every kind;
//! - [`repair`]: the salvage of every kind behind one [`repair::RepairReport`];
//! - [`migrate`]: migration and re-chunking of every kind;
//! - [`inputs`]: which migration the inputs ask for, by their kinds;
//! - [`restore`]: a dump read back for `mkcow --from-dump`;
//! - [`create`]: a new store formatted, or restored from a dump (`mkcow`);
//! - [`reports`]: the kinds' report types and rendering helpers, for the tools;
//! - [`snapshot`]: a snapshot's image (`cowmigrate --to raw`) and its merge
//!   into the origin (`cowmigrate --merge`).
//!
//! Opening: [`open`] detects the kind of a store (honouring `--kind`); each
//! kind then opens it with its policy: strict for jobs that refuse a damaged
//! store (`PersistentStore::open`, `shared::tree_read::read_header` and the
//! strict walk), tolerant for those that report on it (the checkers, the
//! dumps, repair).

pub mod check;
pub mod create;
pub mod dump;
pub mod inputs;
pub mod migrate;
pub mod probe;
pub mod repair;
pub mod reports;
pub mod restore;
pub mod snapshot;

use std::path::Path;

use crate::device::{Access, Device};
use crate::error::{Error, Result};
use crate::kind::StoreKind;
use crate::persistent::PersistentStore;
use crate::shared::repair::{read_through_journal, RepairOptions};

use self::probe::FirstBlock;

/// Opens `path` read-only and tells which kind of store it holds, by its
/// first block. `wanted` (`--kind`): `legacy` is accepted for a SnAp store
/// (same bytes); a kind the header disagrees with is an error naming both.
pub fn open(path: &Path, wanted: Option<StoreKind>) -> Result<(Device, StoreKind)> {
    let device = Device::open(path, Access::ReadOnly)?;
    let first = FirstBlock::read(&device, &|| "the store magic".to_string())?;
    let found = first.kind().map_err(|e| Error::format(path, e))?;
    let kind = match (wanted, found) {
        (None, found) => found,
        (Some(StoreKind::Legacy), StoreKind::Persistent) => StoreKind::Legacy,
        (Some(wanted), found) if wanted == found => found,
        (Some(wanted), found) => {
            return Err(Error::Invalid(format!(
                "{}: --kind {wanted} was given, but the header says this is a {found} store",
                path.display()
            )))
        }
    };
    Ok((device, kind))
}

/// Opens a classic (persistent or legacy) store with the strict policy: a
/// store the kernel would not load is refused.
pub fn open_classic(device: Device) -> Result<PersistentStore> {
    PersistentStore::open(device, None)
}

/// A store as its last commit left it, from [`read_committed`].
#[derive(Debug)]
pub struct Committed {
    /// The device to read: the store itself, or (a shared store whose
    /// journal holds committed transactions not yet written home) the store
    /// read through the images replay would write.
    pub device: Device,
    /// Committed journal transactions read through.
    pub transactions_read: u64,
    /// Why the journal superblock is unusable, when it is: nothing is read
    /// through it and the store is read as it is on disk.
    pub journal_damage: Option<String>,
}

/// The store on `device` (of kind `kind`) as its last commit left it; the
/// store is not written. Only a shared store has a journal to read through;
/// a damaged journal superblock hides nothing that can be read, so the store
/// is then read as it is on disk and [`Committed::journal_damage`] says why.
pub fn read_committed(device: Device, kind: StoreKind) -> Result<Committed> {
    let as_is = |device| Committed {
        device,
        transactions_read: 0,
        journal_damage: None,
    };
    if kind != StoreKind::Shared {
        return Ok(as_is(device));
    }
    let (device, journal) = read_through_journal(device, &RepairOptions::default())?;
    Ok(match journal {
        None => as_is(device),
        Some(journal) => Committed {
            device,
            transactions_read: journal.transactions_replayed,
            journal_damage: journal.superblock_damage,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistent::test_store::committed_store;

    /// A committed persistent store of one record, in a fresh directory.
    pub(super) fn classic_store() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.img");
        committed_store(&path, 64, 1, |i| i);
        (dir, path)
    }

    #[test]
    fn open_honours_the_kind_the_caller_insists_on() {
        let (dir, path) = classic_store();
        assert_eq!(open(&path, None).unwrap().1, StoreKind::Persistent);
        assert_eq!(
            open(&path, Some(StoreKind::Legacy)).unwrap().1,
            StoreKind::Legacy
        );
        let error = open(&path, Some(StoreKind::Shared)).unwrap_err();
        assert!(
            error.to_string().ends_with(
                "--kind shared was given, but the header says this is a persistent store"
            ),
            "{error}"
        );
        let zeros = dir.path().join("zeros.img");
        drop(Device::create_or_extend(&zeros, 1 << 20).unwrap());
        let error = open(&zeros, None).unwrap_err();
        assert!(error.to_string().contains("not formatted"), "{error}");
    }
}
