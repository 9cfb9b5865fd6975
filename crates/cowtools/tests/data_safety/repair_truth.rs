//! Data-safety cases: repair_truth.
