//! Scan and replay over whole stores in memory, at the boundaries: torn and
//! damaged transactions, stale sequences, superblocks, and replays cut short.

use byteorder::{ByteOrder, LittleEndian};

use super::*;
use crate::blockdev::BlockDev;
use crate::crashdev::CrashLog;
use crate::error::Error;
use crate::memdev::MemDev;
use crate::shared::format::format_store;
use crate::shared::header::SharedHeader;

/// A fresh store of `chunk_sectors` with a journal of `journal` chunks whose
/// superblock says tail_seq 1.
fn store(chunk_sectors: u32, journal: u64) -> (MemDev, Geometry) {
    let dev = MemDev::new("mem:cow", 1 << 20);
    format_store(&dev, u64::from(chunk_sectors), journal).unwrap();
    let g = Geometry::new(dev.size(), chunk_sectors, journal);
    write_superblock(&dev, &JournalArea::new(&g), 1).unwrap();
    (dev, g)
}

/// A transaction whose image i is chunk_bytes of `fill + i`.
fn tx(g: &Geometry, seq: u64, homes: &[u64], fill: u8) -> Transaction {
    let cb = g.chunk_bytes as usize;
    let mut images = Vec::with_capacity(homes.len() * cb);
    for i in 0..homes.len() {
        images.extend(std::iter::repeat_n(fill.wrapping_add(i as u8), cb));
    }
    Transaction {
        seq,
        header: TxHeader {
            root_tree_chunk: g.data_start() + 1,
            snapmask: seq,
            tree_level: 1,
        },
        homes: homes.to_vec(),
        images,
    }
}

/// Writes `t` at `pos` without its commit record (a crash before step 3).
fn write_torn(dev: &MemDev, g: &Geometry, pos: u64, t: &Transaction) {
    let area = JournalArea::new(g);
    let (mut desc, mut commit) = (Vec::new(), Vec::new());
    encode_transaction(t, g.chunk_bytes as usize, &mut desc, &mut commit);
    dev.write_at(&desc, area.log_chunk(pos) * g.chunk_bytes)
        .unwrap();
    let images_at = area.log_chunk(pos + (desc.len() as u64 / g.chunk_bytes));
    dev.write_at(&t.images, images_at * g.chunk_bytes).unwrap();
}

fn chunk(dev: &MemDev, g: &Geometry, c: u64) -> Vec<u8> {
    let mut buf = vec![0u8; g.chunk_bytes as usize];
    dev.read_chunk(c, &mut buf).unwrap();
    buf
}

fn header(dev: &MemDev) -> SharedHeader {
    SharedHeader::decode(&dev.to_bytes()).unwrap()
}

#[test]
fn committed_transactions_scan_back() {
    let (dev, g) = store(1, 64);
    let area = JournalArea::new(&g);
    let d = g.data_start();
    let first = tx(&g, 1, &[d + 5, 1, d + 9], 10);
    let next = write_transaction(&dev, &area, 0, &first).unwrap();
    assert_eq!(next, 5);
    let second = tx(&g, 2, &[d + 6], 20);
    assert_eq!(write_transaction(&dev, &area, next, &second).unwrap(), 8);
    let scan = scan(&dev, &g).unwrap();
    assert_eq!(
        scan.sup,
        Some(JournalSuper {
            chunk_bytes: 512,
            log_chunks: 63,
            tail_seq: 1
        })
    );
    assert_eq!(scan.committed.len(), 2);
    assert_eq!(scan.committed[0].pos, 0);
    assert_eq!(scan.committed[0].homes, first.homes);
    assert_eq!(scan.committed[0].header, first.header);
    assert_eq!(scan.committed[1].pos, 5);
    assert_eq!(scan.committed[1].seq, 2);
    assert_eq!(scan.end, ScanEnd::Clean);
    assert_eq!(scan.next_pos, 8);
    assert!(scan.needs_replay());
    assert_eq!(scan.images(), 4);
    assert!(!scan.damaged);
}

#[test]
fn a_fresh_journal_has_nothing_to_replay() {
    let (dev, g) = store(1, 64);
    let before = dev.to_bytes();
    let scan = scan(&dev, &g).unwrap();
    assert!(!scan.needs_replay());
    assert_eq!(scan.end, ScanEnd::Clean);
    let report = replay(&dev, &g).unwrap();
    assert_eq!(report.transactions, 0);
    assert_eq!(report.torn, None);
    assert_eq!(dev.to_bytes(), before);
}

#[test]
fn a_torn_commit_is_ignored_and_nothing_is_written() {
    let (dev, g) = store(1, 64);
    let d = g.data_start();
    let t = tx(&g, 1, &[d + 3, d + 4], 7);
    write_torn(&dev, &g, 0, &t);
    let before = dev.to_bytes();
    let scan = scan(&dev, &g).unwrap();
    assert!(scan.committed.is_empty());
    let ScanEnd::Torn { seq, pos, why } = &scan.end else {
        panic!("{:?}", scan.end)
    };
    assert_eq!((*seq, *pos), (1, 0));
    assert!(why.contains("no commit record at log position 3"), "{why}");
    assert_eq!(scan.stopped.as_ref().unwrap().homes, t.homes);
    assert!(!scan.damaged);
    let report = replay(&dev, &g).unwrap();
    assert_eq!(report.transactions, 0);
    assert!(matches!(report.torn, Some(ScanEnd::Torn { seq: 1, .. })));
    assert_eq!(dev.to_bytes(), before);
}

#[test]
fn a_torn_last_transaction_leaves_the_committed_ones() {
    let (dev, g) = store(1, 64);
    let area = JournalArea::new(&g);
    let d = g.data_start();
    let next = write_transaction(&dev, &area, 0, &tx(&g, 1, &[d + 3], 1)).unwrap();
    write_torn(&dev, &g, next, &tx(&g, 2, &[d + 4], 2));
    let report = replay(&dev, &g).unwrap();
    assert_eq!(report.transactions, 1);
    assert_eq!(report.last_seq, Some(1));
    assert!(matches!(
        report.torn,
        Some(ScanEnd::Torn { seq: 2, pos: 3, .. })
    ));
    assert_eq!(chunk(&dev, &g, d + 3), vec![1u8; 512]);
    assert_eq!(chunk(&dev, &g, d + 4), vec![0u8; 512]);
}

#[test]
fn a_crc_mismatch_stops_the_scan() {
    let (dev, g) = store(1, 64);
    let area = JournalArea::new(&g);
    let d = g.data_start();
    write_transaction(&dev, &area, 0, &tx(&g, 1, &[d + 3, d + 4], 1)).unwrap();
    dev.write_at(&[0xee], area.log_chunk(2) * 512 + 100)
        .unwrap();
    let scan = scan(&dev, &g).unwrap();
    assert!(scan.committed.is_empty());
    let ScanEnd::Torn { why, .. } = &scan.end else {
        panic!("{:?}", scan.end)
    };
    assert!(why.contains("crc32c"), "{why}");
    assert!(!scan.damaged);
}

#[test]
fn a_commit_record_of_another_sequence_is_torn() {
    let (dev, g) = store(1, 64);
    let area = JournalArea::new(&g);
    let d = g.data_start();
    let t = tx(&g, 1, &[d + 3], 1);
    write_transaction(&dev, &area, 0, &t).unwrap();
    dev.write_at(&[9], area.log_chunk(2) * 512 + 8).unwrap();
    let ScanEnd::Torn { why, .. } = scan(&dev, &g).unwrap().end else {
        panic!()
    };
    assert!(why.contains("carries seq 9, not 1"), "{why}");
}

#[test]
fn after_a_reset_the_old_log_is_stale() {
    let (dev, g) = store(1, 64);
    let area = JournalArea::new(&g);
    let d = g.data_start();
    let next = write_transaction(&dev, &area, 0, &tx(&g, 1, &[d + 3], 1)).unwrap();
    write_transaction(&dev, &area, next, &tx(&g, 2, &[d + 4], 2)).unwrap();
    assert_eq!(replay(&dev, &g).unwrap().last_seq, Some(2));
    let scan_after = scan(&dev, &g).unwrap();
    assert_eq!(scan_after.sup.unwrap().tail_seq, 3);
    assert!(scan_after.committed.is_empty());
    assert_eq!(scan_after.end, ScanEnd::Clean);
    write_transaction(&dev, &area, 0, &tx(&g, 3, &[d + 5], 3)).unwrap();
    let scan_new = scan(&dev, &g).unwrap();
    assert_eq!(scan_new.committed.len(), 1);
    assert_eq!(scan_new.committed[0].seq, 3);
    assert_eq!(
        scan_new.next_pos, 3,
        "seq 2's stale record at 3 ends the log"
    );
}

#[test]
fn an_all_zero_superblock_means_never_used() {
    let (dev, g) = store(1, 64);
    let area = JournalArea::new(&g);
    write_transaction(&dev, &area, 0, &tx(&g, 1, &[g.data_start() + 3], 1)).unwrap();
    dev.write_chunk(area.start, &[0u8; 512]).unwrap();
    let before = dev.to_bytes();
    let scan = scan(&dev, &g).unwrap();
    assert_eq!(scan.sup, None);
    assert!(!scan.needs_replay());
    assert_eq!(replay(&dev, &g).unwrap().transactions, 0);
    assert_eq!(dev.to_bytes(), before);
}

#[test]
fn a_store_without_a_journal_scans_empty_and_has_no_superblock_to_write() {
    let dev = MemDev::new("mem:cow", 1 << 20);
    format_store(&dev, 1, 0).unwrap();
    let g = Geometry::new(dev.size(), 1, 0);
    assert_eq!(scan(&dev, &g).unwrap().sup, None);
    assert_eq!(replay(&dev, &g).unwrap().transactions, 0);
    let err = write_superblock(&dev, &JournalArea::new(&g), 1).unwrap_err();
    assert!(err.to_string().contains("no journal"), "{err}");
}

#[test]
fn a_damaged_superblock_is_an_error_and_replay_writes_nothing() {
    let (dev, g) = store(1, 64);
    let area = JournalArea::new(&g);
    write_transaction(&dev, &area, 0, &tx(&g, 1, &[g.data_start() + 3], 1)).unwrap();
    dev.write_at(&[0x55], area.start * 512 + 26).unwrap();
    let before = dev.to_bytes();
    let err = scan(&dev, &g).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Journal {
                chunk: 2,
                source: JournalError::BadCrc { .. },
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("mem:cow: journal superblock (chunk 2)"),
        "{text}"
    );
    assert!(replay(&dev, &g).is_err());
    assert_eq!(dev.to_bytes(), before);
}

#[test]
fn a_superblock_of_another_geometry_is_damage() {
    let (dev, g) = store(1, 64);
    let other = JournalArea {
        log_chunks: 62,
        ..JournalArea::new(&g)
    };
    write_superblock(&dev, &other, 1).unwrap();
    let err = scan(&dev, &g).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Journal {
                source: JournalError::LogChunks {
                    found: 62,
                    expected: 63
                },
                ..
            }
        ),
        "{err}"
    );
}

/// Overwrites the descriptor head at `pos` with `count` and `desc_chunks`.
fn forge_descriptor(dev: &MemDev, area: &JournalArea, pos: u64, count: u32, desc_chunks: u32) {
    let mut head = vec![0u8; 512];
    dev.read_chunk(area.log_chunk(pos), &mut head).unwrap();
    LittleEndian::write_u32(&mut head[16..20], count);
    LittleEndian::write_u32(&mut head[20..24], desc_chunks);
    dev.write_chunk(area.log_chunk(pos), &head).unwrap();
}

#[test]
fn descriptors_that_overflow_the_log_are_damage() {
    let (dev, g) = store(1, 64);
    let area = JournalArea::new(&g);
    write_transaction(&dev, &area, 0, &tx(&g, 1, &[g.data_start() + 3], 1)).unwrap();
    let cases = [
        (
            u32::MAX,
            desc_chunks_for(u64::from(u32::MAX), 512) as u32,
            "passes the end of the log",
        ),
        (61, 2, "passes the end of the log"),
        (58, 2, "58 home chunks takes 1"),
        (1, u32::MAX, "1 home chunks takes 1"),
    ];
    for (count, desc_chunks, expect) in cases {
        forge_descriptor(&dev, &area, 0, count, desc_chunks);
        let scan = scan(&dev, &g).unwrap();
        assert!(scan.committed.is_empty());
        assert!(scan.damaged, "count {count}");
        let ScanEnd::Torn { why, .. } = &scan.end else {
            panic!()
        };
        assert!(why.contains(expect), "count {count}: {why}");
    }
    forge_descriptor(&dev, &area, 0, 60, 2);
    let scan = scan(&dev, &g).unwrap();
    assert!(!scan.damaged, "60 images fit the log of 63 chunks exactly");
}

#[test]
fn homes_outside_the_tree_and_bitmap_are_damage_and_never_written() {
    let (dev, g) = store(1, 64);
    let area = JournalArea::new(&g);
    for home in [0, g.journal_start(), g.data_start() - 1, g.nr_chunks] {
        let before_home = (home < g.nr_chunks).then(|| chunk(&dev, &g, home));
        write_transaction(&dev, &area, 0, &tx(&g, 1, &[g.data_start() + 3, home], 1)).unwrap();
        let scan = scan(&dev, &g).unwrap();
        assert!(scan.committed.is_empty());
        assert!(scan.damaged);
        let ScanEnd::Torn { why, .. } = &scan.end else {
            panic!()
        };
        assert!(why.contains(&format!("home chunk {home} is not")), "{why}");
        replay(&dev, &g).unwrap();
        if let Some(before) = before_home {
            assert_eq!(chunk(&dev, &g, home), before, "home {home}");
        }
    }
    write_transaction(&dev, &area, 0, &tx(&g, 1, &[g.data_start() + 3; 2], 1)).unwrap();
    let ScanEnd::Torn { why, .. } = scan(&dev, &g).unwrap().end else {
        panic!()
    };
    assert!(why.contains("two images have home chunk"), "{why}");
    let mut bad_root = tx(&g, 1, &[g.data_start() + 3], 1);
    bad_root.header.root_tree_chunk = 1;
    write_transaction(&dev, &area, 0, &bad_root).unwrap();
    let ScanEnd::Torn { why, .. } = scan(&dev, &g).unwrap().end else {
        panic!()
    };
    assert!(why.contains("root_tree_chunk 1"), "{why}");
}

#[test]
fn replay_writes_images_home_and_the_header_and_is_idempotent() {
    let (dev, g) = store(1, 64);
    let area = JournalArea::new(&g);
    let d = g.data_start();
    let next = write_transaction(&dev, &area, 0, &tx(&g, 1, &[d + 3, 1], 1)).unwrap();
    let mut last = tx(&g, 2, &[d + 3, d + 7], 40);
    last.header = TxHeader {
        root_tree_chunk: d + 7,
        snapmask: 0b11,
        tree_level: 2,
    };
    write_transaction(&dev, &area, next, &last).unwrap();
    let mut h = header(&dev);
    h.valid = 0;
    dev.write_chunk(0, &h.to_chunk(512)).unwrap();

    let report = replay(&dev, &g).unwrap();
    assert_eq!(
        report,
        ReplayReport {
            transactions: 2,
            images: 4,
            last_seq: Some(2),
            torn: None
        }
    );
    assert_eq!(
        chunk(&dev, &g, d + 3),
        vec![40u8; 512],
        "the later image wins"
    );
    assert_eq!(chunk(&dev, &g, 1), vec![2u8; 512]);
    assert_eq!(chunk(&dev, &g, d + 7), vec![41u8; 512]);
    let after = header(&dev);
    assert_eq!(
        (
            after.root_tree_chunk,
            after.snapmask,
            after.tree_level,
            after.valid
        ),
        (d + 7, 0b11, 2, 1)
    );
    assert_eq!(after.nr_journal_chunks, 64);
    assert_eq!(scan(&dev, &g).unwrap().sup.unwrap().tail_seq, 3);

    let once = dev.to_bytes();
    assert_eq!(replay(&dev, &g).unwrap().transactions, 0);
    assert_eq!(dev.to_bytes(), once);
}

#[test]
fn a_replay_cut_anywhere_is_finished_by_the_next() {
    let (dev, g) = store(1, 64);
    let area = JournalArea::new(&g);
    let d = g.data_start();
    let next = write_transaction(&dev, &area, 0, &tx(&g, 1, &[d + 3, 1], 1)).unwrap();
    write_transaction(&dev, &area, next, &tx(&g, 2, &[d + 3, d + 8], 9)).unwrap();
    let log = CrashLog::new();
    let crash = log.device("crash:cow", dev.to_bytes());
    replay(&crash, &g).unwrap();
    let events = log.len();
    let done = log.image(crash.id(), events, &[]).unwrap();
    assert!(events >= 8, "{events} events");
    for at in 0..=events {
        let unsynced = log.unsynced(crash.id(), at);
        assert!(unsynced.len() <= 8);
        for subset in 0..1u32 << unsynced.len() {
            let lost: Vec<usize> = (0..unsynced.len())
                .filter(|i| subset & (1 << i) != 0)
                .map(|i| unsynced[i])
                .collect();
            let image = MemDev::from_bytes("mem:cut", log.image(crash.id(), at, &lost).unwrap());
            replay(&image, &g).unwrap();
            assert_eq!(image.to_bytes(), done, "cut at {at}, lost {lost:?}");
            assert_eq!(replay(&image, &g).unwrap().transactions, 0);
        }
    }
}

#[test]
fn multi_chunk_descriptors_replay_with_512_byte_chunks() {
    let (dev, g) = store(1, 200);
    let area = JournalArea::new(&g);
    let homes: Vec<u64> = (0..130).map(|i| g.data_start() + 10 + i).collect();
    let t = tx(&g, 1, &homes, 0);
    assert_eq!(desc_chunks_for(130, 512), 3);
    let next = write_transaction(&dev, &area, 0, &t).unwrap();
    assert_eq!(next, 3 + 130 + 1);
    let scan = scan(&dev, &g).unwrap();
    assert_eq!(scan.committed.len(), 1);
    assert_eq!(scan.committed[0].homes, homes);
    assert_eq!(scan.committed[0].images_pos(512), 3);
    replay(&dev, &g).unwrap();
    for (i, home) in homes.iter().enumerate() {
        assert_eq!(chunk(&dev, &g, *home), vec![i as u8; 512], "image {i}");
    }
}

#[test]
fn writing_a_transaction_that_does_not_fit_is_refused() {
    let (dev, g) = store(1, 8);
    let area = JournalArea::new(&g);
    let homes: Vec<u64> = (0..5).map(|i| g.data_start() + i).collect();
    let err = write_transaction(&dev, &area, 1, &tx(&g, 1, &homes, 0)).unwrap_err();
    assert!(
        err.to_string().contains("does not fit the log (7 chunks)"),
        "{err}"
    );
    let mut short = tx(&g, 1, &homes[..1], 0);
    short.images.pop();
    let err = write_transaction(&dev, &area, 0, &short).unwrap_err();
    assert!(err.to_string().contains("511 bytes of images"), "{err}");
    assert_eq!(
        write_transaction(&dev, &area, 0, &tx(&g, 1, &homes, 0)).unwrap(),
        7
    );
}

#[test]
fn the_overlay_reads_as_the_replay_writes() {
    let (dev, g) = store(1, 64);
    let area = JournalArea::new(&g);
    let d = g.data_start();
    let next = write_transaction(&dev, &area, 0, &tx(&g, 1, &[d + 3, 1], 1)).unwrap();
    write_transaction(&dev, &area, next, &tx(&g, 2, &[d + 3, d + 8], 9)).unwrap();
    let before = dev.to_bytes();
    let (overlay, report) = replay_overlay(&dev, &g).unwrap();
    assert_eq!(dev.to_bytes(), before, "nothing written");
    assert_eq!((report.transactions, report.images), (2, 4));
    assert_eq!(overlay.len(), 5, "3 homes, the header, the superblock");
    let mut seen = before.clone();
    overlay.apply(&mut seen, 0);
    assert_eq!(replay(&dev, &g).unwrap(), report);
    assert_eq!(seen, dev.to_bytes());
    let (empty, none) = replay_overlay(&dev, &g).unwrap();
    assert!(empty.is_empty());
    assert_eq!(none.transactions, 0);
}
