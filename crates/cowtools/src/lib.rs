//! Shared plumbing of the cowtools binaries.
