//! The integration tests of cowrt, in one binary: one module per family of
//! cases. Add modules here; add no new top-level test files.

mod cli;
mod dm_clone;
mod output;
mod serve_cli;
