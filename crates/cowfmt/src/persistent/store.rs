//! Opening a persistent store and reading its metadata the way the kernel does.

use serde::{Deserialize, Serialize};

use super::area::area_records;
use super::header::Header;
use super::layout::Geometry;
use super::open::{self, Policy};
use super::record::ExceptionRecord;
use super::scan::{AreaScanner, ScanItem, ScanMode};
use super::state::{LoadState, LoadStateBuilder, Usage};
use crate::device::Device;
use crate::error::{Error, Result};

/// A record with the place it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedRecord {
    /// The area index.
    pub area: u64,
    /// The index inside the area.
    pub index: u64,
    /// The record.
    pub record: ExceptionRecord,
}

/// A summary of one area as the kernel read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaSummary {
    /// The area index.
    pub index: u64,
    /// The chunk holding it.
    pub chunk: u64,
    /// Records in it.
    pub entries: u64,
    /// Whether it was full (no terminator).
    pub full: bool,
}

/// Everything the kernel would load from a store, held in memory.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// The header as stored.
    pub header: Header,
    /// The geometry used to read it.
    pub geometry: Geometry,
    /// The areas read, in order.
    pub areas: Vec<AreaSummary>,
    /// Every record, in on-disk order.
    pub records: Vec<PlacedRecord>,
    /// The kernel's state after the load.
    pub state: LoadState,
}

impl Metadata {
    /// The usage figures `dmsetup status` would print.
    pub fn usage(&self) -> Usage {
        Usage::of(&self.state, &self.geometry)
    }
}

/// An open persistent store: its device, header and geometry.
#[derive(Debug)]
pub struct PersistentStore {
    device: Device,
    header: Header,
    geometry: Geometry,
}

pub use super::open::read_header;

impl PersistentStore {
    /// Opens a store: the magic must be SnAp and the version 1. The header's
    /// chunk size is used, as the kernel does; `chunk_size_override` replaces it
    /// only when the header's own value is unusable (for salvage).
    pub fn open(device: Device, chunk_size_override: Option<u32>) -> Result<Self> {
        Self::open_with(
            device,
            Policy::Strict {
                fallback: chunk_size_override,
            },
        )
    }

    /// Opens a store whose header may be damaged, reading it with the given
    /// chunk size whatever the header says.
    pub fn open_with_chunk_size(device: Device, chunk_sectors: u32) -> Result<Self> {
        Self::open_with(device, Policy::Tolerant { chunk_sectors })
    }

    fn open_with(device: Device, policy: Policy) -> Result<Self> {
        let (header, geometry) = open::open(&device, policy)?;
        Ok(PersistentStore {
            device,
            header,
            geometry,
        })
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Gives the device back.
    pub fn into_device(self) -> Device {
        self.device
    }

    /// The header as stored.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The geometry.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// A streaming walk over the areas.
    pub fn scan(&self, mode: ScanMode) -> AreaScanner<'_> {
        AreaScanner::new(&self.device, self.geometry, mode)
    }

    /// Reads every area the kernel reads and returns the records in memory. An
    /// area the kernel needs that lies past the end of the device is an error, as
    /// it is for the kernel. Records are read even from an invalidated store
    /// (the kernel skips them, but they are still on disk).
    pub fn load(&self) -> Result<Metadata> {
        let mut records = Vec::new();
        let walk = self.walk(|placed| {
            records.push(placed);
            Ok(())
        })?;
        if let Some((index, chunk)) = walk.past_end {
            return Err(Error::Invalid(format!(
                "{}: area {index} (chunk {chunk}) lies past the end of the device ({} chunks) although area {} is full; the kernel cannot load this store",
                self.device.path().display(),
                self.geometry.device_chunks(),
                index - 1
            )));
        }
        Ok(Metadata {
            header: self.header,
            geometry: self.geometry,
            areas: walk.areas,
            records,
            state: walk.state,
        })
    }

    /// Reads every area the kernel reads, handing each record to `on_record` in
    /// on-disk order, and returns what the walk learned. Errors from
    /// `on_record` are returned wrapped in [`Error::Output`].
    pub fn walk(
        &self,
        mut on_record: impl FnMut(PlacedRecord) -> std::io::Result<()>,
    ) -> Result<Walk> {
        let mut scanner = self.scan(ScanMode::Kernel);
        let mut builder = LoadStateBuilder::default();
        let mut areas = Vec::new();
        let mut past_end = None;
        while let Some(item) = scanner.next_area()? {
            match item {
                ScanItem::Area(view) => {
                    for (index, record) in area_records(view.bytes, view.parse.entries).enumerate()
                    {
                        builder.record(&record);
                        on_record(PlacedRecord {
                            area: view.index,
                            index: index as u64,
                            record,
                        })
                        .map_err(Error::Output)?;
                    }
                    builder.area(view.index, &view.parse);
                    areas.push(AreaSummary {
                        index: view.index,
                        chunk: view.chunk,
                        entries: view.parse.entries as u64,
                        full: view.parse.full,
                    });
                }
                ScanItem::PastEnd { index, chunk } => past_end = Some((index, chunk)),
            }
        }
        Ok(Walk {
            areas,
            state: builder.finish(&self.geometry),
            past_end,
        })
    }
}

/// What a walk over the kernel's areas learned, besides the records.
#[derive(Debug, Clone)]
pub struct Walk {
    /// The areas read, in order.
    pub areas: Vec<AreaSummary>,
    /// The kernel's state after reading them.
    pub state: LoadState,
    /// The area (index, chunk) the kernel needed that lies past the end of the
    /// device, if any: the load would fail there.
    pub past_end: Option<(u64, u64)>,
}
