//! `cowrt`: the live runtime of COW snapshot stores.
//!
//! This crate holds the runtime's logic, none of which needs a kernel, root or
//! libublk (docs/cowrt.md):
//! - [`target`]: the block-target trait every front end serves (READ, WRITE,
//!   FLUSH, FUA) and the request model a transport hands it;
//! - [`front`]: the origin and snapshot targets of a shared store over
//!   [`cowengine::Engine`];
//! - [`control`]: the multisnapshot control plane in seed 002's words
//!   (messages, the status line and its JSON form) and what each message does
//!   to an engine;
//! - [`serve`]: the shared-store daemon (devices on a host, the control
//!   socket, periodic commit, stop) and its clients, with no transport of its
//!   own; `ublk` (feature `ublk`) is the host that serves `/dev/ublkbN`;
//! - [`log`]: the sink the program gives for the library's own messages (the
//!   library never prints);
//! - [`damage`]: cowcheck's verdict in one sentence, for refusals;
//! - [`dm`]: classic stores through device-mapper: typed table lines, status
//!   parsers, the command runner (real or dry run) and activation, merge and
//!   deactivation.
//!
//! It stands on `cowengine` and `cowfmt`; nothing depends on it
//! (docs/architecture.md).

pub mod control;
pub mod damage;
pub mod dm;
pub mod front;
pub mod log;
pub mod serve;
mod sys;
pub mod target;
#[cfg(feature = "ublk")]
pub mod ublk;

#[cfg(test)]
mod testdev;
