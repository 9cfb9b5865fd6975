//! The one loop every migration runs: input entries are assembled into
//! output chunks, a window of them is read at once, each chunk's contents are
//! grouped by their bytes, and the groups go to a [`Sink`] (a counter, the
//! shared store writer, or the persistent store writer).

use super::error::JobError;
use crate::device::Device;

use super::assemble::{Assembler, OutChunk, Rechunk};
use super::dedup::ChunkGroups;
use super::stream::EntrySource;
use super::window::{bytes_needed, window_bytes, Window};

/// Where the grouped contents of each output chunk go.
pub(crate) trait Sink {
    /// Takes output chunk `origin` and its distinct contents.
    fn chunk(&mut self, origin: u64, groups: &ChunkGroups) -> Result<(), JobError>;
}

/// What a run moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Output chunks with at least one copy.
    pub(crate) chunks: u64,
    /// Contents assembled (one per signature): what the output would store
    /// without sharing.
    pub(crate) copies: u64,
    /// Distinct contents stored.
    pub(crate) stored: u64,
    /// Pieces of assembled contents read from the origin.
    pub(crate) pieces_from_origin: u64,
    /// Split pieces left out because they lie past the end of the origin.
    pub(crate) pieces_past_origin: u64,
}

/// Runs `source` through `rechunk` into `sink`, reading data from `devices`
/// and `origin`. `progress` gets (output chunks done, `total`).
pub(crate) fn run(
    source: &mut dyn EntrySource,
    rechunk: Rechunk,
    devices: &[&Device],
    origin: Option<&Device>,
    sink: &mut dyn Sink,
    total: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Totals, JobError> {
    let mut assembler = Assembler::new(source, rechunk);
    let mut totals = Totals::default();
    let out_bytes = rechunk.out_bytes as usize;
    let piece_bytes = rechunk.piece_bytes() as usize;
    let mut window = Window::default();
    let mut groups = ChunkGroups::new(out_bytes);
    let aim = window_bytes(rechunk.out_bytes);
    let mut batch: Vec<OutChunk> = Vec::new();
    let mut next = assembler.next_chunk()?;
    while next.is_some() {
        batch.clear();
        let mut bytes = 0;
        while let Some(chunk) = next.take() {
            bytes += bytes_needed(&chunk, &rechunk);
            batch.push(chunk);
            if bytes >= aim {
                break;
            }
            next = assembler.next_chunk()?;
        }
        window.load(&batch, &rechunk, devices, origin)?;
        for chunk in &batch {
            groups.clear();
            for signature in &chunk.signatures {
                totals.pieces_from_origin += signature.origin_pieces();
                match signature.pieces.as_slice() {
                    [one] => groups.add(signature.mask, window.piece(one, out_bytes)),
                    pieces => {
                        let slot = groups.slot();
                        for (piece, out) in pieces.iter().zip(slot.chunks_exact_mut(piece_bytes)) {
                            out.copy_from_slice(window.piece(piece, piece_bytes));
                        }
                        groups.add_slot(signature.mask);
                    }
                }
            }
            totals.chunks += 1;
            totals.copies += groups.added();
            totals.stored += groups.len() as u64;
            sink.chunk(chunk.origin, &groups)?;
            progress(totals.chunks, total);
        }
        if next.is_none() {
            next = assembler.next_chunk()?;
        }
    }
    totals.pieces_past_origin = assembler.pieces_past_origin;
    Ok(totals)
}
