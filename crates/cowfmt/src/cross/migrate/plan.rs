//! A checked shared migration, ready to size and write: its inputs, how chunks
//! are carried over, what the output is, and what the survey found. Before
//! any contents are read the space it needs is an upper bound (no sharing);
//! [`SharedPlan::count`] reads the contents once and makes it exact.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::job::{self, EntrySource, JobError, MigrateMode, Rechunk, Sink, Totals};
use crate::kind::StoreKind;
use crate::persistent::layout::Geometry as ClassicGeometry;
use crate::persistent::rebuild::chunks_needed;
use crate::shared::leaf::check_snapshot_count;
use crate::shared::stream::{Counter, JournalSize, SharedInput, SharedNeed, Survey};
use crate::SECTOR_BYTES;

use super::classic_input::ClassicInputs;
use super::report::{InputReport, SharedJob};

/// Where a migration reads from.
#[derive(Debug)]
pub(super) enum Inputs {
    /// Classic stores, one snapshot each.
    Classic(ClassicInputs),
    /// A shared store, keeping the snapshots in `filter`.
    Shared {
        /// The store.
        input: SharedInput,
        /// The snapshots carried over.
        filter: u64,
    },
}

impl Inputs {
    /// Runs `f` over the entries in origin order.
    pub(super) fn with_entries<T>(
        &self,
        f: impl FnOnce(&mut dyn EntrySource) -> std::result::Result<T, JobError>,
    ) -> std::result::Result<T, JobError> {
        match self {
            Inputs::Classic(inputs) => f(&mut inputs.entries()),
            Inputs::Shared { input, filter } => f(&mut input.entries(*filter)?),
        }
    }

    /// The devices data is read from, by device index.
    pub(super) fn devices(&self) -> Vec<&Device> {
        match self {
            Inputs::Classic(inputs) => inputs.devices(),
            Inputs::Shared { input, .. } => vec![input.device()],
        }
    }
}

/// What a migration writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    /// A shared store with these snapshots and journal.
    Shared {
        /// The snapshots of the new store.
        snapmask: u64,
        /// Its journal.
        journal: JournalSize,
    },
    /// A persistent or legacy store.
    Classic {
        /// Which of the two.
        kind: StoreKind,
    },
}

/// A checked shared migration (see [`super::plan_import`],
/// [`super::plan_export`], [`super::plan_rechunk`]).
#[derive(Debug)]
pub struct SharedPlan {
    pub(super) job: SharedJob,
    pub(super) inputs: Inputs,
    pub(super) reports: Vec<InputReport>,
    pub(super) rechunk: Rechunk,
    pub(super) target: Target,
    pub(super) to_chunk_size: u32,
    pub(super) survey: Survey,
    pub(super) counted: Option<u64>,
    pub(super) snapshot: Option<u32>,
}

impl SharedPlan {
    /// Which migration this is.
    pub fn job(&self) -> SharedJob {
        self.job
    }

    /// Same chunk size, split or merged.
    pub fn mode(&self) -> MigrateMode {
        self.rechunk.mode()
    }

    /// The inputs' chunk size in sectors.
    pub fn from_chunk_size(&self) -> u32 {
        (self.rechunk.in_bytes / SECTOR_BYTES) as u32
    }

    /// The output chunk size in sectors.
    pub fn to_chunk_size(&self) -> u32 {
        self.to_chunk_size
    }

    /// The output kind.
    pub fn to_kind(&self) -> StoreKind {
        match self.target {
            Target::Shared { .. } => StoreKind::Shared,
            Target::Classic { kind } => kind,
        }
    }

    /// The inputs, as they are now.
    pub fn inputs(&self) -> &[InputReport] {
        &self.reports
    }

    /// Whether the origin device is needed (a larger chunk size: the pieces of
    /// each new chunk that never changed come from the origin).
    pub fn needs_origin(&self) -> bool {
        self.mode() == MigrateMode::Merge
    }

    /// Output chunks to write (the steps of the progress).
    pub fn steps(&self) -> u64 {
        self.survey.chunks
    }

    /// Whether the space needed is exact: always for a classic output, for a
    /// shared one after [`SharedPlan::count`].
    pub fn is_exact(&self) -> bool {
        matches!(self.target, Target::Classic { .. }) || self.counted.is_some()
    }

    fn shared_need(&self, journal: JournalSize) -> SharedNeed {
        SharedNeed {
            chunk_bytes: self.rechunk.out_bytes,
            journal,
            content: self.counted.unwrap_or_else(|| self.survey.content_chunks()),
        }
    }

    /// Records of a classic output, and one more chunk when a legacy store
    /// needs room to move its last data chunk.
    fn classic_chunks(&self, kind: StoreKind) -> Result<u64> {
        let geometry = ClassicGeometry::new(self.to_chunk_size, 0)
            .map_err(|e| Error::Invalid(format!("target {e}")))?;
        let records = self.survey.copies;
        let relocation = kind == StoreKind::Legacy
            && records > 0
            && records.is_multiple_of(geometry.exceptions_per_area());
        Ok(chunks_needed(&geometry, records + u64::from(relocation)))
    }

    /// The smallest output, in bytes, that holds the migrated store (an upper
    /// bound for a shared output until [`SharedPlan::count`] ran).
    pub fn needed_bytes(&self) -> Result<u64> {
        match self.target {
            Target::Shared { journal, .. } => self.shared_need(journal).bytes(),
            Target::Classic { kind } => self
                .classic_chunks(kind)?
                .checked_mul(self.rechunk.out_bytes)
                .ok_or_else(|| {
                    Error::Invalid("the migrated store would not fit 64 bits of bytes".to_string())
                }),
        }
    }

    /// Whether an output of `device_bytes` surely holds the migrated store.
    pub fn fits(&self, device_bytes: u64) -> Result<bool> {
        match self.target {
            Target::Shared { journal, .. } => Ok(self.shared_need(journal).fits(device_bytes)),
            Target::Classic { .. } => Ok(device_bytes >= self.needed_bytes()?),
        }
    }

    /// Reads every content once, without writing, so that the space a shared
    /// output needs (after sharing) is exact. `progress` gets (done, total)
    /// output chunks.
    pub fn count(
        &mut self,
        origin: Option<&Device>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> std::result::Result<(), JobError> {
        if self.is_exact() {
            return Ok(());
        }
        let mut counter = Counter::new(self.rechunk.out_bytes);
        self.run(origin, &mut counter, progress)?;
        self.counted = Some(counter.content_chunks());
        Ok(())
    }

    /// Runs the inputs' entries through the pipeline into `sink`, reading
    /// unchanged pieces from `origin`; `progress` gets (done, total) output
    /// chunks.
    pub(super) fn run(
        &self,
        origin: Option<&Device>,
        sink: &mut dyn Sink,
        progress: &mut dyn FnMut(u64, u64),
    ) -> std::result::Result<Totals, JobError> {
        let devices = self.inputs.devices();
        let steps = self.steps();
        self.inputs.with_entries(|source| {
            job::run(
                source,
                self.rechunk,
                &devices,
                origin,
                sink,
                steps,
                progress,
            )
        })
    }

    /// Bytes the inputs use together.
    pub fn space_before(&self) -> u64 {
        self.reports.iter().map(|r| r.shape.used_bytes()).sum()
    }
}

/// Refuses a shared target of `chunk_sectors`-sector chunks for the snapshots
/// of `snapmask` when that chunk size serves fewer (format-shared.md,
/// decision 8).
pub(super) fn refuse_snapshot_limit(snapmask: u64, chunk_sectors: u32) -> Result<(), JobError> {
    check_snapshot_count(
        snapmask.count_ones(),
        u64::from(chunk_sectors) * SECTOR_BYTES,
    )
    .map_err(|e| Error::Invalid(e.to_string()).into())
}
