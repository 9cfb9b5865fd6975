//! The input check of a migration: a store is only converted when the checker
//! finds no error in it.

use crate::finding::{Finding, FindingCode, Severity};
use crate::persistent::check::{check, CheckOptions};
use crate::persistent::PersistentStore;

use super::JobError;

/// Refuses `store` when the checker, run with `options`, finds an error. When
/// every error is a record past the end of the given origin, the message
/// points at the origin rather than at the store.
pub(crate) fn refuse_damaged(
    store: &PersistentStore,
    options: &CheckOptions,
) -> Result<(), JobError> {
    let report = check(store.device(), options)?;
    let errors: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    let Some(first) = errors.first() else {
        return Ok(());
    };
    let path = store.device().path().display();
    let past_origin = errors.iter().all(|f| {
        matches!(
            f.code,
            FindingCode::OldChunkPastOrigin | FindingCode::FindingsSuppressed
        )
    });
    let count: u64 = errors
        .iter()
        .map(|f| match f.code {
            FindingCode::FindingsSuppressed => f.location.count.unwrap_or(0),
            _ => 1,
        })
        .sum();
    let plural = if count == 1 { "" } else { "s" };
    Err(JobError::Damage(if past_origin {
        format!(
            "{path}: {count} record{plural} lie past the end of the origin ({}); is --origin the device this store snapshots?",
            first.message
        )
    } else {
        format!(
            "{path}: the store has {count} problem{plural} ({}); repair it with cowrepair first",
            first.message
        )
    }))
}
