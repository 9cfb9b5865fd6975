//! The dump of dm-clone metadata as tables for people: the superblock, the
//! space map, the hydrated regions as runs, a picture of the regions (a row
//! of regions per line, scaled when there are many) and the lost regions and
//! problems.

use std::io::{self, Write};

use comfy_table::Table;
use cowfmt::bitset::DenseBitmap;
use cowfmt::store::reports::clone::{CloneDump, CloneDumpHead};

use super::{count_line, digits, plural, sectors_text, two_columns, write_problems};
use crate::progress::RecordCounter;

/// Cells per picture row when the output is not a terminal.
pub const DEFAULT_PICTURE_WIDTH: u64 = 64;
/// Rows a picture has at most: past them, one character stands for several
/// regions.
pub const MAX_PICTURE_ROWS: u64 = 64;

/// Writes the tables of `dump`, its picture `picture_width` cells wide;
/// returns the problems found reading it.
pub fn write(
    out: &mut dyn Write,
    dump: &CloneDump,
    picture_width: u64,
    progress: &RecordCounter,
) -> anyhow::Result<Vec<String>> {
    let head = &dump.head;
    writeln!(out, "Superblock\n{}\n", superblock_table(head))?;
    writeln!(out, "Space map\n{}\n", space_map_table(head))?;
    writeln!(out, "Hydrated regions (runs)")?;
    let width = digits(head.nr_regions).max("start".len());
    writeln!(out, "  {:>width$}  {:>width$}", "start", "count")?;
    let mut runs = 0;
    for run in dump.hydrated() {
        writeln!(out, "  {:>width$}  {:>width$}", run.start, run.count)?;
        runs += 1;
        progress.tick(runs);
    }
    count_line(out, runs, "run")?;
    write_picture(out, &dump.bits, picture_width)?;
    if !dump.tail.lost.is_empty() {
        writeln!(
            out,
            "\nLost regions (their state could not be read; shown as not hydrated)"
        )?;
        for run in &dump.tail.lost {
            writeln!(
                out,
                "  {}..{} ({} region{})",
                run.start,
                run.start + run.count,
                run.count,
                plural(run.count)
            )?;
        }
    }
    write_problems(out, &dump.tail.problems)?;
    Ok(dump.tail.problems.clone())
}

fn superblock_table(head: &CloneDumpHead) -> Table {
    let sb = &head.superblock;
    two_columns(vec![
        ("kind", head.kind.to_string()),
        ("magic", sb.magic.clone()),
        ("version", sb.version.to_string()),
        ("flags", format!("{:#x}", sb.flags)),
        ("blocknr", sb.blocknr.to_string()),
        ("uuid", sb.uuid.clone()),
        (
            "checksum",
            format!(
                "{} ({})",
                sb.checksum,
                if sb.checksum_valid {
                    "valid"
                } else {
                    "invalid"
                }
            ),
        ),
        ("bitset_root", sb.bitset_root.to_string()),
        ("region_size", sectors_text(head.region_size)),
        ("target_size", sectors_text(head.target_size)),
        ("nr_regions", head.nr_regions.to_string()),
        (
            "hydrated_regions",
            format!("{} of {}", head.hydrated_regions, head.nr_regions),
        ),
    ])
}

fn space_map_table(head: &CloneDumpHead) -> Table {
    let sm = &head.space_map;
    two_columns(vec![
        ("nr_blocks", sm.nr_blocks.to_string()),
        (
            "nr_allocated",
            format!("{} of {} blocks", sm.nr_allocated, sm.nr_blocks),
        ),
        ("index_block", sm.index_block.to_string()),
        ("ref_count_root", sm.ref_count_root.to_string()),
        ("status", head.status.clone()),
    ])
}

/// Regions one picture character stands for: 1 while the picture fits
/// [`MAX_PICTURE_ROWS`] rows of `width`, else the fewest that make it fit.
pub fn picture_scale(nr_regions: u64, width: u64) -> u64 {
    nr_regions.div_ceil(width * MAX_PICTURE_ROWS).max(1)
}

/// The picture of `bits`: rows of `width` characters, each one region (or
/// `scale` regions): `#` hydrated, `+` partly hydrated, `.` not; each row
/// starts with its first region.
fn write_picture(out: &mut dyn Write, bits: &DenseBitmap, width: u64) -> io::Result<()> {
    let nr_regions = bits.len();
    let scale = picture_scale(nr_regions, width);
    if scale == 1 {
        writeln!(
            out,
            "Regions (one character per region; #: hydrated, .: not)"
        )?;
    } else {
        writeln!(
            out,
            "Regions (one character per {scale} regions; #: all hydrated, +: some, .: none)"
        )?;
    }
    let row_regions = width * scale;
    let number_width = digits(nr_regions);
    let mut row = String::with_capacity(width as usize);
    let mut start = 0;
    while start < nr_regions {
        row.clear();
        let mut cell = start;
        while cell < nr_regions && cell < start + row_regions {
            let end = (cell + scale).min(nr_regions);
            let set = bits.count_ones_in(cell, end);
            row.push(match set {
                0 => '.',
                n if n == end - cell => '#',
                _ => '+',
            });
            cell = end;
        }
        writeln!(out, "  {start:>number_width$} {row}")?;
        start += row_regions;
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(set: &[u64], len: u64, width: u64) -> String {
        let mut bits = DenseBitmap::new(len);
        for &i in set {
            bits.test_and_set(i);
        }
        let mut out = Vec::new();
        write_picture(&mut out, &bits, width).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_small_picture_has_one_character_per_region() {
        assert_eq!(
            picture(&[0, 3, 9], 10, 4),
            "Regions (one character per region; #: hydrated, .: not)\n   0 #..#\n   4 ....\n   8 .#\n\n"
        );
    }

    #[test]
    fn a_large_picture_is_scaled_and_says_so() {
        let width = 2;
        let len = width * MAX_PICTURE_ROWS * 3;
        let text = picture(&[0, 1, 2, 3, 4], len, width);
        assert!(
            text.starts_with(
                "Regions (one character per 3 regions; #: all hydrated, +: some, .: none)\n"
            ),
            "{text}"
        );
        assert!(text.contains("\n    0 #+\n    6 ..\n"), "{text}");
        assert_eq!(text.lines().count(), 1 + MAX_PICTURE_ROWS as usize + 1);
    }
}
