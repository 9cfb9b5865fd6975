//! Data-safety cases: probe.
