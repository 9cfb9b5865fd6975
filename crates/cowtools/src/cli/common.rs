//! Argument groups several tools share, each flattened into a tool's `Cli`
//! with `#[command(flatten)]`.
//!
//! A group fixes an argument's name, spelling, value name and parser once.
//! Its doc comment is a neutral help line; a tool whose help says more
//! replaces it with [`help`] in a `#[command(mut_arg(...))]` attribute (without the final
//! period, which clap drops from doc comments), so
//! `--help` keeps each tool's own wording. Every group skips clap's implicit
//! argument group, so usage lines and conflicts stay as the tool declares them.

use std::path::PathBuf;

use clap::{Arg, Args};

use crate::args::{self, KindArg};

/// Replaces an argument's help line, for `#[command(mut_arg(ID, help("...")))]`.
pub fn help(text: &'static str) -> impl FnOnce(Arg) -> Arg {
    move |arg| arg.help(text)
}

/// The store a tool reads or writes: its one positional argument, `TARGET`.
#[derive(Debug, Clone, Args)]
#[group(skip)]
pub struct Target {
    /// The image file or block device.
    #[arg(value_name = "TARGET")]
    pub target: PathBuf,
}

/// `--kind`: the store kind a tool insists on (persistent, legacy, shared).
#[derive(Debug, Clone, Copy, Args)]
#[group(skip)]
pub struct Kind {
    /// Insist on a store kind.
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
}

/// `--chunk-size SIZE`: a power of two of at least 512 bytes, in sectors.
#[derive(Debug, Clone, Copy, Args)]
#[group(skip)]
pub struct ChunkSize {
    /// Chunk size (4k, 64k, 8s...).
    #[arg(long, value_name = "SIZE", value_parser = args::parse_chunk_size)]
    pub chunk_size: Option<u32>,
}

/// `--origin DEV`: the origin device of the store.
#[derive(Debug, Clone, Args)]
#[group(skip)]
pub struct Origin {
    /// The origin device.
    #[arg(long, value_name = "DEV")]
    pub origin: Option<PathBuf>,
}

/// `-f/--force`: overwrite what the tool would otherwise refuse to.
#[derive(Debug, Clone, Copy, Args)]
#[group(skip)]
pub struct Force {
    /// Overwrite an existing output.
    #[arg(short, long)]
    pub force: bool,
}

/// `-q/--quiet`: less on stderr (what exactly, each tool's help says).
#[derive(Debug, Clone, Copy, Args)]
#[group(skip)]
pub struct Quiet {
    /// Print less.
    #[arg(short, long)]
    pub quiet: bool,
}
