//! Classic stores (persistent, legacy, transient) served by the kernel's own
//! dm-snapshot, and dm-clone's status:
//! - [`table`]: typed table lines, printed and parsed;
//! - [`status`]: parsers for the status lines the kernel prints;
//! - [`runner`]: the commands run (`dmsetup`, `losetup`), for real or printed
//!   by a dry run;
//! - [`precheck`]: the store check that comes before any activation;
//! - [`classic`]: activate, status, merge and deactivate, as sequences of
//!   commands.

pub mod classic;
pub mod device;
pub mod error;
#[cfg(test)]
mod fake;
pub mod precheck;
pub mod runner;
pub mod status;
pub mod table;
mod words;
