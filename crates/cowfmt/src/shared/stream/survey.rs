//! The metadata-only pass before a migration: how many output chunks and
//! copies there will be at most (no contents are read, so no sharing is
//! assumed), whether the origin is needed, and the tree that many records take.

use crate::job::{Assembler, EntrySource, JobError, Rechunk};

use super::size::LeafPacker;

/// What the output holds at most.
#[derive(Debug, Clone)]
pub(crate) struct Survey {
    /// Output chunks with at least one copy.
    pub(crate) chunks: u64,
    /// Copies (signatures): the records and data chunks without sharing.
    pub(crate) copies: u64,
    /// The most copies one output chunk has.
    pub(crate) most_copies: u64,
    /// The highest output origin chunk.
    pub(crate) max_origin: Option<u64>,
    /// Pieces that would be read from the origin.
    pub(crate) pieces_from_origin: u64,
    /// Split pieces past the end of the origin.
    pub(crate) pieces_past_origin: u64,
    /// The leaves those copies take.
    pub(crate) packer: LeafPacker,
}

impl Survey {
    /// Data and tree chunks without sharing.
    pub(crate) fn content_chunks(&self) -> u64 {
        self.copies + self.packer.tree_chunks()
    }
}

/// Surveys `source` through `rechunk`.
pub(crate) fn survey(source: &mut dyn EntrySource, rechunk: Rechunk) -> Result<Survey, JobError> {
    let mut assembler = Assembler::new(source, rechunk);
    let mut survey = Survey {
        chunks: 0,
        copies: 0,
        most_copies: 0,
        max_origin: None,
        pieces_from_origin: 0,
        pieces_past_origin: 0,
        packer: LeafPacker::new(rechunk.out_bytes),
    };
    while let Some(chunk) = assembler.next_chunk()? {
        let copies = chunk.signatures.len() as u64;
        survey.chunks += 1;
        survey.copies += copies;
        survey.most_copies = survey.most_copies.max(copies);
        survey.max_origin = Some(chunk.origin);
        survey.pieces_from_origin += chunk
            .signatures
            .iter()
            .map(|s| s.origin_pieces())
            .sum::<u64>();
        survey.packer.add(chunk.origin, copies);
    }
    survey.pieces_past_origin = assembler.pieces_past_origin;
    Ok(survey)
}
