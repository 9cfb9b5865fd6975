//! `cargo xtask demo`: the main job on a file-backed default. Builds the tools,
//! makes a 64 MiB origin and a COW with `mkcow`, simulates origin writes under a
//! snapshot (copy-out, commit, then write), then inspects and checks the store
//! with the real binaries and prints the table line that activates it; then
//! does the same for a shared store with four snapshots (demo_shared).

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

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<()> {
    let tools = Tools::build_release(&["mkcow", "cowdump", "cowcheck"])?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| workspace_root().join("demo"));
    fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let origin = dir.join("origin.img");
    let cow = dir.join("cow.img");
    let dump = dir.join("dump.json");
    for path in [&origin, &cow, &dump] {
        remove_if_present(path)?;
    }

    step(&format!(
        "1. origin: {} MiB image filled with the ORIG pattern",
        ORIGIN_BYTES >> 20
    ));
    write_pattern_image(&origin, ORIGIN_BYTES)?;
    println!("{}", origin.display());

    step("2. COW store: mkcow");
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

    step("3. origin writes under the snapshot: copy the old chunk out, commit the exception, then write");
    let copied = simulate_origin_writes(&origin, &cow)?;
    println!(
        "{FIRST_WRITES} chunks written once ({NEW1_NAME}), {REWRITES} of them again ({NEW2_NAME}): {copied} exceptions",
        NEW1_NAME = tag_name(NEW1),
        NEW2_NAME = tag_name(NEW2)
    );
    verify_snapshot_view(&origin, &cow)?;
    println!("the snapshot view (origin plus exceptions) still reads as the ORIG pattern: OK");

    step("4. cowdump --format table");
    expect_exit(
        tools
            .command("cowdump")
            .args(["--format", "table"])
            .arg(&cow),
        0,
    )?;

    step("5. cowcheck");
    expect_exit(
        tools
            .command("cowcheck")
            .arg("--origin")
            .arg(&origin)
            .arg(&cow),
        0,
    )?;

    step("6. cowdump --format json -o");
    expect_exit(
        tools
            .command("cowdump")
            .args(["--format", "json", "-o"])
            .arg(&dump)
            .arg(&cow),
        0,
    )?;
    let bytes = fs::metadata(&dump)
        .with_context(|| format!("{}: not written", dump.display()))?
        .len();
    println!("{}: {bytes} bytes", dump.display());

    step("7. activating it (as root, with loop devices)");
    print_activation(&origin, &cow)?;

    crate::demo_shared::run(&tools, &dir, 8)
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
fn verify_snapshot_view(origin_path: &Path, cow_path: &Path) -> Result<()> {
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

fn print_activation(origin: &Path, cow: &Path) -> Result<()> {
    let store = PersistentStore::open(Device::open(cow, Access::ReadOnly)?, None)?;
    let origin_sectors = fs::metadata(origin)?.len() / SECTOR_BYTES;
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
    println!("ORIGIN=$(losetup -f --show {})", origin.display());
    println!("COW=$(losetup -f --show {})", cow.display());
    println!("dmsetup create demo-snap --table \"{line}\"");
    println!(
        "dmsetup status demo-snap   # 0 {origin_sectors} snapshot {}",
        store.load()?.usage().status_text(true)
    );
    Ok(())
}
