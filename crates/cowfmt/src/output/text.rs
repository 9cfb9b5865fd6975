//! A text output (a dump, a hex dump) written under a temporary name beside
//! its target and renamed into place only when complete, so that a cut job
//! never leaves a truncated dump that parses as a shorter one.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::device::{Access, Device};
use crate::error::{Error, Result};
use crate::in_use::refuse_in_use;
use crate::output::alias::refuse_alias;
use crate::output::contents::contents;
use crate::output::target::{refusal, what_is_overwritten, OUTPUT_PROBE_BYTES};

/// A text output file being written: refused before anything is written
/// when it is one of the inputs or exists (non-empty) without `force`;
/// written to `.NAME.PID.partial` in the same directory; put in place by
/// [`TextOutput::commit`]; removed if dropped uncommitted. A character
/// device or a FIFO is written directly. An existing file held open
/// elsewhere (attached to a loop device) is refused even with `force`.
/// Binary images may leave holes ([`TextOutput::skip_zeros`]).
#[derive(Debug)]
pub struct TextOutput {
    file: Option<File>,
    temp: PathBuf,
    path: PathBuf,
    replace: bool,
    overwritten: Option<String>,
    direct: bool,
}

impl TextOutput {
    /// Checks `path` and opens its temporary file.
    pub fn create(path: &Path, force: bool, inputs: &[&Path]) -> Result<Self> {
        let mut overwritten = None;
        let replace = match std::fs::metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(source) => {
                return Err(Error::Open {
                    path: path.to_path_buf(),
                    source,
                })
            }
            Ok(meta) => {
                refuse_alias(path, &meta, inputs)?;
                if meta.file_type().is_char_device() || meta.file_type().is_fifo() {
                    return Self::direct(path);
                }
                if !meta.is_file() {
                    return Err(Error::Invalid(format!(
                        "{}: is neither a regular file, a character device nor a FIFO; give a new file name for the output",
                        path.display()
                    )));
                }
                if is_symlink(path) {
                    return Self::create(&resolve(path)?, force, inputs);
                }
                refuse_in_use(path)?;
                if meta.len() > 0 {
                    let found =
                        contents(&Device::open(path, Access::ReadOnly)?, OUTPUT_PROBE_BYTES)?;
                    if !force {
                        return Err(Error::Invalid(refusal(path, meta.len(), found.as_ref())));
                    }
                    overwritten = Some(what_is_overwritten(meta.len(), found));
                }
                true
            }
        };
        let temp = temp_name(path);
        let file = open_writing(OpenOptions::new().create_new(true), &temp, path)?;
        Ok(TextOutput {
            file: Some(file),
            temp,
            path: path.to_path_buf(),
            replace,
            overwritten,
            direct: false,
        })
    }

    /// An output written straight to a character device or a FIFO
    /// (`/dev/stdout`, a pipe): it holds no data to protect and cannot be
    /// renamed over.
    fn direct(path: &Path) -> Result<Self> {
        let file = open_writing(&mut OpenOptions::new(), path, path)?;
        Ok(TextOutput {
            file: Some(file),
            temp: PathBuf::new(),
            path: path.to_path_buf(),
            replace: false,
            overwritten: None,
            direct: true,
        })
    }

    /// What was in the existing file that `force` lets this output replace
    /// (`a persistent store (SnAp, chunk size 8)`, `a file of 181 bytes`).
    pub fn overwritten(&self) -> Option<&str> {
        self.overwritten.as_deref()
    }

    /// Flushes the text to stable storage and puts it in place: renamed over
    /// the target when it existed (and was allowed to be replaced), otherwise
    /// linked in only if the name is still free, so two jobs writing one new
    /// output never both succeed.
    pub fn commit(mut self) -> Result<()> {
        let mut file = self.file.take().expect("committed once");
        if self.direct {
            return file.flush().map_err(|source| Error::Io {
                path: self.path.clone(),
                action: "cannot write",
                source,
            });
        }
        let end = file.stream_position().and_then(|end| {
            if file.metadata()?.len() < end {
                file.set_len(end)?;
            }
            Ok(())
        });
        end.map_err(|source| Error::Io {
            path: self.temp.clone(),
            action: "cannot set the length of",
            source,
        })?;
        file.sync_all().map_err(|source| Error::Io {
            path: self.temp.clone(),
            action: "cannot flush to stable storage",
            source,
        })?;
        drop(file);
        let placed = if self.replace {
            std::fs::rename(&self.temp, &self.path)
        } else {
            std::fs::hard_link(&self.temp, &self.path)
        };
        placed.map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => Error::Invalid(format!(
                "{}: was created by someone else while this job wrote it; refusing to overwrite it",
                self.path.display()
            )),
            _ => Error::Io {
                path: self.path.clone(),
                action: "cannot put the output in place",
                source,
            },
        })?;
        let _ = std::fs::remove_file(&self.temp);
        Ok(())
    }

    /// Appends `len` zero bytes: a hole in a file (the file is extended to
    /// cover it when committed), zeros written to a FIFO or character device.
    pub fn skip_zeros(&mut self, len: u64) -> io::Result<()> {
        if self.direct {
            let zeros = vec![0u8; len.min(1 << 20) as usize];
            let mut left = len;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                self.file()?.write_all(&zeros[..n])?;
                left -= n as u64;
            }
            return Ok(());
        }
        let offset = i64::try_from(len).map_err(io::Error::other)?;
        self.file()?.seek(SeekFrom::Current(offset)).map(drop)
    }

    fn file(&mut self) -> io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("the output was already committed"))
    }
}

impl Write for TextOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file()?.flush()
    }
}

impl Drop for TextOutput {
    fn drop(&mut self) {
        if !self.direct && (self.file.is_some() || self.temp.exists()) {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Opens `at` for writing with `options`; an error names the output `path`.
fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink())
}

/// The file a symbolic link to a regular file names (`/dev/stdout` redirected
/// to a file, `/proc/self/fd/N`), so that the output is renamed over that file
/// and never over the link itself (which may be a system's `/dev/stdout`).
fn resolve(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).map_err(|source| Error::Open {
        path: path.to_path_buf(),
        source,
    })
}

fn open_writing(options: &mut OpenOptions, at: &Path, path: &Path) -> Result<File> {
    options.write(true).open(at).map_err(|source| Error::Open {
        path: path.to_path_buf(),
        source,
    })
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{}.partial", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_to_a_file_is_replaced_at_the_file_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dump.yaml");
        std::fs::write(&file, b"").unwrap();
        let link = dir.path().join("stdout");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let mut out = TextOutput::create(&link, false, &[]).unwrap();
        out.write_all(b"text").unwrap();
        out.commit().unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&file).unwrap(), b"text");
    }

    #[test]
    fn the_text_appears_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump.yaml");
        let mut out = TextOutput::create(&path, false, &[]).unwrap();
        out.write_all(b"records: []\n").unwrap();
        assert!(!path.exists());
        out.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"records: []\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let err = TextOutput::create(&path, false, &[]).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        let mut out = TextOutput::create(&path, true, &[]).unwrap();
        out.write_all(b"x").unwrap();
        drop(out);
        assert_eq!(std::fs::read(&path).unwrap(), b"records: []\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn skipped_zeros_are_holes_and_a_trailing_hole_keeps_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.raw");
        let mut out = TextOutput::create(&path, false, &[]).unwrap();
        out.write_all(b"ab").unwrap();
        out.skip_zeros(3).unwrap();
        out.write_all(b"c").unwrap();
        out.skip_zeros(2 << 20).unwrap();
        out.commit().unwrap();
        let mut expected = b"ab\0\0\0c".to_vec();
        expected.resize(6 + (2 << 20), 0);
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        use std::os::unix::fs::MetadataExt;
        assert!(std::fs::metadata(&path).unwrap().blocks() * 512 < 1 << 20);
    }

    #[test]
    fn a_name_taken_meanwhile_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump.yaml");
        let mut out = TextOutput::create(&path, false, &[]).unwrap();
        out.write_all(b"mine").unwrap();
        std::fs::write(&path, b"theirs").unwrap();
        assert!(out.commit().is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"theirs");
    }
}
