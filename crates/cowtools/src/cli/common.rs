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

/// Replaces the help lines of several arguments in place, for
/// `#[command(mut_args(helps(&[(ID, "..."), ...])))]`: unlike [`help`] through
/// `mut_arg`, which moves the argument to the end, it keeps the order the
/// arguments were declared in, which the shell completions follow.
pub fn helps(lines: &'static [(&'static str, &'static str)]) -> impl FnMut(Arg) -> Arg {
    move |arg| match lines.iter().find(|(id, _)| arg.get_id().as_str() == *id) {
        Some((_, text)) => arg.help(*text),
        None => arg,
    }
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

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use crate::args::KindArg;
    use crate::cli::{cowdump, cowmigrate, mkcow};

    #[test]
    fn the_groups_parse_where_the_tools_flatten_them() {
        let cli = mkcow::Cli::try_parse_from([
            "mkcow",
            "-f",
            "-q",
            "--kind",
            "shared",
            "--chunk-size",
            "8k",
            "--origin",
            "o.img",
            "t.img",
        ])
        .unwrap();
        assert_eq!(cli.store.target.to_str(), Some("t.img"));
        assert_eq!(cli.store_kind.kind, Some(KindArg::Shared));
        assert_eq!(cli.chunk.chunk_size, Some(16));
        assert_eq!(
            cli.origin.origin.as_deref().and_then(|p| p.to_str()),
            Some("o.img")
        );
        assert!(cli.overwrite.force && cli.verbosity.quiet);
    }

    #[test]
    fn each_tool_keeps_its_own_help_and_rules() {
        let help = mkcow::Cli::command().render_help().to_string();
        assert!(
            help.contains("The image file or block device to format"),
            "{help}"
        );
        assert!(help.contains("Print nothing but the table line"), "{help}");
        let help = cowdump::Cli::command().render_help().to_string();
        assert!(
            help.contains("The image file or block device to read"),
            "{help}"
        );
        assert!(
            help.contains("No warnings and no progress on stderr"),
            "{help}"
        );
        assert!(
            cowdump::Cli::try_parse_from(["cowdump", "-f", "t.img"]).is_err(),
            "cowdump's --force still requires --output"
        );
        assert!(
            mkcow::Cli::try_parse_from(["mkcow", "--chunk-size", "8k", "-i", "d.yaml", "t.img"])
                .is_err(),
            "mkcow's --chunk-size still conflicts with --from-dump"
        );
    }

    #[test]
    fn helps_replaces_help_lines_and_keeps_the_declared_order() {
        let command = cowmigrate::command();
        let ids: Vec<&str> = command
            .get_arguments()
            .map(|arg| arg.get_id().as_str())
            .filter(|id| !matches!(*id, "help" | "version"))
            .collect();
        assert_eq!(
            ids,
            [
                "input",
                "output",
                "chunk_size",
                "region_size",
                "to",
                "merge",
                "origin",
                "kind",
                "snapshot",
                "ids",
                "journal_size",
                "size",
                "force",
                "format",
                "quiet"
            ]
        );
        let help = |id: &str| {
            let arg = command.get_arguments().find(|a| a.get_id() == id);
            arg.and_then(|a| a.get_help()).map(ToString::to_string)
        };
        assert_eq!(
            help("force").as_deref(),
            Some("Overwrite an existing output file, or a device holding data")
        );
        assert_eq!(
            help("quiet").as_deref(),
            Some("No progress bar and no text report; JSON is still printed")
        );
    }
}
