//! `cargo xtask vm-test`: the live round trips through a real Linux kernel
//! under qemu. Classic (xtask/vm/run.sh): the kernel writes three classic
//! snapshot stores, the tools import them into one shared store and export
//! every snapshot back, and the kernel must then show each export exactly as
//! it showed the snapshot it came from. Clone (xtask/vm/clone-test.sh):
//! `cowrt dm activate --kind clone` loads metadata made by mkcow into the
//! kernel's dm-clone, our tools read what it
//! hydrated exactly as its status says, and metadata cowrepair rebuilt from
//! damaged copies activates and shows the user's data. Never part of
//! `cargo test`: it downloads Debian packages once and boots a VM four times
//! (see docs/live-tests.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::tools::{build_release_package, target_dir, workspace_root, Tools};

/// Arguments of `cargo xtask vm-test`.
#[derive(Debug, Clone, Args)]
pub struct VmTestArgs {
    /// Where downloads, the VM build, the disk images and the logs go.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// One step instead of all of them, in each scenario that has it
    /// (fetch: classic only; make: clone only).
    #[arg(long, value_name = "STEP", default_value = "all",
          value_parser = ["all", "fetch", "prepare", "make", "boot1", "host", "boot2", "compare"])]
    pub step: String,
    /// Which scenario: the classic stores, dm-clone metadata, or both.
    #[arg(long, value_name = "SCENARIO", default_value = "all",
          value_parser = ["all", "classic", "clone"])]
    pub scenario: String,
}

/// One harness of `vm-test`: its script, its steps and its logs folder.
struct Scenario {
    name: &'static str,
    script: &'static str,
    steps: &'static [&'static str],
    logs: &'static str,
}

const SCENARIOS: [Scenario; 2] = [
    Scenario {
        name: "classic",
        script: "xtask/vm/run.sh",
        steps: &[
            "all", "fetch", "prepare", "boot1", "host", "boot2", "compare",
        ],
        logs: "logs",
    },
    Scenario {
        name: "clone",
        script: "xtask/vm/clone-test.sh",
        steps: &[
            "all", "prepare", "make", "boot1", "host", "boot2", "compare",
        ],
        logs: "logs-clonetest",
    },
];

/// Builds the release tools and runs the chosen scenarios (every one, even
/// after a failure); fails unless every check of every scenario passed.
pub fn run(args: &VmTestArgs) -> Result<()> {
    let chosen: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| args.scenario == "all" || args.scenario == s.name)
        .filter(|s| s.steps.contains(&args.step.as_str()))
        .collect();
    if chosen.is_empty() {
        bail!("the {} scenario has no step '{}'", args.scenario, args.step);
    }
    let tools = Tools::build_release(&["mkcow", "cowcheck", "cowdump", "cowrepair", "cowmigrate"])?;
    if chosen.iter().any(|s| s.name == "clone") {
        build_release_package("cowrt").context("the clone scenario activates through cowrt")?;
    }
    let dir = args.dir.clone().unwrap_or_else(|| target_dir().join("vm"));
    let tools_src = tools.dir().display().to_string();
    let mut failed = Vec::new();
    for scenario in chosen {
        let outcome = run_harness(
            scenario.script,
            &args.step,
            &dir,
            scenario.logs,
            &[("TOOLS_SRC", &tools_src)],
        );
        if let Err(error) = outcome {
            println!("vm-test: the {} scenario failed: {error:#}", scenario.name);
            failed.push(scenario.name);
        }
    }
    if !failed.is_empty() {
        bail!("vm-test failed: {}", failed.join(", "));
    }
    Ok(())
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
