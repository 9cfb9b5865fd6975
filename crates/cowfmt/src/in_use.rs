//! Whether a device or image is held open elsewhere, whatever it holds: a
//! block device the kernel or another program claims (mounted, a member of
//! a device-mapper or LVM device, opened `O_EXCL`), a block device with
//! holders in `/sys/class/block/NAME/holders`, or an image file attached to
//! a loop device (`/sys/block/loopN/loop/backing_file`).
//!
//! Readers warn ([`InUse::warning`]); every job that writes refuses such a
//! target, even when forced ([`refuse_in_use`], called by the output guard).
//! The sysfs root and the exclusive-open test are parameters of [`Probe`],
//! so both are tested without root; [`Probe::system`] uses `/sys` (or
//! `$COWTOOLS_SYSFS_ROOT`, for tests of the binaries) and a real `O_EXCL`
//! open.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The environment variable that replaces `/sys` for [`Probe::system`].
pub const SYSFS_ROOT_VAR: &str = "COWTOOLS_SYSFS_ROOT";

/// Who holds a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// An `O_EXCL` open fails with `EBUSY`: mounted, or claimed by the kernel
    /// or another program.
    Exclusive,
    /// Devices stacked on it (`dm-3`), from sysfs.
    Holders(Vec<String>),
    /// An image attached to a loop device (`/dev/loop3`).
    Loop(String),
}

/// A device or image held open elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InUse {
    /// The path as given.
    pub path: PathBuf,
    /// Who holds it.
    pub holder: Holder,
}

impl InUse {
    /// Who holds it, as a phrase: `held by dm-3 (device-mapper)`.
    pub fn holder_text(&self) -> String {
        match &self.holder {
            Holder::Exclusive => {
                "opened exclusively elsewhere (mounted, or claimed by device-mapper, LVM or another program)"
                    .to_string()
            }
            Holder::Holders(names) => format!(
                "held by {} (devices stacked on it, /sys/class/block/*/holders)",
                names.join(", ")
            ),
            Holder::Loop(device) => format!("attached to the loop device {device}"),
        }
    }

    /// The one-line warning a reader prints.
    pub fn warning(&self) -> String {
        format!(
            "{}: is {}; it may change while it is read (a live store): deactivate it first for a consistent result",
            self.path.display(),
            self.holder_text()
        )
    }
}

/// The exclusive-open test of a [`Probe`]: fails with `EBUSY` for a claimed
/// block device.
pub type ExclusiveOpen = Box<dyn Fn(&Path) -> io::Result<()>>;

/// How a device is looked at: the sysfs root and the exclusive-open test.
pub struct Probe {
    sysfs: PathBuf,
    exclusive: ExclusiveOpen,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe").field("sysfs", &self.sysfs).finish()
    }
}

impl Probe {
    /// The running system: `/sys` (or `$COWTOOLS_SYSFS_ROOT`) and a real
    /// read-only `O_EXCL` open.
    pub fn system() -> Self {
        let sysfs =
            std::env::var_os(SYSFS_ROOT_VAR).map_or_else(|| PathBuf::from("/sys"), PathBuf::from);
        Probe::new(sysfs, Box::new(open_exclusive))
    }

    /// A probe over the sysfs tree at `sysfs` with `exclusive` as the
    /// exclusive-open test (it fails with `EBUSY` for a claimed device).
    pub fn new(sysfs: PathBuf, exclusive: ExclusiveOpen) -> Self {
        Probe { sysfs, exclusive }
    }

    /// Who holds `path`, if anyone; `None` for a missing path, a device no
    /// one holds, or anything else.
    pub fn check(&self, path: &Path) -> Option<InUse> {
        let meta = std::fs::metadata(path).ok()?;
        let holder = if meta.file_type().is_block_device() {
            self.block_holder(path, meta.rdev())
        } else if meta.is_file() {
            self.loop_holder(path, &meta)
        } else {
            None
        }?;
        Some(InUse {
            path: path.to_path_buf(),
            holder,
        })
    }

    fn block_holder(&self, path: &Path, rdev: u64) -> Option<Holder> {
        let (major, minor) = (libc::major(rdev), libc::minor(rdev));
        let holders_dir = self
            .sysfs
            .join(format!("dev/block/{major}:{minor}/holders"));
        let mut names: Vec<String> = std::fs::read_dir(holders_dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        if !names.is_empty() {
            names.sort();
            return Some(Holder::Holders(names));
        }
        match (self.exclusive)(path) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Some(Holder::Exclusive),
            _ => None,
        }
    }

    fn loop_holder(&self, path: &Path, meta: &std::fs::Metadata) -> Option<Holder> {
        let canonical = std::fs::canonicalize(path).ok();
        let mut loops: Vec<_> = std::fs::read_dir(self.sysfs.join("block"))
            .ok()?
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("loop"))
            .collect();
        loops.sort();
        loops.into_iter().find_map(|name| {
            let backing = self
                .sysfs
                .join("block")
                .join(&name)
                .join("loop/backing_file");
            let text = std::fs::read_to_string(backing).ok()?;
            let file = PathBuf::from(text.trim_end_matches('\n'));
            let same = canonical.as_deref() == Some(file.as_path())
                || std::fs::metadata(&file)
                    .is_ok_and(|b| b.dev() == meta.dev() && b.ino() == meta.ino());
            same.then(|| Holder::Loop(format!("/dev/{name}")))
        })
    }
}

/// A read-only `O_EXCL` open of a block device: fails with `EBUSY` when the
/// device is mounted or claimed; otherwise the device is closed again.
fn open_exclusive(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(path)
        .map(drop)
}

/// Who holds `path` on this system ([`Probe::system`]), if anyone.
pub fn held_elsewhere(path: &Path) -> Option<InUse> {
    Probe::system().check(path)
}

/// Refuses, with [`Error::InUse`], a target held open elsewhere: a job must
/// never write under the kernel or another program, `--force` or not.
pub fn refuse_in_use(path: &Path) -> Result<()> {
    match held_elsewhere(path) {
        Some(found) => Err(Error::InUse {
            path: found.path.clone(),
            holder: found.holder_text(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never_busy() -> ExclusiveOpen {
        Box::new(|_| Ok(()))
    }

    /// A fake sysfs with loop0 detached and loop1 and loop2 backed by files.
    fn fake_sysfs(dir: &Path, loop1: &Path, loop2: &str) -> PathBuf {
        let sysfs = dir.join("sys");
        for (name, backing) in [
            ("loop0", None),
            ("loop1", Some(loop1.display().to_string())),
            ("loop2", Some(loop2.to_string())),
        ] {
            let at = sysfs.join("block").join(name).join("loop");
            std::fs::create_dir_all(&at).unwrap();
            if let Some(backing) = backing {
                std::fs::write(at.join("backing_file"), format!("{backing}\n")).unwrap();
            }
        }
        std::fs::create_dir_all(sysfs.join("block/vda")).unwrap();
        sysfs
    }

    #[test]
    fn an_image_attached_to_a_loop_device_is_found_by_path_or_by_inode() {
        let dir = tempfile::tempdir().unwrap();
        let attached = dir.path().join("cow.img");
        let other = dir.path().join("other.img");
        let linked = dir.path().join("linked.img");
        for path in [&attached, &other] {
            std::fs::write(path, [0u8; 512]).unwrap();
        }
        std::fs::hard_link(&other, &linked).unwrap();
        let sysfs = fake_sysfs(
            dir.path(),
            &attached.canonicalize().unwrap(),
            &linked.display().to_string(),
        );
        let probe = Probe::new(sysfs, never_busy());
        let found = probe.check(&attached).expect("attached");
        assert_eq!(found.holder, Holder::Loop("/dev/loop1".to_string()));
        let warning = found.warning();
        assert!(
            warning.starts_with(&format!(
                "{}: is attached to the loop device /dev/loop1",
                attached.display()
            )),
            "{warning}"
        );
        assert_eq!(
            probe.check(&other).map(|f| f.holder),
            Some(Holder::Loop("/dev/loop2".to_string())),
            "the same inode under another name"
        );
        let free = dir.path().join("free.img");
        std::fs::write(&free, [0u8; 512]).unwrap();
        assert_eq!(probe.check(&free), None);
        assert_eq!(probe.check(&dir.path().join("missing.img")), None);
    }

    #[test]
    fn a_busy_exclusive_open_means_claimed_and_other_errors_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let busy = Probe::new(
            dir.path().to_path_buf(),
            Box::new(|_| Err(io::Error::from_raw_os_error(libc::EBUSY))),
        );
        assert_eq!(
            busy.block_holder(Path::new("/dev/x"), 0),
            Some(Holder::Exclusive)
        );
        let denied = Probe::new(
            dir.path().to_path_buf(),
            Box::new(|_| Err(io::Error::from_raw_os_error(libc::EACCES))),
        );
        assert_eq!(denied.block_holder(Path::new("/dev/x"), 0), None);
    }

    #[test]
    fn holders_in_sysfs_name_the_stacked_devices() {
        let dir = tempfile::tempdir().unwrap();
        let holders = dir.path().join("dev/block/8:16/holders");
        std::fs::create_dir_all(holders.join("dm-3")).unwrap();
        std::fs::create_dir_all(holders.join("dm-1")).unwrap();
        let probe = Probe::new(dir.path().to_path_buf(), never_busy());
        let rdev = libc::makedev(8, 16);
        let holder = probe.block_holder(Path::new("/dev/sdb"), rdev);
        assert_eq!(
            holder,
            Some(Holder::Holders(vec!["dm-1".into(), "dm-3".into()]))
        );
        let text = InUse {
            path: "/dev/sdb".into(),
            holder: holder.unwrap(),
        }
        .holder_text();
        assert!(text.starts_with("held by dm-1, dm-3"), "{text}");
        assert_eq!(
            probe.block_holder(Path::new("/dev/sdc"), libc::makedev(8, 32)),
            None
        );
    }

    #[test]
    fn a_refusal_is_one_sentence_naming_the_device_and_the_holder() {
        let err = Error::InUse {
            path: "/dev/vg/snap-cow".into(),
            holder: "attached to the loop device /dev/loop1".into(),
        };
        let text = err.to_string();
        assert!(
            text.starts_with("/dev/vg/snap-cow: is attached to the loop device /dev/loop1"),
            "{text}"
        );
        assert!(text.contains("even with --force"), "{text}");
        assert!(!text.contains('\n'));
    }
}
