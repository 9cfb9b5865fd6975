//! Rendering of the jobs' reports (text, tables, JSON), one module per job.

pub mod migrate;
pub mod repair;
