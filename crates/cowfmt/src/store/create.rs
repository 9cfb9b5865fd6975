//! Writing a new store of either kind (`mkcow`): formatted empty, or restored
//! from a cowdump dump (metadata only). The tool keeps its side, the target
//! behind its output guard ([`NewStore`]), and the display of progress; the
//! steps of each kind, in the order their refusals are checked, are here.

use std::path::Path;

use serde_json::{Map, Value};

use crate::clone::write::{format_clone, write_clone, CloneWriteError, CloneWritten};
use crate::device::{Access, Backing, Device};
use crate::dump_read::spool::RecordCheck;
use crate::error::Error;
use crate::kind::StoreKind;
use crate::output::OutputClaim;
use crate::pdata::block::BLOCK_SECTORS;
use crate::pdata::space_map::WriteError;
use crate::persistent::dump::RestoreHead;
use crate::persistent::restore::{
    header_from_dump, plan_geometry, validate_records, write_records, PersistentCheck,
};
use crate::persistent::StoreWriter;
use crate::shared::build::Built;
use crate::shared::dump::SharedRestoreHead;
use crate::shared::geometry::default_journal_chunks;
use crate::shared::leaf::check_snapshot_count;
use crate::shared::mask::MAX_SNAPSHOTS;
use crate::shared::restore::{self as shared_restore, RestorePlan};
use crate::store::restore::{self as dump_input, check_dump_version, ReadProgress};
use crate::SECTOR_BYTES;

pub use crate::clone::geometry::Geometry as CloneGeometry;
pub use crate::persistent::Geometry as PersistentGeometry;
pub use crate::shared::restore::PassProgress;
pub use crate::shared::Geometry as SharedGeometry;

/// Records (or origin chunks) written between two progress updates.
pub const RECORDS_PER_PROGRESS: u64 = 1 << 16;

/// The sectors of one dm-clone metadata block: the first one must be blank
/// unless `--force` is given.
const CLONE_BLOCK_SECTORS: u32 = BLOCK_SECTORS as u32;

/// The kernel's default chunk size for a new store here: 4 KiB.
pub const DEFAULT_CHUNK_SECTORS: u32 = 8;

/// The tool's side of a new store: the target, looked at and then opened
/// through the tool's output guard. Every cowfmt error converts into the
/// tool's error.
pub trait NewStore {
    /// The tool's error.
    type Error: From<Error> + From<dump_input::RestoreInputError>;
    /// The image file or block device written.
    fn path(&self) -> &Path;
    /// `--size`.
    fn size(&self) -> Option<u64>;
    /// Looks at the target without changing it; its size once `--size` is applied.
    fn plan(&self, chunk_sectors: u32) -> Result<u64, Self::Error>;
    /// The size in sectors of the origin, when one is given.
    fn origin_sectors(&self) -> Result<Option<u64>, Self::Error>;
    /// Opens the target for writing through the output guard.
    fn open(&self) -> Result<(Device, OutputClaim), Self::Error>;
}

/// What `mkcow` formats: the kind (`None`: persistent), `--chunk-size`, and
/// for a shared store `--journal-size` and `--snapshots`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FormatOptions {
    /// `--kind`.
    pub kind: Option<StoreKind>,
    /// `--chunk-size` in sectors.
    pub chunk_sectors: Option<u32>,
    /// `--journal-size` in bytes.
    pub journal_bytes: Option<u64>,
    /// `--snapshots`.
    pub snapshots: Option<u32>,
    /// dm-clone: `--region-size` in sectors.
    pub region_sectors: Option<u64>,
    /// dm-clone: `--target-size` in sectors.
    pub target_sectors: Option<u64>,
}

/// A store written, for the tool to report.
pub enum Created {
    /// A persistent or legacy store.
    Classic {
        /// Its kind.
        kind: StoreKind,
        /// Its geometry.
        geometry: PersistentGeometry,
        /// The restore's dump head and record count (`None` for a format).
        restored: Option<(RestoreHead, u64)>,
    },
    /// dm-clone metadata.
    Clone {
        /// The regions it tracks.
        geometry: CloneGeometry,
        /// What the writer committed.
        written: CloneWritten,
        /// The regions a restore marked hydrated (`None` for a format).
        hydrated: Option<u64>,
    },
    /// A shared store.
    Shared {
        /// Its geometry.
        geometry: SharedGeometry,
        /// The snapshots that exist.
        snapmask: u64,
        /// The tree a restore built and the origin chunks it covers (`None`
        /// for a format).
        restored: Option<(Built, u64)>,
    },
}

/// A created store and the origin's size in sectors (when given).
pub struct Outcome {
    /// The store.
    pub created: Created,
    /// The origin's size in sectors.
    pub origin_sectors: Option<u64>,
}

/// Formats a new store on the target as the kernel does on first activation
/// (a shared store with its journal and `--snapshots` made at once).
pub fn format<T: NewStore>(target: &T, options: &FormatOptions) -> Result<Outcome, T::Error> {
    if options.kind == Some(StoreKind::Clone) {
        return format_clone_metadata(target, options);
    }
    if options.region_sectors.is_some() || options.target_sectors.is_some() {
        return Err(Error::Invalid(
            "--region-size and --target-size apply to dm-clone metadata only (--kind clone)".into(),
        )
        .into());
    }
    if options.kind == Some(StoreKind::Shared) {
        return format_shared(target, options);
    }
    if options.journal_bytes.is_some() || options.snapshots.is_some() {
        return Err(Error::Invalid(
            "--journal-size and --snapshots apply to shared stores only (--kind shared)".into(),
        )
        .into());
    }
    let kind = snap_kind(options.kind.unwrap_or(StoreKind::Persistent), target)?;
    let chunk_sectors = options.chunk_sectors.unwrap_or(DEFAULT_CHUNK_SECTORS);
    let size = target.plan(chunk_sectors)?;
    let geometry = plan_geometry(target.path(), chunk_sectors, size, kind)?;
    let origin_sectors = target.origin_sectors()?;
    let (device, claim) = target.open()?;
    StoreWriter::format(device, chunk_sectors)?.finish()?;
    claim.keep();
    Ok(Outcome {
        created: Created::Classic {
            kind,
            geometry,
            restored: None,
        },
        origin_sectors,
    })
}

/// Formats dm-clone metadata as the kernel's first activation does, after
/// refusing what the kernel refuses and a device too small for the layout.
fn format_clone_metadata<T: NewStore>(
    target: &T,
    options: &FormatOptions,
) -> Result<Outcome, T::Error> {
    let path = target.path().display();
    if options.chunk_sectors.is_some()
        || options.journal_bytes.is_some()
        || options.snapshots.is_some()
    {
        return Err(Error::Invalid(format!(
            "{path}: --chunk-size, --journal-size and --snapshots do not apply to dm-clone metadata (give --region-size and --target-size)"
        ))
        .into());
    }
    let (Some(region_sectors), Some(target_sectors)) =
        (options.region_sectors, options.target_sectors)
    else {
        return Err(Error::Invalid(format!(
            "{path}: dm-clone metadata needs --region-size and --target-size"
        ))
        .into());
    };
    let geometry = CloneGeometry::new(region_sectors, target_sectors)
        .map_err(|e| Error::Invalid(format!("{path}: {e}")))?;
    let size = target.plan(CLONE_BLOCK_SECTORS)?;
    let nr_blocks = geometry
        .check_metadata_device(size)
        .map_err(|e| Error::Invalid(format!("{path}: a metadata device of {size} bytes: {e}")))?;
    let origin_sectors = target.origin_sectors()?;
    let (mut device, claim) = target.open()?;
    let written = format_clone(&mut device, &geometry, nr_blocks).map_err(|e| match e {
        CloneWriteError::Write(WriteError::Io(io)) => io,
        other => Error::Invalid(format!("{path}: {other}")),
    })?;
    claim.keep();
    Ok(Outcome {
        created: Created::Clone {
            geometry,
            written,
            hydrated: None,
        },
        origin_sectors,
    })
}

fn format_shared<T: NewStore>(target: &T, options: &FormatOptions) -> Result<Outcome, T::Error> {
    let path = target.path().display();
    let chunk_sectors = options.chunk_sectors.unwrap_or(DEFAULT_CHUNK_SECTORS);
    crate::shared::geometry::validate_chunk_size(u64::from(chunk_sectors))
        .map_err(|e| Error::Invalid(format!("{path}: --chunk-size: {e}")))?;
    let snapshots = options.snapshots.unwrap_or(0);
    refuse_too_many_snapshots(snapshots, chunk_sectors, &path.to_string())?;
    let size = target.plan(chunk_sectors)?;
    let chunk_bytes = u64::from(chunk_sectors) * SECTOR_BYTES;
    let journal = match options.journal_bytes {
        Some(bytes) => bytes.div_ceil(chunk_bytes),
        None => default_journal_chunks(size, chunk_bytes),
    };
    let geometry = crate::shared::format::plan(size, u64::from(chunk_sectors), journal)
        .map_err(|e| Error::format(target.path(), e))?;
    let origin_sectors = target.origin_sectors()?;
    let (device, claim) = target.open()?;
    let mut header =
        crate::shared::format::format_store(&device, u64::from(chunk_sectors), journal)?;
    if snapshots > 0 {
        header.snapmask = if snapshots == MAX_SNAPSHOTS {
            u64::MAX
        } else {
            (1u64 << snapshots) - 1
        };
        device.write_chunk(0, &header.to_chunk(geometry.chunk_bytes as usize))?;
        device.sync()?;
    }
    claim.keep();
    Ok(Outcome {
        created: Created::Shared {
            geometry,
            snapmask: header.snapmask,
            restored: None,
        },
        origin_sectors,
    })
}

/// Restores a store's metadata from the dump at `dump_path` (`-`: stdin), of
/// the kind `kind` (`--kind`) or else the dump's; its data chunks are not
/// touched. `reading` shows the records read, `writing` each pass written.
pub fn restore<T: NewStore>(
    target: &T,
    dump_path: &Path,
    kind: Option<StoreKind>,
    reading: &ReadProgress<'_>,
    writing: &mut dyn PassProgress,
) -> Result<Outcome, T::Error> {
    let plan = |shared: bool, fields: &Map<String, Value>| {
        plan_check(target, dump_path, kind, shared, fields)
    };
    if kind == Some(StoreKind::Clone) {
        return restore_clone(target, dump_path);
    }
    let mut dump = dump_input::read(dump_path, kind, reading, &plan)?;
    let dumped_kind = dump.dumped_kind;
    if dumped_kind == Some(StoreKind::Clone) {
        return match (kind, dump_path == Path::new("-")) {
            (Some(kind), _) => Err(Error::Invalid(format!(
                "{}: the dump is of dm-clone metadata; --kind {kind} cannot restore it",
                dump_path.display()
            ))
            .into()),
            (None, true) => Err(Error::Invalid(
                "stdin: the dump is of dm-clone metadata: give --kind clone to restore it from stdin".into(),
            )
            .into()),
            (None, false) => restore_clone(target, dump_path),
        };
    }
    if kind.or(dumped_kind) == Some(StoreKind::Shared) {
        if dumped_kind.is_some_and(|k| k != StoreKind::Shared) {
            return Err(Error::Invalid(format!(
                "{}: the dump is of a {} store; --kind shared cannot restore it",
                dump_path.display(),
                dumped_kind.unwrap_or(StoreKind::Persistent)
            ))
            .into());
        }
        return restore_shared(target, dump_path, dump, writing);
    }
    let head: RestoreHead = dump.head(dump_path)?;
    check_dump_version(head.format_version, dump_path)?;
    let kind = snap_kind(
        kind.unwrap_or(head.kind.unwrap_or(StoreKind::Persistent)),
        target,
    )?;
    let header = header_from_dump(&head, dump_path)?;
    let chunk_sectors = header.chunk_size;
    let size = target.plan(chunk_sectors)?;
    let geometry = plan_geometry(target.path(), chunk_sectors, size, kind)?;
    let early = dump.checked.take();
    validate_records(
        &mut dump.spool,
        &geometry,
        kind,
        dump_path,
        target.path(),
        early,
    )?;
    let origin_sectors = target.origin_sectors()?;
    let (device, claim) = target.open()?;
    let count = dump.spool.len();
    writing.start("writing", count);
    write_records(
        &device,
        &geometry,
        &header,
        &mut dump.spool,
        RECORDS_PER_PROGRESS,
        &|index| writing.at(index),
    )?;
    writing.end();
    claim.keep();
    Ok(Outcome {
        created: Created::Classic {
            kind,
            geometry,
            restored: Some((head, count)),
        },
        origin_sectors,
    })
}

/// Restores dm-clone metadata: the hydrated regions of the dump in fresh
/// metadata laid out as the kernel formats it (`clone::write`), the
/// superblock last. The source and destination are not touched.
fn restore_clone<T: NewStore>(target: &T, dump_path: &Path) -> Result<Outcome, T::Error> {
    let back = dump_input::read_clone(dump_path)?;
    let size = target.plan(CLONE_BLOCK_SECTORS)?;
    let nr_blocks = back
        .geometry
        .check_metadata_device(size)
        .map_err(|e| Error::Invalid(format!("{}: {e}", target.path().display())))?;
    let (mut device, claim) = target.open()?;
    let written = write_clone(&mut device, &back.geometry, nr_blocks, &back.bits)
        .map_err(|e| Error::Invalid(format!("{}: {e}", target.path().display())))?;
    claim.keep();
    Ok(Outcome {
        created: Created::Clone {
            geometry: back.geometry,
            written,
            hydrated: Some(back.bits.count_ones()),
        },
        origin_sectors: None,
    })
}

/// Restores a shared store: the data chunks stay where the dump says they
/// are; a fresh tree and bitmap are written around them.
fn restore_shared<T: NewStore>(
    target: &T,
    dump_path: &Path,
    mut dump: dump_input::ReadDump,
    writing: &mut dyn PassProgress,
) -> Result<Outcome, T::Error> {
    let head: SharedRestoreHead = dump.head(dump_path)?;
    check_dump_version(head.format_version, dump_path)?;
    let snapmask = shared_restore::check_head(&head, dump_path)?;
    let chunk_sectors = head.chunk_size;
    let size = target.plan(chunk_sectors)?;
    refuse_too_many_snapshots(
        snapmask.count_ones(),
        chunk_sectors,
        &format!("{}: snapshots", dump_path.display()),
    )?;
    let chunk_bytes = u64::from(chunk_sectors) * SECTOR_BYTES;
    let journal = head
        .journal_chunks
        .unwrap_or_else(|| default_journal_chunks(size, chunk_bytes));
    crate::shared::format::plan(size, u64::from(chunk_sectors), journal)
        .map_err(|e| Error::format(target.path(), e))?;
    let early = dump.checked.take();
    let origin_chunks =
        shared_restore::check_records(&mut dump.spool, snapmask, chunk_bytes, dump_path, early)?;
    let origin_sectors = target.origin_sectors()?;
    let (device, claim) = target.open()?;
    let plan = RestorePlan {
        chunk_sectors,
        journal_chunks: journal,
        snapmask,
        valid: head.valid,
        origin_chunks,
        every: RECORDS_PER_PROGRESS,
    };
    let built = shared_restore::write_store(&device, &mut dump.spool, &plan, dump_path, writing)?;
    claim.keep();
    Ok(Outcome {
        created: Created::Shared {
            geometry: SharedGeometry::new(size, chunk_sectors, journal),
            snapmask,
            restored: Some((built, origin_chunks)),
        },
        origin_sectors,
    })
}

/// Only the SnAp v1 kinds are written by this version.
fn snap_kind<T: NewStore>(kind: StoreKind, target: &T) -> Result<StoreKind, Error> {
    if kind.is_snap_v1() {
        Ok(kind)
    } else {
        Err(Error::Invalid(format!(
            "{}: mkcow does not handle {kind} stores in this version",
            target.path().display()
        )))
    }
}

/// Refuses more snapshots than a store of `chunk_sectors`-sector chunks
/// serves. `place` names what asked for them.
fn refuse_too_many_snapshots(snapshots: u32, chunk_sectors: u32, place: &str) -> Result<(), Error> {
    check_snapshot_count(snapshots, u64::from(chunk_sectors) * SECTOR_BYTES)
        .map_err(|e| Error::Invalid(format!("{place}: {e}")))
}

/// The size of an existing target once `--size` is applied: an image file
/// grows to it, a device keeps its size.
pub fn planned_size(device: &Device, size: Option<u64>) -> u64 {
    let current = device.size_bytes();
    match (device.backing(), size) {
        (Backing::File, Some(size)) => current.max(size),
        _ => current,
    }
}

/// Plans the check of the records while they are spooled, from the head
/// fields read before them: the geometry [`restore`] will plan, found without
/// a word to the user (the restore itself says what it overwrites).
fn plan_check<T: NewStore>(
    target: &T,
    dump_path: &Path,
    kind: Option<StoreKind>,
    shared: bool,
    fields: &Map<String, Value>,
) -> Option<Box<dyn RecordCheck>> {
    let fields = Value::Object(fields.clone());
    if shared {
        let head: SharedRestoreHead = serde_json::from_value(fields).ok()?;
        return shared_restore::plan_check(&head, dump_path);
    }
    let head: RestoreHead = serde_json::from_value(fields).ok()?;
    let kind = kind.unwrap_or(head.kind.unwrap_or(StoreKind::Persistent));
    let chunk_size = u64::from(head.chunk_size);
    if !kind.is_snap_v1() || crate::persistent::header::validate_chunk_size(chunk_size).is_err() {
        return None;
    }
    let size = match std::fs::symlink_metadata(target.path()) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => target.size()?,
        Err(_) => return None,
        Ok(_) => {
            let device = Device::open(target.path(), Access::ReadOnly).ok()?;
            planned_size(&device, target.size())
        }
    };
    let geometry = plan_geometry(target.path(), head.chunk_size, size, kind).ok()?;
    Some(Box::new(PersistentCheck::new(
        geometry,
        kind,
        target.path(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{open_output, OutputRequest};

    /// The test tool's error: any error a [`NewStore`] must take.
    #[derive(Debug, thiserror::Error)]
    enum ToolError {
        #[error(transparent)]
        Format(#[from] Error),
        #[error(transparent)]
        Input(#[from] dump_input::RestoreInputError),
    }

    /// A new image file of `size` bytes, opened through the output guard.
    struct NewImage {
        path: std::path::PathBuf,
        size: u64,
    }

    impl NewStore for NewImage {
        type Error = ToolError;

        fn path(&self) -> &Path {
            &self.path
        }

        fn size(&self) -> Option<u64> {
            Some(self.size)
        }

        fn plan(&self, _chunk_sectors: u32) -> Result<u64, ToolError> {
            Ok(self.size)
        }

        fn origin_sectors(&self) -> Result<Option<u64>, ToolError> {
            Ok(None)
        }

        fn open(&self) -> Result<(Device, OutputClaim), ToolError> {
            let prepared = open_output(&OutputRequest {
                path: &self.path,
                size: self.size,
                size_given: true,
                force: false,
                inputs: &[],
            })?;
            Ok((prepared.device, prepared.claim))
        }
    }

    fn image(dir: &tempfile::TempDir, name: &str) -> NewImage {
        NewImage {
            path: dir.path().join(name),
            size: 4 << 20,
        }
    }

    #[test]
    fn a_formatted_store_opens_as_the_kind_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let classic = image(&dir, "classic.img");
        let outcome = format(&classic, &FormatOptions::default()).unwrap();
        let Created::Classic { kind, geometry, .. } = outcome.created else {
            panic!("a persistent store was asked for");
        };
        assert_eq!(kind, StoreKind::Persistent);
        assert_eq!(geometry.chunk_sectors(), DEFAULT_CHUNK_SECTORS);
        assert_eq!(super::super::open(&classic.path, None).unwrap().1, kind);

        let shared = image(&dir, "shared.img");
        let options = FormatOptions {
            kind: Some(StoreKind::Shared),
            snapshots: Some(2),
            ..FormatOptions::default()
        };
        let outcome = format(&shared, &options).unwrap();
        let Created::Shared { snapmask, .. } = outcome.created else {
            panic!("a shared store was asked for");
        };
        assert_eq!(snapmask, 0b11);
        let opened = super::super::open(&shared.path, None).unwrap().1;
        assert_eq!(opened, StoreKind::Shared);
    }

    #[test]
    fn shared_options_on_a_classic_store_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let classic = image(&dir, "classic.img");
        let options = FormatOptions {
            journal_bytes: Some(1 << 16),
            ..FormatOptions::default()
        };
        let Err(error) = format(&classic, &options) else {
            panic!("--journal-size was accepted for a persistent store");
        };
        assert_eq!(
            error.to_string(),
            "--journal-size and --snapshots apply to shared stores only (--kind shared)"
        );
        assert!(!classic.path.exists());
    }

    #[test]
    fn clone_metadata_is_formatted_as_the_kernel_does_and_refusals_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let meta = image(&dir, "meta.img");
        let options = FormatOptions {
            kind: Some(StoreKind::Clone),
            region_sectors: Some(128),
            target_sectors: Some(128 * 1024),
            ..FormatOptions::default()
        };
        let outcome = format(&meta, &options).unwrap();
        let Created::Clone {
            geometry, written, ..
        } = outcome.created
        else {
            panic!("dm-clone metadata was asked for");
        };
        assert_eq!(
            (geometry.nr_regions(), written.sm_root.nr_allocated),
            (1024, 6)
        );
        let xz = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/kernel-clone/b-region128-1024regions/meta-formatted.img.xz"
        );
        let mut kernel = Vec::new();
        let mut input = std::io::BufReader::new(std::fs::File::open(xz).unwrap());
        lzma_rs::xz_decompress(&mut input, &mut kernel).unwrap();
        assert!(std::fs::read(&meta.path).unwrap() == kernel);

        for (region_sectors, target_sectors, chunk_sectors, why) in [
            (12, 1 << 20, None, "not a power of two"),
            (8, 1 << 40, None, "2147483648"),
            (8, 1 << 20, Some(8), "--chunk-size"),
        ] {
            let refused = image(&dir, "refused.img");
            let options = FormatOptions {
                kind: Some(StoreKind::Clone),
                region_sectors: Some(region_sectors),
                target_sectors: Some(target_sectors),
                chunk_sectors,
                ..FormatOptions::default()
            };
            let Err(error) = format(&refused, &options) else {
                panic!("{region_sectors}/{target_sectors} was accepted");
            };
            assert!(error.to_string().contains(why), "{error}");
            assert!(!refused.path.exists());
        }
        let small = NewImage {
            path: dir.path().join("small.img"),
            size: 8 << 12,
        };
        let options = FormatOptions {
            kind: Some(StoreKind::Clone),
            region_sectors: Some(8),
            target_sectors: Some(1 << 20),
            ..FormatOptions::default()
        };
        let Err(error) = format(&small, &options) else {
            panic!("8 blocks held a 10-block format");
        };
        assert!(
            error
                .to_string()
                .contains("small.img: a metadata device of 32768 bytes"),
            "{error}"
        );
        assert!(!small.path.exists());
    }
}
