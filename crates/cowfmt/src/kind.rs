//! Store kinds, and recognising a store by the magic in its first bytes.

use serde::{Deserialize, Serialize};

use crate::device::Device;
use crate::error::{Error, FormatError};
use crate::finding::{Finding, FindingCode, FindingSink, Location};

/// Magic of the persistent ("SnAp") store, little-endian at offset 0.
pub const PERSISTENT_MAGIC: u32 = 0x7041_6e53;
/// Magic of the shared store, little-endian at offset 0.
pub const SHARED_MAGIC: u32 = 0x5537_8008;

/// The kinds of COW store the tools know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// The kernel's "SnAp" v1 store, as current kernels read and write it.
    Persistent,
    /// The same bytes, held to the limits of the pre-2.6.29 code.
    Legacy,
    /// The multi-snapshot store of seed 000.
    Shared,
    /// dm-snapshot's in-memory store: nothing on disk.
    Transient,
    /// dm-clone hydration metadata.
    Clone,
}

impl StoreKind {
    /// The kind's name as the CLI and dumps spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Persistent => "persistent",
            StoreKind::Legacy => "legacy",
            StoreKind::Shared => "shared",
            StoreKind::Transient => "transient",
            StoreKind::Clone => "clone",
        }
    }

    /// Whether the kind's on-disk bytes are the "SnAp" v1 format.
    pub fn is_snap_v1(self) -> bool {
        matches!(self, StoreKind::Persistent | StoreKind::Legacy)
    }
}

impl std::fmt::Display for StoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Recognises a store by the little-endian magic in its first four bytes.
/// Persistent and legacy stores share their bytes, so this answers `Persistent`
/// for both.
pub fn detect(first_bytes: &[u8]) -> Result<StoreKind, FormatError> {
    let Some(magic) = first_bytes.get(..4) else {
        return Err(FormatError::ShortBuffer {
            what: "a store header",
            needed: 4,
            got: first_bytes.len(),
        });
    };
    match u32::from_le_bytes(magic.try_into().expect("four bytes")) {
        0 => Err(FormatError::Unformatted),
        PERSISTENT_MAGIC => Ok(StoreKind::Persistent),
        SHARED_MAGIC => Ok(StoreKind::Shared),
        crate::output::MARKER_MAGIC => Err(FormatError::Unfinished),
        found => Err(FormatError::UnknownMagic {
            found,
            persistent: PERSISTENT_MAGIC,
            shared: SHARED_MAGIC,
        }),
    }
}

/// What a checker expects of the identity fields at the start of a header
/// (magic at byte 0, valid flag at 4, version at 8), and what each finding
/// says it means.
pub struct ExpectedHeader {
    /// The kind's name in the error when the device holds something else.
    pub kind: &'static str,
    /// The magic.
    pub magic: u32,
    /// What follows the expected magic in its finding: why it matters.
    pub magic_consequence: &'static str,
    /// The version.
    pub version: u32,
    /// Who refuses another version: `the kernel refuses`, `readers refuse`.
    pub refuses: &'static str,
    /// Who reads a valid flag other than 0 and 1 as valid: `the kernel
    /// treats`, `readers treat`.
    pub treats: &'static str,
    /// What valid=0 means.
    pub invalid_means: &'static str,
}

/// The identity fields a header holds.
pub struct HeaderIdentity {
    /// The magic at byte 0.
    pub magic: u32,
    /// The valid flag at byte 4.
    pub valid: u32,
    /// The version at byte 8.
    pub version: u32,
}

/// Checks a header's identity fields `found` on `device`. A magic that is not
/// the expected one is an error naming what the device holds unless the kind
/// was insisted on (`kind_forced`), else a `BadMagic` finding in `sink`; a
/// wrong version and an unusual valid flag are findings.
pub fn check_identity(
    device: &Device,
    found: &HeaderIdentity,
    expected: &ExpectedHeader,
    kind_forced: bool,
    sink: &mut FindingSink,
) -> crate::Result<()> {
    check_magic(device, found.magic, expected, kind_forced, sink)?;
    if found.version != expected.version {
        sink.push(Finding::error(
            FindingCode::BadVersion,
            Location::header_field(8),
            format!(
                "header (chunk 0): version is {}, expected {}; {} the store",
                found.version, expected.version, expected.refuses
            ),
        ));
    }
    match found.valid {
        0 => sink.push(Finding::warning(
            FindingCode::Invalidated,
            Location::header_field(4),
            format!(
                "header (chunk 0): the store is marked invalid (valid=0); {}",
                expected.invalid_means
            ),
        )),
        1 => {}
        other => sink.push(Finding::warning(
            FindingCode::ValidFlagUnusual,
            Location::header_field(4),
            format!(
                "header (chunk 0): valid is {other}, expected 0 or 1; {} it as valid",
                expected.treats
            ),
        )),
    }
    Ok(())
}

/// Checks that the bytes of chunk 0 after a header of `header_bytes` are zero;
/// `written_as` ends the finding's sentence (how the header chunk is written).
pub fn check_header_tail(
    device: &Device,
    chunk_bytes: usize,
    header_bytes: usize,
    written_as: &str,
    sink: &mut FindingSink,
) -> crate::Result<()> {
    let mut chunk = vec![0u8; chunk_bytes];
    device.read_chunk(0, &mut chunk)?;
    if let Some(pos) = chunk[header_bytes..].iter().position(|&b| b != 0) {
        let offset = (header_bytes + pos) as u64;
        sink.push(Finding::warning(
            FindingCode::HeaderTrailingGarbage,
            Location::header_field(offset),
            format!("header (chunk 0): byte {offset} is not zero; {written_as}"),
        ));
    }
    Ok(())
}

fn check_magic(
    device: &Device,
    found: u32,
    expected: &ExpectedHeader,
    kind_forced: bool,
    sink: &mut FindingSink,
) -> crate::Result<()> {
    if found == expected.magic {
        return Ok(());
    }
    if !kind_forced {
        return Err(Error::format(
            device.path(),
            detect(&found.to_le_bytes())
                .err()
                .unwrap_or(FormatError::WrongMagic {
                    kind: expected.kind,
                    found,
                    expected: expected.magic,
                }),
        ));
    }
    let what = if found == 0 {
        "0 (an unformatted device)".to_string()
    } else {
        format!("{found:#010x}")
    };
    sink.push(Finding::error(
        FindingCode::BadMagic,
        Location::header_field(0),
        format!(
            "header (chunk 0): magic is {what}, expected {:#010x}{}",
            expected.magic, expected.magic_consequence
        ),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_magic() {
        assert_eq!(detect(b"SnAp\x01\0\0\0"), Ok(StoreKind::Persistent));
        assert_eq!(detect(&SHARED_MAGIC.to_le_bytes()), Ok(StoreKind::Shared));
        assert_eq!(detect(&[0; 16]), Err(FormatError::Unformatted));
        assert!(matches!(
            detect(b"JUNK"),
            Err(FormatError::UnknownMagic { .. })
        ));
        assert!(matches!(
            detect(b"Sn"),
            Err(FormatError::ShortBuffer { .. })
        ));
    }
}
