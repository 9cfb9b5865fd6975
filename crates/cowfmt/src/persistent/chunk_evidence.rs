//! What the areas of a persistent store say about its chunk size: under a
//! candidate chunk size, how many records of the first areas land where the
//! kernel puts them (on a data chunk after their area, before the area after
//! next, each chunk once). Repair infers a lost chunk size from it; the checker
//! uses it to tell a damaged chunk size field from an empty store.

use std::collections::HashSet;

use serde::Serialize;

use super::header::MAX_CHUNK_SECTORS;
use super::layout::Geometry;
use super::record::{ExceptionRecord, RECORD_BYTES};
use crate::device::Device;

/// Areas read per candidate chunk size: enough to see past a damaged area 0.
pub const EVIDENCE_AREAS: u64 = 4;

/// Bytes read at a time from an area.
const WINDOW_BYTES: usize = 64 * 1024;

/// What the first areas hold under one chunk size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChunkSizeEvidence {
    /// The candidate chunk size, in sectors.
    pub chunk_size: u32,
    /// Area locations read.
    pub areas_read: u64,
    /// Areas whose records are credible.
    pub credible_areas: u64,
    /// Credible records in those areas.
    pub credible_records: u64,
    /// Areas holding records that are not credible (overwritten, or not areas at all).
    pub junk_areas: u64,
}

/// Credible records another chunk size must read before an intact header's
/// chunk size, which reads none, is called wrong (docs/decisions.md).
pub const COMPELLING_RECORDS: u64 = 16;

impl ChunkSizeEvidence {
    /// True when some area reads credible records under this chunk size.
    pub fn is_plausible(&self) -> bool {
        self.credible_records > 0
    }

    /// True when the records are too many to be stale bytes that happen to
    /// look like records (a device reused from another store or other
    /// metadata): enough to call an intact header's chunk size wrong.
    pub fn is_compelling(&self) -> bool {
        self.credible_records >= COMPELLING_RECORDS
    }

    /// The evidence in words: "344 records in 2 of the first 4 areas land on
    /// the data chunks after their area, with no collision".
    pub fn text(&self) -> String {
        let mut text = format!(
            "{} record{} in {} of the first {} area{} land on the data chunks after their area, with no collision",
            self.credible_records,
            if self.credible_records == 1 { "" } else { "s" },
            self.credible_areas,
            self.areas_read,
            if self.areas_read == 1 { "" } else { "s" },
        );
        if self.junk_areas > 0 {
            text.push_str(&format!(
                " ({} area{} read as junk)",
                self.junk_areas,
                if self.junk_areas == 1 { "" } else { "s" }
            ));
        }
        text
    }
}

/// The evidence for `chunk_sectors`, or `None` when the device cannot hold a
/// header and area 0 of that size.
pub fn weigh(input: &Device, chunk_sectors: u32) -> Option<ChunkSizeEvidence> {
    let geometry = Geometry::new(chunk_sectors, input.size_bytes()).ok()?;
    if !geometry.holds_first_area() {
        return None;
    }
    let mut evidence = ChunkSizeEvidence {
        chunk_size: chunk_sectors,
        areas_read: 0,
        credible_areas: 0,
        credible_records: 0,
        junk_areas: 0,
    };
    let mut seen = HashSet::new();
    for area in (0..EVIDENCE_AREAS).take_while(|&a| geometry.area_fits(a)) {
        evidence.areas_read += 1;
        let Some(tally) = weigh_area(input, &geometry, area, &mut seen) else {
            continue;
        };
        if tally.credible > 0 && tally.implausible * 8 <= tally.credible {
            evidence.credible_areas += 1;
            evidence.credible_records += tally.credible;
        } else if tally.implausible > 0 {
            evidence.junk_areas += 1;
        }
    }
    Some(evidence)
}

/// The evidence for every chunk size the device can hold, smallest first.
pub fn weigh_all(input: &Device) -> Vec<ChunkSizeEvidence> {
    std::iter::successors(Some(1u64), |s| Some(s << 1))
        .take_while(|&s| s <= MAX_CHUNK_SECTORS)
        .filter_map(|s| weigh(input, s as u32))
        .collect()
}

/// The chunk sizes other than `except` under which the areas read credible
/// records, smallest first.
pub fn plausible_others(input: &Device, except: u32) -> Vec<ChunkSizeEvidence> {
    weigh_all(input)
        .into_iter()
        .filter(|e| e.chunk_size != except && e.is_plausible())
        .collect()
}

/// Records of one area read up to its terminator.
#[derive(Default)]
struct AreaTally {
    credible: u64,
    implausible: u64,
}

/// Reads area `area` up to its terminator (or until it is plainly junk) and
/// sorts its records; `seen` holds the chunks earlier records landed on.
/// `None` when the area cannot be read.
fn weigh_area(
    input: &Device,
    geometry: &Geometry,
    area: u64,
    seen: &mut HashSet<u64>,
) -> Option<AreaTally> {
    let chunk_bytes = geometry.chunk_bytes();
    let location = geometry.area_location(area);
    let lowest = location + 1;
    let beyond = geometry
        .area_location(area + 2)
        .min(geometry.device_chunks());
    let base = location * chunk_bytes as u64;
    let window = chunk_bytes.min(WINDOW_BYTES);
    let mut buffer = vec![0u8; window];
    let mut tally = AreaTally::default();
    let mut offset = 0usize;
    while offset < chunk_bytes {
        input
            .read_at(&mut buffer, base + offset as u64, || format!("area {area}"))
            .ok()?;
        for raw in buffer.chunks_exact(RECORD_BYTES) {
            let record = ExceptionRecord::decode(raw);
            if record.is_terminator() {
                return Some(tally);
            }
            let new = record.new_chunk;
            let lands = (lowest..beyond).contains(&new)
                && !geometry.is_metadata_chunk(new)
                && seen.insert(new);
            if lands {
                tally.credible += 1;
            } else {
                tally.implausible += 1;
            }
            if tally.implausible > 8 && tally.implausible > tally.credible {
                return Some(tally);
            }
        }
        offset += window;
    }
    Some(tally)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistent::test_store::committed_store;

    fn store(dir: &tempfile::TempDir, records: u64) -> std::path::PathBuf {
        let path = dir.path().join("cow.img");
        committed_store(&path, 2048, records, |i| i * 3);
        path
    }

    #[test]
    fn only_the_true_chunk_size_reads_credible_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = store(&dir, 600);
        let device = Device::open(&path, crate::device::Access::ReadOnly).unwrap();
        let truth = weigh(&device, 8).unwrap();
        assert_eq!(
            (
                truth.credible_records,
                truth.credible_areas,
                truth.junk_areas
            ),
            (600, 3, 0)
        );
        assert!(truth
            .text()
            .starts_with("600 records in 3 of the first 4 areas"));
        assert_eq!(plausible_others(&device, 8), vec![]);
        let others: Vec<u32> = plausible_others(&device, 1)
            .iter()
            .map(|e| e.chunk_size)
            .collect();
        assert_eq!(others, vec![8]);
    }

    #[test]
    fn a_damaged_area_zero_still_leaves_the_later_areas_as_evidence() {
        let dir = tempfile::tempdir().unwrap();
        let path = store(&dir, 600);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, &[0xff; 4096], 4096).unwrap();
        let device = Device::open(&path, crate::device::Access::ReadOnly).unwrap();
        let evidence = weigh(&device, 8).unwrap();
        assert_eq!(
            (
                evidence.credible_records,
                evidence.credible_areas,
                evidence.junk_areas
            ),
            (344, 2, 1)
        );
        assert!(evidence.is_plausible());
    }
}
