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

/// The magic a checker expects at the start of chunk 0.
pub struct ExpectedMagic {
    /// The kind's name in the error when the device holds something else.
    pub kind: &'static str,
    /// The magic.
    pub magic: u32,
    /// What the finding says after the expected value: why it matters.
    pub consequence: &'static str,
}

/// Checks the header's magic `found` on `device`: when it is not the
/// expected one, an error naming what the device holds unless the kind was
/// insisted on (`kind_forced`), else a `BadMagic` finding in `sink`.
pub fn check_magic(
    device: &Device,
    found: u32,
    expected: &ExpectedMagic,
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
            expected.magic, expected.consequence
        ),
    ));
    Ok(())
}
