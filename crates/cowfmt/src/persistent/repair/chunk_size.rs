//! Settling the chunk size of a damaged store: given, from the header, or
//! inferred from the areas' records, and only when exactly one chunk size
//! reads credible records (or the header's field agrees with one of several).

use super::options::RepairOptions;
use super::report::{ChunkSizeSource, RepairReport};
use crate::device::Device;
use crate::error::Error;
use crate::kind::PERSISTENT_MAGIC;
use crate::persistent::chunk_evidence::{plausible_others, weigh, weigh_all, ChunkSizeEvidence};
use crate::persistent::header::{validate_chunk_size, Header, DISK_VERSION};
use crate::persistent::rebuild::JobError;

/// Settles the chunk size: the caller's, else the header's when the header is
/// sound (refused when it reads nothing and another size reads records), else
/// the one chunk size under which the first areas read credible records.
pub(super) fn choose_chunk_size(
    input: &Device,
    header: &Header,
    options: &RepairOptions,
    report: &mut RepairReport,
) -> std::result::Result<u32, JobError> {
    let field_usable = validate_chunk_size(u64::from(header.chunk_size)).is_ok()
        && input.size_bytes() >= 2 * u64::from(header.chunk_size) * crate::SECTOR_BYTES;
    if let Some(sectors) = options.chunk_size {
        validate_chunk_size(u64::from(sectors)).map_err(|e| Error::format(input.path(), e))?;
        report.chunk_size_source = ChunkSizeSource::Option;
        if field_usable && header.chunk_size != sectors {
            report.header_problems.push(format!(
                "chunk size field says {} sectors; {sectors} sectors were given and used",
                header.chunk_size
            ));
        }
        return Ok(sectors);
    }
    let identity_sound = header.magic == PERSISTENT_MAGIC && header.version == DISK_VERSION;
    if identity_sound && field_usable {
        refuse_if_header_size_reads_nothing(input, header.chunk_size)?;
        return Ok(header.chunk_size);
    }
    let preferred = field_usable.then_some(header.chunk_size);
    let plausible: Vec<ChunkSizeEvidence> = weigh_all(input)
        .into_iter()
        .filter(ChunkSizeEvidence::is_plausible)
        .collect();
    report.chunk_size_evidence = plausible.clone();
    match pick(input, &plausible, preferred)? {
        Some(evidence) => {
            let sectors = evidence.chunk_size;
            report.chunk_size_source = ChunkSizeSource::Inferred;
            report.inferred_chunk_size = Some(sectors);
            if field_usable && header.chunk_size != sectors {
                report.header_problems.push(format!(
                    "chunk size field says {} sectors, but the areas are where a {sectors}-sector chunk puts them",
                    header.chunk_size
                ));
            }
            let others = if plausible.len() == 1 {
                "no other chunk size reads a credible record".to_string()
            } else {
                format!(
                    "the header's chunk size field agrees, although {} also read credible records",
                    describe_all(plausible.iter().filter(|e| e.chunk_size != sectors))
                )
            };
            report.notes.push(format!(
                "the chunk size was inferred as {sectors} sectors: {}; {others}",
                evidence.text()
            ));
            Ok(sectors)
        }
        None if field_usable => {
            report.notes.push(format!(
                "no chunk size reads a credible record in the first areas; the header's {} sectors were used",
                header.chunk_size
            ));
            Ok(header.chunk_size)
        }
        None if report.header_problems.is_empty() => Err(JobError::Damage(format!(
            "{}: the device has {} bytes, too small for a header and area 0 with the header's chunk size of {} sectors; nothing to salvage",
            input.path().display(),
            input.size_bytes(),
            header.chunk_size
        ))),
        None => Err(JobError::Damage(format!(
            "{}: the header is unusable ({}) and no chunk size reads a credible record in the first areas; nothing to salvage unless the chunk size is given with --chunk-size",
            input.path().display(),
            report.header_problems.join("; ")
        ))),
    }
}

/// Refuses a sound header whose chunk size reads no credible record while
/// another chunk size reads credible records: repairing with it would write an
/// empty store, and repairing with another would overrule an intact header.
fn refuse_if_header_size_reads_nothing(input: &Device, sectors: u32) -> Result<(), JobError> {
    if weigh(input, sectors).is_some_and(|e| e.is_plausible()) {
        return Ok(());
    }
    let others: Vec<ChunkSizeEvidence> = plausible_others(input, sectors)
        .into_iter()
        .filter(ChunkSizeEvidence::is_compelling)
        .collect();
    let Some(best) = others.iter().max_by_key(|e| e.credible_records) else {
        return Ok(());
    };
    Err(JobError::Damage(format!(
        "{}: the header's chunk size of {sectors} sectors reads no credible record in the first areas, but under {}; the chunk size field looks damaged: give --chunk-size {}s to salvage those records (--chunk-size {sectors}s keeps the header's, which salvages nothing)",
        input.path().display(),
        describe_all(others.iter()),
        best.chunk_size
    )))
}

/// The one plausible chunk size, or the header's among several; several with
/// none preferred stop the repair.
fn pick(
    input: &Device,
    plausible: &[ChunkSizeEvidence],
    preferred: Option<u32>,
) -> Result<Option<ChunkSizeEvidence>, JobError> {
    match plausible {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => match many.iter().find(|e| Some(e.chunk_size) == preferred) {
            Some(agreed) => Ok(Some(*agreed)),
            None => Err(JobError::Damage(format!(
                "{}: the header's chunk size is lost and {} chunk sizes are plausible: {}; give the right one with --chunk-size",
                input.path().display(),
                many.len(),
                describe_all(many.iter())
            ))),
        },
    }
}

/// "8 sectors (344 records in 2 of the first 4 areas ...)", joined.
fn describe_all<'a>(evidence: impl Iterator<Item = &'a ChunkSizeEvidence>) -> String {
    evidence
        .map(|e| format!("{} sectors ({})", e.chunk_size, e.text()))
        .collect::<Vec<_>>()
        .join(", and ")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::super::analyze;
    use super::*;
    use crate::device::Access;
    use crate::persistent::test_store::committed_store;

    /// A 600-record store of 8-sector chunks whose area 0 is zeroed and whose
    /// header chunk holds 31 records that read as area 0 of 1-sector chunks;
    /// the header's 16 bytes are `header`.
    fn two_plausible_sizes(dir: &tempfile::TempDir, header: [u32; 4]) -> Device {
        let path = dir.path().join("cow.img");
        committed_store(&path, 2048, 600, |i| i * 5);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut records = vec![0u8; 31 * 16];
        file.read_exact_at(&mut records, 4096).unwrap();
        file.write_all_at(&records, 512).unwrap();
        file.write_all_at(&[0u8; 4096], 4096).unwrap();
        let fields: Vec<u8> = header.iter().flat_map(|f| f.to_le_bytes()).collect();
        file.write_all_at(&fields, 0).unwrap();
        Device::open(&path, Access::ReadOnly).unwrap()
    }

    #[test]
    fn two_plausible_sizes_stop_the_repair_unless_the_field_names_one() {
        let dir = tempfile::tempdir().unwrap();
        let wiped = two_plausible_sizes(&dir, [0, 0, 0, 0]);
        match analyze(&wiped, &RepairOptions::default(), &mut |_, _| {}) {
            Err(JobError::Damage(message)) => {
                assert!(message.contains("2 chunk sizes are plausible"), "{message}");
                assert!(
                    message.contains("give the right one with --chunk-size"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        drop(wiped);
        let field_kept = two_plausible_sizes(&dir, [0, 0, 0, 8]);
        let salvage = analyze(&field_kept, &RepairOptions::default(), &mut |_, _| {}).unwrap();
        let report = salvage.report();
        assert_eq!(report.chunk_size, 8);
        assert_eq!(report.chunk_size_source, ChunkSizeSource::Inferred);
        assert_eq!(report.kept, 344);
        assert_eq!(report.missing_records, 256);
        assert!(report.records_lost);
        let sizes: Vec<u32> = report
            .chunk_size_evidence
            .iter()
            .map(|e| e.chunk_size)
            .collect();
        assert_eq!(sizes, vec![1, 8]);
        assert!(
            report.notes.iter().any(|n| n
                .contains("the header's chunk size field agrees, although 1 sectors (31 records")),
            "{:?}",
            report.notes
        );
    }
}
