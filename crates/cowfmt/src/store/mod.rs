//! The kind facade: each job takes a device or path and its options, and
//! dispatches on the store's kind here, once.

pub mod repair;
