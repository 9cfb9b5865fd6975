//! Comparing the two outcomes of a case and showing how they differ: a
//! unified diff (`diff -u`) for text, the first differing byte otherwise.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use super::cases::Case;
use super::run::{Entry, Outcome};

/// The tally of a run and the differing cases, printed as they are found.
#[derive(Debug, Default)]
pub struct Summary {
    compared: usize,
    differing: Vec<String>,
    exit_codes: BTreeMap<Option<i32>, usize>,
}

impl Summary {
    /// Compares the outcome of `case` before (base) and after (current tree);
    /// prints the differences; keeps the differing texts under `diffs`.
    pub fn add(
        &mut self,
        case: &Case,
        before: &Outcome,
        after: &Outcome,
        diffs: &Path,
    ) -> Result<()> {
        self.compared += 1;
        *self.exit_codes.entry(before.code).or_default() += 1;
        if before == after {
            return Ok(());
        }
        let index = self.differing.len() + 1;
        let name = case.name();
        println!("\nDIFFERS: {name}");
        let dir = diffs.join(format!("{index:03}"));
        fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        fs::write(dir.join("command"), format!("{name}\n"))?;
        if before.code != after.code {
            println!("  exit code: base {:?}, new {:?}", before.code, after.code);
        }
        show(&dir, "stdout", &before.stdout, &after.stdout)?;
        show(&dir, "stderr", &before.stderr, &after.stderr)?;
        let paths: std::collections::BTreeSet<&PathBuf> =
            before.files.keys().chain(after.files.keys()).collect();
        for path in paths {
            let label = format!("file {}", path.display());
            match (before.files.get(path), after.files.get(path)) {
                (Some(a), Some(b)) if a == b => {}
                (None, Some(_)) => println!("  {label}: only the new tools leave it"),
                (Some(_), None) => println!("  {label}: only the base tools leave it"),
                (
                    Some(Entry::File { mode: ma, bytes: a }),
                    Some(Entry::File { mode: mb, bytes: b }),
                ) => {
                    if ma != mb {
                        println!("  {label}: mode base {ma:o}, new {mb:o}");
                    }
                    let flat = path.to_string_lossy().replace('/', "_");
                    show(&dir, &format!("file-{flat}"), a, b)?;
                }
                (a, b) => println!("  {label}: base {a:?}, new {b:?}", a = kind(a), b = kind(b)),
            }
        }
        self.differing.push(name);
        Ok(())
    }

    /// How many cases differ.
    pub fn differing(&self) -> usize {
        self.differing.len()
    }

    /// Prints the tally and the list of differing cases.
    pub fn print(&self) {
        let codes: Vec<String> = self
            .exit_codes
            .iter()
            .map(|(code, n)| match code {
                Some(code) => format!("exit {code}: {n}"),
                None => format!("killed: {n}"),
            })
            .collect();
        println!(
            "\nsame-output: {} cases compared ({}), {} identical, {} differ",
            self.compared,
            codes.join(", "),
            self.compared - self.differing.len(),
            self.differing.len()
        );
        for name in &self.differing {
            println!("  differs: {name}");
        }
    }
}

fn kind(entry: Option<&Entry>) -> &'static str {
    match entry {
        Some(Entry::File { .. }) => "file",
        Some(Entry::Dir) => "directory",
        Some(Entry::Link(_)) => "symlink",
        None => "nothing",
    }
}

/// Prints how `before` and `after` differ (nothing if they are equal).
fn show(dir: &Path, what: &str, before: &[u8], after: &[u8]) -> Result<()> {
    if before == after {
        return Ok(());
    }
    let texts = (std::str::from_utf8(before), std::str::from_utf8(after));
    if let (Ok(_), Ok(_)) = texts {
        let (a, b) = (
            dir.join(format!("{what}.base")),
            dir.join(format!("{what}.new")),
        );
        fs::write(&a, before)?;
        fs::write(&b, after)?;
        if let Some(diff) = unified_diff(&a, &b, what) {
            println!("  {what}:");
            for line in diff.lines().take(200) {
                println!("    {line}");
            }
            return Ok(());
        }
    }
    let first = before
        .iter()
        .zip(after)
        .position(|(a, b)| a != b)
        .unwrap_or(before.len().min(after.len()));
    println!(
        "  {what}: {} bytes (base) vs {} bytes (new); first difference at byte {first}",
        before.len(),
        after.len()
    );
    Ok(())
}

/// `diff -u` of two files, or `None` if diff cannot run.
fn unified_diff(base: &Path, new: &Path, what: &str) -> Option<String> {
    let output = Command::new("diff")
        .arg("-u")
        .arg(format!("--label=base {what}"))
        .arg(format!("--label=new {what}"))
        .arg(base)
        .arg(new)
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}
