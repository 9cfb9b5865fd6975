//! The whole repair of a persistent (or legacy) store, as a tool runs it:
//! analyse, then write the salvage into a new output, or rebuild the input in
//! place from a verified backup, or (a dry run) only report; the written
//! store is checked before the job ends.

use std::path::Path;

use super::{analyze, RepairOptions, RepairReport, Salvage};
use crate::device::{Access, Device};
use crate::kind::StoreKind;
use crate::persistent::check::{check_with_progress, CheckOptions};
use crate::repair::in_place::InPlace;
use crate::repair::target::open_for_writing;
use crate::repair::{
    in_phase, refuse_if_nothing_salvaged, refused, write_salvage, Finished, Phase, RepairError,
    RepairEvents, RepairRequest, Salvaged, Verdict,
};
use crate::units::human_bytes;

/// How a persistent repair ended, or why it stopped.
pub type JobResult = Result<Finished<RepairReport>, RepairError<RepairReport>>;

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
    let salvage = refuse_if_nothing_salvaged(&request.input, salvage)?;
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
    let report = write_salvage(events, copy_total(&salvage), |progress| {
        salvage.write(&input, prepared.device, prepared.zeroed, progress)
    })?;
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

/// What the copying phase counts to: the records kept.
fn copy_total(salvage: &Salvage) -> u64 {
    salvage.kept_records().len() as u64
}

impl Salvaged for Salvage {
    type Report = RepairReport;

    fn nothing_salvaged(&self) -> Option<(u64, bool)> {
        let report = self.report();
        report
            .nothing_salvaged()
            .then_some((report.dropped_total, false))
    }

    fn into_report(self) -> RepairReport {
        self.report
    }
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
    let salvage = refuse_if_nothing_salvaged(&request.input, salvage)?;
    if job.target.size_bytes() < salvage.needed_bytes() {
        return Err(refused(format!(
            "{}: the salvaged store needs at least {} bytes, more than the device holds",
            request.input.display(),
            salvage.needed_bytes()
        )));
    }
    let (output, backup, _claim) = job.mark()?;
    let mut report = write_salvage(events, copy_total(&salvage), |progress| {
        salvage.write(&backup, output, false, progress)
    })?;
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
    Ok(Finished::written(report, output, &checked.findings))
}
