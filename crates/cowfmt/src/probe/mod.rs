//! Signature probing: what a device already holds before anything writes over
//! it or reads it as a store.
//!
//! The foreign signatures (file systems, LVM, md RAID, LUKS, swap, partition
//! tables including a backup GPT at the end of the device...) come from
//! util-linux's libblkid, loaded at run time ([`libblkid`]), or, where that
//! library is missing, from `wipefs --no-act --json` ([`wipefs`]). The kinds of
//! this project and the device-mapper metadata libblkid does not know (dm-clone,
//! dm-thin, dm-cache, dm-era) are recognised by [`own_kinds`] on top.
//! docs/decisions.md, "Signature probing", says why.

pub mod libblkid;
pub mod own_kinds;
pub mod wipe;
pub mod wipefs;

use std::fmt;

use crate::device::Device;
use crate::error::Result;

pub use wipe::{wipe_old_snap_area, wipe_signatures};

/// Who recognised a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// libblkid's low-level probe.
    Libblkid,
    /// util-linux `wipefs --no-act --json`.
    Wipefs,
    /// This crate ([`own_kinds`]).
    Cowfmt,
}

/// Which tool scanned the device for foreign signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coverage {
    /// libblkid's probe ran over the whole device.
    Libblkid,
    /// `wipefs` ran over the whole device.
    Wipefs,
    /// Neither could run; only this crate's own kinds were looked for. The text
    /// says why the others could not run.
    OwnKindsOnly(String),
}

/// One signature found on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The type as libblkid spells it (`ext4`, `gpt`, `crypto_LUKS`,
    /// `LVM2_member`), or this crate's name for its own kinds (`snap`,
    /// `shared`, `dm-clone`...).
    pub name: String,
    /// What it is, in words: "an ext4 file system", "a GPT partition table".
    pub what: String,
    /// The structure whose magic was found ("superblock", "backup header"),
    /// empty when `what` already says it.
    pub place: String,
    /// Byte offset of the magic on the device.
    pub offset: u64,
    /// The label the signature carries, if any.
    pub label: Option<String>,
    /// Who recognised it.
    pub source: Source,
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)?;
        if let Some(label) = &self.label {
            write!(f, " labelled {label:?}")?;
        }
        if !self.place.is_empty() {
            write!(f, " ({} at byte {})", self.place, self.offset)?;
        }
        Ok(())
    }
}

/// Every signature found on a device, and how far the search went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The signatures, this crate's own first, then by offset.
    pub signatures: Vec<Signature>,
    /// Which tool looked for foreign signatures.
    pub coverage: Coverage,
}

impl Probe {
    /// The signatures in words, joined for one line ("an ext4 file system
    /// (superblock at byte 1080), a GPT partition table (header at byte 512)").
    /// Several magics of one signature are named together ("a GPT partition
    /// table (header at byte 512, backup header at byte 16776704)").
    pub fn describe(&self) -> String {
        let mut groups: Vec<(&Signature, Vec<&Signature>)> = Vec::new();
        for signature in &self.signatures {
            let same = |(first, _): &&mut (&Signature, Vec<&Signature>)| {
                first.name == signature.name
                    && first.what == signature.what
                    && first.label == signature.label
            };
            match groups.iter_mut().find(same) {
                Some((_, members)) => members.push(signature),
                None => groups.push((signature, vec![signature])),
            }
        }
        groups
            .into_iter()
            .map(|(first, members)| {
                let mut text = first.what.clone();
                if let Some(label) = &first.label {
                    text.push_str(&format!(" labelled {label:?}"));
                }
                let places: Vec<String> = members
                    .iter()
                    .filter(|s| !s.place.is_empty())
                    .map(|s| format!("{} at byte {}", s.place, s.offset))
                    .collect();
                if !places.is_empty() {
                    text.push_str(&format!(" ({})", places.join(", ")));
                }
                text
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a backend could not look for foreign signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{backend}: {reason}")]
pub struct Unavailable {
    /// The backend: `libblkid` or `wipefs`.
    pub backend: &'static str,
    /// Why it could not run.
    pub reason: String,
}

impl Unavailable {
    pub(crate) fn new(backend: &'static str, reason: String) -> Self {
        Unavailable { backend, reason }
    }
}

/// What writing over a device would destroy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Occupant {
    /// Nothing found: no signature, and the first bytes are all zero.
    Nothing,
    /// Signatures, listed by [`Probe::describe`].
    Signatures(Probe),
    /// No signature, but non-zero bytes in the first chunk, the first of them
    /// at this offset.
    StrayData(u64),
}

/// What `device` holds that a new store would destroy: every signature
/// anywhere on it ([`probe`]), or, when there is none, any non-zero byte in
/// its first `first_bytes` bytes (where every store's header goes). Reads
/// only. The coverage of the search is in [`Survey::coverage`].
pub fn survey(device: &Device, first_bytes: u64) -> Result<Survey> {
    let found = probe(device)?;
    let coverage = found.coverage.clone();
    let occupant = if !found.signatures.is_empty() {
        Occupant::Signatures(found)
    } else {
        let len = first_bytes.min(device.size_bytes()) as usize;
        let mut bytes = vec![0u8; len];
        device.read_at(&mut bytes, 0, || "chunk 0".to_string())?;
        match bytes.iter().position(|&b| b != 0) {
            Some(first) => Occupant::StrayData(first as u64),
            None => Occupant::Nothing,
        }
    };
    Ok(Survey { occupant, coverage })
}

/// The answer of [`survey`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survey {
    /// What would be destroyed.
    pub occupant: Occupant,
    /// Which tool looked for foreign signatures.
    pub coverage: Coverage,
}

/// A backend that looks for foreign signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// libblkid, loaded at run time.
    Libblkid,
    /// `wipefs --no-act --json`.
    Wipefs,
}

/// The backends [`probe`] tries, in order.
pub const DEFAULT_BACKENDS: [Backend; 2] = [Backend::Libblkid, Backend::Wipefs];

/// Finds every signature on `device`: this crate's own kinds, then what
/// libblkid (or, without it, `wipefs`) knows, anywhere on the device.
pub fn probe(device: &Device) -> Result<Probe> {
    probe_with(device, &DEFAULT_BACKENDS)
}

/// [`probe`] with the foreign-signature backends tried in the given order; the
/// first that runs decides. An empty list looks for this crate's kinds only.
pub fn probe_with(device: &Device, backends: &[Backend]) -> Result<Probe> {
    let mut signatures = own_kinds::probe(device)?;
    let mut reasons = Vec::new();
    let mut coverage = None;
    for backend in backends {
        let found = match backend {
            Backend::Libblkid => libblkid::probe(device.path()).map(|s| (s, Coverage::Libblkid)),
            Backend::Wipefs => {
                wipefs::probe(device.path(), device.size_bytes()).map(|s| (s, Coverage::Wipefs))
            }
        };
        match found {
            Ok((foreign, how)) => {
                merge(&mut signatures, foreign);
                coverage = Some(how);
                break;
            }
            Err(reason) => reasons.push(reason.to_string()),
        }
    }
    let coverage = coverage.unwrap_or_else(|| {
        if reasons.is_empty() {
            reasons.push("no backend was asked for".to_string());
        }
        Coverage::OwnKindsOnly(reasons.join("; "))
    });
    Ok(Probe {
        signatures,
        coverage,
    })
}

/// Adds the foreign signatures that do not repeat one of ours at the same
/// offset (libblkid calls a SnAp store `DM_snapshot_cow`), ordered by offset.
fn merge(ours: &mut Vec<Signature>, foreign: Vec<Signature>) {
    let own = ours.len();
    for signature in foreign {
        if !ours[..own].iter().any(|o| o.offset == signature.offset) {
            ours.push(signature);
        }
    }
    ours[own..].sort_by_key(|s| s.offset);
}

/// What a foreign signature is, in words, from its libblkid type and usage
/// (`filesystem`, `raid`, `crypto`, `other`; `None` for a partition table).
pub(crate) fn describe_type(name: &str, usage: Option<&str>, partition_table: bool) -> String {
    let known = match name {
        "gpt" => "a GPT partition table",
        "PMBR" => "a protective MBR (GPT)",
        "dos" => "a DOS (MBR) partition table",
        "LVM2_member" => "an LVM physical volume",
        "LVM1_member" => "an LVM1 physical volume",
        "linux_raid_member" => "a Linux md RAID member",
        "crypto_LUKS" => "a LUKS encrypted volume",
        "swap" => "swap space",
        "DM_snapshot_cow" => "a dm-snapshot COW store",
        "vfat" => "a FAT file system",
        "xfs" => "an XFS file system",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_string();
    }
    if partition_table {
        return format!("{} {name} partition table", article(name));
    }
    match usage {
        Some("filesystem") => format!("{} {name} file system", article(name)),
        Some("raid") => format!("{} {name} RAID member", article(name)),
        Some("crypto") => format!("{} {name} encrypted volume", article(name)),
        _ => format!("{} {name} signature", article(name)),
    }
}

/// Where the magic of a foreign signature sits, in words.
pub(crate) fn describe_place(
    name: &str,
    offset: u64,
    device_bytes: u64,
    partition_table: bool,
) -> String {
    let near_end = device_bytes > 0 && offset >= device_bytes / 2;
    match name {
        "gpt" if near_end => "backup header",
        "gpt" => "header",
        "PMBR" | "dos" => "boot signature",
        "LVM2_member" | "LVM1_member" => "label",
        "crypto_LUKS" if offset > 0 => "second header",
        "crypto_LUKS" => "header",
        "swap" => "signature",
        _ if partition_table => "header",
        _ if near_end => "superblock near the end",
        _ => "superblock",
    }
    .to_string()
}

fn article(word: &str) -> &'static str {
    match word.chars().next().map(|c| c.to_ascii_lowercase()) {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Access;
    use crate::persistent::header::Header;

    /// A 1 MiB image holding a SnAp header, and its folder.
    fn snap_image() -> (tempfile::TempDir, Device) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cow.img");
        let mut bytes = vec![0u8; 1 << 20];
        Header::new(8).encode(&mut bytes);
        std::fs::write(&path, bytes).unwrap();
        let device = Device::open(&path, Access::ReadOnly).unwrap();
        (dir, device)
    }

    #[test]
    fn every_backend_finds_the_store_once_and_says_it_ran() {
        let (_dir, device) = snap_image();
        for (backends, coverage) in [
            (&[Backend::Libblkid][..], Coverage::Libblkid),
            (&[Backend::Wipefs][..], Coverage::Wipefs),
        ] {
            let found = probe_with(&device, backends).unwrap();
            assert_eq!(found.coverage, coverage, "{backends:?}");
            assert_eq!(found.describe(), "a persistent store (SnAp, chunk size 8)");
            assert!(found.signatures[0].is_cow_store());
        }
        let own = probe_with(&device, &[]).unwrap();
        assert!(matches!(own.coverage, Coverage::OwnKindsOnly(_)));
        assert_eq!(own.signatures.len(), 1);
    }

    #[test]
    fn survey_tells_signatures_from_stray_bytes_and_nothing() {
        let (dir, device) = snap_image();
        assert!(matches!(
            survey(&device, 4096).unwrap().occupant,
            Occupant::Signatures(_)
        ));
        let path = dir.path().join("blank.img");
        let mut bytes = vec![0u8; 1 << 20];
        std::fs::write(&path, &bytes).unwrap();
        let blank = Device::open(&path, Access::ReadOnly).unwrap();
        assert_eq!(survey(&blank, 4096).unwrap().occupant, Occupant::Nothing);
        bytes[5000] = 1;
        std::fs::write(&path, &bytes).unwrap();
        let stray = Device::open(&path, Access::ReadOnly).unwrap();
        assert_eq!(survey(&stray, 4096).unwrap().occupant, Occupant::Nothing);
        assert_eq!(
            survey(&stray, 8192).unwrap().occupant,
            Occupant::StrayData(5000)
        );
    }

    fn signature(name: &str, offset: u64, source: Source) -> Signature {
        Signature {
            name: name.to_string(),
            what: describe_type(name, Some("filesystem"), false),
            place: "superblock".to_string(),
            offset,
            label: None,
            source,
        }
    }

    #[test]
    fn describes_types_and_places_in_words() {
        assert_eq!(
            describe_type("ext4", Some("filesystem"), false),
            "an ext4 file system"
        );
        assert_eq!(
            describe_type("btrfs", Some("filesystem"), false),
            "a btrfs file system"
        );
        assert_eq!(
            describe_type("atari", None, true),
            "an atari partition table"
        );
        assert_eq!(
            describe_type("bcache", Some("other"), false),
            "a bcache signature"
        );
        assert_eq!(describe_place("gpt", 512, 1 << 24, true), "header");
        assert_eq!(
            describe_place("gpt", (1 << 24) - 512, 1 << 24, true),
            "backup header"
        );
    }

    #[test]
    fn display_names_the_place_and_label() {
        let mut s = signature("ext4", 1080, Source::Libblkid);
        assert_eq!(
            s.to_string(),
            "an ext4 file system (superblock at byte 1080)"
        );
        s.label = Some("data".to_string());
        assert_eq!(
            s.to_string(),
            "an ext4 file system labelled \"data\" (superblock at byte 1080)"
        );
    }

    #[test]
    fn describe_names_the_magics_of_one_signature_together() {
        let mut gpt = signature("gpt", 512, Source::Libblkid);
        gpt.what = describe_type("gpt", None, true);
        gpt.place = "header".to_string();
        let mut backup = gpt.clone();
        backup.offset = 16_776_704;
        backup.place = "backup header".to_string();
        let found = Probe {
            signatures: vec![gpt, signature("ext4", 1080, Source::Libblkid), backup],
            coverage: Coverage::Libblkid,
        };
        assert_eq!(
            found.describe(),
            "a GPT partition table (header at byte 512, backup header at byte 16776704), an ext4 file system (superblock at byte 1080)"
        );
    }

    #[test]
    fn merge_keeps_ours_over_a_foreign_repeat_and_sorts_the_rest() {
        let mut ours = vec![signature("snap", 0, Source::Cowfmt)];
        merge(
            &mut ours,
            vec![
                signature("gpt", 4096, Source::Libblkid),
                signature("DM_snapshot_cow", 0, Source::Libblkid),
                signature("ext4", 1080, Source::Libblkid),
            ],
        );
        let names: Vec<_> = ours.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["snap", "ext4", "gpt"]);
    }
}
