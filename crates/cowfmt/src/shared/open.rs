//! The one way to open a shared store: read the header in chunk 0, check it
//! under a [`Policy`], and work out the geometry it and the device size give.
//! The dump, the migration input, the strict tree reader and the engine open
//! through here; the checker and repair, which must read a header they cannot
//! trust, read it with [`read_header`] and judge each field themselves.

use std::path::Path;

use crate::blockdev::BlockDev;
use crate::device::Device;
use crate::error::{Error, FormatError, Result};

use super::geometry::{validate_chunk_size, Geometry};
use super::header::{SharedHeader, HEADER_BYTES};

/// How much of the header a caller needs to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// A valid store whose bitmap and journal fit the device and whose root
    /// lies in the data range.
    Strict,
    /// [`Policy::Strict`] but the root, which replaying the journal may still
    /// move: the caller checks it after the replay.
    StrictBeforeReplay,
    /// A shared store's magic, version and chunk size, and a bitmap and
    /// journal that fit the device; the valid flag and the root are not
    /// judged (a dump shows them as they are).
    Tolerant,
}

/// A shared store's header and the geometry it gives on its device.
#[derive(Debug, Clone)]
pub struct OpenedHeader {
    /// The header as stored.
    pub header: SharedHeader,
    /// The layout the header and the device size give.
    pub geometry: Geometry,
}

/// Why a header does not pass a [`Policy`].
#[derive(Debug)]
pub enum OpenError {
    /// Chunk 0 could not be read, or is not a shared store's header (its
    /// magic or version is another's).
    Unreadable(Error),
    /// The chunk size is not a power of two from 512 bytes to 1 MiB.
    ChunkSize(FormatError),
    /// The store is marked invalid.
    Invalidated,
    /// The bitmap and journal the header describes do not fit the device.
    DoesNotFit(Geometry),
    /// The root or the tree level is unusable (what is wrong with it).
    Root(String),
}

impl OpenError {
    /// The error for the store at `path`, in the strict tree reader's words.
    pub fn into_error(self, path: &Path) -> Error {
        match self {
            OpenError::Unreadable(e) => e,
            OpenError::ChunkSize(e) => Error::format(path, e),
            OpenError::Invalidated => Error::Invalidated {
                path: path.to_path_buf(),
            },
            OpenError::DoesNotFit(geometry) => Error::Invalid(format!(
                "{}: the header's bitmap and journal do not fit the device's {} chunks",
                path.display(),
                geometry.nr_chunks
            )),
            OpenError::Root(problem) => {
                Error::Invalid(format!("{}: header {problem}", path.display()))
            }
        }
    }
}

/// Reads and decodes the 40 header bytes of `store`, judging nothing.
pub fn read_header(store: &dyn BlockDev) -> Result<SharedHeader> {
    let mut bytes = [0u8; HEADER_BYTES];
    store.read_at(&mut bytes, 0, &|| "the shared store header".to_string())?;
    SharedHeader::decode(&bytes).map_err(|e| Error::format(store.path(), e))
}

/// Opens the shared store on `store` under `policy`.
pub fn open(store: &dyn BlockDev, policy: Policy) -> std::result::Result<OpenedHeader, OpenError> {
    let header = read_header(store).map_err(OpenError::Unreadable)?;
    check(store, header, policy)
}

/// Checks what `header`, read from `store`, says of itself under `policy`:
/// its magic and version, its chunk size and (unless tolerant) its valid flag.
pub fn check_identity(
    store: &dyn BlockDev,
    header: &SharedHeader,
    policy: Policy,
) -> std::result::Result<(), OpenError> {
    header
        .validate_identity()
        .map_err(|e| OpenError::Unreadable(Error::format(store.path(), e)))?;
    validate_chunk_size(u64::from(header.chunk_size)).map_err(OpenError::ChunkSize)?;
    if policy != Policy::Tolerant && header.valid == 0 {
        return Err(OpenError::Invalidated);
    }
    Ok(())
}

/// Checks `header`, read from `store`, under `policy`.
pub fn check(
    store: &dyn BlockDev,
    header: SharedHeader,
    policy: Policy,
) -> std::result::Result<OpenedHeader, OpenError> {
    check_identity(store, &header, policy)?;
    let geometry = Geometry::new(
        store.size(),
        header.chunk_size,
        u64::from(header.nr_journal_chunks),
    );
    if !geometry.reserved_fits() {
        return Err(OpenError::DoesNotFit(geometry));
    }
    if policy == Policy::Strict {
        if let Some(problem) = header.root_problem(&geometry) {
            return Err(OpenError::Root(problem));
        }
    }
    Ok(OpenedHeader { header, geometry })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memdev::MemDev;
    use crate::shared::format::format_store;

    fn store() -> MemDev {
        let dev = MemDev::new("cow", 1 << 20);
        format_store(&dev, 8, 2).unwrap();
        dev
    }

    fn rewrite(dev: &MemDev, change: impl FnOnce(&mut SharedHeader)) {
        let mut header = read_header(dev).unwrap();
        change(&mut header);
        let mut bytes = [0u8; HEADER_BYTES];
        header.encode(&mut bytes);
        dev.write_at(&bytes, 0).unwrap();
    }

    #[test]
    fn a_fresh_store_opens_under_every_policy() {
        let dev = store();
        for policy in [Policy::Strict, Policy::StrictBeforeReplay, Policy::Tolerant] {
            let opened = open(&dev, policy).unwrap();
            assert_eq!(opened.geometry.chunk_bytes, 4096);
            assert_eq!(opened.geometry.nr_journal_chunks, 2);
        }
    }

    #[test]
    fn an_invalid_store_opens_only_tolerantly() {
        let dev = store();
        rewrite(&dev, |h| h.valid = 0);
        assert!(matches!(
            open(&dev, Policy::Strict),
            Err(OpenError::Invalidated)
        ));
        assert!(matches!(
            open(&dev, Policy::StrictBeforeReplay),
            Err(OpenError::Invalidated)
        ));
        assert!(open(&dev, Policy::Tolerant).is_ok());
    }

    #[test]
    fn a_bad_root_is_judged_only_by_the_strict_policy() {
        let dev = store();
        rewrite(&dev, |h| h.root_tree_chunk = 0);
        assert!(matches!(
            open(&dev, Policy::Strict),
            Err(OpenError::Root(_))
        ));
        assert!(open(&dev, Policy::StrictBeforeReplay).is_ok());
        assert!(open(&dev, Policy::Tolerant).is_ok());
    }

    #[test]
    fn a_journal_past_the_device_does_not_fit() {
        let dev = store();
        rewrite(&dev, |h| h.nr_journal_chunks = 1 << 20);
        assert!(matches!(
            open(&dev, Policy::Tolerant),
            Err(OpenError::DoesNotFit(_))
        ));
    }

    #[test]
    fn a_bad_chunk_size_and_a_foreign_magic_are_told_apart() {
        let dev = store();
        rewrite(&dev, |h| h.chunk_size = 3);
        assert!(matches!(
            open(&dev, Policy::Tolerant),
            Err(OpenError::ChunkSize(_))
        ));
        rewrite(&dev, |h| h.magic ^= 1);
        assert!(matches!(
            open(&dev, Policy::Tolerant),
            Err(OpenError::Unreadable(_))
        ));
    }
}

/// A shared store opened read-only: its device, the header and the geometry
/// they give. The dump's and the migration's inputs dereference to it.
#[derive(Debug)]
pub struct OpenStore {
    pub(crate) device: Device,
    pub(crate) header: SharedHeader,
    pub(crate) geometry: Geometry,
}

impl OpenStore {
    /// `device` with the header opened from it.
    pub fn new(device: Device, opened: OpenedHeader) -> Self {
        OpenStore {
            device,
            header: opened.header,
            geometry: opened.geometry,
        }
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The header as stored.
    pub fn header(&self) -> &SharedHeader {
        &self.header
    }

    /// The geometry the header and the device size give.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }
}
