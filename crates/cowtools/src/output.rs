//! Where output goes (`-o FILE` or stdout) and in which format.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use cowfmt::output::TextOutput;

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

/// Where a tool's text goes: a file (through the output guard's
/// [`TextOutput`], put in place only by [`Output::finish`]) or stdout.
pub enum Output {
    /// `-o FILE`.
    File(BufWriter<TextOutput>),
    /// stdout (`-o -` or no `-o`).
    Stdout(BufWriter<io::StdoutLock<'static>>),
}

impl Output {
    /// Flushes the text and, for a file, puts it in place; an output dropped
    /// without this leaves nothing behind.
    pub fn finish(self) -> anyhow::Result<()> {
        match self {
            Output::File(writer) => {
                let text = writer
                    .into_inner()
                    .map_err(|e| anyhow::Error::new(e.into_error()))?;
                Ok(text.commit()?)
            }
            Output::Stdout(mut writer) => Ok(writer.flush()?),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::File(writer) => writer.write(buf),
            Output::Stdout(writer) => writer.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::File(writer) => writer.flush(),
            Output::Stdout(writer) => writer.flush(),
        }
    }
}

/// Opens the output: the file at `path` (refused when it is one of `inputs`
/// or exists, non-empty, without `force`; checked before anything is
/// written; with `force`, `tool` says on stderr what it overwrites), or
/// stdout for `None` or `-`. Buffered.
pub fn open_output(
    tool: &str,
    path: Option<&Path>,
    force: bool,
    inputs: &[&Path],
) -> anyhow::Result<Output> {
    match path {
        Some(path) if path != Path::new("-") => {
            let file = TextOutput::create(path, force, inputs)?;
            say_overwritten(tool, path, file.overwritten());
            Ok(Output::File(BufWriter::with_capacity(1 << 20, file)))
        }
        _ => Ok(Output::Stdout(BufWriter::with_capacity(
            1 << 20,
            io::stdout().lock(),
        ))),
    }
}

/// The name to show for an output path.
pub fn output_name(path: Option<&PathBuf>) -> String {
    path.map_or_else(|| "stdout".to_string(), |p| p.display().to_string())
}

/// Says on stderr what an output `--force` let `tool` overwrite, if anything:
/// `cowrepair: out.img: overwriting a shared store because --force was given`.
pub fn say_overwritten(tool: &str, path: &Path, what: Option<&str>) {
    if let Some(what) = what {
        eprintln!(
            "{tool}: {}: overwriting {what} because --force was given",
            path.display()
        );
    }
}
