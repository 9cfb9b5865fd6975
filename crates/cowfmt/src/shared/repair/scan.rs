//! The leaf scan: reads the chunks the walk could not account for, in large
//! sequential batches (holes of sparse images skipped), and keeps every chunk
//! that decodes as a leaf with an ascending map as a candidate, with the facts
//! that weigh its credibility.

use crate::bitset::DenseBitmap;
use crate::device::Device;
use crate::error::Result;
use crate::shared::bitmap::ChunkBitmap;
use crate::shared::geometry::Geometry;
use crate::shared::leaf::Leaf;
use crate::shared::node::Node;

use super::batch::for_each_batch;
use super::shape::{leaf_span, mask_facts, starts_like_leaf};
use super::snapmask::MaskEvidence;

/// A chunk that decodes as a leaf.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    /// Its chunk.
    pub chunk: u64,
    /// First and last origin chunk (`None`: no entries).
    pub span: Option<(u64, u64)>,
    /// Records in it.
    pub records: u32,
    /// Records whose COW chunk is plausible: in the data range, not accounted
    /// for by the walk, with a non-zero mask, and (when the bitmap is
    /// credible) marked in use.
    pub good: u32,
    /// Whether the bitmap marks the leaf's own chunk in use.
    pub bitmap_used: bool,
    /// Whether its stored using_mask agrees with its masks.
    pub using_mask_ok: bool,
    /// Its masks, for the snapmask decision.
    pub evidence: MaskEvidence,
    /// The lowest chunk it uses (itself, or a record chunk after the bitmap).
    pub lowest_used: u64,
}

/// What the scan weighs records against.
pub(super) struct ScanContext<'a> {
    pub geometry: &'a Geometry,
    pub bitmap: &'a ChunkBitmap,
    pub bitmap_credible: bool,
    pub tree_blocks: &'a DenseBitmap,
    pub record_chunks: &'a DenseBitmap,
}

/// What the scan read and found.
#[derive(Debug, Default)]
pub(super) struct Scanned {
    pub candidates: Vec<Candidate>,
    pub chunks_scanned: u64,
    /// Chunks that look like interior nodes.
    pub node_like: Vec<u64>,
}

/// Reads the chunks of `runs` (`[start, end)`, ascending) and collects the leaves.
/// `progress` gets (chunks done, chunks to scan).
pub(super) fn scan(
    input: &Device,
    context: &ScanContext<'_>,
    runs: &[(u64, u64)],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Scanned> {
    let chunk_bytes = context.geometry.chunk_bytes as usize;
    let total: u64 = runs.iter().map(|(a, b)| b - a).sum();
    let mut scanned = Scanned {
        chunks_scanned: total,
        ..Scanned::default()
    };
    let mut done = 0u64;
    for_each_batch(input, chunk_bytes, runs, &mut |first, bytes| {
        for (i, chunk_bytes_of) in bytes.chunks_exact(chunk_bytes).enumerate() {
            let chunk = first + i as u64;
            if starts_like_leaf(chunk_bytes_of) {
                if let Some(candidate) = weigh(chunk, chunk_bytes_of, context) {
                    scanned.candidates.push(candidate);
                }
            } else if looks_like_node(chunk_bytes_of, context.geometry) {
                scanned.node_like.push(chunk);
            }
        }
        done += (bytes.len() / chunk_bytes) as u64;
        progress(done, total);
        Ok(())
    })?;
    Ok(scanned)
}

fn weigh(chunk: u64, bytes: &[u8], context: &ScanContext<'_>) -> Option<Candidate> {
    let leaf = Leaf::decode(bytes).ok()?;
    let span = leaf_span(&leaf).ok()?;
    let g = context.geometry;
    let good = leaf
        .records
        .iter()
        .filter(|r| {
            r.share != 0
                && g.in_data_range(r.chunk)
                && r.chunk != chunk
                && !context.tree_blocks.get(r.chunk)
                && !context.record_chunks.get(r.chunk)
                && (!context.bitmap_credible || context.bitmap.is_used(r.chunk))
        })
        .count() as u32;
    let (_, using_mask_ok) = mask_facts(&leaf);
    let lowest_used = leaf
        .records
        .iter()
        .map(|r| r.chunk)
        .filter(|&c| c >= g.journal_start() && c < g.nr_chunks)
        .fold(chunk, u64::min);
    let mut evidence = MaskEvidence::default();
    evidence.add_leaf(&leaf);
    Some(Candidate {
        chunk,
        span,
        records: leaf.records.len() as u32,
        good,
        bitmap_used: context.bitmap.is_used(chunk),
        using_mask_ok,
        evidence,
        lowest_used,
    })
}

/// Whether a chunk looks like an interior node: a count the chunk holds, keys
/// 1.. ascending, every child inside the data range.
fn looks_like_node(bytes: &[u8], geometry: &Geometry) -> bool {
    let Ok(node) = Node::decode(bytes) else {
        return false;
    };
    node.entries.iter().all(|e| geometry.in_data_range(e.chunk))
        && node.entries[1..].windows(2).all(|w| w[0].key < w[1].key)
}
