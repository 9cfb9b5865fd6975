//! Classic (persistent or legacy) COW stores as the inputs of an import: each
//! must be undamaged and valid, all must have one chunk size, and their records
//! are merged into one list sorted by origin chunk, so that the copies of each
//! origin chunk come together.

use crate::device::Device;
use crate::error::Error;
use crate::job::{EntrySource, InEntry, InRecord, JobError};
use crate::kind::StoreKind;
use crate::persistent::check::CheckOptions;
use crate::persistent::migrate::StoreShape;
use crate::persistent::rebuild::refuse_damaged;
use crate::persistent::PersistentStore;
use crate::shared::mask;

/// One record of one input: origin chunk, data chunk, input index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    old: u64,
    input: u32,
    new: u64,
}

/// The inputs of an import, checked and with their records merged.
#[derive(Debug)]
pub(super) struct ClassicInputs {
    devices: Vec<Device>,
    copies: Vec<Held>,
    ids: Vec<u32>,
    /// Each input as the kernel reads it.
    pub(super) shapes: Vec<StoreShape>,
    /// The chunk size every input has.
    pub(super) chunk_sectors: u32,
}

impl ClassicInputs {
    /// Checks `stores` (read as `kind`) and merges their records; input i
    /// becomes snapshot `ids[i]`.
    pub(super) fn open(
        stores: Vec<PersistentStore>,
        kind: StoreKind,
        ids: &[u32],
        origin_bytes: Option<u64>,
    ) -> Result<Self, JobError> {
        let mut devices = Vec::with_capacity(stores.len());
        let mut copies = Vec::new();
        let mut shapes = Vec::with_capacity(stores.len());
        let mut chunk_sectors = None;
        for (input, store) in stores.into_iter().enumerate() {
            let options = CheckOptions {
                kind,
                origin_bytes,
                ..CheckOptions::default()
            };
            refuse_damaged(&store, &options)?;
            let metadata = store.load()?;
            let path = store.device().path().to_path_buf();
            if !metadata.header.is_valid() {
                return Err(JobError::Damage(format!(
                    "{}: the store is marked invalid (header valid=0): its snapshot is lost and cannot be imported",
                    path.display()
                )));
            }
            let sectors = metadata.geometry.chunk_sectors();
            match chunk_sectors {
                None => chunk_sectors = Some((sectors, path.clone())),
                Some((first, ref first_path)) if first != sectors => {
                    return Err(Error::Invalid(format!(
                        "{}: its chunk size of {sectors} sectors differs from the {first} sectors of {}; re-chunk the inputs to one chunk size first",
                        path.display(),
                        first_path.display()
                    ))
                    .into());
                }
                Some(_) => {}
            }
            copies.extend(metadata.records.iter().map(|p| Held {
                old: p.record.old_chunk,
                input: input as u32,
                new: p.record.new_chunk,
            }));
            shapes.push(StoreShape::of(kind, &metadata));
            devices.push(store.into_device());
        }
        copies.sort_by_key(|c| (c.old, c.input));
        copies.dedup_by_key(|c| (c.old, c.input));
        Ok(ClassicInputs {
            devices,
            copies,
            ids: ids.to_vec(),
            shapes,
            chunk_sectors: chunk_sectors.map_or(0, |(s, _)| s),
        })
    }

    /// The input devices, by input index.
    pub(super) fn devices(&self) -> Vec<&Device> {
        self.devices.iter().collect()
    }

    /// The merged records as entries in origin order.
    pub(super) fn entries(&self) -> ClassicEntries<'_> {
        ClassicEntries {
            inputs: self,
            next: 0,
        }
    }
}

/// The entries of [`ClassicInputs`] (see [`ClassicInputs::entries`]).
#[derive(Debug)]
pub(super) struct ClassicEntries<'a> {
    inputs: &'a ClassicInputs,
    next: usize,
}

impl EntrySource for ClassicEntries<'_> {
    fn next_entry(&mut self) -> Result<Option<InEntry>, JobError> {
        let copies = &self.inputs.copies;
        let Some(first) = copies.get(self.next) else {
            return Ok(None);
        };
        let origin = first.old;
        let mut records = Vec::new();
        while let Some(c) = copies.get(self.next).filter(|c| c.old == origin) {
            records.push(InRecord {
                mask: mask::bit(self.inputs.ids[c.input as usize]),
                dev: c.input,
                chunk: c.new,
            });
            self.next += 1;
        }
        Ok(Some(InEntry { origin, records }))
    }
}
