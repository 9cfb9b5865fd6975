//! The check a classic store passes before the kernel gets it: the store on
//! the COW device must be of the kind asked for and undamaged (cowfmt's
//! checker, as `cowcheck` runs it), and the chunk size the table names must be
//! the one the kernel will use.

use cowfmt::device::Device;
use cowfmt::kind::StoreKind;
use cowfmt::output::Marker;
use cowfmt::persistent::check::{check, CheckOptions};
use cowfmt::store::probe::FirstBlock;
use cowfmt::FormatError;
use serde::Serialize;

pub use super::error::PrecheckError;

/// The classic store kinds dm-snapshot serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassicKind {
    /// The "SnAp" store as current kernels use it.
    Persistent,
    /// The same bytes, held to the pre-2.6.29 limits.
    Legacy,
    /// Exceptions in memory only; the COW device holds data chunks and nothing
    /// else, and nothing survives deactivation.
    Transient,
}

impl ClassicKind {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClassicKind::Persistent => "persistent",
            ClassicKind::Legacy => "legacy",
            ClassicKind::Transient => "transient",
        }
    }
}

/// The chunk size the kernel formats an empty COW device with when none is
/// given: 8 sectors (4 KiB), LVM's default.
pub const DEFAULT_CHUNK_SECTORS: u32 = 8;

/// What the check found acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// The chunk size the table must name.
    pub chunk_sectors: u32,
    /// True when the COW device is empty (zero magic): the kernel formats it.
    pub empty: bool,
}

/// Checks the COW device `cow` for `kind` before activation, for an origin of
/// `origin_bytes`; `chunk_sectors` is the chunk size asked for, if any.
pub fn precheck(
    kind: ClassicKind,
    cow: &Device,
    origin_bytes: u64,
    chunk_sectors: Option<u32>,
) -> Result<Checked, PrecheckError> {
    let refuse = |reason: String| PrecheckError::Refused {
        path: cow.path().display().to_string(),
        reason,
    };
    if let Some(marker) = Marker::read(cow)? {
        return Err(refuse(marker.describe()));
    }
    let first = FirstBlock::read(cow, &|| "the store header".to_string())?;
    let empty = Checked {
        chunk_sectors: chunk_sectors.unwrap_or(DEFAULT_CHUNK_SECTORS),
        empty: true,
    };
    match (first.kind(), kind) {
        (Ok(StoreKind::Shared), _) => Err(refuse(
            "holds a shared store, which device-mapper cannot serve; cowrt's ublk half serves it \
             (docs/cowrt.md)"
                .to_string(),
        )),
        (Ok(StoreKind::Clone), _) => Err(refuse(
            "holds dm-clone metadata, not a snapshot store; `cowrt dm activate --kind clone` \
             serves it"
                .to_string(),
        )),
        (Err(FormatError::Unformatted), _) => Ok(empty),
        (Ok(found), ClassicKind::Transient) => Err(refuse(format!(
            "holds a {found} store; --kind transient would overwrite it with data chunks (wipe \
             it first if that is what you want)"
        ))),
        (Err(_), ClassicKind::Transient) => Ok(empty),
        (Err(problem), _) => Err(refuse(format!(
            "is not a {} store: {problem}",
            kind.as_str()
        ))),
        (Ok(_), ClassicKind::Persistent | ClassicKind::Legacy) => {
            check_snap_store(kind, cow, origin_bytes, chunk_sectors).map_err(|e| match e {
                CheckOutcome::Refused(reason) => refuse(reason),
                CheckOutcome::Failed(error) => PrecheckError::Check(error),
            })
        }
    }
}

enum CheckOutcome {
    Refused(String),
    Failed(cowfmt::Error),
}

/// Runs cowcheck's checker on a "SnAp" store and compares chunk sizes.
fn check_snap_store(
    kind: ClassicKind,
    cow: &Device,
    origin_bytes: u64,
    chunk_sectors: Option<u32>,
) -> Result<Checked, CheckOutcome> {
    let options = CheckOptions {
        kind: match kind {
            ClassicKind::Legacy => StoreKind::Legacy,
            _ => StoreKind::Persistent,
        },
        kind_forced: true,
        origin_bytes: Some(origin_bytes),
        header_only: false,
        chunk_size_fallback: None,
    };
    let report = check(cow, &options).map_err(CheckOutcome::Failed)?;
    if let Some(verdict) = crate::damage::verdict(kind.as_str(), &report.findings) {
        return Err(CheckOutcome::Refused(verdict));
    }
    let header_chunk = report
        .header
        .as_ref()
        .map(|h| h.chunk_size)
        .ok_or_else(|| CheckOutcome::Refused("the store header could not be read".to_string()))?;
    if let Some(asked) = chunk_sectors.filter(|&c| c != header_chunk) {
        return Err(CheckOutcome::Refused(format!(
            "--chunk-size {asked} sectors differs from the store header's {header_chunk}; the \
             kernel would use the header's (leave --chunk-size out, or re-chunk with cowmigrate)"
        )));
    }
    Ok(Checked {
        chunk_sectors: header_chunk,
        empty: false,
    })
}
