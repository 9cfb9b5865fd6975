//! Holes of sparse image files: where a device holds data ([`Extents`]) and
//! copies of byte ranges that keep the holes ([`SparseCopier`]). Kind-neutral:
//! every copy of data chunks (repair, migration, backup) goes through here.
//!
//! An image file answers `SEEK_DATA`/`SEEK_HOLE`; a block device (or a file
//! system that cannot tell) is all data. A hole of the input is skipped only
//! when the output is known to read back zeros (a new or truncated image);
//! otherwise it is zeroed on the output.

use std::io;
use std::os::unix::io::AsRawFd;

use crate::device::{Backing, Device};
use crate::error::Result;

/// A stretch of a device that either holds data or is a hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Whether the stretch may hold data (false: a hole, reads as zeros).
    pub data: bool,
}

/// The extents of one device, asked of the file system only when a query
/// leaves the last extent seen: ascending queries cost a few system calls per
/// extent, not per chunk, and no memory.
#[derive(Debug)]
pub struct Extents<'a> {
    device: &'a Device,
    known: Option<Extent>,
}

impl<'a> Extents<'a> {
    /// The extents of `device`.
    pub fn new(device: &'a Device) -> Self {
        Extents {
            device,
            known: None,
        }
    }

    /// The extent holding byte `offset` (an empty data extent at or past the end).
    pub fn at(&mut self, offset: u64) -> Extent {
        if let Some(known) = self.known {
            if known.start <= offset && offset < known.end {
                return known;
            }
        }
        let extent = self.probe(offset);
        self.known = Some(extent);
        extent
    }

    /// Whether all `len` bytes at `offset` lie in a hole.
    pub fn is_hole(&mut self, offset: u64, len: u64) -> bool {
        let extent = self.at(offset);
        !extent.data && offset.saturating_add(len) <= extent.end
    }

    /// The `[start, end)` ranges of `offset..offset+len` that may hold data.
    pub fn data_ranges(&mut self, offset: u64, len: u64) -> Vec<(u64, u64)> {
        let end = offset.saturating_add(len).min(self.device.size_bytes());
        let mut ranges = Vec::new();
        let mut at = offset;
        while at < end {
            let extent = self.at(at);
            let stop = extent.end.min(end);
            if extent.data {
                ranges.push((at, stop));
            }
            at = stop;
        }
        ranges
    }

    fn probe(&self, offset: u64) -> Extent {
        let size = self.device.size_bytes();
        let data_to_end = Extent {
            start: offset,
            end: size.max(offset),
            data: true,
        };
        if offset >= size || self.device.backing() != Backing::File {
            return data_to_end;
        }
        let fd = self.device.file().as_raw_fd();
        // SAFETY: lseek only reads its integer arguments on a descriptor owned
        // by the device; positioned I/O never uses the file position.
        let data = unsafe { libc::lseek(fd, offset as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            return if io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) {
                Extent {
                    start: offset,
                    end: size,
                    data: false,
                }
            } else {
                data_to_end
            };
        }
        let data = (data as u64).min(size);
        if data > offset {
            return Extent {
                start: offset,
                end: data,
                data: false,
            };
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, offset as libc::off_t, libc::SEEK_HOLE) };
        let end = if hole < 0 {
            size
        } else {
            (hole as u64).clamp(offset + 1, size)
        };
        Extent {
            start: offset,
            end,
            data: true,
        }
    }
}

/// Bytes copied at a time.
const COPY_BLOCK: usize = 1 << 20;

/// Copies byte ranges of `input` to the same offsets of `output`, keeping
/// holes: holes and all-zero blocks of the input are not written when the
/// output reads back zeros, and are zeroed (a hole punched where it can be)
/// when it may not.
#[derive(Debug)]
pub struct SparseCopier<'a> {
    input: &'a Device,
    extents: Extents<'a>,
    output: &'a Device,
    output_zeroed: bool,
    buffer: Vec<u8>,
    written: u64,
}

impl<'a> SparseCopier<'a> {
    /// A copier from `input` to `output`; `output_zeroed` says every byte of
    /// the output is known to read as zero.
    pub fn new(input: &'a Device, output: &'a Device, output_zeroed: bool) -> Self {
        SparseCopier {
            input,
            extents: Extents::new(input),
            output,
            output_zeroed,
            buffer: Vec::new(),
            written: 0,
        }
    }

    /// Copies the `len` bytes at `offset`; `progress` gets the bytes of this
    /// range done so far.
    pub fn copy(&mut self, offset: u64, len: u64, progress: &mut dyn FnMut(u64)) -> Result<()> {
        let end = offset.saturating_add(len);
        let mut at = offset;
        while at < end {
            let extent = self.extents.at(at);
            let stop = extent.end.clamp(at + 1, end);
            if extent.data {
                self.copy_data(at, stop, progress, offset)?;
            } else if !self.output_zeroed {
                self.output.zero_range(at, stop - at)?;
            }
            at = stop;
            progress(at - offset);
        }
        Ok(())
    }

    /// Bytes written to the output so far (holes and skipped zeros excluded).
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    fn copy_data(
        &mut self,
        from: u64,
        to: u64,
        progress: &mut dyn FnMut(u64),
        origin: u64,
    ) -> Result<()> {
        if self.buffer.is_empty() {
            self.buffer = vec![0u8; COPY_BLOCK];
        }
        let mut at = from;
        while at < to {
            let len = (to - at).min(COPY_BLOCK as u64) as usize;
            let block = &mut self.buffer[..len];
            self.input
                .read_at(block, at, || format!("bytes {at}..{}", at + len as u64))?;
            if !(self.output_zeroed && is_zero(block)) {
                self.output.write_at(block, at)?;
                self.written += len as u64;
            }
            at += len as u64;
            progress(at - origin);
        }
        Ok(())
    }
}

/// Whether every byte of `bytes` is zero.
pub fn is_zero(bytes: &[u8]) -> bool {
    bytes
        .chunks(4096)
        .all(|block| block.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Access;

    const MIB: u64 = 1 << 20;

    fn allocated_bytes(path: &std::path::Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).unwrap().blocks() * 512
    }

    #[test]
    fn extents_tell_holes_from_data() {
        let dir = tempfile::tempdir().unwrap();
        let device = Device::create_or_extend(dir.path().join("a.img"), 64 * MIB).unwrap();
        device.write_at(&[1u8; 4096], 8 * MIB).unwrap();
        let mut extents = Extents::new(&device);
        assert!(extents.is_hole(0, 4096));
        assert!(extents.is_hole(MIB, 7 * MIB));
        assert!(!extents.is_hole(8 * MIB, 4096));
        assert!(!extents.is_hole(8 * MIB - 4096, 8192));
        assert!(extents.is_hole(20 * MIB, 44 * MIB));
        let ranges = extents.data_ranges(0, 64 * MIB);
        assert_eq!(ranges.len(), 1);
        assert!(ranges[0].0 <= 8 * MIB && ranges[0].1 >= 8 * MIB + 4096);
    }

    #[test]
    fn a_copy_to_a_new_image_keeps_holes_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let input = Device::create_or_extend(dir.path().join("in.img"), 64 * MIB).unwrap();
        input.write_at(&[7u8; 8192], 3 * MIB).unwrap();
        input.write_at(&[0u8; 2 * MIB as usize], 40 * MIB).unwrap();
        input.write_at(&[9u8; 512], 63 * MIB).unwrap();
        let out_path = dir.path().join("out.img");
        let output = Device::create_or_extend(&out_path, 64 * MIB).unwrap();
        let mut copier = SparseCopier::new(&input, &output, true);
        let mut last = 0;
        copier.copy(0, 64 * MIB, &mut |done| last = done).unwrap();
        assert_eq!(last, 64 * MIB);
        assert!(
            copier.bytes_written() <= 2 * MIB,
            "{}",
            copier.bytes_written()
        );
        output.sync().unwrap();
        assert!(allocated_bytes(&out_path) <= 2 * MIB);
        assert_eq!(
            std::fs::read(dir.path().join("in.img")).unwrap(),
            std::fs::read(&out_path).unwrap()
        );
    }

    #[test]
    fn a_copy_to_a_used_target_zeroes_the_holes() {
        let dir = tempfile::tempdir().unwrap();
        let input = Device::create_or_extend(dir.path().join("in.img"), 4 * MIB).unwrap();
        input.write_at(&[7u8; 4096], MIB).unwrap();
        let out_path = dir.path().join("out.img");
        std::fs::write(&out_path, vec![0xeeu8; 4 * MIB as usize]).unwrap();
        let output = Device::open(&out_path, Access::ReadWrite).unwrap();
        SparseCopier::new(&input, &output, false)
            .copy(0, 4 * MIB, &mut |_| {})
            .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("in.img")).unwrap(),
            std::fs::read(&out_path).unwrap()
        );
    }

    #[test]
    fn is_zero_looks_at_every_byte() {
        let mut bytes = vec![0u8; 4099];
        assert!(is_zero(&bytes));
        for at in [0, 1, 2048, 4098] {
            bytes[at] = 1;
            assert!(!is_zero(&bytes), "{at}");
            bytes[at] = 0;
        }
    }
}
