//! The one way to open a persistent (or legacy) store: read the 16 header
//! bytes in chunk 0, check them under a [`Policy`], and work out the geometry.
//! [`PersistentStore`](super::store::PersistentStore) opens through here; the
//! checker, repair and the strict snapshot reader read the header with
//! [`read_header`] and judge each field themselves.

use crate::blockdev::BlockDev;
use crate::error::{Error, FormatError, Result};

use super::header::{validate_chunk_size, Header, HEADER_BYTES};
use super::layout::Geometry;

/// Which chunk size a store is read with, and how much of the header must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The magic must be SnAp and the version 1; the header's chunk size is
    /// used, as the kernel does, and `fallback` replaces it only when it is
    /// unusable (for salvage).
    Strict {
        /// The chunk size (sectors) used when the header's is unusable.
        fallback: Option<u32>,
    },
    /// Nothing of the header is judged; the store is read with
    /// `chunk_sectors` whatever the header says.
    Tolerant {
        /// The chunk size (sectors) to read with.
        chunk_sectors: u32,
    },
}

/// Reads and decodes the 16 header bytes of `store`, judging nothing.
pub fn read_header(store: &dyn BlockDev) -> Result<Header> {
    let mut bytes = [0u8; HEADER_BYTES];
    store.read_at(&mut bytes, 0, &|| "the store header".to_string())?;
    Header::decode(&bytes).map_err(|e| Error::format(store.path(), e))
}

/// Opens the store on `store` under `policy`: its header and the geometry the
/// chunk size chosen and the device size give (a header and area 0 must fit).
pub fn open(store: &dyn BlockDev, policy: Policy) -> Result<(Header, Geometry)> {
    let header = read_header(store)?;
    let chunk_sectors = match policy {
        Policy::Tolerant { chunk_sectors } => chunk_sectors,
        Policy::Strict { fallback } => {
            header
                .validate_identity()
                .map_err(|e| Error::format(store.path(), e))?;
            match validate_chunk_size(u64::from(header.chunk_size)) {
                Ok(()) => header.chunk_size,
                Err(e) => fallback.ok_or_else(|| Error::format(store.path(), e))?,
            }
        }
    };
    let geometry =
        Geometry::new(chunk_sectors, store.size()).map_err(|e| Error::format(store.path(), e))?;
    if !geometry.holds_first_area() {
        return Err(Error::format(
            store.path(),
            FormatError::TooSmall {
                what: format!(
                    "a persistent store with {}-byte chunks needs a header and an area",
                    geometry.chunk_bytes()
                ),
                device_bytes: store.size(),
                needed_bytes: 2 * geometry.chunk_bytes() as u64,
            },
        ));
    }
    Ok((header, geometry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memdev::MemDev;

    fn store(header: Header, bytes: u64) -> MemDev {
        let dev = MemDev::new("cow", bytes);
        let mut raw = [0u8; HEADER_BYTES];
        header.encode(&mut raw);
        dev.write_at(&raw, 0).unwrap();
        dev
    }

    fn header(chunk_size: u32) -> Header {
        Header::new(chunk_size)
    }

    #[test]
    fn the_strict_policy_reads_with_the_headers_chunk_size() {
        let dev = store(header(8), 64 * 4096);
        let (read, geometry) = open(&dev, Policy::Strict { fallback: Some(16) }).unwrap();
        assert_eq!(read.chunk_size, 8);
        assert_eq!(geometry.chunk_bytes(), 4096);
    }

    #[test]
    fn the_fallback_replaces_only_an_unusable_chunk_size() {
        let dev = store(header(3), 64 * 4096);
        assert!(open(&dev, Policy::Strict { fallback: None }).is_err());
        let (_, geometry) = open(&dev, Policy::Strict { fallback: Some(8) }).unwrap();
        assert_eq!(geometry.chunk_bytes(), 4096);
    }

    #[test]
    fn the_tolerant_policy_reads_a_foreign_header_with_the_given_chunk_size() {
        let mut foreign = header(3);
        foreign.magic = 0;
        let dev = store(foreign, 64 * 4096);
        assert!(open(&dev, Policy::Strict { fallback: Some(8) }).is_err());
        let (_, geometry) = open(&dev, Policy::Tolerant { chunk_sectors: 16 }).unwrap();
        assert_eq!(geometry.chunk_bytes(), 8192);
    }

    #[test]
    fn a_device_without_room_for_area_0_is_refused() {
        let dev = store(header(8), 4096 + 512);
        assert!(open(&dev, Policy::Tolerant { chunk_sectors: 8 }).is_err());
    }
}
