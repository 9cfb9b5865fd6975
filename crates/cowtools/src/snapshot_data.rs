//! A snapshot's data: written out as a raw image (`cowmigrate --to raw`) or
//! merged back over its origin (`cowmigrate --merge`), for every store kind.
//! The jobs and their dispatch on the kind are in the facade
//! ([`cowfmt::store::snapshot`], [`cowfmt::snapshot_image`]); this module
//! claims what they write through the output guard and drives a progress bar.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::Path;

use anyhow::bail;
use cowfmt::device::{Access, Device};
use cowfmt::output::{claim_in_place, TextOutput};
use cowfmt::snapshot_image::{write_image, ImageReport, StreamSink};
use cowfmt::store::snapshot::{self, Merged};
use cowfmt::StoreKind;

use crate::{open, output, progress};

/// What to export: the store, its kind, the snapshot (shared stores), the
/// origin and the output (`-` for stdout).
#[derive(Debug, Clone, Copy)]
pub struct RawExport<'a> {
    /// The tool's name, for messages.
    pub tool: &'a str,
    /// The store.
    pub store: &'a Path,
    /// `--kind`, if given.
    pub kind: Option<StoreKind>,
    /// `--snapshot`, if given.
    pub snapshot: Option<u32>,
    /// The origin.
    pub origin: &'a Path,
    /// The output file, or `-`.
    pub output: &'a Path,
    /// Overwrite an existing output file.
    pub force: bool,
    /// No progress bar.
    pub quiet: bool,
}

/// What a raw export did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawReport {
    /// The image written.
    pub image: ImageReport,
    /// Committed journal transactions a shared store was read through.
    pub journal_read: u64,
}

/// Writes the snapshot's full logical image to the output: a file through
/// the output guard (written under a temporary name, holes where the image
/// is zero, put in place only when complete), or stdout for `-`. A shared
/// store is read as its last commit left it, through its journal.
pub fn export_raw(job: &RawExport<'_>) -> anyhow::Result<RawReport> {
    for input in [job.store, job.origin] {
        open::warn_if_in_use(job.tool, input);
    }
    let (store, kind) = open::detect_kind(job.store, job.kind)?;
    let (store, journal_read) = open::as_committed(job.tool, store, kind)?;
    let origin = Device::open(job.origin, Access::ReadOnly)?;
    let map = snapshot::chunk_map(&store, kind, job.snapshot)?;
    let chunks = origin.size_bytes().div_ceil(map.chunk_bytes());
    let bar = progress::bar(chunks, "export", job.quiet);
    let mut tick = |done: u64, _total: u64| bar.set_position(done);
    let report = if job.output == Path::new("-") {
        let stdout = io::stdout();
        if stdout.is_terminal() {
            bail!(
                "refusing to write a binary image to a terminal: redirect stdout, or give -o FILE"
            );
        }
        let mut sink = StreamSink(BufWriter::with_capacity(1 << 20, stdout.lock()));
        let report = write_image(&origin, &store, &map, &mut sink, &mut tick)?;
        sink.0.flush()?;
        report
    } else {
        let mut file = TextOutput::create(job.output, job.force, &[job.store, job.origin])?;
        output::say_overwritten(job.tool, job.output, file.overwritten());
        let report = write_image(&origin, &store, &map, &mut file, &mut tick)?;
        file.commit()?;
        report
    };
    bar.finish_and_clear();
    Ok(RawReport {
        image: report,
        journal_read,
    })
}

/// Merges the snapshot of `store_path` (snapshot `snapshot` of a shared
/// store) into `origin_path`, or finishes an interrupted merge. The store and
/// the origin are claimed through the output guard, which refuses either when
/// it is held open elsewhere, `--force` or not.
pub fn merge(
    store_path: &Path,
    kind: Option<StoreKind>,
    snapshot: Option<u32>,
    origin_path: &Path,
    quiet: bool,
) -> anyhow::Result<Merged> {
    let kind = snapshot::merge_kind(store_path, kind)?;
    let (store, _store_claim) = claim_in_place(store_path)?;
    if cowfmt::output::same_file(&std::fs::metadata(store_path)?, origin_path) {
        bail!(
            "{}: is the store itself; give the origin device the snapshot was taken of",
            origin_path.display()
        );
    }
    let (origin, _origin_claim) = claim_in_place(origin_path)?;
    let mut bar = None;
    let mut tick = |done: u64, total: u64| {
        if total == 0 {
            return;
        }
        let bar = bar.get_or_insert_with(|| progress::bar(total, "merge", quiet));
        bar.set_length(total);
        bar.set_position(done);
    };
    let merged = snapshot::merge(&store, &origin, kind, snapshot, &mut tick)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(merged)
}
