//! A cold page cache for the files a benchmark run reads: per file
//! `fdatasync` then `posix_fadvise(POSIX_FADV_DONTNEED)` (no root needed, other
//! users' caches untouched), or, as root and only when asked,
//! `/proc/sys/vm/drop_caches`. Each drop is checked with `mincore`.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

/// How the bench empties the page cache before a cold run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ColdMethod {
    /// Per file: `fdatasync`, then `posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)`.
    /// Drops only these files' pages; keeps the file system's metadata (extent
    /// tree, inode) cached.
    Fadvise,
    /// `sync`, then `3` into /proc/sys/vm/drop_caches: every cache of the
    /// machine, every user's (root only; never the default).
    DropCaches,
}

impl ColdMethod {
    /// The name shown in the output and in results.json.
    pub fn as_str(self) -> &'static str {
        match self {
            ColdMethod::Fadvise => "fadvise",
            ColdMethod::DropCaches => "drop-caches",
        }
    }
}

/// The method a run uses for the `requested` one, and why it differs, if it does:
/// drop_caches needs root, fadvise works for anyone.
pub fn choose_method(requested: ColdMethod, is_root: bool) -> (ColdMethod, Option<String>) {
    match requested {
        ColdMethod::DropCaches if !is_root => (
            ColdMethod::Fadvise,
            Some("drop-caches needs root: used fadvise".to_string()),
        ),
        method => (method, None),
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// What one drop did to the files of a run.
#[derive(Debug, Clone, Serialize)]
pub struct ColdReport {
    /// The method used.
    pub method: ColdMethod,
    /// Bytes of the files in the page cache before the drop.
    pub resident_before: u64,
    /// Bytes of the files still in the page cache after the drop.
    pub resident_after: u64,
    /// Files whose cache cannot be dropped, with the reason (tmpfs).
    pub not_dropped: Vec<(PathBuf, String)>,
}

impl ColdReport {
    /// Whether every file was dropped and (nearly) nothing stayed resident:
    /// at most 1 MiB, pages another process may have read meanwhile.
    pub fn is_cold(&self) -> bool {
        self.not_dropped.is_empty() && self.resident_after <= 1 << 20
    }

    /// One line for the bench's output.
    pub fn line(&self) -> String {
        let mut line = format!(
            "cold ({}): {:.1} MiB resident before, {:.1} MiB after",
            self.method.as_str(),
            mib(self.resident_before),
            mib(self.resident_after)
        );
        for (path, reason) in &self.not_dropped {
            line.push_str(&format!("; {}: not dropped: {reason}", path.display()));
        }
        if !self.is_cold() {
            line.push_str(" (NOT cold)");
        }
        line
    }
}

/// Empties the page cache of `paths` with `method` and reports their residency
/// before and after.
pub fn make_cold(paths: &[&Path], method: ColdMethod) -> Result<ColdReport> {
    let mut report = ColdReport {
        method,
        resident_before: 0,
        resident_after: 0,
        not_dropped: Vec::new(),
    };
    let files = paths
        .iter()
        .map(|path| File::open(path).with_context(|| format!("{}: cannot open", path.display())))
        .collect::<Result<Vec<_>>>()?;
    for (path, file) in paths.iter().zip(&files) {
        report.resident_before += resident_bytes(path, file)?;
        if on_tmpfs(path, file)? {
            report.not_dropped.push((
                path.to_path_buf(),
                "on tmpfs, whose pages are the file".to_string(),
            ));
        }
    }
    match method {
        ColdMethod::Fadvise => {
            for (path, file) in paths.iter().zip(&files) {
                fadvise_dontneed(path, file)?;
            }
        }
        ColdMethod::DropCaches => {
            // SAFETY: sync has no preconditions.
            unsafe { libc::sync() };
            std::fs::write("/proc/sys/vm/drop_caches", "3\n")
                .context("/proc/sys/vm/drop_caches: cannot write (root needed)")?;
        }
    }
    for (path, file) in paths.iter().zip(&files) {
        report.resident_after += resident_bytes(path, file)?;
    }
    Ok(report)
}

fn fadvise_dontneed(path: &Path, file: &File) -> Result<()> {
    file.sync_data()
        .with_context(|| format!("{}: fdatasync failed", path.display()))?;
    // SAFETY: the descriptor is open for the call; offset 0, length 0 is the
    // whole file.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        anyhow::bail!(
            "{}: posix_fadvise(DONTNEED) failed: {}",
            path.display(),
            std::io::Error::from_raw_os_error(rc)
        );
    }
    Ok(())
}

fn on_tmpfs(path: &Path, file: &File) -> Result<bool> {
    // SAFETY: statfs is plain old data; all-zero bytes are a valid value.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is open and `stat` is a live local of the type
    // fstatfs writes.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("{}: fstatfs failed", path.display()));
    }
    Ok(stat.f_type == libc::TMPFS_MAGIC)
}

/// Bytes of `file` (at `path`, for messages) in the page cache, from `mincore`
/// on a read-only mapping of it.
pub fn resident_bytes(path: &Path, file: &File) -> Result<u64> {
    let length = file
        .metadata()
        .with_context(|| format!("{}: cannot stat", path.display()))?
        .len();
    if length == 0 {
        return Ok(0);
    }
    let length = usize::try_from(length)?;
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })?;
    // SAFETY: a fresh shared read-only mapping of an open file; the kernel
    // picks the address.
    let mapped = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            length,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if mapped == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("{}: mmap failed", path.display()));
    }
    let mut pages = vec![0u8; length.div_ceil(page)];
    // SAFETY: `mapped` is a mapping of `length` bytes; `pages` has a byte per
    // page of it. mincore reads no page of the file.
    let rc = unsafe { libc::mincore(mapped, length, pages.as_mut_ptr()) };
    let error = std::io::Error::last_os_error();
    // SAFETY: unmaps exactly the mapping made above.
    unsafe { libc::munmap(mapped, length) };
    if rc != 0 {
        return Err(error).with_context(|| format!("{}: mincore failed", path.display()));
    }
    let resident = pages.iter().filter(|&&state| state & 1 == 1).count();
    Ok(resident as u64 * page as u64)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn drop_caches_falls_back_to_fadvise_without_root() {
        assert_eq!(
            choose_method(ColdMethod::DropCaches, true),
            (ColdMethod::DropCaches, None)
        );
        let (method, why) = choose_method(ColdMethod::DropCaches, false);
        assert_eq!(method, ColdMethod::Fadvise);
        assert!(why.unwrap().contains("root"));
        assert_eq!(
            choose_method(ColdMethod::Fadvise, true),
            (ColdMethod::Fadvise, None)
        );
    }

    #[test]
    fn the_line_names_the_method_and_what_stayed_warm() {
        let mut report = ColdReport {
            method: ColdMethod::Fadvise,
            resident_before: 8 << 20,
            resident_after: 0,
            not_dropped: Vec::new(),
        };
        assert_eq!(
            report.line(),
            "cold (fadvise): 8.0 MiB resident before, 0.0 MiB after"
        );
        report.resident_after = 2 << 20;
        assert!(report.line().ends_with("(NOT cold)"));
        report.resident_after = 0;
        report
            .not_dropped
            .push((PathBuf::from("/dev/shm/cow.img"), "on tmpfs".to_string()));
        assert!(!report.is_cold());
        assert!(report
            .line()
            .contains("/dev/shm/cow.img: not dropped: on tmpfs"));
    }

    #[test]
    fn fadvise_empties_a_written_file_from_the_cache() {
        let dir = tempfile::tempdir_in(crate::tools::target_dir()).unwrap();
        let path = dir.path().join("data");
        let mut file = File::create(&path).unwrap();
        file.write_all(&vec![7u8; 1 << 20]).unwrap();
        drop(file);
        let report = make_cold(&[&path], ColdMethod::Fadvise).unwrap();
        assert!(report.resident_before > 0, "{}", report.line());
        if report.not_dropped.is_empty() {
            assert_eq!(report.resident_after, 0, "{}", report.line());
        }
    }
}
