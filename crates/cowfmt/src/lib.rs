//! `cowfmt`: the on-disk formats of device-mapper copy-on-write snapshot stores.
//!
//! The crate decodes, encodes, checks, dumps, repairs and migrates COW stores
//! over image files and block devices. It never prints and never exits: every
//! operation returns a typed [`Error`] or a list of [`Finding`]s, and the
//! binaries in `cowtools` decide how to render them.
//!
//! Modules:
//! - [`device`]: image files and block devices, read and written in chunks;
//! - [`blockdev`]: the I/O trait the shared-store engine runs over, with
//!   [`memdev`] (a device in memory) and [`crashdev`] (a recording device that
//!   builds the images a power cut would leave);
//! - [`persistent`]: the kernel's "SnAp" v1 store (also used for `legacy`);
//! - [`shared`]: the shared snapshot store (one exception store for many
//!   snapshots of one origin) and its journal;
//! - [`bitset`]: bit sets sized by chunk counts, for what checks remember;
//! - [`finding`]: the finding model shared by every checker;
//! - [`job`]: the kind-neutral job layer: the exception stream and the
//!   pipeline every job that writes a store runs (window, dedup, assemble);
//! - [`cross`]: the jobs between kinds (classic <-> shared), the one module
//!   that imports two kinds;
//! - [`dump_format`]: the version every dump carries;
//! - [`in_use`]: whether a device is held open elsewhere (mounted, claimed,
//!   attached to a loop device);
//! - [`kind`]: store kinds and detection by magic;
//! - [`dump_lines`]: writing a dump (YAML or JSON) with its lists streamed;
//! - [`dump_read`]: reading a dump (YAML or JSON) as a stream of records;
//! - [`origin_range`]: ranges of origin chunks, as repairs name what was lost;
//! - [`output`]: the output guard every writing job goes through;
//! - [`overlay`]: chunks a device reads in place of its own (a journal
//!   replayed without writing);
//! - [`pdata`]: persistent-data, the kernel's metadata library dm-clone is
//!   written in: checksummed blocks, B-trees, arrays, bitsets, space maps;
//! - [`probe`]: every signature a device holds (libblkid and our own kinds);
//! - [`store`]: the kind facade: detection from a whole first block, and
//!   each job's dispatch on the kind, written once;
//! - [`snapshot_image`]: one snapshot's logical image, written out or merged
//!   back into its origin;
//! - [`progress`]: the callback long jobs report how far they got through;
//! - [`repair`]: the kind-neutral parts of repair (request, events, outcome,
//!   the in-place repair's verified backup);
//! - [`sparse`]: holes of image files, and copies that keep them;
//! - [`units`]: size parsing (`4k`, `64M`, `8s`).

pub mod bitset;
pub mod blockdev;
pub mod clone;
pub mod crashdev;
pub mod cross;
pub mod device;
pub mod dump_format;
pub mod dump_lines;
pub mod dump_read;
pub mod error;
pub mod finding;
pub mod in_use;
pub mod job;
pub mod kind;
pub mod memdev;
pub mod origin_range;
pub mod output;
pub mod overlay;
pub mod pdata;
pub mod persistent;
pub mod probe;
pub mod progress;
pub mod repair;
pub mod shared;
pub mod snapshot_image;
pub mod sparse;
pub mod store;
#[cfg(test)]
mod test_images;
pub mod units;

pub use blockdev::BlockDev;
pub use crashdev::{CrashDev, CrashEvent, CrashLog};
pub use device::{Access, Device};
pub use error::{Error, FormatError, Result};
pub use finding::{Finding, FindingCode, Location, Severity};
pub use kind::StoreKind;
pub use memdev::MemDev;

/// Bytes in a sector, the unit of every chunk size on disk.
pub const SECTOR_BYTES: u64 = 512;
