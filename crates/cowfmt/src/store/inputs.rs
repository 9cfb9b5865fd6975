//! Which migration `cowmigrate`'s inputs ask for, chosen once by their
//! kinds: a shared store alone, classic stores imported into one shared
//! store, one classic store into another, or dm-clone metadata alone.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::kind::StoreKind;

/// The migration the inputs ask for.
#[derive(Debug)]
pub enum Migration {
    /// One shared store: a snapshot exported, or the store re-chunked or
    /// compacted.
    SharedInput(Device),
    /// Classic stores into one new shared store (`--to shared`).
    Import(Vec<(Device, StoreKind)>),
    /// One classic store into another (re-chunk, or persistent <-> legacy).
    Classic(Device, StoreKind),
    /// dm-clone metadata, alone: its region size changed.
    Clone(Device),
}

/// The migration for `inputs` (opened, with their kinds, in the order
/// given), `to_shared` when `--to shared` was given. A shared input and
/// clone metadata must come alone; several classic inputs are only for an
/// import.
pub fn migration(mut inputs: Vec<(Device, StoreKind)>, to_shared: bool) -> Result<Migration> {
    if let Some((device, _)) = inputs.iter().find(|(_, kind)| *kind == StoreKind::Clone) {
        if inputs.len() > 1 || to_shared {
            return Err(Error::Invalid(format!(
                "{}: is dm-clone metadata, which is migrated on its own (its region size changed with --region-size)",
                device.path().display()
            )));
        }
        let (device, _) = inputs.remove(0);
        return Ok(Migration::Clone(device));
    }
    if let Some((device, _)) = inputs.iter().find(|(_, kind)| *kind == StoreKind::Shared) {
        if inputs.len() > 1 {
            return Err(Error::Invalid(format!(
                "{}: is a shared store, which is migrated on its own (an import with --to shared takes persistent or legacy stores)",
                device.path().display()
            )));
        }
        let (device, _) = inputs.remove(0);
        return Ok(Migration::SharedInput(device));
    }
    if to_shared {
        return Ok(Migration::Import(inputs));
    }
    if inputs.len() > 1 {
        return Err(Error::Invalid(format!(
            "{} input stores were given: several inputs are only for an import into one shared store (--to shared)",
            inputs.len()
        )));
    }
    let (device, kind) = inputs.remove(0);
    Ok(Migration::Classic(device, kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::classic_store;

    #[test]
    fn the_kinds_of_the_inputs_choose_the_migration() {
        let (_dir, path) = classic_store();
        let open = |kind| (crate::store::open(&path, None).unwrap().0, kind);
        let classic = migration(vec![open(StoreKind::Legacy)], false).unwrap();
        assert!(matches!(classic, Migration::Classic(_, StoreKind::Legacy)));
        let import = migration(vec![open(StoreKind::Persistent)], true);
        assert!(matches!(import, Ok(Migration::Import(v)) if v.len() == 1));
        let two = vec![open(StoreKind::Persistent), open(StoreKind::Persistent)];
        assert!(matches!(migration(two, true), Ok(Migration::Import(v)) if v.len() == 2));
        let two = vec![open(StoreKind::Persistent), open(StoreKind::Persistent)];
        let error = migration(two, false).unwrap_err().to_string();
        assert!(error.starts_with("2 input stores were given"), "{error}");
        let shared = migration(vec![open(StoreKind::Shared)], false).unwrap();
        assert!(matches!(shared, Migration::SharedInput(_)));
        let mixed = vec![open(StoreKind::Persistent), open(StoreKind::Shared)];
        let error = migration(mixed, true).unwrap_err().to_string();
        assert!(error.ends_with("is a shared store, which is migrated on its own (an import with --to shared takes persistent or legacy stores)"), "{error}");
        let clone = migration(vec![open(StoreKind::Clone)], false).unwrap();
        assert!(matches!(clone, Migration::Clone(_)));
        let with_another = vec![open(StoreKind::Persistent), open(StoreKind::Clone)];
        let error = migration(with_another, true).unwrap_err().to_string();
        assert!(error.ends_with("is dm-clone metadata, which is migrated on its own (its region size changed with --region-size)"), "{error}");
    }
}
