//! persistent-data: the kernel's metadata library (`drivers/md/persistent-data`)
//! that dm-clone (and thin, cache, era) keep their metadata in. Kind-neutral:
//! no store kind is imported here; a kind built on it (`clone/`) brings its
//! own superblock.
//!
//! - [`block`]: 4 KiB blocks, their checksums (crc32c xor a per-type salt) and
//!   the `blocknr` each block stores of itself;
//! - [`io`]: where blocks are read from and written to (a device, memory),
//!   in runs of consecutive blocks;
//! - [`alloc`]: handing out blocks for new metadata and counting references;
//! - [`btree`]: B-tree nodes, the walker and the builder;
//! - [`array`]: dm-arrays of fixed-size values over a B-tree;
//! - [`bitset`]: dm-bitsets (arrays of le64 words) and their set runs;
//! - [`space_map`]: the metadata space map: its codecs, loading, checking
//!   and writing it in a transaction.

pub mod alloc;
pub mod array;
pub mod bitset;
pub mod block;
pub mod btree;
pub mod io;
pub mod space_map;
