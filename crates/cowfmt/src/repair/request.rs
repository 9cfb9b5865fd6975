//! What the caller asks of a repair, as it asked it: the checks of option
//! combinations name the options as given.

use std::path::{Path, PathBuf};

use crate::device::{Access, Device};
use crate::error::Result;
use crate::kind::StoreKind;

use super::outcome::{refused, RepairError};

/// A repair as asked: where the damaged store is, where the salvage goes
/// (`output`, `in_place` with `backup`, or `dry_run`), and the overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairRequest {
    /// The damaged store (image file or block device); only read, except
    /// with `in_place`.
    pub input: PathBuf,
    /// The new store.
    pub output: Option<PathBuf>,
    /// Rebuild the input itself, from a verified copy in `backup`.
    pub in_place: bool,
    /// Where `in_place` copies the input first, or the backup an interrupted
    /// in-place repair made.
    pub backup: Option<PathBuf>,
    /// Analyse and report only; write nothing.
    pub dry_run: bool,
    /// The size of a new output image; the input's size by default.
    pub size: Option<u64>,
    /// The chunk size in sectors, overriding the header's.
    pub chunk_size: Option<u32>,
    /// The origin device: records past its end are dropped.
    pub origin: Option<PathBuf>,
    /// The origin's size in bytes, when the device is not at hand.
    pub origin_size: Option<u64>,
    /// The kind to repair as (`Persistent`, `Legacy` or `Shared`); by
    /// default the header's magic decides.
    pub kind: Option<StoreKind>,
    /// Shared stores: journal chunks, overriding the header's.
    pub journal_chunks: Option<u64>,
    /// Shared stores: the snapshots that exist, given as snapshot ids.
    pub snapshots: Option<u64>,
    /// Shared stores: the snapshots that exist, given as a snapmask.
    pub snapmask: Option<u64>,
    /// Shared stores: also look for leaves in chunks the bitmap marks free.
    pub full_scan: bool,
    /// Mark the output valid even if the input was invalidated.
    pub mark_valid: bool,
    /// Mark the output invalid when records were lost.
    pub invalidate_on_loss: bool,
    /// Persistent stores: salvage only the areas the kernel reads.
    pub kernel_areas_only: bool,
    /// Clone metadata: the clone's source device, to decide lost regions from the data.
    pub source: Option<PathBuf>,
    /// Clone metadata: the clone's destination device, compared with `source`.
    pub dest: Option<PathBuf>,
    /// Clone metadata: the state every lost region gets, when not decided from the data.
    pub lost_regions: Option<crate::clone::lost::LostRegions>,
    /// Clone metadata: the region size in sectors, replacing the
    /// superblock's.
    pub region_size: Option<u64>,
    /// Clone metadata: the target size in sectors, replacing the
    /// superblock's (when those are unusable: the size of `source` by default).
    pub target_size: Option<u64>,
    /// Overwrite an existing output or backup; with `kind`, also repair an
    /// input holding another kind's signature.
    pub force: bool,
}

impl RepairRequest {
    /// Refuses option combinations that name no job.
    pub fn validate<R>(&self) -> Result<(), RepairError<R>> {
        if self.in_place && self.backup.is_none() {
            return Err(refused("--in-place needs --backup FILE: the input is copied there and verified before it is rewritten".to_string()));
        }
        if self.backup.is_some() && !self.in_place {
            return Err(refused("--backup is only used with --in-place".to_string()));
        }
        if self.output.is_none() && !self.in_place && !self.dry_run {
            return Err(refused(
                "give the output with -o NEW (or --in-place --backup FILE, or --dry-run)"
                    .to_string(),
            ));
        }
        Ok(())
    }

    /// The origin's size in bytes: the origin device's, else `origin_size`.
    pub fn origin_bytes(&self) -> Result<Option<u64>> {
        Ok(match &self.origin {
            Some(origin) => Some(Device::open(origin, Access::ReadOnly)?.size_bytes()),
            None => self.origin_size,
        })
    }

    /// Every file the job reads, none of which may be the output or the backup.
    pub fn read_paths(&self) -> Vec<&Path> {
        std::iter::once(self.input.as_path())
            .chain(self.origin.as_deref())
            .chain(self.source.as_deref())
            .chain(self.dest.as_deref())
            .collect()
    }

    /// The backup path (empty when none was given: `validate` refuses that
    /// for an in-place repair).
    pub fn backup_path(&self) -> &Path {
        self.backup.as_deref().unwrap_or(Path::new(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(request: &RepairRequest) -> Option<String> {
        request.validate::<()>().err().map(|e| e.to_string())
    }

    #[test]
    fn every_job_needs_a_destination_and_a_backup_only_goes_with_in_place() {
        let base = RepairRequest {
            input: "in.img".into(),
            ..RepairRequest::default()
        };
        assert!(refusal(&base)
            .unwrap()
            .starts_with("give the output with -o NEW"));
        let in_place = RepairRequest {
            in_place: true,
            ..base.clone()
        };
        assert!(refusal(&in_place)
            .unwrap()
            .starts_with("--in-place needs --backup FILE"));
        let stray_backup = RepairRequest {
            output: Some("out.img".into()),
            backup: Some("b.img".into()),
            ..base.clone()
        };
        assert_eq!(
            refusal(&stray_backup).unwrap(),
            "--backup is only used with --in-place"
        );
        for fine in [
            RepairRequest {
                dry_run: true,
                ..base.clone()
            },
            RepairRequest {
                output: Some("out.img".into()),
                ..base.clone()
            },
            RepairRequest {
                in_place: true,
                backup: Some("b.img".into()),
                ..base.clone()
            },
        ] {
            assert_eq!(refusal(&fine), None, "{fine:?}");
        }
    }
}
