//! The corruption matrix for persistent stores: a generated store with a known
//! record list is damaged on purpose, cowcheck must report the damage with the
//! right code and place, and cowrepair must produce a store that checks clean
//! and holds exactly the records the damage did not touch, each with its data.
//!
//! Every case runs on two shapes: 4 KiB chunks with 600 records (areas of 256,
//! 256 and 88) and 512-byte chunks with 80 records (areas of 32, 32 and 16).

use crate::corruption_support;

use std::path::{Path, PathBuf};

use corruption_support::{assert_codes, bytes, first, junk, peek, poke, Rng};
use cowfmt::persistent::check::{check, CheckOptions, CheckReport};
use cowfmt::persistent::repair::RepairReport;
use cowfmt::persistent::repair::{self, ChunkSizeSource, DropReason, JobError, RepairOptions};
use cowfmt::persistent::{ExceptionRecord, Geometry, PersistentStore, StoreWriter};
use cowfmt::{Access, Device, Finding, FindingCode, Location, Severity};

/// Origin chunks; a prime, so `i * 37 % ORIGIN_CHUNKS` never repeats below it.
const ORIGIN_CHUNKS: u64 = 1021;

/// One store shape of the matrix.
#[derive(Debug, Clone, Copy)]
struct Shape {
    sectors: u32,
    records: usize,
    chunks: u64,
}

const SHAPES: [Shape; 2] = [
    Shape {
        sectors: 8,
        records: 600,
        chunks: 1100,
    },
    Shape {
        sectors: 1,
        records: 80,
        chunks: 160,
    },
];

/// A generated store and the records it was given, in commit order.
struct Generated {
    _dir: tempfile::TempDir,
    path: PathBuf,
    shape: Shape,
    geometry: Geometry,
    seed: u64,
    records: Vec<ExceptionRecord>,
}

/// What a repair returned: its report, the output image and the input records
/// analysis kept.
struct Repaired {
    report: RepairReport,
    out: PathBuf,
    kept: Vec<ExceptionRecord>,
}

impl Generated {
    /// Formats a store of `shape` and commits its records the way the kernel
    /// does, each data chunk filled from the seed and its origin chunk.
    fn new(shape: Shape, seed: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cow.img");
        let chunk_bytes = u64::from(shape.sectors) * 512;
        let device = Device::create_or_extend(&path, shape.chunks * chunk_bytes).unwrap();
        let mut writer = StoreWriter::format(device, shape.sectors).unwrap();
        let geometry = writer.geometry();
        let mut records = Vec::with_capacity(shape.records);
        for i in 0..shape.records as u64 {
            let old_chunk = (i * 37 + seed) % ORIGIN_CHUNKS;
            let new_chunk = writer.allocate().unwrap();
            writer
                .device()
                .write_chunk(new_chunk, &data_of(seed, old_chunk, chunk_bytes))
                .unwrap();
            let record = ExceptionRecord {
                old_chunk,
                new_chunk,
            };
            writer.commit(record).unwrap();
            records.push(record);
        }
        writer.finish().unwrap();
        Generated {
            _dir: dir,
            path,
            shape,
            geometry,
            seed,
            records,
        }
    }

    fn chunk_bytes(&self) -> u64 {
        self.geometry.chunk_bytes() as u64
    }

    fn epa(&self) -> usize {
        self.geometry.exceptions_per_area() as usize
    }

    /// Areas that hold records.
    fn areas(&self) -> u64 {
        self.records.len().div_ceil(self.epa()) as u64
    }

    fn area_chunk(&self, area: u64) -> u64 {
        self.geometry.area_location(area)
    }

    /// Indices (into `records`) of area `area`'s records.
    fn area_range(&self, area: u64) -> std::ops::Range<usize> {
        let start = area as usize * self.epa();
        start..(start + self.epa()).min(self.records.len())
    }

    /// The record at `index` of area `area`.
    fn at(&self, area: u64, index: u64) -> ExceptionRecord {
        self.records[area as usize * self.epa() + index as usize]
    }

    fn record_offset(&self, area: u64, index: u64) -> u64 {
        self.area_chunk(area) * self.chunk_bytes() + index * 16
    }

    fn poke(&self, offset: u64, data: &[u8]) {
        poke(&self.path, offset, data);
    }

    fn set_record(&self, area: u64, index: u64, record: ExceptionRecord) {
        let mut raw = [0u8; 16];
        record.encode(&mut raw);
        self.poke(self.record_offset(area, index), &raw);
    }

    fn fill_area(&self, area: u64, data: &[u8]) {
        assert_eq!(data.len() as u64, self.chunk_bytes());
        self.poke(self.area_chunk(area) * self.chunk_bytes(), data);
    }

    fn read_chunk(&self, chunk: u64) -> Vec<u8> {
        peek(
            &self.path,
            chunk * self.chunk_bytes(),
            self.chunk_bytes() as usize,
        )
    }

    fn check_with(&self, options: &CheckOptions) -> CheckReport {
        check(&open(&self.path), options).unwrap()
    }

    /// A check that insists on the kind, so a damaged magic is a finding.
    fn check(&self) -> CheckReport {
        self.check_with(&CheckOptions {
            kind_forced: true,
            ..CheckOptions::default()
        })
    }

    /// Every generated record but those `lost` says the damage touched.
    fn survivors(&self, lost: impl Fn(usize) -> bool) -> Vec<ExceptionRecord> {
        (0..self.records.len())
            .filter(|&i| !lost(i))
            .map(|i| self.records[i])
            .collect()
    }

    /// Every generated record but the one at `area`/`index`.
    fn all_but(&self, area: u64, index: u64) -> Vec<ExceptionRecord> {
        let gone = area as usize * self.epa() + index as usize;
        self.survivors(|i| i == gone)
    }

    fn repair_with(&self, options: &RepairOptions) -> Repaired {
        let source = open(&self.path);
        let salvage = repair::analyze(&source, options, &mut |_, _| {}).unwrap();
        let kept = salvage.kept_records().iter().map(|p| p.record).collect();
        let out = self.path.with_extension("fixed");
        let size = salvage.needed_bytes().max(source.size_bytes());
        let output = Device::create_or_extend(&out, size).unwrap();
        let report = salvage
            .write(&source, output, true, &mut |_, _| {})
            .unwrap();
        Repaired { report, out, kept }
    }

    /// Repairs with `options` and requires exactly `survivors`: analysis keeps
    /// them as they were on disk, the output checks clean (but for `allowed`
    /// codes), holds one record per survivor and each data chunk reads back as
    /// generated.
    fn assert_repair(
        &self,
        options: &RepairOptions,
        survivors: &[ExceptionRecord],
        allowed: &[FindingCode],
        case: &str,
    ) -> RepairReport {
        let repaired = self.repair_with(options);
        let report = repaired.report;
        let case = format!("{case} ({:?})", self.shape);
        assert_eq!(
            sorted(&repaired.kept),
            sorted(survivors),
            "{case}: kept records; report {report:#?}"
        );
        assert_eq!(report.kept, survivors.len() as u64, "{case}");
        assert_eq!(report.chunk_size, self.shape.sectors, "{case}");
        let output_check = check(&open(&repaired.out), &CheckOptions::default()).unwrap();
        let unexpected: Vec<&Finding> = output_check
            .findings
            .iter()
            .filter(|f| !allowed.contains(&f.code))
            .collect();
        assert!(
            unexpected.is_empty(),
            "{case}: the repaired store does not check clean: {unexpected:#?}"
        );
        let store = PersistentStore::open(open(&repaired.out), None).unwrap();
        let output: Vec<ExceptionRecord> = store
            .load()
            .unwrap()
            .records
            .iter()
            .map(|p| p.record)
            .collect();
        let mut olds: Vec<u64> = output.iter().map(|r| r.old_chunk).collect();
        olds.sort_unstable();
        let mut wanted: Vec<u64> = survivors.iter().map(|r| r.old_chunk).collect();
        wanted.sort_unstable();
        assert_eq!(olds, wanted, "{case}: origin chunks of the output");
        let out_device = open(&repaired.out);
        let mut buf = vec![0u8; self.geometry.chunk_bytes()];
        for record in &output {
            out_device.read_chunk(record.new_chunk, &mut buf).unwrap();
            assert!(
                buf == data_of(self.seed, record.old_chunk, self.chunk_bytes()),
                "{case}: the data of origin chunk {} (output chunk {}) differs",
                record.old_chunk,
                record.new_chunk
            );
        }
        report
    }

    fn assert_repair_default(&self, survivors: &[ExceptionRecord], case: &str) -> RepairReport {
        self.assert_repair(&RepairOptions::default(), survivors, &[], case)
    }
}

/// The generated data of origin chunk `old` in a store generated from `seed`.
fn data_of(seed: u64, old: u64, chunk_bytes: u64) -> Vec<u8> {
    bytes(
        seed ^ old.wrapping_mul(0x100_0000_01b3),
        chunk_bytes as usize,
    )
}

fn open(path: &Path) -> Device {
    Device::open(path, Access::ReadOnly).unwrap()
}

fn sorted(records: &[ExceptionRecord]) -> Vec<(u64, u64)> {
    let mut pairs: Vec<(u64, u64)> = records.iter().map(|r| (r.old_chunk, r.new_chunk)).collect();
    pairs.sort_unstable();
    pairs
}

fn header_field(offset: u64) -> Location {
    Location {
        chunk: Some(0),
        offset: Some(offset),
        ..Location::default()
    }
}

fn record_location(g: &Generated, area: u64, index: u64, record: ExceptionRecord) -> Location {
    Location::record(
        area,
        g.area_chunk(area),
        index,
        record.old_chunk,
        record.new_chunk,
    )
}

/// Runs `case` on a fresh store of every shape.
fn each_shape(seed: u64, mut case: impl FnMut(&Generated)) {
    for shape in SHAPES {
        case(&Generated::new(shape, seed));
    }
}

fn dropped(report: &RepairReport) -> Vec<(u64, u64, DropReason)> {
    report
        .dropped
        .iter()
        .map(|d| (d.area, d.index, d.reason))
        .collect()
}

#[test]
fn the_generated_stores_are_clean_and_repair_keeps_everything() {
    each_shape(1, |g| {
        assert_eq!(g.areas(), 3);
        let report = g.check();
        assert!(report.is_clean(), "{:#?}", report.findings);
        assert_eq!(report.summary.records, g.records.len() as u64);
        assert_eq!(report.summary.areas_read, 3);
        let repair = g.assert_repair_default(&g.records, "clean");
        assert_eq!(repair.dropped_total, 0);
        assert!(!repair.header_repaired);
    });
}

// ---------------------------------------------------------------- header

#[test]
fn header_magic_damaged_or_wiped() {
    for (what, magic) in [("garbage", *b"XXXX"), ("zeroed", [0u8; 4])] {
        each_shape(2, |g| {
            g.poke(0, &magic);
            assert!(
                check(&open(&g.path), &CheckOptions::default()).is_err(),
                "{what}: without --kind a wrong magic is not a store"
            );
            let report = g.check();
            assert_codes(&report.findings, &[FindingCode::BadMagic], what);
            assert_eq!(report.findings[0].location, header_field(0));
            assert_eq!(report.summary.records, g.records.len() as u64);
            let repair = g.assert_repair_default(&g.records, what);
            assert_eq!(repair.chunk_size_source, ChunkSizeSource::Inferred);
            assert!(repair.header_repaired);
        });
    }
}

#[test]
fn header_version_damaged() {
    each_shape(3, |g| {
        g.poke(8, &7u32.to_le_bytes());
        let report = g.check();
        assert_codes(&report.findings, &[FindingCode::BadVersion], "version");
        assert_eq!(report.findings[0].location, header_field(8));
        let repair = g.assert_repair_default(&g.records, "version");
        assert_eq!(repair.chunk_size_source, ChunkSizeSource::Inferred);
    });
}

#[test]
fn header_chunk_size_unusable() {
    for bad in [0u32, 3, 12, 1 << 23] {
        each_shape(4, |g| {
            let case = format!("chunk size {bad}");
            g.poke(12, &bad.to_le_bytes());
            let report = g.check();
            assert_codes(&report.findings, &[FindingCode::BadChunkSize], &case);
            assert_eq!(report.findings[0].location, header_field(12));
            let given = g.check_with(&CheckOptions {
                kind_forced: true,
                chunk_size_fallback: Some(g.shape.sectors),
                ..CheckOptions::default()
            });
            assert_codes(&given.findings, &[FindingCode::BadChunkSize], &case);
            assert_eq!(given.summary.records, g.records.len() as u64, "{case}");
            let repair = g.assert_repair_default(&g.records, &case);
            assert_eq!(repair.chunk_size_source, ChunkSizeSource::Inferred);
            assert_eq!(repair.inferred_chunk_size, Some(g.shape.sectors));
        });
    }
}

#[test]
fn header_chunk_size_a_wrong_power_of_two() {
    // A sound header is trusted (docs/cowrepair.md, "Chunk size"): the check
    // reads the areas where a doubled chunk size puts them and finds data
    // there; the repair salvages everything once the chunk size is given.
    each_shape(5, |g| {
        g.poke(12, &(g.shape.sectors * 2).to_le_bytes());
        let report = g.check();
        assert!(report.has_errors(), "{:#?}", report.findings);
        // Under the doubled size, the header chunk takes in area 0, and area 0
        // lands on data chunks.
        let case = "doubled chunk size";
        assert_eq!(
            first(&report.findings, FindingCode::HeaderTrailingGarbage, case).location,
            header_field(g.chunk_bytes()),
        );
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.severity == Severity::Error && f.location.area == Some(0)),
            "{case}: {:#?}",
            report.findings
        );
        let given = RepairOptions {
            chunk_size: Some(g.shape.sectors),
            ..RepairOptions::default()
        };
        // Trusted, the doubled size finds nothing credible while the real one
        // does: the repair stops and names the size that works, rather than
        // write an empty store.
        let refused = repair::analyze(&open(&g.path), &RepairOptions::default(), &mut |_, _| {});
        let hint = format!("give --chunk-size {}s", g.shape.sectors);
        match refused {
            Err(JobError::Damage(message)) => assert!(message.contains(&hint), "{case}: {message}"),
            other => panic!("{case}: {other:?}"),
        }
        let repair = g.assert_repair(&given, &g.records, &[], "doubled chunk size, given");
        assert_eq!(repair.chunk_size_source, ChunkSizeSource::Option);
        assert!(repair.header_repaired);
    });
}

#[test]
fn header_valid_flag() {
    each_shape(6, |g| {
        g.poke(4, &0u32.to_le_bytes());
        let report = g.check();
        assert_codes(&report.findings, &[FindingCode::Invalidated], "valid=0");
        assert_eq!(report.findings[0].location, header_field(4));
        assert_eq!(report.findings[0].severity, Severity::Warning);
        let repair = g.assert_repair(
            &RepairOptions::default(),
            &g.records,
            &[FindingCode::Invalidated],
            "valid=0",
        );
        assert!(!repair.output_valid);
        let marked = RepairOptions {
            mark_valid: true,
            ..RepairOptions::default()
        };
        assert!(
            g.assert_repair(&marked, &g.records, &[], "valid=0, marked")
                .output_valid
        );

        g.poke(4, &7u32.to_le_bytes());
        let report = g.check();
        assert_codes(
            &report.findings,
            &[FindingCode::ValidFlagUnusual],
            "valid=7",
        );
        assert_eq!(report.findings[0].location, header_field(4));
        let repair = g.assert_repair_default(&g.records, "valid=7");
        assert!(repair.header_repaired && repair.output_valid);
    });
}

#[test]
fn header_chunk_trailing_bytes() {
    each_shape(7, |g| {
        let at = g.chunk_bytes() - 9;
        g.poke(at, &[0x5a]);
        let report = g.check();
        assert_codes(
            &report.findings,
            &[FindingCode::HeaderTrailingGarbage],
            "tail",
        );
        assert_eq!(report.findings[0].location, header_field(at));
        let repair = g.assert_repair_default(&g.records, "tail");
        assert!(repair.header_repaired);
    });
}

#[test]
fn header_chunk_zeroed_or_random() {
    each_shape(8, |g| {
        g.poke(0, &vec![0u8; g.chunk_bytes() as usize]);
        let report = g.check();
        assert_codes(
            &report.findings,
            &[
                FindingCode::BadMagic,
                FindingCode::BadVersion,
                FindingCode::Invalidated,
                FindingCode::BadChunkSize,
            ],
            "zeroed header chunk",
        );
        let repair = g.assert_repair_default(&g.records, "zeroed header chunk");
        assert_eq!(repair.chunk_size_source, ChunkSizeSource::Inferred);
    });
    for seed in 0..8 {
        each_shape(9, |g| {
            let case = format!("random header chunk, seed {seed}");
            let mut chunk = bytes(seed, g.chunk_bytes() as usize);
            // A random chunk size field that happens to be a sound power of two
            // would be trusted; keep it unusable (odd and above 1).
            chunk[12] |= 3;
            g.poke(0, &chunk);
            let report = g.check();
            let header = report.header.as_ref().unwrap();
            assert_eq!(
                first(&report.findings, FindingCode::BadMagic, &case).location,
                header_field(0)
            );
            assert_eq!(
                first(&report.findings, FindingCode::BadChunkSize, &case).location,
                header_field(12),
                "{header:?}"
            );
            g.assert_repair_default(&g.records, &case);
        });
    }
}

// ---------------------------------------------------------------- records

#[test]
fn a_record_whose_new_chunk_is_past_the_end() {
    each_shape(10, |g| {
        let original = g.at(1, 5);
        let bad = ExceptionRecord {
            new_chunk: g.shape.chunks + 7,
            ..original
        };
        g.set_record(1, 5, bad);
        let report = g.check();
        let case = "new_chunk past the end";
        assert_codes(
            &report.findings,
            &[FindingCode::NewChunkPastEnd, FindingCode::AllocationHole],
            case,
        );
        assert_eq!(
            first(&report.findings, FindingCode::NewChunkPastEnd, case).location,
            record_location(g, 1, 5, bad)
        );
        assert_eq!(
            first(&report.findings, FindingCode::AllocationHole, case).location,
            Location::chunk(original.new_chunk)
        );
        let repair = g.assert_repair_default(&g.all_but(1, 5), case);
        assert_eq!(dropped(&repair), vec![(1, 5, DropReason::NewChunkPastEnd)]);
    });
}

#[test]
fn a_record_whose_new_chunk_is_metadata() {
    // new_chunk 0 (the header) is the terminator, so the metadata hit is an area.
    for target in [0u64, 2] {
        each_shape(11, |g| {
            let original = g.at(1, 5);
            let new_chunk = g.area_chunk(target);
            let bad = ExceptionRecord {
                new_chunk,
                ..original
            };
            g.set_record(1, 5, bad);
            let report = g.check();
            let case = format!("new_chunk on area {target}");
            assert_codes(
                &report.findings,
                &[FindingCode::NewChunkIsMetadata, FindingCode::AllocationHole],
                &case,
            );
            assert_eq!(
                first(&report.findings, FindingCode::NewChunkIsMetadata, &case).location,
                record_location(g, 1, 5, bad)
            );
            let repair = g.assert_repair_default(&g.all_but(1, 5), &case);
            assert_eq!(
                dropped(&repair),
                vec![(1, 5, DropReason::NewChunkIsMetadata)]
            );
        });
    }
}

#[test]
fn a_record_whose_new_chunk_is_used_twice() {
    each_shape(12, |g| {
        let original = g.at(1, 5);
        let bad = ExceptionRecord {
            new_chunk: g.at(0, 3).new_chunk,
            ..original
        };
        g.set_record(1, 5, bad);
        let report = g.check();
        let case = "new_chunk duplicate";
        assert_codes(
            &report.findings,
            &[FindingCode::NewChunkDuplicate, FindingCode::AllocationHole],
            case,
        );
        assert_eq!(
            first(&report.findings, FindingCode::NewChunkDuplicate, case).location,
            record_location(g, 1, 5, bad)
        );
        assert_eq!(
            first(&report.findings, FindingCode::AllocationHole, case).location,
            Location::chunk(original.new_chunk)
        );
        // The first record of the chunk wins (docs/cowrepair.md, "Records").
        let repair = g.assert_repair_default(&g.all_but(1, 5), case);
        assert_eq!(dropped(&repair).len(), 1);
        assert_eq!(dropped(&repair)[0].0, 1);
        assert_eq!(dropped(&repair)[0].1, 5);
    });
}

#[test]
fn a_record_whose_old_chunk_is_mapped_twice() {
    each_shape(13, |g| {
        let bad = ExceptionRecord {
            old_chunk: g.at(0, 3).old_chunk,
            ..g.at(1, 5)
        };
        g.set_record(1, 5, bad);
        let report = g.check();
        let case = "old_chunk duplicate";
        assert_codes(&report.findings, &[FindingCode::OldChunkDuplicate], case);
        assert_eq!(report.findings[0].location, record_location(g, 1, 5, bad));
        let repair = g.assert_repair_default(&g.all_but(1, 5), case);
        assert_eq!(
            dropped(&repair),
            vec![(1, 5, DropReason::OldChunkDuplicate)]
        );
    });
}

#[test]
fn a_record_whose_old_chunk_is_past_the_origin() {
    each_shape(14, |g| {
        let origin_bytes = ORIGIN_CHUNKS * g.chunk_bytes();
        let bad = ExceptionRecord {
            old_chunk: ORIGIN_CHUNKS + 100,
            ..g.at(2, 1)
        };
        g.set_record(2, 1, bad);
        let report = g.check_with(&CheckOptions {
            origin_bytes: Some(origin_bytes),
            ..CheckOptions::default()
        });
        let case = "old_chunk past the origin";
        assert_codes(&report.findings, &[FindingCode::OldChunkPastOrigin], case);
        assert_eq!(report.findings[0].location, record_location(g, 2, 1, bad));
        let options = RepairOptions {
            origin_bytes: Some(origin_bytes),
            ..RepairOptions::default()
        };
        let repair = g.assert_repair(&options, &g.all_but(2, 1), &[], case);
        assert_eq!(
            dropped(&repair),
            vec![(2, 1, DropReason::OldChunkPastOrigin)]
        );
    });
}

#[test]
fn two_records_swapped() {
    each_shape(15, |g| {
        let (a, b) = (g.at(1, 5), g.at(1, 6));
        g.set_record(1, 5, b);
        g.set_record(1, 6, a);
        let report = g.check();
        let case = "records swapped";
        assert_codes(&report.findings, &[FindingCode::AllocationOutOfOrder], case);
        assert_eq!(report.findings[0].location, record_location(g, 1, 6, a));
        assert_eq!(report.findings[0].severity, Severity::Warning);
        let repair = g.assert_repair_default(&g.records, case);
        assert_eq!(repair.dropped_total, 0);
    });
}

// ---------------------------------------------------------------- terminator

#[test]
fn the_terminator_overwritten_by_one_record() {
    each_shape(16, |g| {
        let last = g.areas() - 1;
        let n = g.area_range(last).len() as u64;
        let bad = ExceptionRecord {
            old_chunk: ORIGIN_CHUNKS + 5,
            new_chunk: 1 << 40,
        };
        g.set_record(last, n, bad);
        let report = g.check();
        let case = "terminator overwritten";
        assert_codes(&report.findings, &[FindingCode::NewChunkPastEnd], case);
        assert_eq!(
            report.findings[0].location,
            record_location(g, last, n, bad)
        );
        let repair = g.assert_repair_default(&g.records, case);
        assert_eq!(
            dropped(&repair),
            vec![(last, n, DropReason::NewChunkPastEnd)]
        );
    });
}

#[test]
fn the_terminator_and_the_rest_of_the_last_area_overwritten() {
    each_shape(17, |g| {
        let last = g.areas() - 1;
        let n = g.area_range(last).len() as u64;
        let tail = (g.epa() as u64 - n) as usize * 16;
        g.poke(g.record_offset(last, n), &junk(tail));
        let report = g.check();
        let case = "junk after the last record";
        let finding = first(&report.findings, FindingCode::NewChunkPastEnd, case);
        assert_eq!(finding.location.area, Some(last));
        assert_eq!(finding.location.record, Some(n));
        assert!(
            report
                .findings
                .iter()
                .all(|f| f.code == FindingCode::FindingsSuppressed
                    || (f.location.area == Some(last) && f.location.record >= Some(n))),
            "{case}: a finding outside the overwritten slots: {:#?}",
            report.findings
        );
        let repair = g.assert_repair_default(&g.records, case);
        assert_eq!(repair.dropped_total, g.epa() as u64 - n);
    });
}

#[test]
fn a_premature_terminator() {
    each_shape(18, |g| {
        g.set_record(
            0,
            20,
            ExceptionRecord {
                old_chunk: 0,
                new_chunk: 0,
            },
        );
        let report = g.check();
        let case = "premature terminator";
        // The records after the terminator, and the areas after area 0 that
        // the kernel no longer reads, are both reported.
        assert_codes(
            &report.findings,
            &[
                FindingCode::GarbageAfterTerminator,
                FindingCode::RecordsPastLastArea,
            ],
            case,
        );
        let location = &report.findings[0].location;
        assert_eq!(
            (location.area, location.chunk, location.record),
            (Some(0), Some(1), Some(21))
        );
        let repair = g.assert_repair_default(&g.all_but(0, 20), case);
        assert_eq!(repair.kernel_records, 20);
        assert_eq!(repair.recovered_beyond_kernel, g.records.len() as u64 - 21);
    });
}

// ---------------------------------------------------------------- areas

/// A zeroed area the kernel reads ends the store there: everything after it
/// is out of the kernel's view. The check must say that records were lost.
fn zeroed_area(area: u64) {
    each_shape(19 + area, |g| {
        let case = format!("zeroed area {area}");
        g.fill_area(area, &vec![0u8; g.chunk_bytes() as usize]);
        let range = g.area_range(area);
        let repair = g.assert_repair_default(&g.survivors(|i| range.contains(&i)), &case);
        let beyond: u64 = (area + 1..g.areas())
            .map(|a| g.area_range(a).len() as u64)
            .sum();
        assert_eq!(repair.recovered_beyond_kernel, beyond, "{case}");
        let report = g.check();
        if area + 1 < g.areas() {
            let next = area + 1;
            assert!(
                report.findings.iter().any(|f| {
                    f.code == FindingCode::RecordsPastLastArea
                        && f.location.area == Some(next)
                        && f.location.chunk == Some(g.area_chunk(next))
                }),
                "{case} ({:?}): the check does not report the records in area {next} the kernel no longer reads: {:#?}",
                g.shape,
                report.findings
            );
        }
    });
}

#[test]
fn a_zeroed_first_area() {
    zeroed_area(0);
}

#[test]
fn a_zeroed_middle_area() {
    zeroed_area(1);
}

#[test]
fn a_zeroed_last_area() {
    // The store then looks like one whose previous area filled exactly: no
    // metadata says records are missing, so only the repair is asserted.
    zeroed_area(2);
}

/// Area `area` overwritten whole with `bytes`: the check reports it as
/// area-garbage, the repair drops it whole and keeps every other area.
fn overwritten_area(g: &Generated, area: u64, data: &[u8], case: &str) {
    g.fill_area(area, data);
    let range = g.area_range(area);
    let repair = g.assert_repair_default(&g.survivors(|i| range.contains(&i)), case);
    assert_eq!(repair.damaged_areas.len(), 1, "{case}");
    assert_eq!(repair.damaged_areas[0].area, area, "{case}");
    let report = g.check();
    let garbage = first(&report.findings, FindingCode::AreaGarbage, case);
    assert_eq!(
        garbage.location,
        Location::area(area, g.area_chunk(area)),
        "{case}"
    );
    if area + 1 < g.areas() {
        // The data chunks of the lost area are now a hole below the records after it.
        let hole = first(&report.findings, FindingCode::AllocationHole, case);
        assert_eq!(
            hole.location,
            Location::chunk(g.area_chunk(area) + 1),
            "{case}"
        );
        assert_codes(
            &report.findings,
            &[FindingCode::AreaGarbage, FindingCode::AllocationHole],
            case,
        );
    } else {
        assert_codes(&report.findings, &[FindingCode::AreaGarbage], case);
    }
}

#[test]
fn an_area_overwritten_by_a_data_chunk() {
    for area in 1..3 {
        each_shape(30 + area, |g| {
            let data = g.read_chunk(g.at(2, 3).new_chunk);
            overwritten_area(g, area, &data, &format!("area {area} overwritten by data"));
        });
    }
}

#[test]
fn an_area_overwritten_by_junk_text() {
    for area in 1..3 {
        each_shape(40 + area, |g| {
            let data = junk(g.chunk_bytes() as usize);
            overwritten_area(g, area, &data, &format!("area {area} overwritten by junk"));
        });
    }
}

#[test]
fn the_first_area_overwritten() {
    // docs/decisions.md: an area whose records (two or more) are all
    // implausible is reported once as area-garbage; area 0 is no exception.
    each_shape(30, |g| {
        let data = g.read_chunk(g.at(2, 3).new_chunk);
        overwritten_area(g, 0, &data, "area 0 overwritten by data");
    });
    each_shape(40, |g| {
        let data = junk(g.chunk_bytes() as usize);
        overwritten_area(g, 0, &data, "area 0 overwritten by junk");
    });
}

#[test]
fn an_area_half_overwritten_by_data() {
    // The second half of the chunk is zero: the kernel reads the garbage half,
    // stops at the first zero record, and never reaches the next area.
    each_shape(50, |g| {
        let mut data = g.read_chunk(g.at(0, 1).new_chunk);
        let half = data.len() / 2;
        data[half..].fill(0);
        let case = "area 1 half overwritten by data";
        g.fill_area(1, &data);
        let report = g.check();
        let garbage = first(&report.findings, FindingCode::AreaGarbage, case);
        assert_eq!(garbage.location, Location::area(1, g.area_chunk(1)));
        let range = g.area_range(1);
        let repair = g.assert_repair_default(&g.survivors(|i| range.contains(&i)), case);
        assert_eq!(repair.recovered_beyond_kernel, g.area_range(2).len() as u64);
    });
}

// ---------------------------------------------------------------- random bytes

/// Random bytes over the header chunk or one area, for many seeds: the check
/// never fails to run and reports the damage, the repair keeps every record
/// outside the overwritten area (all of them when the header was hit) or
/// refuses cleanly.
#[test]
fn random_bytes_over_any_metadata_chunk() {
    for seed in 0..48u64 {
        let shape = SHAPES[(seed % 2) as usize];
        let g = Generated::new(shape, 100 + seed);
        let mut rng = Rng::new(seed);
        let target = rng.below(g.areas() + 1);
        let mut data = vec![0u8; g.chunk_bytes() as usize];
        rng.fill(&mut data);
        let case = format!(
            "seed {seed} ({shape:?}), random bytes over {}",
            match target {
                0 => "the header".to_string(),
                t => format!("area {}", t - 1),
            }
        );
        let (chunk, lost) = match target {
            0 => {
                // Keep the chunk size field unusable, so the repair infers it.
                data[12] |= 3;
                (0, None)
            }
            t => (g.area_chunk(t - 1), Some(g.area_range(t - 1))),
        };
        g.poke(chunk * g.chunk_bytes(), &data);
        let report = g.check();
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.severity == Severity::Error && f.location.chunk == Some(chunk)),
            "{case}: no error located in chunk {chunk}: {:#?}",
            report.findings
        );
        let survivors = match &lost {
            Some(range) => g.survivors(|i| range.contains(&i)),
            None => g.records.clone(),
        };
        g.assert_repair_default(&survivors, &case);
    }
}
