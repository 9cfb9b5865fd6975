//! The state of regions whose bitset word is lost, never guessed silently:
//! decided per region from the data (the source device and the clone's
//! destination), or set as the caller chose, and told back as runs with the
//! reason of each.

use std::fmt;
use std::ops::Range;

use serde::Serialize;

use crate::bitset::DenseBitmap;
use crate::blockdev::BlockDev;
use crate::error::{Error, Result};

use super::geometry::Geometry;

/// Bytes compared at a time.
const COMPARE_BYTES: u64 = 1 << 20;

/// The state the caller gives every lost region (`--lost-regions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LostRegions {
    /// Hydrated: the kernel reads them from the destination.
    Hydrated,
    /// Not hydrated: the kernel copies them again from the source.
    Unhydrated,
}

/// Why a lost region got its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The caller chose it.
    Chosen,
    /// The destination equals the source: hydrated either way, so hydrated.
    DestEqualsSource,
    /// The destination differs from the source and is not all zero: it holds
    /// data written through the clone, hydrated.
    DestDiffers,
    /// The destination is all zero and the source is not: never copied.
    DestZero,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Chosen => "as --lost-regions chose",
            Reason::DestEqualsSource => "the destination equals the source",
            Reason::DestDiffers => "the destination holds data the source does not",
            Reason::DestZero => "the destination is all zero and the source is not",
        })
    }
}

/// A run of lost regions given one state for one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DecidedRun {
    /// The first region.
    pub start: u64,
    /// How many regions.
    pub count: u64,
    /// The state given.
    pub hydrated: bool,
    /// Why.
    pub reason: Reason,
}

/// Gives every region of `lost` the state `choice`.
pub fn decide_by_choice(lost: &[Range<u64>], choice: LostRegions) -> Vec<DecidedRun> {
    lost.iter()
        .map(|range| DecidedRun {
            start: range.start,
            count: range.end - range.start,
            hydrated: choice == LostRegions::Hydrated,
            reason: Reason::Chosen,
        })
        .collect()
}

/// Decides every region of `lost` from its bytes on `source` and `dest`
/// (both at least the target's length). Fails on a short device or an I/O
/// error.
pub fn decide_from_data(
    geometry: &Geometry,
    lost: &[Range<u64>],
    source: &dyn BlockDev,
    dest: &dyn BlockDev,
) -> Result<Vec<DecidedRun>> {
    let target_bytes = geometry.target_sectors() * 512;
    for (device, role) in [(source, "source"), (dest, "destination")] {
        if device.size() < target_bytes {
            return Err(Error::Invalid(format!(
                "{}: the {role} holds {} bytes, less than the clone's target ({target_bytes} bytes)",
                device.path().display(),
                device.size()
            )));
        }
    }
    let mut runs: Vec<DecidedRun> = Vec::new();
    let mut buffers = Buffers::default();
    for region in lost.iter().flat_map(|r| r.clone()) {
        let reason = buffers.compare(geometry, region, source, dest)?;
        match runs.last_mut() {
            Some(run) if run.reason == reason && run.start + run.count == region => run.count += 1,
            _ => runs.push(DecidedRun {
                start: region,
                count: 1,
                hydrated: reason != Reason::DestZero,
                reason,
            }),
        }
    }
    Ok(runs)
}

/// Sets the bits of `runs` in `bits` as decided.
pub fn apply(bits: &mut DenseBitmap, runs: &[DecidedRun]) {
    for run in runs {
        for region in run.start..run.start + run.count {
            if run.hydrated {
                bits.test_and_set(region);
            } else {
                bits.clear(region);
            }
        }
    }
}

#[derive(Default)]
struct Buffers {
    source: Vec<u8>,
    dest: Vec<u8>,
}

impl Buffers {
    fn compare(
        &mut self,
        geometry: &Geometry,
        region: u64,
        source: &dyn BlockDev,
        dest: &dyn BlockDev,
    ) -> Result<Reason> {
        let start = region * geometry.region_sectors() * 512;
        let end = start + geometry.region_len(region) * 512;
        let (mut equal, mut dest_zero) = (true, true);
        let mut at = start;
        while at < end {
            let len = (end - at).min(COMPARE_BYTES) as usize;
            self.source.resize(len, 0);
            self.dest.resize(len, 0);
            let what = || format!("region {region} of the clone");
            source.read_at(&mut self.source, at, &what)?;
            dest.read_at(&mut self.dest, at, &what)?;
            equal &= self.source == self.dest;
            dest_zero &= self.dest.iter().all(|&b| b == 0);
            if !equal && !dest_zero {
                return Ok(Reason::DestDiffers);
            }
            at += len as u64;
        }
        Ok(match (equal, dest_zero) {
            (true, _) => Reason::DestEqualsSource,
            (false, true) => Reason::DestZero,
            (false, false) => Reason::DestDiffers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memdev::MemDev;

    const REGION: usize = 8 * 512;

    fn device(regions: &[u8]) -> MemDev {
        let mut bytes = vec![0; regions.len() * REGION];
        for (chunk, &fill) in bytes.chunks_mut(REGION).zip(regions) {
            chunk[REGION - 1] = fill;
        }
        MemDev::from_bytes("dev", bytes)
    }

    #[test]
    fn each_region_is_decided_from_its_bytes() {
        let geometry = Geometry::new(8, 8 * 6).unwrap();
        let source = device(&[1, 1, 0, 2, 2, 5]);
        let dest = device(&[1, 0, 0, 3, 0, 5]);
        let runs =
            decide_from_data(&geometry, std::slice::from_ref(&(0..6)), &source, &dest).unwrap();
        let hydrated = |start, count, reason| DecidedRun {
            start,
            count,
            hydrated: reason != Reason::DestZero,
            reason,
        };
        assert_eq!(
            runs,
            [
                hydrated(0, 1, Reason::DestEqualsSource),
                hydrated(1, 1, Reason::DestZero),
                hydrated(2, 1, Reason::DestEqualsSource),
                hydrated(3, 1, Reason::DestDiffers),
                hydrated(4, 1, Reason::DestZero),
                hydrated(5, 1, Reason::DestEqualsSource),
            ]
        );
        let mut bits = DenseBitmap::new(6);
        bits.test_and_set(1);
        apply(&mut bits, &runs);
        let set: Vec<u64> = (0..6).filter(|&r| bits.get(r)).collect();
        assert_eq!(set, [0, 2, 3, 5]);
    }

    #[test]
    fn only_lost_regions_are_read_and_alike_neighbours_make_one_run() {
        let geometry = Geometry::new(8, 8 * 6).unwrap();
        let source = device(&[1, 1, 1, 1, 1, 1]);
        let dest = device(&[0, 0, 0, 9, 0, 0]);
        let runs = decide_from_data(&geometry, &[1..3, 4..6], &source, &dest).unwrap();
        let zero = |start, count| DecidedRun {
            start,
            count,
            hydrated: false,
            reason: Reason::DestZero,
        };
        assert_eq!(runs, [zero(1, 2), zero(4, 2)]);
    }

    #[test]
    fn a_short_destination_is_refused_by_name() {
        let geometry = Geometry::new(8, 8 * 6).unwrap();
        let refused = decide_from_data(
            &geometry,
            std::slice::from_ref(&(0..1)),
            &device(&[0; 6]),
            &device(&[0; 5]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            refused.contains("the destination holds 20480 bytes"),
            "{refused}"
        );
    }

    #[test]
    fn a_choice_marks_every_lost_range() {
        let runs = decide_by_choice(&[2..5, 9..10], LostRegions::Unhydrated);
        assert_eq!(runs.len(), 2);
        assert!(runs
            .iter()
            .all(|r| !r.hydrated && r.reason == Reason::Chosen));
        assert_eq!((runs[0].start, runs[0].count, runs[1].count), (2, 3, 1));
    }
}
