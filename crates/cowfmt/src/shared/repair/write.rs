//! Writing the salvaged store: the kept data chunks claimed where they are and
//! copied in large batches, the leaves read again through the same rules into
//! the place-keeping stream, whose tree sink bulk-loads the tree, the header
//! last.

use crate::device::Device;
use crate::error::Error;
use crate::job::{InEntry, InRecord, JobError, KeptSink};
use crate::shared::build::StoreBuilder;
use crate::shared::header::SharedHeader;
use crate::shared::leaf::Exception;
use crate::shared::stream::TreeSink;

use super::batch::{for_each_stretch, Stretch};
use super::filter::RecordRules;
use super::report::DropReason;
use super::report::RepairReport;
use super::reread::for_each_leaf;
use super::salvage::Salvage;

/// How the output relates to the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// Every byte of the output is known to be zero (a new or truncated image):
    /// zero data chunks need not be written.
    pub output_zeroed: bool,
    /// The output already holds the input's data chunks at the same places (an
    /// in-place repair reading from a verified copy): data is not copied.
    pub data_in_place: bool,
}

impl Salvage {
    /// Writes the salvaged store into `output`, reading from `input` (the
    /// device analysed). `progress` gets (data chunks done, data chunks to copy).
    pub fn write(
        mut self,
        input: &Device,
        output: Device,
        options: WriteOptions,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<RepairReport, JobError> {
        if self.report.nothing_salvaged() {
            return Err(JobError::Damage(format!(
                "{}: nothing could be salvaged ({} records dropped); no output written",
                self.report.input, self.report.dropped_total
            )));
        }
        if let Some(problem) = self.output_problem(output.size_bytes()) {
            return Err(Error::Invalid(format!("{}: {problem}", output.path().display())).into());
        }
        let n = self.geometry.nr_chunks;
        let cb = self.geometry.chunk_bytes;
        let mut builder = StoreBuilder::new(
            &output,
            u64::from(self.chunk_sectors),
            self.geometry.nr_journal_chunks,
        )?;
        let runs = self.kept_chunks.set_runs(0, n);
        for &(a, b) in &runs {
            for c in a..b {
                builder.claim(c)?;
            }
        }
        let copied = if options.data_in_place {
            0
        } else {
            copy_data(input, &output, cb, &runs, options.output_zeroed, progress)?
        };
        let mut tree = TreeSink::new(builder.into_tree());
        let rules = RecordRules {
            geometry: &self.geometry,
            snapmask: self.snapmask,
            origin_chunks: self.origin_chunks,
        };
        let losers = &self.chunk_losers;
        let leaves: Vec<_> = self.leaves.iter().collect();
        let mut kept = Vec::new();
        let mut entries = 0u64;
        for_each_leaf(input, cb as usize, &leaves, &mut |found, leaf| {
            for i in 0..leaf.count() {
                let range = leaf.record_range(i);
                let mut claim = |_: u64, index: u32| {
                    (!losers.is_empty() && losers.contains(&(found.chunk, index)))
                        .then_some(DropReason::ChunkUsedTwice)
                };
                rules.filter(
                    &mut claim,
                    leaf.origin_of(i),
                    &leaf.records[range.clone()],
                    range.start as u32,
                    &mut kept,
                    &mut |_| {},
                );
                if !kept.is_empty() {
                    let entry = kept_entry(leaf.origin_of(i), &kept);
                    tree.entry(entries, &entry).map_err(JobError::into_error)?;
                    entries += 1;
                }
            }
            Ok(())
        })?;
        let built = tree.into_tree().finish(self.snapmask)?;
        if built.records != self.report.kept {
            return Err(Error::Invalid(format!(
                "{}: wrote {} records but the analysis kept {}; the output is not usable",
                output.path().display(),
                built.records,
                self.report.kept
            ))
            .into());
        }
        if !self.report.output_valid {
            let header = SharedHeader {
                valid: 0,
                ..built.header
            };
            output.write_chunk(0, &header.to_chunk(cb as usize))?;
            output.sync()?;
        }
        let report = &mut self.report;
        report.output = Some(output.path().display().to_string());
        report.leaves_after = Some(built.leaves);
        report.tree_level_after = Some(built.header.tree_level);
        report.data_chunks_copied = Some(copied);
        if options.data_in_place {
            report
                .notes
                .push("the data chunks were already in place and were not copied".to_string());
        }
        Ok(self.report)
    }
}

/// The kept records of one origin chunk as an entry of the place-keeping
/// stream: each record's data stays at its chunk.
fn kept_entry(origin: u64, kept: &[Exception]) -> InEntry {
    InEntry {
        origin,
        records: kept
            .iter()
            .map(|r| InRecord {
                mask: r.share,
                dev: 0,
                chunk: r.chunk,
            })
            .collect(),
    }
}

/// Copies the chunks of `runs` from `input` to the same places on `output`,
/// skipping holes (and all-zero batches) when the output is already zero.
/// Returns the chunks written.
fn copy_data(
    input: &Device,
    output: &Device,
    chunk_bytes: u64,
    runs: &[(u64, u64)],
    output_zeroed: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> crate::error::Result<u64> {
    let total: u64 = runs.iter().map(|(a, b)| b - a).sum();
    let (mut done, mut written) = (0u64, 0u64);
    for_each_stretch(input, chunk_bytes as usize, runs, &mut |first, stretch| {
        match stretch {
            Stretch::Data(bytes) => {
                let chunks = bytes.len() as u64 / chunk_bytes;
                if !(output_zeroed && bytes.iter().all(|&b| b == 0)) {
                    output.write_at(bytes, first * chunk_bytes)?;
                    written += chunks;
                }
                done += chunks;
            }
            Stretch::Hole(chunks) => {
                if !output_zeroed {
                    output.zero_range(first * chunk_bytes, chunks * chunk_bytes)?;
                }
                done += chunks;
            }
        }
        progress(done, total);
        Ok(())
    })?;
    Ok(written)
}
