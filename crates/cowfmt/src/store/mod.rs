//! The kind facade: one entry per job (check, dump, repair, migrate), where
//! the dispatch on the store kind is written once.

pub mod migrate;
