//! `cowfmt`: the on-disk formats of device-mapper copy-on-write snapshot stores.
//!
//! The crate decodes, encodes, checks, dumps, repairs and migrates COW stores
//! over image files and block devices. It never prints and never exits: every
//! operation returns a typed [`Error`] or a list of [`Finding`]s, and the
//! binaries in `cowtools` decide how to render them.
//!
//! Modules:
//! - [`device`]: image files and block devices, read and written in chunks;
//! - [`persistent`]: the kernel's "SnAp" v1 store (also used for `legacy`);
//! - [`finding`]: the finding model shared by every checker;
//! - [`kind`]: store kinds and detection by magic;
//! - [`dump_read`]: reading a dump (YAML or JSON) as a stream of records;
//! - [`units`]: size parsing (`4k`, `64M`, `8s`).

pub mod bitset;
pub mod device;
pub mod dump_read;
pub mod error;
pub mod finding;
pub mod kind;
pub mod persistent;
pub mod shared;
pub mod units;

pub use device::{Access, Device};
pub use error::{Error, FormatError, Result};
pub use finding::{Finding, FindingCode, Location, Severity};
pub use kind::StoreKind;

/// Bytes in a sector, the unit of every chunk size on disk.
pub const SECTOR_BYTES: u64 = 512;
