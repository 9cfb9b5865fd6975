//! Shared plumbing of the five cowtools binaries: exit codes and error
//! rendering ([`exit`]), common arguments ([`args`]), output destinations and
//! formats ([`output`]), the command lines ([`cli`]), progress bars
//! ([`progress`]), reports and listings for people ([`render`]), hex dumps ([`hexdump`]), opening a store of the right kind
//! ([`open`]), what a device already holds before it is written over
//! ([`signatures`]) and a snapshot's data written out or merged back
//! ([`snapshot_data`]).
//!
//! Each binary in `src/bin/` parses its arguments with clap, calls `cowfmt`, and
//! renders what it gets back with these helpers; none of them holds format logic.

pub mod args;
pub mod cli;
pub mod exit;
pub mod hexdump;
pub mod open;
pub mod output;
pub mod progress;
pub mod render;
pub mod signatures;
pub mod snapshot_data;
