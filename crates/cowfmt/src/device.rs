//! Image files and block devices, read and written by byte range or by chunk.
//!
//! A [`Device`] knows its path and size, so every error it returns names the
//! file, the offset and what was expected. Block devices opened for writing are
//! opened with `O_EXCL`, so a mounted or otherwise claimed device is refused.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::blockdev::{chunk_offset, write_zeros};
use crate::error::{Error, Result};
use crate::overlay::Overlay;

/// How a device is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads only.
    ReadOnly,
    /// Reads and writes; block devices are claimed exclusively.
    ReadWrite,
}

/// What kind of object backs a [`Device`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// A regular file (an image).
    File,
    /// A block device; its size comes from `BLKGETSIZE64`.
    BlockDevice,
}

/// An open image file or block device of a fixed, known size.
#[derive(Debug)]
pub struct Device {
    file: File,
    path: PathBuf,
    size: u64,
    backing: Backing,
    access: Access,
    overlay: Option<Box<Overlay>>,
}

const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;

impl Device {
    /// Opens an existing image file or block device.
    pub fn open(path: impl AsRef<Path>, access: Access) -> Result<Self> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let file_type = meta.file_type();
        let backing = if file_type.is_file() {
            Backing::File
        } else if file_type.is_block_device() {
            Backing::BlockDevice
        } else {
            let what = if file_type.is_dir() {
                "a directory"
            } else if file_type.is_char_device() {
                "a character device"
            } else if file_type.is_fifo() {
                "a FIFO"
            } else if file_type.is_socket() {
                "a socket"
            } else {
                "not a regular file"
            };
            return Err(Error::NotADevice {
                path: path.to_path_buf(),
                what,
            });
        };
        let mut options = OpenOptions::new();
        options.read(true);
        if access == Access::ReadWrite {
            options.write(true);
            if backing == Backing::BlockDevice {
                options.custom_flags(libc::O_EXCL);
            }
        }
        let file = options.open(path).map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let size = match backing {
            Backing::File => meta.len(),
            Backing::BlockDevice => block_device_size(&file).map_err(|source| Error::Io {
                path: path.to_path_buf(),
                action: "cannot read the block device size (BLKGETSIZE64)",
                source,
            })?,
        };
        Ok(Device {
            file,
            path: path.to_path_buf(),
            size,
            backing,
            access,
            overlay: None,
        })
    }

    /// Creates an image file of `size` bytes, or extends an existing one to that
    /// size (sparse: nothing is written). An existing larger file is not shrunk;
    /// a block device is opened as it is and must be at least `size` bytes.
    pub fn create_or_extend(path: impl AsRef<Path>, size: u64) -> Result<Self> {
        let path = path.as_ref();
        match std::fs::metadata(path) {
            Ok(meta) if meta.file_type().is_block_device() => {
                let device = Device::open(path, Access::ReadWrite)?;
                if device.size < size {
                    return Err(Error::Invalid(format!(
                        "{}: the block device has {} bytes, fewer than the {} asked for",
                        path.display(),
                        device.size,
                        size
                    )));
                }
                return Ok(device);
            }
            Ok(meta) if meta.is_dir() => {
                return Err(Error::NotADevice {
                    path: path.to_path_buf(),
                    what: "a directory",
                })
            }
            _ => {}
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| Error::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let current = file_len(&file, path)?;
        if current < size {
            file.set_len(size).map_err(|source| Error::Io {
                path: path.to_path_buf(),
                action: "cannot extend the image file",
                source,
            })?;
        }
        Ok(Device {
            file,
            path: path.to_path_buf(),
            size: current.max(size),
            backing: Backing::File,
            access: Access::ReadWrite,
            overlay: None,
        })
    }

    /// Wraps an image file already open for reading and writing, as the
    /// output guard opens a new or claimed output file.
    pub(crate) fn from_open_file(file: File, path: &Path) -> Result<Self> {
        let size = file_len(&file, path)?;
        Ok(Device {
            file,
            path: path.to_path_buf(),
            size,
            backing: Backing::File,
            access: Access::ReadWrite,
            overlay: None,
        })
    }

    /// The path the device was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size
    }

    /// The size in 512-byte sectors (rounded down).
    pub fn size_sectors(&self) -> u64 {
        self.size / crate::SECTOR_BYTES
    }

    /// Whether this is an image file or a block device.
    pub fn backing(&self) -> Backing {
        self.backing
    }

    /// How the device was opened.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The device with `overlay`'s chunks read in place of its own bytes;
    /// writes to it are refused from then on (the overlay would hide them).
    pub fn with_overlay(mut self, overlay: Overlay) -> Self {
        self.overlay = Some(Box::new(overlay));
        self
    }

    /// Whether reads go through an overlay.
    pub fn has_overlay(&self) -> bool {
        self.overlay.is_some()
    }

    /// Reads exactly `buf.len()` bytes at `offset`. A read past the end fails with
    /// [`Error::Truncated`], naming `what` was being read.
    pub fn read_at(
        &self,
        buf: &mut [u8],
        offset: u64,
        what: impl FnOnce() -> String,
    ) -> Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.size) {
            return Err(Error::Truncated {
                path: self.path.clone(),
                offset,
                len: buf.len(),
                size: self.size,
                what: what(),
            });
        }
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => {
                    return Err(Error::Truncated {
                        path: self.path.clone(),
                        offset,
                        len: buf.len(),
                        size: offset + done as u64,
                        what: what(),
                    })
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Read {
                        path: self.path.clone(),
                        offset,
                        len: buf.len(),
                        source,
                    })
                }
            }
        }
        if let Some(overlay) = &self.overlay {
            overlay.apply(buf, offset);
        }
        Ok(())
    }

    /// Writes all of `buf` at `offset`; writing past the end of a block device or
    /// of a read-only device is refused.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        let fits = offset
            .checked_add(buf.len() as u64)
            .is_some_and(|end| end <= self.size);
        if self.access != Access::ReadWrite || self.overlay.is_some() || !fits {
            let why = if self.overlay.is_some() {
                "the device is read through an overlay"
            } else if fits {
                "the device is open read-only"
            } else {
                "the write would pass the end of the device"
            };
            return Err(Error::Write {
                path: self.path.clone(),
                offset,
                len: buf.len(),
                source: io::Error::other(why),
            });
        }
        self.file
            .write_all_at(buf, offset)
            .map_err(|source| Error::Write {
                path: self.path.clone(),
                offset,
                len: buf.len(),
                source,
            })
    }

    /// Reads chunk `chunk` of `buf.len()` bytes (the chunk size).
    pub fn read_chunk(&self, chunk: u64, buf: &mut [u8]) -> Result<()> {
        let offset = chunk_offset(chunk, buf.len());
        self.read_at(buf, offset, || format!("chunk {chunk}"))
    }

    /// Writes chunk `chunk` of `buf.len()` bytes (the chunk size).
    pub fn write_chunk(&self, chunk: u64, buf: &[u8]) -> Result<()> {
        self.write_at(buf, chunk_offset(chunk, buf.len()))
    }

    /// Tells the kernel that the given byte range will be read soon. Only a hint:
    /// failures are ignored.
    pub fn will_need(&self, offset: u64, len: u64) {
        if offset >= self.size {
            return;
        }
        let len = len.min(self.size - offset);
        // SAFETY: posix_fadvise only reads its integer arguments; the descriptor is
        // owned by `self.file` and open for the duration of the call.
        unsafe {
            libc::posix_fadvise(
                self.file.as_raw_fd(),
                offset as libc::off_t,
                len as libc::off_t,
                libc::POSIX_FADV_WILLNEED,
            );
        }
    }

    /// Makes `len` bytes at `offset` read as zeros: image files get a hole punched
    /// (no space used), block devices and file systems without hole punching get
    /// zeros written.
    pub fn zero_range(&self, offset: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        if self.backing == Backing::File
            && self.access == Access::ReadWrite
            && self.overlay.is_none()
        {
            // SAFETY: fallocate only reads its integer arguments; the descriptor is
            // owned by `self.file` and open for the duration of the call.
            let rc = unsafe {
                libc::fallocate(
                    self.file.as_raw_fd(),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    offset as libc::off_t,
                    len as libc::off_t,
                )
            };
            if rc == 0 {
                return Ok(());
            }
        }
        write_zeros(self, offset, len)
    }

    /// The parts of `offset..offset+len` that may hold data: for an image file
    /// the ranges that are not holes (`SEEK_DATA`/`SEEK_HOLE`), for a block
    /// device (or a file system that cannot tell) the whole range. Copies of
    /// sparse images read and write only these (see [`crate::sparse`]).
    pub fn data_ranges(&self, offset: u64, len: u64) -> Vec<(u64, u64)> {
        let ranges = crate::sparse::Extents::new(self).data_ranges(offset, len);
        match &self.overlay {
            Some(overlay) => overlay.merge_ranges(ranges, offset, len),
            None => ranges,
        }
    }

    /// The open file, for the queries of [`crate::sparse`].
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Flushes written data to stable storage.
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|source| Error::Io {
            path: self.path.clone(),
            action: "cannot flush to stable storage",
            source,
        })
    }
}

fn file_len(file: &File, path: &Path) -> Result<u64> {
    Ok(file
        .metadata()
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            action: "cannot stat",
            source,
        })?
        .len())
}

fn block_device_size(file: &File) -> io::Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points at a
    // live local of that type.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64 as _, &mut size as *mut u64) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_read_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small.img");
        std::fs::write(&path, [0u8; 100]).unwrap();
        let dev = Device::open(&path, Access::ReadOnly).unwrap();
        let mut buf = [0u8; 512];
        let err = dev.read_chunk(0, &mut buf).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("small.img"), "{text}");
        assert!(text.contains("truncated"), "{text}");
        assert!(text.contains("chunk 0"), "{text}");
        assert!(text.contains("100 bytes"), "{text}");
    }

    #[test]
    fn directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = Device::open(dir.path(), Access::ReadOnly).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn missing_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = Device::open(dir.path().join("nope"), Access::ReadOnly).unwrap_err();
        assert!(err.to_string().contains("cannot open"), "{err}");
    }

    #[test]
    fn create_extends_sparse_and_never_shrinks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cow.img");
        let dev = Device::create_or_extend(&path, 1 << 20).unwrap();
        assert_eq!(dev.size_bytes(), 1 << 20);
        dev.write_chunk(3, &[7u8; 4096]).unwrap();
        drop(dev);
        let dev = Device::create_or_extend(&path, 4096).unwrap();
        assert_eq!(dev.size_bytes(), 1 << 20);
        let mut buf = [0u8; 4096];
        dev.read_chunk(3, &mut buf).unwrap();
        assert_eq!(buf, [7u8; 4096]);
    }

    #[test]
    fn writes_past_the_end_and_to_read_only_devices_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cow.img");
        Device::create_or_extend(&path, 8192).unwrap();
        let dev = Device::open(&path, Access::ReadWrite).unwrap();
        assert!(dev.write_chunk(2, &[0u8; 4096]).is_err());
        let ro = Device::open(&path, Access::ReadOnly).unwrap();
        assert!(ro.write_chunk(0, &[0u8; 4096]).is_err());
    }

    #[test]
    fn data_ranges_skip_holes_and_zero_range_makes_them() {
        let dir = tempfile::tempdir().unwrap();
        let device = Device::create_or_extend(dir.path().join("sparse.img"), 64 << 20).unwrap();
        assert!(device.data_ranges(0, 64 << 20).is_empty());
        device.write_at(&[1u8; 4096], 8 << 20).unwrap();
        let ranges = device.data_ranges(0, 64 << 20);
        assert_eq!(ranges.len(), 1);
        let (start, end) = ranges[0];
        assert!(start <= 8 << 20 && end >= (8 << 20) + 4096 && end - start <= 1 << 20);
        assert_eq!(device.data_ranges(9 << 20, 1 << 20), vec![]);
        device.zero_range(8 << 20, 4096).unwrap();
        let mut buf = [9u8; 4096];
        device.read_at(&mut buf, 8 << 20, String::new).unwrap();
        assert_eq!(buf, [0u8; 4096]);
    }
}
