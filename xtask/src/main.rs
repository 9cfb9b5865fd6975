//! `cargo xtask`: the workspace's developer tasks.
//!
//! - `gen-store`: build a realistic persistent or legacy store of any size, sparse.

mod gen_store;
mod pattern;
mod prng;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Command line of `cargo xtask`.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    about = "Developer tasks of the cowtools workspace"
)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build a persistent (or legacy) store of any size as sparse image files.
    GenStore(gen_store::GenStoreArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Task::GenStore(args) => gen_store::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}
