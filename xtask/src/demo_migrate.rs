//! The migration step of `cargo xtask demo`: the classic store becomes
//! snapshot 0 of a new shared store (`cowmigrate --to shared`), is exported
//! back as a classic store (`cowmigrate --to persistent --snapshot 0`), and
//! the export is checked and read back as the kernel would.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::demo::{expect_exit, remove_if_present, step, verify_snapshot_view};
use crate::tools::Tools;

/// Migrates `cow` (a classic store over `origin`) into a shared store in `dir`
/// and back, as step `number`; returns the exported classic store's path.
pub fn run(tools: &Tools, dir: &Path, origin: &Path, cow: &Path, number: u32) -> Result<PathBuf> {
    let imported = dir.join("imported-shared.img");
    let exported = dir.join("exported.img");
    for path in [&imported, &exported] {
        remove_if_present(path)?;
    }
    step(&format!(
        "{number}. cowmigrate: the classic store into a shared store (snapshot 0), and back"
    ));
    expect_exit(
        tools
            .command("cowmigrate")
            .arg("-q")
            .arg("-i")
            .arg(cow)
            .arg("-o")
            .arg(&imported)
            .args(["--to", "shared"]),
        0,
    )?;
    expect_exit(
        tools
            .command("cowmigrate")
            .arg("-q")
            .arg("-i")
            .arg(&imported)
            .arg("-o")
            .arg(&exported)
            .args(["--to", "persistent", "--snapshot", "0", "--origin"])
            .arg(origin),
        0,
    )?;
    expect_exit(
        tools
            .command("cowcheck")
            .arg("--origin")
            .arg(origin)
            .arg(&exported),
        0,
    )?;
    verify_snapshot_view(origin, &exported)?;
    println!("the exported store's snapshot view still reads as the ORIG pattern: OK");
    Ok(exported)
}
