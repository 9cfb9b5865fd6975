//! The kernel's in-memory state after it loads a store (`next_free`,
//! `current_area`, `current_committed`), and the usage figures `dmsetup status`
//! prints from it.

use serde::{Deserialize, Serialize};

use super::area::AreaParse;
use super::layout::{Geometry, HEADER_CHUNKS};
use super::record::ExceptionRecord;

/// What the kernel knows after reading the metadata of a valid store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadState {
    /// The area new records are appended to (the last one read).
    pub current_area: u64,
    /// Records already in the current area.
    pub current_committed: u64,
    /// The next chunk to allocate, after `skip_metadata`.
    pub next_free: u64,
    /// Records read in all areas.
    pub records: u64,
    /// Areas that were full.
    pub full_areas: u64,
    /// The highest new_chunk + 1 seen (before skipping metadata); the
    /// pre-2.6.29 code used this as `next_free`.
    pub legacy_next_free: u64,
}

impl LoadState {
    /// The state of a freshly formatted store.
    pub fn fresh() -> Self {
        LoadState {
            current_area: 0,
            current_committed: 0,
            next_free: HEADER_CHUNKS + 1,
            records: 0,
            full_areas: 0,
            legacy_next_free: HEADER_CHUNKS + 1,
        }
    }
}

/// Builds a [`LoadState`] area by area, as the kernel's `read_exceptions` does.
#[derive(Debug, Clone)]
pub struct LoadStateBuilder {
    state: LoadState,
}

impl Default for LoadStateBuilder {
    fn default() -> Self {
        LoadStateBuilder {
            state: LoadState::fresh(),
        }
    }
}

impl LoadStateBuilder {
    /// Accounts for one record the kernel would add.
    #[inline]
    pub fn record(&mut self, record: &ExceptionRecord) {
        self.state.records += 1;
        self.state.legacy_next_free = self
            .state
            .legacy_next_free
            .max(record.new_chunk.saturating_add(1));
    }

    /// Accounts for the end of area `index` (after its records).
    pub fn area(&mut self, index: u64, parse: &AreaParse) {
        self.state.current_area = index;
        if parse.full {
            self.state.full_areas += 1;
            self.state.current_committed = parse.entries as u64;
        } else {
            self.state.current_committed = parse.entries as u64;
        }
    }

    /// The final state, with `skip_metadata` applied to `next_free`.
    pub fn finish(mut self, geometry: &Geometry) -> LoadState {
        self.state.next_free = geometry.skip_metadata(self.state.legacy_next_free);
        self.state
    }
}

/// The three numbers of `dmsetup status` for a valid snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// `next_free * chunk_size`: header, areas and data chunks handed out;
    /// `None` (null in a dump) when records point so far past the end of the
    /// device that the figure would be impossible.
    #[serde(default)]
    pub sectors_allocated: Option<u64>,
    /// The COW device size in sectors.
    pub total_sectors: u64,
    /// `(current_area + 2) * chunk_size`: the header and every area up to the current.
    pub metadata_sectors: u64,
}

impl Usage {
    /// The usage the kernel would report for `state` on `geometry`.
    pub fn of(state: &LoadState, geometry: &Geometry) -> Self {
        let chunk = u64::from(geometry.chunk_sectors());
        let total_sectors = geometry.device_sectors();
        Usage {
            sectors_allocated: state
                .next_free
                .checked_mul(chunk)
                .filter(|&sectors| sectors <= total_sectors),
            total_sectors,
            metadata_sectors: (state.current_area + 2).saturating_mul(chunk),
        }
    }

    /// The status text: `allocated/total metadata`, or `Invalid` for an
    /// invalidated store; an impossible allocated figure reads `unknown`.
    pub fn status_text(&self, valid: bool) -> String {
        if !valid {
            return "Invalid".to_string();
        }
        match self.sectors_allocated {
            Some(allocated) => format!(
                "{allocated}/{} {}",
                self.total_sectors, self.metadata_sectors
            ),
            None => format!("unknown/{} {}", self.total_sectors, self.metadata_sectors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo(chunks: u64) -> Geometry {
        Geometry::new(8, chunks * 4096).unwrap()
    }

    #[test]
    fn fresh_store_reports_two_chunks() {
        let g = geo(2048);
        let state = LoadStateBuilder::default().finish(&g);
        assert_eq!(Usage::of(&state, &g).status_text(true), "16/16384 16");
    }

    #[test]
    fn exactly_full_area_skips_the_next_area_chunk() {
        let g = geo(512);
        let mut builder = LoadStateBuilder::default();
        for i in 0..256 {
            builder.record(&ExceptionRecord {
                old_chunk: i,
                new_chunk: i + 2,
            });
        }
        builder.area(
            0,
            &AreaParse {
                entries: 256,
                full: true,
                garbage_at: None,
            },
        );
        builder.area(
            1,
            &AreaParse {
                entries: 0,
                full: false,
                garbage_at: None,
            },
        );
        let state = builder.finish(&g);
        assert_eq!(state.legacy_next_free, 258);
        assert_eq!(state.next_free, 259);
        assert_eq!(Usage::of(&state, &g).status_text(true), "2072/4096 24");
        assert_eq!(Usage::of(&state, &g).status_text(false), "Invalid");
    }

    #[test]
    fn an_impossible_allocation_is_unknown_not_saturated() {
        let g = geo(4096 / 8);
        let mut builder = LoadStateBuilder::default();
        builder.record(&ExceptionRecord {
            old_chunk: 1,
            new_chunk: u64::MAX,
        });
        let usage = Usage::of(&builder.finish(&g), &g);
        assert_eq!(usage.sectors_allocated, None);
        assert!(usage.status_text(true).starts_with("unknown/4096 "));
        let json = serde_json::to_value(usage).unwrap();
        assert!(json["sectors_allocated"].is_null());
    }
}
