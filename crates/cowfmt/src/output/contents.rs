//! The one decision "does this target hold data?", made before anything is
//! written to a target that exists: every tool that writes asks it here.

use crate::device::Device;
use crate::error::Result;
use crate::output::marker::Marker;
use crate::probe::{own_kinds, probe};

/// What a target holds, said two ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    /// As the reason for a refusal: `already holds a shared store`, `chunk 0
    /// is not all zero (first non-zero byte at offset 1000)`.
    pub refusal: String,
    /// As what an overwrite destroys: `a shared store`, `data (first non-zero
    /// byte at offset 1000)`.
    pub what: String,
    /// Whether all that was found is non-zero bytes (no store, marker or
    /// signature).
    pub data_only: bool,
}

/// What `device` holds, in words (`already holds a persistent store (SnAp,
/// chunk size 8)`, `already holds an ext4 file system (superblock at byte
/// 1080)`, `chunk 0 is not all zero (first non-zero byte at offset 1000)`):
/// a store or unfinished output at its start, any signature [`probe`] finds
/// anywhere, or data in its first `span` bytes. `None` when there is none of
/// these and the target may be written without `--force`.
pub fn holds_data(device: &Device, span: u64) -> Result<Option<String>> {
    Ok(contents(device, span)?.map(|found| found.refusal))
}

/// What `device` holds, as [`holds_data`] finds it, said both as a refusal
/// and as what an overwrite destroys.
pub fn contents(device: &Device, span: u64) -> Result<Option<Contents>> {
    let len = span.min(device.size_bytes()) as usize;
    let mut bytes = vec![0u8; len];
    device.read_at(&mut bytes, 0, || format!("the first {len} bytes"))?;
    if let Some(marker) = Marker::decode(&bytes) {
        let what = marker.describe();
        return Ok(Some(Contents {
            refusal: format!("holds {what}"),
            what,
            data_only: false,
        }));
    }
    if let Some(what) = describe_store(&bytes) {
        return Ok(Some(Contents {
            refusal: format!("already holds {what}"),
            what,
            data_only: false,
        }));
    }
    let found = probe(device)?;
    if !found.signatures.is_empty() {
        let what = found.describe();
        return Ok(Some(Contents {
            refusal: format!("already holds {what}"),
            what,
            data_only: false,
        }));
    }
    Ok(bytes.iter().position(|&b| b != 0).map(|first| Contents {
        refusal: format!("chunk 0 is not all zero (first non-zero byte at offset {first})"),
        what: format!("data (first non-zero byte at offset {first})"),
        data_only: true,
    }))
}

/// The store the first bytes belong to, in the words of its signature
/// ([`own_kinds::recognise`], the one decoding of our headers).
fn describe_store(bytes: &[u8]) -> Option<String> {
    own_kinds::recognise(bytes)
        .filter(|signature| signature.is_cow_store())
        .map(|signature| signature.what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_hold_nothing_and_anything_else_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let device = Device::create_or_extend(dir.path().join("t.img"), 1 << 20).unwrap();
        assert_eq!(holds_data(&device, 4096).unwrap(), None);
        device.write_at(&[1], 5000).unwrap();
        assert_eq!(holds_data(&device, 4096).unwrap(), None);
        let found = holds_data(&device, 8192).unwrap().unwrap();
        assert!(found.contains("offset 5000"), "{found}");
        device
            .write_at(b"SnAp\x01\0\0\0\x01\0\0\0\x08\0\0\0", 0)
            .unwrap();
        let found = holds_data(&device, 4096).unwrap().unwrap();
        assert!(
            found.contains("persistent store (SnAp, chunk size 8)"),
            "{found}"
        );
        Marker::Writing.write(&device).unwrap();
        let found = holds_data(&device, 4096).unwrap().unwrap();
        assert!(found.contains("incomplete output"), "{found}");
    }
}
