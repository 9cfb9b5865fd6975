use super::*;
use crate::testdev::{after_power_cuts, crash_engine, engine, CHUNK};

fn status<D: BlockDev>(control: &Controller<D>) -> Status {
    match control.handle(Message::Status).unwrap() {
        Reply::Status(status) => status,
        other => panic!("status answered {other:?}"),
    }
}

#[test]
fn create_and_create_subsnap_are_durable_and_show_in_the_status() {
    let (log, engine) = crash_engine(0);
    let control = Controller::new(engine);
    assert_eq!(
        control.handle(Message::Create).unwrap(),
        Reply::Created {
            id: 0,
            device: None
        }
    );
    control.engine().origin_write(0, &[9; 512]).unwrap();
    assert_eq!(
        control.handle(Message::CreateSubsnap(0)).unwrap(),
        Reply::Created {
            id: 1,
            device: None
        }
    );
    for after_crash in after_power_cuts(&log) {
        assert_eq!(after_crash.snapmask(), 0b11);
    }

    let mut buf = [0u8; 512];
    control.engine().snapshot_read(1, 0, &mut buf).unwrap();
    assert_eq!(buf, [1; 512], "the subsnapshot sees what snapshot 0 saw");

    let status = status(&control);
    assert_eq!(status.new_snapshot, Some(1));
    assert_eq!(status.error, 0);
    let ids: Vec<u32> = status.snapshots.iter().map(|s| s.id).collect();
    assert_eq!(ids, [0, 1]);
    assert!(status.to_string().starts_with("5 0 1 "), "{status}");
    assert!(status.to_string().ends_with(" 2 0 1"), "{status}");
}

#[test]
fn status_counts_the_chunks_each_snapshot_reads() {
    let control = Controller::new(engine(2));
    for chunk in 0..3 {
        control
            .engine()
            .origin_write(chunk * CHUNK, &[0; 512])
            .unwrap();
    }
    control.engine().snapshot_write(1, 0, &[7; 512]).unwrap();
    let status = status(&control);
    let counts: Vec<(u32, u64, u64)> = status
        .snapshots
        .iter()
        .map(|s| (s.id, s.chunks, s.exclusive_chunks))
        .collect();
    assert_eq!(counts, [(0, 3, 1), (1, 3, 1)]);
    assert_eq!(status.total_chunks, 256);
    assert_eq!(
        status.allocated_chunks,
        status.metadata_chunks + 4,
        "4 data chunks: 3 copied, 1 unshared"
    );
    assert_eq!(status.free_chunks, 256 - status.allocated_chunks);
    assert!(
        matches!(&status.journal, JournalState::InPlace { chunks: 4, reason } if reason.contains("too few")),
        "{:?}",
        status.journal
    );
}

#[test]
fn delete_detaches_first_and_frees_the_snapshots_chunks() {
    let (log, engine) = crash_engine(2);
    let control = Controller::new(engine);
    control.engine().origin_write(0, &[0; 512]).unwrap();
    control
        .engine()
        .snapshot_write(0, CHUNK, &[5; 512])
        .unwrap();
    assert_eq!(
        control.handle(Message::Attach(0)).unwrap(),
        Reply::Attached {
            id: 0,
            device: None
        }
    );
    assert_eq!(control.attached(), [0]);
    assert_eq!(
        control.handle(Message::Delete(0)).unwrap(),
        Reply::Deleted {
            id: 0,
            freed_chunks: 1,
            detached: true
        }
    );
    assert!(control.attached().is_empty());
    for after_crash in after_power_cuts(&log) {
        assert_eq!(after_crash.snapmask(), 0b10);
    }
    assert_eq!(
        control.handle(Message::Delete(1)).unwrap().to_string(),
        "deleted 1 (1 chunks freed)"
    );
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let control = Controller::new(engine(2));
    control.handle(Message::Attach(1)).unwrap();
    let before = status(&control);

    let refused = [
        (
            Message::Delete(5),
            "delete 5: snapshot 5 does not exist (snapshots: 0, 1)",
        ),
        (
            Message::CreateSubsnap(64),
            "create_subsnap 64: snapshot 64 does not exist (snapshots: 0, 1)",
        ),
        (
            Message::Attach(1),
            "attach 1: snapshot 1 is already attached",
        ),
        (Message::Detach(0), "detach 0: snapshot 0 is not attached"),
        (
            Message::Attach(9),
            "attach 9: snapshot 9 does not exist (snapshots: 0, 1)",
        ),
    ];
    for (message, text) in refused {
        assert_eq!(control.handle(message).unwrap_err().to_string(), text);
    }
    assert_eq!(status(&control), before);
    assert_eq!(control.attached(), [1]);
    assert_eq!(control.engine().snapmask(), 0b11);

    let empty = Controller::new(engine(0));
    assert_eq!(
        empty.handle(Message::Delete(0)).unwrap_err().to_string(),
        "delete 0: snapshot 0 does not exist (snapshots: none)"
    );
}
