//! Device-mapper table lines of the targets the runtime loads, with `Display`
//! (the line `dmsetup create --table` takes) and `FromStr` (the line `dmsetup
//! table` prints, devices as `major:minor` or paths). Formats: the kernel's
//! `Documentation/admin-guide/device-mapper/snapshot.rst` and `dm-clone.rst`.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

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
        /// The origin device.
        origin: String,
        /// The COW device.
        cow: String,
        /// How the exceptions are kept.
        persistence: Persistence,
        /// Chunk size in sectors.
        chunk_sectors: u32,
    },
    /// `snapshot-merge <origin> <cow> P|PO <chunk>`: rolls the origin back to
    /// the snapshot.
    SnapshotMerge {
        /// Length in sectors.
        sectors: u64,
        /// The origin device.
        origin: String,
        /// The COW device.
        cow: String,
        /// How the exceptions are kept.
        persistence: Persistence,
        /// Chunk size in sectors.
        chunk_sectors: u32,
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
            Table::Snapshot { origin, cow, .. } | Table::SnapshotMerge { origin, cow, .. } => {
                vec![origin, cow]
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
            Table::Snapshot {
                origin,
                cow,
                persistence,
                chunk_sectors,
                ..
            }
            | Table::SnapshotMerge {
                origin,
                cow,
                persistence,
                chunk_sectors,
                ..
            } => write!(f, " {origin} {cow} {} {chunk_sectors}", persistence.word()),
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

/// The words of a line, consumed in order, with errors naming the line.
struct Words<'a> {
    line: &'a str,
    words: std::str::SplitWhitespace<'a>,
}

impl<'a> Words<'a> {
    fn error(&self, problem: impl Into<String>) -> TableError {
        TableError {
            line: self.line.to_string(),
            problem: problem.into(),
        }
    }

    fn word(&mut self, what: &str) -> Result<&'a str, TableError> {
        self.words
            .next()
            .ok_or_else(|| self.error(format!("{what} is missing")))
    }

    fn number<T: FromStr>(&mut self, what: &str) -> Result<T, TableError> {
        let word = self.word(what)?;
        word.parse()
            .map_err(|_| self.error(format!("{what} '{word}' is not a number")))
    }

    fn group(&mut self, what: &str) -> Result<Vec<String>, TableError> {
        let Some(count) = self.words.next() else {
            return Ok(Vec::new());
        };
        let count: usize = count
            .parse()
            .map_err(|_| self.error(format!("{what} count '{count}' is not a number")))?;
        (0..count)
            .map(|_| self.word(what).map(str::to_string))
            .collect()
    }

    fn end(mut self) -> Result<(), TableError> {
        match self.words.next() {
            Some(extra) => Err(self.error(format!("unexpected '{extra}' at the end"))),
            None => Ok(()),
        }
    }
}

fn persistence(words: &Words<'_>, word: &str) -> Result<Persistence, TableError> {
    match word.to_ascii_uppercase().as_str() {
        "P" => Ok(Persistence::Persistent),
        "PO" => Ok(Persistence::PersistentOverflow),
        "N" => Ok(Persistence::Transient),
        _ => Err(words.error(format!("persistence '{word}' is not P, PO or N"))),
    }
}

impl FromStr for Table {
    type Err = TableError;

    fn from_str(line: &str) -> Result<Self, TableError> {
        let mut words = Words {
            line: line.trim(),
            words: line.split_whitespace(),
        };
        let start: u64 = words.number("the start sector")?;
        if start != 0 {
            return Err(words.error("the target does not start at sector 0"));
        }
        let sectors = words.number("the length")?;
        let target = words.word("the target type")?;
        let table = match target {
            "snapshot-origin" => Table::SnapshotOrigin {
                sectors,
                origin: words.word("the origin")?.to_string(),
            },
            "snapshot" | "snapshot-merge" => {
                let origin = words.word("the origin")?.to_string();
                let cow = words.word("the COW device")?.to_string();
                let kind = words.word("the persistence")?;
                let persistence = persistence(&words, kind)?;
                let chunk_sectors = words.number("the chunk size")?;
                if target == "snapshot" {
                    Table::Snapshot {
                        sectors,
                        origin,
                        cow,
                        persistence,
                        chunk_sectors,
                    }
                } else {
                    Table::SnapshotMerge {
                        sectors,
                        origin,
                        cow,
                        persistence,
                        chunk_sectors,
                    }
                }
            }
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
            other => return Err(words.error(format!("target '{other}' is not one cowrt loads"))),
        };
        words.end()?;
        Ok(table)
    }
}

#[cfg(test)]
mod tests;
