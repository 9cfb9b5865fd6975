//! One metadata area: a chunk of packed 16-byte records, read up to the first
//! terminator (a record whose `new_chunk` is 0) or to its end when it is full.

use super::record::{ExceptionRecord, RECORD_BYTES};

/// What an area's bytes say, read the way the kernel reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AreaParse {
    /// Records before the terminator (all of them when the area is full).
    pub entries: usize,
    /// True when no record is a terminator: the kernel goes on to the next area.
    pub full: bool,
    /// Byte offset (within the area) of the first non-zero byte after the
    /// terminator record, if any. The kernel always leaves these bytes zero.
    pub garbage_at: Option<usize>,
}

/// Reads an area chunk with the kernel's terminator rule.
pub fn parse_area(bytes: &[u8]) -> AreaParse {
    let capacity = bytes.len() / RECORD_BYTES;
    let entries = bytes
        .chunks_exact(RECORD_BYTES)
        .position(|raw| raw[8..16] == [0u8; 8])
        .unwrap_or(capacity);
    if entries == capacity {
        return AreaParse {
            entries,
            full: true,
            garbage_at: None,
        };
    }
    let terminator = entries * RECORD_BYTES;
    let garbage_at = bytes[terminator..]
        .iter()
        .position(|&b| b != 0)
        .map(|pos| terminator + pos);
    AreaParse {
        entries,
        full: false,
        garbage_at,
    }
}

/// The first `entries` records of an area.
pub fn area_records(bytes: &[u8], entries: usize) -> impl Iterator<Item = ExceptionRecord> + '_ {
    bytes
        .chunks_exact(RECORD_BYTES)
        .take(entries)
        .map(ExceptionRecord::decode)
}

/// Encodes `records` into an area chunk; the remainder is zeroed, so when fewer
/// than a full area's worth are given the next record slot is the terminator.
pub fn encode_area(records: &[ExceptionRecord], out: &mut [u8]) {
    out.fill(0);
    for (record, slot) in records.iter().zip(out.chunks_exact_mut(RECORD_BYTES)) {
        record.encode(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(old_chunk: u64, new_chunk: u64) -> ExceptionRecord {
        ExceptionRecord {
            old_chunk,
            new_chunk,
        }
    }

    #[test]
    fn empty_area() {
        let parse = parse_area(&[0u8; 512]);
        assert_eq!(
            parse,
            AreaParse {
                entries: 0,
                full: false,
                garbage_at: None
            }
        );
    }

    #[test]
    fn terminator_and_garbage() {
        let mut bytes = [0u8; 512];
        encode_area(&[rec(0, 2), rec(7, 3)], &mut bytes);
        assert_eq!(parse_area(&bytes).entries, 2);
        assert_eq!(parse_area(&bytes).garbage_at, None);
        // old_chunk of the terminator is garbage too: the kernel writes zeros.
        bytes[32] = 1;
        assert_eq!(parse_area(&bytes).garbage_at, Some(32));
        bytes[32] = 0;
        bytes[511] = 9;
        assert_eq!(parse_area(&bytes).garbage_at, Some(511));
        let records: Vec<_> = area_records(&bytes, 2).collect();
        assert_eq!(records, vec![rec(0, 2), rec(7, 3)]);
    }

    #[test]
    fn full_area_has_no_terminator() {
        let records: Vec<_> = (0..32).map(|i| rec(i, i + 2)).collect();
        let mut bytes = [0u8; 512];
        encode_area(&records, &mut bytes);
        let parse = parse_area(&bytes);
        assert!(parse.full);
        assert_eq!(parse.entries, 32);
        // one short of full: the last slot is the terminator.
        encode_area(&records[..31], &mut bytes);
        let parse = parse_area(&bytes);
        assert!(!parse.full);
        assert_eq!(parse.entries, 31);
    }

    #[test]
    fn old_chunk_zero_is_a_real_record() {
        let mut bytes = [0u8; 512];
        encode_area(&[rec(0, 2)], &mut bytes);
        assert_eq!(parse_area(&bytes).entries, 1);
    }
}
