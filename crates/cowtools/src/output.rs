//! Where output goes (`-o FILE` or stdout) and in which format.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::ValueEnum;

/// Machine and human output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Plain text for people.
    Text,
    /// Tables for people.
    Table,
    /// JSON, stable and versioned (`format_version`).
    Json,
    /// YAML, the same document as JSON.
    Yaml,
}

/// Opens the output: the file at `path`, or stdout for `None` or `-`. Buffered.
pub fn open_output(path: Option<&Path>) -> anyhow::Result<Box<dyn Write>> {
    match path {
        Some(path) if path != Path::new("-") => {
            let file = File::create(path)
                .with_context(|| format!("{}: cannot create the output file", path.display()))?;
            Ok(Box::new(BufWriter::with_capacity(1 << 20, file)))
        }
        _ => Ok(Box::new(BufWriter::with_capacity(
            1 << 20,
            io::stdout().lock(),
        ))),
    }
}

/// The name to show for an output path.
pub fn output_name(path: Option<&PathBuf>) -> String {
    path.map_or_else(|| "stdout".to_string(), |p| p.display().to_string())
}
