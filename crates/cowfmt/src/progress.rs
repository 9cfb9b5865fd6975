//! How a long job tells its caller how far it got. The library never prints:
//! a job takes a [`Progress`] callback and calls it as it advances; the
//! binaries draw it (cowtools renders it as a progress bar on a terminal).
//!
//! Kind-neutral: persistent and shared jobs take the same callback. The
//! repair and migrate jobs already take `&mut dyn FnMut(u64, u64)`, which is
//! the same type.

/// Called with `(done, total)` as a job advances, in the job's own steps
/// (areas, tree blocks, chunks, bytes: each job's doc says which). `total`
/// is 0 while the job cannot know it.
pub type Progress<'a> = dyn FnMut(u64, u64) + 'a;

/// A [`Progress`] that goes nowhere, for callers that show none.
pub fn silent(_done: u64, _total: u64) {}
