//! Device-mapper table lines of the targets the runtime loads, with `Display`
//! (the line `dmsetup create --table` takes) and `FromStr` (the line `dmsetup
//! table` prints, devices as `major:minor` or paths). Formats: the kernel's
//! `Documentation/admin-guide/device-mapper/snapshot.rst` and `dm-clone.rst`.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::words::Words;

/// How a snapshot keeps its exceptions: the table's third snapshot argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Persistence {
    /// `P`: on the COW device (persistent and legacy stores).
    Persistent,
    /// `PO`: on the COW device; a full store reports `Overflow` instead of
    /// invalidating the snapshot (writes to the snapshot fail).
    PersistentOverflow,
    /// `N`: in memory only; nothing survives deactivation.
    Transient,
}

impl Persistence {
    /// The table word.
    pub fn word(self) -> &'static str {
        match self {
            Persistence::Persistent => "P",
            Persistence::PersistentOverflow => "PO",
            Persistence::Transient => "N",
        }
    }
}

/// The arguments of `snapshot` and `snapshot-merge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotArgs {
    /// The origin device.
    pub origin: String,
    /// The COW device.
    pub cow: String,
    /// How the exceptions are kept.
    pub persistence: Persistence,
    /// Chunk size in sectors.
    pub chunk_sectors: u32,
}

/// One table line (one target covering the whole device from sector 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "target", rename_all = "kebab-case")]
pub enum Table {
    /// `snapshot-origin <origin>`: the origin, copying out for its snapshots.
    SnapshotOrigin {
        /// Length in sectors.
        sectors: u64,
        /// The origin device.
        origin: String,
    },
    /// `snapshot <origin> <cow> P|PO|N <chunk>`.
    Snapshot {
        /// Length in sectors.
        sectors: u64,
        /// Its arguments.
        #[serde(flatten)]
        snapshot: SnapshotArgs,
    },
    /// `snapshot-merge <origin> <cow> P|PO <chunk>`: rolls the origin back to
    /// the snapshot.
    SnapshotMerge {
        /// Length in sectors.
        sectors: u64,
        /// Its arguments.
        #[serde(flatten)]
        snapshot: SnapshotArgs,
    },
    /// `clone <metadata> <dest> <source> <region> [n features] [n core args]`.
    Clone {
        /// Length in sectors.
        sectors: u64,
        /// The metadata device.
        metadata: String,
        /// The destination device (hydrated).
        dest: String,
        /// The source device (read until hydrated).
        source: String,
        /// Region size in sectors.
        region_sectors: u32,
        /// Feature arguments, e.g. `no_hydration`.
        features: Vec<String>,
        /// Core arguments as key and value words, e.g. `hydration_threshold 1`.
        core_args: Vec<String>,
    },
    /// `linear <device> <offset>`.
    Linear {
        /// Length in sectors.
        sectors: u64,
        /// The device.
        device: String,
        /// Start sector on the device.
        offset: u64,
    },
}

/// Why a table line does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("table line '{line}': {problem}")]
pub struct TableError {
    /// The line.
    pub line: String,
    /// What is wrong.
    pub problem: String,
}

impl Table {
    /// The target type word.
    pub fn target(&self) -> &'static str {
        match self {
            Table::SnapshotOrigin { .. } => "snapshot-origin",
            Table::Snapshot { .. } => "snapshot",
            Table::SnapshotMerge { .. } => "snapshot-merge",
            Table::Clone { .. } => "clone",
            Table::Linear { .. } => "linear",
        }
    }

    /// Length in sectors.
    pub fn sectors(&self) -> u64 {
        match self {
            Table::SnapshotOrigin { sectors, .. }
            | Table::Snapshot { sectors, .. }
            | Table::SnapshotMerge { sectors, .. }
            | Table::Clone { sectors, .. }
            | Table::Linear { sectors, .. } => *sectors,
        }
    }

    /// Every device the line names.
    pub fn devices(&self) -> Vec<&str> {
        match self {
            Table::SnapshotOrigin { origin, .. } => vec![origin],
            Table::Snapshot { snapshot, .. } | Table::SnapshotMerge { snapshot, .. } => {
                vec![&snapshot.origin, &snapshot.cow]
            }
            Table::Clone {
                metadata,
                dest,
                source,
                ..
            } => vec![metadata, dest, source],
            Table::Linear { device, .. } => vec![device],
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0 {} {}", self.sectors(), self.target())?;
        match self {
            Table::SnapshotOrigin { origin, .. } => write!(f, " {origin}"),
            Table::Snapshot { snapshot, .. } | Table::SnapshotMerge { snapshot, .. } => write!(
                f,
                " {} {} {} {}",
                snapshot.origin,
                snapshot.cow,
                snapshot.persistence.word(),
                snapshot.chunk_sectors
            ),
            Table::Clone {
                metadata,
                dest,
                source,
                region_sectors,
                features,
                core_args,
                ..
            } => {
                write!(f, " {metadata} {dest} {source} {region_sectors}")?;
                for group in [features, core_args] {
                    if !group.is_empty() {
                        write!(f, " {} {}", group.len(), group.join(" "))?;
                    }
                }
                Ok(())
            }
            Table::Linear { device, offset, .. } => write!(f, " {device} {offset}"),
        }
    }
}

fn persistence(word: &str) -> Result<Persistence, String> {
    match word.to_ascii_uppercase().as_str() {
        "P" => Ok(Persistence::Persistent),
        "PO" => Ok(Persistence::PersistentOverflow),
        "N" => Ok(Persistence::Transient),
        _ => Err(format!("persistence '{word}' is not P, PO or N")),
    }
}

fn snapshot_args(words: &mut Words<'_>) -> Result<SnapshotArgs, String> {
    Ok(SnapshotArgs {
        origin: words.word("the origin")?.to_string(),
        cow: words.word("the COW device")?.to_string(),
        persistence: persistence(words.word("the persistence")?)?,
        chunk_sectors: words.number("the chunk size")?,
    })
}

fn parse_table(line: &str) -> Result<Table, String> {
    let mut words = Words::new(line);
    let start: u64 = words.number("the start sector")?;
    if start != 0 {
        return Err("the target does not start at sector 0".to_string());
    }
    let sectors = words.number("the length")?;
    let table = match words.word("the target type")? {
        "snapshot-origin" => Table::SnapshotOrigin {
            sectors,
            origin: words.word("the origin")?.to_string(),
        },
        "snapshot" => Table::Snapshot {
            sectors,
            snapshot: snapshot_args(&mut words)?,
        },
        "snapshot-merge" => Table::SnapshotMerge {
            sectors,
            snapshot: snapshot_args(&mut words)?,
        },
        "clone" => Table::Clone {
            sectors,
            metadata: words.word("the metadata device")?.to_string(),
            dest: words.word("the destination device")?.to_string(),
            source: words.word("the source device")?.to_string(),
            region_sectors: words.number("the region size")?,
            features: words.group("feature")?,
            core_args: words.group("core argument")?,
        },
        "linear" => Table::Linear {
            sectors,
            device: words.word("the device")?.to_string(),
            offset: words.number("the offset")?,
        },
        other => return Err(format!("target '{other}' is not one cowrt loads")),
    };
    words.end()?;
    Ok(table)
}

impl FromStr for Table {
    type Err = TableError;

    fn from_str(line: &str) -> Result<Self, TableError> {
        parse_table(line).map_err(|problem| TableError {
            line: line.trim().to_string(),
            problem,
        })
    }
}

#[cfg(test)]
mod tests;
