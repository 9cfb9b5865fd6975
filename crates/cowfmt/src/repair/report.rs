//! The parts of a repair report every kind shares: its schema version, how
//! many dropped records are listed one by one, and where a value used for
//! the output came from.

use serde::Serialize;

/// The version of the repair report schema (every kind's).
pub const REPAIR_FORMAT_VERSION: u32 = 1;

/// Dropped records (and lost ranges, damaged areas) listed one by one; the
/// rest are counted.
pub const LISTED_MAX: usize = 10_000;

/// Where a header value used for the output (the chunk size, a shared
/// store's journal or snapmask) came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The input header's own field.
    Header,
    /// The caller's.
    Option,
    /// Inferred from what the device shows.
    Inferred,
}

impl Source {
    /// The source as the report spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Header => "header",
            Source::Option => "option",
            Source::Inferred => "inferred",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_serializes_as_the_report_spells_it() {
        for source in [Source::Header, Source::Option, Source::Inferred] {
            let json = serde_json::to_string(&source).unwrap();
            assert_eq!(json, format!("\"{}\"", source.as_str()));
        }
    }
}
