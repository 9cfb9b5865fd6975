//! The whole repair of a shared store, as a tool runs it: replay the
//! journal through an overlay, analyse, then write the salvage into a new
//! output, or rebuild the input in place from a verified backup (the data
//! chunks stay where they are), or (a dry run) only report; the written store
//! is checked before the job ends.

use std::path::Path;

use super::WriteOptions;
use super::{analyze, read_through_journal, JournalRepair, RepairOptions, RepairReport, Salvage};
use crate::device::{Access, Device};
use crate::repair::in_place::InPlace;
use crate::repair::target::open_for_writing;
use crate::repair::{
    in_phase, refuse_if_nothing_salvaged, refused, write_salvage, Finished, Phase, RepairError,
    RepairEvents, RepairRequest, Salvaged, Verdict,
};
use crate::shared::check::{check_with_progress, CheckOptions};

/// How a shared repair ended, or why it stopped.
pub type JobResult = Result<Finished<RepairReport>, RepairError<RepairReport>>;

/// The note a repair of an input found by its leaves (no magic) carries.
const PROBED_NOTE: &str = "the header holds no store magic; leaves and a bitmap of a shared store were found, so it was repaired as one";

impl RepairReport {
    /// Whether records were kept, lost, or none could be salvaged.
    pub fn verdict(&self) -> Verdict {
        Verdict::of(self.nothing_salvaged(), self.records_lost)
    }
}

/// Repairs the shared store `input` (already opened read-only) as `request`
/// asks; `probed` says it was recognised by its leaves, not its magic.
pub fn run(
    request: &RepairRequest,
    input: Device,
    probed: bool,
    events: &mut dyn RepairEvents,
) -> JobResult {
    if request.kernel_areas_only {
        return Err(refused(format!(
            "{}: --kernel-areas-only applies to persistent stores only, and this is a shared store",
            request.input.display()
        )));
    }
    let options = options(request)?;
    if request.in_place {
        return in_place(request, &options, input, probed, events);
    }
    let (input, journal) = read_through_journal(input, &options)?;
    let salvage = scan(&input, &options, probed, journal, events)?;
    let Some(output_path) = request.output.as_deref() else {
        return Ok(Finished::dry_run(salvage.report));
    };
    let salvage = refuse_if_nothing_salvaged(&request.input, salvage)?;
    let size = request.size.unwrap_or(input.size_bytes());
    if let Some(problem) = salvage.output_problem(size) {
        return Err(refused(format!(
            "{}: {problem}; give another --size",
            output_path.display()
        )));
    }
    let prepared = open_for_writing(request, output_path, size, request.size.is_some(), events)?;
    let how = WriteOptions {
        output_zeroed: prepared.zeroed,
        data_in_place: false,
    };
    let report = write_salvage(events, salvage.kept_data_chunks(), |progress| {
        salvage.write(&input, prepared.device, how, progress)
    })?;
    prepared.claim.keep();
    finish(request, report, output_path, events)
}

fn options(request: &RepairRequest) -> crate::Result<RepairOptions> {
    Ok(RepairOptions {
        chunk_size: request.chunk_size,
        journal_chunks: request.journal_chunks,
        snapmask: request.snapshots.or(request.snapmask),
        origin_bytes: request.origin_bytes()?,
        mark_valid: request.mark_valid,
        full_scan: request.full_scan,
        invalidate_on_loss: request.invalidate_on_loss,
    })
}

fn scan(
    input: &Device,
    options: &RepairOptions,
    probed: bool,
    journal: Option<JournalRepair>,
    events: &mut dyn RepairEvents,
) -> Result<Salvage, RepairError<RepairReport>> {
    let mut salvage = in_phase(events, Phase::Scanning, |progress| {
        analyze(input, options, progress)
    })?;
    if let Some(journal) = journal {
        salvage.set_journal(journal);
    }
    if probed {
        salvage.note(PROBED_NOTE.to_string());
    }
    Ok(salvage)
}

impl Salvaged for Salvage {
    type Report = RepairReport;

    fn nothing_salvaged(&self) -> Option<(u64, bool)> {
        let report = self.report();
        report
            .nothing_salvaged()
            .then_some((report.dropped_total, report.records_unknown))
    }

    fn into_report(self) -> RepairReport {
        self.report
    }
}

/// Copies the input to the backup, verifies the copy, then rebuilds the input
/// from the backup (the data chunks stay where they are).
fn in_place(
    request: &RepairRequest,
    options: &RepairOptions,
    input: Device,
    probed: bool,
    events: &mut dyn RepairEvents,
) -> JobResult {
    let mut job = InPlace::prepare(request, input, events)?;
    let (backup, journal) = read_through_journal(job.backup, options)?;
    job.backup = backup;
    let salvage = scan(&job.backup, options, probed, journal, events)?;
    let salvage = refuse_if_nothing_salvaged(&request.input, salvage)?;
    if let Some(problem) = salvage.output_problem(job.target.size_bytes()) {
        return Err(refused(format!("{}: {problem}", request.input.display())));
    }
    let (output, backup, _claim) = job.mark()?;
    let how = WriteOptions {
        output_zeroed: false,
        data_in_place: true,
    };
    let mut report = write_salvage(events, salvage.kept_data_chunks(), |progress| {
        salvage.write(&backup, output, how, progress)
    })?;
    report.notes.push(format!(
        "the records were read from the verified backup {}",
        request.backup_path().display()
    ));
    report.input = request.input.display().to_string();
    finish(request, report, &request.input, events)
}

/// Checks the written store with the shared checker and ends the job.
fn finish(
    request: &RepairRequest,
    report: RepairReport,
    output: &Path,
    events: &mut dyn RepairEvents,
) -> JobResult {
    let device = Device::open(output, Access::ReadOnly)?;
    let options = CheckOptions {
        origin_bytes: request.origin_bytes()?,
        ..CheckOptions::default()
    };
    let checked = in_phase(events, Phase::VerifyingTree, |progress| {
        check_with_progress(&device, &options, progress)
    })?;
    Ok(Finished::written(report, output, &checked.findings))
}
