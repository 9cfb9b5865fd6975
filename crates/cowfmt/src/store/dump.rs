//! Dumping a store of any kind: opened once for the kind its header names,
//! then written as the kind's JSON or YAML document (`persistent::dump::text`,
//! `shared::dump::text`, `clone::dump::text`); the tools render tables from
//! the same opened store.

use std::io::Write;

use crate::clone::dump::text as clone_text;
use crate::clone::dump::CloneDump;
use crate::device::Device;
use crate::dump_lines::{DumpWriteError, TextSyntax};
use crate::error::Result;
use crate::kind::StoreKind;
use crate::persistent::dump::{self as persistent_dump, DumpHead, DumpTail};
use crate::persistent::PersistentStore;
use crate::shared::bitmap::ChunkBitmap;
use crate::shared::dump::text::{self as shared_text};
use crate::shared::dump::{SharedDumpHead, SharedDumpTail, SharedSource};

pub use crate::clone::dump::blocks::{
    blocks_head as clone_blocks_head, list_blocks as list_clone_blocks,
    write_blocks_document as write_clone_blocks,
};
pub use crate::shared::dump::journal::JournalDump;
pub use crate::shared::dump::text::{write_journal, View};

/// A store opened for a dump.
pub enum Dumped {
    /// A persistent or legacy store, labelled as `kind`.
    Persistent {
        /// The store.
        store: PersistentStore,
        /// `persistent` or `legacy`.
        kind: StoreKind,
    },
    /// A shared store.
    Shared(SharedSource),
    /// dm-clone metadata, read whole (one bit per region).
    Clone {
        /// The metadata device.
        device: Device,
        /// What was read of it.
        dump: Box<CloneDump>,
    },
}

/// What a dump holds beyond the store's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpOptions {
    /// Persistent stores: add the kernel's in-memory runs.
    pub runs: bool,
    /// Shared stores: the list dumped.
    pub view: View,
}

/// A dump ready to be written: the opened store and the head, known before
/// the records are read.
pub enum Prepared<'a> {
    /// Of a persistent store.
    Persistent {
        /// The store.
        store: &'a PersistentStore,
        /// Header and geometry.
        head: DumpHead,
    },
    /// Of a shared store.
    Shared {
        /// The store.
        source: &'a SharedSource,
        /// Header, geometry, snapshots and chunk counts.
        head: SharedDumpHead,
        /// The bitmap the chunk counts come from.
        bitmap: ChunkBitmap,
    },
    /// Of dm-clone metadata.
    Clone(&'a CloneDump),
}

/// The tail of a dump: known once the records are read.
#[derive(Debug, Clone, PartialEq)]
pub enum Tail {
    /// Of a persistent store.
    Persistent(DumpTail),
    /// Of a shared store.
    Shared(SharedDumpTail),
    /// Of dm-clone metadata: the problems found reading it.
    Clone(Vec<String>),
}

impl Dumped {
    /// Opens `device`, whose header names `kind`, for a dump; `None` for a
    /// kind that cannot be dumped yet.
    pub fn open(device: Device, kind: StoreKind) -> Result<Option<Self>> {
        Ok(match kind {
            StoreKind::Shared => Some(Dumped::Shared(SharedSource::open(device)?)),
            StoreKind::Clone => {
                let dump = Box::new(CloneDump::read(&device)?);
                Some(Dumped::Clone { device, dump })
            }
            kind if kind.is_snap_v1() => Some(Dumped::Persistent {
                store: PersistentStore::open(device, None)?,
                kind,
            }),
            _ => None,
        })
    }

    /// The device dumped.
    pub fn device(&self) -> &Device {
        match self {
            Dumped::Persistent { store, .. } => store.device(),
            Dumped::Shared(source) => source.device(),
            Dumped::Clone { device, .. } => device,
        }
    }

    /// The chunk size in bytes and the whole chunks on the device (for
    /// dm-clone metadata: its 4 KiB blocks).
    pub fn chunks(&self) -> (u64, u64) {
        match self {
            Dumped::Persistent { store, .. } => {
                let geometry = store.geometry();
                (geometry.chunk_bytes() as u64, geometry.device_chunks())
            }
            Dumped::Shared(source) => {
                let geometry = source.geometry();
                (geometry.chunk_bytes, geometry.nr_chunks)
            }
            Dumped::Clone { device, .. } => {
                let block = crate::clone::superblock::METADATA_BLOCK_BYTES as u64;
                (block, device.size_bytes() / block)
            }
        }
    }

    /// Committed journal transactions the dump cannot show (their images are
    /// not home yet); 0 when there are none or the journal cannot be read
    /// (that is left to the checker).
    pub fn unreplayed_transactions(&self) -> usize {
        let Dumped::Shared(source) = self else {
            return 0;
        };
        match crate::shared::journal::scan(source.device(), source.geometry()) {
            Ok(found) if found.needs_replay() => found.committed.len(),
            _ => 0,
        }
    }

    /// Reads the head of a dump with `options`.
    pub fn prepare(&self, options: &DumpOptions) -> Result<Prepared<'_>> {
        Ok(match self {
            Dumped::Persistent { store, kind } => Prepared::Persistent {
                store,
                head: persistent_dump::head_of(store, *kind),
            },
            Dumped::Clone { dump, .. } => Prepared::Clone(dump),
            Dumped::Shared(source) => {
                let bitmap = source.load_bitmap()?;
                let snapshot = match options.view {
                    View::Snapshot(id) => Some(id),
                    _ => None,
                };
                Prepared::Shared {
                    source,
                    head: source.head(&bitmap, snapshot),
                    bitmap,
                }
            }
        })
    }
}

impl Prepared<'_> {
    /// Writes the document of the dump with `options` in `syntax`; `tick`
    /// gets the count of records written after each one.
    pub fn write_document(
        &self,
        out: &mut dyn Write,
        options: &DumpOptions,
        syntax: TextSyntax,
        tick: &dyn Fn(u64),
    ) -> std::result::Result<Tail, DumpWriteError> {
        Ok(match self {
            Prepared::Persistent { store, head } => {
                Tail::Persistent(persistent_dump::text::write_document(
                    out,
                    store,
                    head,
                    syntax,
                    options.runs,
                    tick,
                )?)
            }
            Prepared::Shared {
                source,
                head,
                bitmap,
            } => Tail::Shared(shared_text::write_document(
                out,
                source,
                head,
                bitmap,
                options.view,
                syntax,
                tick,
            )?),
            Prepared::Clone(dump) => {
                clone_text::write_document(out, dump, syntax, tick)?;
                Tail::Clone(dump.tail.problems.clone())
            }
        })
    }
}
