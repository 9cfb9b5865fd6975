//! `cargo xtask demo`: the main job on a file-backed default. Says what it
//! builds, builds the tools, makes a 64 MiB origin and a COW with `mkcow`,
//! simulates origin writes under a snapshot (copy-out, commit, then write),
//! checks the store and dumps it into files (summaries on screen); does the
//! same for a shared store with four snapshots (demo_shared); migrates the
//! classic store into a shared one and back (demo_migrate); ends with the
//! lines that activate the stores and what to try next.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use cowfmt::persistent::table::{snapshot_table_line, TableDevices};
use cowfmt::persistent::{ExceptionRecord, PersistentStore, StoreWriter};
use cowfmt::{Access, Device, StoreKind, SECTOR_BYTES};

use crate::pattern::{self, Tag, NEW1, NEW2, ORIG};
use crate::prng::Permutation;
use crate::tools::{run_echoed, workspace_root, Tools};

/// Origin size.
const ORIGIN_BYTES: u64 = 64 << 20;
/// COW size given to mkcow.
const COW_SIZE: &str = "16M";
/// Distinct origin chunks written (more than one area's worth at 4 KiB chunks).
const FIRST_WRITES: u64 = 300;
/// Chunks written a second time (already copied: no new exception).
const REWRITES: u64 = 30;
/// Seed of the chunk choice.
const SEED: u64 = 2024;

/// Arguments of `cargo xtask demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Where to put the images and the dump [default: demo/ at the workspace root].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// What the demo builds and does, printed before anything is built.
const INTRO: &str = "\
cargo xtask demo: builds mkcow, cowdump, cowcheck, cowrepair and cowmigrate
(cargo build --release -p cowtools: a minute or two the first time), then runs
them on image files in DIR (demo/ by default):
  1-4  a classic (dm-snapshot persistent) store, written the way the kernel does
  5-8  a shared store holding four snapshots of one origin
  9    the classic store migrated into a shared store and exported back
It ends with the lines that activate the stores, and what to try next.";

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<()> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| workspace_root().join("demo"));
    println!("{}", INTRO.replace("DIR", &dir.display().to_string()));
    let tools = Tools::build_release(&["mkcow", "cowdump", "cowcheck", "cowrepair", "cowmigrate"])?;
    fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let origin = dir.join("origin.img");
    let cow = dir.join("cow.img");
    let dump = dir.join("cow.json");
    let table = dir.join("cow-table.txt");
    for path in [&origin, &cow, &dump, &table] {
        remove_if_present(path)?;
    }

    step(&format!(
        "1. origin: a {} MiB image filled with the ORIG pattern; COW store: mkcow",
        ORIGIN_BYTES >> 20
    ));
    write_pattern_image(&origin, ORIGIN_BYTES)?;
    expect_exit(
        tools
            .command("mkcow")
            .arg("--size")
            .arg(COW_SIZE)
            .arg("--origin")
            .arg(&origin)
            .arg(&cow),
        0,
    )?;

    step("2. origin writes under the snapshot: copy the old chunk out, commit the exception, then write");
    let copied = simulate_origin_writes(&origin, &cow)?;
    println!(
        "{FIRST_WRITES} chunks written once ({NEW1_NAME}), {REWRITES} of them again ({NEW2_NAME}): {copied} exceptions",
        NEW1_NAME = tag_name(NEW1),
        NEW2_NAME = tag_name(NEW2)
    );
    verify_snapshot_view(&origin, &cow)?;
    println!("the snapshot view (origin plus exceptions) still reads as the ORIG pattern: OK");

    step("3. cowcheck");
    expect_exit(
        tools
            .command("cowcheck")
            .arg("--origin")
            .arg(&origin)
            .arg(&cow),
        0,
    )?;

    step("4. cowdump: tables for people, JSON that mkcow --from-dump restores");
    dump_to_file(
        &tools,
        &["--format", "table"],
        &table,
        &cow,
        Some("Exceptions (on-disk order)"),
    )?;
    dump_to_file(&tools, &["--format", "json"], &dump, &cow, None)?;

    let shared = crate::demo_shared::run(&tools, &dir, 5)?;

    let exported = crate::demo_migrate::run(&tools, &dir, &origin, &cow, 9)?;

    step("Activating the classic stores (as root, with loop devices)");
    print_activation(&origin, &[(&cow, "demo-snap"), (&exported, "demo-back")])?;
    println!(
        "# {}: its table lines (one per snapshot) are for the seed's kernel (cowrt); mainline has no shared store",
        shared.display()
    );

    step("What to try next");
    print_next_steps(&dir, &origin, &cow, &shared);
    Ok(())
}

/// Lines of a table dump shown on screen, from its exceptions' heading; the
/// rest stays in the file.
pub(crate) const EXCERPT_LINES: usize = 6;

/// Runs `cowdump ARGS -o FILE STORE`, then says how long the dump is and,
/// with `excerpt` (a heading), shows [`EXCERPT_LINES`] lines from it.
pub(crate) fn dump_to_file(
    tools: &Tools,
    args: &[&str],
    file: &Path,
    store: &Path,
    excerpt: Option<&str>,
) -> Result<()> {
    remove_if_present(file)?;
    expect_exit(
        tools
            .command("cowdump")
            .args(args)
            .arg("-o")
            .arg(file)
            .arg(store),
        0,
    )?;
    let text =
        fs::read_to_string(file).with_context(|| format!("{}: not written", file.display()))?;
    print!("{}", summarize(file, &text, excerpt, EXCERPT_LINES));
    Ok(())
}

/// A file's size in lines and bytes, then, when it has the line `heading`,
/// `lines` lines from there, each indented.
pub(crate) fn summarize(file: &Path, text: &str, heading: Option<&str>, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let mut shown = format!(
        "{}: {} lines, {} bytes",
        file.display(),
        all.len(),
        text.len()
    );
    let start = heading.and_then(|heading| all.iter().position(|line| *line == heading));
    if let Some(start) = start {
        shown.push_str(", from:");
        for line in all.iter().skip(start).take(lines) {
            shown.push_str("\n    ");
            shown.push_str(line);
        }
    }
    shown.push('\n');
    shown
}

/// The commands worth trying on what the demo left in `dir`.
fn print_next_steps(dir: &Path, origin: &Path, cow: &Path, shared: &Path) {
    let tools = crate::tools::target_dir().join("release");
    println!("export PATH={}:$PATH", tools.display());
    println!(
        "cowdump --format table {}        # every exception",
        cow.display()
    );
    println!(
        "cowdump --snapshot 1 --format table {}   # what snapshot 1 sees",
        shared.display()
    );
    println!("cowcheck --format json {}", cow.display());
    println!("cowrepair -i {} --dry-run", cow.display());
    println!(
        "cowmigrate -i {} --to raw --origin {} -o snap.raw   # the snapshot as a plain image",
        cow.display(),
        origin.display()
    );
    println!(
        "cowmigrate -i {} --merge --origin {}   # roll the origin back to the snapshot (writes both)",
        cow.display(),
        origin.display()
    );
    println!("man -l dist/man/man1/cowmigrate.1        # the man pages (cargo xtask dist)");
    println!(
        "the full dumps are in {}: cow-table.txt, cow.json, shared-table.txt, shared-tree.txt",
        dir.display()
    );
    println!("an LVM snapshot instead of images: docs/lvm.md");
}

/// Prints a step's title.
pub(crate) fn step(title: &str) {
    println!("\n=== {title}");
}

fn tag_name(tag: Tag) -> String {
    String::from_utf8_lossy(&tag.0).into_owned()
}

/// Removes `path` if it exists.
pub(crate) fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("{}: cannot remove", path.display()))
        }
        _ => Ok(()),
    }
}

/// Runs `command` echoed and requires exit code `expected`.
pub(crate) fn expect_exit(command: &mut std::process::Command, expected: i32) -> Result<()> {
    let code = run_echoed(command)?;
    if code != expected {
        bail!(
            "{} exited with {code}, expected {expected}",
            crate::tools::shown(command)
        );
    }
    Ok(())
}

/// Writes an image of `size` bytes filled with the ORIG pattern.
pub(crate) fn write_pattern_image(path: &Path, size: u64) -> Result<()> {
    let device = Device::create_or_extend(path, size)?;
    let mut buffer = vec![0u8; 1 << 20];
    for offset in (0..size).step_by(buffer.len()) {
        pattern::fill(ORIG, offset, &mut buffer);
        device.write_at(&buffer, offset)?;
    }
    device.sync()?;
    Ok(())
}

/// Writes to the origin as dm-snapshot does under a snapshot: the first write
/// to a chunk copies its old content into a newly allocated COW chunk and
/// commits the exception before the new data lands. Returns the exceptions made.
fn simulate_origin_writes(origin_path: &Path, cow_path: &Path) -> Result<u64> {
    let origin = Device::open(origin_path, Access::ReadWrite)?;
    let mut writer = StoreWriter::open(Device::open(cow_path, Access::ReadWrite)?)?;
    let chunk_bytes = writer.geometry().chunk_bytes() as u64;
    let origin_chunks = origin.size_bytes() / chunk_bytes;
    let chosen = Permutation::new(origin_chunks, SEED);
    let writes = (0..FIRST_WRITES)
        .map(|i| (chosen.apply(i), NEW1))
        .chain((0..REWRITES).map(|i| (chosen.apply(i * (FIRST_WRITES / REWRITES)), NEW2)));
    let mut copied = HashSet::new();
    let mut buffer = vec![0u8; chunk_bytes as usize];
    for (chunk, tag) in writes {
        if copied.insert(chunk) {
            let new_chunk = writer.allocate()?;
            origin.read_chunk(chunk, &mut buffer)?;
            writer.device().write_chunk(new_chunk, &buffer)?;
            writer.commit(ExceptionRecord {
                old_chunk: chunk,
                new_chunk,
            })?;
            writer.flush()?;
        }
        pattern::fill(tag, chunk * chunk_bytes, &mut buffer);
        origin.write_chunk(chunk, &buffer)?;
    }
    origin.sync()?;
    writer.finish()?;
    Ok(copied.len() as u64)
}

/// Reads the snapshot the way the kernel would and compares it with the origin
/// as it was before the writes.
pub(crate) fn verify_snapshot_view(origin_path: &Path, cow_path: &Path) -> Result<()> {
    let origin = Device::open(origin_path, Access::ReadOnly)?;
    let store = PersistentStore::open(Device::open(cow_path, Access::ReadOnly)?, None)?;
    let metadata = store.load()?;
    let chunk_bytes = metadata.geometry.chunk_bytes();
    let mapped: std::collections::HashMap<u64, u64> = metadata
        .records
        .iter()
        .map(|placed| (placed.record.old_chunk, placed.record.new_chunk))
        .collect();
    let mut read = vec![0u8; chunk_bytes];
    let mut expected = vec![0u8; chunk_bytes];
    for chunk in 0..origin.size_bytes() / chunk_bytes as u64 {
        match mapped.get(&chunk) {
            Some(&new_chunk) => store.device().read_chunk(new_chunk, &mut read)?,
            None => origin.read_chunk(chunk, &mut read)?,
        }
        pattern::fill(ORIG, chunk * chunk_bytes as u64, &mut expected);
        ensure!(
            read == expected,
            "the snapshot view differs from the old origin at chunk {chunk}"
        );
    }
    Ok(())
}

/// Prints the commands that activate each classic store over `origin`, as
/// device-mapper devices of the names given.
fn print_activation(origin: &Path, stores: &[(&Path, &str)]) -> Result<()> {
    let origin_sectors = fs::metadata(origin)?.len() / SECTOR_BYTES;
    println!("ORIGIN=$(losetup -f --show {})", origin.display());
    for (cow, name) in stores {
        let store = PersistentStore::open(Device::open(cow, Access::ReadOnly)?, None)?;
        let devices = TableDevices {
            origin: Some("$ORIGIN"),
            origin_sectors: Some(origin_sectors),
            cow: "$COW",
        };
        let line = snapshot_table_line(
            &devices,
            store.geometry().chunk_sectors(),
            StoreKind::Persistent,
        );
        println!("COW=$(losetup -f --show {})", cow.display());
        println!("dmsetup create {name} --table \"{line}\"");
        println!(
            "dmsetup status {name}   # 0 {origin_sectors} snapshot {}",
            store.load()?.usage().status_text(true)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_shows_the_size_and_the_lines_from_a_heading() {
        let text = "Header\nkind x\n\nExceptions\nindex old new\n0 5 2\n1 7 3\n";
        let shown = summarize(Path::new("demo/x.txt"), text, Some("Exceptions"), 3);
        assert_eq!(
            shown,
            format!(
                "demo/x.txt: 7 lines, {} bytes, from:\n    Exceptions\n    index old new\n    0 5 2\n",
                text.len()
            )
        );
        let plain = format!("demo/x.txt: 7 lines, {} bytes\n", text.len());
        assert_eq!(summarize(Path::new("demo/x.txt"), text, None, 3), plain);
        assert_eq!(
            summarize(Path::new("demo/x.txt"), text, Some("Tree"), 3),
            plain
        );
    }
}
