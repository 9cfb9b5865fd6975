//! The marker an unfinished output carries in its first sector: written
//! before anything else and replaced by the store's real header as the last
//! write, so a job cut short (ENOSPC, `kill -9`, a crash) never leaves
//! something a checker or the kernel takes for a store.
//!
//! Layout (little-endian, sector 0, the rest of the sector zero):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `CoWp` ([`MARKER_MAGIC`]) |
//! | 4 | 4 | version, 1 |
//! | 8 | 4 | state: 1 being written, 2 in repair, 3 being merged |
//! | 12 | 4 | in repair, being merged: the magic the store had before |
//! | 16 | 8 | in repair: the backup's size in bytes |
//! | 24 | 8 | in repair: the backup's fingerprint ([`fingerprint`]) |
//! | 32 | 2 | in repair: length of the backup path that follows |
//! | 34 | .. | in repair: the backup path as given (at most 478 bytes) |
//! | 16 | 4 | being merged: the snapshot id |
//! | 20 | 2 | being merged: length of the store kind's merge state that follows |
//! | 22 | .. | being merged: that state (at most 490 bytes, its layout the kind's) |

use std::path::Path;

use crate::device::Device;
use crate::error::{Error, Result};

/// The magic of an unfinished output, `CoWp` read as a little-endian u32:
/// neither a store magic nor 0 (which the kernel would format).
pub const MARKER_MAGIC: u32 = u32::from_le_bytes(*b"CoWp");

/// Bytes of the marker: one sector.
pub const MARKER_BYTES: usize = 512;

const VERSION: u32 = 1;
const STATE_WRITING: u32 = 1;
const STATE_IN_REPAIR: u32 = 2;
const STATE_MERGING: u32 = 3;
const PATH_AT: usize = 34;
const MERGE_STATE_AT: usize = 22;

/// Bytes of the backup hashed at each end by [`fingerprint`].
const FINGERPRINT_SPAN: u64 = 1 << 20;

/// What an unfinished output was in the middle of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// A new output being written (repair, migration, restore, format).
    Writing,
    /// A store being rebuilt in place by `cowrepair --in-place` from a backup.
    InRepair(InRepair),
    /// A store whose snapshot is being merged into its origin by
    /// `cowmigrate --merge`.
    Merging(Merging),
}

/// An offline merge in progress, as recorded on the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merging {
    /// The magic the store had before the merge began.
    pub original_magic: u32,
    /// The snapshot being merged.
    pub snapshot: u32,
    /// What the store kind needs to finish the merge (its own layout).
    pub state: Vec<u8>,
}

/// The backup an in-place repair reads from, as recorded on the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InRepair {
    /// The magic the input had before the repair began.
    pub original_magic: u32,
    /// The backup's size in bytes.
    pub backup_bytes: u64,
    /// The backup's [`fingerprint`].
    pub backup_fingerprint: u64,
    /// The backup's path, as it was given.
    pub backup_path: String,
}

impl InRepair {
    /// The record of `backup`, a verified copy of an input whose magic was
    /// `original_magic`, given on the command line as `backup_path`.
    pub fn of_backup(backup: &Device, original_magic: u32, backup_path: &str) -> Result<Self> {
        Ok(InRepair {
            original_magic,
            backup_bytes: backup.size_bytes(),
            backup_fingerprint: fingerprint(backup)?,
            backup_path: backup_path.to_string(),
        })
    }

    /// Fails unless `backup` has the size and fingerprint recorded here, naming
    /// `input` (the store in repair).
    pub fn verify(&self, backup: &Device, input: &Path) -> Result<()> {
        let matches = backup.size_bytes() == self.backup_bytes
            && fingerprint(backup)? == self.backup_fingerprint;
        if matches {
            return Ok(());
        }
        Err(Error::Invalid(format!(
            "{}: is not the backup the interrupted repair of {} was made from ({}, {} bytes); give that backup to finish the repair",
            backup.path().display(),
            input.display(),
            self.backup_path,
            self.backup_bytes
        )))
    }
}

impl Marker {
    /// Encodes the marker as one sector.
    pub fn encode(&self) -> [u8; MARKER_BYTES] {
        let mut sector = [0u8; MARKER_BYTES];
        sector[0..4].copy_from_slice(&MARKER_MAGIC.to_le_bytes());
        sector[4..8].copy_from_slice(&VERSION.to_le_bytes());
        match self {
            Marker::Writing => sector[8..12].copy_from_slice(&STATE_WRITING.to_le_bytes()),
            Marker::InRepair(repair) => {
                sector[8..12].copy_from_slice(&STATE_IN_REPAIR.to_le_bytes());
                sector[12..16].copy_from_slice(&repair.original_magic.to_le_bytes());
                sector[16..24].copy_from_slice(&repair.backup_bytes.to_le_bytes());
                sector[24..32].copy_from_slice(&repair.backup_fingerprint.to_le_bytes());
                let path = repair.backup_path.as_bytes();
                let len = path.len().min(MARKER_BYTES - PATH_AT);
                sector[32..34].copy_from_slice(&(len as u16).to_le_bytes());
                sector[PATH_AT..PATH_AT + len].copy_from_slice(&path[..len]);
            }
            Marker::Merging(merging) => {
                sector[8..12].copy_from_slice(&STATE_MERGING.to_le_bytes());
                sector[12..16].copy_from_slice(&merging.original_magic.to_le_bytes());
                sector[16..20].copy_from_slice(&merging.snapshot.to_le_bytes());
                let len = merging.state.len().min(MARKER_BYTES - MERGE_STATE_AT);
                sector[20..22].copy_from_slice(&(len as u16).to_le_bytes());
                sector[MERGE_STATE_AT..MERGE_STATE_AT + len].copy_from_slice(&merging.state[..len]);
            }
        }
        sector
    }

    /// Decodes a marker from the first bytes of a device; `None` when they
    /// hold no marker.
    pub fn decode(bytes: &[u8]) -> Option<Marker> {
        let field = |at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
        };
        let wide = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
        };
        if field(0)? != MARKER_MAGIC {
            return None;
        }
        match field(8) {
            Some(STATE_IN_REPAIR) => {
                let len = u16::from_le_bytes(bytes.get(32..34)?.try_into().ok()?) as usize;
                let path = bytes.get(PATH_AT..PATH_AT + len.min(MARKER_BYTES - PATH_AT))?;
                Some(Marker::InRepair(InRepair {
                    original_magic: field(12)?,
                    backup_bytes: wide(16)?,
                    backup_fingerprint: wide(24)?,
                    backup_path: String::from_utf8_lossy(path).into_owned(),
                }))
            }
            Some(STATE_MERGING) => {
                let len = u16::from_le_bytes(bytes.get(20..22)?.try_into().ok()?) as usize;
                let end = MERGE_STATE_AT + len.min(MARKER_BYTES - MERGE_STATE_AT);
                Some(Marker::Merging(Merging {
                    original_magic: field(12)?,
                    snapshot: field(16)?,
                    state: bytes.get(MERGE_STATE_AT..end)?.to_vec(),
                }))
            }
            _ => Some(Marker::Writing),
        }
    }

    /// Reads the marker at the start of `device`, if there is one.
    pub fn read(device: &Device) -> Result<Option<Marker>> {
        let len = (MARKER_BYTES as u64).min(device.size_bytes()) as usize;
        let mut bytes = vec![0u8; len];
        device.read_at(&mut bytes, 0, || "the first sector".to_string())?;
        Ok(Marker::decode(&bytes))
    }

    /// Writes the marker over the first sector of `device` and flushes it, so
    /// that it is on disk before anything else the job writes.
    pub fn write(&self, device: &Device) -> Result<()> {
        device.write_at(&self.encode(), 0)?;
        device.sync()
    }

    /// One sentence saying what the marker means, for a checker or a refusal.
    pub fn describe(&self) -> String {
        match self {
            Marker::Writing => "an incomplete output: a cowtools job writing it was cut short (killed, out of space or failed) before its last write; it holds no usable store".to_string(),
            Marker::InRepair(repair) => format!(
                "a store in repair: an in-place cowrepair from the backup {} ({} bytes) was interrupted; the kernel refuses it until `cowrepair --in-place --backup {}` is run again to finish the repair",
                repair.backup_path, repair.backup_bytes, repair.backup_path
            ),
            Marker::Merging(merging) => format!(
                "a store being merged into its origin: `cowmigrate --merge --snapshot {}` was interrupted; the kernel refuses the store until the same command is run again to finish the merge",
                merging.snapshot
            ),
        }
    }
}

/// A fingerprint of a backup: FNV-1a over its size and its first and last
/// MiB. A resumed in-place repair refuses a backup whose fingerprint differs
/// from the one recorded on the input.
pub fn fingerprint(device: &Device) -> Result<u64> {
    let size = device.size_bytes();
    let mut hash = fnv1a(0xcbf2_9ce4_8422_2325, &size.to_le_bytes());
    let head = size.min(FINGERPRINT_SPAN);
    let tail_start = size.saturating_sub(FINGERPRINT_SPAN).max(head);
    for (offset, len) in [(0, head), (tail_start, size - tail_start)] {
        let mut bytes = vec![0u8; len as usize];
        device.read_at(&mut bytes, offset, || format!("{len} bytes at {offset}"))?;
        hash = fnv1a(hash, &bytes);
    }
    Ok(hash)
}

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        let repair = Marker::InRepair(InRepair {
            original_magic: 0x7041_6e53,
            backup_bytes: 1 << 30,
            backup_fingerprint: 0xdead_beef,
            backup_path: "/srv/cow.bak".to_string(),
        });
        let merging = Marker::Merging(Merging {
            original_magic: 0x5537_8008,
            snapshot: 3,
            state: (0..56).collect(),
        });
        for marker in [Marker::Writing, repair, merging] {
            assert_eq!(Marker::decode(&marker.encode()), Some(marker));
        }
        assert_eq!(Marker::decode(&[0u8; 512]), None);
        assert_eq!(Marker::decode(b"SnAp"), None);
    }

    #[test]
    fn fingerprint_sees_both_ends_and_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let device = Device::create_or_extend(dir.path().join("b.img"), 4 << 20).unwrap();
        let empty = fingerprint(&device).unwrap();
        device.write_at(&[1], (4 << 20) - 1).unwrap();
        let tail = fingerprint(&device).unwrap();
        device.write_at(&[1], 0).unwrap();
        let head = fingerprint(&device).unwrap();
        assert!(empty != tail && tail != head && empty != head);
    }
}
