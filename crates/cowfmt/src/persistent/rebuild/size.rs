//! How many chunks and bytes an output needs for a given number of data chunks.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::kind::StoreKind;
use crate::persistent::layout::{Geometry, HEADER_CHUNKS};
use crate::persistent::LEGACY_CHUNK_LIMIT;

/// Whole chunks a device needs so that `data_chunks` data chunks can be
/// allocated in order by the kernel's allocator, including the zeroed area the
/// kernel writes after a full one.
pub fn chunks_needed(geometry: &Geometry, data_chunks: u64) -> u64 {
    if data_chunks == 0 {
        return HEADER_CHUNKS + 1;
    }
    let epa = geometry.exceptions_per_area();
    let mut chunks = geometry.nth_data_chunk(data_chunks - 1).saturating_add(1);
    if data_chunks.is_multiple_of(epa) {
        chunks = chunks.max(geometry.area_location(data_chunks / epa).saturating_add(1));
    }
    chunks
}

/// Bytes a device of `chunk_sectors` chunks needs for `data_chunks` data chunks
/// (see [`chunks_needed`]); `None` when that does not fit 64 bits.
pub fn bytes_needed(chunk_sectors: u32, data_chunks: u64) -> Option<u64> {
    let geometry = Geometry::new(chunk_sectors, 0).ok()?;
    chunks_needed(&geometry, data_chunks).checked_mul(geometry.chunk_bytes() as u64)
}

/// Room to grow a new output gets, as a fraction of what the store needs.
const GROWTH_DIVISOR: u64 = 4;
/// The least room to grow, in chunks.
const GROWTH_MIN_CHUNKS: u64 = 64;

/// The size of a new output image when none is asked for: what the store
/// needs plus a quarter (at least 64 chunks) of room for new copies, never
/// less than `input_bytes` (the input's size, for a migration of one store),
/// in whole chunks of `chunk_bytes`. A legacy store stays below its 32-bit
/// chunk limit, as long as what it needs does.
pub fn default_output_bytes(
    needed: u64,
    input_bytes: Option<u64>,
    chunk_bytes: u64,
    kind: StoreKind,
) -> u64 {
    let chunk_bytes = chunk_bytes.max(1);
    let room = (needed / GROWTH_DIVISOR).max(GROWTH_MIN_CHUNKS.saturating_mul(chunk_bytes));
    let size =
        needed.saturating_add(room).max(input_bytes.unwrap_or(0)) / chunk_bytes * chunk_bytes;
    let size = size.max(needed);
    if kind == StoreKind::Legacy {
        let limit = (LEGACY_CHUNK_LIMIT - 1).saturating_mul(chunk_bytes);
        return size.min(limit).max(needed);
    }
    size
}

/// Checks that `output` has the `needed` bytes `what` (the salvaged or migrated
/// store) takes and, for a legacy store, that its chunks fit 32 bits; returns
/// its geometry with `chunk_sectors` chunks.
pub(crate) fn check_output(
    output: &Device,
    needed: u64,
    what: &str,
    chunk_sectors: u32,
    kind: StoreKind,
) -> Result<Geometry> {
    let out_path = output.path().to_path_buf();
    if output.size_bytes() < needed {
        return Err(Error::Invalid(format!(
            "{}: the output has {} bytes, but {what} needs at least {needed}",
            out_path.display(),
            output.size_bytes(),
        )));
    }
    let out_geometry = Geometry::new(chunk_sectors, output.size_bytes())
        .map_err(|e| Error::format(&out_path, e))?;
    if kind == StoreKind::Legacy && out_geometry.device_chunks() >= LEGACY_CHUNK_LIMIT {
        return Err(Error::Invalid(format!(
            "{}: {} chunks do not fit the 32 bits of a legacy store (at most {})",
            out_path.display(),
            out_geometry.device_chunks(),
            LEGACY_CHUNK_LIMIT - 1
        )));
    }
    Ok(out_geometry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SECTOR_BYTES;
    use proptest::prelude::*;

    #[test]
    fn needed_chunks_at_area_boundaries() {
        let g = Geometry::new(8, 0).unwrap();
        assert_eq!(chunks_needed(&g, 0), 2);
        assert_eq!(chunks_needed(&g, 1), 3);
        assert_eq!(chunks_needed(&g, 255), 257);
        // a full area needs the zeroed area after it
        assert_eq!(chunks_needed(&g, 256), 259);
        assert_eq!(chunks_needed(&g, 257), 260);
        assert_eq!(bytes_needed(8, 62), Some(64 * 4096));
    }

    #[test]
    fn default_size_leaves_room_to_grow() {
        let chunk = 4096;
        let needed = 1000 * chunk;
        let size = default_output_bytes(needed, None, chunk, StoreKind::Persistent);
        assert_eq!(size, 1250 * chunk);
        assert_eq!(
            default_output_bytes(needed, Some(needed), chunk, StoreKind::Legacy),
            1250 * chunk
        );
        assert_eq!(
            default_output_bytes(2 * chunk, None, chunk, StoreKind::Shared),
            66 * chunk
        );
        let big_input = 1 << 30;
        assert_eq!(
            default_output_bytes(needed, Some(big_input), chunk, StoreKind::Persistent),
            big_input
        );
        let legacy_limit = (LEGACY_CHUNK_LIMIT - 1) * chunk;
        assert_eq!(
            default_output_bytes(legacy_limit - chunk, None, chunk, StoreKind::Legacy),
            legacy_limit
        );
    }

    proptest! {
        #[test]
        fn needed_chunks_is_the_least_that_holds_them(k in 0u32..6, n in 0u64..3000) {
            let chunk_sectors = 1u32 << k;
            let g = Geometry::new(chunk_sectors, 0).unwrap();
            let chunks = chunks_needed(&g, n);
            let bytes = |chunks: u64| chunks * u64::from(chunk_sectors) * SECTOR_BYTES;
            let fits = Geometry::new(chunk_sectors, bytes(chunks)).unwrap();
            prop_assert!(fits.data_capacity() >= n);
            if n > 0 {
                let smaller = Geometry::new(chunk_sectors, bytes(chunks - 1)).unwrap();
                prop_assert!(smaller.data_capacity() < n);
            }
        }
    }
}
