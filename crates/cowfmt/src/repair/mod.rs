//! Kind-neutral machinery of repair, shared by the persistent and shared
//! salvage jobs: what the caller asks ([`RepairRequest`]), what a job tells it
//! as it goes ([`RepairEvents`]), how it ends ([`Finished`], [`RepairError`]),
//! the steps every kind's driver takes alike ([`Salvaged`]),
//! the report parts both kinds share ([`report`]), and the in-place
//! repair's verified backup ([`in_place`], [`backup`]) and the opening of
//! what it writes ([`target`]).
//!
//! Each kind's pipeline lives in its own module (`persistent::repair`,
//! `shared::repair`); the facade `store::repair` picks the kind.

pub mod backup;
mod driver;
mod events;
pub mod in_place;
mod outcome;
pub mod report;
mod request;
pub mod target;

pub use backup::{copy_device, verify_copy};
pub use driver::{refuse_if_nothing_salvaged, write_salvage, Salvaged};
pub use events::{in_phase, Notice, Phase, RepairEvents};
pub(crate) use outcome::refused;
pub use outcome::{remaining_problems, Finished, RepairError, Verdict};
pub use request::RepairRequest;
