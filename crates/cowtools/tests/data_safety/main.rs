//! The data-safety cases: every way a tool could destroy, invent or
//! half-write data, each refused or reported. One module per family of guard.

#[path = "../common/mod.rs"]
mod common;

mod copies_and_messages;
mod guard;
mod probe;
mod repair_truth;
mod restore;
