//! The two sets of binaries compared: the base revision's, built from an
//! exported copy of its tree into a target directory of its own (kept between
//! runs), and the current tree's.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::tools::{target_dir, workspace_root};

/// The five tools compared.
pub const TOOLS: [&str; 5] = ["mkcow", "cowdump", "cowcheck", "cowrepair", "cowmigrate"];

/// A folder holding the five tools.
#[derive(Debug, Clone)]
pub struct ToolDir {
    dir: PathBuf,
}

impl ToolDir {
    /// The path of tool `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn checked(dir: PathBuf) -> Result<Self> {
        let tools = ToolDir { dir };
        if let Some(missing) = TOOLS.iter().find(|name| !tools.path(name).is_file()) {
            bail!("the build left no {}", tools.path(missing).display());
        }
        Ok(tools)
    }
}

/// Builds the tools of revision `rev` (debug profile) under
/// `target/same-output/base-COMMIT/`: the tree is exported once into `src/`,
/// built into `target/`; later runs reuse both.
pub fn base_tools(rev: &str) -> Result<ToolDir> {
    let commit = resolve(rev)?;
    let home = target_dir()
        .join("same-output")
        .join(format!("base-{commit}"));
    let src = home.join("src");
    let exported = home.join("exported");
    if !exported.is_file() {
        if src.exists() {
            fs::remove_dir_all(&src)
                .with_context(|| format!("{}: cannot remove", src.display()))?;
        }
        fs::create_dir_all(&src).with_context(|| format!("{}: cannot create", src.display()))?;
        export(&commit, &src)?;
        fs::write(&exported, format!("{commit}\n"))
            .with_context(|| format!("{}: cannot write", exported.display()))?;
    }
    let target = home.join("target");
    println!(
        "$ (in {}) cargo build --locked -p cowtools --bins  [base {rev} = {commit}]",
        src.display()
    );
    cargo_build(&src, Some(&target), true)?;
    ToolDir::checked(target.join("debug"))
}

/// Builds the current tree's tools (debug profile) in its own target directory.
pub fn current_tools() -> Result<ToolDir> {
    println!("$ cargo build -p cowtools --bins  [current tree]");
    cargo_build(&workspace_root(), None, false)?;
    ToolDir::checked(target_dir().join("debug"))
}

/// The full commit hash `rev` names.
fn resolve(rev: &str) -> Result<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("{rev}^{{commit}}"))
        .current_dir(workspace_root())
        .output()
        .context("cannot run git")?;
    if !output.status.success() {
        bail!("--base {rev}: not a commit of this repository");
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Writes the tree of `commit` into `dir` (`git archive | tar -x`).
fn export(commit: &str, dir: &Path) -> Result<()> {
    let mut archive = Command::new("git")
        .args(["archive", "--format=tar", commit])
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run git archive")?;
    let stdout = archive.stdout.take().context("git archive has no stdout")?;
    let untar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(dir)
        .stdin(stdout)
        .status()
        .context("cannot run tar")?;
    let archived = archive.wait().context("git archive did not finish")?;
    if !archived.success() || !untar.success() {
        bail!(
            "cannot export {commit} into {} (git archive: {archived}, tar: {untar})",
            dir.display()
        );
    }
    Ok(())
}

/// `cargo build -p cowtools --bins` in `dir`, into `target` if given.
fn cargo_build(dir: &Path, target: Option<&Path>, locked: bool) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.arg("build");
    if locked {
        command.arg("--locked");
    }
    command.args(["-p", "cowtools", "--bins"]).current_dir(dir);
    if let Some(target) = target {
        command.env("CARGO_TARGET_DIR", target);
    }
    let status = command.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build in {} failed ({status})", dir.display());
    }
    Ok(())
}
