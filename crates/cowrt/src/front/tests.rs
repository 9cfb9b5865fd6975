use super::*;
use crate::target::{serve, IoOp, Request};
use crate::testdev::{after_power_cuts, crash_engine, engine, origin_pattern, CHUNK, ORIGIN_BYTES};

fn snapshot_bytes<D: BlockDev>(engine: &Engine<D>, id: u32) -> Vec<u8> {
    let mut buf = vec![0u8; ORIGIN_BYTES as usize];
    engine.snapshot_read(id, 0, &mut buf).unwrap();
    buf
}

#[test]
fn an_origin_write_lands_after_its_copy_out_is_committed() {
    let (log, engine) = crash_engine(1);
    let origin = OriginTarget::new(Arc::clone(&engine));
    origin.write(3 * CHUNK + 100, &[0xee; 10], false).unwrap();

    let mut read = [0u8; 10];
    origin.read(3 * CHUNK + 100, &mut read).unwrap();
    assert_eq!(read, [0xee; 10]);
    // No FLUSH: whichever unsynced writes a power cut loses, what is on disk
    // protects snapshot 0.
    for after_crash in after_power_cuts(&log) {
        assert_eq!(snapshot_bytes(&after_crash, 0), origin_pattern());
    }
    origin.flush().unwrap();
    for after_crash in after_power_cuts(&log) {
        assert_eq!(snapshot_bytes(&after_crash, 0), origin_pattern());
        let mut on_disk = [0u8; 10];
        after_crash
            .origin_read(3 * CHUNK + 100, &mut on_disk)
            .unwrap();
        assert_eq!(
            on_disk, [0xee; 10],
            "the origin write is durable after FLUSH"
        );
    }
    origin.write(9 * CHUNK, &[0xef; 512], true).unwrap();
    for after_crash in after_power_cuts(&log) {
        let mut on_disk = [0u8; 512];
        after_crash.origin_read(9 * CHUNK, &mut on_disk).unwrap();
        assert_eq!(on_disk, [0xef; 512], "an origin FUA write is durable");
        assert_eq!(snapshot_bytes(&after_crash, 0), origin_pattern());
    }
}

#[test]
fn a_snapshot_write_is_durable_at_the_next_flush_or_with_fua() {
    let (log, engine) = crash_engine(2);
    let snap0 = SnapshotTarget::new(Arc::clone(&engine), 0).unwrap();
    let snap1 = SnapshotTarget::new(Arc::clone(&engine), 1).unwrap();
    snap0.write(5 * CHUNK, &[0xaa; 512], false).unwrap();

    let mut read = [0u8; 512];
    snap0.read(5 * CHUNK, &mut read).unwrap();
    assert_eq!(read, [0xaa; 512]);
    snap1.read(5 * CHUNK, &mut read).unwrap();
    assert_eq!(read, [6; 512], "snapshot 1 still shares the origin chunk");

    snap0.flush().unwrap();
    for flushed in after_power_cuts(&log) {
        assert_eq!(snapshot_bytes(&flushed, 0)[5 * CHUNK as usize], 0xaa);
        assert_eq!(snapshot_bytes(&flushed, 1), origin_pattern());
    }

    snap1.write(7 * CHUNK, &[0xbb; 512], true).unwrap();
    for fua in after_power_cuts(&log) {
        assert_eq!(snapshot_bytes(&fua, 1)[7 * CHUNK as usize], 0xbb);
        assert_eq!(snapshot_bytes(&fua, 0)[7 * CHUNK as usize], 8);
        assert_eq!(snapshot_bytes(&fua, 0)[5 * CHUNK as usize], 0xaa);
    }
}

#[test]
fn flush_syncs_both_devices_on_the_origin_and_the_cow_on_a_snapshot() {
    let engine = engine(1);
    let origin = OriginTarget::new(Arc::clone(&engine));
    let snap = SnapshotTarget::new(Arc::clone(&engine), 0).unwrap();
    let syncs = || (engine.origin_device().syncs(), engine.cow_device().syncs());

    let (o, c) = syncs();
    origin.flush().unwrap();
    let (o2, c2) = syncs();
    assert!(
        o2 > o && c2 > c,
        "origin FLUSH: origin {o}->{o2}, cow {c}->{c2}"
    );

    snap.flush().unwrap();
    let (_, c3) = syncs();
    assert!(c3 > c2);

    origin.write(0, &[1; 512], true).unwrap();
    let (o4, _) = syncs();
    assert!(o4 > o2, "an origin FUA write syncs the origin");
}

#[test]
fn requests_are_served_through_the_trait() {
    let engine = engine(1);
    let origin = OriginTarget::new(Arc::clone(&engine));
    let snap = SnapshotTarget::new(Arc::clone(&engine), 0).unwrap();
    let mut buf = vec![0x55u8; 1024];
    let write = Request {
        op: IoOp::Write,
        offset: 2 * CHUNK,
        len: 1024,
        fua: false,
    };
    assert_eq!(serve(&origin, &write, &mut buf), Ok(1024));
    let read = Request {
        op: IoOp::Read,
        ..write
    };
    assert_eq!(serve(&snap, &read, &mut buf), Ok(1024));
    assert_eq!(
        buf,
        vec![3u8; 1024],
        "the snapshot still reads the old data"
    );

    let past_end = Request {
        offset: ORIGIN_BYTES - 512,
        ..read
    };
    assert_eq!(
        serve(&snap, &past_end, &mut buf).map_err(|f| f.errno),
        Err(libc::EINVAL)
    );
    let short = Request { len: 2048, ..read };
    assert_eq!(
        serve(&origin, &short, &mut buf).map_err(|f| f.errno),
        Err(libc::EINVAL)
    );
    let flush = Request {
        op: IoOp::Flush,
        offset: 0,
        len: 0,
        fua: false,
    };
    assert_eq!(serve(&snap, &flush, &mut []), Ok(0));
}

#[test]
fn a_missing_snapshot_has_no_target_and_a_deleted_one_fails_its_io() {
    let engine = engine(1);
    let err = SnapshotTarget::new(Arc::clone(&engine), 3).unwrap_err();
    assert_eq!(err.to_string(), "cow.img: snapshot 3 does not exist");
    assert!(SnapshotTarget::new(Arc::clone(&engine), 64).is_err());

    let snap = SnapshotTarget::new(Arc::clone(&engine), 0).unwrap();
    engine.delete_snapshot(0).unwrap();
    let mut buf = [0u8; 512];
    let read = Request {
        op: IoOp::Read,
        offset: 0,
        len: 512,
        fua: false,
    };
    assert!(serve(&snap, &read, &mut buf).is_err());
}
