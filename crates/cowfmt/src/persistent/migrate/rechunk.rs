//! Migration to another chunk size: records split for a smaller one, grouped
//! with origin pieces for a larger one.

use std::collections::{HashMap, HashSet};

use super::plan::MigratePlan;
use crate::device::Device;
use crate::error::Result;
use crate::persistent::rebuild::RebuildWriter;
use crate::sparse::Extents;

/// Pieces of a re-chunked store that did not come from a COW chunk.
#[derive(Debug, Default)]
pub(super) struct PieceCounts {
    pub(super) from_origin: u64,
    pub(super) past_origin: u64,
}

/// A smaller chunk size: each record's chunk is read once and written as
/// `factor` pieces, in record order; a chunk in a hole of the input is not
/// read, and zero pieces are not written to a zeroed output.
pub(super) fn split(
    input: &Device,
    plan: &MigratePlan,
    output: Device,
    output_zeroed: bool,
    counts: &mut PieceCounts,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Device> {
    let from_bytes = plan.metadata.geometry.chunk_bytes();
    let to_bytes = from_bytes / plan.factor as usize;
    let mut writer =
        RebuildWriter::format(output, plan.to_chunk_size)?.with_zeroed_output(output_zeroed);
    let mut extents = Extents::new(input);
    let mut buffer = vec![0u8; from_bytes];
    let total = plan.copy_steps;
    for (done, placed) in plan.metadata.records.iter().enumerate() {
        let record = placed.record;
        let offset = record.new_chunk.saturating_mul(from_bytes as u64);
        if extents.is_hole(offset, from_bytes as u64) {
            buffer.fill(0);
        } else {
            input.read_chunk(record.new_chunk, &mut buffer)?;
        }
        for (j, piece) in buffer.chunks_exact(to_bytes).enumerate() {
            let old_chunk = record.old_chunk * plan.factor + j as u64;
            let past_origin = plan
                .origin_bytes
                .is_some_and(|bytes| old_chunk.saturating_mul(to_bytes as u64) >= bytes);
            if past_origin {
                counts.past_origin += 1;
                continue;
            }
            writer.push(old_chunk, piece)?;
        }
        progress(done as u64 + 1, total);
    }
    writer.finish(plan.metadata.header.is_valid())
}

/// A larger chunk size: records are grouped by `old_chunk / factor`, in the
/// order each group first appears; a group's pieces come from the COW where a
/// record maps them and from the origin where none does. Zero chunks are not
/// written to a zeroed output.
pub(super) fn merge(
    input: &Device,
    plan: &MigratePlan,
    origin: &Device,
    output: Device,
    output_zeroed: bool,
    counts: &mut PieceCounts,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Device> {
    let from_bytes = plan.metadata.geometry.chunk_bytes();
    let factor = plan.factor;
    let mut map: HashMap<u64, u64> = HashMap::with_capacity(plan.metadata.records.len());
    let mut groups = Vec::new();
    let mut seen = HashSet::new();
    for placed in &plan.metadata.records {
        map.entry(placed.record.old_chunk)
            .or_insert(placed.record.new_chunk);
        let group = placed.record.old_chunk / factor;
        if seen.insert(group) {
            groups.push(group);
        }
    }
    drop(seen);
    let mut writer =
        RebuildWriter::format(output, plan.to_chunk_size)?.with_zeroed_output(output_zeroed);
    let mut buffer = vec![0u8; from_bytes * factor as usize];
    let total = groups.len() as u64;
    for (done, &group) in groups.iter().enumerate() {
        let first = group * factor;
        read_origin_range(origin, &mut buffer, first.saturating_mul(from_bytes as u64))?;
        for (j, piece) in buffer.chunks_exact_mut(from_bytes).enumerate() {
            match map.get(&(first + j as u64)) {
                Some(&new_chunk) => input.read_chunk(new_chunk, piece)?,
                None => counts.from_origin += 1,
            }
        }
        writer.push(group, &buffer)?;
        progress(done as u64 + 1, total);
    }
    writer.finish(plan.metadata.header.is_valid())
}

/// Reads `buf.len()` bytes of the origin at `offset`; bytes past its end read
/// as zeros.
fn read_origin_range(origin: &Device, buf: &mut [u8], offset: u64) -> Result<()> {
    let len = origin
        .size_bytes()
        .saturating_sub(offset)
        .min(buf.len() as u64) as usize;
    origin.read_at(&mut buf[..len], offset, || {
        format!("origin bytes at {offset}")
    })?;
    buf[len..].fill(0);
    Ok(())
}
