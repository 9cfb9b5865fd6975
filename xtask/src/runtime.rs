//! `cargo xtask runtime`: builds the live runtime `cowrt` with ublk, in
//! release, and says where the binary is. libublk's build script runs bindgen,
//! which needs libclang: checked first, and installed with apt-get when asked
//! (`--install-deps`, as root).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::tools::{target_dir, workspace_root};

/// The Debian 12 package that provides libclang for bindgen.
const LIBCLANG_PACKAGE: &str = "libclang1-14";

/// Arguments of `cargo xtask runtime`.
#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// Install libclang with apt-get when it is missing (needs root).
    #[arg(long)]
    pub install_deps: bool,
}

/// Whether the dynamic linker knows a libclang (`ldconfig -p`).
fn has_libclang() -> bool {
    if std::env::var_os("LIBCLANG_PATH").is_some() {
        return true;
    }
    Command::new("ldconfig")
        .arg("-p")
        .output()
        .or_else(|_| Command::new("/sbin/ldconfig").arg("-p").output())
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("libclang"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a command, echoing it; fails with its status.
fn run_step(command: &mut Command) -> Result<()> {
    println!("$ {}", crate::tools::shown(command));
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", command.get_program().to_string_lossy()))?;
    if !status.success() {
        bail!("{} failed ({status})", crate::tools::shown(command));
    }
    Ok(())
}

/// Installs libclang with apt-get (root only).
fn install_libclang() -> Result<()> {
    if !is_root() {
        bail!(
            "libclang is missing and --install-deps needs root: run `apt-get install -y \
             {LIBCLANG_PACKAGE}` as root, or set LIBCLANG_PATH to a folder holding libclang.so"
        );
    }
    run_step(Command::new("apt-get").args(["update", "-qq"]))?;
    run_step(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", LIBCLANG_PACKAGE])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Makes sure libclang is there, installing it when asked.
pub fn ensure_libclang(install: bool) -> Result<()> {
    if has_libclang() {
        return Ok(());
    }
    if !install {
        bail!(
            "libclang is missing (`ldconfig -p` lists none): libublk's build runs bindgen, which \
             needs it. Install it with `cargo xtask runtime --install-deps` (root) or \
             `apt-get install {LIBCLANG_PACKAGE}`"
        );
    }
    install_libclang()?;
    if !has_libclang() {
        bail!("apt-get installed {LIBCLANG_PACKAGE} but `ldconfig -p` still lists no libclang");
    }
    Ok(())
}

/// Builds `cowrt --features ublk` in release and returns the binary's path.
pub fn build(install_deps: bool) -> Result<PathBuf> {
    ensure_libclang(install_deps)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run_step(
        Command::new(cargo)
            .args(["build", "--release", "-p", "cowrt", "--features", "ublk"])
            .current_dir(workspace_root()),
    )
    .context("building the runtime with ublk failed")?;
    let binary = target_dir().join("release").join("cowrt");
    if !binary.is_file() {
        bail!("cargo built cowrt but {} is missing", binary.display());
    }
    Ok(binary)
}

/// `cargo xtask runtime`.
pub fn run(args: &RuntimeArgs) -> Result<()> {
    let binary = build(args.install_deps)?;
    println!("\ncowrt (release, with ublk): {}", binary.display());
    println!(
        "  serve a shared store:   {} serve --store COW --origin DEV NAME",
        binary.display()
    );
    println!(
        "  classic snapshots:      {} dm activate --help",
        binary.display()
    );
    Ok(())
}
