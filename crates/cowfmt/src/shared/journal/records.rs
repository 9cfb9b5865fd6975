//! The bytes of the journal's records: the superblock (journal chunk 0), a
//! transaction's descriptor and its commit record. Integers are little-endian
//! and every field lies in a record's first 512 bytes (one atomic sector); the
//! rest of each chunk is zero, except the descriptor's list of home chunks,
//! which the commit record's crc32c covers.

use byteorder::{ByteOrder, LittleEndian};
use serde::{Deserialize, Serialize};

use super::JOURNAL_VERSION;
use crate::shared::header::SharedHeader;

/// Magic of the journal superblock.
pub const SUPER_MAGIC: [u8; 8] = *b"CoWJsupr";
/// Magic of a transaction's descriptor.
pub const DESC_MAGIC: [u8; 8] = *b"CoWJdesc";
/// Magic of a transaction's commit record.
pub const COMMIT_MAGIC: [u8; 8] = *b"CoWJcmit";
/// Bytes of the descriptor before its list of home chunks.
pub const DESC_HEAD_BYTES: usize = 48;
/// Bytes of the superblock the crc covers (its crc follows them).
const SUPER_CRC_BYTES: usize = 32;
/// Bytes of the superblock proper.
const SUPER_BYTES: usize = 36;
/// Bytes of the commit record proper.
const COMMIT_BYTES: usize = 28;

/// Why a journal superblock is damaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// The buffer is shorter than a superblock.
    #[error("a journal superblock needs {needed} bytes, only {got} were given")]
    ShortBuffer {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The magic is not `CoWJsupr`.
    #[error("magic {found:02x?} at offset 0 is not \"CoWJsupr\"")]
    BadMagic {
        /// The bytes found.
        found: [u8; 8],
    },
    /// The version is not [`JOURNAL_VERSION`].
    #[error("version {found} at offset 8 is not supported (expected {JOURNAL_VERSION})")]
    BadVersion {
        /// The version found.
        found: u32,
    },
    /// The reserved field is not zero.
    #[error("reserved field at offset 20 is {found:#x}, expected 0")]
    Reserved {
        /// The value found.
        found: u32,
    },
    /// The crc32c of bytes 0..32 does not match the stored one.
    #[error("crc32c {stored:#010x} at offset 32 does not match the superblock's bytes (crc32c {computed:#010x})")]
    BadCrc {
        /// The crc stored at offset 32.
        stored: u32,
        /// The crc of bytes 0..32.
        computed: u32,
    },
    /// The chunk size is not the store's.
    #[error("chunk_bytes {found} at offset 12 is not the store's chunk size ({expected} bytes)")]
    ChunkBytes {
        /// The value found.
        found: u32,
        /// The store's chunk size.
        expected: u64,
    },
    /// The log size is not the header's journal size less the superblock.
    #[error("log_chunks {found} at offset 16 is not the journal's {expected} log chunks (nr_journal_chunks - 1)")]
    LogChunks {
        /// The value found.
        found: u32,
        /// The log size the header implies.
        expected: u64,
    },
}

/// The journal superblock: where the log's valid transactions start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalSuper {
    /// The store's chunk size in bytes.
    pub chunk_bytes: u32,
    /// Chunks of log after the superblock.
    pub log_chunks: u32,
    /// The sequence number the transaction at log position 0 must carry.
    pub tail_seq: u64,
}

impl JournalSuper {
    /// Decodes a superblock chunk: `None` when it is all zero (a journal never
    /// used), the superblock when magic, version, reserved field and crc32c
    /// check. Its fields against the store are checked by [`JournalSuper::check_fits`].
    pub fn decode(chunk: &[u8]) -> Result<Option<JournalSuper>, JournalError> {
        if chunk.len() < SUPER_BYTES {
            return Err(JournalError::ShortBuffer {
                needed: SUPER_BYTES,
                got: chunk.len(),
            });
        }
        if chunk.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        if chunk[0..8] != SUPER_MAGIC {
            let mut found = [0u8; 8];
            found.copy_from_slice(&chunk[0..8]);
            return Err(JournalError::BadMagic { found });
        }
        let version = LittleEndian::read_u32(&chunk[8..12]);
        if version != JOURNAL_VERSION {
            return Err(JournalError::BadVersion { found: version });
        }
        let stored = LittleEndian::read_u32(&chunk[32..36]);
        let computed = crc32c::crc32c(&chunk[..SUPER_CRC_BYTES]);
        if stored != computed {
            return Err(JournalError::BadCrc { stored, computed });
        }
        let reserved = LittleEndian::read_u32(&chunk[20..24]);
        if reserved != 0 {
            return Err(JournalError::Reserved { found: reserved });
        }
        Ok(Some(JournalSuper {
            chunk_bytes: LittleEndian::read_u32(&chunk[12..16]),
            log_chunks: LittleEndian::read_u32(&chunk[16..20]),
            tail_seq: LittleEndian::read_u64(&chunk[24..32]),
        }))
    }

    /// Encodes into `chunk` (at least 36 bytes): the fields, the crc32c, and
    /// zeros in the rest.
    pub fn encode(&self, chunk: &mut [u8]) {
        chunk.fill(0);
        chunk[0..8].copy_from_slice(&SUPER_MAGIC);
        LittleEndian::write_u32(&mut chunk[8..12], JOURNAL_VERSION);
        LittleEndian::write_u32(&mut chunk[12..16], self.chunk_bytes);
        LittleEndian::write_u32(&mut chunk[16..20], self.log_chunks);
        LittleEndian::write_u64(&mut chunk[24..32], self.tail_seq);
        let crc = crc32c::crc32c(&chunk[..SUPER_CRC_BYTES]);
        LittleEndian::write_u32(&mut chunk[32..36], crc);
    }

    /// Checks the superblock's chunk size and log size against the store's.
    pub fn check_fits(&self, chunk_bytes: u64, log_chunks: u64) -> Result<(), JournalError> {
        if u64::from(self.chunk_bytes) != chunk_bytes {
            return Err(JournalError::ChunkBytes {
                found: self.chunk_bytes,
                expected: chunk_bytes,
            });
        }
        if u64::from(self.log_chunks) != log_chunks {
            return Err(JournalError::LogChunks {
                found: self.log_chunks,
                expected: log_chunks,
            });
        }
        Ok(())
    }
}

/// The store header fields a transaction carries; replay writes the last
/// committed transaction's into the header chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxHeader {
    /// The root node of the tree after the transaction.
    pub root_tree_chunk: u64,
    /// The snapshots that exist after the transaction.
    pub snapmask: u64,
    /// The tree's node levels after the transaction.
    pub tree_level: u32,
}

impl From<&SharedHeader> for TxHeader {
    fn from(h: &SharedHeader) -> Self {
        TxHeader {
            root_tree_chunk: h.root_tree_chunk,
            snapmask: h.snapmask,
            tree_level: h.tree_level,
        }
    }
}

/// One transaction to write: `images[i * chunk_bytes..(i + 1) * chunk_bytes]`
/// is the new content of chunk `homes[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// Its sequence number.
    pub seq: u64,
    /// The header fields after it.
    pub header: TxHeader,
    /// The home chunk of each image, distinct, in image order.
    pub homes: Vec<u64>,
    /// The images, one chunk each, in the order of `homes`.
    pub images: Vec<u8>,
}

/// Descriptor chunks for `count` images: `ceil((48 + 8 * count) / chunk_bytes)`.
pub fn desc_chunks_for(count: u64, chunk_bytes: u64) -> u64 {
    count
        .saturating_mul(8)
        .saturating_add(DESC_HEAD_BYTES as u64)
        .div_ceil(chunk_bytes.max(1))
}

/// The fixed first 48 bytes of a descriptor, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorHead {
    /// The transaction's sequence number.
    pub seq: u64,
    /// Images in the transaction.
    pub count: u32,
    /// Chunks the descriptor takes.
    pub desc_chunks: u32,
    /// The header fields after the transaction.
    pub header: TxHeader,
    /// The reserved field at offset 44 (0 when written by this crate).
    pub reserved: u32,
}

impl DescriptorHead {
    /// Decodes the first 48 bytes of a descriptor: `None` unless they start
    /// with the descriptor magic (or `bytes` is shorter than 48).
    pub fn decode(bytes: &[u8]) -> Option<DescriptorHead> {
        if bytes.len() < DESC_HEAD_BYTES || bytes[0..8] != DESC_MAGIC {
            return None;
        }
        Some(DescriptorHead {
            seq: LittleEndian::read_u64(&bytes[8..16]),
            count: LittleEndian::read_u32(&bytes[16..20]),
            desc_chunks: LittleEndian::read_u32(&bytes[20..24]),
            header: TxHeader {
                root_tree_chunk: LittleEndian::read_u64(&bytes[24..32]),
                snapmask: LittleEndian::read_u64(&bytes[32..40]),
                tree_level: LittleEndian::read_u32(&bytes[40..44]),
            },
            reserved: LittleEndian::read_u32(&bytes[44..48]),
        })
    }

    fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&DESC_MAGIC);
        LittleEndian::write_u64(&mut out[8..16], self.seq);
        LittleEndian::write_u32(&mut out[16..20], self.count);
        LittleEndian::write_u32(&mut out[20..24], self.desc_chunks);
        LittleEndian::write_u64(&mut out[24..32], self.header.root_tree_chunk);
        LittleEndian::write_u64(&mut out[32..40], self.header.snapmask);
        LittleEndian::write_u32(&mut out[40..44], self.header.tree_level);
        LittleEndian::write_u32(&mut out[44..48], self.reserved);
    }

    /// The home chunks listed after the head in the whole descriptor `bytes`
    /// (as many as fit, at most `count`).
    pub fn homes(&self, bytes: &[u8]) -> Vec<u64> {
        bytes
            .get(DESC_HEAD_BYTES..)
            .unwrap_or_default()
            .chunks_exact(8)
            .take(self.count as usize)
            .map(LittleEndian::read_u64)
            .collect()
    }
}

/// A transaction's commit record, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitRecord {
    /// The transaction's sequence number.
    pub seq: u64,
    /// Images in the transaction.
    pub count: u32,
    /// Chunks of its descriptor.
    pub desc_chunks: u32,
    /// crc32c over the descriptor chunks followed by every image chunk.
    pub crc: u32,
}

impl CommitRecord {
    /// Decodes a commit chunk: `None` unless it starts with the commit magic.
    pub fn decode(bytes: &[u8]) -> Option<CommitRecord> {
        if bytes.len() < COMMIT_BYTES || bytes[0..8] != COMMIT_MAGIC {
            return None;
        }
        Some(CommitRecord {
            seq: LittleEndian::read_u64(&bytes[8..16]),
            count: LittleEndian::read_u32(&bytes[16..20]),
            desc_chunks: LittleEndian::read_u32(&bytes[20..24]),
            crc: LittleEndian::read_u32(&bytes[24..28]),
        })
    }

    fn encode(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&COMMIT_MAGIC);
        LittleEndian::write_u64(&mut out[8..16], self.seq);
        LittleEndian::write_u32(&mut out[16..20], self.count);
        LittleEndian::write_u32(&mut out[20..24], self.desc_chunks);
        LittleEndian::write_u32(&mut out[24..28], self.crc);
    }
}

/// Encodes `t`'s descriptor (into `desc`, resized to its whole chunks) and its
/// commit record (into `commit`, resized to one chunk). `t.images` must hold
/// `t.homes.len()` chunks of `chunk_bytes`; the crc covers what it holds.
pub fn encode_transaction(
    t: &Transaction,
    chunk_bytes: usize,
    desc: &mut Vec<u8>,
    commit: &mut Vec<u8>,
) {
    debug_assert_eq!(t.images.len(), t.homes.len() * chunk_bytes);
    let count = t.homes.len();
    let desc_chunks = desc_chunks_for(count as u64, chunk_bytes as u64);
    desc.clear();
    desc.resize(desc_chunks as usize * chunk_bytes, 0);
    let head = DescriptorHead {
        seq: t.seq,
        count: count as u32,
        desc_chunks: desc_chunks as u32,
        header: t.header,
        reserved: 0,
    };
    head.encode(desc);
    for (slot, home) in desc[DESC_HEAD_BYTES..].chunks_exact_mut(8).zip(&t.homes) {
        LittleEndian::write_u64(slot, *home);
    }
    let crc = crc32c::crc32c_append(crc32c::crc32c(desc), &t.images);
    commit.clear();
    commit.resize(chunk_bytes, 0);
    CommitRecord {
        seq: t.seq,
        count: count as u32,
        desc_chunks: desc_chunks as u32,
        crc,
    }
    .encode(commit);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_super() -> JournalSuper {
        JournalSuper {
            chunk_bytes: 4096,
            log_chunks: 2047,
            tail_seq: 0x0102_0304_0506_0708,
        }
    }

    #[test]
    fn superblock_fields_sit_at_their_offsets_and_round_trip() {
        let mut chunk = vec![0xffu8; 4096];
        sample_super().encode(&mut chunk);
        assert_eq!(&chunk[0..8], b"CoWJsupr");
        assert_eq!(LittleEndian::read_u32(&chunk[8..12]), 1);
        assert_eq!(LittleEndian::read_u32(&chunk[12..16]), 4096);
        assert_eq!(LittleEndian::read_u32(&chunk[16..20]), 2047);
        assert_eq!(&chunk[20..24], &[0; 4]);
        assert_eq!(&chunk[24..32], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(
            LittleEndian::read_u32(&chunk[32..36]),
            crc32c::crc32c(&chunk[..32])
        );
        assert!(chunk[36..].iter().all(|&b| b == 0));
        assert_eq!(JournalSuper::decode(&chunk), Ok(Some(sample_super())));
        assert_eq!(sample_super().check_fits(4096, 2047), Ok(()));
    }

    #[test]
    fn an_all_zero_superblock_means_never_used() {
        assert_eq!(JournalSuper::decode(&[0u8; 512]), Ok(None));
    }

    #[test]
    fn a_damaged_superblock_says_which_field() {
        let mut good = vec![0u8; 512];
        sample_super().encode(&mut good);
        let damaged = |at: usize, value: u8| {
            let mut chunk = good.clone();
            chunk[at] = value;
            JournalSuper::decode(&chunk).unwrap_err()
        };
        assert!(matches!(damaged(0, b'X'), JournalError::BadMagic { .. }));
        assert_eq!(damaged(8, 2), JournalError::BadVersion { found: 2 });
        assert!(matches!(damaged(25, 0), JournalError::BadCrc { .. }));
        assert!(matches!(damaged(33, 0), JournalError::BadCrc { .. }));
        let mut reserved = good.clone();
        reserved[20] = 1;
        let crc = crc32c::crc32c(&reserved[..32]);
        LittleEndian::write_u32(&mut reserved[32..36], crc);
        assert_eq!(
            JournalSuper::decode(&reserved),
            Err(JournalError::Reserved { found: 1 })
        );
        assert!(matches!(
            JournalSuper::decode(&good[..35]),
            Err(JournalError::ShortBuffer {
                needed: 36,
                got: 35
            })
        ));
        let text = damaged(0, b'X').to_string();
        assert!(text.contains("offset 0"), "{text}");
    }

    #[test]
    fn superblock_fields_are_checked_against_the_store() {
        let sup = sample_super();
        assert!(matches!(
            sup.check_fits(512, 2047),
            Err(JournalError::ChunkBytes {
                found: 4096,
                expected: 512
            })
        ));
        assert!(matches!(
            sup.check_fits(4096, 2048),
            Err(JournalError::LogChunks {
                found: 2047,
                expected: 2048
            })
        ));
    }

    fn transaction(count: usize, chunk_bytes: usize) -> Transaction {
        Transaction {
            seq: 77,
            header: TxHeader {
                root_tree_chunk: 1000,
                snapmask: 0b101,
                tree_level: 2,
            },
            homes: (0..count as u64).map(|i| 500 + 3 * i).collect(),
            images: (0..count * chunk_bytes).map(|i| (i % 251) as u8).collect(),
        }
    }

    #[test]
    fn a_transaction_encodes_and_decodes() {
        let t = transaction(3, 512);
        let (mut desc, mut commit) = (Vec::new(), Vec::new());
        encode_transaction(&t, 512, &mut desc, &mut commit);
        assert_eq!(desc.len(), 512);
        assert_eq!(commit.len(), 512);
        let head = DescriptorHead::decode(&desc).unwrap();
        assert_eq!(
            head,
            DescriptorHead {
                seq: 77,
                count: 3,
                desc_chunks: 1,
                header: t.header,
                reserved: 0
            }
        );
        assert_eq!(head.homes(&desc), t.homes);
        assert!(desc[DESC_HEAD_BYTES + 24..].iter().all(|&b| b == 0));
        let record = CommitRecord::decode(&commit).unwrap();
        let mut crc = crc32c::crc32c(&desc);
        crc = crc32c::crc32c_append(crc, &t.images);
        assert_eq!(
            record,
            CommitRecord {
                seq: 77,
                count: 3,
                desc_chunks: 1,
                crc
            }
        );
        assert!(commit[28..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_descriptor_spills_into_more_chunks_at_the_boundary() {
        let (mut desc, mut commit) = (Vec::new(), Vec::new());
        encode_transaction(&transaction(58, 512), 512, &mut desc, &mut commit);
        assert_eq!(desc.len(), 512);
        let t = transaction(59, 512);
        encode_transaction(&t, 512, &mut desc, &mut commit);
        assert_eq!(desc.len(), 1024);
        let head = DescriptorHead::decode(&desc).unwrap();
        assert_eq!(head.desc_chunks, 2);
        assert_eq!(head.homes(&desc), t.homes);
        assert_eq!(LittleEndian::read_u64(&desc[512..520]), t.homes[58]);
    }

    #[test]
    fn other_magics_do_not_decode() {
        assert_eq!(DescriptorHead::decode(&[0u8; 512]), None);
        assert_eq!(DescriptorHead::decode(b"CoWJdesc"), None);
        assert_eq!(CommitRecord::decode(&[0u8; 512]), None);
        let mut chunk = vec![0u8; 512];
        sample_super().encode(&mut chunk);
        assert_eq!(DescriptorHead::decode(&chunk), None);
        assert_eq!(CommitRecord::decode(&chunk), None);
    }

    #[test]
    fn descriptor_sizes_do_not_overflow() {
        assert_eq!(desc_chunks_for(0, 512), 1);
        assert_eq!(desc_chunks_for(u64::from(u32::MAX), 512), 67_108_865);
        assert_eq!(desc_chunks_for(u64::MAX, 512), u64::MAX.div_ceil(512));
    }
}
