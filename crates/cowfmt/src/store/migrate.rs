//! The migrate facade: a planned migration of any kind written into its
//! output, sized, and checked clean afterwards. Classic plans come from
//! [`crate::persistent::migrate::plan`], shared ones (import, export,
//! re-chunk) from [`crate::cross::migrate`], a clone's region-size change
//! from [`crate::clone::migrate::plan`]; the caller opens the inputs,
//! plans, and renders the report.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use crate::clone::check as clone_check;
use crate::clone::migrate::{self as clone_migrate, CloneShape};
use crate::clone::write::write_clone;
use crate::cross::migrate::{self as cross, ExportOptions, RechunkOptions, SharedMigrateReport};
use crate::device::{Access, Device};
use crate::error::Error;
use crate::finding::{Finding, FindingCode, Severity};
use crate::job::JobError;
use crate::kind::StoreKind;
use crate::output::{open_output, OutputRequest, PreparedOutput};
use crate::persistent::check as classic_check;
use crate::persistent::migrate::{self as classic, MigratePlan, MigrateReport};
use crate::shared::check as shared_check;
use crate::shared::mask;
use crate::units::human_bytes;
use crate::SECTOR_BYTES;

pub use crate::cross::migrate::{plan_import, ImportOptions, JournalSize, SharedInput, SharedPlan};
pub use crate::persistent::migrate::{plan as plan_classic, MigrateOptions};
pub use crate::persistent::PersistentStore;

/// A step of a migration the caller may show progress for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading every content once to size a shared output exactly.
    Counting,
    /// Writing the output.
    Copying,
    /// Checking the output: a shared store's tree (no known total), or a
    /// classic store's areas.
    Verifying {
        /// The output is a shared store.
        shared: bool,
    },
}

/// What a migration tells its caller as it runs (the library never prints).
pub trait MigrateObserver {
    /// `phase` starts, with `total` steps (0 when unknown).
    fn start(&mut self, phase: Phase, total: u64);
    /// The current phase reached `done` of `total` steps.
    fn advance(&mut self, done: u64, total: u64);
    /// The current phase ended.
    fn finish(&mut self);
    /// The output at `path` held `what`, which `--force` lets the job overwrite.
    fn overwritten(&mut self, path: &Path, what: &str);
}

/// Where a migration writes.
#[derive(Debug, Clone)]
pub struct OutputTarget<'a> {
    /// The output image or device.
    pub path: &'a Path,
    /// Its size, when asked for; otherwise what the store needs plus room.
    pub size: Option<u64>,
    /// Overwrite an existing output.
    pub force: bool,
    /// Every file the job reads (none may be the output).
    pub reads: Vec<&'a Path>,
}

/// What a shared store is migrated to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedTarget {
    /// A classic kind: one snapshot is exported; `None`: the store is
    /// re-chunked or compacted whole.
    pub to_classic: Option<StoreKind>,
    /// The snapshot an export takes.
    pub snapshot: Option<u32>,
    /// The output chunk size in sectors; the input's when `None`.
    pub chunk_size: Option<u32>,
    /// The new journal in bytes (a re-chunk only).
    pub journal_bytes: Option<u64>,
}

/// Plans the migration of the shared store `input` (at `path`): an export of
/// one snapshot, or a re-chunk or compaction; `origin_bytes` is the origin's
/// size when known.
pub fn plan_shared_input(
    path: &Path,
    input: SharedInput,
    target: &SharedTarget,
    origin_bytes: Option<u64>,
) -> Result<SharedPlan, JobError> {
    let Some(kind) = target.to_classic else {
        if target.snapshot.is_some() {
            return Err(invalid("--snapshot applies to an export (--to persistent or --to legacy); a shared store is re-chunked or compacted whole".to_string()));
        }
        let options = RechunkOptions {
            chunk_size: target.chunk_size,
            journal: target.journal_bytes.map(JournalSize::Bytes),
        };
        return cross::plan_rechunk(input, &options, origin_bytes);
    };
    if target.journal_bytes.is_some() {
        return Err(invalid(format!(
            "--journal-size does not apply to an export: a {kind} store has no journal"
        )));
    }
    let Some(snapshot) = target.snapshot else {
        return Err(invalid(format!(
            "{}: --to {kind} exports one snapshot: say which with --snapshot ID (snapshots: {})",
            path.display(),
            mask::describe(input.header().snapmask)
        )));
    };
    let options = ExportOptions {
        snapshot,
        kind,
        chunk_size: target.chunk_size,
    };
    cross::plan_export(input, &options, origin_bytes)
}

/// Writes the classic `plan` of `store` (named `input` by the user) into
/// `output`, reading unchanged pieces from `origin`, and checks the result
/// clean.
pub fn classic(
    input: &Path,
    store: &PersistentStore,
    plan: &MigratePlan,
    origin: Option<&Device>,
    output: &OutputTarget,
    observer: &mut dyn MigrateObserver,
) -> Result<MigrateReport, JobError> {
    if plan.needs_origin && origin.is_none() {
        return Err(needs_origin(
            input,
            plan.from().chunk_size,
            plan.to_chunk_size,
        ));
    }
    let needed = plan.needed_bytes;
    let size = output.size.unwrap_or_else(|| {
        classic::default_output_bytes(
            needed,
            Some(store.device().size_bytes()),
            u64::from(plan.to_chunk_size) * SECTOR_BYTES,
            plan.to_kind,
        )
    });
    if size < needed {
        return Err(too_small(output.path, needed, size));
    }
    let prepared = prepare(output, size, observer)?;
    if prepared.device.size_bytes() < needed {
        return Err(invalid(format!(
            "{}: the device has {} bytes, but the migrated store needs at least {needed}",
            output.path.display(),
            prepared.device.size_bytes(),
        )));
    }
    let report = in_phase(observer, Phase::Copying, plan.copy_steps, |progress| {
        classic::migrate(
            store,
            plan,
            origin,
            prepared.device,
            prepared.zeroed,
            progress,
        )
    })?;
    verify(output.path, plan.to_kind, observer)?;
    prepared.claim.keep();
    Ok(report)
}

/// Sizes, opens and writes the output of the shared `plan` (an import, an
/// export or a re-chunk; `input` is its first input as the user named it),
/// reading unchanged pieces from `origin`, and checks the result clean. Without a size a new image gets what the store needs
/// plus room to grow, and at least `default_size` (the input's size).
pub fn shared(
    input: &Path,
    mut plan: SharedPlan,
    origin: Option<&Device>,
    default_size: Option<u64>,
    output: &OutputTarget,
    observer: &mut dyn MigrateObserver,
) -> Result<SharedMigrateReport, JobError> {
    if plan.needs_origin() && origin.is_none() {
        return Err(needs_origin(
            input,
            plan.from_chunk_size(),
            plan.to_chunk_size(),
        ));
    }
    let is_block_device =
        std::fs::metadata(output.path).is_ok_and(|meta| meta.file_type().is_block_device());
    let size = match (output.size, default_size) {
        _ if is_block_device => 0,
        (Some(size), _) => {
            ensure_fits(&mut plan, origin, output.path, size, false, observer)?;
            size
        }
        (None, default_size) => {
            if !default_size.is_some_and(|size| plan.fits(size).unwrap_or(false)) {
                count(&mut plan, origin, observer)?;
            }
            classic::default_output_bytes(
                plan.needed_bytes()?,
                default_size,
                u64::from(plan.to_chunk_size()) * SECTOR_BYTES,
                plan.to_kind(),
            )
        }
    };
    let prepared = prepare(output, size, observer)?;
    let device_bytes = prepared.device.size_bytes();
    ensure_fits(&mut plan, origin, output.path, device_bytes, true, observer)?;
    let report = in_phase(observer, Phase::Copying, plan.steps(), |progress| {
        cross::migrate(&plan, origin, prepared.device, prepared.zeroed, progress)
    })?;
    verify(output.path, plan.to_kind(), observer)?;
    prepared.claim.keep();
    Ok(report)
}

/// What a clone's region-size change did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CloneMigrateReport {
    /// The input metadata, as named.
    pub input: String,
    /// The output metadata, as named.
    pub output: String,
    /// The input's sizes and hydration.
    pub from: CloneShape,
    /// The output's.
    pub to: CloneShape,
    /// Merged regions left unhydrated because some, not all, of their
    /// parts were hydrated (the kernel copies them again).
    pub partly_hydrated: u64,
    /// Metadata blocks of the output (what the kernel uses of the device).
    pub metadata_blocks: u64,
}

/// Writes the clone metadata `input` (named `path` by the user) with
/// regions of `region_sectors` into `output` (the input's size unless one is
/// given), through the one clone writer, and checks the result clean.
pub fn clone(
    path: &Path,
    input: &Device,
    region_sectors: u64,
    output: &OutputTarget,
    observer: &mut dyn MigrateObserver,
) -> Result<CloneMigrateReport, JobError> {
    let change = clone_migrate::plan(input, region_sectors)?;
    let size = output.size.unwrap_or(input.size_bytes());
    let fits = |bytes| {
        change.geometry.check_metadata_device(bytes).map_err(|e| {
            invalid(format!(
                "{}: {e}; give a larger --size, or a larger device",
                output.path.display()
            ))
        })
    };
    fits(size)?;
    let prepared = prepare(output, size, observer)?;
    let mut device = prepared.device;
    let nr_blocks = fits(device.size_bytes())?;
    in_phase(observer, Phase::Copying, 0, |_| {
        write_clone(&mut device, &change.geometry, nr_blocks, &change.bits)
            .map_err(|e| invalid(format!("{}: {e}", output.path.display())))
    })?;
    drop(device);
    verify_clone(output.path, change.to.hydrated_regions, observer)?;
    prepared.claim.keep();
    Ok(CloneMigrateReport {
        input: path.display().to_string(),
        output: output.path.display().to_string(),
        from: change.from,
        to: change.to,
        partly_hydrated: change.partly_hydrated,
        metadata_blocks: nr_blocks,
    })
}

/// Checks the clone metadata written at `path`: no violation at all, and
/// `hydrated` regions marked.
fn verify_clone(
    path: &Path,
    hydrated: u64,
    observer: &mut dyn MigrateObserver,
) -> Result<(), JobError> {
    let device = Device::open(path, Access::ReadOnly)?;
    observer.start(Phase::Verifying { shared: false }, 0);
    let report = clone_check::check(&device, None);
    observer.finish();
    let report = report?;
    if let Some(first) = report.violations.first() {
        return Err(JobError::Damage(format!(
            "{}: the migrated metadata does not check clean: {}: {}",
            path.display(),
            first.code(),
            first.describe()
        )));
    }
    let marked = report.status.map_or(0, |status| status.hydrated_regions);
    if marked != hydrated {
        return Err(JobError::Damage(format!(
            "{}: the migrated metadata marks {marked} regions hydrated, {hydrated} were written",
            path.display()
        )));
    }
    Ok(())
}

fn prepare(
    output: &OutputTarget,
    size: u64,
    observer: &mut dyn MigrateObserver,
) -> Result<PreparedOutput, JobError> {
    let prepared = open_output(&OutputRequest {
        path: output.path,
        size,
        size_given: output.size.is_some(),
        force: output.force,
        inputs: &output.reads,
    })?;
    if let Some(what) = prepared.overwritten.as_deref() {
        observer.overwritten(output.path, what);
    }
    Ok(prepared)
}

/// Reads every content once so that the space a shared output needs is exact.
fn count(
    plan: &mut SharedPlan,
    origin: Option<&Device>,
    observer: &mut dyn MigrateObserver,
) -> Result<(), JobError> {
    if plan.is_exact() {
        return Ok(());
    }
    let steps = plan.steps();
    in_phase(observer, Phase::Counting, steps, |progress| {
        plan.count(origin, progress)
    })
}

/// Runs `job` as `phase` of `steps` steps, its progress going to `observer`.
fn in_phase<T>(
    observer: &mut dyn MigrateObserver,
    phase: Phase,
    steps: u64,
    job: impl FnOnce(&mut dyn FnMut(u64, u64)) -> Result<T, JobError>,
) -> Result<T, JobError> {
    observer.start(phase, steps);
    let result = job(&mut |done, _| observer.advance(done, 0));
    observer.finish();
    result
}

/// Fails unless an output of `size` bytes holds the migrated store; before
/// refusing, the contents are counted, since sharing may need less than the
/// first estimate. `device` says the size is that of an opened device.
fn ensure_fits(
    plan: &mut SharedPlan,
    origin: Option<&Device>,
    path: &Path,
    size: u64,
    device: bool,
    observer: &mut dyn MigrateObserver,
) -> Result<(), JobError> {
    if plan.fits(size)? {
        return Ok(());
    }
    count(plan, origin, observer)?;
    if plan.fits(size)? {
        return Ok(());
    }
    let needed = plan.needed_bytes()?;
    if device {
        return Err(invalid(format!(
            "{}: the device has {size} bytes, but the migrated store needs at least {needed} ({})",
            path.display(),
            human_bytes(needed)
        )));
    }
    Err(too_small(path, needed, size))
}

/// Checks the output as its kind; a migration never leaves a finding behind,
/// error or warning, except `invalidated`: an invalidated input stays
/// invalidated.
fn verify(
    path: &Path,
    kind: StoreKind,
    observer: &mut dyn MigrateObserver,
) -> Result<(), JobError> {
    let device = Device::open(path, Access::ReadOnly)?;
    let shared = kind == StoreKind::Shared;
    observer.start(Phase::Verifying { shared }, 0);
    let mut progress = |done, total| observer.advance(done, total);
    let findings = if shared {
        let options = shared_check::CheckOptions::default();
        shared_check::check_with_progress(&device, &options, &mut progress).map(|r| r.findings)
    } else {
        let options = classic_check::CheckOptions {
            kind,
            ..classic_check::CheckOptions::default()
        };
        classic_check::check_with_progress(&device, &options, &mut progress).map(|r| r.findings)
    };
    observer.finish();
    let findings: Vec<Finding> = findings?;
    let problem = findings
        .iter()
        .find(|f| f.severity == Severity::Error)
        .or_else(|| findings.iter().find(|f| f.code != FindingCode::Invalidated));
    match problem {
        Some(first) => Err(JobError::Damage(format!(
            "{}: the migrated store does not check clean: {}: {}",
            path.display(),
            first.code,
            first.message
        ))),
        None => Ok(()),
    }
}

fn needs_origin(input: &Path, from: u32, to: u32) -> JobError {
    invalid(format!(
        "{}: a larger chunk size ({from} -> {to} sectors) needs --origin DEV: the pieces of each new chunk that never changed are read from the origin",
        input.display()
    ))
}

fn too_small(path: &Path, needed: u64, size: u64) -> JobError {
    invalid(format!(
        "{}: the migrated store needs at least {needed} bytes ({}), but the output would have {size}; give a larger --size, e.g. --size {needed}",
        path.display(),
        human_bytes(needed)
    ))
}

fn invalid(message: String) -> JobError {
    Error::Invalid(message).into()
}
