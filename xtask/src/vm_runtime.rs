//! `cargo xtask vm-runtime` and `cargo xtask bench-nway`'s VM side: the live
//! runtime in a real Linux kernel under qemu (xtask/vm-runtime/run.sh). One
//! boot runs the same filesystem workload on classic snapshots through
//! `cowrt dm` and on a shared store through `cowrt serve`, with a kill -9 of
//! the daemon and `--recover`; the host then checks the store and every
//! export. Never part of `cargo test` (downloads, root): docs/live-tests.md.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::runtime;
use crate::tools::{target_dir, workspace_root, Tools};

/// Arguments of `cargo xtask vm-runtime`.
#[derive(Debug, Clone, Args)]
pub struct VmRuntimeArgs {
    /// Where downloads, the VM build, the disk images and the logs go.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// One step of xtask/vm-runtime/run.sh instead of all of them.
    #[arg(long, value_name = "STEP", default_value = "all",
          value_parser = ["all", "prepare", "scenario", "host", "report"])]
    pub step: String,
    /// Install libclang with apt-get when it is missing (needs root).
    #[arg(long)]
    pub install_deps: bool,
    /// Leave dm-clone out (otherwise xtask/vm/build-dm-clone.sh builds it
    /// once, and the guest runs xtask/vm/guest-clone.sh).
    #[arg(long)]
    pub no_clone: bool,
}

/// The binaries a VM run needs: the release tools and cowrt with ublk.
pub struct VmBinaries {
    tools: Tools,
    cowrt: PathBuf,
}

impl VmBinaries {
    /// Builds the release tools and `cowrt --features ublk`.
    pub fn build(install_deps: bool) -> Result<Self> {
        let tools = Tools::build_release(&["mkcow", "cowcheck", "cowdump", "cowmigrate"])?;
        let cowrt = runtime::build(install_deps)?;
        Ok(VmBinaries { tools, cowrt })
    }
}

/// The VM folder: `--dir`, else `target/vm`.
pub fn vm_dir(dir: Option<&Path>) -> PathBuf {
    dir.map_or_else(|| target_dir().join("vm"), Path::to_path_buf)
}

/// Runs one step of xtask/vm-runtime/run.sh with the binaries under test.
pub fn run_script(
    binaries: &VmBinaries,
    dir: &Path,
    step: &str,
    env: &[(&str, &str)],
) -> Result<()> {
    let script = workspace_root().join("xtask/vm-runtime/run.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(step)
        .env("VM_DIR", dir)
        .env("TOOLS_SRC", binaries.tools.dir())
        .env("COWRT_BIN", &binaries.cowrt)
        .envs(env.iter().copied())
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !status.success() {
        bail!(
            "{} {step} failed ({status}); logs in {}",
            script.display(),
            dir.join("logs-rt").display()
        );
    }
    Ok(())
}

/// Builds dm-clone.ko with xtask/vm/build-dm-clone.sh (once: it keeps the
/// module) and returns its path; `None`, with a note, when the script is
/// missing or fails: the clone checks are then left out.
fn dm_clone_module(dir: &Path) -> Option<PathBuf> {
    let script = workspace_root().join("xtask/vm/build-dm-clone.sh");
    if !script.is_file() {
        println!("note: no {}: dm-clone is left out", script.display());
        return None;
    }
    println!("$ {}", script.display());
    let output = Command::new("bash")
        .arg(&script)
        .env("VM_DIR", dir)
        .stderr(std::process::Stdio::inherit())
        .output();
    let path = output.ok().filter(|o| o.status.success()).and_then(|o| {
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.lines().last().map(|line| PathBuf::from(line.trim()))
    });
    match path {
        Some(path) if path.is_file() => Some(path),
        _ => {
            println!("note: {} failed: dm-clone is left out", script.display());
            None
        }
    }
}

/// `cargo xtask vm-runtime`: fails unless every check passed.
pub fn run(args: &VmRuntimeArgs) -> Result<()> {
    let binaries = VmBinaries::build(args.install_deps)?;
    let dir = vm_dir(args.dir.as_deref());
    let clone = match args.no_clone || !matches!(args.step.as_str(), "all" | "prepare") {
        true => None,
        false => dm_clone_module(&dir),
    };
    let clone_env = clone.as_ref().map(|path| path.display().to_string());
    let env: Vec<(&str, &str)> = match &clone_env {
        Some(path) => vec![("DM_CLONE_KO", path.as_str())],
        None => vec![("DM_CLONE_KO", "none")],
    };
    run_script(&binaries, &dir, &args.step, &env)
}
