//! THE walk over the metadata areas of a persistent store, over any
//! [`BlockDev`]: in order, each area chunk read once, with read-ahead hints for
//! the areas to come; the kernel's areas only, or every area location (for
//! salvage). The checker, the store reader (dump, migrate) and the merge read
//! the areas through it. Data chunks are never read.

use super::area::{parse_area, AreaParse};
use super::layout::Geometry;
use crate::blockdev::BlockDev;
use crate::error::Result;

/// Which areas a scan visits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanMode {
    /// Exactly the areas the kernel reads on load: area 0, then the next one
    /// while the previous was full.
    Kernel,
    /// Every area location on the device, for salvage.
    AllAreas,
}

/// One area as read from the device.
#[derive(Debug)]
pub struct AreaView<'a> {
    /// The area index.
    pub index: u64,
    /// The chunk holding it.
    pub chunk: u64,
    /// The area's bytes (one chunk).
    pub bytes: &'a [u8],
    /// The terminator reading of those bytes.
    pub parse: AreaParse,
}

/// What the scan met next.
#[derive(Debug)]
pub enum ScanItem<'a> {
    /// An area that lies on the device.
    Area(AreaView<'a>),
    /// The kernel would read this area (the previous one was full) but it lies
    /// past the end of the device.
    PastEnd {
        /// The area index.
        index: u64,
        /// Where it would be.
        chunk: u64,
    },
}

/// Areas hinted ahead of the one being read.
const READ_AHEAD_AREAS: u64 = 64;

/// A streaming walk over the areas of a store.
pub struct AreaScanner<'d> {
    device: &'d dyn BlockDev,
    geometry: Geometry,
    mode: ScanMode,
    next: u64,
    hinted_up_to: u64,
    finished: bool,
    buffer: Vec<u8>,
}

impl<'d> AreaScanner<'d> {
    /// Starts a walk at area 0.
    pub fn new(device: &'d dyn BlockDev, geometry: Geometry, mode: ScanMode) -> Self {
        AreaScanner {
            device,
            geometry,
            mode,
            next: 0,
            hinted_up_to: 0,
            finished: false,
            buffer: vec![0u8; geometry.chunk_bytes()],
        }
    }

    /// Reads the next area, or returns `None` when the walk is over.
    pub fn next_area(&mut self) -> Result<Option<ScanItem<'_>>> {
        if self.finished {
            return Ok(None);
        }
        let index = self.next;
        let chunk = self.geometry.area_location(index);
        if !self.geometry.area_fits(index) {
            self.finished = true;
            return Ok(match self.mode {
                ScanMode::Kernel => Some(ScanItem::PastEnd { index, chunk }),
                ScanMode::AllAreas => None,
            });
        }
        self.hint(index);
        if let Err(e) = self.device.read_chunk(chunk, &mut self.buffer) {
            self.finished = true;
            return Err(e);
        }
        let parse = parse_area(&self.buffer);
        self.next += 1;
        if self.mode == ScanMode::Kernel && !parse.full {
            self.finished = true;
        }
        Ok(Some(ScanItem::Area(AreaView {
            index,
            chunk,
            bytes: &self.buffer,
            parse,
        })))
    }

    fn hint(&mut self, index: u64) {
        if index < self.hinted_up_to.saturating_sub(READ_AHEAD_AREAS / 2) {
            return;
        }
        let from = index.max(self.hinted_up_to);
        let to = index + READ_AHEAD_AREAS;
        let chunk_bytes = self.geometry.chunk_bytes() as u64;
        for area in from..to {
            if !self.geometry.area_fits(area) {
                break;
            }
            let offset = self.geometry.area_location(area) * chunk_bytes;
            self.device.will_need(offset, chunk_bytes);
        }
        self.hinted_up_to = to;
    }
}
