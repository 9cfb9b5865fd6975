//! The journal: its superblock, every transaction's sequence and crc32c, the
//! home chunks of their images, and whether committed transactions wait for
//! replay (the header and tree on disk are then older than the last commit).

use serde::{Deserialize, Serialize};

use crate::device::Device;
use crate::error::{Error, Result};
use crate::finding::{Finding, FindingCode, FindingSink, Location};
use crate::shared::geometry::Geometry;
use crate::shared::journal::{scan, JournalArea, JournalError, JournalState, ScanEnd};

/// The journal's figures, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalSummary {
    /// What the journal holds.
    pub state: JournalState,
    /// The superblock's tail_seq, when it has one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tail_seq: Option<u64>,
    /// Committed transactions waiting for replay.
    pub committed: u64,
    /// Their images.
    pub images: u64,
    /// Whether a torn transaction follows them (a crash cut its commit).
    pub torn: bool,
}

fn superblock_offset(error: &JournalError) -> Option<u64> {
    match error {
        JournalError::ShortBuffer { .. } | JournalError::BadMagic { .. } => Some(0),
        JournalError::BadVersion { .. } => Some(8),
        JournalError::ChunkBytes { .. } => Some(12),
        JournalError::LogChunks { .. } => Some(16),
        JournalError::Reserved { .. } => Some(20),
        JournalError::BadCrc { .. } => Some(32),
    }
}

/// Checks the journal of the store of geometry `g`; pushes findings, and
/// returns its figures and the notes (info lines) it has, such as a torn last
/// transaction, which is not damage.
pub(super) fn check_journal(
    device: &Device,
    g: &Geometry,
    sink: &mut FindingSink,
) -> Result<(JournalSummary, Vec<String>)> {
    let area = JournalArea::new(g);
    let mut summary = JournalSummary {
        state: JournalState::None,
        tail_seq: None,
        committed: 0,
        images: 0,
        torn: false,
    };
    let mut notes = Vec::new();
    if !area.has_superblock() {
        return Ok((summary, notes));
    }
    let scan = match scan(device, g) {
        Ok(scan) => scan,
        Err(Error::Journal { chunk, source, .. }) => {
            summary.state = JournalState::Damaged;
            sink.push(Finding::error(
                FindingCode::JournalSuperblockDamaged,
                Location {
                    chunk: Some(chunk),
                    offset: superblock_offset(&source),
                    ..Location::default()
                },
                format!(
                    "journal superblock (chunk {chunk}): {source}; the engine refuses to open the store, cowrepair reformats the journal"
                ),
            ));
            return Ok((summary, notes));
        }
        Err(other) => return Err(other),
    };
    let Some(sup) = scan.sup else {
        summary.state = JournalState::Unused;
        return Ok((summary, notes));
    };
    summary.tail_seq = Some(sup.tail_seq);
    summary.committed = scan.committed.len() as u64;
    summary.images = scan.images();
    summary.state = if scan.needs_replay() {
        JournalState::NeedsReplay
    } else {
        JournalState::Empty
    };
    if let (Some(first), Some(last)) = (scan.committed.first(), scan.committed.last()) {
        let n = scan.committed.len();
        sink.push(Finding::error(
            FindingCode::JournalNeedsReplay,
            Location {
                chunk: Some(area.start),
                count: Some(n as u64),
                ..Location::default()
            },
            format!(
                "journal (chunk {}): {n} committed transaction{} (seq {} to {}, {} image{}) {} not replayed: the header, tree and bitmap on disk are older than the last commit, and findings about them may be the replay's unfinished work; open it with the engine or run cowrepair",
                area.start,
                if n == 1 { "" } else { "s" },
                first.seq,
                last.seq,
                summary.images,
                if summary.images == 1 { "" } else { "s" },
                if n == 1 { "is" } else { "are" },
            ),
        ));
    }
    if let ScanEnd::Torn { seq, pos, why } = &scan.end {
        let chunk = area.log_chunk(*pos);
        if scan.damaged {
            sink.push(Finding::error(
                FindingCode::JournalTransactionDamaged,
                Location {
                    chunk: Some(chunk),
                    ..Location::default()
                },
                format!(
                    "journal log position {pos} (chunk {chunk}): transaction seq {seq}: {why}; a crash cannot leave this, and replay stops before it"
                ),
            ));
        } else {
            summary.torn = true;
            notes.push(format!(
                "journal log position {pos} (chunk {chunk}): the last transaction (seq {seq}) is torn ({why}): a crash cut its commit short, replay ignores it; this is not damage"
            ));
        }
    }
    Ok((summary, notes))
}
