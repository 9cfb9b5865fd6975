//! `cargo xtask vm-test`: the live round trip through a real Linux kernel
//! under qemu (xtask/vm/run.sh). The kernel writes three classic snapshot
//! stores, the tools import them into one shared store and export every
//! snapshot back, and the kernel must then show each export exactly as it
//! showed the snapshot it came from. Never part of `cargo test`: it downloads
//! Debian packages once and boots a VM twice (see docs/live-tests.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::tools::{target_dir, workspace_root, Tools};

/// Arguments of `cargo xtask vm-test`.
#[derive(Debug, Clone, Args)]
pub struct VmTestArgs {
    /// Where downloads, the VM build, the disk images and the logs go.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// One step of xtask/vm/run.sh instead of all of them.
    #[arg(long, value_name = "STEP", default_value = "all",
          value_parser = ["all", "fetch", "prepare", "boot1", "host", "boot2", "compare"])]
    pub step: String,
}

/// Builds the release tools and runs the scenario; fails unless every export
/// matched.
pub fn run(args: &VmTestArgs) -> Result<()> {
    let tools = Tools::build_release(&["cowcheck", "cowdump", "cowmigrate"])?;
    let dir = args.dir.clone().unwrap_or_else(|| target_dir().join("vm"));
    let tools_src = tools.dir().display().to_string();
    run_harness(
        "xtask/vm/run.sh",
        &args.step,
        &dir,
        "logs",
        &[("TOOLS_SRC", &tools_src)],
    )
}

/// Runs the harness `script` (relative to the workspace) for `step` with
/// `VM_DIR=dir` and `env`; fails, naming `dir/logs`, unless it exits 0.
pub fn run_harness(
    script: &str,
    step: &str,
    dir: &Path,
    logs: &str,
    env: &[(&str, &str)],
) -> Result<()> {
    let script = workspace_root().join(script);
    let status = Command::new("bash")
        .arg(&script)
        .arg(step)
        .env("VM_DIR", dir)
        .envs(env.iter().copied())
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !status.success() {
        bail!(
            "{} {step} failed ({status}); logs in {}",
            script.display(),
            dir.join(logs).display()
        );
    }
    Ok(())
}
