//! The workspace, its release build of the cowtools binaries, and running them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// The cargo target directory (`CARGO_TARGET_DIR`, or `target/` at the root).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The release binaries of cowtools, built by [`Tools::build_release`].
#[derive(Debug, Clone)]
pub struct Tools {
    dir: PathBuf,
}

/// Runs `cargo build --release -p PACKAGE` in the workspace, echoing it.
pub fn build_release_package(package: &str) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    println!("$ cargo build --release -p {package}");
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", package])
        .current_dir(workspace_root())
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build --release -p {package} failed ({status})");
    }
    Ok(())
}

impl Tools {
    /// Runs `cargo build --release -p cowtools` and checks that every binary in
    /// `needed` exists afterwards; a missing one is an error naming its source.
    pub fn build_release(needed: &[&str]) -> Result<Self> {
        build_release_package("cowtools").context("the tools must build first")?;
        let tools = Tools {
            dir: target_dir().join("release"),
        };
        let missing: Vec<&str> = needed
            .iter()
            .copied()
            .filter(|name| !tools.exists(name))
            .collect();
        if !missing.is_empty() {
            bail!(
                "the release build has no {} (expected {}); {} not written yet: see crates/cowtools/src/bin/",
                missing.join(", "),
                tools.path(missing[0]).display(),
                if missing.len() == 1 { "that binary is" } else { "those binaries are" }
            );
        }
        Ok(tools)
    }

    /// The folder the binaries are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of binary `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Whether binary `name` was built.
    pub fn exists(&self, name: &str) -> bool {
        self.path(name).is_file()
    }

    /// A command for binary `name`.
    pub fn command(&self, name: &str) -> Command {
        Command::new(self.path(name))
    }
}

/// Runs `command`, echoing it, with its output going to ours; returns its exit
/// code.
pub fn run_echoed(command: &mut Command) -> Result<i32> {
    println!("\n$ {}", shown(command));
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", command.get_program().to_string_lossy()))?;
    status
        .code()
        .with_context(|| format!("{} was killed ({status})", shown(command)))
}

/// A command as a shell line, with the binary's file name only.
pub fn shown(command: &Command) -> String {
    let program = Path::new(command.get_program()).file_name().map_or_else(
        || command.get_program().to_string_lossy(),
        |name| name.to_string_lossy(),
    );
    std::iter::once(program.into_owned())
        .chain(
            command
                .get_args()
                .map(|arg| arg.to_string_lossy().into_owned()),
        )
        .collect::<Vec<_>>()
        .join(" ")
}
