//! Parsers for the status lines `dmsetup status` prints for the targets the
//! runtime loads (runtime.md 3.3; kernel 6.12 `dm-snap.c` `snapshot_status`,
//! `dm-clone-target.c` `clone_status`).

use std::str::FromStr;

use serde::Serialize;

use super::words::{parse, Words};

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

impl CloneUsage {
    /// Whether background hydration is on (no `no_hydration` feature).
    pub fn hydration_enabled(&self) -> bool {
        !self.features.iter().any(|f| f == "no_hydration")
    }

    /// The value of core argument `key` (`hydration_threshold`,
    /// `hydration_batch_size`), if the kernel printed it as a number.
    pub fn core_arg(&self, key: &str) -> Option<u64> {
        self.core_args
            .chunks_exact(2)
            .find(|pair| pair[0] == key)
            .and_then(|pair| pair[1].parse().ok())
    }

    /// Whether every region is hydrated: the destination no longer needs the
    /// source.
    pub fn is_complete(&self) -> bool {
        self.hydrated_regions == self.total_regions
    }
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

fn snapshot_state(words: &mut Words<'_>) -> Result<SnapshotState, String> {
    let state = match words.rest().as_slice() {
        ["Invalid"] => SnapshotState::Invalid,
        ["Overflow"] => SnapshotState::Overflow,
        ["Merge", "failed"] => SnapshotState::MergeFailed,
        ["Unknown"] => SnapshotState::Unknown,
        [usage, metadata] => {
            let (allocated, total) = usage
                .split_once('/')
                .ok_or_else(|| format!("usage '{usage}' is not <allocated>/<total>"))?;
            SnapshotState::Active {
                allocated_sectors: parse(allocated, "the allocated sectors")?,
                total_sectors: parse(total, "the total sectors")?,
                metadata_sectors: parse(metadata, "the metadata sectors")?,
            }
        }
        _ => {
            return Err(
                "expected '<allocated>/<total> <metadata>', Invalid, Overflow, \
                        'Merge failed' or Unknown"
                    .to_string(),
            )
        }
    };
    Ok(state)
}

fn clone_state(words: &mut Words<'_>) -> Result<CloneState, String> {
    let first = words.word("the clone status")?;
    match first {
        "Fail" => return Ok(CloneState::Fail),
        "Error" => return Ok(CloneState::Error),
        _ => {}
    }
    let metadata_block_sectors = parse(first, "the metadata block size")?;
    let (metadata_used, metadata_total) = words.ratio("the metadata blocks")?;
    let region_sectors = words.number("the region size")?;
    let (hydrated_regions, total_regions) = words.ratio("the hydrated regions")?;
    let usage = CloneUsage {
        metadata_block_sectors,
        metadata_used,
        metadata_total,
        region_sectors,
        hydrated_regions,
        total_regions,
        hydrating_regions: words.number("the hydrating regions")?,
        features: words.group("feature")?,
        core_args: words.group("core argument")?,
        mode: words.word("the metadata mode")?.to_string(),
    };
    words.end()?;
    Ok(CloneState::Active(usage))
}

fn parse_status(line: &str) -> Result<StatusLine, String> {
    let mut words = Words::new(line);
    words.number::<u64>("the start sector")?;
    let sectors = words.number("the length")?;
    let status = match words.word("the target type")? {
        "snapshot-origin" => TargetStatus::SnapshotOrigin,
        "linear" => TargetStatus::Linear,
        "snapshot" => TargetStatus::Snapshot {
            state: snapshot_state(&mut words)?,
        },
        "snapshot-merge" => TargetStatus::SnapshotMerge {
            state: snapshot_state(&mut words)?,
        },
        "clone" => TargetStatus::Clone {
            state: clone_state(&mut words)?,
        },
        other => return Err(format!("target '{other}' is not one cowrt loads")),
    };
    Ok(StatusLine { sectors, status })
}

impl FromStr for StatusLine {
    type Err = StatusError;

    fn from_str(line: &str) -> Result<Self, StatusError> {
        parse_status(line).map_err(|problem| StatusError {
            line: line.trim().to_string(),
            problem,
        })
    }
}

#[cfg(test)]
mod tests;
