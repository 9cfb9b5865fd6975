//! The parts of a repair report every kind shares: its schema version, how
//! many dropped records are listed one by one, where a value used for the
//! output came from, and the fields that open every kind's report
//! ([`ReportHead`]).

use serde::Serialize;

use crate::kind::StoreKind;

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

/// The fields that open every kind's repair report, in this order. A kind's
/// report flattens it first into its JSON and dereferences to it, so
/// `report.input` reads the same for every kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportHead {
    /// [`REPAIR_FORMAT_VERSION`].
    pub format_version: u32,
    /// The kind of the store repaired.
    pub kind: StoreKind,
    /// The damaged input.
    pub input: String,
    /// The output, once written.
    pub output: Option<String>,
    /// The chunk size used, in sectors.
    pub chunk_size: u32,
    /// Where it came from.
    pub chunk_size_source: Source,
}

impl ReportHead {
    /// The head of a report on `input`, a store of `kind`, before anything is
    /// written.
    pub fn new(kind: StoreKind, input: String, chunk_size: u32, source: Source) -> Self {
        ReportHead {
            format_version: REPAIR_FORMAT_VERSION,
            kind,
            input,
            output: None,
            chunk_size,
            chunk_size_source: source,
        }
    }
}

/// Makes a kind's report, which holds a [`ReportHead`] in its field `head`,
/// dereference to it.
macro_rules! deref_to_head {
    ($report:ty) => {
        impl std::ops::Deref for $report {
            type Target = $crate::repair::report::ReportHead;

            fn deref(&self) -> &Self::Target {
                &self.head
            }
        }

        impl std::ops::DerefMut for $report {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.head
            }
        }
    };
}
pub(crate) use deref_to_head;

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

    #[test]
    fn a_head_serializes_its_fields_in_report_order() {
        let head = ReportHead::new(StoreKind::Shared, "cow".into(), 8, Source::Inferred);
        assert_eq!(
            serde_json::to_string(&head).unwrap(),
            r#"{"format_version":1,"kind":"shared","input":"cow","output":null,"chunk_size":8,"chunk_size_source":"inferred"}"#
        );
    }
}
