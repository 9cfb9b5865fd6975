//! `cowdump --blocks --format table` on dm-clone metadata: one line per
//! metadata block as the walk reaches it (number, type, checksum verdict,
//! the block referencing it, what it covers, its problems), then the counts
//! and the problems at no one block. Streamed: no line is held.

use std::io::Write;

use cowfmt::blockdev::BlockDev;
use cowfmt::store::dump::{clone_blocks_head, list_clone_blocks};
use cowfmt::store::reports::clone::{BlockRow, Span};

use super::{digits, plural, write_problems};
use crate::progress::RecordCounter;

/// Writes the block table of the clone metadata on `device`; returns the
/// problems at no one block.
pub fn write_blocks(
    out: &mut dyn Write,
    device: &dyn BlockDev,
    progress: &RecordCounter,
) -> anyhow::Result<Vec<String>> {
    let head = clone_blocks_head(device);
    writeln!(out, "Metadata blocks ({} on the device)", head.nr_blocks)?;
    let width = digits(head.nr_blocks).max("block".len());
    writeln!(
        out,
        "  {:>width$}  {:<16}  {:<8}  {:>width$}  covers",
        "block", "type", "checksum", "from"
    )?;
    let mut lines = 0;
    let tail = list_clone_blocks(device, &mut |row| {
        let from = row
            .referenced_from
            .map_or("-".to_string(), |b| b.to_string());
        let line = format!(
            "  {:>width$}  {:<16}  {:<8}  {:>width$}  {}",
            row.block,
            row.role,
            row.checksum.as_str(),
            from,
            covers(row)
        );
        writeln!(out, "{}", line.trim_end())?;
        for problem in &row.problems {
            writeln!(out, "  {:>width$}  ! {problem}", "")?;
        }
        lines += 1;
        progress.tick(lines);
        Ok(())
    })?;
    writeln!(
        out,
        "({} block{} listed, {} bad, {} with problems)",
        tail.blocks_listed,
        plural(tail.blocks_listed),
        tail.bad_blocks,
        tail.blocks_with_problems
    )?;
    write_problems(out, &tail.problems)?;
    Ok(tail.problems)
}

/// What a row's block covers or references, in words.
fn covers(row: &BlockRow) -> String {
    if !row.references.is_empty() {
        let refs: Vec<String> = row.references.iter().map(u64::to_string).collect();
        return format!("references {}", refs.join(", "));
    }
    match (row.keys, row.depth, row.regions, row.index) {
        (Some(keys), Some(depth), _, _) => format!("array blocks {}, depth {depth}", span(keys)),
        (_, _, Some(regions), Some(index)) => {
            format!("array block {index}: regions {}", span(regions))
        }
        (_, _, _, Some(index)) => format!("bitmap {index}"),
        _ => String::new(),
    }
}

fn span(span: Span) -> String {
    match span.end {
        Some(end) => format!("{}..{end}", span.start),
        None => format!("{}..", span.start),
    }
}
