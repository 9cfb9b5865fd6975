//! Opening a shared store to serve it: the COW device locked against a second
//! daemon, the journal replayed (by the engine's open), then the store checked
//! as `cowcheck` checks it; a store in use or damaged is refused.

use std::fs::File;
use std::path::Path;

use cowengine::Engine;
use cowfmt::device::{Access, Device};
use cowfmt::shared::check::{check, CheckOptions};

use super::ServeError;
use crate::sys;

/// A store opened for serving; the lock lasts as long as it does.
#[derive(Debug)]
pub struct OpenStore {
    /// The engine over the COW device and the origin.
    pub engine: Engine<Device>,
    /// The open file holding the exclusive lock on the COW device.
    pub lock: File,
}

/// Opens the shared store on `cow` for `origin`: locks the COW device (a
/// second daemon on it is refused), replays its journal, and refuses it when
/// cowcheck finds damage.
pub fn open_store(cow: &Path, origin: &Path) -> Result<OpenStore, ServeError> {
    let lock = File::open(cow).map_err(|source| ServeError::Io {
        path: cow.to_path_buf(),
        action: "cannot open the store",
        source,
    })?;
    let locked = sys::try_lock_exclusive(&lock).map_err(|source| ServeError::Io {
        path: cow.to_path_buf(),
        action: "cannot lock the store",
        source,
    })?;
    if !locked {
        return Err(ServeError::InUse {
            path: cow.to_path_buf(),
        });
    }
    let cow_device = Device::open(cow, Access::ReadWrite)?;
    let origin_device = Device::open(origin, Access::ReadWrite)?;
    let origin_bytes = origin_device.size_bytes();
    let engine = Engine::open(cow_device, origin_device)?;
    refuse_damage(cow, origin_bytes)?;
    Ok(OpenStore { engine, lock })
}

/// Runs cowcheck's checker on the store (after the engine replayed its
/// journal) and refuses it on the first error finding.
fn refuse_damage(cow: &Path, origin_bytes: u64) -> Result<(), ServeError> {
    let device = Device::open(cow, Access::ReadOnly)?;
    let options = CheckOptions {
        kind_forced: true,
        origin_bytes: Some(origin_bytes),
        ..CheckOptions::default()
    };
    let report = check(&device, &options)?;
    match crate::damage::verdict("shared", &report.findings) {
        None => Ok(()),
        Some(reason) => Err(ServeError::Damaged {
            path: cow.to_path_buf(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::OriginTarget;
    use crate::target::BlockTarget;
    use cowengine::CreateOptions;
    use std::sync::Arc;

    const CB: u64 = 4096;

    /// A journaled store with `snapshots` snapshots on image files in `dir`.
    fn store_files(dir: &Path, snapshots: u32) -> (std::path::PathBuf, std::path::PathBuf) {
        let (cow, origin) = (dir.join("cow.img"), dir.join("origin.img"));
        let cow_device = Device::create_or_extend(&cow, 512 * CB).unwrap();
        let origin_device = Device::create_or_extend(&origin, 64 * CB).unwrap();
        let options = CreateOptions {
            chunk_sectors: CB / 512,
            journal_chunks: 80,
        };
        let engine = Engine::create(cow_device, origin_device, &options).unwrap();
        for _ in 0..snapshots {
            engine.create_snapshot(None).unwrap();
        }
        engine.close().unwrap();
        (cow, origin)
    }

    #[test]
    fn an_opened_store_serves_flushes_without_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let (cow, origin) = store_files(dir.path(), 0);
        let store = open_store(&cow, &origin).unwrap();
        let origin = OriginTarget::new(Arc::new(store.engine));
        origin.flush().unwrap();
        origin.write(0, &[3; 8192], false).unwrap();
        origin.flush().unwrap();
    }

    #[test]
    fn a_store_in_use_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cow, origin) = store_files(dir.path(), 1);
        let _served = open_store(&cow, &origin).unwrap();
        let error = open_store(&cow, &origin).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "{}: the store is in use by another cowrt serve (it holds the store's lock)",
                cow.display()
            )
        );
    }

    #[test]
    fn a_damaged_store_is_refused_with_cowchecks_finding() {
        let dir = tempfile::tempdir().unwrap();
        let (cow, origin) = store_files(dir.path(), 1);
        let bitmap = vec![0u8; CB as usize];
        std::fs::OpenOptions::new()
            .write(true)
            .open(&cow)
            .and_then(|file| {
                use std::os::unix::fs::FileExt;
                file.write_all_at(&bitmap, CB)
            })
            .unwrap();
        let error = open_store(&cow, &origin).unwrap_err().to_string();
        let start = format!(
            "{}: cowcheck finds the shared store damaged: ",
            cow.display()
        );
        assert!(error.starts_with(&start), "{error}");
        assert!(!error.contains('\n'), "{error}");
        assert_eq!(
            open_store(&cow, &origin).unwrap_err().to_string(),
            error,
            "a refused store is not left locked (else: in use)"
        );
    }
}
