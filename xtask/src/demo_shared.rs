//! The shared half of `cargo xtask demo`: a shared store formatted with
//! `mkcow --kind shared`, four snapshots taken while the origin is written (one
//! of them written to, one a snapshot of a snapshot) through the cowfmt engine,
//! every view verified, then `cowcheck` on the result and `cowdump` into files.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Result};
use cowengine::SharedStore;
use cowfmt::{Access, Device};

use crate::demo::{dump_to_file, expect_exit, remove_if_present, step, write_pattern_image};
use crate::pattern::{self, Tag, NEW1, NEW2, ORIG};
use crate::prng::Permutation;
use crate::tools::Tools;

const ORIGIN_BYTES: u64 = 16 << 20;
const CHUNK_BYTES: u64 = 4096;
const WRITES_PER_SNAPSHOT: u64 = 200;

/// Runs the shared steps in `dir`, numbering them from `first_step`; returns
/// the shared store's path.
pub fn run(tools: &Tools, dir: &Path, first_step: u32) -> Result<PathBuf> {
    let origin = dir.join("shared-origin.img");
    let cow = dir.join("shared.img");
    for path in [&origin, &cow] {
        remove_if_present(path)?;
    }
    let n = |i: u32| first_step + i;
    step(&format!(
        "{}. shared store: a 16 MiB origin and mkcow --kind shared",
        n(0)
    ));
    write_pattern_image(&origin, ORIGIN_BYTES)?;
    expect_exit(
        tools
            .command("mkcow")
            .args([
                "--kind",
                "shared",
                "--size",
                "32M",
                "--journal-size",
                "1M",
                "--origin",
            ])
            .arg(&origin)
            .arg(&cow),
        0,
    )?;

    step(&format!(
        "{}. four snapshots while the origin is written; snapshot 1 written to; snapshot 3 taken of snapshot 1",
        n(1)
    ));
    let expected = drive_engine(&origin, &cow)?;
    println!("every snapshot and the origin read back as expected: OK");
    for (id, what) in &expected {
        println!("  snapshot {id}: {what}");
    }

    step(&format!("{}. cowcheck", n(2)));
    expect_exit(
        tools
            .command("cowcheck")
            .arg("--origin")
            .arg(&origin)
            .arg(&cow),
        0,
    )?;
    step(&format!(
        "{}. cowdump: the records by origin chunk, and the B-tree",
        n(3)
    ));
    let table = dir.join("shared-table.txt");
    dump_to_file(
        tools,
        &["--format", "table"],
        &table,
        &cow,
        Some("Exceptions (origin order)"),
    )?;
    let tree = dir.join("shared-tree.txt");
    dump_to_file(tools, &["--tree", "--format", "table"], &tree, &cow, None)?;
    Ok(cow)
}

/// Takes the snapshots and writes, then checks every view chunk by chunk.
/// Returns what each snapshot should show.
fn drive_engine(origin_path: &Path, cow_path: &Path) -> Result<Vec<(u32, String)>> {
    let mut store = SharedStore::open(
        Device::open(cow_path, Access::ReadWrite)?,
        Device::open(origin_path, Access::ReadWrite)?,
    )?;
    let chunks = ORIGIN_BYTES / CHUNK_BYTES;
    let chosen = Permutation::new(chunks, 7);
    // The origin's tag per chunk before each snapshot, to know what each sees.
    let mut origin_tags = vec![ORIG; chunks as usize];
    let mut views: Vec<Vec<Tag>> = Vec::new();
    let mut buf = vec![0u8; CHUNK_BYTES as usize];
    for round in 0..3u64 {
        store.create_snapshot(None)?;
        views.push(origin_tags.clone());
        let tag = if round % 2 == 0 { NEW1 } else { NEW2 };
        for i in 0..WRITES_PER_SNAPSHOT {
            let chunk = chosen.apply(round * WRITES_PER_SNAPSHOT / 2 + i);
            pattern::fill(tag, chunk * CHUNK_BYTES, &mut buf);
            store.origin_write(chunk * CHUNK_BYTES, &buf)?;
            origin_tags[chunk as usize] = tag;
        }
    }
    for i in 0..50 {
        let chunk = chosen.apply(1000 + i);
        pattern::fill(NEW2, chunk * CHUNK_BYTES, &mut buf);
        store.snapshot_write(1, chunk * CHUNK_BYTES, &buf)?;
        views[1][chunk as usize] = NEW2;
    }
    let child = store.create_snapshot_of(1)?;
    views.push(views[1].clone());
    store.commit()?;

    let mut expected = vec![0u8; CHUNK_BYTES as usize];
    for chunk in 0..chunks {
        for (id, view) in views.iter().enumerate() {
            store.snapshot_read(id as u32, chunk * CHUNK_BYTES, &mut buf)?;
            pattern::fill(view[chunk as usize], chunk * CHUNK_BYTES, &mut expected);
            ensure!(
                buf == expected,
                "snapshot {id} differs from what it should show at chunk {chunk}"
            );
        }
    }
    Ok(vec![
        (0, "the origin before any write".to_string()),
        (
            1,
            "the origin after the first round, plus 50 chunks of its own".to_string(),
        ),
        (2, "the origin after two rounds".to_string()),
        (child, "a snapshot of snapshot 1: the same view".to_string()),
    ])
}
