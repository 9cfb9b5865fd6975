//! The integration tests of cowengine, in one binary: one module per family
//! of cases. Add modules here; add no new top-level test files.

// The corruption helpers are cowfmt's (its tests/it/corruption_support.rs).
#[path = "../../../cowfmt/tests/it/corruption_support.rs"]
mod corruption_support;

mod corruption_shared;
mod crash_replay;
mod engine_batch;
mod engine_copy_plan;
mod engine_journal;
mod engine_no_alloc;
mod engine_on_blockdev;
mod engine_snapshot_of;
mod engine_threads;
mod layers;
mod offline_reads_engine_stores;
mod shared_big_origin;
mod shared_build;
mod shared_engine_damage;
mod shared_migrate;
mod shared_model;
mod shared_repair;
mod shared_support;
mod shared_walk;
