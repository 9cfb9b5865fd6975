//! Turning input entries into output chunks. Each output chunk gets one
//! *signature* per distinct way the snapshots see it: the list of pieces (of
//! input copies, or of the origin) its bytes are made of, with the snapshots
//! that see exactly that. Same chunk size: one signature per input copy. A
//! smaller one: every copy is cut into pieces, one per output chunk. A larger
//! one: each snapshot that has a copy of any piece sees a whole output chunk
//! made of its own copies where it has them and the origin elsewhere, and
//! snapshots that see the same pieces share a signature.

use serde::Serialize;

use crate::error::Error;

use super::error::JobError;
use super::stream::{EntrySource, InEntry, InRecord};

/// How input chunks are carried over to the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrateMode {
    /// Same chunk size: each input chunk is one output chunk.
    Copy,
    /// A smaller chunk size: every input chunk becomes `factor` output chunks.
    Split,
    /// A larger chunk size: input chunks are grouped by `origin / factor`.
    Merge,
}

/// How input chunks become output chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rechunk {
    /// Input chunk size in bytes.
    pub(crate) in_bytes: u64,
    /// Output chunk size in bytes.
    pub(crate) out_bytes: u64,
    /// The origin's size, when known: split pieces past it are left out, and
    /// input copies past it are refused.
    pub(crate) origin_bytes: Option<u64>,
}

impl Rechunk {
    /// Copy, split or merge.
    pub(crate) fn mode(&self) -> MigrateMode {
        match self.out_bytes.cmp(&self.in_bytes) {
            std::cmp::Ordering::Equal => MigrateMode::Copy,
            std::cmp::Ordering::Less => MigrateMode::Split,
            std::cmp::Ordering::Greater => MigrateMode::Merge,
        }
    }

    /// Chunks of the smaller size in one of the larger (1 for a copy).
    pub(crate) fn factor(&self) -> u64 {
        self.in_bytes.max(self.out_bytes) / self.in_bytes.min(self.out_bytes)
    }

    /// Bytes of one piece: the smaller of the two chunk sizes.
    pub(crate) fn piece_bytes(&self) -> u64 {
        self.in_bytes.min(self.out_bytes)
    }
}

/// Where one piece of an output chunk comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Piece {
    /// Bytes `offset..offset + piece` of chunk `chunk` of input device `dev`.
    Cow {
        /// Input device index.
        dev: u32,
        /// Chunk on that device.
        chunk: u64,
        /// Byte offset inside the chunk.
        offset: u64,
    },
    /// Origin piece `index` (bytes `index * piece ..`), zeros past its end.
    Origin {
        /// Piece index.
        index: u64,
    },
}

/// One way of seeing an output chunk: its pieces, and the snapshots that see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Signature {
    /// The snapshots.
    pub(crate) mask: u64,
    /// The pieces, in order, filling the output chunk.
    pub(crate) pieces: Vec<Piece>,
}

impl Signature {
    /// Pieces read from the origin.
    pub(crate) fn origin_pieces(&self) -> u64 {
        self.pieces
            .iter()
            .filter(|p| matches!(p, Piece::Origin { .. }))
            .count() as u64
    }
}

/// An output chunk and its signatures (masks disjoint, at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutChunk {
    /// Origin chunk in the output chunk size.
    pub(crate) origin: u64,
    /// The ways snapshots see it.
    pub(crate) signatures: Vec<Signature>,
}

/// Streams [`OutChunk`]s in ascending origin order from an [`EntrySource`].
pub(crate) struct Assembler<'a> {
    source: &'a mut dyn EntrySource,
    rechunk: Rechunk,
    peeked: Option<InEntry>,
    pending: std::collections::VecDeque<OutChunk>,
    /// Split pieces left out because they lie past the end of the origin.
    pub(crate) pieces_past_origin: u64,
}

impl<'a> Assembler<'a> {
    /// An assembler over `source`.
    pub(crate) fn new(source: &'a mut dyn EntrySource, rechunk: Rechunk) -> Self {
        Assembler {
            source,
            rechunk,
            peeked: None,
            pending: std::collections::VecDeque::new(),
            pieces_past_origin: 0,
        }
    }

    fn pull(&mut self) -> Result<Option<InEntry>, JobError> {
        if let Some(entry) = self.peeked.take() {
            return Ok(Some(entry));
        }
        let Some(entry) = self.source.next_entry()? else {
            return Ok(None);
        };
        if let Some(origin_bytes) = self.rechunk.origin_bytes {
            let chunks = origin_bytes.div_ceil(self.rechunk.in_bytes);
            if entry.origin >= chunks {
                return Err(JobError::Damage(format!(
                    "origin chunk {} has a copy but lies past the end of the origin ({chunks} chunks); is this the right origin?",
                    entry.origin
                )));
            }
        }
        Ok(Some(entry))
    }

    /// The next output chunk, or `None` at the end.
    pub(crate) fn next_chunk(&mut self) -> Result<Option<OutChunk>, JobError> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Ok(Some(chunk));
            }
            let Some(entry) = self.pull()? else {
                return Ok(None);
            };
            match self.rechunk.mode() {
                MigrateMode::Copy => return Ok(Some(copy(entry))),
                MigrateMode::Split => self.split(entry)?,
                MigrateMode::Merge => return self.merge(entry).map(Some),
            }
        }
    }

    fn split(&mut self, entry: InEntry) -> Result<(), JobError> {
        let k = self.rechunk.factor();
        let out_bytes = self.rechunk.out_bytes;
        let first = entry.origin.checked_mul(k).ok_or_else(|| {
            Error::Invalid(format!(
                "origin chunk {} times {k} does not fit 64 bits",
                entry.origin
            ))
        })?;
        for j in 0..k {
            let origin = first + j;
            let past = self
                .rechunk
                .origin_bytes
                .is_some_and(|bytes| origin.saturating_mul(out_bytes) >= bytes);
            if past {
                self.pieces_past_origin += entry.records.len() as u64;
                continue;
            }
            let signatures = cow_signatures(&entry.records, j * out_bytes);
            self.pending.push_back(OutChunk { origin, signatures });
        }
        Ok(())
    }

    fn merge(&mut self, first: InEntry) -> Result<OutChunk, JobError> {
        let k = self.rechunk.factor();
        let big = first.origin / k;
        let mut group = vec![first];
        while let Some(entry) = self.pull()? {
            if entry.origin / k != big {
                self.peeked = Some(entry);
                break;
            }
            group.push(entry);
        }
        let seen = group
            .iter()
            .flat_map(|e| e.records.iter())
            .fold(0, |m, r| m | r.mask);
        let mut by_piece: Vec<Option<&InEntry>> = vec![None; k as usize];
        for e in &group {
            by_piece[(e.origin % k) as usize] = Some(e);
        }
        let mut signatures: Vec<Signature> = Vec::new();
        for bit in bits(seen) {
            let pieces: Vec<Piece> = by_piece
                .iter()
                .enumerate()
                .map(|(j, e)| {
                    let small = big * k + j as u64;
                    e.and_then(|e| e.records.iter().find(|r| r.mask & bit != 0))
                        .map_or(Piece::Origin { index: small }, |r| Piece::Cow {
                            dev: r.dev,
                            chunk: r.chunk,
                            offset: 0,
                        })
                })
                .collect();
            match signatures.iter_mut().find(|s| s.pieces == pieces) {
                Some(same) => same.mask |= bit,
                None => signatures.push(Signature { mask: bit, pieces }),
            }
        }
        Ok(OutChunk {
            origin: big,
            signatures,
        })
    }
}

/// The bits set in `mask`, lowest first.
fn bits(mask: u64) -> impl Iterator<Item = u64> {
    let mut rest = mask;
    std::iter::from_fn(move || {
        let bit = rest & rest.wrapping_neg();
        rest &= !bit;
        (bit != 0).then_some(bit)
    })
}

fn copy(entry: InEntry) -> OutChunk {
    OutChunk {
        origin: entry.origin,
        signatures: cow_signatures(&entry.records, 0),
    }
}

/// One signature per copy: the piece at `offset` of its chunk.
fn cow_signatures(records: &[InRecord], offset: u64) -> Vec<Signature> {
    records
        .iter()
        .map(|r| Signature {
            mask: r.mask,
            pieces: vec![Piece::Cow {
                dev: r.dev,
                chunk: r.chunk,
                offset,
            }],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct List(std::vec::IntoIter<InEntry>);

    impl EntrySource for List {
        fn next_entry(&mut self) -> Result<Option<InEntry>, JobError> {
            Ok(self.0.next())
        }
    }

    fn entry(origin: u64, records: &[(u64, u64)]) -> InEntry {
        InEntry {
            origin,
            records: records
                .iter()
                .map(|&(mask, chunk)| InRecord {
                    mask,
                    dev: 0,
                    chunk,
                })
                .collect(),
        }
    }

    fn all(entries: Vec<InEntry>, rechunk: Rechunk) -> (Vec<OutChunk>, u64) {
        let mut source = List(entries.into_iter());
        let mut assembler = Assembler::new(&mut source, rechunk);
        let mut out = Vec::new();
        while let Some(chunk) = assembler.next_chunk().unwrap() {
            out.push(chunk);
        }
        (out, assembler.pieces_past_origin)
    }

    fn cow(chunk: u64, offset: u64) -> Piece {
        Piece::Cow {
            dev: 0,
            chunk,
            offset,
        }
    }

    #[test]
    fn merge_groups_snapshots_by_the_pieces_they_see() {
        // Snapshots 0 and 1 share chunk 50 for origin 4; snapshot 1 also has
        // origin 5 (chunk 60); snapshot 2 has only origin 5 (chunk 61).
        let entries = vec![
            entry(4, &[(0b011, 50)]),
            entry(5, &[(0b010, 60), (0b100, 61)]),
        ];
        let rechunk = Rechunk {
            in_bytes: 512,
            out_bytes: 1024,
            origin_bytes: None,
        };
        let (out, _) = all(entries, rechunk);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].origin, 2);
        let sigs = &out[0].signatures;
        assert_eq!(sigs.len(), 3);
        assert_eq!(sigs[0].mask, 0b001);
        assert_eq!(sigs[0].pieces, vec![cow(50, 0), Piece::Origin { index: 5 }]);
        assert_eq!(sigs[1].mask, 0b010);
        assert_eq!(sigs[1].pieces, vec![cow(50, 0), cow(60, 0)]);
        assert_eq!(sigs[2].mask, 0b100);
        assert_eq!(sigs[2].pieces, vec![Piece::Origin { index: 4 }, cow(61, 0)]);
        assert_eq!(sigs[0].origin_pieces(), 1);
    }

    #[test]
    fn split_cuts_every_copy_and_leaves_out_pieces_past_the_origin() {
        let entries = vec![entry(0, &[(1, 7)]), entry(3, &[(1, 8), (2, 9)])];
        let rechunk = Rechunk {
            in_bytes: 2048,
            out_bytes: 512,
            origin_bytes: Some(3 * 2048 + 1024),
        };
        let (out, past) = all(entries, rechunk);
        let origins: Vec<u64> = out.iter().map(|c| c.origin).collect();
        assert_eq!(origins, vec![0, 1, 2, 3, 12, 13]);
        assert_eq!(past, 4);
        assert_eq!(out[5].signatures[1].pieces, vec![cow(9, 512)]);
    }

    #[test]
    fn bits_are_listed_lowest_first() {
        assert_eq!(bits(0b1010_0110).collect::<Vec<_>>(), vec![2, 4, 32, 128]);
        assert_eq!(bits(1 << 63).collect::<Vec<_>>(), vec![1 << 63]);
        assert_eq!(bits(0).count(), 0);
    }

    #[test]
    fn copies_past_the_origin_are_refused() {
        let entries = vec![entry(9, &[(1, 7)])];
        let rechunk = Rechunk {
            in_bytes: 512,
            out_bytes: 512,
            origin_bytes: Some(9 * 512),
        };
        let mut source = List(entries.into_iter());
        let mut assembler = Assembler::new(&mut source, rechunk);
        assert!(matches!(assembler.next_chunk(), Err(JobError::Damage(_))));
    }
}
