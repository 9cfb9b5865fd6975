//! The workspace's stated minimum Rust version (`rust-version` in Cargo.toml)
//! must be at least what every locked dependency asks for. Checked by a test
//! that reads `cargo metadata --locked`, so CI needs no other toolchain.

use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// A Rust version as `rust-version` writes it (`1.88`, `1.85.0`).
fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.split('.').map(str::parse::<u64>);
    let major = parts.next()?.ok()?;
    let minor = parts.next().unwrap_or(Ok(0)).ok()?;
    let patch = parts.next().unwrap_or(Ok(0)).ok()?;
    Some((major, minor, patch))
}

/// The dependencies of `metadata` (the JSON of `cargo metadata`) whose
/// `rust_version` is above the workspace's, as `name version (needs X)`; an
/// error when a workspace member states no `rust-version`.
pub fn dependencies_above_msrv(metadata: &Value) -> Result<Vec<String>> {
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .context("cargo metadata has no workspace_members")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let packages = metadata["packages"]
        .as_array()
        .context("cargo metadata has no packages")?;
    let version_of = |package: &Value| package["rust_version"].as_str().and_then(parse_version);
    let mut msrv = None;
    for package in packages {
        if members.contains(&package["id"].as_str().unwrap_or_default()) {
            let Some(version) = version_of(package) else {
                bail!(
                    "workspace member {} states no rust-version",
                    package["name"]
                );
            };
            msrv = msrv.max(Some(version));
        }
    }
    let msrv = msrv.context("no workspace member found in cargo metadata")?;
    Ok(packages
        .iter()
        .filter(|p| !members.contains(&p["id"].as_str().unwrap_or_default()))
        .filter(|p| version_of(p).is_some_and(|v| v > msrv))
        .map(|p| {
            format!(
                "{} {} (needs {})",
                p["name"].as_str().unwrap_or("?"),
                p["version"].as_str().unwrap_or("?"),
                p["rust_version"].as_str().unwrap_or("?")
            )
        })
        .collect())
}

/// Runs `cargo metadata --format-version 1 --locked` on the workspace.
pub fn locked_metadata() -> Result<Value> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    serde_json::from_slice(&output.stdout).context("cargo metadata printed no JSON")
}

/// `cargo xtask msrv`: fails naming every locked dependency that needs a
/// newer Rust than the workspace states.
pub fn run() -> Result<()> {
    let above = dependencies_above_msrv(&locked_metadata()?)?;
    if !above.is_empty() {
        bail!(
            "raise rust-version in Cargo.toml (and README.md): {}",
            above.join(", ")
        );
    }
    println!("msrv: every locked dependency builds with the workspace's rust-version");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_locked_dependency_builds_with_the_stated_rust_version() {
        let metadata = locked_metadata().unwrap();
        let above = dependencies_above_msrv(&metadata).unwrap();
        assert!(
            above.is_empty(),
            "raise rust-version in Cargo.toml (and README.md): {}",
            above.join(", ")
        );
    }

    #[test]
    fn a_dependency_above_the_workspace_version_is_named() {
        let metadata = json!({
            "workspace_members": ["ws"],
            "packages": [
                {"id": "ws", "name": "cowfmt", "version": "0.1.0", "rust_version": "1.85"},
                {"id": "a", "name": "proptest", "version": "1.12.0", "rust_version": "1.88"},
                {"id": "b", "name": "libc", "version": "0.2.0", "rust_version": "1.63.0"},
                {"id": "c", "name": "old", "version": "1.0.0", "rust_version": null}
            ]
        });
        assert_eq!(
            dependencies_above_msrv(&metadata).unwrap(),
            vec!["proptest 1.12.0 (needs 1.88)".to_string()]
        );
        assert_eq!(parse_version("1.85.0"), parse_version("1.85"));
        assert!(parse_version("1.88") > parse_version("1.85.1"));
    }
}
