//! The I/O trait the shared-store engine runs over: a device of a fixed size,
//! read and written by byte range through `&self`, with a sync that is a
//! barrier. [`Device`] (image files and block devices) implements it; so do
//! [`MemDev`](crate::memdev::MemDev), a device in memory for tests, and
//! [`CrashDev`](crate::crashdev::CrashDev), which records every write and sync
//! and builds the images a power cut could leave.

use std::fmt::Debug;
use std::path::Path;

use crate::device::Device;
use crate::error::Result;

/// A device of fixed size read and written through `&self`, from any thread.
/// Errors are [`crate::Error`]s naming the device ([`BlockDev::path`]), the
/// offset and what was expected.
pub trait BlockDev: Debug + Send + Sync {
    /// The name errors give the device: its path, or a label for one in memory.
    fn path(&self) -> &Path;

    /// The size in bytes.
    fn size(&self) -> u64;

    /// Reads exactly `buf.len()` bytes at `offset`. A read past the end fails
    /// with [`crate::Error::Truncated`], naming `what` was being read.
    fn read_at(&self, buf: &mut [u8], offset: u64, what: &dyn Fn() -> String) -> Result<()>;

    /// Writes all of `buf` at `offset`; a write past the end fails with
    /// [`crate::Error::Write`]. The data may sit in a volatile cache until the
    /// next [`BlockDev::sync`].
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()>;

    /// Makes every write issued before it durable; a barrier: no write issued
    /// after it lands before it.
    fn sync(&self) -> Result<()>;

    /// Reads chunk `chunk` of `buf.len()` bytes (the chunk size).
    fn read_chunk(&self, chunk: u64, buf: &mut [u8]) -> Result<()> {
        self.read_at(buf, chunk_offset(chunk, buf.len()), &|| {
            format!("chunk {chunk}")
        })
    }

    /// Writes chunk `chunk` of `buf.len()` bytes (the chunk size).
    fn write_chunk(&self, chunk: u64, buf: &[u8]) -> Result<()> {
        self.write_at(buf, chunk_offset(chunk, buf.len()))
    }

    /// Makes `len` bytes at `offset` read as zeros (written as zeros unless the
    /// device has a cheaper way).
    fn zero_range(&self, offset: u64, len: u64) -> Result<()> {
        write_zeros(self, offset, len)
    }

    /// Tells the device that `len` bytes at `offset` will be read soon. Only
    /// a hint: nothing by default.
    fn will_need(&self, _offset: u64, _len: u64) {}
}

/// Writes `len` zero bytes at `offset`, at most 1 MiB per write.
pub(crate) fn write_zeros<D: BlockDev + ?Sized>(device: &D, offset: u64, len: u64) -> Result<()> {
    let zeros = vec![0u8; len.min(1 << 20) as usize];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(zeros.len() as u64) as usize;
        device.write_at(&zeros[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

/// The byte offset of chunk `chunk` of `chunk_bytes`, saturating (a read there
/// then fails as past the end).
pub(crate) fn chunk_offset(chunk: u64, chunk_bytes: usize) -> u64 {
    chunk.saturating_mul(chunk_bytes as u64)
}

/// A shared device: the thread-safe engine keeps one handle for metadata and
/// one for data I/O outside its lock.
impl<T: BlockDev + ?Sized> BlockDev for std::sync::Arc<T> {
    fn path(&self) -> &Path {
        (**self).path()
    }

    fn size(&self) -> u64 {
        (**self).size()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64, what: &dyn Fn() -> String) -> Result<()> {
        (**self).read_at(buf, offset, what)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        (**self).write_at(buf, offset)
    }

    fn sync(&self) -> Result<()> {
        (**self).sync()
    }

    fn zero_range(&self, offset: u64, len: u64) -> Result<()> {
        (**self).zero_range(offset, len)
    }

    fn will_need(&self, offset: u64, len: u64) {
        (**self).will_need(offset, len)
    }
}

impl BlockDev for Device {
    fn path(&self) -> &Path {
        Device::path(self)
    }

    fn size(&self) -> u64 {
        self.size_bytes()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64, what: &dyn Fn() -> String) -> Result<()> {
        Device::read_at(self, buf, offset, what)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        Device::write_at(self, buf, offset)
    }

    fn sync(&self) -> Result<()> {
        Device::sync(self)
    }

    fn zero_range(&self, offset: u64, len: u64) -> Result<()> {
        Device::zero_range(self, offset, len)
    }

    fn will_need(&self, offset: u64, len: u64) {
        Device::will_need(self, offset, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Access;
    use crate::error::Error;

    /// Drives any device through the trait only.
    fn round_trip(dev: &dyn BlockDev) {
        dev.write_chunk(3, &[7u8; 512]).unwrap();
        dev.write_at(&[1, 2, 3], 10).unwrap();
        dev.sync().unwrap();
        let mut chunk = [0u8; 512];
        dev.read_chunk(3, &mut chunk).unwrap();
        assert_eq!(chunk, [7u8; 512]);
        let mut three = [0u8; 3];
        dev.read_at(&mut three, 10, &String::new).unwrap();
        assert_eq!(three, [1, 2, 3]);
        dev.zero_range(3 * 512, 512).unwrap();
        dev.read_chunk(3, &mut chunk).unwrap();
        assert_eq!(chunk, [0u8; 512]);
    }

    #[test]
    fn a_device_works_through_the_trait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cow.img");
        Device::create_or_extend(&path, 8 * 512).unwrap();
        let dev = Device::open(&path, Access::ReadWrite).unwrap();
        round_trip(&dev);
        assert_eq!(BlockDev::size(&dev), 8 * 512);
        assert_eq!(BlockDev::path(&dev), path.as_path());
    }

    #[test]
    fn a_device_refuses_through_the_trait_what_it_refuses_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cow.img");
        Device::create_or_extend(&path, 4 * 512).unwrap();
        let dev: &dyn BlockDev = &Device::open(&path, Access::ReadOnly).unwrap();
        let mut chunk = [0u8; 512];
        let err = dev.read_chunk(4, &mut chunk).unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "{err}");
        assert!(err.to_string().contains("chunk 4"), "{err}");
        let err = dev.write_chunk(0, &chunk).unwrap_err();
        assert!(err.to_string().contains("read-only"), "{err}");
    }
}
