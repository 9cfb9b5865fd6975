//! The journal view of a shared store (`--journal`) as tables and lines for
//! people; its JSON and YAML document is `shared::dump::text::write_journal`.

use std::io::Write;

use cowfmt::store::reports::shared::dump::{JournalDump, JournalListing, JournalTx, TxState};

use super::plural;
use super::shared::{geometry_table, header_table, ids_text};

/// Writes the journal view of `dump` as tables and lines.
pub fn write_table(out: &mut dyn Write, dump: &JournalDump) -> anyhow::Result<()> {
    writeln!(out, "Header\n{}\n", header_table(&dump.head))?;
    writeln!(out, "Geometry\n{}\n", geometry_table(&dump.head))?;
    let j = &dump.journal;
    let state = serde_json::to_value(j.state)?;
    if dump.head.journal_chunks == 0 {
        writeln!(out, "Journal: no journal (0 chunks)")?;
        return write_in_place(out, j);
    }
    writeln!(
        out,
        "Journal: superblock chunk {}, {} log chunk{}, {}",
        j.start,
        j.log_chunks,
        plural(j.log_chunks),
        state.as_str().unwrap_or_default()
    )?;
    match (&j.superblock, &j.problem) {
        (_, Some(problem)) => writeln!(out, "superblock: damaged: {problem}")?,
        (Some(sup), None) => writeln!(
            out,
            "superblock: tail_seq {}, chunk_bytes {}, log_chunks {}",
            sup.tail_seq, sup.chunk_bytes, sup.log_chunks
        )?,
        (None, None) => writeln!(out, "superblock: none (all zero: never used)")?,
    }
    writeln!(
        out,
        "{}",
        tx_line("seq", "pos", "chunk", "images", "state", "home chunks")
    )?;
    for tx in &j.transactions {
        writeln!(out, "{}", tx_row(tx))?;
    }
    let count = j.transactions.len() as u64;
    writeln!(out, "({count} transaction{})", plural(count))?;
    write_in_place(out, j)
}

/// Says that the store commits in place, when it does.
fn write_in_place(out: &mut dyn Write, j: &JournalListing) -> anyhow::Result<()> {
    if let Some(note) = &j.commits_in_place {
        writeln!(out, "note: {note}")?;
    }
    Ok(())
}

fn tx_line(seq: &str, pos: &str, chunk: &str, images: &str, state: &str, rest: &str) -> String {
    format!("{seq:>8}  {pos:>8}  {chunk:>10}  {images:>6}  {state:<9}  {rest}")
}

fn tx_row(tx: &JournalTx) -> String {
    let state = match tx.state {
        TxState::Committed => "committed",
        TxState::Torn => "torn",
        TxState::Damaged => "damaged",
    };
    let mut rest = tx
        .homes
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    if let (Some(root), Some(level), Some(snapshots)) =
        (tx.root_tree_chunk, tx.tree_level, tx.snapshots)
    {
        rest.push_str(&format!(
            " (root {root}, level {level}, snapshots {})",
            ids_text(snapshots)
        ));
    }
    if let Some(why) = &tx.why {
        rest.push_str(&format!(": {why}"));
    }
    let images = tx.images.map_or("?".to_string(), |n| n.to_string());
    tx_line(
        &tx.seq.to_string(),
        &tx.pos.to_string(),
        &tx.chunk.to_string(),
        &images,
        state,
        &rest,
    )
}
