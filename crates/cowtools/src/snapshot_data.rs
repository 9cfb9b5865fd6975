//! A snapshot's data: written out as a raw image (`cowmigrate --to raw`) or
//! merged back over its origin (`cowmigrate --merge`), for every store kind.
//! The jobs are in `cowfmt` ([`cowfmt::snapshot_image`], the kinds'
//! `merge` modules); this module opens what they need through the output
//! guard, drives a progress bar and reports.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::Path;

use anyhow::bail;
use cowfmt::device::{Access, Device};
use cowfmt::finding::Severity;
use cowfmt::output::{claim_in_place, Marker, TextOutput};
use cowfmt::snapshot_image::{write_image, ChunkMap, ImageReport, StreamSink};
use cowfmt::{persistent, shared, StoreKind};

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
    let (store, journal_read) = if kind == StoreKind::Shared {
        open::shared_through_journal(job.tool, store)?
    } else {
        (store, 0)
    };
    let origin = Device::open(job.origin, Access::ReadOnly)?;
    let map = chunk_map(&store, kind, job.snapshot)?;
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

/// The chunks the snapshot reads from `store`: the snapshot of a classic
/// store (`--snapshot` left out, or 0), or snapshot `--snapshot` of a
/// shared store.
fn chunk_map(store: &Device, kind: StoreKind, snapshot: Option<u32>) -> anyhow::Result<ChunkMap> {
    if kind == StoreKind::Shared {
        let Some(id) = snapshot else {
            bail!(
                "{}: is a shared store: give the snapshot to use with --snapshot ID",
                store.path().display()
            );
        };
        return Ok(shared::tree_read::snapshot_map(store, id)?);
    }
    refuse_classic_snapshot(store.path(), kind, snapshot)?;
    Ok(persistent::merge::read_snapshot(store)?.map)
}

/// A classic store holds one snapshot: `--snapshot` may only name it as 0.
fn refuse_classic_snapshot(
    path: &Path,
    kind: StoreKind,
    snapshot: Option<u32>,
) -> anyhow::Result<()> {
    match snapshot {
        Some(id) if id != 0 => bail!(
            "{}: a {kind} store holds one snapshot: leave out --snapshot (or give 0), not {id}",
            path.display()
        ),
        _ => Ok(()),
    }
}

/// What an offline merge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeSummary {
    /// The store's kind.
    pub kind: StoreKind,
    /// Chunks written over the origin.
    pub chunks: u64,
    /// Origin chunks copied out first for the snapshots that still read
    /// them (shared stores).
    pub copied_out: u64,
    /// Whether an interrupted merge was finished.
    pub resumed: bool,
    /// The snapshots left (shared stores).
    pub snapmask: u64,
    /// Committed journal transactions replayed into the store before the
    /// merge (shared stores).
    pub journal_replayed: u64,
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
) -> anyhow::Result<MergeSummary> {
    let kind = merge_kind(store_path, kind)?;
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
    let summary = if kind == StoreKind::Shared {
        let Some(id) = snapshot else {
            bail!(
                "{}: is a shared store: give the snapshot to merge with --snapshot ID",
                store_path.display()
            );
        };
        refuse_unsound_shared(store_path, origin.size_bytes())?;
        let report = shared::merge::merge(&store, &origin, id, &mut tick)?;
        MergeSummary {
            kind,
            chunks: report.chunks,
            copied_out: report.copied_out,
            resumed: report.resumed,
            snapmask: report.snapmask,
            journal_replayed: report.journal_replayed,
        }
    } else {
        refuse_classic_snapshot(store_path, kind, snapshot)?;
        let report = persistent::merge::merge(&store, &origin, &mut tick)?;
        MergeSummary {
            kind,
            chunks: report.chunks,
            copied_out: 0,
            resumed: false,
            snapmask: 0,
            journal_replayed: 0,
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(summary)
}

/// Refuses, before anything is written, the merge of a shared store (not in
/// the middle of a merge) whose last commit, read through its journal's
/// committed transactions, is not sound: the shared checker's first error.
/// A damaged journal superblock is left to the merge, which refuses it.
fn refuse_unsound_shared(path: &Path, origin_bytes: u64) -> anyhow::Result<()> {
    let device = Device::open(path, Access::ReadOnly)?;
    if Marker::read(&device)?.is_some() {
        return Ok(());
    }
    let options = shared::repair::RepairOptions::default();
    let (view, journal) = shared::repair::read_through_journal(device, &options)?;
    if journal
        .as_ref()
        .is_some_and(|j| j.superblock_damage.is_some())
    {
        return Ok(());
    }
    let replayed = journal.map_or(0, |j| j.transactions_replayed);
    let options = shared::check::CheckOptions {
        kind_forced: true,
        origin_bytes: Some(origin_bytes),
        ..Default::default()
    };
    let report = shared::check::check(&view, &options)?;
    if let Some(first) = report
        .findings
        .iter()
        .find(|f| f.severity == Severity::Error)
    {
        let state = if replayed > 0 {
            " (as its committed journal transactions would leave it)"
        } else {
            ""
        };
        bail!(
            "{}{state}: {}: the merge is refused and nothing was written; cowcheck tells more",
            path.display(),
            first.message
        );
    }
    Ok(())
}

/// The kind of the store to merge: a shared store in the middle of a merge
/// carries the merge marker instead of its header.
fn merge_kind(path: &Path, wanted: Option<StoreKind>) -> anyhow::Result<StoreKind> {
    let device = Device::open(path, Access::ReadOnly)?;
    if let Some(Marker::Merging(merging)) = Marker::read(&device)? {
        if merging.original_magic == cowfmt::kind::SHARED_MAGIC {
            return Ok(StoreKind::Shared);
        }
    }
    drop(device);
    Ok(open::detect_kind(path, wanted)?.1)
}
