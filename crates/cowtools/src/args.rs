//! Argument types shared by the tools: sizes, chunk sizes, store kinds.

use clap::ValueEnum;
use cowfmt::StoreKind;

/// Parses a size argument (`4k`, `64M`, `1G`, `8s`) into bytes, for clap.
pub fn parse_size(text: &str) -> Result<u64, String> {
    cowfmt::units::parse_size(text)
}

/// Parses a size in bytes that must be whole 512-byte sectors into
/// sectors, for clap.
pub fn parse_sectors(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text)?;
    if bytes % cowfmt::SECTOR_BYTES != 0 {
        return Err(format!("{text} is not a whole number of 512-byte sectors"));
    }
    Ok(bytes / cowfmt::SECTOR_BYTES)
}

/// Parses a chunk size argument (a power of two, at least 512 bytes) into
/// sectors, for clap.
pub fn parse_chunk_size(text: &str) -> Result<u32, String> {
    cowfmt::units::parse_chunk_size(text)
}

/// The `--kind` values every tool accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// The kernel's "SnAp" v1 store (dm-snapshot `P`).
    Persistent,
    /// The same bytes, held to the pre-2.6.29 limits.
    Legacy,
    /// The multi-snapshot shared store.
    Shared,
    /// dm-clone metadata (the hydration bitset of a dm-clone target).
    Clone,
}

impl From<KindArg> for StoreKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Persistent => StoreKind::Persistent,
            KindArg::Legacy => StoreKind::Legacy,
            KindArg::Shared => StoreKind::Shared,
            KindArg::Clone => StoreKind::Clone,
        }
    }
}
