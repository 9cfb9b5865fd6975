//! Applies control messages to a served store: snapshot creation and deletion
//! through the engine (each made durable at once, as seed 002's forced
//! commit), the set of attached snapshot devices, and the status. A request
//! that cannot be honoured is refused before anything changes.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use cowengine::Engine;
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
    Created(u32),
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
    Attached(u32),
    /// A snapshot's device is now down.
    Detached(u32),
    /// The status.
    Status(Status),
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Created(id) => write!(f, "created snapshot {id}"),
            Reply::Deleted {
                id,
                freed_chunks,
                detached,
            } => {
                write!(f, "deleted snapshot {id} ({freed_chunks} chunks freed")?;
                if *detached {
                    f.write_str(", its device detached first")?;
                }
                f.write_str(")")
            }
            Reply::Attached(id) => write!(f, "attached snapshot {id}"),
            Reply::Detached(id) => write!(f, "detached snapshot {id}"),
            Reply::Status(status) => write!(f, "{status}"),
        }
    }
}

/// The control state of one served store.
#[derive(Debug, Default)]
struct State {
    attached: BTreeSet<u32>,
    new_snapshot: Option<u32>,
    error: i32,
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

    /// Applies `message`.
    pub fn handle(&self, message: Message) -> Result<Reply, ControlError> {
        let mut state = self.state();
        if let Some(id) = message.id() {
            self.require_snapshot(message, id)?;
        }
        let engine_error = |source| ControlError::Engine { message, source };
        let reply = match message {
            Message::Create | Message::CreateSubsnap(_) => {
                let created = match message {
                    Message::CreateSubsnap(parent) => self.engine.create_snapshot_of(parent),
                    _ => self.engine.create_snapshot(None),
                };
                let id = self.durable(&mut state, created).map_err(engine_error)?;
                state.new_snapshot = Some(id);
                Reply::Created(id)
            }
            Message::Delete(id) => {
                let detached = state.attached.remove(&id);
                let deleted = self.engine.delete_snapshot(id);
                let freed_chunks = self.durable(&mut state, deleted).map_err(engine_error)?;
                Reply::Deleted {
                    id,
                    freed_chunks,
                    detached,
                }
            }
            Message::Attach(id) => {
                if !state.attached.insert(id) {
                    return Err(ControlError::AlreadyAttached(id));
                }
                Reply::Attached(id)
            }
            Message::Detach(id) => {
                if !state.attached.remove(&id) {
                    return Err(ControlError::NotAttached(id));
                }
                Reply::Detached(id)
            }
            Message::Status => Reply::Status(self.status(&state).map_err(engine_error)?),
        };
        Ok(reply)
    }

    /// Commits after a change, recording an error that is not the caller's
    /// fault (full store, I/O) in the status, as seed 002 does.
    fn durable<T>(&self, state: &mut State, done: cowfmt::Result<T>) -> cowfmt::Result<T> {
        let result = done.and_then(|value| self.engine.commit().map(|()| value));
        if let Err(error) = &result {
            let errno = cowengine::errno::errno(error);
            if errno != libc::EINVAL && state.error == 0 {
                state.error = -errno;
            }
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
            journal: if journal_chunks == 0 {
                JournalState::None
            } else {
                JournalState::Unused {
                    chunks: journal_chunks,
                }
            },
        })
    }
}

#[cfg(test)]
mod tests;
