//! What a tool says before it writes over, or reads as a store, a device
//! that holds something: the refusal without `--force`, and with it, a line
//! on stderr naming what is destroyed. The search is `cowfmt::probe`'s.

use anyhow::bail;
use cowfmt::device::Device;
use cowfmt::probe::{self, Coverage, Occupant, Probe};

/// Refuses to write a new store over `device` when it holds any signature,
/// or non-zero bytes in its first `first_bytes`, unless `force`; with
/// `force`, says on stderr what is overwritten. Notes on stderr when libblkid
/// and wipefs could not run, so only the COW kinds were looked for.
pub fn guard_overwrite(
    tool: &str,
    device: &Device,
    first_bytes: u64,
    force: bool,
) -> anyhow::Result<()> {
    let survey = probe::survey(device, first_bytes)?;
    let path = device.path().display();
    note_coverage(tool, &path.to_string(), &survey.coverage);
    let (refusal, destroyed) = match &survey.occupant {
        Occupant::Nothing => return Ok(()),
        Occupant::Signatures(found) => (
            format!("already holds {}", found.describe()),
            found.describe(),
        ),
        Occupant::StrayData(first) => (
            format!("chunk 0 is not all zero (first non-zero byte at offset {first})"),
            format!("chunk 0, which is not all zero (first non-zero byte at offset {first}),"),
        ),
    };
    if !force {
        bail!("{path}: {refusal}; use --force to overwrite it");
    }
    eprintln!("{tool}: {path}: overwriting {destroyed} because --force was given");
    Ok(())
}

/// The foreign signatures on `device` (anything but a COW store), for a tool
/// that is about to read it as a store.
pub fn foreign(tool: &str, device: &Device) -> anyhow::Result<Option<Probe>> {
    let mut found = probe::probe(device)?;
    note_coverage(tool, &device.path().display().to_string(), &found.coverage);
    found.signatures.retain(|s| !s.is_cow_store());
    Ok((!found.signatures.is_empty()).then_some(found))
}

/// Notes on stderr, for `path`, that only the COW kinds were looked for when
/// libblkid and wipefs could not run.
pub fn note_coverage(tool: &str, path: &str, coverage: &Coverage) {
    if let Coverage::OwnKindsOnly(why) = coverage {
        eprintln!(
            "{tool}: note: {path}: only COW stores and dm metadata were looked for; file systems, partition tables and other signatures were not ({why})"
        );
    }
}
