//! Reading a damaged shared store, never writing to it, and deciding what to
//! keep: geometry, the walk, the scan when the walk found damage, the leaves
//! chosen, the snapmask, then every record through the rules.

use crate::bitset::DenseBitmap;
use crate::device::Device;
use crate::error::{Error, FormatError};
use crate::kind::{PERSISTENT_MAGIC, SHARED_MAGIC};
use crate::persistent::rebuild::JobError;
use crate::shared::bitmap::ChunkBitmap;
use crate::shared::geometry::{validate_chunk_size, Geometry};
use crate::shared::header::{SharedHeader, HEADER_BYTES};
use crate::shared::mask;

use super::chunk_size::count_votes;
use super::filter::RecordRules;
use super::header::{judge, root_problem, HeaderVerdict};
use super::journal;
use super::lost;
use super::options::RepairOptions;
use super::reachable::{walk, FoundLeaf, Reached};
use super::report::{
    DropReason, ReasonCount, RepairReport, ScanMode, ScanSummary, SnapshotTally, Source,
    REPAIR_FORMAT_VERSION,
};
use super::salvage::Salvage;
use super::scan::{scan, ScanContext, Scanned};
use super::select::{select, Selection};
use super::snapmask;
use super::space::{account, bitmap_credible};
use super::tally::tally;
use crate::kind::StoreKind;

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
    let mut raw = [0u8; HEADER_BYTES];
    input.read_at(&mut raw, 0, || "the shared store header".to_string())?;
    let header = SharedHeader::decode(&raw).map_err(|e| Error::format(input.path(), e))?;
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
    let verdict = judge(&header);
    let choice = choose_chunk_size(input, &verdict, options)?;
    let salvage = analyze_at(input, options, &header, &verdict, &choice, progress)?;
    if salvage.found_no_leaf && choice.source == Source::Header {
        if let Some(other) = count_votes(input, None)?
            .winner(None)
            .filter(|&s| s != choice.sectors)
        {
            let retry = ChunkChoice {
                sectors: other,
                source: Source::Inferred,
                problem: Some(format!(
                    "chunk size field says {} sectors, but the leaves on the device are {other}-sector chunks",
                    choice.sectors
                )),
            };
            return analyze_at(input, options, &header, &verdict, &retry, progress);
        }
    }
    Ok(salvage)
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
        return Err(JobError::Damage(format!(
            "{}: the device has {device_bytes} bytes, too small for a shared store with {}-byte chunks; nothing to salvage",
            input.path().display(),
            provisional.chunk_bytes
        )));
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
    let mut old_tree = reached.visited.clone();
    let mut selection = Selection::default();
    let damaged = !reached.lost.is_empty();
    let mode = if damaged && (options.full_scan || !credible) {
        ScanMode::All
    } else {
        ScanMode::Used
    };
    let runs = if damaged || credible {
        scan_runs(&provisional, &bitmap, &reached, mode)
    } else {
        Vec::new()
    };
    if damaged || !runs.is_empty() {
        if let (ScanMode::All, Some(why)) = (mode, why) {
            report.notes.push(format!(
                "{why}; the scan reads every chunk of the data range"
            ));
        }
        let context = ScanContext {
            geometry: &provisional,
            bitmap: &bitmap,
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
            old_tree.test_and_set(c);
        }
        let found = candidates.len() as u64;
        selection = select(candidates, &reached.leaves, &reached.lost, credible);
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
    }
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
        let lowest = [
            lowest_reached(&reached, &provisional),
            selection.lowest_used,
        ]
        .into_iter()
        .flatten()
        .min();
        (
            journal::infer(device_bytes, &provisional, lowest),
            Source::Inferred,
        )
    });
    let geometry = Geometry::new(device_bytes, cs, journal);
    report.journal_chunks = journal;
    report.journal_source = journal_source;
    report.data_start = geometry.data_start();
    report.device_chunks = geometry.nr_chunks;

    let mut evidence = reached.evidence.clone();
    evidence.merge(&selection.evidence);
    let snap = snapmask::settle(
        options.snapmask,
        verdict.identity.then_some(header.snapmask),
        &evidence,
    );
    report.snapmask = snap.mask;
    report.snapmask_source = snap.source;
    report.snapshots = mask::id_list(snap.mask);
    report.header_problems.extend(snap.problems);
    report.notes.extend(snap.notes);

    let mut tree_blocks = reached.tree_blocks.clone();
    for l in &selection.chosen {
        tree_blocks.test_and_set(l.chunk);
    }
    let origin_chunks = options
        .origin_bytes
        .map(|b| b.div_ceil(geometry.chunk_bytes));
    let rules = RecordRules {
        geometry: &geometry,
        snapmask: snap.mask,
        origin_chunks,
    };
    let mut tally = tally(input, &rules, &leaves, &tree_blocks)?;
    report.chunks = account(
        &bitmap,
        &geometry,
        &tally.kept_chunks,
        &old_tree,
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
    report.per_snapshot = mask::ids(snap.mask)
        .map(|id| SnapshotTally {
            id,
            kept: tally.kept_per_snapshot[id as usize],
            lost: tally.lost_per_snapshot[id as usize],
            lost_unknown: report.records_unknown,
        })
        .collect();
    decide_validity(header, verdict, options, &mut report);
    report.header_repaired = !report.header_problems.is_empty();
    Ok(Salvage {
        report,
        geometry,
        chunk_sectors: cs,
        snapmask: snap.mask,
        origin_chunks,
        leaves,
        chunk_losers: std::mem::take(&mut tally.chunk_losers),
        kept_chunks: tally.kept_chunks,
        kept_bounds: tally.kept_bounds,
        largest_entry: tally.largest_entry,
        found_no_leaf,
    })
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
        format_version: REPAIR_FORMAT_VERSION,
        kind: StoreKind::Shared,
        input: input.path().display().to_string(),
        output: None,
        chunk_size: choice.sectors,
        chunk_size_source: choice.source,
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
        chunks: Default::default(),
        leaves_after: None,
        tree_level_after: None,
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
    match root_problem(header, geometry) {
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

/// The lowest chunk at or after the journal's start that the walk found used.
fn lowest_reached(reached: &Reached, geometry: &Geometry) -> Option<u64> {
    let first = |b: &DenseBitmap| {
        b.set_runs(geometry.journal_start(), geometry.nr_chunks)
            .first()
            .map(|r| r.0)
    };
    [first(&reached.tree_blocks), first(&reached.record_chunks)]
        .into_iter()
        .flatten()
        .min()
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
