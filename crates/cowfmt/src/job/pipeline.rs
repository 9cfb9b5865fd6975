//! The one loop every migration runs: input entries are assembled into
//! output chunks, a window of them is read at once, each chunk's contents are
//! grouped by their bytes, and the groups go to a [`Sink`] (a counter, the
//! shared store writer, or the persistent store writer).

use super::error::JobError;
use crate::device::Device;

use super::assemble::{Assembler, OutChunk, Rechunk};
use super::dedup::ChunkGroups;
use super::stream::EntrySource;
use super::window::{bytes_needed, ReadPolicy, Window, WINDOW_BYTES};
use crate::error::Error;

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
/// and `origin`; the first read error stops the run. `progress` gets (output
/// chunks done, `total`).
pub(crate) fn run(
    source: &mut dyn EntrySource,
    rechunk: Rechunk,
    devices: &[&Device],
    origin: Option<&Device>,
    sink: &mut dyn Sink,
    total: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Totals, JobError> {
    let io = Io {
        devices,
        origin,
        policy: ReadPolicy::Strict,
    };
    run_with(source, rechunk, io, sink, total, progress, &mut |_, _| {})
}

/// [`run`] over one input device and no origin, under
/// [`ReadPolicy::Tolerant`]: an output chunk whose input data cannot be read
/// is left out and handed to `unreadable` with the read error (it counts as
/// done for `progress`, not in the [`Totals`]).
pub(crate) fn run_tolerant(
    source: &mut dyn EntrySource,
    rechunk: Rechunk,
    input: &Device,
    sink: &mut dyn Sink,
    total: u64,
    progress: &mut dyn FnMut(u64, u64),
    unreadable: &mut dyn FnMut(u64, &Error),
) -> Result<Totals, JobError> {
    let io = Io {
        devices: &[input],
        origin: None,
        policy: ReadPolicy::Tolerant,
    };
    run_with(source, rechunk, io, sink, total, progress, unreadable)
}

/// Where a run reads its data, and how.
struct Io<'d> {
    devices: &'d [&'d Device],
    origin: Option<&'d Device>,
    policy: ReadPolicy,
}

fn run_with(
    source: &mut dyn EntrySource,
    rechunk: Rechunk,
    io: Io<'_>,
    sink: &mut dyn Sink,
    total: u64,
    progress: &mut dyn FnMut(u64, u64),
    unreadable: &mut dyn FnMut(u64, &Error),
) -> Result<Totals, JobError> {
    let mut assembler = Assembler::new(source, rechunk);
    let mut totals = Totals::default();
    let mut skipped = 0u64;
    let out_bytes = rechunk.out_bytes as usize;
    let piece_bytes = rechunk.piece_bytes() as usize;
    let mut window = Window::new(io.policy);
    let mut groups = ChunkGroups::new(out_bytes);
    let mut scratch = vec![0u8; out_bytes];
    let mut batch: Vec<OutChunk> = Vec::new();
    let mut next = assembler.next_chunk()?;
    while next.is_some() {
        batch.clear();
        let mut bytes = 0;
        while let Some(chunk) = next.take() {
            bytes += bytes_needed(&chunk, &rechunk);
            batch.push(chunk);
            if bytes >= WINDOW_BYTES {
                break;
            }
            next = assembler.next_chunk()?;
        }
        window.load(&batch, &rechunk, io.devices, io.origin)?;
        for chunk in &batch {
            if let Some(error) = window.unreadable(chunk) {
                unreadable(chunk.origin, error);
                skipped += 1;
                progress(totals.chunks + skipped, total);
                continue;
            }
            groups.clear();
            for signature in &chunk.signatures {
                totals.pieces_from_origin += signature.origin_pieces();
                let content = match signature.pieces.as_slice() {
                    [one] => window.piece(one, out_bytes),
                    pieces => {
                        for (piece, out) in pieces.iter().zip(scratch.chunks_exact_mut(piece_bytes))
                        {
                            out.copy_from_slice(window.piece(piece, piece_bytes));
                        }
                        &scratch
                    }
                };
                groups.add(signature.mask, content);
            }
            totals.chunks += 1;
            totals.copies += groups.added();
            totals.stored += groups.len() as u64;
            sink.chunk(chunk.origin, &groups)?;
            progress(totals.chunks + skipped, total);
        }
        if next.is_none() {
            next = assembler.next_chunk()?;
        }
    }
    totals.pieces_past_origin = assembler.pieces_past_origin;
    Ok(totals)
}
