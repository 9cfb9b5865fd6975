//! The journal view (`cowdump --journal`): the superblock, then every
//! transaction the log holds from position 0, committed ones first and the
//! torn or damaged one the scan stopped on last. The tree is not walked: a
//! store waiting for replay has a tree older than its journal.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::shared::journal::{
    in_place_note, scan, JournalArea, JournalScan, JournalState, JournalSuper, ScanEnd, TxSummary,
};

use super::model::{ShareMask, SharedDumpHead};
use super::source::SharedSource;

/// Whether a listed transaction is replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TxState {
    /// Its commit record and crc32c check: replay applies it.
    Committed,
    /// A crash cut its commit short: replay ignores it.
    Torn,
    /// Invalid in a way a crash cannot leave: replay stops before it.
    Damaged,
}

/// One transaction of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalTx {
    /// Its sequence number.
    pub seq: u64,
    /// Its log position (chunks from the log's start).
    pub pos: u64,
    /// The device chunk of its descriptor.
    pub chunk: u64,
    /// Committed, torn or damaged.
    pub state: TxState,
    /// Images it holds; `null` when its descriptor could not be read whole.
    pub images: Option<u64>,
    /// The home chunk of each image, in image order.
    pub homes: Vec<u64>,
    /// The root node after it.
    pub root_tree_chunk: Option<u64>,
    /// The snapshots that exist after it.
    pub snapshots: Option<ShareMask>,
    /// Node levels after it.
    pub tree_level: Option<u32>,
    /// Why it is not replayed, for a torn or damaged one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub why: Option<String>,
}

/// The journal as the view lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalListing {
    /// The journal's first chunk (the superblock).
    pub start: u64,
    /// Chunks of log after the superblock.
    pub log_chunks: u64,
    /// What it holds.
    pub state: JournalState,
    /// The superblock; `null` when all zero, absent, or damaged.
    pub superblock: Option<JournalSuper>,
    /// Why the superblock is damaged, when it is.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub problem: Option<String>,
    /// Every transaction found, in log order.
    pub transactions: Vec<JournalTx>,
    /// Why the store commits in place (not crash-safe), when its journal is
    /// too small for the engine to use.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub commits_in_place: Option<String>,
}

/// The whole journal view: the head and the listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalDump {
    /// Header, geometry, snapshots, chunk counts.
    #[serde(flatten)]
    pub head: SharedDumpHead,
    /// The journal.
    pub journal: JournalListing,
}

fn listed(area: &JournalArea, tx: &TxSummary, state: TxState, why: Option<String>) -> JournalTx {
    JournalTx {
        seq: tx.seq,
        pos: tx.pos,
        chunk: area.log_chunk(tx.pos),
        state,
        images: Some(tx.count() as u64),
        homes: tx.homes.clone(),
        root_tree_chunk: Some(tx.header.root_tree_chunk),
        snapshots: Some(ShareMask(tx.header.snapmask)),
        tree_level: Some(tx.header.tree_level),
        why,
    }
}

fn listing_of(area: &JournalArea, scan: JournalScan) -> JournalListing {
    let mut transactions: Vec<JournalTx> = scan
        .committed
        .iter()
        .map(|tx| listed(area, tx, TxState::Committed, None))
        .collect();
    if let ScanEnd::Torn { seq, pos, why } = scan.end {
        let state = if scan.damaged {
            TxState::Damaged
        } else {
            TxState::Torn
        };
        transactions.push(match &scan.stopped {
            Some(tx) => listed(area, tx, state, Some(why)),
            None => JournalTx {
                seq,
                pos,
                chunk: area.log_chunk(pos),
                state,
                images: None,
                homes: Vec::new(),
                root_tree_chunk: None,
                snapshots: None,
                tree_level: None,
                why: Some(why),
            },
        });
    }
    let state = match (scan.sup, scan.committed.is_empty()) {
        (None, _) => JournalState::Unused,
        (Some(_), true) => JournalState::Empty,
        (Some(_), false) => JournalState::NeedsReplay,
    };
    JournalListing {
        start: area.start,
        log_chunks: area.log_chunks,
        state,
        superblock: scan.sup,
        problem: None,
        transactions,
        commits_in_place: None,
    }
}

/// Lists the journal of `source`. A damaged superblock is listed with its
/// problem and no transaction; other errors (I/O) are returned.
pub fn journal_listing(source: &SharedSource) -> Result<JournalListing> {
    let area = JournalArea::new(source.geometry());
    let empty = |state, problem| JournalListing {
        start: area.start,
        log_chunks: area.log_chunks,
        state,
        superblock: None,
        problem,
        transactions: Vec::new(),
        commits_in_place: None,
    };
    if !area.has_superblock() {
        return Ok(empty(JournalState::None, None));
    }
    match scan(source.device(), source.geometry()) {
        Ok(found) => Ok(listing_of(&area, found)),
        Err(Error::Journal { chunk, source, .. }) => Ok(empty(
            JournalState::Damaged,
            Some(format!("journal superblock (chunk {chunk}): {source}")),
        )),
        Err(other) => Err(other),
    }
}

impl JournalDump {
    /// The journal view of `source`.
    pub fn of(source: &SharedSource) -> Result<Self> {
        let bitmap = source.load_bitmap()?;
        let mut journal = journal_listing(source)?;
        journal.commits_in_place = in_place_note(source.geometry());
        Ok(JournalDump {
            head: source.head(&bitmap, None),
            journal,
        })
    }
}
