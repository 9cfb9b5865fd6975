//! The persistent ("SnAp" v1) exception store of dm-snapshot, also read and
//! written as the `legacy` kind (same bytes, pre-2.6.29 limits).
//!
//! Split as every store kind is: on-disk structs ([`header`], [`record`],
//! [`area`]), layout arithmetic ([`layout`]), reading ([`scan`], [`store`],
//! [`state`]), writing ([`writer`]), checking ([`check`]), the dump model
//! ([`dump`]), in-memory runs ([`runs`]) and table lines ([`table`]). Damaged
//! stores are salvaged by [`repair`] and re-chunked or converted by
//! [`migrate`], both writing through [`rebuild`].

pub mod area;
pub mod check;
pub mod chunk_evidence;
pub mod dump;
pub mod header;
pub mod layout;
pub mod merge;
pub mod migrate;
pub mod open;
pub mod rebuild;
pub mod record;
pub mod repair;
pub mod restore;
pub mod rules;
pub mod runs;
pub mod scan;
pub mod state;
pub mod store;
pub mod stream;
pub mod table;
#[cfg(test)]
pub(crate) mod test_store;
pub mod view;
pub mod writer;

pub use header::Header;
pub use layout::Geometry;
pub use record::ExceptionRecord;
pub use state::{LoadState, Usage};
pub use store::{Metadata, PersistentStore, PlacedRecord};
pub use writer::{CommitOutcome, StoreWriter};

/// Chunk numbers the pre-2.6.29 code could hold (32 bits).
pub const LEGACY_CHUNK_LIMIT: u64 = 1 << 32;
