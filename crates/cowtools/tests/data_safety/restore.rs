//! Data-safety cases: restore.
