//! `cargo xtask same-output`: runs the five tools of a base revision and of the
//! current tree on the same inputs and compares what they do, byte for byte.
//!
//! Each case is one command line. It runs twice in the same directory (emptied
//! and filled with the same input files in between): once with the base
//! revision's binaries, once with the current tree's. Stdout, stderr, the exit
//! code and every file left in the directory (outputs, and inputs a tool
//! rewrites in place) must be identical. The inputs are the golden images of
//! testdata/golden, stores made by `gen-store` and the base revision's mkcow,
//! damaged copies of them, dumps, and bad inputs (missing, a directory, empty,
//! truncated, another kind).

mod build;
mod cases;
mod inputs;
mod report;
mod run;

use std::fs;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

/// Arguments of `cargo xtask same-output`.
#[derive(Debug, Clone, Args)]
pub struct SameOutputArgs {
    /// The revision to compare with (a commit, branch or tag of this repository).
    #[arg(long, value_name = "REV", default_value = "main")]
    pub base: String,
    /// Keep the work directory (inputs, and the outputs of the differing cases).
    #[arg(long)]
    pub keep: bool,
    /// Run only the cases whose command line contains this text (repeatable).
    #[arg(long, value_name = "TEXT")]
    pub only: Vec<String>,
    /// Print the case list and exit.
    #[arg(long)]
    pub list: bool,
}

/// Runs `cargo xtask same-output`.
pub fn run(args: &SameOutputArgs) -> Result<()> {
    let cases: Vec<cases::Case> = cases::all()
        .into_iter()
        .filter(|case| args.only.is_empty() || args.only.iter().any(|t| case.name().contains(t)))
        .collect();
    if args.list {
        for case in &cases {
            println!("{}", case.name());
        }
        return Ok(());
    }
    if cases.is_empty() {
        bail!("no case matches --only {}", args.only.join(" --only "));
    }
    let base = build::base_tools(&args.base)?;
    let new = build::current_tools()?;
    let work = work_dir()?;
    let outcome = compare_all(&cases, &base, &new, &work);
    if args.keep {
        println!("work directory kept: {}", work.display());
    } else {
        fs::remove_dir_all(&work).with_context(|| format!("{}: cannot remove", work.display()))?;
    }
    let differing = outcome?;
    if differing > 0 {
        bail!(
            "{differing} of {} cases differ between {} and the current tree",
            cases.len(),
            args.base
        );
    }
    println!(
        "same-output: all {} cases identical between {} and the current tree",
        cases.len(),
        args.base
    );
    Ok(())
}

/// Prepares the inputs and compares every case; returns how many differ.
fn compare_all(
    cases: &[cases::Case],
    base: &build::ToolDir,
    new: &build::ToolDir,
    work: &std::path::Path,
) -> Result<usize> {
    let pool = work.join("inputs");
    inputs::prepare(&pool, base)?;
    let case_dir = work.join("case");
    let mut summary = report::Summary::default();
    for case in cases {
        let before = run::run_case(case, base, &pool, &case_dir)?;
        let after = run::run_case(case, new, &pool, &case_dir)?;
        summary.add(case, &before, &after, &work.join("diffs"))?;
    }
    summary.print();
    Ok(summary.differing())
}

/// A fresh work directory under the system's temporary directory.
fn work_dir() -> Result<PathBuf> {
    let root = std::env::temp_dir();
    for attempt in 0..100u32 {
        let dir = root.join(format!("same-output-{}-{attempt}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("{}: cannot create", dir.display())),
        }
    }
    bail!("no free work directory name under {}", root.display())
}
