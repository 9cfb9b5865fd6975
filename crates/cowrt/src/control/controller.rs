//! Applies control messages to a served store: snapshot creation and deletion
//! through the engine (each made durable at once, as seed 002's forced
//! commit), the set of attached snapshot devices (brought up and down through
//! [`SnapshotDevices`]), and the status. A request that cannot be honoured is
//! refused before anything changes; a created snapshot whose device cannot
//! come up is deleted again.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use cowengine::{CommitMode, Engine};
use cowfmt::blockdev::BlockDev;

use super::message::Message;
use super::status::{JournalState, SnapshotUsage, Status};
use super::usage::read_usage;

/// Why a request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The message names a snapshot the store does not hold.
    #[error("{message}: snapshot {id} does not exist (snapshots: {existing})")]
    NoSuchSnapshot {
        /// The refused message.
        message: Message,
        /// The missing id.
        id: u32,
        /// The ids that exist, or "none".
        existing: String,
    },
    /// `attach` of a snapshot whose device is up.
    #[error("attach {0}: snapshot {0} is already attached")]
    AlreadyAttached(u32),
    /// `detach` of a snapshot whose device is down.
    #[error("detach {0}: snapshot {0} is not attached")]
    NotAttached(u32),
    /// A snapshot's device could not be brought up or down.
    #[error("{message}: {reason}")]
    Device {
        /// The message being applied.
        message: Message,
        /// Why, in one sentence.
        reason: String,
    },
    /// The engine failed.
    #[error("{message}: {source}")]
    Engine {
        /// The message being applied.
        message: Message,
        /// The engine's error.
        source: cowfmt::Error,
    },
}

/// What a request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A snapshot was created with this id.
    Created {
        /// The new id.
        id: u32,
        /// Its device, when a host serves it.
        device: Option<PathBuf>,
    },
    /// A snapshot was deleted; its device was detached first if it was up.
    Deleted {
        /// The deleted id.
        id: u32,
        /// Data chunks freed.
        freed_chunks: u64,
        /// Whether its device had to be detached.
        detached: bool,
    },
    /// A snapshot's device is now up.
    Attached {
        /// The snapshot id.
        id: u32,
        /// Its device, when a host serves it.
        device: Option<PathBuf>,
    },
    /// A snapshot's device is now down.
    Detached(u32),
    /// The status.
    Status(Status),
}

/// ` /dev/ublkbN`, or nothing.
struct Device<'a>(&'a Option<PathBuf>);

impl fmt::Display for Device<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(path) => write!(f, " {}", path.display()),
            None => Ok(()),
        }
    }
}

/// The words `cowrt message` prints (docs/cowrt.md): `created ID DEVICE`,
/// `deleted ID (N chunks freed)`, `attached ID DEVICE`, `detached ID`, or the
/// status line.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Created { id, device } => write!(f, "created {id}{}", Device(device)),
            Reply::Deleted {
                id, freed_chunks, ..
            } => write!(f, "deleted {id} ({freed_chunks} chunks freed)"),
            Reply::Attached { id, device } => write!(f, "attached {id}{}", Device(device)),
            Reply::Detached(id) => write!(f, "detached {id}"),
            Reply::Status(status) => write!(f, "{status}"),
        }
    }
}

/// Brings snapshot devices up and down for the controller. Each call is made
/// with the controller's state locked, so control requests never overlap.
pub trait SnapshotDevices {
    /// Brings snapshot `id`'s device up; returns its path.
    fn attach(&mut self, id: u32) -> Result<PathBuf, String>;
    /// Takes snapshot `id`'s device down.
    fn detach(&mut self, id: u32) -> Result<(), String>;
}

/// The control state of one served store.
#[derive(Debug, Default)]
struct State {
    attached: BTreeSet<u32>,
    new_snapshot: Option<u32>,
    error: i32,
}

impl State {
    /// Keeps the first error that is not a refused request (full store, I/O)
    /// for the status, as seed 002 does.
    fn record(&mut self, error: &cowfmt::Error) {
        let errno = cowengine::errno::errno(error);
        if errno != libc::EINVAL && self.error == 0 {
            self.error = -errno;
        }
    }
}

/// Applies messages to one engine; safe to share between threads.
#[derive(Debug)]
pub struct Controller<D: BlockDev> {
    engine: Arc<Engine<D>>,
    state: Mutex<State>,
}

impl<D: BlockDev> Controller<D> {
    /// The controller of `engine`'s store, with no snapshot attached.
    pub fn new(engine: Arc<Engine<D>>) -> Self {
        Controller {
            engine,
            state: Mutex::new(State::default()),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine<D>> {
        &self.engine
    }

    /// Snapshot ids whose devices are up.
    pub fn attached(&self) -> Vec<u32> {
        self.state().attached.iter().copied().collect()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `message` with no device host: the attached set is
    /// bookkeeping only, and replies name no device.
    pub fn handle(&self, message: Message) -> Result<Reply, ControlError> {
        self.apply(message, None)
    }

    /// Applies `message`, bringing snapshot devices up and down on `devices`.
    pub fn handle_with(
        &self,
        message: Message,
        devices: &mut dyn SnapshotDevices,
    ) -> Result<Reply, ControlError> {
        self.apply(message, Some(devices))
    }

    fn apply(
        &self,
        message: Message,
        mut devices: Option<&mut dyn SnapshotDevices>,
    ) -> Result<Reply, ControlError> {
        let mut state = self.state();
        if let Some(id) = message.id() {
            self.require_snapshot(message, id)?;
        }
        let engine_error = |source| ControlError::Engine { message, source };
        let device_error = |reason| ControlError::Device { message, reason };
        let reply = match message {
            Message::Create | Message::CreateSubsnap(_) => {
                let created = match message {
                    Message::CreateSubsnap(parent) => self.engine.create_snapshot_of(parent),
                    _ => self.engine.create_snapshot(None),
                };
                let id = self.durable(&mut state, created).map_err(engine_error)?;
                let device = match attach(&mut devices, id) {
                    Ok(device) => device,
                    Err(reason) => {
                        let undone = self.engine.delete_snapshot(id);
                        let undone = self.durable(&mut state, undone);
                        let reason = match undone {
                            Ok(_) => format!("{reason}; snapshot {id} was deleted again"),
                            Err(e) => format!("{reason}; deleting snapshot {id} again failed: {e}"),
                        };
                        return Err(device_error(reason));
                    }
                };
                state.attached.insert(id);
                state.new_snapshot = Some(id);
                Reply::Created { id, device }
            }
            Message::Delete(id) => {
                let detached = state.attached.contains(&id);
                if detached {
                    if let Some(devices) = devices.as_deref_mut() {
                        devices.detach(id).map_err(device_error)?;
                    }
                    state.attached.remove(&id);
                }
                let deleted = self.engine.delete_snapshot(id);
                let freed_chunks = self.durable(&mut state, deleted).map_err(engine_error)?;
                Reply::Deleted {
                    id,
                    freed_chunks,
                    detached,
                }
            }
            Message::Attach(id) => {
                if state.attached.contains(&id) {
                    return Err(ControlError::AlreadyAttached(id));
                }
                let device = attach(&mut devices, id).map_err(device_error)?;
                state.attached.insert(id);
                Reply::Attached { id, device }
            }
            Message::Detach(id) => {
                if !state.attached.contains(&id) {
                    return Err(ControlError::NotAttached(id));
                }
                if let Some(devices) = devices {
                    devices.detach(id).map_err(device_error)?;
                }
                state.attached.remove(&id);
                Reply::Detached(id)
            }
            Message::Status => Reply::Status(self.status(&state).map_err(engine_error)?),
        };
        Ok(reply)
    }

    /// Commits every change so far, recording a failure in the status as a
    /// request's would be.
    pub fn commit(&self) -> cowfmt::Result<()> {
        let done = self.engine.commit();
        if let Err(error) = &done {
            self.state().record(error);
        }
        done
    }

    /// Records snapshot `id`'s device as up without a request (the daemon
    /// brings up every snapshot's device at start).
    pub fn mark_attached(&self, id: u32) {
        self.state().attached.insert(id);
    }

    /// Commits after a change, recording an error that is not the caller's
    /// fault (full store, I/O) in the status, as seed 002 does.
    fn durable<T>(&self, state: &mut State, done: cowfmt::Result<T>) -> cowfmt::Result<T> {
        let result = done.and_then(|value| self.engine.commit().map(|()| value));
        if let Err(error) = &result {
            state.record(error);
        }
        result
    }

    fn require_snapshot(&self, message: Message, id: u32) -> Result<(), ControlError> {
        let mask = self.engine.snapmask();
        if id < 64 && mask & (1 << id) != 0 {
            return Ok(());
        }
        let ids: Vec<String> = (0..64)
            .filter(|s| mask & (1 << s) != 0)
            .map(|s| s.to_string())
            .collect();
        Err(ControlError::NoSuchSnapshot {
            message,
            id,
            existing: if ids.is_empty() {
                "none".to_string()
            } else {
                ids.join(", ")
            },
        })
    }

    /// The status of what is committed, after committing what is not.
    fn status(&self, state: &State) -> cowfmt::Result<Status> {
        self.engine.commit()?;
        let header = self.engine.header();
        let cow = self.engine.cow_device();
        let usage = read_usage(cow, &header)?;
        let total_chunks = cow.size() / (u64::from(header.chunk_size) * cowfmt::SECTOR_BYTES);
        let journal_chunks = u64::from(header.nr_journal_chunks);
        Ok(Status {
            error: state.error,
            new_snapshot: state.new_snapshot,
            chunk_sectors: header.chunk_size,
            total_chunks,
            allocated_chunks: usage.allocated_chunks,
            metadata_chunks: usage.allocated_chunks - usage.data_chunks.min(usage.allocated_chunks),
            free_chunks: total_chunks.saturating_sub(usage.allocated_chunks),
            snapshots: usage
                .per_snapshot
                .iter()
                .map(|(&id, &(chunks, exclusive_chunks))| SnapshotUsage {
                    id,
                    chunks,
                    exclusive_chunks,
                })
                .collect(),
            journal: journal_state(&self.engine, journal_chunks),
        })
    }
}

/// The journal's part of the status.
fn journal_state<D: BlockDev>(engine: &Engine<D>, chunks: u64) -> JournalState {
    match engine.commit_mode() {
        CommitMode::Journaled {
            max_transaction_chunks,
            ..
        } => {
            let stats = engine.commit_stats();
            JournalState::Journaled {
                chunks,
                max_transaction_chunks,
                commits_requested: stats.requested,
                transactions_written: stats.written,
                pending_free_chunks: engine.pending_frees(),
            }
        }
        mode @ CommitMode::InPlace(_) => JournalState::InPlace {
            chunks,
            reason: mode.to_string(),
        },
    }
}

/// Brings snapshot `id`'s device up on `devices`, if there is a host.
fn attach(
    devices: &mut Option<&mut dyn SnapshotDevices>,
    id: u32,
) -> Result<Option<PathBuf>, String> {
    match devices.as_deref_mut() {
        Some(devices) => devices.attach(id).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests;
