//! `cargo xtask`: the workspace's developer tasks.
//!
//! - `gen-store`: build a realistic persistent, legacy or shared store of any size, sparse;
//! - `demo`: the main job on file-backed images, with the real release binaries;
//! - `dist`: man pages and shell completions of the tools, generated from their clap definitions;
//! - `bench`: throughput and peak memory of the tools on large stores, restores included;
//! - `engine-seq`: the engine's cost per chunk of large sequential origin writes;
//! - `crash-soak`: the engine's crash replay proof over many seeds and every crash point;
//! - `vm-test`: classic stores through a shared store and back, and dm-clone metadata our tools
//!   write, checked by a real kernel in qemu;
//! - `runtime`: the live runtime `cowrt` with ublk, in release;
//! - `vm-runtime`: `cowrt serve` and `cowrt dm` in a real kernel in qemu;
//! - `bench-nway`: a shared store vs n classic snapshots in that kernel;
//! - `same-output`: every tool's output on many inputs, base revision vs the current tree.

mod bench;
mod bench_clone;
mod bench_nway;
mod cold;
mod crash_soak;
mod damage;
mod demo;
mod demo_migrate;
mod demo_shared;
mod dist;
mod engine_bench;
mod engine_cell;
mod engine_seq;
mod gen_shared;
mod gen_store;
mod measure;
mod msrv;
mod pattern;
mod prng;
mod restore_bench;
mod runtime;
mod same_output;
mod tools;
mod vm_clone_fixtures;
mod vm_runtime;
mod vm_test;

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
    /// Build a persistent, legacy or shared store of any size as sparse image files.
    GenStore(gen_store::GenStoreArgs),
    /// Build the tools and run them on a file-backed origin and COW store.
    Demo(demo::DemoArgs),
    /// Write the man pages and bash/zsh/fish completions of the tools (into dist/).
    Dist(dist::DistArgs),
    /// Measure cowcheck, cowdump, cowrepair and mkcow --from-dump on large generated stores.
    Bench(bench::BenchArgs),
    /// Round-trip kernel-written snapshot stores through a shared store, and
    /// dm-clone metadata through mkcow, cowcheck, cowdump and cowrepair;
    /// check both with a real Linux kernel under qemu.
    VmTest(vm_test::VmTestArgs),
    /// Let the real kernel (qemu) format and hydrate dm-clone metadata for
    /// several geometries and write them as testdata/kernel-clone/.
    VmCloneFixtures(vm_clone_fixtures::VmCloneFixturesArgs),
    /// Build the live runtime cowrt with ublk (release) and say where it is.
    Runtime(runtime::RuntimeArgs),
    /// Run cowrt serve (shared store over ublk) and cowrt dm (classic
    /// snapshots) in a real Linux kernel under qemu, with kill -9 and recovery.
    VmRuntime(vm_runtime::VmRuntimeArgs),
    /// The n-way benchmark in one VM boot: one shared store vs n classic
    /// snapshots, n = 1..16; writes the table to docs/bench.md.
    BenchNway(bench_nway::BenchNwayArgs),
    /// Replay the engine's crash images over many seeds: every crash point
    /// of every scenario, checked against the model.
    CrashSoak(crash_soak::CrashSoakArgs),
    /// Check that no locked dependency needs a newer Rust than rust-version.
    Msrv,
    /// CPU time per chunk and device calls per request of the engine's origin
    /// writes in large sequential requests (`dd bs=1M` through `cowrt serve`).
    EngineSeq(engine_seq::SeqArgs),
    /// Run the five tools of a base revision and of this tree on golden images,
    /// generated, damaged and bad inputs; fail on any difference in stdout,
    /// stderr, exit code or files written.
    SameOutput(same_output::SameOutputArgs),
    /// One measurement of the engine bench, in a process of its own (run by `bench`).
    #[command(hide = true)]
    EngineCell(engine_cell::CellArgs),
    /// Write dm-clone metadata with half the regions hydrated in runs (run by `bench`).
    #[command(hide = true)]
    GenClone(bench_clone::GenCloneArgs),
    /// Check dm-clone metadata through cowfmt's library checker (run by `bench`).
    #[command(hide = true)]
    CheckClone(bench_clone::CheckCloneArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Task::GenStore(args) => gen_store::run(args),
        Task::Demo(args) => demo::run(args),
        Task::Dist(args) => dist::run(args),
        Task::Bench(args) => bench::run(args),
        Task::GenClone(args) => bench_clone::gen_clone(args),
        Task::CheckClone(args) => bench_clone::check_clone(args),
        Task::VmTest(args) => vm_test::run(args),
        Task::VmCloneFixtures(args) => vm_clone_fixtures::run(args),
        Task::Runtime(args) => runtime::run(args),
        Task::VmRuntime(args) => vm_runtime::run(args),
        Task::BenchNway(args) => bench_nway::run(args),
        Task::CrashSoak(args) => crash_soak::run(args),
        Task::Msrv => msrv::run(),
        Task::EngineSeq(args) => engine_seq::run(args),
        Task::EngineCell(args) => engine_cell::run(args),
        Task::SameOutput(args) => same_output::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}
