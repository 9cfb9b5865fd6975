//! The integration tests of cowfmt, in one binary: one module per family of
//! cases. Add modules here; add no new top-level test files.

mod corruption_persistent;
mod corruption_support;
mod golden;
mod kernel_clone;
mod module_arrows;
mod persistent_check;
mod persistent_roundtrip;
mod repair_migrate;
mod shared_check;
mod shared_dump;
