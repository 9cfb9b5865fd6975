//! `cargo xtask vm-clone-fixtures`: regenerates testdata/kernel-clone/, the
//! dm-clone metadata the real kernel writes (xtask/vm/clone-fixtures.sh).
//! One qemu boot of Linux 6.12 formats and hydrates every geometry; the host
//! then keeps the metadata images, the status lines and a manifest per
//! geometry. Never part of `cargo test` (downloads, a VM): the fixtures are
//! committed and the tests read them.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::tools::{target_dir, workspace_root};
use crate::vm_test::run_harness;

/// Arguments of `cargo xtask vm-clone-fixtures`.
#[derive(Debug, Clone, Args)]
pub struct VmCloneFixturesArgs {
    /// Where downloads, the VM build, the disk images and the logs go
    /// (cache/ and build/root are shared with vm-test).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Where the fixtures are written (default: testdata/kernel-clone).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// One step of xtask/vm/clone-fixtures.sh instead of all of them.
    #[arg(long, value_name = "STEP", default_value = "all",
          value_parser = ["all", "prepare", "boot", "fixtures"])]
    pub step: String,
}

/// Runs the script; fails unless every geometry's status agreed with its
/// hydration pattern and the fixtures were written.
pub fn run(args: &VmCloneFixturesArgs) -> Result<()> {
    let dir = args.dir.clone().unwrap_or_else(|| target_dir().join("vm"));
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| workspace_root().join("testdata/kernel-clone"));
    let out = out.display().to_string();
    run_harness(
        "xtask/vm/clone-fixtures.sh",
        &args.step,
        &dir,
        "logs-clone",
        &[("FIXTURES", &out)],
    )
}
