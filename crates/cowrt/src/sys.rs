//! The few system calls the daemon and its client need that std does not
//! wrap: a private mount namespace, an advisory lock on the store, and
//! freezing a filesystem. Every `unsafe` of the crate outside the ublk
//! adapter is here.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `FIFREEZE` (`include/uapi/linux/fs.h`: `_IOWR('X', 119, int)`).
const FIFREEZE: libc::c_ulong = 0xC004_5877;
/// `FITHAW` (`_IOWR('X', 120, int)`).
const FITHAW: libc::c_ulong = 0xC004_5878;

fn check(result: libc::c_int) -> io::Result<()> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Moves this process into a mount namespace of its own whose mounts do not
/// propagate from the parent's, so that a filesystem mounted later on one of
/// the daemon's own devices is never mounted in the daemon's namespace
/// (libublk's README: the unmount at the daemon's exit would wait on the
/// daemon). Call it before starting any thread.
pub fn private_mount_namespace() -> io::Result<()> {
    // SAFETY: unshare takes no pointer; CLONE_NEWNS only changes this
    // process's view of mounts.
    check(unsafe { libc::unshare(libc::CLONE_NEWNS) })?;
    let root = c"/";
    // SAFETY: `root` is a NUL-terminated string that outlives the call; the
    // other pointers may be null for a propagation change (mount(2)).
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })
}

/// Detaches the mount at `point` from this process's namespace
/// (`umount2(MNT_DETACH)`): other namespaces keep theirs.
pub fn detach_mount(point: &std::path::Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let point = std::ffi::CString::new(point.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `point` is a NUL-terminated string that outlives the call.
    check(unsafe { libc::umount2(point.as_ptr(), libc::MNT_DETACH) })
}

/// Takes an exclusive advisory lock on `file` without waiting; `Ok(false)`
/// when another open file holds one. The lock lasts as long as the file is open.
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: flock on a descriptor `file` keeps open for the call.
    let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    match check(result) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Freezes the filesystem `directory` (opened on its mount point) is on:
/// writes to it wait and its journal is flushed to the device.
pub fn freeze(directory: &File) -> io::Result<()> {
    // SAFETY: FIFREEZE takes an int argument that the kernel ignores; the
    // descriptor stays open for the call.
    check(unsafe { libc::ioctl(directory.as_raw_fd(), FIFREEZE as _, 0) })
}

/// Thaws the filesystem [`freeze`] froze.
pub fn thaw(directory: &File) -> io::Result<()> {
    // SAFETY: as for FIFREEZE.
    check(unsafe { libc::ioctl(directory.as_raw_fd(), FITHAW as _, 0) })
}
