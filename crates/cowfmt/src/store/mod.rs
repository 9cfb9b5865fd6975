//! The kind facade: each job on a store of any kind, with the dispatch on
//! [`StoreKind`](crate::StoreKind) written once per job.

pub mod dump;
pub mod restore;
