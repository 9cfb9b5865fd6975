//! Repair of a store of any kind: the kind is chosen once here (from
//! `--kind`, the header's magic, a dm-clone superblock, or the leaves of a
//! shared store whose header is wiped), an input holding another kind's signature is refused unless the
//! caller insists, and the kind's own job runs.

use serde::Serialize;

use crate::clone::repair as clone;
use crate::device::{Access, Device};
use crate::kind::{StoreKind, PERSISTENT_MAGIC, SHARED_MAGIC};
use crate::persistent::repair as persistent;
use crate::probe::{self, Coverage};
use crate::repair::in_place::kind_source;
use crate::repair::{refused, Finished, Notice, RepairError, RepairEvents, RepairRequest, Verdict};
use crate::shared::repair as shared;
use crate::store::probe::FirstBlock;

/// The report of a repair, by kind. Serializes as the kind's own report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RepairReport {
    /// A persistent or legacy store's.
    Persistent(Box<persistent::RepairReport>),
    /// A shared store's.
    Shared(Box<shared::RepairReport>),
    /// Clone metadata's.
    Clone(Box<clone::CloneRepairReport>),
}

impl RepairReport {
    /// Whether records were kept, lost, or none could be salvaged.
    pub fn verdict(&self) -> Verdict {
        match self {
            RepairReport::Persistent(report) => report.verdict(),
            RepairReport::Shared(report) => report.verdict(),
            RepairReport::Clone(report) => report.verdict(),
        }
    }
}

/// How a repair of any kind ended, or why it stopped.
pub type RepairResult = Result<Finished<RepairReport>, RepairError<RepairReport>>;

/// Repairs the store `request` names, telling `events` what happens as it goes.
pub fn repair(request: &RepairRequest, events: &mut dyn RepairEvents) -> RepairResult {
    request.validate()?;
    let input = kind_source(request, Device::open(&request.input, Access::ReadOnly)?)?;
    let first = FirstBlock::read(&input, &|| "the store magic".to_string()).ok();
    let magic = first.as_ref().map(|first| first.magic);
    let named_clone = first.is_some_and(|first| first.kind() == Ok(StoreKind::Clone));
    if request.kind == Some(StoreKind::Clone) || (request.kind.is_none() && named_clone) {
        let clone = |r| RepairReport::Clone(Box::new(r));
        return clone::run(request, input, events)
            .map(|done| finished(done, clone))
            .map_err(|e| e.map_report(clone));
    }
    refuse_foreign_input(request, &input, magic, events)?;
    if let Some(probed) = shared_kind(request, &input, magic)? {
        let shared = |r| RepairReport::Shared(Box::new(r));
        return shared::run(request, input, probed, events)
            .map(|done| finished(done, shared))
            .map_err(|e| e.map_report(shared));
    }
    let persistent = |r| RepairReport::Persistent(Box::new(r));
    persistent::run(request, input, events)
        .map(|done| finished(done, persistent))
        .map_err(|e| e.map_report(persistent))
}

fn finished<R>(done: Finished<R>, into: impl FnOnce(R) -> RepairReport) -> Finished<RepairReport> {
    Finished {
        report: into(done.report),
        output: done.output,
        problems: done.problems,
    }
}

/// Refuses an input whose `magic` is no COW store's and that carries another
/// kind's signature (dm-clone or dm-thin metadata, a file system, a partition
/// table...) before anything is read as a store or written; `kind` and
/// `force` together insist, and `events` is told what is treated as a store.
fn refuse_foreign_input(
    request: &RepairRequest,
    input: &Device,
    magic: Option<u32>,
    events: &mut dyn RepairEvents,
) -> Result<(), RepairError<RepairReport>> {
    if matches!(magic, Some(PERSISTENT_MAGIC | SHARED_MAGIC)) {
        return Ok(());
    }
    let mut found = probe::probe(input)?;
    if let Coverage::OwnKindsOnly(_) = &found.coverage {
        events.notice(Notice::Coverage {
            path: input.path(),
            coverage: &found.coverage,
        });
    }
    found.signatures.retain(|s| !s.is_cow_store());
    if found.signatures.is_empty() {
        return Ok(());
    }
    let path = request.input.display();
    let what = found.describe();
    let Some(kind) = request.kind else {
        return Err(refused(format!("{path}: holds {what}, not a COW store; nothing was written (give --kind and --force to repair it as a store anyway)")));
    };
    if !request.force {
        return Err(refused(format!("{path}: holds {what}; --kind {kind} insists on a {kind} store, but a foreign signature also needs --force")));
    }
    events.notice(Notice::TreatedAsStore {
        path: &request.input,
        what: &what,
        kind,
        in_place: request.in_place,
    });
    Ok(())
}

/// Whether the input is to be repaired as a shared store: by `kind`, else by
/// its `magic` (`None`: unreadable), else (no store's magic at all) when
/// leaves and a bitmap of a shared store are found. `Some(true)` when it was
/// found that way.
fn shared_kind(
    request: &RepairRequest,
    input: &Device,
    magic: Option<u32>,
) -> Result<Option<bool>, RepairError<RepairReport>> {
    let path = request.input.display();
    match (request.kind, magic) {
        (Some(StoreKind::Shared), Some(PERSISTENT_MAGIC)) => Err(refused(format!(
            "{path}: --kind shared was given, but the header says this is a persistent store"
        ))),
        (Some(StoreKind::Shared), _) => Ok(Some(false)),
        (Some(kind), Some(SHARED_MAGIC)) => Err(refused(format!(
            "{path}: --kind {kind} was given, but the header says this is a shared store"
        ))),
        (Some(_), _) => Ok(None),
        (None, Some(SHARED_MAGIC)) => Ok(Some(false)),
        (None, Some(PERSISTENT_MAGIC)) | (None, None) => Ok(None),
        (None, Some(_)) => Ok(shared::probe_wiped_header(input)?.map(|_| true)),
    }
}
