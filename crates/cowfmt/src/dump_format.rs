//! The version every dump carries, whatever the store kind.

/// The version of the dump schema; bumped on any incompatible change.
pub const DUMP_FORMAT_VERSION: u32 = 1;
