//! `cargo xtask dist`: the man pages and shell completions of the five tools,
//! generated from their clap definitions into a folder ready to package.
//!
//! Layout of the folder (`dist/` at the workspace root unless `--out`):
//! `man/man1/TOOL.1`, `completions/bash/TOOL`, `completions/zsh/_TOOL`,
//! `completions/fish/TOOL.fish`. The checked-in `dist/` is kept current by the
//! test at the end of this file.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use clap_complete::Shell;

use crate::tools::workspace_root;

/// Arguments of `cargo xtask dist`.
#[derive(Debug, Args)]
pub struct DistArgs {
    /// The folder to write into [default: dist/ at the workspace root].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Write nothing; fail when the folder is not what would be generated.
    #[arg(long)]
    check: bool,
}

/// The shells completions are written for, with the file name each one's
/// completion loader looks for.
const SHELLS: [(Shell, &str); 3] = [
    (Shell::Bash, "bash"),
    (Shell::Zsh, "zsh"),
    (Shell::Fish, "fish"),
];

/// Writes the man pages and completions into `--out` (or `dist/`), or with
/// `--check` only compares them.
pub fn run(args: &DistArgs) -> Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| workspace_root().join("dist"));
    let files = generate()?;
    if args.check {
        let stale = stale_files(&out, &files)?;
        if !stale.is_empty() {
            bail!(
                "{} is stale ({}): run cargo xtask dist",
                out.display(),
                stale.join("; ")
            );
        }
        println!("{} is current", out.display());
        return Ok(());
    }
    write_tree(&out, &files)?;
    println!(
        "wrote {} files (man1 pages, bash/zsh/fish completions) to {}",
        files.len(),
        out.display()
    );
    Ok(())
}

/// Every generated file, by its path relative to the output folder.
pub fn generate() -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for (name, command) in cowtools::cli::commands() {
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone())
            .render(&mut page)
            .with_context(|| format!("cannot render the man page of {name}"))?;
        files.insert(Path::new("man/man1").join(format!("{name}.1")), page);
        for (shell, folder) in SHELLS {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command.clone(), name, &mut script);
            files.insert(
                Path::new("completions")
                    .join(folder)
                    .join(completion_file(shell, name)),
                script,
            );
        }
    }
    Ok(files)
}

/// The file name each shell's completion loader expects for tool `name`.
fn completion_file(shell: Shell, name: &str) -> String {
    match shell {
        Shell::Zsh => format!("_{name}"),
        Shell::Fish => format!("{name}.fish"),
        _ => name.to_string(),
    }
}

/// Writes `files` under `out`, creating folders as needed.
fn write_tree(out: &Path, files: &BTreeMap<PathBuf, Vec<u8>>) -> Result<()> {
    for (relative, bytes) in files {
        let path = out.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// What differs between the `expected` files and the folder `dir`: files
/// missing, different, or there but not generated. Empty when current.
pub fn stale_files(dir: &Path, expected: &BTreeMap<PathBuf, Vec<u8>>) -> Result<Vec<String>> {
    let mut stale = Vec::new();
    for (relative, bytes) in expected {
        match fs::read(dir.join(relative)) {
            Ok(found) if &found == bytes => {}
            Ok(_) => stale.push(format!("{} differs", relative.display())),
            Err(_) => stale.push(format!("{} is missing", relative.display())),
        }
    }
    for found in files_under(dir, Path::new(""))? {
        if !expected.contains_key(&found) {
            stale.push(format!("{} is not generated any more", found.display()));
        }
    }
    Ok(stale)
}

/// The files under `dir/relative`, as paths relative to `dir`.
fn files_under(dir: &Path, relative: &Path) -> Result<Vec<PathBuf>> {
    let folder = dir.join(relative);
    if !folder.is_dir() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in
        fs::read_dir(&folder).with_context(|| format!("cannot list {}", folder.display()))?
    {
        let entry = entry?;
        let path = relative.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            found.extend(files_under(dir, &path)?);
        } else {
            found.push(path);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_dist_is_current() {
        let stale = stale_files(&workspace_root().join("dist"), &generate().unwrap()).unwrap();
        assert!(
            stale.is_empty(),
            "dist/ is stale ({}): run cargo xtask dist",
            stale.join("; ")
        );
    }

    #[test]
    fn every_tool_has_a_man_page_and_three_completions() {
        let files = generate().unwrap();
        for tool in ["mkcow", "cowdump", "cowcheck", "cowrepair", "cowmigrate"] {
            let page =
                String::from_utf8(files[&Path::new("man/man1").join(format!("{tool}.1"))].clone())
                    .unwrap();
            assert!(page.contains(".TH"), "{tool}.1 is not a man page");
            assert!(page.contains(tool), "{tool}.1 does not name {tool}");
            for path in [
                format!("completions/bash/{tool}"),
                format!("completions/zsh/_{tool}"),
                format!("completions/fish/{tool}.fish"),
            ] {
                let script = String::from_utf8(files[Path::new(&path)].clone()).unwrap();
                assert!(script.contains("--help"), "{path} completes no option");
            }
        }
        assert_eq!(files.len(), 5 * 4);
    }

    #[test]
    fn a_changed_or_extra_file_makes_the_folder_stale() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate().unwrap();
        write_tree(dir.path(), &files).unwrap();
        assert!(stale_files(dir.path(), &files).unwrap().is_empty());
        fs::write(dir.path().join("man/man1/mkcow.1"), "old").unwrap();
        fs::write(dir.path().join("completions/bash/gone"), "old").unwrap();
        let stale = stale_files(dir.path(), &files).unwrap();
        assert_eq!(
            stale,
            [
                "man/man1/mkcow.1 differs",
                "completions/bash/gone is not generated any more"
            ]
        );
    }
}
