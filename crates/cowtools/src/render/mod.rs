//! Rendering of job reports (text, tables, JSON, YAML), one file per job; the
//! binaries call these after the one library call that did the job.
//!
//! - [`check`]: cowcheck's report of any kind.

pub mod check;
