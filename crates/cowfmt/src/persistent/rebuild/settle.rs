//! Making a freshly written store safe to use: stale areas after it zeroed, and
//! the pre-2.6.29 reload hazard moved out of the way.

use serde::Serialize;

use crate::device::Device;
use crate::error::{Error, Result};
use crate::kind::StoreKind;
use crate::persistent::layout::Geometry;
use crate::persistent::record::{ExceptionRecord, RECORD_BYTES};
use crate::persistent::store::{Metadata, PersistentStore};

/// Zeroes every area location after `last_area` that holds non-zero bytes, so
/// that a later salvage scan cannot mistake stale records for live ones.
/// Returns how many areas were zeroed.
pub fn zero_stale_areas(device: &Device, geometry: &Geometry, last_area: u64) -> Result<u64> {
    let mut buffer = vec![0u8; geometry.chunk_bytes()];
    let zero = vec![0u8; geometry.chunk_bytes()];
    let mut zeroed = 0;
    let mut area = last_area.saturating_add(1);
    while geometry.area_fits(area) {
        let chunk = geometry.area_location(area);
        device.read_chunk(chunk, &mut buffer)?;
        if buffer.iter().any(|&b| b != 0) {
            device.write_chunk(chunk, &zero)?;
            zeroed += 1;
        }
        area += 1;
    }
    if zeroed > 0 {
        device.sync()?;
    }
    Ok(zeroed)
}

/// A data chunk moved so that a pre-2.6.29 kernel's next allocation after a
/// reload does not land on a metadata area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Relocation {
    /// The area of the record that was moved.
    pub area: u64,
    /// Its index in that area.
    pub index: u64,
    /// Its origin chunk.
    pub old_chunk: u64,
    /// The data chunk it used.
    pub from_chunk: u64,
    /// The data chunk it uses now.
    pub to_chunk: u64,
    /// The metadata area chunk the old kernel would have allocated next.
    pub metadata_chunk: u64,
}

/// Moves the last data chunk past the metadata area that follows it, when the
/// highest `new_chunk + 1` is a metadata area on the device: old kernels do not
/// skip metadata after a reload, so their next allocation would overwrite that
/// area. `metadata` must be what the kernel reads from `device`.
pub fn fix_legacy_reload_hazard(
    device: &Device,
    metadata: &Metadata,
) -> Result<Option<Relocation>> {
    let geometry = metadata.geometry;
    let Some(last) = metadata
        .records
        .iter()
        .rev()
        .max_by_key(|placed| placed.record.new_chunk)
    else {
        return Ok(None);
    };
    let from_chunk = last.record.new_chunk;
    let next = from_chunk.saturating_add(1);
    if !geometry.is_metadata_chunk(next) || next >= geometry.device_chunks() {
        return Ok(None);
    }
    let to_chunk = next + 1;
    if to_chunk >= geometry.device_chunks() {
        return Err(Error::Invalid(format!(
            "{}: a pre-2.6.29 kernel would allocate metadata area chunk {next} next, and there is no free chunk after it to move data chunk {from_chunk} to (the device has {} chunks; one more is needed)",
            device.path().display(),
            geometry.device_chunks()
        )));
    }
    let mut data = vec![0u8; geometry.chunk_bytes()];
    device.read_chunk(from_chunk, &mut data)?;
    device.write_chunk(to_chunk, &data)?;
    device.sync()?;
    let area_chunk = geometry.area_location(last.area);
    device.read_chunk(area_chunk, &mut data)?;
    let slot = last.index as usize * RECORD_BYTES;
    ExceptionRecord {
        old_chunk: last.record.old_chunk,
        new_chunk: to_chunk,
    }
    .encode(&mut data[slot..slot + RECORD_BYTES]);
    device.write_chunk(area_chunk, &data)?;
    device.sync()?;
    Ok(Some(Relocation {
        area: last.area,
        index: last.index,
        old_chunk: last.record.old_chunk,
        from_chunk,
        to_chunk,
        metadata_chunk: next,
    }))
}

/// A freshly written store after [`settle_output`].
#[derive(Debug)]
pub(crate) struct Settled {
    /// What the kernel reads from it now.
    pub(crate) metadata: Metadata,
    /// Stale area locations zeroed after it.
    pub(crate) stale_areas_zeroed: u64,
    /// The data chunk moved for the pre-2.6.29 reload hazard, if any.
    pub(crate) relocation: Option<Relocation>,
}

/// Reopens the store just written to `device`, zeroes the stale areas after it
/// unless `output_zeroed` (the output held only zeros), and for a legacy store
/// moves the last data chunk out of the reload hazard.
pub(crate) fn settle_output(
    device: Device,
    output_zeroed: bool,
    kind: StoreKind,
) -> Result<Settled> {
    let written = PersistentStore::open(device, None)?;
    let mut metadata = written.load()?;
    let stale_areas_zeroed = if output_zeroed {
        0
    } else {
        zero_stale_areas(
            written.device(),
            &metadata.geometry,
            metadata.state.current_area,
        )?
    };
    let relocation = if kind == StoreKind::Legacy {
        fix_legacy_reload_hazard(written.device(), &metadata)?
    } else {
        None
    };
    if relocation.is_some() {
        metadata = written.load()?;
    }
    Ok(Settled {
        metadata,
        stale_areas_zeroed,
        relocation,
    })
}
