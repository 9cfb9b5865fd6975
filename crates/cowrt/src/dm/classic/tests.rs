use std::path::Path;

use cowfmt::persistent::writer::StoreWriter;
use tempfile::TempDir;

use super::*;
use crate::dm::fake::Fake;
use crate::dm::runner::DryRun;

const ORIGIN_BYTES: u64 = 1 << 20;

/// An origin image and a COW image, the COW formatted as a persistent store
/// of `chunk` sectors (or left zeroed with `None`).
fn images(chunk: Option<u32>) -> (TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin.img");
    let cow = dir.path().join("cow.img");
    Device::create_or_extend(&origin, ORIGIN_BYTES).unwrap();
    let device = Device::create_or_extend(&cow, ORIGIN_BYTES / 2).unwrap();
    if let Some(chunk) = chunk {
        StoreWriter::format(device, chunk)
            .unwrap()
            .finish()
            .unwrap();
    }
    (dir, origin, cow)
}

fn request(kind: ClassicKind, origin: &Path, cow: &Path) -> ActivateRequest {
    ActivateRequest {
        kind,
        overflow: false,
        origin: origin.to_path_buf(),
        cow: cow.to_path_buf(),
        chunk_sectors: None,
        name: "snap".to_string(),
    }
}

fn loops(fake: Fake, origin: &Path, cow: &Path) -> Fake {
    fake.answer(
        &format!("losetup --find --show {}", origin.display()),
        &[Ok("/dev/loop0\n")],
    )
    .answer(
        &format!("losetup --find --show {}", cow.display()),
        &[Ok("/dev/loop1\n")],
    )
}

fn activation_commands(origin: &Path, cow: &Path, snapshot_args: &str) -> Vec<String> {
    vec![
        format!("losetup --find --show {}", origin.display()),
        format!("losetup --find --show {}", cow.display()),
        "dmsetup create snap-origin --table '0 2048 snapshot-origin /dev/loop0'".to_string(),
        "dmsetup suspend snap-origin".to_string(),
        format!(
            "dmsetup create snap --table '0 2048 snapshot /dev/loop0 /dev/loop1 {snapshot_args}'"
        ),
        "dmsetup resume snap-origin".to_string(),
        "dmsetup mknodes".to_string(),
    ]
}

#[test]
fn each_kind_activates_with_its_table_line() {
    let (_dir, origin, cow) = images(Some(16));
    let mut fake = loops(Fake::default(), &origin, &cow);
    let done = activate(&mut fake, &request(ClassicKind::Persistent, &origin, &cow)).unwrap();
    assert_eq!(fake.log, activation_commands(&origin, &cow, "P 16"));
    assert_eq!(done.snapshot_device, "/dev/mapper/snap");
    assert_eq!(done.origin_device, "/dev/mapper/snap-origin");
    assert_eq!(done.loops, ["/dev/loop0", "/dev/loop1"]);
    assert!(!done.formatted_by_kernel);

    let mut fake = loops(Fake::default(), &origin, &cow);
    let overflow = ActivateRequest {
        overflow: true,
        ..request(ClassicKind::Persistent, &origin, &cow)
    };
    activate(&mut fake, &overflow).unwrap();
    assert_eq!(fake.log, activation_commands(&origin, &cow, "PO 16"));

    let mut fake = loops(Fake::default(), &origin, &cow);
    activate(&mut fake, &request(ClassicKind::Legacy, &origin, &cow)).unwrap();
    assert_eq!(fake.log, activation_commands(&origin, &cow, "P 16"));

    let (_dir, origin, cow) = images(None);
    let mut fake = loops(Fake::default(), &origin, &cow);
    let transient = ActivateRequest {
        chunk_sectors: Some(32),
        ..request(ClassicKind::Transient, &origin, &cow)
    };
    activate(&mut fake, &transient).unwrap();
    assert_eq!(fake.log, activation_commands(&origin, &cow, "N 32"));

    let mut fake = loops(Fake::default(), &origin, &cow);
    let fresh = activate(&mut fake, &request(ClassicKind::Persistent, &origin, &cow)).unwrap();
    assert_eq!(fake.log, activation_commands(&origin, &cow, "P 8"));
    assert!(
        fresh.formatted_by_kernel,
        "an empty COW is formatted by the kernel"
    );
}

#[test]
fn a_dry_run_prints_every_command_with_loop_placeholders() {
    let (_dir, origin, cow) = images(Some(8));
    let mut dry = DryRun::new(Vec::new(), None);
    activate(&mut dry, &request(ClassicKind::Persistent, &origin, &cow)).unwrap();
    let printed = String::from_utf8(dry.into_inner()).unwrap();
    let (o, c) = (origin.display(), cow.display());
    assert_eq!(
        printed,
        format!(
            "losetup --find --show {o}\nlosetup --find --show {c}\n\
             dmsetup create snap-origin --table '0 2048 snapshot-origin <loop device of {o}>'\n\
             dmsetup suspend snap-origin\n\
             dmsetup create snap --table '0 2048 snapshot <loop device of {o}> <loop device of {c}> P 8'\n\
             dmsetup resume snap-origin\ndmsetup mknodes\n"
        )
    );
}

#[test]
fn wrong_kind_damaged_or_mismatched_stores_are_refused_before_any_command() {
    let (dir, origin, cow) = images(Some(8));
    let refused = |request: &ActivateRequest| {
        let mut fake = Fake::default();
        let error = activate(&mut fake, request).unwrap_err().to_string();
        assert!(fake.log.is_empty(), "{:?}", fake.log);
        error
    };
    let cow_text = cow.display().to_string();

    let chunk = ActivateRequest {
        chunk_sectors: Some(16),
        ..request(ClassicKind::Persistent, &origin, &cow)
    };
    assert_eq!(
        refused(&chunk),
        format!(
            "refused: {cow_text}: --chunk-size 16 sectors differs from the store header's 8; the \
             kernel would use the header's (leave --chunk-size out, or re-chunk with cowmigrate)"
        )
    );
    assert_eq!(
        refused(&request(ClassicKind::Transient, &origin, &cow)),
        format!(
            "refused: {cow_text}: holds a persistent store; --kind transient would overwrite it \
             with data chunks (wipe it first if that is what you want)"
        )
    );
    let legacy_overflow = ActivateRequest {
        overflow: true,
        ..request(ClassicKind::Legacy, &origin, &cow)
    };
    assert!(refused(&legacy_overflow).starts_with("--overflow needs --kind persistent"));

    let device = Device::open(&cow, Access::ReadWrite).unwrap();
    device.write_at(&7u32.to_le_bytes(), 8).unwrap();
    drop(device);
    let damaged = refused(&request(ClassicKind::Persistent, &origin, &cow));
    assert!(
        damaged.starts_with(&format!(
            "refused: {cow_text}: cowcheck finds the persistent store damaged: "
        )),
        "{damaged}"
    );
    assert!(damaged.contains("version"), "{damaged}");

    let shared = dir.path().join("shared.img");
    let device = Device::create_or_extend(&shared, 1 << 20).unwrap();
    device
        .write_at(&cowfmt::kind::SHARED_MAGIC.to_le_bytes(), 0)
        .unwrap();
    drop(device);
    assert!(refused(&request(ClassicKind::Persistent, &origin, &shared))
        .ends_with("holds a shared store, which device-mapper cannot serve; cowrt's ublk half serves it (docs/cowrt.md)"));

    let clone = dir.path().join("clone.img");
    let device = Device::create_or_extend(&clone, 1 << 20).unwrap();
    let mut superblock = [0u8; 4096];
    cowfmt::clone::superblock::CloneSuperblock::new(8, 1 << 20).encode(&mut superblock);
    device.write_at(&superblock, 0).unwrap();
    drop(device);
    for kind in [
        ClassicKind::Persistent,
        ClassicKind::Legacy,
        ClassicKind::Transient,
    ] {
        assert!(refused(&request(kind, &origin, &clone)).ends_with(
            "holds dm-clone metadata, not a snapshot store; `cowrt dm activate --kind clone` serves it"
        ));
    }

    let junk = dir.path().join("junk.img");
    let device = Device::create_or_extend(&junk, 1 << 20).unwrap();
    device.write_at(b"XFSB", 0).unwrap();
    drop(device);
    assert!(
        refused(&request(ClassicKind::Legacy, &origin, &junk)).starts_with(&format!(
            "refused: {}: is not a legacy store: ",
            junk.display()
        ))
    );

    let bad_name = ActivateRequest {
        name: "a/b".to_string(),
        ..request(ClassicKind::Persistent, &origin, &cow)
    };
    assert_eq!(
        refused(&bad_name),
        "device name 'a/b': must not contain '/', spaces or control characters"
    );
}

#[test]
fn a_failed_step_undoes_the_steps_before_it() {
    let (_dir, origin, cow) = images(Some(8));
    let mut fake = loops(Fake::default(), &origin, &cow).answer(
        "dmsetup create snap --table '0 2048 snapshot /dev/loop0 /dev/loop1 P 8'",
        &[Err("device-mapper: reload ioctl failed: Invalid argument")],
    );
    let error = activate(&mut fake, &request(ClassicKind::Persistent, &origin, &cow)).unwrap_err();
    assert!(error
        .to_string()
        .ends_with("exit status 1: device-mapper: reload ioctl failed: Invalid argument"));
    assert_eq!(
        fake.log[5..],
        [
            "dmsetup resume snap-origin",
            "dmsetup remove snap-origin",
            "losetup --detach /dev/loop1",
            "losetup --detach /dev/loop0",
        ]
    );
}

fn active_pair() -> Fake {
    Fake::default()
        .answer(
            "dmsetup info -c --noheadings -o name",
            &[Ok("other\nsnap\nsnap-origin\n")],
        )
        .answer("dmsetup table snap", &[Ok("0 2048 snapshot 7:0 7:1 P 8\n")])
        .answer(
            "dmsetup table snap-origin",
            &[Ok("0 2048 snapshot-origin 7:0\n")],
        )
        .answer("dmsetup status snap", &[Ok("0 2048 snapshot 40/1024 16\n")])
}

#[test]
fn deactivate_removes_both_devices_then_their_loops() {
    let mut fake = active_pair();
    let detached = deactivate(&mut fake, "snap", false).unwrap();
    assert_eq!(detached, ["/dev/loop0", "/dev/loop1"]);
    assert_eq!(
        fake.log[3..],
        [
            "dmsetup remove snap",
            "dmsetup remove snap-origin",
            "losetup --detach /dev/loop0",
            "losetup --detach /dev/loop1",
        ]
    );
    let mut keep = active_pair();
    assert!(deactivate(&mut keep, "snap", true).unwrap().is_empty());
    assert!(!keep.log.iter().any(|l| l.starts_with("losetup")));

    let mut none = Fake::default().answer("dmsetup info -c --noheadings -o name", &[Ok("other\n")]);
    assert_eq!(
        deactivate(&mut none, "snap", false)
            .unwrap_err()
            .to_string(),
        "no device 'snap' or 'snap-origin' is active"
    );
}

#[test]
fn merge_loads_snapshot_merge_waits_and_leaves_a_linear_origin() {
    let mut fake = active_pair().answer(
        "dmsetup status snap-origin",
        &[
            Ok("0 2048 snapshot-merge 40/1024 16\n"),
            Ok("0 2048 snapshot-merge 24/1024 16\n"),
            Ok("0 2048 snapshot-merge 16/1024 16\n"),
        ],
    );
    let wait = MergeWait {
        interval: Duration::ZERO,
        timeout: Duration::from_secs(60),
    };
    let report = merge(&mut fake, "snap", wait).unwrap();
    assert_eq!(report.polls, 3);
    assert_eq!(report.allocated_sectors, Some(40));
    let changes: Vec<&String> = fake
        .log
        .iter()
        .filter(|l| {
            !l.starts_with("dmsetup status")
                && !l.starts_with("dmsetup table")
                && !l.starts_with("dmsetup info")
        })
        .collect();
    assert_eq!(
        changes,
        [
            "dmsetup suspend snap-origin",
            "dmsetup remove snap",
            "dmsetup load snap-origin --table '0 2048 snapshot-merge 7:0 7:1 P 8'",
            "dmsetup resume snap-origin",
            "dmsetup suspend snap-origin",
            "dmsetup load snap-origin --table '0 2048 linear 7:0 0'",
            "dmsetup resume snap-origin",
        ]
    );

    let mut failing = active_pair().answer(
        "dmsetup status snap-origin",
        &[Ok("0 2048 snapshot-merge Merge failed\n")],
    );
    assert_eq!(
        merge(&mut failing, "snap", wait).unwrap_err().to_string(),
        "merging 'snap' failed: the origin reports MergeFailed"
    );
    let mut transient =
        active_pair().answer("dmsetup table snap", &[Ok("0 2048 snapshot 7:0 7:1 N 8\n")]);
    let error = merge(&mut transient, "snap", wait).unwrap_err().to_string();
    assert!(error.starts_with(
        "device 'snap' is 0 2048 snapshot 7:0 7:1 N 8, expected a persistent snapshot"
    ));
    assert!(!transient.log.iter().any(|l| l.contains("suspend")));
}

#[test]
fn a_merge_that_fails_after_a_suspend_always_resumes_the_origin() {
    let wait = MergeWait {
        interval: Duration::ZERO,
        timeout: Duration::from_secs(60),
    };
    let merge_load = "dmsetup load snap-origin --table '0 2048 snapshot-merge 7:0 7:1 P 8'";
    let linear_load = "dmsetup load snap-origin --table '0 2048 linear 7:0 0'";
    let (suspend, resume) = ("dmsetup suspend snap-origin", "dmsetup resume snap-origin");
    // Each step, with the answers that make it fail where it comes.
    let cases: [(&str, &[Result<&str, &str>]); 7] = [
        (suspend, &[Err("no suspend")]),
        ("dmsetup remove snap", &[Err("no suspend")]),
        (merge_load, &[Err("no suspend")]),
        (resume, &[Err("no suspend"), Ok("")]),
        (suspend, &[Ok(""), Err("no suspend")]),
        (linear_load, &[Err("no suspend")]),
        (resume, &[Ok(""), Err("no suspend"), Ok("")]),
    ];
    for (step, answers) in cases {
        let mut fake = active_pair()
            .answer(
                "dmsetup status snap-origin",
                &[Ok("0 2048 snapshot-merge 16/1024 16\n")],
            )
            .answer(step, answers);
        let error = merge(&mut fake, "snap", wait).unwrap_err().to_string();
        assert!(
            error.contains(step) && error.contains("no suspend"),
            "{step}: {error}"
        );
        let nth = answers.iter().position(Result::is_err).unwrap();
        let failed = (0..fake.log.len())
            .filter(|&i| fake.log[i] == step)
            .nth(nth)
            .unwrap();
        assert_eq!(
            fake.log[failed + 1..],
            [resume],
            "{step}: the origin is resumed after the failure, and nothing else is run"
        );
    }
}

#[test]
fn status_reads_both_devices() {
    let mut fake = active_pair().answer(
        "dmsetup status snap-origin",
        &[Ok("0 2048 snapshot-origin \n")],
    );
    let found = status(&mut fake, "snap").unwrap();
    assert_eq!(
        found.snapshot.unwrap().status,
        TargetStatus::Snapshot {
            state: SnapshotState::Active {
                allocated_sectors: 40,
                total_sectors: 1024,
                metadata_sectors: 16
            }
        }
    );
    assert_eq!(found.origin.unwrap().status, TargetStatus::SnapshotOrigin);
}
