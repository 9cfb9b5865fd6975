//! Data-safety cases: guard.
