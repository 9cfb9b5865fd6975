//! Reading a damaged shared store, never writing to it, and deciding what to
//! keep: geometry, the walk, the scan when the walk found damage, the leaves
//! chosen, the snapmask, then every record through the rules.

use crate::bitset::DenseBitmap;
use crate::device::Device;
use crate::error::{Error, FormatError};
use crate::job::JobError;
use crate::kind::{PERSISTENT_MAGIC, SHARED_MAGIC};
use crate::shared::bitmap::ChunkBitmap;
use crate::shared::geometry::{validate_chunk_size, Geometry};
use crate::shared::header::SharedHeader;
use crate::shared::mask;
use crate::shared::open;

use super::chunk_size::count_votes;
use super::filter::RecordRules;
use super::header::{judge, HeaderVerdict};
use super::journal::{self, JournalClues};
use super::lost;
use super::options::RepairOptions;
use super::reachable::{walk, FoundLeaf, Reached};
use super::report::{
    DropReason, OriginRange, ReasonCount, RepairReport, ReportHead, ScanMode, ScanSummary,
    SnapshotTally, Source, LISTED_MAX,
};
use super::salvage::Salvage;
use super::scan::{scan, ScanContext, Scanned};
use super::select::{select, Selection};
use super::snapmask;
use super::space::{account, bitmap_credible};
use super::tally::{tally, Tally};
use crate::kind::StoreKind;
use crate::origin_range::ranges_of;

/// The chunk size to read with, where it came from, and what it says about
/// the header.
struct ChunkChoice {
    sectors: u32,
    source: Source,
    problem: Option<String>,
}

/// Reads the damaged store on `input` (never writing to it) and decides what
/// to keep. `progress` gets (chunks scanned, chunks to scan) while the leaf
/// scan runs.
pub fn analyze(
    input: &Device,
    options: &RepairOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Salvage, JobError> {
    options.validate()?;
    let header = read_header(input)?;
    let verdict = judge(&header);
    let choice = choose_chunk_size(input, &verdict, options)?;
    let fits = has_room(input.size_bytes(), choice.sectors);
    let first = if fits || choice.source != Source::Header {
        Some(analyze_at(
            input, options, &header, &verdict, &choice, progress,
        )?)
    } else {
        None
    };
    if choice.source == Source::Header && first.as_ref().is_none_or(|s| s.found_no_leaf) {
        if let Some(retry) = voted_instead(input, &choice, fits)? {
            return analyze_at(input, options, &header, &verdict, &retry, progress);
        }
    }
    match first {
        Some(salvage) => Ok(salvage),
        None => Err(too_small(input, choice.sectors)),
    }
}

/// The input's header, refused when it is a persistent store's.
fn read_header(input: &Device) -> Result<SharedHeader, JobError> {
    let header = open::read_header(input)?;
    if header.magic == PERSISTENT_MAGIC {
        return Err(Error::format(
            input.path(),
            FormatError::WrongMagic {
                kind: "shared",
                found: header.magic,
                expected: SHARED_MAGIC,
            },
        )
        .into());
    }
    Ok(header)
}

/// The chunk size the leaves on the device vote for, when it is not the
/// header's: the header's found no leaf, or (`fits` false) leaves no room for
/// a store on the device.
fn voted_instead(
    input: &Device,
    header_choice: &ChunkChoice,
    fits: bool,
) -> Result<Option<ChunkChoice>, JobError> {
    let said = header_choice.sectors;
    let Some(other) = count_votes(input, None)?
        .winner(None)
        .filter(|&s| s != said)
    else {
        return Ok(None);
    };
    let why = if fits {
        String::new()
    } else {
        format!(", too large for a device of {} bytes", input.size_bytes())
    };
    Ok(Some(ChunkChoice {
        sectors: other,
        source: Source::Inferred,
        problem: Some(format!(
            "chunk size field says {said} sectors{why}, but the leaves on the device are {other}-sector chunks"
        )),
    }))
}

/// Whether a device of `device_bytes` holds a shared store of
/// `chunk_sectors`-sector chunks: the header, the bitmap and two data chunks.
fn has_room(device_bytes: u64, chunk_sectors: u32) -> bool {
    let g = Geometry::new(device_bytes, chunk_sectors, 0);
    g.nr_chunks >= g.data_start() + 2
}

/// The error for a device too small for `chunk_sectors`-sector chunks.
fn too_small(input: &Device, chunk_sectors: u32) -> JobError {
    JobError::Damage(format!(
        "{}: the device has {} bytes, too small for a shared store with {}-byte chunks; nothing to salvage",
        input.path().display(),
        input.size_bytes(),
        u64::from(chunk_sectors) * crate::SECTOR_BYTES
    ))
}

/// The caller's chunk size, else the header's when the header is sound, else
/// the one the leaves on the device vote for.
fn choose_chunk_size(
    input: &Device,
    verdict: &HeaderVerdict,
    options: &RepairOptions,
) -> Result<ChunkChoice, JobError> {
    if let Some(sectors) = options.chunk_size {
        validate_chunk_size(u64::from(sectors)).map_err(|e| Error::format(input.path(), e))?;
        let problem = verdict
            .chunk_size
            .filter(|&h| verdict.identity && h != sectors)
            .map(|h| {
                format!("chunk size field says {h} sectors; {sectors} sectors were given and used")
            });
        return Ok(ChunkChoice {
            sectors,
            source: Source::Option,
            problem,
        });
    }
    if let (true, Some(sectors)) = (verdict.identity, verdict.chunk_size) {
        return Ok(ChunkChoice {
            sectors,
            source: Source::Header,
            problem: None,
        });
    }
    match count_votes(input, None)?.winner(verdict.chunk_size) {
        Some(sectors) => Ok(ChunkChoice {
            sectors,
            source: Source::Inferred,
            problem: None,
        }),
        None => Err(JobError::Damage(format!(
            "{}: the header is unusable ({}) and no shared store leaf was found at any chunk size; nothing to salvage",
            input.path().display(),
            verdict.problems.join("; ")
        ))),
    }
}

fn analyze_at(
    input: &Device,
    options: &RepairOptions,
    header: &SharedHeader,
    verdict: &HeaderVerdict,
    choice: &ChunkChoice,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Salvage, JobError> {
    let device_bytes = input.size_bytes();
    let cs = choice.sectors;
    let mut report = new_report(input, verdict, choice);
    let journal_known = known_journal(device_bytes, header, verdict, options, cs, &mut report)?;
    let provisional = Geometry::new(device_bytes, cs, journal_known.map_or(0, |j| j.0));
    if provisional.nr_chunks < provisional.data_start() + 2 {
        return Err(too_small(input, cs));
    }
    let reached = walk_from_header(input, header, verdict, cs, &provisional, &mut report)?;
    let bitmap = ChunkBitmap::load(input, &provisional)?;
    let reserved_end = if journal_known.is_some() {
        provisional.data_start()
    } else {
        provisional.journal_start()
    };
    let (credible, why) = bitmap_credible(&bitmap, &provisional, reserved_end, &reached);
    report.bitmap_credible = credible;
    let view = BitmapView {
        bitmap: &bitmap,
        credible,
        why,
    };
    let looked = look_for_leaves(
        input,
        options,
        &provisional,
        &view,
        &reached,
        &mut report,
        progress,
    )?;
    let selection = &looked.selection;
    let found_no_leaf =
        reached.leaves.is_empty() && selection.chosen.is_empty() && selection.empty.is_empty();
    let mut leaves: Vec<FoundLeaf> = reached
        .leaves
        .iter()
        .chain(selection.chosen.iter())
        .filter(|l| l.span.is_some())
        .copied()
        .collect();
    leaves.sort_unstable_by_key(|l| l.span.map_or(0, |s| s.0));

    let (journal, journal_source) = journal_known.unwrap_or_else(|| {
        let clues = journal_clues(&provisional, &reached, &looked, &bitmap, credible);
        let (journal, how) = journal::infer(device_bytes, &provisional, &clues);
        report.notes.push(how);
        (journal, Source::Inferred)
    });
    let geometry = Geometry::new(device_bytes, cs, journal);
    report.journal_chunks = journal;
    report.journal_source = journal_source;
    report.data_start = geometry.data_start();
    report.device_chunks = geometry.nr_chunks;

    let mut evidence = reached.evidence.clone();
    evidence.merge(&selection.evidence);
    let snapmask = settle_snapmask(input, options, header, verdict, &evidence, &mut report)?;

    let mut tree_blocks = reached.tree_blocks.clone();
    for l in &selection.chosen {
        tree_blocks.test_and_set(l.chunk);
    }
    let origin_chunks = options
        .origin_bytes
        .map(|b| b.div_ceil(geometry.chunk_bytes));
    let rules = RecordRules {
        geometry: &geometry,
        snapmask,
        origin_chunks,
    };
    let mut tally = tally(input, &rules, &leaves, &tree_blocks)?;
    report.chunks = account(
        &bitmap,
        &geometry,
        &tally.kept_chunks,
        &looked.old_tree,
        &tally.dropped_chunks,
    );
    report.nodes_reached = reached.nodes;
    report.leaves_reached = reached.leaves.len() as u64;
    if reached.leaves_above_level_0 > 0 {
        report.notes.push(format!(
            "{} leaves were found above level 0: the header's tree_level {} is larger than the tree",
            reached.leaves_above_level_0, header.tree_level
        ));
    }
    settle_lost(&mut report, &reached, &leaves, credible);
    fill_counts(&mut report, &mut tally, snapmask);
    decide_validity(header, verdict, options, &mut report);
    settle_losses(&mut report, options.invalidate_on_loss);
    report.header_repaired = !report.header_problems.is_empty();
    Ok(Salvage {
        report,
        geometry,
        chunk_sectors: cs,
        snapmask,
        origin_chunks,
        leaves,
        chunk_losers: std::mem::take(&mut tally.chunk_losers),
        kept_chunks: tally.kept_chunks,
        kept_bounds: tally.kept_bounds,
        largest_entry: tally.largest_entry,
        found_no_leaf,
    })
}

/// What the scan for leaves found (nothing when it did not run).
struct Looked {
    selection: Selection,
    /// Every chunk read as a tree block, by the walk or the scan.
    old_tree: DenseBitmap,
    /// The lowest chunk the scan found holding a leaf or a node, used or not.
    lowest_block: Option<u64>,
}

/// The input bitmap and whether it is credible (when not, why).
struct BitmapView<'a> {
    bitmap: &'a ChunkBitmap,
    credible: bool,
    why: Option<String>,
}

/// Runs the leaf scan when the walk found damage or the (credible) bitmap
/// marks chunks in use that nothing reached accounts for, and picks the
/// leaves that rebuild the lost ranges.
fn look_for_leaves(
    input: &Device,
    options: &RepairOptions,
    geometry: &Geometry,
    view: &BitmapView<'_>,
    reached: &Reached,
    report: &mut RepairReport,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Looked, JobError> {
    let mut looked = Looked {
        selection: Selection::default(),
        old_tree: reached.visited.clone(),
        lowest_block: None,
    };
    let (bitmap, credible) = (view.bitmap, view.credible);
    let damaged = !reached.lost.is_empty();
    let mode = if damaged && (options.full_scan || !credible) {
        ScanMode::All
    } else {
        ScanMode::Used
    };
    let runs = if damaged || credible {
        scan_runs(geometry, bitmap, reached, mode)
    } else {
        Vec::new()
    };
    if !damaged && runs.is_empty() {
        return Ok(looked);
    }
    if let (ScanMode::All, Some(why)) = (mode, &view.why) {
        report.notes.push(format!(
            "{why}; the scan reads every chunk of the data range"
        ));
    }
    let context = ScanContext {
        geometry,
        bitmap,
        bitmap_credible: credible,
        tree_blocks: &reached.tree_blocks,
        record_chunks: &reached.record_chunks,
    };
    let Scanned {
        candidates,
        chunks_scanned,
        node_like,
    } = scan(input, &context, &runs, progress)?;
    for c in candidates
        .iter()
        .map(|c| c.chunk)
        .chain(node_like.iter().copied())
    {
        looked.old_tree.test_and_set(c);
        looked.lowest_block = Some(looked.lowest_block.map_or(c, |l| l.min(c)));
    }
    let found = candidates.len() as u64;
    let selection = select(candidates, &reached.leaves, &reached.lost, credible);
    report.scan = Some(ScanSummary {
        mode,
        chunks_scanned,
        leaves_found: found,
        leaves_used: selection.chosen.len() as u64,
        leaves_overlapping: selection.overlapping,
        leaves_implausible: selection.implausible,
        leaves_outside_damage: selection.outside,
        leaves_empty: selection.empty.len() as u64,
        nodes_found: node_like.len() as u64,
    });
    looked.selection = selection;
    Ok(looked)
}

/// Where the journal may have ended, from the tree blocks and records found
/// and the bitmap (when credible: the journal is always marked in use).
fn journal_clues(
    geometry: &Geometry,
    reached: &Reached,
    looked: &Looked,
    bitmap: &ChunkBitmap,
    bitmap_credible: bool,
) -> JournalClues {
    let start = geometry.journal_start();
    let first = |b: &DenseBitmap| b.set_runs(start, geometry.nr_chunks).first().map(|r| r.0);
    let lowest_used = [
        first(&reached.tree_blocks),
        first(&reached.record_chunks),
        looked.selection.lowest_used,
    ];
    JournalClues {
        lowest_used: lowest_used.into_iter().flatten().min(),
        lowest_tree_block: [first(&reached.tree_blocks), looked.lowest_block]
            .into_iter()
            .flatten()
            .min(),
        first_free: bitmap_credible
            .then(|| bitmap.next_free(start, geometry.nr_chunks))
            .flatten(),
    }
}

/// Settles the snapmask and says where it came from. A snapmask inferred as 0
/// (the header is lost and no record names a snapshot) is refused: the
/// output would have no snapshot, which is seldom what the store held.
fn settle_snapmask(
    input: &Device,
    options: &RepairOptions,
    header: &SharedHeader,
    verdict: &HeaderVerdict,
    evidence: &snapmask::MaskEvidence,
    report: &mut RepairReport,
) -> Result<u64, JobError> {
    let snap = snapmask::settle(
        options.snapmask,
        verdict.identity.then_some(header.snapmask),
        evidence,
    );
    if snap.mask == 0 && snap.source == Source::Inferred {
        return Err(JobError::Damage(format!(
            "{}: the header is lost and no record names a snapshot, so which snapshots exist cannot be told; give them with --snapshots (or --snapmask)",
            input.path().display()
        )));
    }
    report.snapmask = snap.mask;
    report.snapmask_source = snap.source;
    report.snapshots = mask::id_list(snap.mask);
    report.bits_outside_snapmask = snap.outside;
    report.notes.extend(snap.notes);
    Ok(snap.mask)
}

/// Copies the tally's counts into the report.
fn fill_counts(report: &mut RepairReport, tally: &mut Tally, snapmask: u64) {
    report.kept = tally.kept;
    report.kept_origin_chunks = tally.kept_origins;
    report.masks_trimmed = tally.trimmed;
    report.dropped_total = tally.dropped_total;
    report.dropped_by_reason = DropReason::ALL
        .iter()
        .zip(tally.by_reason)
        .filter(|(_, count)| *count > 0)
        .map(|(&reason, count)| ReasonCount { reason, count })
        .collect();
    tally.listed.sort_by_key(|d| d.origin);
    report.dropped_unlisted = tally.dropped_total - tally.listed.len() as u64;
    report.dropped = std::mem::take(&mut tally.listed);
    report.per_snapshot = mask::ids(snapmask)
        .map(|id| {
            let lost = tally.lost_per_snapshot[id as usize];
            let origins = &mut tally.lost_origins[id as usize];
            let remembered_all = origins.len() as u64 == lost;
            let (read_through, listed_all) = ranges_of(origins, LISTED_MAX);
            SnapshotTally {
                id,
                kept: tally.kept_per_snapshot[id as usize],
                lost,
                lost_unknown: report.records_unknown,
                read_through,
                read_through_complete: remembered_all && listed_all && !report.records_unknown,
            }
        })
        .collect();
}

/// Says what was lost as a whole, and marks the output invalid on loss when
/// asked (the engine then refuses the store).
fn settle_losses(report: &mut RepairReport, invalidate_on_loss: bool) {
    let mut unknown: Vec<OriginRange> = report
        .lost_ranges
        .iter()
        .flat_map(|r| r.unresolved.iter().copied())
        .collect();
    unknown.sort_unstable_by_key(|r| r.lo);
    unknown.truncate(LISTED_MAX);
    report.read_through_unknown = unknown;
    report.records_lost = report.loses_records();
    if invalidate_on_loss && report.records_lost && report.output_valid {
        report.output_valid = false;
        report.notes.push(
            "records were lost, so the output is marked invalid as asked: the engine refuses the store rather than let snapshots read the origin where they were".to_string(),
        );
    }
}

fn new_report(input: &Device, verdict: &HeaderVerdict, choice: &ChunkChoice) -> RepairReport {
    let mut header_problems = verdict.problems.clone();
    header_problems.extend(choice.problem.clone());
    let mut notes = Vec::new();
    if choice.source == Source::Inferred {
        notes.push(format!(
            "the chunk size was inferred as {} sectors from the leaves on the device",
            choice.sectors
        ));
    }
    RepairReport {
        head: ReportHead::new(
            StoreKind::Shared,
            input.path().display().to_string(),
            choice.sectors,
            choice.source,
        ),
        journal_chunks: 0,
        journal_source: Source::Header,
        snapmask: 0,
        snapmask_source: Source::Header,
        snapshots: Vec::new(),
        header_repaired: false,
        header_problems,
        input_valid: None,
        output_valid: true,
        device_chunks: 0,
        data_start: 0,
        bitmap_credible: true,
        nodes_reached: 0,
        leaves_reached: 0,
        lost_ranges: Vec::new(),
        lost_ranges_unlisted: 0,
        scan: None,
        kept: 0,
        kept_origin_chunks: 0,
        masks_trimmed: 0,
        dropped_total: 0,
        dropped_by_reason: Vec::new(),
        dropped: Vec::new(),
        dropped_unlisted: 0,
        records_unknown: false,
        unknown_records_at_most: None,
        per_snapshot: Vec::new(),
        bits_outside_snapmask: 0,
        records_lost: false,
        read_through_unknown: Vec::new(),
        chunks: Default::default(),
        leaves_after: None,
        tree_level_after: None,
        journal: None,
        data_chunks_copied: None,
        notes,
    }
}

/// The caller's journal size, else the header's when the header is sound and
/// it fits; `None` when it must be inferred.
fn known_journal(
    device_bytes: u64,
    header: &SharedHeader,
    verdict: &HeaderVerdict,
    options: &RepairOptions,
    chunk_sectors: u32,
    report: &mut RepairReport,
) -> Result<Option<(u64, Source)>, JobError> {
    let fits = |j: u64| {
        let g = Geometry::new(device_bytes, chunk_sectors, j);
        j <= u64::from(u32::MAX) && g.nr_chunks >= g.data_start() + 2
    };
    if let Some(j) = options.journal_chunks {
        if !fits(j) {
            return Err(Error::Invalid(format!(
                "a journal of {j} chunks does not fit a device of {device_bytes} bytes with {}-sector chunks",
                chunk_sectors
            ))
            .into());
        }
        return Ok(Some((j, Source::Option)));
    }
    if !verdict.identity {
        return Ok(None);
    }
    let j = u64::from(header.nr_journal_chunks);
    if fits(j) {
        return Ok(Some((j, Source::Header)));
    }
    report.header_problems.push(format!(
        "nr_journal_chunks {j} does not fit the device with {chunk_sectors}-sector chunks"
    ));
    Ok(None)
}

/// Walks from the header's root when the header can be trusted for it.
fn walk_from_header(
    input: &Device,
    header: &SharedHeader,
    verdict: &HeaderVerdict,
    chunk_sectors: u32,
    geometry: &Geometry,
    report: &mut RepairReport,
) -> Result<Reached, JobError> {
    if !verdict.identity || verdict.chunk_size != Some(chunk_sectors) {
        return Ok(Reached::nothing(
            geometry,
            "the header cannot be trusted, so its root is not used".to_string(),
        ));
    }
    match header.root_problem(geometry) {
        None => Ok(walk(
            input,
            geometry,
            header.root_tree_chunk,
            header.tree_level,
        )?),
        Some(problem) => {
            report.header_problems.push(problem.clone());
            Ok(Reached::nothing(
                geometry,
                format!("the header's root cannot be used: {problem}"),
            ))
        }
    }
}

/// The chunks the scan reads: in the data range, not a block the walk kept nor
/// a record chunk of a kept leaf, and marked in use unless every chunk is read.
fn scan_runs(
    geometry: &Geometry,
    bitmap: &ChunkBitmap,
    reached: &Reached,
    mode: ScanMode,
) -> Vec<(u64, u64)> {
    let mut runs = Vec::new();
    let mut start: Option<u64> = None;
    for c in geometry.data_start()..geometry.nr_chunks {
        let wanted = (mode == ScanMode::All || bitmap.is_used(c))
            && !reached.tree_blocks.get(c)
            && !reached.record_chunks.get(c);
        match (wanted, start) {
            (true, None) => start = Some(c),
            (false, Some(s)) => {
                runs.push((s, c));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push((s, geometry.nr_chunks));
    }
    runs
}

/// Lists the lost ranges and says how much could have been lost in them.
fn settle_lost(
    report: &mut RepairReport,
    reached: &Reached,
    leaves: &[FoundLeaf],
    bitmap_credible: bool,
) {
    let (mut ranges, unresolved) = lost::describe(&reached.lost, leaves);
    report.lost_ranges_unlisted = (reached.lost.len() - ranges.len()) as u64;
    if unresolved > 0 && bitmap_credible {
        let leaked = report.chunks.leaked_freed;
        report.unknown_records_at_most = Some(leaked);
        report.records_unknown = leaked > 0;
        if leaked == 0 {
            for r in &mut ranges {
                r.unresolved.clear();
            }
            report.notes.push(
                "every chunk the bitmap marks in use is accounted for, so no records were lost where no leaf was found"
                    .to_string(),
            );
        }
    } else if unresolved > 0 {
        report.records_unknown = true;
    }
    report.lost_ranges = ranges;
}

fn decide_validity(
    header: &SharedHeader,
    verdict: &HeaderVerdict,
    options: &RepairOptions,
    report: &mut RepairReport,
) {
    report.input_valid = verdict.identity.then_some(header.valid != 0);
    report.output_valid = options.mark_valid || report.input_valid != Some(false);
    if report.input_valid == Some(false) {
        report.notes.push(if options.mark_valid {
            "the input was invalidated (its data is known to be incomplete); the output is marked valid as asked".to_string()
        } else {
            "the input was invalidated: its data is known to be incomplete, so the output stays invalid (--mark-valid to change that)".to_string()
        });
    }
}
