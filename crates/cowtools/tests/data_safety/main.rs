//! The integration tests of cowtools, in one binary: the data-safety cases
//! (every way a tool could destroy, invent or half-write data, each refused or
//! reported; one module per family of guard) and each tool's command-line
//! cases, one module per former test file. Add modules here; add no new
//! top-level test files.

#[path = "../common/mod.rs"]
mod common;

mod clone_dump;
mod clone_matrix;
mod clone_migrate;
mod clone_repair;
mod clone_repair_matrix;
mod contract;
mod copies_and_messages;
mod cowcheck;
mod cowdump;
mod cowmigrate;
mod cowrepair;
mod dist;
mod expected_outputs;
mod export_merge;
mod guard;
mod journal;
mod mkcow;
mod mkcow_clone;
mod mkcow_shared;
mod probe;
mod repair_truth;
mod restore;
