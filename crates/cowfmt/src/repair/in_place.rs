//! The in-place repair's safety: the input is claimed for writing, copied to
//! a verified backup, and marked in repair on disk before its first metadata
//! write; an interrupted repair is finished from the backup it recorded.

use std::path::Path;

use crate::device::{Access, Device};
use crate::output::{self, InRepair, Marker, OutputClaim};

use super::backup::{copy_device, verify_copy};
use super::events::{in_phase, Phase, RepairEvents};
use super::outcome::{refused, RepairError};
use super::request::RepairRequest;
use super::target::open_for_writing;

/// The device whose magic says which kind to repair: the input, or for an
/// input an interrupted in-place repair left marked, its backup (the input's
/// own first sector holds the marker, and its metadata is half rewritten).
pub fn kind_source<R>(request: &RepairRequest, input: Device) -> Result<Device, RepairError<R>> {
    let Some(Marker::InRepair(marker)) = Marker::read(&input)? else {
        return Ok(input);
    };
    let Some(backup) = request.backup.as_deref().filter(|_| request.in_place) else {
        return Err(refused(format!(
            "{}: {}",
            request.input.display(),
            Marker::InRepair(marker).describe()
        )));
    };
    Ok(Device::open(backup, Access::ReadOnly)?)
}

/// An in-place repair about to write: the input, claimed for writing before
/// anything else happened, and the verified backup to rebuild it from.
pub struct InPlace {
    /// The input, opened for writing.
    pub target: Device,
    target_claim: OutputClaim,
    /// The verified backup, read-only: the job reads the store from it.
    pub backup: Device,
    backup_claim: Option<OutputClaim>,
    marker: InRepair,
}

impl InPlace {
    /// Claims the input for writing (refused here when it is busy or
    /// read-only, before any backup is made), then either finds it marked
    /// in repair and checks that the backup is the one recorded there, or
    /// copies it to the backup and verifies the copy.
    pub fn prepare<R>(
        request: &RepairRequest,
        input: Device,
        events: &mut dyn RepairEvents,
    ) -> Result<Self, RepairError<R>> {
        let (target, target_claim) = output::claim_in_place(&request.input)?;
        let backup_path = request
            .backup
            .as_deref()
            .ok_or_else(|| refused("--in-place needs --backup FILE".to_string()))?;
        if let Some(Marker::InRepair(marker)) = Marker::read(&target)? {
            let backup = Device::open(backup_path, Access::ReadOnly)?;
            if output::same_file(&std::fs::metadata(backup_path)?, &request.input) {
                return Err(refused(format!(
                    "{}: the backup is the input itself; give the backup the interrupted repair made ({})",
                    backup_path.display(),
                    marker.backup_path
                )));
            }
            marker.verify(&backup, &request.input)?;
            return Ok(InPlace {
                target,
                target_claim,
                backup,
                backup_claim: None,
                marker,
            });
        }
        let mut magic = [0u8; 4];
        target.read_at(&mut magic, 0, || "the store magic".to_string())?;
        let (backup, backup_claim) = back_up(request, input, backup_path, events)?;
        let marker = InRepair::of_backup(
            &backup,
            u32::from_le_bytes(magic),
            &backup_path.display().to_string(),
        )?;
        Ok(InPlace {
            target,
            target_claim,
            backup,
            backup_claim: Some(backup_claim),
            marker,
        })
    }

    /// Marks the input in repair (on disk, before its first metadata write)
    /// and keeps the backup from then on, whatever happens next. Returns the
    /// input to write, the backup to read, and the input's claim.
    pub fn mark(self) -> crate::Result<(Device, Device, OutputClaim)> {
        Marker::InRepair(self.marker).write(&self.target)?;
        if let Some(claim) = self.backup_claim {
            claim.keep();
        }
        Ok((self.target, self.backup, self.target_claim))
    }
}

/// Copies the input to `backup_path` and verifies the copy; returns the
/// backup, opened read-only, and the claim that removes it if the job stops
/// before the input is touched. The input is closed.
fn back_up<R>(
    request: &RepairRequest,
    input: Device,
    backup_path: &Path,
    events: &mut dyn RepairEvents,
) -> Result<(Device, OutputClaim), RepairError<R>> {
    let prepared = open_for_writing(request, backup_path, input.size_bytes(), false, events)?;
    if prepared.device.size_bytes() < input.size_bytes() {
        return Err(refused(format!(
            "{}: the backup device has {} bytes, fewer than the {} of {}",
            backup_path.display(),
            prepared.device.size_bytes(),
            input.size_bytes(),
            request.input.display()
        )));
    }
    let total = input.size_bytes();
    in_phase(events, Phase::BackingUp(total), |progress| {
        copy_device(&input, &prepared.device, prepared.zeroed, progress)
    })?;
    let claim = prepared.claim;
    drop(prepared.device);
    let backup = Device::open(backup_path, Access::ReadOnly)?;
    in_phase(events, Phase::VerifyingCopy(total), |progress| {
        verify_copy(&input, &backup, progress)
    })?;
    Ok((backup, claim))
}
