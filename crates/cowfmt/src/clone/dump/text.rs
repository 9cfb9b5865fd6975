//! The clone dump schema as text, both ways: the JSON and YAML document
//! `cowdump` writes (the head, `hydrated` streamed as runs, the tail) and the
//! reader `mkcow --from-dump` takes it back with, the runs going straight into
//! one bit per region, never into a list of every region.

use std::io::Write;

use serde::de::{Deserialize, Deserializer, Error as _};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{CloneDump, RegionRun};
use crate::bitset::DenseBitmap;
use crate::clone::geometry::Geometry;
use crate::dump_format::DUMP_FORMAT_VERSION;
use crate::dump_lines::{open_list, write_fields, DumpWriteError, ListWriter, TextSyntax};
use crate::dump_read::{
    read_dump, struct_fields, DumpReadError, DumpRequest, DumpSource, DumpSyntax, FlatRecord,
    RecordSink,
};
use crate::kind::StoreKind;

/// The list of hydrated runs.
pub const LIST: &str = "hydrated";
/// The fields of a `hydrated` item, in order.
pub const RUN_FIELDS: [&str; 2] = ["start", "count"];

/// Writes the document of `dump` in `syntax`; `tick` gets the count of runs
/// written after each one.
pub fn write_document(
    out: &mut dyn Write,
    dump: &CloneDump,
    syntax: TextSyntax,
    tick: &dyn Fn(u64),
) -> Result<(), DumpWriteError> {
    write_fields(out, syntax, &dump.head, true)?;
    open_list(out, syntax, LIST)?;
    let mut list = ListWriter::new(out, syntax, &RUN_FIELDS);
    dump.for_each_hydrated(|run| {
        list.numbers(&[run.start, run.count]);
        tick(list.batch.count);
        list.batch.end_record()
    })?;
    list.close()?;
    write_fields(out, syntax, &dump.tail, false)?;
    if syntax == TextSyntax::Json {
        writeln!(out, "\n}}")?;
    }
    Ok(())
}

/// The head fields a restore uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RestoreHead {
    /// The dump's format version.
    pub format_version: u32,
    /// The kind dumped.
    pub kind: StoreKind,
    /// Region size in sectors.
    pub region_size: u64,
    /// Target length in sectors.
    pub target_size: u64,
    /// Regions of the target.
    pub nr_regions: u64,
    /// Regions the runs hydrate.
    pub hydrated_regions: u64,
    /// Regions whose state the dumped metadata had lost.
    #[serde(default)]
    pub lost_regions: u64,
}

/// A clone dump read back: its sizes and one bit per region.
#[derive(Debug, Clone)]
pub struct ReadBack {
    /// The sizes, as the kernel accepts them.
    pub geometry: Geometry,
    /// The hydrated regions.
    pub bits: DenseBitmap,
}

/// Reads a clone dump of `syntax` from `source`: the runs must be ascending,
/// disjoint and inside the target, their total the head's
/// `hydrated_regions`, the sizes ones the kernel accepts, and no region may
/// be lost (a restore never decides a lost region: cowrepair does).
pub fn read_document(
    source: DumpSource<'_>,
    syntax: DumpSyntax,
) -> Result<ReadBack, DumpReadError> {
    let mut sink = RunsSink::default();
    let fields = read_dump(
        source,
        syntax,
        DumpRequest {
            list: LIST,
            keep: struct_fields::<RestoreHead>(),
            sink: &mut sink,
        },
    )?;
    let head: RestoreHead = fields.decode()?;
    let syntax_error = |text: String| DumpReadError::Syntax(text);
    if head.format_version != DUMP_FORMAT_VERSION {
        return Err(syntax_error(format!(
            "format_version {} is not supported (this version reads {DUMP_FORMAT_VERSION})",
            head.format_version
        )));
    }
    if head.kind != StoreKind::Clone {
        return Err(syntax_error(format!("kind is {}, not clone", head.kind)));
    }
    let geometry = Geometry::new(head.region_size, head.target_size).map_err(|e| {
        syntax_error(format!(
            "region_size {} and target_size {}: {e}",
            head.region_size, head.target_size
        ))
    })?;
    if head.nr_regions != geometry.nr_regions() {
        return Err(syntax_error(format!(
            "nr_regions is {}, but region_size {} and target_size {} make {} regions",
            head.nr_regions,
            head.region_size,
            head.target_size,
            geometry.nr_regions()
        )));
    }
    if head.lost_regions != 0 {
        return Err(syntax_error(format!(
            "the dumped metadata had lost the state of {} region{}: restoring would guess it; run cowrepair on the metadata instead",
            head.lost_regions,
            if head.lost_regions == 1 { "" } else { "s" }
        )));
    }
    let bits = sink.finish(head.nr_regions);
    if bits.count_ones() != head.hydrated_regions {
        return Err(syntax_error(format!(
            "hydrated_regions is {}, but the hydrated runs hold {} regions",
            head.hydrated_regions,
            bits.count_ones()
        )));
    }
    Ok(ReadBack { geometry, bits })
}

/// Sets the bits of each run as it is read, checking it against the runs
/// before it and the region count read before the list.
#[derive(Default)]
struct RunsSink {
    words: Vec<u64>,
    nr_regions: u64,
    next: u64,
    runs: u64,
}

impl RunsSink {
    fn add(&mut self, fields: &Map<String, Value>, run: RegionRun) -> Result<(), String> {
        if self.runs == 0 {
            self.nr_regions = fields
                .get("nr_regions")
                .and_then(Value::as_u64)
                .ok_or("nr_regions must come before the hydrated runs")?;
            self.words = vec![0; self.nr_regions.div_ceil(64) as usize];
        }
        let end = run.start.saturating_add(run.count);
        if run.count == 0 {
            return Err(format!("run at region {} is empty", run.start));
        }
        if run.start < self.next {
            return Err(format!(
                "run at region {} overlaps or comes before the run before it (which ends at {})",
                run.start, self.next
            ));
        }
        if end > self.nr_regions {
            return Err(format!(
                "run {}..{end} is past the last region ({} regions)",
                run.start, self.nr_regions
            ));
        }
        set_range(&mut self.words, run.start, end);
        self.next = end;
        self.runs += 1;
        Ok(())
    }

    fn finish(self, nr_regions: u64) -> DenseBitmap {
        let words = if self.runs == 0 {
            vec![0; nr_regions.div_ceil(64) as usize]
        } else {
            self.words
        };
        DenseBitmap::from_words(words, nr_regions)
    }
}

/// Sets bits `start..end` of `words`.
fn set_range(words: &mut [u64], start: u64, end: u64) {
    let (first, last) = ((start / 64) as usize, ((end - 1) / 64) as usize);
    let head = u64::MAX << (start % 64);
    let tail = u64::MAX >> (63 - (end - 1) % 64);
    if first == last {
        words[first] |= head & tail;
        return;
    }
    words[first] |= head;
    words[first + 1..last].fill(u64::MAX);
    words[last] |= tail;
}

impl RecordSink for RunsSink {
    fn record<'de, D: Deserializer<'de>>(
        &mut self,
        fields: &Map<String, Value>,
        element: D,
    ) -> Result<(), D::Error> {
        let run = RegionRun::deserialize(element)?;
        self.add(fields, run).map_err(D::Error::custom)
    }

    fn restart(&mut self) {
        *self = RunsSink::default();
    }

    fn flat_record(&mut self, fields: &Map<String, Value>, line: &FlatRecord<'_>) -> bool {
        if line.len() != RUN_FIELDS.len()
            || line.key(0) != RUN_FIELDS[0].as_bytes()
            || line.key(1) != RUN_FIELDS[1].as_bytes()
        {
            return false;
        }
        let (Some(start), Some(count)) = (line.number(0), line.number(1)) else {
            return false;
        };
        self.add(fields, RegionRun { start, count }).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump_read::with_text;
    use crate::memdev::MemDev;
    use crate::pdata::bitset::set_runs;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/kernel-clone");
    const GOLDEN: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/golden/d-clone-partial-hydration"
    );

    fn unxz(path: &str) -> MemDev {
        let mut input = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        let mut bytes = Vec::new();
        lzma_rs::xz_decompress(&mut input, &mut bytes).unwrap();
        MemDev::from_bytes(path, bytes)
    }

    fn fixture_names() -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(FIXTURES)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 4, "{names:?}");
        names
    }

    fn document(dump: &CloneDump, syntax: TextSyntax) -> Vec<u8> {
        let mut out = Vec::new();
        write_document(&mut out, dump, syntax, &|_| {}).unwrap();
        out
    }

    fn read_back(text: &[u8], syntax: DumpSyntax, fast: bool) -> Result<ReadBack, DumpReadError> {
        with_text(text, fast, |source| read_document(source, syntax))
    }

    #[test]
    fn the_golden_image_dumps_its_twelve_regions_and_the_kernels_status() {
        let dump = CloneDump::read(&unxz(&format!("{GOLDEN}/meta.img.xz"))).unwrap();
        let regions: Vec<u64> = dump
            .hydrated()
            .flat_map(|run| run.start..run.start + run.count)
            .collect();
        assert_eq!(
            regions,
            [0, 3, 10, 11, 20, 21, 100, 300, 301, 302, 303, 511]
        );
        assert_eq!(dump.head.status, "8 6/1024 64 12/512");
        assert_eq!((dump.head.region_size, dump.head.target_size), (64, 32768));
        assert!(dump.head.superblock.checksum_valid);
        assert_eq!(dump.head.superblock.magic, "0x8af27f64");
    }

    #[test]
    fn a_dump_reads_back_as_the_same_bits_in_both_syntaxes_and_both_readers() {
        for name in fixture_names() {
            let dump =
                CloneDump::read(&unxz(&format!("{FIXTURES}/{name}/meta-final.img.xz"))).unwrap();
            for (write, read) in [
                (TextSyntax::Json, DumpSyntax::Json),
                (TextSyntax::Yaml, DumpSyntax::Yaml),
            ] {
                let text = document(&dump, write);
                for fast in [true, false] {
                    let back = read_back(&text, read, fast).unwrap();
                    assert_eq!(
                        set_runs(&back.bits).collect::<Vec<_>>(),
                        set_runs(&dump.bits).collect::<Vec<_>>(),
                        "{name} {read:?} fast {fast}"
                    );
                    assert_eq!(back.bits.len(), dump.bits.len());
                    assert_eq!(back.geometry.region_sectors(), dump.head.region_size);
                    assert_eq!(back.geometry.target_sectors(), dump.head.target_size);
                }
            }
        }
    }

    fn minimal(runs: &str, hydrated: u64, extra: &str) -> String {
        format!(
            "{{\"format_version\":1,\"kind\":\"clone\",\"region_size\":8,\"target_size\":1024,\"nr_regions\":128,\"hydrated_regions\":{hydrated},\"hydrated\":[{runs}]{extra}}}"
        )
    }

    #[test]
    fn the_reader_refuses_runs_that_overlap_run_past_the_end_or_miscount() {
        for (text, expect) in [
            (
                minimal("{\"start\":5,\"count\":3},{\"start\":7,\"count\":1}", 4, ""),
                "overlaps",
            ),
            (
                minimal("{\"start\":120,\"count\":9}", 9, ""),
                "past the last region",
            ),
            (minimal("{\"start\":3,\"count\":0}", 0, ""), "empty"),
            (
                minimal("{\"start\":1,\"count\":2}", 3, ""),
                "hydrated_regions is 3",
            ),
            (
                minimal("", 0, ",\"lost_regions\":64"),
                "lost the state of 64 regions",
            ),
            (
                minimal("", 0, "").replace("\"target_size\":1024", "\"target_size\":1000"),
                "nr_regions is 128",
            ),
            (
                minimal("", 0, "").replace("\"region_size\":8", "\"region_size\":12"),
                "region_size 12",
            ),
            (
                minimal("", 0, "").replace("\"clone\"", "\"shared\""),
                "kind is shared",
            ),
        ] {
            for fast in [true, false] {
                let error = read_back(text.as_bytes(), DumpSyntax::Json, fast).unwrap_err();
                assert!(error.to_string().contains(expect), "{text}: {error}");
            }
        }
    }

    #[test]
    fn set_range_sets_exactly_the_bits_of_the_range() {
        for (start, end) in [(0, 1), (3, 64), (63, 65), (1, 200), (64, 128), (100, 101)] {
            let mut words = vec![0u64; 4];
            set_range(&mut words, start, end);
            let bits = DenseBitmap::from_words(words, 256);
            let set: Vec<u64> = (0..256).filter(|&i| bits.get(i)).collect();
            assert_eq!(set, (start..end).collect::<Vec<_>>(), "{start}..{end}");
        }
    }
}
