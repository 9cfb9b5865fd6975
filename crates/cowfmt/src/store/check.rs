//! The check of every kind behind one entry and one report: [`plan`] picks the
//! checker from the first block (or `--kind`), [`CheckPlan::run`] runs it, and
//! [`CheckReport`] answers the same questions whatever the kind.

use crate::clone::check::{self as clone, CloneCheckReport};
use crate::clone::open::{open_tolerant, TableSizes};
use crate::device::{Access, Device};
use crate::error::{Error, Result};
use crate::finding::{Finding, Severity};
use crate::kind::StoreKind;
use crate::output::Marker;
use crate::persistent::check as snap;
use crate::progress::Progress;
use crate::shared::check as shared;

use super::probe::FirstBlock;

/// What to check and how, for any kind.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// The kind the caller insisted on (`--kind`): a wrong magic is then
    /// reported as damage instead of "not a store".
    pub kind: Option<StoreKind>,
    /// The origin size in bytes, when known.
    pub origin_bytes: Option<u64>,
    /// Only the header (chunk 0).
    pub header_only: bool,
    /// Chunk size (sectors) to read with when the header's is unusable.
    pub chunk_size_fallback: Option<u32>,
}

/// Why no checker runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// An unfinished output (the output guard's marker): the sentence saying
    /// whether a job was cut short or an in-place repair must be run again.
    Unfinished(String),
    /// A kind this version cannot check.
    Unsupported(StoreKind),
}

/// Which checker runs, with its options.
#[derive(Debug, Clone)]
pub enum CheckPlan {
    /// The persistent checker, for a SnAp store (persistent or legacy).
    Snap(snap::CheckOptions),
    /// The shared checker.
    Shared(shared::CheckOptions),
    /// The dm-clone checker.
    Clone(CloneCheckOptions),
}

/// What the dm-clone checker is told.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CloneCheckOptions {
    /// The source device's size in bytes (`--origin`): the table's target
    /// size, which the superblock's must equal.
    pub source_bytes: Option<u64>,
    /// Only the superblock.
    pub superblock_only: bool,
}

/// How far a check has got, as its progress callback counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressUnit {
    /// (chunk reached, chunks on the device): a bar.
    DeviceChunks,
    /// Tree blocks read, the total unknown: a counter.
    TreeBlocks,
    /// (array blocks read, array blocks of the bitset): a bar.
    ArrayBlocks,
}

/// Picks the checker for the store on `device`. Without `--kind`, the kind
/// comes from the first block: `Shared` for a shared store, `Clone` for a
/// dm-clone superblock, unsupported for the kinds this version cannot
/// check, `Persistent` otherwise (every other header problem is left to the
/// checker). An unfinished output and the kinds this version cannot check
/// are refused.
pub fn plan(device: &Device, options: &CheckOptions) -> Result<Result<CheckPlan, Refusal>> {
    if let Some(marker) = Marker::read(device)? {
        let text = format!("{}: {}", device.path().display(), marker.describe());
        return Ok(Err(Refusal::Unfinished(text)));
    }
    let kind = match options.kind {
        Some(kind) if !checked(kind) => return Ok(Err(Refusal::Unsupported(kind))),
        Some(kind) => kind,
        None => match FirstBlock::read(device, &String::new).map(|f| f.kind()) {
            Ok(Ok(kind)) if !checked(kind) => return Ok(Err(Refusal::Unsupported(kind))),
            Ok(Ok(kind @ (StoreKind::Shared | StoreKind::Clone))) => kind,
            _ => StoreKind::Persistent,
        },
    };
    if kind == StoreKind::Clone {
        return Ok(Ok(CheckPlan::Clone(CloneCheckOptions {
            source_bytes: options.origin_bytes,
            superblock_only: options.header_only,
        })));
    }
    let kind_forced = options.kind.is_some();
    if kind == StoreKind::Shared {
        return Ok(Ok(CheckPlan::Shared(shared::CheckOptions {
            kind_forced,
            origin_bytes: options.origin_bytes,
            header_only: options.header_only,
            chunk_size_fallback: options.chunk_size_fallback,
        })));
    }
    Ok(Ok(CheckPlan::Snap(snap::CheckOptions {
        kind,
        kind_forced,
        origin_bytes: options.origin_bytes,
        header_only: options.header_only,
        chunk_size_fallback: options.chunk_size_fallback,
    })))
}

/// Whether this version has a checker for `kind`.
fn checked(kind: StoreKind) -> bool {
    kind.is_snap_v1() || matches!(kind, StoreKind::Shared | StoreKind::Clone)
}

impl CheckPlan {
    /// Sets the origin size (bytes) the records are checked against (for
    /// clone metadata, the source's size: the target size a table would
    /// give): tools learn it after the plan, so that a refusal comes before
    /// an origin that cannot be opened.
    pub fn set_origin_bytes(&mut self, origin_bytes: Option<u64>) {
        match self {
            CheckPlan::Snap(options) => options.origin_bytes = origin_bytes,
            CheckPlan::Shared(options) => options.origin_bytes = origin_bytes,
            CheckPlan::Clone(options) => options.source_bytes = origin_bytes,
        }
    }

    /// What the progress callback of [`CheckPlan::run`] counts.
    pub fn progress_unit(&self) -> ProgressUnit {
        match self {
            CheckPlan::Shared(_) => ProgressUnit::TreeBlocks,
            CheckPlan::Snap(_) => ProgressUnit::DeviceChunks,
            CheckPlan::Clone(_) => ProgressUnit::ArrayBlocks,
        }
    }

    /// Runs the check on `device`, telling `progress` as it goes. For a shared store whose journal holds committed
    /// transactions, the state a replay would leave is checked too, read
    /// through the replay overlay (nothing is written).
    pub fn run(&self, device: &Device, progress: &mut Progress) -> Result<CheckReport> {
        Ok(match self {
            CheckPlan::Snap(options) => {
                CheckReport::Snap(snap::check_with_progress(device, options, progress)?)
            }
            CheckPlan::Shared(options) => {
                let report = shared::check_with_progress(device, options, progress)?;
                let after_replay = after_replay(device, &report, options)?;
                CheckReport::Shared {
                    report,
                    after_replay,
                }
            }
            CheckPlan::Clone(options) => CheckReport::Clone(options.run(device, progress)?),
        })
    }
}

impl CloneCheckOptions {
    /// Checks the clone metadata on `device`; an all-zero block 0 (metadata
    /// the kernel formats on its first load) is not checked.
    fn run(&self, device: &Device, progress: &mut Progress) -> Result<CloneCheckReport> {
        let opened = open_tolerant(device, None)?;
        if opened.is_blank() {
            return Err(Error::Invalid(format!(
                "{}: holds no dm-clone metadata: block 0 is all zero (the kernel formats it \
                 when a clone table is first loaded); nothing to check",
                device.path().display()
            )));
        }
        // A table over the source: the source's size in sectors, and the
        // superblock's region size (the table names one; cowcheck cannot).
        let table = self.source_bytes.and_then(|bytes| {
            opened.superblock.map(|superblock| TableSizes {
                region_sectors: superblock.region_sectors,
                target_sectors: bytes / 512,
            })
        });
        if self.superblock_only {
            clone::check_superblock(device, table)
        } else {
            clone::check_with_progress(device, table, progress)
        }
    }
}

/// The findings of the state a replay of the journal would leave, when
/// committed transactions wait for replay; empty otherwise.
fn after_replay(
    device: &Device,
    report: &shared::CheckReport,
    options: &shared::CheckOptions,
) -> Result<Vec<Finding>> {
    let waiting = report
        .summary
        .journal
        .as_ref()
        .is_some_and(|j| j.state == shared::JournalState::NeedsReplay);
    if !waiting {
        return Ok(Vec::new());
    }
    let device = Device::open(device.path(), Access::ReadOnly)?;
    let repair = crate::shared::repair::RepairOptions::default();
    let (view, _) = crate::shared::repair::read_through_journal(device, &repair)?;
    Ok(shared::check(&view, options)?.findings)
}

/// The report of a check, of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckReport {
    /// A persistent or legacy store.
    Snap(snap::CheckReport),
    /// A shared store, and the findings of the state a replay of its journal
    /// would leave.
    Shared {
        /// The check of the store as it is on disk.
        report: shared::CheckReport,
        /// The findings after a replay (empty when nothing waits for one).
        after_replay: Vec<Finding>,
    },
    /// dm-clone metadata.
    Clone(CloneCheckReport),
}

impl CheckReport {
    /// The kind checked.
    pub fn kind(&self) -> StoreKind {
        match self {
            CheckReport::Snap(report) => report.kind,
            CheckReport::Shared { report, .. } => report.kind,
            CheckReport::Clone(_) => StoreKind::Clone,
        }
    }

    /// Every finding, in the order found.
    pub fn findings(&self) -> &[Finding] {
        match self {
            CheckReport::Snap(report) => &report.findings,
            CheckReport::Shared { report, .. } => &report.findings,
            CheckReport::Clone(report) => &report.findings,
        }
    }

    /// Information that is not a finding (a torn last journal transaction).
    pub fn notes(&self) -> &[String] {
        match self {
            CheckReport::Snap(_) | CheckReport::Clone(_) => &[],
            CheckReport::Shared { report, .. } => &report.notes,
        }
    }

    /// The findings of the state a replay of the journal would leave.
    pub fn after_replay(&self) -> &[Finding] {
        match self {
            CheckReport::Snap(_) | CheckReport::Clone(_) => &[],
            CheckReport::Shared { after_replay, .. } => after_replay,
        }
    }

    /// True when nothing at all was found (before a replay).
    pub fn is_clean(&self) -> bool {
        self.findings().is_empty()
    }

    /// True when some finding, before or after a replay, is an error.
    pub fn has_errors(&self) -> bool {
        self.findings()
            .iter()
            .chain(self.after_replay())
            .any(|f| f.severity == Severity::Error)
    }

    /// Whether the check fails: any finding, or with `ignore_non_fatal` any
    /// error.
    pub fn fails(&self, ignore_non_fatal: bool) -> bool {
        if ignore_non_fatal {
            self.has_errors()
        } else {
            !self.is_clean()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Marker;
    use crate::persistent::test_store::committed_store;

    fn read_only(path: &std::path::Path) -> Device {
        Device::open(path, Access::ReadOnly).unwrap()
    }

    #[test]
    fn a_snap_store_is_checked_by_the_persistent_checker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.img");
        committed_store(&path, 64, 5, |i| i * 3);
        let device = read_only(&path);
        let plan = plan(&device, &CheckOptions::default()).unwrap().unwrap();
        assert!(
            matches!(&plan, CheckPlan::Snap(o) if o.kind == StoreKind::Persistent && !o.kind_forced)
        );
        assert_eq!(plan.progress_unit(), ProgressUnit::DeviceChunks);
        let report = plan.run(&device, &mut crate::progress::silent).unwrap();
        assert_eq!(report.kind(), StoreKind::Persistent);
        assert!(report.is_clean() && !report.fails(false));
        let CheckReport::Snap(snap) = &report else {
            panic!("not a SnAp report: {report:?}");
        };
        assert_eq!(snap.summary.records, 5);
    }

    #[test]
    fn a_shared_store_is_found_by_its_first_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.img");
        let image = Device::create_or_extend(&path, 4 << 20).unwrap();
        crate::shared::format::format_store(&image, 8, 4).unwrap();
        drop(image);
        let device = read_only(&path);
        let plan = plan(&device, &CheckOptions::default()).unwrap().unwrap();
        assert_eq!(plan.progress_unit(), ProgressUnit::TreeBlocks);
        let report = plan.run(&device, &mut crate::progress::silent).unwrap();
        assert_eq!(report.kind(), StoreKind::Shared);
        assert!(report.after_replay().is_empty());
        assert!(!report.has_errors(), "{:?}", report.findings());
    }

    #[test]
    fn an_unfinished_output_and_unsupported_kinds_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.img");
        let image = Device::create_or_extend(&path, 1 << 20).unwrap();
        Marker::Writing.write(&image).unwrap();
        drop(image);
        let device = read_only(&path);
        let refused = plan(&device, &CheckOptions::default())
            .unwrap()
            .unwrap_err();
        assert!(matches!(refused, Refusal::Unfinished(text) if text.contains("out.img")));
        let zeros = dir.path().join("zeros.img");
        drop(Device::create_or_extend(&zeros, 1 << 20).unwrap());
        let options = CheckOptions {
            kind: Some(StoreKind::Transient),
            ..CheckOptions::default()
        };
        let refused = plan(&read_only(&zeros), &options).unwrap().unwrap_err();
        assert_eq!(refused, Refusal::Unsupported(StoreKind::Transient));
    }

    /// Kernel fixture `name`'s final metadata in `dir`.
    fn clone_image(dir: &tempfile::TempDir, name: &str) -> std::path::PathBuf {
        let path = dir.path().join("meta.img");
        std::fs::write(&path, crate::clone::kernel_fixture_bytes(name, "final")).unwrap();
        path
    }

    #[test]
    fn clone_metadata_is_found_by_its_superblock_and_checked_with_its_status() {
        let dir = tempfile::tempdir().unwrap();
        let device = read_only(&clone_image(&dir, "b-region128-1024regions"));
        let plan = plan(&device, &CheckOptions::default()).unwrap().unwrap();
        assert!(matches!(
            plan,
            CheckPlan::Clone(CloneCheckOptions {
                source_bytes: None,
                superblock_only: false
            })
        ));
        assert_eq!(plan.progress_unit(), ProgressUnit::ArrayBlocks);
        let mut steps = Vec::new();
        let report = plan
            .run(&device, &mut |done, total| steps.push((done, total)))
            .unwrap();
        assert_eq!(steps, [(1, 1)]);
        assert_eq!(report.kind(), StoreKind::Clone);
        assert!(report.is_clean(), "{:?}", report.findings());
        let CheckReport::Clone(clone) = &report else {
            panic!("not a clone report: {report:?}");
        };
        assert_eq!(clone.status.unwrap().line(), "8 6/1024 128 9/1024");
    }

    #[test]
    fn a_source_of_another_size_is_the_kernels_size_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let device = read_only(&clone_image(&dir, "b-region128-1024regions"));
        let mut plan = plan(&device, &CheckOptions::default()).unwrap().unwrap();
        let target_bytes = 1024 * 128 * 512;
        plan.set_origin_bytes(Some(target_bytes));
        let report = plan.run(&device, &mut crate::progress::silent).unwrap();
        assert!(report.is_clean(), "{:?}", report.findings());
        plan.set_origin_bytes(Some(target_bytes / 2));
        let report = plan.run(&device, &mut crate::progress::silent).unwrap();
        let codes: Vec<_> = report.findings().iter().map(|f| f.code).collect();
        assert_eq!(codes, [crate::FindingCode::SizeMismatch]);
    }

    #[test]
    fn an_origin_size_set_after_the_plan_reaches_the_checker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.img");
        committed_store(&path, 64, 3, |i| i * 10);
        let device = read_only(&path);
        let mut plan = plan(&device, &CheckOptions::default()).unwrap().unwrap();
        plan.set_origin_bytes(Some(15 * 4096));
        let report = plan.run(&device, &mut crate::progress::silent).unwrap();
        let codes: Vec<_> = report.findings().iter().map(|f| f.code).collect();
        assert_eq!(codes, vec![crate::FindingCode::OldChunkPastOrigin]);
        assert!(report.fails(true));
    }
}
