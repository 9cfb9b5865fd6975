//! Parsers for the status lines `dmsetup status` prints for the targets the
//! runtime loads (runtime.md 3.3; kernel 6.12 `dm-snap.c` `snapshot_status`,
//! `dm-clone-target.c` `clone_status`).

use std::str::FromStr;

use serde::Serialize;

/// A whole status line: `<start> <length> <target> <status...>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusLine {
    /// Length in sectors.
    pub sectors: u64,
    /// The target's status.
    pub status: TargetStatus,
}

/// The status of one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "target", rename_all = "kebab-case")]
pub enum TargetStatus {
    /// `snapshot-origin` reports nothing.
    SnapshotOrigin,
    /// A snapshot.
    Snapshot {
        /// Its state.
        state: SnapshotState,
    },
    /// An origin merging a snapshot back.
    SnapshotMerge {
        /// The state of the snapshot being merged.
        state: SnapshotState,
    },
    /// A clone.
    Clone {
        /// Its state.
        state: CloneState,
    },
    /// `linear` reports nothing.
    Linear,
}

/// What a snapshot (or a merging origin) reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SnapshotState {
    /// `<allocated>/<total> <metadata>`, all in sectors.
    Active {
        /// Sectors of the COW device in use (data and metadata).
        allocated_sectors: u64,
        /// Sectors of the COW device.
        total_sectors: u64,
        /// Sectors of metadata among the allocated ones.
        metadata_sectors: u64,
    },
    /// `Invalid`: the store filled up or failed; the snapshot is lost.
    Invalid,
    /// `Overflow`: a `PO` store is full; the snapshot is still readable.
    Overflow,
    /// `Merge failed`.
    MergeFailed,
    /// `Unknown`: the store cannot report its usage.
    Unknown,
}

impl SnapshotState {
    /// For a merging origin: true once nothing but metadata is left to merge.
    pub fn merge_done(&self) -> bool {
        matches!(self, SnapshotState::Active { allocated_sectors, metadata_sectors, .. }
            if allocated_sectors == metadata_sectors)
    }
}

/// What a clone reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CloneState {
    /// Working.
    Active(CloneUsage),
    /// `Fail`: the metadata failed; the device is in fail mode.
    Fail,
    /// `Error`: the metadata could not be read for the status.
    Error,
}

/// A working clone's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloneUsage {
    /// Metadata block size in sectors.
    pub metadata_block_sectors: u64,
    /// Metadata blocks used.
    pub metadata_used: u64,
    /// Metadata blocks in all.
    pub metadata_total: u64,
    /// Region size in sectors.
    pub region_sectors: u64,
    /// Regions hydrated.
    pub hydrated_regions: u64,
    /// Regions in all.
    pub total_regions: u64,
    /// Regions being hydrated now.
    pub hydrating_regions: u64,
    /// Feature arguments.
    pub features: Vec<String>,
    /// Core arguments, key and value words.
    pub core_args: Vec<String>,
    /// `rw`, `ro` or another metadata mode word.
    pub mode: String,
}

/// Why a status line does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status line '{line}': {problem}")]
pub struct StatusError {
    /// The line.
    pub line: String,
    /// What is wrong.
    pub problem: String,
}

struct Fields<'a> {
    line: &'a str,
    words: std::str::SplitWhitespace<'a>,
}

impl<'a> Fields<'a> {
    fn error(&self, problem: impl Into<String>) -> StatusError {
        StatusError {
            line: self.line.to_string(),
            problem: problem.into(),
        }
    }

    fn word(&mut self, what: &str) -> Result<&'a str, StatusError> {
        self.words
            .next()
            .ok_or_else(|| self.error(format!("{what} is missing")))
    }

    fn number(&mut self, what: &str) -> Result<u64, StatusError> {
        let word = self.word(what)?;
        self.parse(word, what)
    }

    fn parse(&self, word: &str, what: &str) -> Result<u64, StatusError> {
        word.parse()
            .map_err(|_| self.error(format!("{what} '{word}' is not a number")))
    }

    /// `<a>/<b>` as two numbers.
    fn ratio(&mut self, what: &str) -> Result<(u64, u64), StatusError> {
        let word = self.word(what)?;
        let (a, b) = word
            .split_once('/')
            .ok_or_else(|| self.error(format!("{what} '{word}' is not <used>/<total>")))?;
        Ok((self.parse(a, what)?, self.parse(b, what)?))
    }

    fn group(&mut self, what: &str) -> Result<Vec<String>, StatusError> {
        let count = self.number(&format!("the {what} count"))?;
        (0..count)
            .map(|_| self.word(what).map(str::to_string))
            .collect()
    }

    fn rest(&mut self) -> Vec<&'a str> {
        self.words.by_ref().collect()
    }
}

fn snapshot_state(fields: &mut Fields<'_>) -> Result<SnapshotState, StatusError> {
    let rest = fields.rest();
    let state = match rest.as_slice() {
        ["Invalid"] => SnapshotState::Invalid,
        ["Overflow"] => SnapshotState::Overflow,
        ["Merge", "failed"] => SnapshotState::MergeFailed,
        ["Unknown"] => SnapshotState::Unknown,
        [usage, metadata] => {
            let (allocated, total) = usage
                .split_once('/')
                .ok_or_else(|| fields.error(format!("usage '{usage}' is not <allocated>/<total>")))?;
            SnapshotState::Active {
                allocated_sectors: fields.parse(allocated, "the allocated sectors")?,
                total_sectors: fields.parse(total, "the total sectors")?,
                metadata_sectors: fields.parse(metadata, "the metadata sectors")?,
            }
        }
        _ => {
            return Err(fields.error(
                "expected '<allocated>/<total> <metadata>', Invalid, Overflow, 'Merge failed' or Unknown",
            ))
        }
    };
    Ok(state)
}

fn clone_state(fields: &mut Fields<'_>) -> Result<CloneState, StatusError> {
    let first = fields.word("the clone status")?;
    match first {
        "Fail" => return Ok(CloneState::Fail),
        "Error" => return Ok(CloneState::Error),
        _ => {}
    }
    let metadata_block_sectors = fields.parse(first, "the metadata block size")?;
    let (metadata_used, metadata_total) = fields.ratio("the metadata blocks")?;
    let region_sectors = fields.number("the region size")?;
    let (hydrated_regions, total_regions) = fields.ratio("the hydrated regions")?;
    let usage = CloneUsage {
        metadata_block_sectors,
        metadata_used,
        metadata_total,
        region_sectors,
        hydrated_regions,
        total_regions,
        hydrating_regions: fields.number("the hydrating regions")?,
        features: fields.group("feature")?,
        core_args: fields.group("core argument")?,
        mode: fields.word("the metadata mode")?.to_string(),
    };
    if let Some(extra) = fields.rest().first() {
        return Err(fields.error(format!("unexpected '{extra}' at the end")));
    }
    Ok(CloneState::Active(usage))
}

impl FromStr for StatusLine {
    type Err = StatusError;

    fn from_str(line: &str) -> Result<Self, StatusError> {
        let line = line.trim();
        let mut fields = Fields {
            line,
            words: line.split_whitespace(),
        };
        fields.number("the start sector")?;
        let sectors = fields.number("the length")?;
        let status = match fields.word("the target type")? {
            "snapshot-origin" => TargetStatus::SnapshotOrigin,
            "linear" => TargetStatus::Linear,
            "snapshot" => TargetStatus::Snapshot {
                state: snapshot_state(&mut fields)?,
            },
            "snapshot-merge" => TargetStatus::SnapshotMerge {
                state: snapshot_state(&mut fields)?,
            },
            "clone" => TargetStatus::Clone {
                state: clone_state(&mut fields)?,
            },
            other => return Err(fields.error(format!("target '{other}' is not one cowrt loads"))),
        };
        Ok(StatusLine { sectors, status })
    }
}

#[cfg(test)]
mod tests;
