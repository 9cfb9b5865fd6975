//! A [`BlockDev`] in memory: tests run the engine on it without files, and a
//! crash image ([`crate::crashdev`]) is opened as one.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use crate::blockdev::BlockDev;
use crate::error::{Error, Result};

/// A device of fixed size held in memory; `sync` has nothing to do.
#[derive(Debug)]
pub struct MemDev {
    label: PathBuf,
    bytes: RwLock<Vec<u8>>,
}

impl MemDev {
    /// A zeroed device of `size` bytes, named `label` in errors.
    pub fn new(label: impl Into<PathBuf>, size: u64) -> Self {
        MemDev::from_bytes(label, vec![0; size as usize])
    }

    /// A device holding `bytes`, named `label` in errors.
    pub fn from_bytes(label: impl Into<PathBuf>, bytes: Vec<u8>) -> Self {
        MemDev {
            label: label.into(),
            bytes: RwLock::new(bytes),
        }
    }

    /// A copy of the whole device.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn past_end(&self, offset: u64, len: usize) -> bool {
        offset
            .checked_add(len as u64)
            .is_none_or(|end| end > self.size())
    }
}

impl BlockDev for MemDev {
    fn path(&self) -> &Path {
        &self.label
    }

    fn size(&self) -> u64 {
        self.bytes.read().unwrap_or_else(|e| e.into_inner()).len() as u64
    }

    fn read_at(&self, buf: &mut [u8], offset: u64, what: &dyn Fn() -> String) -> Result<()> {
        if self.past_end(offset, buf.len()) {
            return Err(Error::Truncated {
                path: self.label.clone(),
                offset,
                len: buf.len(),
                size: self.size(),
                what: what(),
            });
        }
        let bytes = self.bytes.read().unwrap_or_else(|e| e.into_inner());
        let start = offset as usize;
        buf.copy_from_slice(&bytes[start..start + buf.len()]);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        if self.past_end(offset, buf.len()) {
            return Err(Error::Write {
                path: self.label.clone(),
                offset,
                len: buf.len(),
                source: io::Error::other("the write would pass the end of the device"),
            });
        }
        let mut bytes = self.bytes.write().unwrap_or_else(|e| e.into_inner());
        let start = offset as usize;
        bytes[start..start + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_read_back_and_the_size_is_fixed() {
        let dev = MemDev::new("mem:cow", 4096);
        assert_eq!(dev.size(), 4096);
        dev.write_chunk(2, &[5u8; 1024]).unwrap();
        dev.write_at(&[9], 0).unwrap();
        dev.sync().unwrap();
        let mut buf = [0u8; 1024];
        dev.read_chunk(2, &mut buf).unwrap();
        assert_eq!(buf, [5u8; 1024]);
        let bytes = dev.to_bytes();
        assert_eq!(bytes.len(), 4096);
        assert_eq!(bytes[0], 9);
        assert_eq!(&bytes[1..2048], &[0u8; 2047][..]);
        assert_eq!(
            MemDev::from_bytes("mem:copy", bytes).to_bytes(),
            dev.to_bytes()
        );
    }

    #[test]
    fn reads_and_writes_past_the_end_name_the_device_and_the_place() {
        let dev = MemDev::new("mem:cow", 1000);
        let mut buf = [0u8; 512];
        let err = dev.read_chunk(1, &mut buf).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Truncated { .. }), "{text}");
        for part in ["mem:cow", "offset 512", "chunk 1", "1000 bytes"] {
            assert!(text.contains(part), "{part} missing: {text}");
        }
        let err = dev.write_at(&[1; 2], u64::MAX).unwrap_err();
        assert!(matches!(err, Error::Write { .. }), "{err}");
        assert!(err.to_string().contains("pass the end"), "{err}");
        assert_eq!(dev.to_bytes(), vec![0u8; 1000]);
    }
}
