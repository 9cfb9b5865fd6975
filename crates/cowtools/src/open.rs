//! Opening a store: the kind comes from its first block (the kind facade,
//! [`cowfmt::store`]); `--kind` insists on one and fails clearly when the
//! header disagrees.

use std::path::Path;

use cowfmt::device::Device;
use cowfmt::StoreKind;

/// Opens `path` and tells which kind of store it holds, through the kind
/// facade ([`cowfmt::store::open`]): by its first block; `--kind legacy` is
/// accepted for a SnAp store (same bytes); a disagreeing `--kind` is an error
/// naming both.
pub fn detect_kind(path: &Path, wanted: Option<StoreKind>) -> anyhow::Result<(Device, StoreKind)> {
    Ok(cowfmt::store::open(path, wanted)?)
}

/// Fails with a clear message for kinds this build cannot handle yet.
pub fn unsupported(kind: StoreKind, path: &Path, tool: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: {tool} does not handle {kind} stores in this version",
        path.display()
    )
}

/// Prints on stderr, as `tool: ...`, that `path` is held open elsewhere
/// (mounted, claimed, attached to a loop device), if it is: what a tool that
/// only reads says before it reads a live device, and then goes on.
pub fn warn_if_in_use(tool: &str, path: &Path) {
    if let Some(found) = cowfmt::in_use::held_elsewhere(path) {
        eprintln!("{tool}: {}", found.warning());
    }
}

/// The store on `device` as its last commit left it, through the facade
/// ([`cowfmt::store::read_committed`]: a shared store is read through its
/// journal's committed transactions; the store is not written); and how many
/// transactions were read through. A damaged journal superblock hides
/// nothing that can be read: it is warned about on stderr, as `tool: ...`,
/// and the store is read as it is on disk.
pub fn as_committed(tool: &str, device: Device, kind: StoreKind) -> anyhow::Result<(Device, u64)> {
    let path = device.path().to_path_buf();
    let committed = cowfmt::store::read_committed(device, kind)?;
    if let Some(why) = &committed.journal_damage {
        eprintln!(
            "{tool}: warning: {}: the journal superblock is damaged ({why}): the store is read as it is on disk; cowrepair reformats the journal",
            path.display()
        );
    }
    Ok((committed.device, committed.transactions_read))
}

/// The sentence saying that `n` committed journal transactions were read
/// through (`None` for 0).
pub fn journal_read_note(n: u64) -> Option<String> {
    (n > 0).then(|| {
        format!(
            "read through {n} committed journal transaction{} not yet written home (the store was not written)",
            if n == 1 { "" } else { "s" }
        )
    })
}
