//! Replaying the input's journal before the salvage, without writing to the
//! input: the committed transactions' images are read through an
//! [`Overlay`](crate::overlay::Overlay), so the analysis and the copy see the
//! store as the engine would after its replay at open. The output is built
//! with a fresh, empty journal, which also reformats a damaged one.

use serde::Serialize;

use super::options::RepairOptions;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::kind::SHARED_MAGIC;
use crate::shared::geometry::{validate_chunk_size, Geometry};
use crate::shared::header::SHARED_VERSION;
use crate::shared::journal::{replay_overlay, ScanEnd};
use crate::shared::open;

/// What happened to the input's journal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JournalRepair {
    /// Committed transactions replayed (through an overlay: the input was
    /// not written).
    pub transactions_replayed: u64,
    /// Their images.
    pub images_replayed: u64,
    /// The last replayed transaction's sequence number.
    pub last_seq: Option<u64>,
    /// Why the transaction after them was not replayed (a torn commit),
    /// when there was one.
    pub torn: Option<String>,
    /// Why the journal superblock was damaged, when it was: nothing could be
    /// replayed and the output's journal was formatted afresh.
    pub superblock_damage: Option<String>,
}

impl JournalRepair {
    /// The report's notes about the journal, one sentence each.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.transactions_replayed > 0 {
            let n = self.transactions_replayed;
            notes.push(format!(
                "the journal held {n} committed transaction{} ({} image{}, up to seq {}) not yet written home: {} replayed before the salvage, read through an overlay (the input was not written)",
                plural(n),
                self.images_replayed,
                plural(self.images_replayed),
                self.last_seq.unwrap_or_default(),
                if n == 1 { "it was" } else { "they were" }
            ));
        }
        if let Some(why) = &self.torn {
            notes.push(format!(
                "the journal's last transaction was torn ({why}) and was ignored, as the engine ignores it"
            ));
        }
        if let Some(why) = &self.superblock_damage {
            notes.push(format!(
                "the journal superblock was damaged ({why}): nothing in the journal was replayed, and the output's journal was formatted afresh"
            ));
        }
        notes
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The geometry the input's journal is read with: the chunk size and journal
/// size given, else the header's; `None` when the header is not a shared
/// store's or they do not fit the device (nothing is replayed then).
fn journal_geometry(input: &Device, options: &RepairOptions) -> Result<Option<Geometry>> {
    let header = open::read_header(input)?;
    if header.magic != SHARED_MAGIC || header.version != SHARED_VERSION {
        return Ok(None);
    }
    let sectors = options.chunk_size.unwrap_or(header.chunk_size);
    if validate_chunk_size(u64::from(sectors)).is_err() {
        return Ok(None);
    }
    let journal = options
        .journal_chunks
        .unwrap_or(u64::from(header.nr_journal_chunks));
    let g = Geometry::new(input.size_bytes(), sectors, journal);
    Ok(g.reserved_fits().then_some(g))
}

/// The input as the salvage reads it: when its journal holds committed
/// transactions, the device read through the images replay would write
/// (nothing is written to it); and what happened to the journal (`None`
/// when the header is unusable, so the journal could not be located).
pub fn read_through_journal(
    input: Device,
    options: &RepairOptions,
) -> Result<(Device, Option<JournalRepair>)> {
    let Some(g) = journal_geometry(&input, options)? else {
        return Ok((input, None));
    };
    let (overlay, report) = match replay_overlay(&input, &g) {
        Ok(found) => found,
        Err(Error::Journal { chunk, source, .. }) => {
            let repair = JournalRepair {
                superblock_damage: Some(format!("chunk {chunk}: {source}")),
                ..JournalRepair::default()
            };
            return Ok((input, Some(repair)));
        }
        Err(other) => return Err(other),
    };
    let repair = JournalRepair {
        transactions_replayed: report.transactions,
        images_replayed: report.images,
        last_seq: report.last_seq,
        torn: match report.torn {
            Some(ScanEnd::Torn { seq, pos, why }) => {
                Some(format!("seq {seq} at log position {pos}: {why}"))
            }
            _ => None,
        },
        superblock_damage: None,
    };
    let input = if overlay.is_empty() {
        input
    } else {
        input.with_overlay(overlay)
    };
    Ok((input, Some(repair)))
}
