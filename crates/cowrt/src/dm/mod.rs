//! Classic stores (persistent, legacy, transient) served by the kernel's own
//! dm-snapshot, and clones served by dm-clone:
//! - [`table`]: typed table lines, printed and parsed;
//! - [`status`]: parsers for the status lines the kernel prints;
//! - [`runner`]: the commands run (`dmsetup`, `losetup`), for real or printed
//!   by a dry run;
//! - [`device`], [`error`]: what every kind shares (names, loop devices,
//!   queries, removal; the errors);
//! - [`precheck`]: the classic store check that comes before any activation;
//! - [`classic`]: activate, status, merge and deactivate a classic snapshot,
//!   as sequences of commands;
//! - [`clone`]: activate, status, hydration messages and deactivate a clone.

pub mod classic;
pub mod clone;
pub mod device;
pub mod error;
#[cfg(test)]
mod fake;
pub mod precheck;
pub mod runner;
pub mod status;
pub mod table;
mod words;
