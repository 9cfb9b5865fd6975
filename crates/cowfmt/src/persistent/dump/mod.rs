//! The dump model of a persistent store, shared by the YAML and JSON output of
//! `cowdump` and the input of `mkcow --from-dump`.
//!
//! A dump is a head (header and geometry), the exceptions in on-disk order, and
//! a tail (areas, kernel state, usage). The head and tail are small serde
//! structs; the exceptions are streamed between them so that dumping a store of
//! any size takes constant memory. [`PersistentDump`] is the whole document in
//! memory, for restore and tests. [`text`] writes the document as JSON or
//! YAML and reads its record lines back.

pub mod text;

use serde::{Deserialize, Serialize};

use super::header::Header;
use super::record::ExceptionRecord;
use super::runs::{Run, RunBuilder};
use super::state::{LoadState, Usage};
use super::store::{AreaSummary, PersistentStore};
use crate::error::Result;
use crate::kind::StoreKind;

pub use crate::dump_format::DUMP_FORMAT_VERSION;

/// The `status` of a store the kernel cannot load: there is no status line,
/// because the table load fails.
pub const UNLOADABLE_STATUS: &str = "none (the table load fails)";

/// Header and geometry: everything known before the records are read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpHead {
    /// [`DUMP_FORMAT_VERSION`].
    pub format_version: u32,
    /// `persistent` or `legacy`.
    pub kind: StoreKind,
    /// The header magic, as hex (`0x70416e53`).
    pub magic: String,
    /// Chunk size in sectors.
    pub chunk_size: u32,
    /// Whether the header says valid.
    pub valid: bool,
    /// The raw valid field (the kernel treats any non-zero value as valid).
    #[serde(default = "one")]
    pub valid_raw: u32,
    /// The header version.
    pub version: u32,
    /// COW device size in sectors.
    pub device_sectors: u64,
    /// Whole chunks on the COW device.
    pub device_chunks: u64,
    /// Records per metadata area.
    pub exceptions_per_area: u64,
}

fn one() -> u32 {
    1
}

/// Everything known once the records are read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpTail {
    /// Areas the kernel reads.
    pub areas_in_use: u64,
    /// Those areas.
    pub areas: Vec<AreaSummary>,
    /// The kernel's state after a load.
    pub state: LoadState,
    /// The `dmsetup status` figures.
    pub usage: Usage,
    /// The `dmsetup status` text: `allocated/total metadata` or `Invalid`.
    pub status: String,
    /// The kernel's in-memory runs, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<Vec<Run>>,
    /// Why the kernel could not load the store, if it could not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// A whole dump in memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistentDump {
    /// Header and geometry.
    #[serde(flatten)]
    pub head: DumpHead,
    /// Every record, in on-disk order.
    pub exceptions: Vec<ExceptionRecord>,
    /// Areas, state and usage.
    #[serde(flatten)]
    pub tail: DumpTail,
}

/// The head fields of a dump that `mkcow --from-dump` reads; every other field
/// is derived again from the target (docs/dump-schema.md), so a hand-written
/// dump needs only `chunk_size`, `valid` and `exceptions`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RestoreHead {
    /// Refused unless [`DUMP_FORMAT_VERSION`], when present.
    #[serde(default)]
    pub format_version: Option<u32>,
    /// The kind to restore as, unless told otherwise.
    #[serde(default)]
    pub kind: Option<StoreKind>,
    /// Chunk size in sectors.
    pub chunk_size: u32,
    /// The header's valid flag.
    pub valid: bool,
    /// The raw valid field, kept when it is an unusual non-zero value.
    #[serde(default)]
    pub valid_raw: Option<u32>,
    /// The header version; refused unless 1, when present.
    #[serde(default)]
    pub version: Option<u32>,
    /// Chunks of the device dumped, to note a different target size.
    #[serde(default)]
    pub device_chunks: Option<u64>,
}

/// The head of a dump of `store`, labelled as `kind`.
pub fn head_of(store: &PersistentStore, kind: StoreKind) -> DumpHead {
    let header: &Header = store.header();
    let geometry = store.geometry();
    DumpHead {
        format_version: DUMP_FORMAT_VERSION,
        kind,
        magic: format!("{:#010x}", header.magic),
        chunk_size: geometry.chunk_sectors(),
        valid: header.is_valid(),
        valid_raw: header.valid,
        version: header.version,
        device_sectors: geometry.device_sectors(),
        device_chunks: geometry.device_chunks(),
        exceptions_per_area: geometry.exceptions_per_area(),
    }
}

/// Reads the records the kernel reads, handing each to `on_record` in on-disk
/// order, and returns the tail. An area the kernel needs that lies past the end
/// of the device ends the walk and is listed in `problems`. Errors from
/// `on_record` are returned as they are, wrapped in [`Error::Output`].
pub fn stream_records(
    store: &PersistentStore,
    with_runs: bool,
    mut on_record: impl FnMut(&ExceptionRecord) -> std::io::Result<()>,
) -> Result<DumpTail> {
    let geometry = store.geometry();
    let mut runs = with_runs.then(RunBuilder::new);
    let walk = store.walk(|placed| {
        if let Some(runs) = runs.as_mut() {
            runs.insert(&placed.record);
        }
        on_record(&placed.record)
    })?;
    let problems: Vec<String> = walk
        .past_end
        .map(|(index, chunk)| format!(
            "area {index} (chunk {chunk}) lies past the end of the device ({} chunks) although area {} is full; the kernel cannot load this store",
            geometry.device_chunks(),
            index - 1
        ))
        .into_iter()
        .collect();
    let (areas, state) = (walk.areas, walk.state);
    let usage = Usage::of(&state, &geometry);
    let status = if problems.is_empty() {
        usage.status_text(store.header().is_valid())
    } else {
        UNLOADABLE_STATUS.to_string()
    };
    Ok(DumpTail {
        areas_in_use: areas.len() as u64,
        areas,
        state,
        status,
        usage,
        runs: runs.map(RunBuilder::finish),
        problems,
    })
}

/// The whole dump of `store` in memory.
pub fn dump(store: &PersistentStore, kind: StoreKind, with_runs: bool) -> Result<PersistentDump> {
    let head = head_of(store, kind);
    let mut exceptions = Vec::new();
    let tail = stream_records(store, with_runs, |record| {
        exceptions.push(*record);
        Ok(())
    })?;
    Ok(PersistentDump {
        head,
        exceptions,
        tail,
    })
}
