//! The whole repair of a persistent (or legacy) store, as a tool runs it:
//! analyse, then write the salvage into a new output, or rebuild the input in
//! place from a verified backup, or (a dry run) only report; the written
//! store is checked before the job ends.

use std::path::Path;

use super::{analyze, RepairOptions, RepairReport, Salvage};
use crate::device::{Access, Device};
use crate::kind::StoreKind;
use crate::persistent::check::{check_with_progress, CheckOptions};
use crate::persistent::rebuild::JobError;
use crate::repair::in_place::InPlace;
use crate::repair::target::open_for_writing;
use crate::repair::{
    in_phase, refused, remaining_problems, Finished, Phase, RepairError, RepairEvents,
    RepairRequest, Verdict,
};
use crate::units::human_bytes;

/// How a persistent repair ended, or why it stopped.
pub type JobResult = Result<Finished<RepairReport>, RepairError<RepairReport>>;

impl<R> From<JobError> for RepairError<R> {
    fn from(error: JobError) -> Self {
        match error {
            JobError::Damage(message) => RepairError::Damage(message),
            JobError::Failed(error) => RepairError::Failed(error),
        }
    }
}

impl RepairReport {
    /// Whether records were kept, lost, or none could be salvaged.
    pub fn verdict(&self) -> Verdict {
        Verdict::of(self.nothing_salvaged(), self.records_lost)
    }
}

/// Repairs the persistent store `input` (already opened read-only) as
/// `request` asks.
pub fn run(request: &RepairRequest, input: Device, events: &mut dyn RepairEvents) -> JobResult {
    refuse_shared_options(request)?;
    let options = options(request)?;
    if request.in_place {
        return in_place(request, &options, input, events);
    }
    let salvage = scan(&input, &options, events)?;
    let Some(output_path) = request.output.as_deref() else {
        return Ok(Finished::dry_run(salvage.report));
    };
    let salvage = refuse_if_nothing_salvaged(request, salvage)?;
    let size = request.size.unwrap_or(input.size_bytes());
    if size < salvage.needed_bytes() {
        return Err(refused(format!(
            "{}: the salvaged store needs at least {} bytes ({}), more than the {size} bytes asked for; give a larger --size",
            output_path.display(),
            salvage.needed_bytes(),
            human_bytes(salvage.needed_bytes())
        )));
    }
    let prepared = open_for_writing(request, output_path, size, request.size.is_some(), events)?;
    let report = write(salvage, &input, prepared.device, prepared.zeroed, events)?;
    prepared.claim.keep();
    finish(report, output_path, events)
}

fn refuse_shared_options<R>(request: &RepairRequest) -> Result<(), RepairError<R>> {
    let shared_only = [
        (request.journal_chunks.is_some(), "--journal-chunks"),
        (request.snapshots.is_some(), "--snapshots"),
        (request.snapmask.is_some(), "--snapmask"),
        (request.full_scan, "--full-scan"),
    ];
    if let Some((_, flag)) = shared_only.iter().find(|(given, _)| *given) {
        return Err(refused(format!(
            "{}: {flag} applies to shared stores only, and this is not one (give --kind shared if its header is wiped)",
            request.input.display()
        )));
    }
    Ok(())
}

fn options(request: &RepairRequest) -> crate::Result<RepairOptions> {
    let kind = match request.kind {
        Some(StoreKind::Legacy) => StoreKind::Legacy,
        _ => StoreKind::Persistent,
    };
    Ok(RepairOptions {
        kind,
        chunk_size: request.chunk_size,
        origin_bytes: request.origin_bytes()?,
        mark_valid: request.mark_valid,
        kernel_areas_only: request.kernel_areas_only,
        invalidate_on_loss: request.invalidate_on_loss,
    })
}

fn scan(
    input: &Device,
    options: &RepairOptions,
    events: &mut dyn RepairEvents,
) -> Result<Salvage, RepairError<RepairReport>> {
    Ok(in_phase(events, Phase::Scanning, |progress| {
        analyze(input, options, progress)
    })?)
}

fn write(
    salvage: Salvage,
    input: &Device,
    output: Device,
    zeroed: bool,
    events: &mut dyn RepairEvents,
) -> Result<RepairReport, RepairError<RepairReport>> {
    let total = salvage.kept_records().len() as u64;
    Ok(in_phase(events, Phase::Copying(total), |progress| {
        salvage.write(input, output, zeroed, progress)
    })?)
}

fn refuse_if_nothing_salvaged(
    request: &RepairRequest,
    salvage: Salvage,
) -> Result<Salvage, RepairError<RepairReport>> {
    if !salvage.report().nothing_salvaged() {
        return Ok(salvage);
    }
    let dropped = salvage.report().dropped_total;
    Err(RepairError::NothingSalvaged {
        message: format!(
            "{}: nothing could be salvaged ({} record{} dropped); no output written",
            request.input.display(),
            dropped,
            if dropped == 1 { "" } else { "s" }
        ),
        report: Box::new(salvage.report),
    })
}

/// Copies the input to the backup, verifies the copy, then rebuilds the input
/// from the backup (or finishes an interrupted rebuild from it).
fn in_place(
    request: &RepairRequest,
    options: &RepairOptions,
    input: Device,
    events: &mut dyn RepairEvents,
) -> JobResult {
    let job = InPlace::prepare(request, input, events)?;
    let salvage = scan(&job.backup, options, events)?;
    let salvage = refuse_if_nothing_salvaged(request, salvage)?;
    if job.target.size_bytes() < salvage.needed_bytes() {
        return Err(refused(format!(
            "{}: the salvaged store needs at least {} bytes, more than the device holds",
            request.input.display(),
            salvage.needed_bytes()
        )));
    }
    let (output, backup, _claim) = job.mark()?;
    let mut report = write(salvage, &backup, output, false, events)?;
    report.notes.push(format!(
        "the records and data were read from the verified backup {}",
        request.backup_path().display()
    ));
    report.input = request.input.display().to_string();
    finish(report, &request.input, events)
}

/// Checks the written store and ends the job.
fn finish(report: RepairReport, output: &Path, events: &mut dyn RepairEvents) -> JobResult {
    let device = Device::open(output, Access::ReadOnly)?;
    let options = CheckOptions {
        kind: report.kind,
        ..CheckOptions::default()
    };
    let checked = in_phase(events, Phase::VerifyingStore, |progress| {
        check_with_progress(&device, &options, progress)
    })?;
    Ok(Finished {
        problems: remaining_problems(&checked.findings, output),
        report,
        output: Some(output.to_path_buf()),
    })
}
