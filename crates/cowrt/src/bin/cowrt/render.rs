//! What `cowrt dm` prints for people.

use std::io::{self, Write};

use cowrt::dm::classic::{ActivateRequest, Activation, DmStatus, MergeReport};
use cowrt::dm::precheck::ClassicKind;
use cowrt::dm::status::{CloneState, SnapshotState, StatusLine, TargetStatus};

const DRY: &str = "dry run: nothing was changed";

/// The devices an activation made, and what to know about them.
pub fn activation(
    out: &mut dyn Write,
    request: &ActivateRequest,
    done: &Activation,
    dry_run: bool,
) -> io::Result<()> {
    if dry_run {
        writeln!(out, "{DRY}")?;
        return Ok(());
    }
    writeln!(
        out,
        "activated {} ({}): snapshot {}, origin {} (write to the origin only through it)",
        request.name,
        request.kind.as_str(),
        done.snapshot_device,
        done.origin_device
    )?;
    writeln!(out, "  {}: {}", done.origin_device, done.origin_table)?;
    writeln!(out, "  {}: {}", done.snapshot_device, done.snapshot_table)?;
    if request.kind == ClassicKind::Transient {
        writeln!(
            out,
            "  transient: nothing is kept on disk; the snapshot is gone once deactivated"
        )?;
    } else if done.formatted_by_kernel {
        writeln!(out, "  the COW device was empty: the kernel formatted it")?;
    }
    Ok(())
}

fn snapshot_state(state: &SnapshotState) -> String {
    match state {
        SnapshotState::Active {
            allocated_sectors,
            total_sectors,
            metadata_sectors,
        } => format!(
            "{allocated_sectors}/{total_sectors} sectors in use ({:.1}%), {metadata_sectors} of them metadata",
            *allocated_sectors as f64 * 100.0 / (*total_sectors).max(1) as f64
        ),
        SnapshotState::Invalid => "Invalid: the snapshot is lost (store full or failed)".to_string(),
        SnapshotState::Overflow => "Overflow: the store is full; the snapshot stays readable".to_string(),
        SnapshotState::MergeFailed => "Merge failed".to_string(),
        SnapshotState::Unknown => "Unknown".to_string(),
    }
}

fn line(status: &StatusLine) -> String {
    match &status.status {
        TargetStatus::SnapshotOrigin => "snapshot-origin".to_string(),
        TargetStatus::Linear => "linear".to_string(),
        TargetStatus::Snapshot { state } => format!("snapshot, {}", snapshot_state(state)),
        TargetStatus::SnapshotMerge { state } => {
            let done = if state.merge_done() {
                "done"
            } else {
                "merging"
            };
            format!("snapshot-merge ({done}), {}", snapshot_state(state))
        }
        TargetStatus::Clone { state } => match state {
            CloneState::Active(usage) => format!(
                "clone, {}/{} regions hydrated, metadata {}",
                usage.hydrated_regions, usage.total_regions, usage.mode
            ),
            CloneState::Fail => "clone, Fail".to_string(),
            CloneState::Error => "clone, Error".to_string(),
        },
    }
}

/// One line per device.
pub fn status(out: &mut dyn Write, status: &DmStatus) -> io::Result<()> {
    if let Some(snapshot) = &status.snapshot {
        writeln!(out, "{}: {}", status.name, line(snapshot))?;
    }
    if let Some(origin) = &status.origin {
        writeln!(out, "{}-origin: {}", status.name, line(origin))?;
    }
    Ok(())
}

/// What a merge did.
pub fn merge(
    out: &mut dyn Write,
    name: &str,
    report: &MergeReport,
    dry_run: bool,
) -> io::Result<()> {
    if dry_run {
        writeln!(
            out,
            "{DRY} (a real merge waits between the first resume and the second suspend until \
             `dmsetup status {name}-origin` shows only metadata sectors in use)"
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "merged {name} into {} in {:.1} s ({} status polls); it now maps the origin linearly",
        report.origin_device,
        report.waited.as_secs_f64(),
        report.polls
    )
}

/// What a deactivation removed.
pub fn deactivation(
    out: &mut dyn Write,
    name: &str,
    loops: &[String],
    dry_run: bool,
) -> io::Result<()> {
    if dry_run {
        return writeln!(out, "{DRY}");
    }
    write!(out, "deactivated {name}")?;
    if !loops.is_empty() {
        write!(out, "; detached {}", loops.join(", "))?;
    }
    writeln!(out)
}
