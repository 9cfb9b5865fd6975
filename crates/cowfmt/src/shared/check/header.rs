//! The header in chunk 0: identity, flags, chunk size, and whether the geometry,
//! the journal and the root it describes fit the device.

use super::CheckOptions;
use crate::device::Device;
use crate::error::{Error, FormatError, Result};
use crate::finding::{Finding, FindingCode, FindingSink, Location};
use crate::kind::{self, ExpectedHeader, HeaderIdentity, SHARED_MAGIC};
use crate::shared::geometry::{validate_chunk_size, Geometry};
pub use crate::shared::header::MAX_TREE_LEVEL;
use crate::shared::header::{SharedHeader, HEADER_BYTES, SHARED_VERSION};
use crate::shared::open;

/// Chunks a store needs besides the header and bitmap: a leaf and the root.
const TREE_MIN_CHUNKS: u64 = 2;

/// What the header allows the rest of the check to read.
pub(super) struct Layout {
    /// Where everything lives.
    pub geometry: Geometry,
    /// Whether root_tree_chunk and tree_level describe a tree that can be walked.
    pub tree_readable: bool,
}

/// Reads the 40 header bytes.
pub(super) fn read(device: &Device) -> Result<SharedHeader> {
    open::read_header(device)
}

/// Checks the header fields; returns the layout to read the rest with, or
/// `None` when no usable geometry is known.
pub(super) fn check(
    device: &Device,
    header: &SharedHeader,
    options: &CheckOptions,
    sink: &mut FindingSink,
) -> Result<Option<Layout>> {
    check_identity(device, header, options, sink)?;
    let Some(chunk_sectors) = chunk_size(device, header, options, sink)? else {
        return Ok(None);
    };
    let geometry = Geometry::new(
        device.size_bytes(),
        chunk_sectors,
        u64::from(header.nr_journal_chunks),
    );
    if !fits(device, &geometry, sink) {
        return Ok(None);
    }
    let root_ok = check_root(header, &geometry, sink);
    let level_ok = check_level(header, sink);
    Ok(Some(Layout {
        geometry,
        tree_readable: root_ok && level_ok,
    }))
}

fn check_identity(
    device: &Device,
    header: &SharedHeader,
    options: &CheckOptions,
    sink: &mut FindingSink,
) -> Result<()> {
    kind::check_identity(
        device,
        &HeaderIdentity {
            magic: header.magic,
            valid: header.valid,
            version: header.version,
        },
        &ExpectedHeader {
            kind: "shared",
            magic: SHARED_MAGIC,
            magic_consequence: "; no reader accepts the store",
            version: SHARED_VERSION,
            refuses: "readers refuse",
            treats: "readers treat",
            invalid_means: "its snapshots cannot be used",
        },
        options.kind_forced,
        sink,
    )
}

/// The chunk size to read with: the header's, else the fallback; `None` when
/// neither is usable.
fn chunk_size(
    device: &Device,
    header: &SharedHeader,
    options: &CheckOptions,
    sink: &mut FindingSink,
) -> Result<Option<u32>> {
    let why = match validate_chunk_size(u64::from(header.chunk_size)) {
        Ok(()) => return Ok(Some(header.chunk_size)),
        Err(FormatError::BadChunkSize { why, .. }) => why,
        Err(other) => return Err(Error::format(device.path(), other)),
    };
    let then = match options.chunk_size_fallback {
        Some(sectors) => format!("; reading with the given {sectors} sectors"),
        None => "; nothing else can be located (give --chunk-size to read the rest)".to_string(),
    };
    sink.push(Finding::error(
        FindingCode::BadChunkSize,
        Location::header_field(12),
        format!(
            "header (chunk 0): chunk size {} sectors {why}{then}",
            header.chunk_size
        ),
    ));
    match options.chunk_size_fallback {
        Some(sectors) => {
            validate_chunk_size(u64::from(sectors)).map_err(|e| Error::format(device.path(), e))?;
            Ok(Some(sectors))
        }
        None => Ok(None),
    }
}

/// Whether the header, bitmap, journal and a minimal tree fit the device.
fn fits(device: &Device, geometry: &Geometry, sink: &mut FindingSink) -> bool {
    let bare = 1 + geometry.nr_bitmap_chunks + TREE_MIN_CHUNKS;
    if geometry.nr_chunks < bare {
        sink.push(Finding::error(
            FindingCode::DeviceTooSmall,
            Location::chunk(0),
            format!(
                "the device has {} bytes, too small for a shared store of {}-byte chunks: the header, {} bitmap chunk(s), a leaf and a root need {} bytes",
                device.size_bytes(),
                geometry.chunk_bytes,
                geometry.nr_bitmap_chunks,
                bare * geometry.chunk_bytes
            ),
        ));
        return false;
    }
    if geometry.nr_chunks - bare < geometry.nr_journal_chunks {
        sink.push(Finding::error(
            FindingCode::JournalTooLarge,
            Location::header_field(36),
            format!(
                "header (chunk 0): nr_journal_chunks {} does not fit: the header, {} bitmap chunk(s), the journal, a leaf and a root need {} chunks, the device has {}; nothing past the journal can be located",
                geometry.nr_journal_chunks,
                geometry.nr_bitmap_chunks,
                u128::from(bare) + u128::from(geometry.nr_journal_chunks),
                geometry.nr_chunks
            ),
        ));
        return false;
    }
    true
}

fn check_root(header: &SharedHeader, geometry: &Geometry, sink: &mut FindingSink) -> bool {
    let root = header.root_tree_chunk;
    if geometry.in_data_range(root) {
        return true;
    }
    sink.push(Finding::error(
        FindingCode::RootOutOfRange,
        Location {
            chunk: Some(0),
            offset: Some(16),
            new_chunk: Some(root),
            ..Location::default()
        },
        format!(
            "header (chunk 0): root_tree_chunk {root} is {}, not in the data range {}..{}; the tree cannot be read",
            geometry.where_outside(root),
            geometry.data_start(),
            geometry.nr_chunks
        ),
    ));
    false
}

fn check_level(header: &SharedHeader, sink: &mut FindingSink) -> bool {
    let level = header.tree_level;
    let why = if level == 0 {
        "the root is always a node, so it is at least 1".to_string()
    } else if level > MAX_TREE_LEVEL {
        format!("no tree is deeper than {MAX_TREE_LEVEL} levels")
    } else {
        return true;
    };
    sink.push(Finding::error(
        FindingCode::BadTreeLevel,
        Location {
            level: Some(level),
            ..Location::header_field(32)
        },
        format!("header (chunk 0): tree_level is {level}: {why}; the tree cannot be read"),
    ));
    false
}

/// Bytes after the 40 header bytes in chunk 0 must be zero.
pub(super) fn check_tail(
    device: &Device,
    geometry: &Geometry,
    sink: &mut FindingSink,
) -> Result<()> {
    kind::check_header_tail(
        device,
        geometry.chunk_bytes as usize,
        HEADER_BYTES,
        "the header chunk is 40 bytes then zeros",
        sink,
    )
}
