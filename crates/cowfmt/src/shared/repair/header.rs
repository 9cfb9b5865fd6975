//! Judging the input header field by field: which values can be trusted, and
//! what was wrong with the others (said in the report; the output's header is
//! always written fresh).

use crate::kind::SHARED_MAGIC;
use crate::shared::geometry::validate_chunk_size;
use crate::shared::header::{SharedHeader, SHARED_VERSION};

/// What the input header can be trusted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HeaderVerdict {
    /// Magic and version are right: the other fields were written by a shared
    /// store and are taken as they are when they fit the device.
    pub identity: bool,
    /// The chunk size field, when it is a valid chunk size.
    pub chunk_size: Option<u32>,
    /// What is wrong, one phrase each.
    pub problems: Vec<String>,
}

/// Judges magic, version, chunk size and the valid flag.
pub(super) fn judge(header: &SharedHeader) -> HeaderVerdict {
    let mut problems = Vec::new();
    match header.magic {
        SHARED_MAGIC => {}
        0 => problems.push("magic is 0 (the header is wiped)".to_string()),
        found => problems.push(format!(
            "magic {found:#010x} is not the shared store magic {SHARED_MAGIC:#010x}"
        )),
    }
    let identity_magic = header.magic == SHARED_MAGIC;
    if identity_magic && header.version != SHARED_VERSION {
        problems.push(format!(
            "version {} is not {SHARED_VERSION}",
            header.version
        ));
    }
    let chunk_size = match validate_chunk_size(u64::from(header.chunk_size)) {
        Ok(()) => Some(header.chunk_size),
        Err(e) => {
            if identity_magic {
                problems.push(format!("chunk size field: {e}"));
            }
            None
        }
    };
    let identity = identity_magic && header.version == SHARED_VERSION;
    if identity && header.valid > 1 {
        problems.push(format!("valid flag is {}, neither 0 nor 1", header.valid));
    }
    HeaderVerdict {
        identity,
        chunk_size,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::geometry::Geometry;

    fn good() -> SharedHeader {
        SharedHeader {
            magic: SHARED_MAGIC,
            valid: 1,
            version: 1,
            chunk_size: 8,
            root_tree_chunk: 20,
            snapmask: 1,
            tree_level: 1,
            nr_journal_chunks: 4,
        }
    }

    #[test]
    fn a_sound_header_has_no_problem() {
        let v = judge(&good());
        assert!(v.identity && v.problems.is_empty());
        assert_eq!(v.chunk_size, Some(8));
        let g = Geometry::new(4096 * 100, 8, 4);
        assert_eq!(good().root_problem(&g), None);
    }

    #[test]
    fn each_bad_field_is_named() {
        let wiped = SharedHeader {
            magic: 0,
            valid: 0,
            version: 0,
            chunk_size: 0,
            root_tree_chunk: 0,
            snapmask: 0,
            tree_level: 0,
            nr_journal_chunks: 0,
        };
        let v = judge(&wiped);
        assert!(!v.identity);
        assert_eq!(v.chunk_size, None);
        assert_eq!(v.problems, vec!["magic is 0 (the header is wiped)"]);
        let v = judge(&SharedHeader {
            version: 2,
            chunk_size: 3,
            ..good()
        });
        assert!(!v.identity);
        assert_eq!(v.problems.len(), 2);
        let g = Geometry::new(4096 * 100, 8, 4);
        let bad_root = SharedHeader {
            root_tree_chunk: 3,
            ..good()
        };
        assert!(bad_root
            .root_problem(&g)
            .unwrap()
            .contains("root_tree_chunk 3 (offset 16) is outside the data range"));
        let bad_level = SharedHeader {
            tree_level: 0,
            ..good()
        };
        assert!(bad_level
            .root_problem(&g)
            .unwrap()
            .contains("tree_level 0 (offset 32)"));
    }
}
