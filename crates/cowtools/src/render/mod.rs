//! Rendering of the jobs' reports (text, tables, JSON), one file per job.

pub mod repair;
