//! cowrepair: salvages a damaged persistent, legacy or shared COW store into a
//! new, consistent one, and reports every record it dropped and why (for shared
//! stores, also the origin ranges whose leaves could not be read, and what each
//! snapshot kept and lost).

use std::process::ExitCode;

use clap::Parser;
use cowfmt::repair::RepairError;
use cowfmt::store::repair::repair;
use cowtools::cli::cowrepair::Cli;
use cowtools::exit::{self, StoreProblems};
use cowtools::render::repair::{exit_code, render, Stderr};

const TOOL: &str = "cowrepair";

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit::run(TOOL, || run(&cli))
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    match repair(&cli.request(), &mut Stderr::new(cli.verbosity.quiet)) {
        Ok(done) => {
            render(cli, &done.report, done.output.as_deref())?;
            match done.problems {
                Some(problems) => Err(StoreProblems(problems).into()),
                None => Ok(exit_code(done.report.verdict())),
            }
        }
        Err(RepairError::NothingSalvaged { report, message }) => {
            render(cli, &report, None)?;
            Err(StoreProblems(message).into())
        }
        Err(RepairError::Damage(message)) => Err(StoreProblems(message).into()),
        Err(RepairError::Failed(error)) => Err(error.into()),
        Err(RepairError::Io(error)) => Err(error.into()),
    }
}
