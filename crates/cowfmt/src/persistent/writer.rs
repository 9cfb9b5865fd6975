//! Writing a persistent store in the kernel's commit order: records are appended
//! to the current area; when an area fills, the next area is zeroed on disk
//! before the full area is written, so a reader never runs into stale bytes.

use super::area::{encode_area, parse_area};
use super::header::Header;
use super::layout::Geometry;
use super::record::{ExceptionRecord, RECORD_BYTES};
use super::state::{LoadState, Usage};
use super::store::PersistentStore;
use crate::device::{Access, Device};
use crate::error::{Error, Result};

/// What became of a committed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The record is in the current area (durable after [`StoreWriter::flush`]).
    Committed,
    /// The record filled its area, but the next area lies past the end of the
    /// device: as the kernel does, the store was invalidated and the record
    /// was not written.
    Invalidated,
}

/// Appends exceptions to a persistent store.
#[derive(Debug)]
pub struct StoreWriter {
    device: Device,
    geometry: Geometry,
    header: Header,
    current_area: u64,
    committed: usize,
    area: Vec<u8>,
    next_free: u64,
    dirty: bool,
    header_pending: bool,
    zeroed_ahead: bool,
}

impl StoreWriter {
    /// Formats `device` as the kernel does on first activation: a zeroed area
    /// 0, then (after a sync) the header chunk (16 bytes then zeros).
    pub fn format(device: Device, chunk_sectors: u32) -> Result<Self> {
        let mut writer = StoreWriter::begin(device, chunk_sectors)?;
        writer.write_header()?;
        Ok(writer)
    }

    /// Starts a new store on `device` without its header: area 0 is zeroed,
    /// and the header chunk is written by [`StoreWriter::finish`] as the last
    /// write, after a sync. Until then the device keeps whatever its first
    /// sector holds (the output guard's incomplete marker), so a job cut short
    /// never leaves a store that reads as complete.
    pub fn begin(device: Device, chunk_sectors: u32) -> Result<Self> {
        let geometry = Geometry::new(chunk_sectors, device.size_bytes())
            .map_err(|e| Error::format(device.path(), e))?;
        if !geometry.holds_first_area() {
            return Err(Error::format(
                device.path(),
                crate::error::FormatError::TooSmall {
                    what: format!(
                        "a persistent store with {}-byte chunks needs a header and an area",
                        geometry.chunk_bytes()
                    ),
                    device_bytes: device.size_bytes(),
                    needed_bytes: 2 * geometry.chunk_bytes() as u64,
                },
            ));
        }
        let area = vec![0u8; geometry.chunk_bytes()];
        device.write_chunk(geometry.area_location(0), &area)?;
        device.sync()?;
        Ok(StoreWriter {
            device,
            geometry,
            header: Header::new(chunk_sectors),
            current_area: 0,
            committed: 0,
            area,
            next_free: LoadState::fresh().next_free,
            dirty: false,
            header_pending: true,
            zeroed_ahead: false,
        })
    }

    /// Opens an existing valid store to append to it, positioned as the kernel
    /// would be after loading it.
    pub fn open(device: Device) -> Result<Self> {
        let store = PersistentStore::open(device, None)?;
        if !store.header().is_valid() {
            return Err(Error::Invalidated {
                path: store.device().path().to_path_buf(),
            });
        }
        let metadata = store.load()?;
        let geometry = store.geometry();
        let device = store.into_device();
        if device.access() != Access::ReadWrite {
            return Err(Error::Invalid(format!(
                "{}: opened read-only, cannot append",
                device.path().display()
            )));
        }
        let mut area = vec![0u8; geometry.chunk_bytes()];
        device.read_chunk(
            geometry.area_location(metadata.state.current_area),
            &mut area,
        )?;
        let committed = metadata.state.current_committed as usize;
        // Whatever follows the last record is not ours: write a clean terminator.
        area[committed * RECORD_BYTES..].fill(0);
        debug_assert_eq!(parse_area(&area).entries, committed);
        Ok(StoreWriter {
            device,
            geometry,
            header: metadata.header,
            current_area: metadata.state.current_area,
            committed,
            area,
            next_free: metadata.state.next_free,
            dirty: false,
            header_pending: false,
            zeroed_ahead: false,
        })
    }

    /// The geometry.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The next chunk [`StoreWriter::allocate`] hands out.
    pub fn next_free(&self) -> u64 {
        self.next_free
    }

    /// Whether the store is still valid.
    pub fn is_valid(&self) -> bool {
        self.header.is_valid()
    }

    /// The usage `dmsetup status` would print now.
    pub fn usage(&self) -> Usage {
        let state = LoadState {
            current_area: self.current_area,
            current_committed: self.committed as u64,
            next_free: self.next_free,
            records: 0,
            full_areas: 0,
            legacy_next_free: self.next_free,
        };
        Usage::of(&state, &self.geometry)
    }

    /// Hands out the next data chunk, as the kernel's `prepare_exception` does:
    /// it fails when the chunk after it would not fit the device.
    pub fn allocate(&mut self) -> Result<u64> {
        let chunk_sectors = u64::from(self.geometry.chunk_sectors());
        let needed = self
            .next_free
            .saturating_add(1)
            .saturating_mul(chunk_sectors);
        if self.geometry.device_sectors() < needed {
            return Err(Error::NoSpace {
                path: self.device.path().to_path_buf(),
                next_free: self.next_free,
                device_chunks: self.geometry.device_chunks(),
            });
        }
        let chunk = self.next_free;
        self.next_free = self.geometry.skip_metadata(chunk + 1);
        Ok(chunk)
    }

    /// Appends a record to the current area. When it fills the area, the next
    /// area is zeroed and the full one written, in that order.
    pub fn commit(&mut self, record: ExceptionRecord) -> Result<CommitOutcome> {
        if !self.header.is_valid() {
            return Err(Error::Invalidated {
                path: self.device.path().to_path_buf(),
            });
        }
        let slot = self.committed * RECORD_BYTES;
        record.encode(&mut self.area[slot..slot + RECORD_BYTES]);
        self.committed += 1;
        self.dirty = true;
        if (self.committed as u64) < self.geometry.exceptions_per_area() {
            return Ok(CommitOutcome::Committed);
        }
        let next_area = self.current_area + 1;
        if !self.geometry.area_fits(next_area) {
            // The records before this one were already on disk in the kernel's
            // order of things: write them, then drop the store.
            self.committed -= 1;
            self.area[slot..slot + RECORD_BYTES].fill(0);
            self.flush()?;
            self.invalidate()?;
            return Ok(CommitOutcome::Invalidated);
        }
        if !self.zeroed_ahead {
            let zero = vec![0u8; self.geometry.chunk_bytes()];
            self.device
                .write_chunk(self.geometry.area_location(next_area), &zero)?;
            self.device.sync()?;
        }
        self.device
            .write_chunk(self.geometry.area_location(self.current_area), &self.area)?;
        self.current_area = next_area;
        self.committed = 0;
        self.area.fill(0);
        self.dirty = false;
        Ok(CommitOutcome::Committed)
    }

    /// Says the device reads zeros past what this writer wrote (a new image
    /// filled in one go): the next area is then already zero, and the write
    /// and flush that zero it before a full area is written are skipped. The
    /// final [`StoreWriter::flush`] still makes everything durable.
    pub fn assume_zeroed_device(&mut self) {
        self.zeroed_ahead = true;
    }

    /// Writes the current (partial) area if it changed.
    pub fn flush(&mut self) -> Result<()> {
        if self.dirty {
            self.device
                .write_chunk(self.geometry.area_location(self.current_area), &self.area)?;
            self.dirty = false;
        }
        self.device.sync()
    }

    /// Marks the store invalid, as the kernel's `drop_snapshot` does: the header
    /// chunk is rewritten with valid = 0. There is no way back.
    pub fn invalidate(&mut self) -> Result<()> {
        self.header.valid = 0;
        self.write_header()
    }

    /// Flushes, writes the header if [`StoreWriter::begin`] left it for last,
    /// and gives the device back.
    pub fn finish(mut self) -> Result<Device> {
        self.flush()?;
        if self.header_pending {
            self.write_header()?;
        }
        Ok(self.device)
    }

    fn write_header(&mut self) -> Result<()> {
        self.device
            .write_chunk(0, &self.header.to_chunk(self.geometry.chunk_bytes()))?;
        self.header_pending = false;
        self.device.sync()
    }
}

/// Writes a complete set of records as a fresh store in one pass: every area is
/// encoded whole and written once, with the area after the last full one zeroed.
/// Used by restore, repair and migration; the records' `new_chunk`s are taken
/// as given. The header goes last, after the areas are synced, so a cut job
/// leaves the first sector as it was (the output guard's incomplete marker).
pub fn write_all_areas(
    device: &Device,
    geometry: &Geometry,
    header: &Header,
    records: &[ExceptionRecord],
) -> Result<()> {
    write_areas_streamed(
        device,
        geometry,
        header,
        records.len() as u64,
        records.iter().map(|&record| Ok(record)),
    )
}

/// [`write_all_areas`] for `count` records that arrive one at a time (a
/// restore reads them back from a spool): one area is held in memory.
pub fn write_areas_streamed(
    device: &Device,
    geometry: &Geometry,
    header: &Header,
    count: u64,
    mut records: impl Iterator<Item = Result<ExceptionRecord>>,
) -> Result<()> {
    let epa = geometry.exceptions_per_area();
    let areas_needed = count / epa + 1;
    if !geometry.area_fits(areas_needed - 1) {
        return Err(Error::Invalid(format!(
            "{}: {count} records need {areas_needed} metadata areas, but area {} (chunk {}) lies past the end of the device ({} chunks)",
            device.path().display(),
            areas_needed - 1,
            geometry.area_location(areas_needed - 1),
            geometry.device_chunks()
        )));
    }
    let mut area = vec![0u8; geometry.chunk_bytes()];
    let mut batch = Vec::with_capacity(epa as usize);
    for index in 0..areas_needed {
        batch.clear();
        let in_area = (count - index * epa).min(epa);
        for _ in 0..in_area {
            let record = records.next().ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: the records ended before the {count} announced",
                    device.path().display()
                ))
            })??;
            batch.push(record);
        }
        encode_area(&batch, &mut area);
        device.write_chunk(geometry.area_location(index), &area)?;
    }
    device.sync()?;
    device.write_chunk(0, &header.to_chunk(geometry.chunk_bytes()))?;
    device.sync()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistent::store::PersistentStore;

    fn image(dir: &tempfile::TempDir, chunks: u64) -> Device {
        Device::create_or_extend(dir.path().join("cow.img"), chunks * 4096).unwrap()
    }

    #[test]
    fn append_reopen_and_status() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = StoreWriter::format(image(&dir, 512), 8).unwrap();
        for old in 0..300 {
            let new = writer.allocate().unwrap();
            assert!(!writer.geometry().is_metadata_chunk(new));
            writer
                .commit(ExceptionRecord {
                    old_chunk: old,
                    new_chunk: new,
                })
                .unwrap();
        }
        let device = writer.finish().unwrap();
        let store = PersistentStore::open(device, None).unwrap();
        let metadata = store.load().unwrap();
        assert_eq!(metadata.records.len(), 300);
        assert_eq!(metadata.records[256].record.new_chunk, 259);
        assert_eq!(metadata.state.current_area, 1);
        assert_eq!(metadata.usage().status_text(true), "2424/4096 24");
    }

    #[test]
    fn filling_the_last_area_invalidates_like_the_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = StoreWriter::format(image(&dir, 258), 8).unwrap();
        for old in 0..255 {
            let new = writer.allocate().unwrap();
            assert_eq!(
                writer
                    .commit(ExceptionRecord {
                        old_chunk: old,
                        new_chunk: new
                    })
                    .unwrap(),
                CommitOutcome::Committed
            );
        }
        let new = writer.allocate().unwrap();
        assert_eq!(
            writer
                .commit(ExceptionRecord {
                    old_chunk: 999,
                    new_chunk: new
                })
                .unwrap(),
            CommitOutcome::Invalidated
        );
        assert!(!writer.is_valid());
        let device = writer.finish().unwrap();
        let store = PersistentStore::open(device, None).unwrap();
        assert_eq!(store.header().valid, 0);
        assert_eq!(store.load().unwrap().records.len(), 255);
    }

    #[test]
    fn allocation_stops_at_the_end_of_the_device() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = StoreWriter::format(image(&dir, 64), 8).unwrap();
        for _ in 0..62 {
            writer.allocate().unwrap();
        }
        assert!(matches!(
            writer.allocate(),
            Err(Error::NoSpace { next_free: 64, .. })
        ));
    }
}
