//! Erasing the signatures `--force` overwrites, so that nothing recognises
//! the old contents on the device afterwards (a stale LVM label or btrfs
//! superblock inside a COW store would still be found by udev and LVM).

use crate::device::Device;
use crate::error::Result;
use crate::kind::PERSISTENT_MAGIC;
use crate::persistent::header::{validate_chunk_size, Header};
use crate::persistent::layout::HEADER_CHUNKS;
use crate::probe::Probe;
use crate::SECTOR_BYTES;

/// The longest magic any prober looks for (libblkid's are at most 16 bytes);
/// a magic that starts this close to a sector's end reaches into the next.
const LONGEST_MAGIC: u64 = 16;

/// Zeroes every sector holding the magic of a signature in `found`, except
/// the device's first sector (the job writing the new store owns it: it
/// holds the incomplete marker and then the header). Returns the sectors
/// zeroed, in order; the device is synced when any was.
pub fn wipe_signatures(device: &Device, found: &Probe) -> Result<Vec<u64>> {
    let mut sectors: Vec<u64> = found
        .signatures
        .iter()
        .flat_map(|s| {
            let first = s.offset / SECTOR_BYTES;
            let last = (s.offset + LONGEST_MAGIC - 1) / SECTOR_BYTES;
            first..=last
        })
        .filter(|&sector| sector > 0 && (sector + 1) * SECTOR_BYTES <= device.size_bytes())
        .collect();
    sectors.sort_unstable();
    sectors.dedup();
    let zeros = [0u8; SECTOR_BYTES as usize];
    for &sector in &sectors {
        device.write_at(&zeros, sector * SECTOR_BYTES)?;
    }
    if !sectors.is_empty() {
        device.sync()?;
    }
    Ok(sectors)
}

/// Zeroes metadata area 0 of the persistent store whose first bytes were
/// `old_start` (read before the new store's marker replaced them), when its
/// chunk size puts that area where the new store does not write: its records
/// would otherwise still read under the old chunk size (cowcheck's
/// `chunk-size-reads-nothing`, a repair's chunk-size evidence). Returns
/// whether anything was zeroed.
pub fn wipe_old_snap_area(device: &Device, old_start: &[u8]) -> Result<bool> {
    let Ok(header) = Header::decode(old_start) else {
        return Ok(false);
    };
    if header.magic != PERSISTENT_MAGIC
        || validate_chunk_size(u64::from(header.chunk_size)).is_err()
    {
        return Ok(false);
    }
    let chunk_bytes = u64::from(header.chunk_size) * SECTOR_BYTES;
    let area = HEADER_CHUNKS * chunk_bytes;
    if area + chunk_bytes > device.size_bytes() {
        return Ok(false);
    }
    device.write_at(&vec![0u8; chunk_bytes as usize], area)?;
    device.sync()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Device;
    use crate::probe::{Coverage, Signature, Source};

    fn signature(offset: u64) -> Signature {
        Signature {
            name: "test".to_string(),
            what: "a test signature".to_string(),
            place: "magic".to_string(),
            offset,
            label: None,
            source: Source::Cowfmt,
        }
    }

    #[test]
    fn zeroes_the_sectors_of_each_magic_but_never_sector_0() {
        let dir = tempfile::tempdir().unwrap();
        let device = Device::create_or_extend(dir.path().join("t.img"), 64 << 10).unwrap();
        device.write_at(&[0xaa; 64 << 10], 0).unwrap();
        let found = Probe {
            signatures: vec![
                signature(8),
                signature(1080),
                signature(2040),
                signature(65528),
            ],
            coverage: Coverage::Libblkid,
        };
        let wiped = wipe_signatures(&device, &found).unwrap();
        assert_eq!(wiped, vec![2, 3, 4, 127]);
        let mut bytes = vec![0u8; 64 << 10];
        device.read_at(&mut bytes, 0, || "all".to_string()).unwrap();
        for (sector, chunk) in bytes.chunks(512).enumerate() {
            let zero = chunk.iter().all(|&b| b == 0);
            assert_eq!(zero, wiped.contains(&(sector as u64)), "sector {sector}");
        }
    }
}
