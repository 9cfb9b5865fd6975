//! The output guard every tool that writes goes through: what may be written
//! ([`open_output`] for stores, [`TextOutput`] for dumps), the one decision
//! whether a target holds data ([`holds_data`]), and the marker an unfinished
//! output carries until its last write ([`Marker`]).
//!
//! The rules: the output is never one of the job's inputs (same device and
//! inode, whatever the path); an existing file or a device holding data is
//! never overwritten without `force`; every check happens before the first
//! write; a new file is created exclusively and removed again if the job does
//! not complete; a store output carries [`Marker::Writing`] until its header
//! is written last, after a sync.

mod alias;
mod contents;
mod marker;
mod target;
mod text;

pub use alias::{refuse_alias, same_file};
pub use contents::{contents, holds_data, Contents};
pub use marker::{fingerprint, InRepair, Marker, Merging, MARKER_BYTES, MARKER_MAGIC};
pub use target::{
    claim_in_place, open_output, OutputClaim, OutputRequest, PreparedOutput, OUTPUT_PROBE_BYTES,
};
pub use text::TextOutput;
