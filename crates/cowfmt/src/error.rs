//! Typed errors of the library.

use std::io;
use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A problem decoding or validating on-disk bytes, independent of which device
/// they came from. [`Error::Format`] attaches the device path.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// The first chunk holds magic 0: the kernel would format it on activation.
    #[error("not formatted (magic is 0 at offset 0)")]
    Unformatted,
    /// The first sector holds the output guard's marker: a job writing this
    /// store (or repairing it in place) did not finish.
    #[error("not a usable store: a cowtools job writing it did not finish (marker \"CoWp\" at offset 0); cowcheck tells more")]
    Unfinished,
    /// The magic matches no store kind this crate knows.
    #[error("not a COW store: magic {found:#010x} at offset 0 is neither SnAp ({persistent:#010x}) nor shared ({shared:#010x})")]
    UnknownMagic {
        /// The value found at offset 0.
        found: u32,
        /// The persistent store magic.
        persistent: u32,
        /// The shared store magic.
        shared: u32,
    },
    /// The header's magic is not the one the requested kind needs.
    #[error("magic {found:#010x} at offset 0 is not the {kind} magic {expected:#010x}")]
    WrongMagic {
        /// The kind the caller insisted on.
        kind: &'static str,
        /// The magic found.
        found: u32,
        /// The magic that kind uses.
        expected: u32,
    },
    /// The version field is not one this crate reads.
    #[error("version {found} at offset 8 is not supported (expected {expected})")]
    BadVersion {
        /// The version found.
        found: u32,
        /// The only version supported.
        expected: u32,
    },
    /// A chunk size that the kernel would refuse.
    #[error("chunk size {sectors} sectors {why}")]
    BadChunkSize {
        /// The chunk size, in sectors.
        sectors: u64,
        /// Why it is refused, e.g. "is not a power of two".
        why: &'static str,
    },
    /// More live snapshots than a shared store of this chunk size serves.
    #[error("{snapshots} snapshots are more than a shared store of {chunk_bytes}-byte chunks serves ({max}: the records of one origin chunk must fit one leaf); use a chunk size of 2 KiB or more for up to 64")]
    TooManySnapshots {
        /// The snapshots asked for.
        snapshots: u32,
        /// The chunk size, in bytes.
        chunk_bytes: u64,
        /// The most it serves.
        max: u32,
    },
    /// The device is too small for the structure asked of it.
    #[error("{what}: the device has {device_bytes} bytes, at least {needed_bytes} are needed")]
    TooSmall {
        /// What needed the space.
        what: String,
        /// The device size.
        device_bytes: u64,
        /// The size needed.
        needed_bytes: u64,
    },
    /// A buffer too short to decode the named structure.
    #[error("{what} needs {needed} bytes, only {got} were given")]
    ShortBuffer {
        /// The structure being decoded.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
}

/// Every error the library returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path could not be opened.
    #[error("{path}: cannot open: {source}")]
    Open {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The path is neither a regular file nor a block device.
    #[error("{path}: is {what}, not an image file or block device")]
    NotADevice {
        /// The path.
        path: PathBuf,
        /// What it is instead ("a directory", ...).
        what: &'static str,
    },
    /// A read failed at the OS level.
    #[error("{path}: cannot read {len} bytes at offset {offset}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// Byte offset of the read.
        offset: u64,
        /// Length of the read.
        len: usize,
        /// The OS error.
        source: io::Error,
    },
    /// A read ran past the end of the device.
    #[error("{path}: truncated: {len} bytes at offset {offset} ({what}) lie past the end of the device ({size} bytes)")]
    Truncated {
        /// The path.
        path: PathBuf,
        /// Byte offset of the read.
        offset: u64,
        /// Length of the read.
        len: usize,
        /// The device size in bytes.
        size: u64,
        /// What was being read.
        what: String,
    },
    /// A write failed at the OS level.
    #[error("{path}: cannot write {len} bytes at offset {offset}: {source}")]
    Write {
        /// The path.
        path: PathBuf,
        /// Byte offset of the write.
        offset: u64,
        /// Length of the write.
        len: usize,
        /// The OS error.
        source: io::Error,
    },
    /// Another OS-level failure on a device (size query, sync, resize).
    #[error("{path}: {action}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The bytes on a device do not decode.
    #[error("{path}: {source}")]
    Format {
        /// The path.
        path: PathBuf,
        /// What is wrong with the bytes.
        source: FormatError,
    },
    /// The COW device has no free chunk left for a new exception.
    #[error("{path}: no space left: chunk {next_free} would be past the end of the device ({device_chunks} chunks)")]
    NoSpace {
        /// The path.
        path: PathBuf,
        /// The chunk the next allocation would use.
        next_free: u64,
        /// Chunks on the device.
        device_chunks: u64,
    },
    /// A shared store has too few free chunks for the operation; nothing was changed.
    #[error("{path}: the store is full: {needed} free chunks are needed, {free} are left")]
    StoreFull {
        /// The path of the COW device.
        path: PathBuf,
        /// Free chunks left in the data range.
        free: u64,
        /// Free chunks the operation needs.
        needed: u64,
    },
    /// A metadata block the operation needs does not decode; cowcheck tells more.
    #[error("{path}: chunk {chunk}: {detail}")]
    Corrupt {
        /// The path of the COW device.
        path: PathBuf,
        /// The chunk of the damaged block.
        chunk: u64,
        /// What is wrong with it.
        detail: String,
    },
    /// A shared store's chunk size bounds how many snapshots it serves: the
    /// records of one origin chunk (one per snapshot at most) must fit one leaf.
    /// Nothing was changed.
    #[error("{path}: {detail}: a store of {chunk_bytes}-byte chunks serves at most {max} snapshots (the records of one origin chunk must fit one leaf)")]
    SnapshotLimit {
        /// The path of the COW device.
        path: PathBuf,
        /// Bytes per chunk of the store.
        chunk_bytes: u64,
        /// The most live snapshots the store serves.
        max: u32,
        /// What was refused.
        detail: String,
    },
    /// The store is marked invalid and the operation needs a valid one.
    #[error("{path}: the store is marked invalid (header valid=0)")]
    Invalidated {
        /// The path.
        path: PathBuf,
    },
    /// A shared store's journal superblock is damaged (cowrepair reformats it).
    #[error("{path}: journal superblock (chunk {chunk}): {source}")]
    Journal {
        /// The path of the COW device.
        path: PathBuf,
        /// The superblock's chunk.
        chunk: u64,
        /// What is wrong with it.
        source: crate::shared::journal::JournalError,
    },
    /// Writing the output of a dump or report failed.
    #[error("cannot write the output: {0}")]
    Output(io::Error),
    /// The caller asked for something the store or the format cannot do.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Attaches a device path to a [`FormatError`].
    pub fn format(path: impl Into<PathBuf>, source: FormatError) -> Self {
        Error::Format {
            path: path.into(),
            source,
        }
    }
}
