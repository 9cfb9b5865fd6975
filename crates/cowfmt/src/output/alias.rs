//! Refusing an output that is one of the job's inputs under another name (a
//! symlink, a hard link, `/proc/self/fd/N`, another node of the same block
//! device).

use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Fails when the opened output (`output`, the metadata of the open file,
/// found at `path`) is the same file or block device as one of `inputs`.
pub fn refuse_alias(path: &Path, output: &Metadata, inputs: &[&Path]) -> Result<()> {
    for input in inputs {
        if same_file(output, input) {
            return Err(Error::Invalid(format!(
                "{}: the output is the same file as {}, which this job reads; refusing to overwrite it",
                path.display(),
                input.display()
            )));
        }
    }
    Ok(())
}

/// Whether `input` (followed through symlinks) is the file or device
/// `output` describes: the same device and inode, or for block devices the
/// same device number.
pub fn same_file(output: &Metadata, input: &Path) -> bool {
    let Ok(input) = std::fs::metadata(input) else {
        return false;
    };
    if output.file_type().is_block_device() && input.file_type().is_block_device() {
        return output.rdev() == input.rdev();
    }
    output.dev() == input.dev() && output.ino() == input.ino()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_fd_paths_are_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.img");
        std::fs::write(&input, b"x").unwrap();
        let hard = dir.path().join("hard.img");
        std::fs::hard_link(&input, &hard).unwrap();
        let soft = dir.path().join("soft.img");
        std::os::unix::fs::symlink(&input, &soft).unwrap();
        let open = std::fs::File::open(&input).unwrap();
        let fd = format!(
            "/proc/self/fd/{}",
            std::os::unix::io::AsRawFd::as_raw_fd(&open)
        );
        for alias in [hard.as_path(), soft.as_path(), Path::new(&fd)] {
            let meta = std::fs::metadata(alias).unwrap();
            assert!(
                refuse_alias(alias, &meta, &[&input]).is_err(),
                "{}",
                alias.display()
            );
        }
        let other = dir.path().join("other.img");
        std::fs::write(&other, b"y").unwrap();
        let meta = std::fs::metadata(&other).unwrap();
        assert!(refuse_alias(&other, &meta, &[&input]).is_ok());
    }
}
