//! The multisnapshot control plane of a shared store, in seed 002's words:
//! [`message`] parses and prints the requests (`create`, `create_subsnap ID`,
//! `delete ID`, `attach ID`, `detach ID`, `status`), [`status`] is the status
//! line and its JSON form, [`usage`] counts what the committed store holds,
//! and [`controller`] applies a request to an engine.

pub mod controller;
pub mod message;
pub mod status;
pub mod usage;

pub use controller::{ControlError, Controller, Reply};
pub use message::{Message, MessageError};
pub use status::{JournalState, SnapshotUsage, Status};
