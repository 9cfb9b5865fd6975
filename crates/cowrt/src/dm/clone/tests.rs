use cowfmt::clone::superblock::{CloneSuperblock, METADATA_BLOCK_BYTES};
use tempfile::TempDir;

use super::*;
use crate::dm::fake::Fake;
use crate::dm::runner::DryRun;

/// 1 MiB source and destination: 2048 sectors, 32 regions of 64.
const SOURCE_BYTES: u64 = 1 << 20;

struct Images {
    _dir: TempDir,
    metadata: PathBuf,
    dest: PathBuf,
    source: PathBuf,
}

/// A blank 4 MiB metadata image, a destination and a source.
fn images() -> Images {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let (metadata, dest, source) = (path("meta.img"), path("dest.img"), path("source.img"));
    Device::create_or_extend(&metadata, 4 << 20).unwrap();
    Device::create_or_extend(&dest, SOURCE_BYTES).unwrap();
    Device::create_or_extend(&source, SOURCE_BYTES).unwrap();
    Images {
        _dir: dir,
        metadata,
        dest,
        source,
    }
}

/// Writes a dm-clone superblock for `region_sectors` and `target_sectors` on
/// `path`.
fn write_superblock(path: &Path, region_sectors: u64, target_sectors: u64) {
    let mut block = [0u8; METADATA_BLOCK_BYTES];
    CloneSuperblock::new(region_sectors, target_sectors).encode(&mut block);
    Device::open(path, Access::ReadWrite)
        .unwrap()
        .write_at(&block, 0)
        .unwrap();
}

fn request(images: &Images) -> CloneRequest {
    CloneRequest {
        metadata: images.metadata.clone(),
        dest: images.dest.clone(),
        source: images.source.clone(),
        region_sectors: 64,
        hydration: true,
        name: "c".to_string(),
    }
}

fn loops(images: &Images) -> Fake {
    Fake::default()
        .answer(
            &format!("losetup --find --show {}", images.metadata.display()),
            &[Ok("/dev/loop0\n")],
        )
        .answer(
            &format!("losetup --find --show {}", images.dest.display()),
            &[Ok("/dev/loop1\n")],
        )
        .answer(
            &format!(
                "losetup --find --show --read-only {}",
                images.source.display()
            ),
            &[Ok("/dev/loop2\n")],
        )
}

fn activation_commands(images: &Images, table_tail: &str) -> Vec<String> {
    vec![
        format!("losetup --find --show {}", images.metadata.display()),
        format!("losetup --find --show {}", images.dest.display()),
        format!(
            "losetup --find --show --read-only {}",
            images.source.display()
        ),
        format!(
            "dmsetup create c --table '0 2048 clone /dev/loop0 /dev/loop1 /dev/loop2 {table_tail}'"
        ),
        "dmsetup mknodes".to_string(),
    ]
}

#[test]
fn activation_loads_the_clone_line_over_loop_devices() {
    let images = images();
    let mut fake = loops(&images);
    let done = activate(&mut fake, &request(&images)).unwrap();
    assert_eq!(fake.log, activation_commands(&images, "64"));
    assert_eq!(done.device, "/dev/mapper/c");
    assert_eq!(done.regions, 32);
    assert_eq!(done.loops, ["/dev/loop0", "/dev/loop1", "/dev/loop2"]);
    assert!(done.new_metadata);

    let mut fake = loops(&images);
    let quiet = CloneRequest {
        hydration: false,
        region_sectors: 8,
        ..request(&images)
    };
    let done = activate(&mut fake, &quiet).unwrap();
    assert_eq!(fake.log, activation_commands(&images, "8 1 no_hydration"));
    assert_eq!(done.regions, 256);
}

#[test]
fn metadata_the_kernel_wrote_for_the_same_sizes_is_taken_as_it_is() {
    let images = images();
    write_superblock(&images.metadata, 64, 2048);
    let mut fake = loops(&images);
    let done = activate(&mut fake, &request(&images)).unwrap();
    assert!(!done.new_metadata);
    assert_eq!(fake.log, activation_commands(&images, "64"));
}

#[test]
fn a_source_that_does_not_fill_a_region_gives_a_partial_last_region() {
    let images = images();
    Device::create_or_extend(&images.source, SOURCE_BYTES + 512).unwrap();
    Device::create_or_extend(&images.dest, SOURCE_BYTES + 4096).unwrap();
    let done = activate(&mut loops(&images), &request(&images)).unwrap();
    assert_eq!((done.table.sectors(), done.regions), (2049, 33));
}

#[test]
fn a_dry_run_prints_every_command_with_loop_placeholders() {
    let images = images();
    let mut dry = DryRun::new(Vec::new(), None);
    activate(&mut dry, &request(&images)).unwrap();
    let printed = String::from_utf8(dry.into_inner()).unwrap();
    let (m, d, s) = (
        images.metadata.display(),
        images.dest.display(),
        images.source.display(),
    );
    assert_eq!(
        printed,
        format!(
            "losetup --find --show {m}\nlosetup --find --show {d}\n\
             losetup --find --show --read-only {s}\n\
             dmsetup create c --table '0 2048 clone <loop device of {m}> <loop device of {d}> \
             <loop device of {s}> 64'\ndmsetup mknodes\n"
        )
    );
}

/// Activates with a fake runner that must not be asked anything.
fn refused(request: &CloneRequest) -> String {
    let mut fake = Fake::default();
    let error = activate(&mut fake, request).unwrap_err().to_string();
    assert!(fake.log.is_empty(), "{:?}", fake.log);
    error
}

#[test]
fn region_sizes_the_kernel_refuses_are_refused_before_any_command() {
    let images = images();
    let outside = "is outside the kernel's range of 8 to 2097152 sectors (4 KiB to 1 GiB)";
    let not_power = "is not a power of two, as the kernel requires";
    for (sectors, why) in [
        (0, outside),
        (4, outside),
        (4_194_304, outside),
        (48, not_power),
        (96, not_power),
    ] {
        let bad = CloneRequest {
            region_sectors: sectors,
            ..request(&images)
        };
        assert_eq!(
            refused(&bad),
            format!("--region-size {sectors} sectors: region size {sectors} sectors {why}")
        );
    }
    for sectors in [8, 2_097_152] {
        let good = CloneRequest {
            region_sectors: sectors,
            ..request(&images)
        };
        activate(&mut loops(&images), &good).unwrap();
    }
}

#[test]
fn a_short_destination_or_a_device_named_twice_is_refused() {
    let images = images();
    let small = images.dest.with_file_name("small.img");
    Device::create_or_extend(&small, SOURCE_BYTES - 512).unwrap();
    let short = CloneRequest {
        dest: small.clone(),
        ..request(&images)
    };
    assert_eq!(
        refused(&short),
        format!(
            "refused: {}: has 2047 sectors, fewer than the source's 2048: the destination must \
             hold the whole source",
            small.display()
        )
    );
    let twice = CloneRequest {
        dest: images.source.clone(),
        ..request(&images)
    };
    assert_eq!(
        refused(&twice),
        format!(
            "--dest and --source name the same device ({}); a clone needs three",
            images.source.display()
        )
    );
    let missing = CloneRequest {
        metadata: images.metadata.with_file_name("absent.img"),
        ..request(&images)
    };
    assert!(refused(&missing).contains("absent.img"));
}

#[test]
fn metadata_for_other_sizes_or_damaged_or_foreign_is_refused_with_the_reason() {
    let images = images();
    let meta = images.metadata.display().to_string();
    write_superblock(&images.metadata, 128, 2048);
    assert_eq!(
        refused(&request(&images)),
        format!(
            "refused: {meta}: the dm-clone metadata is for a 2048-sector clone with 128-sector \
             regions, this table is 2048 sectors with 64-sector regions; the kernel would \
             refuse it (use the metadata's sizes, or zero its first 4 KiB to start over, which \
             forgets every hydrated region)"
        )
    );
    write_superblock(&images.metadata, 64, 32768);
    assert!(refused(&request(&images))
        .contains("the dm-clone metadata is for a 32768-sector clone with 64-sector regions"));

    let device = Device::open(&images.metadata, Access::ReadWrite).unwrap();
    device.write_at(&[0xff], 200).unwrap();
    let damaged = refused(&request(&images));
    assert!(
        damaged.starts_with(&format!(
            "refused: {meta}: the dm-clone superblock's checksum 0x"
        )) && damaged.ends_with("; the kernel would refuse to load the clone"),
        "{damaged}"
    );

    let mut snap = [0u8; METADATA_BLOCK_BYTES];
    cowfmt::persistent::header::Header::new(8).encode(&mut snap);
    device.write_at(&snap, 0).unwrap();
    assert_eq!(
        refused(&request(&images)),
        format!(
            "refused: {meta}: holds a persistent store (SnAp, chunk size 8), not dm-clone \
             metadata; the kernel loads a clone only over its own metadata or a device whose \
             first 4 KiB are zero"
        )
    );
    device.write_at(b"junk", 0).unwrap();
    assert!(refused(&request(&images)).contains(
        "holds no dm-clone metadata: superblock magic 0x0 at byte 32, expected 0x8af27f64; the \
         kernel loads a clone only"
    ));

    let tiny = images.metadata.with_file_name("tiny.img");
    Device::create_or_extend(&tiny, 1024).unwrap();
    let short = CloneRequest {
        metadata: tiny,
        ..request(&images)
    };
    assert!(
        refused(&short).ends_with("is 1024 bytes long, shorter than one 4096-byte metadata block")
    );
}

#[test]
fn a_failed_create_detaches_the_loops_it_attached() {
    let images = images();
    let mut fake = loops(&images).answer(
        "dmsetup create c --table '0 2048 clone /dev/loop0 /dev/loop1 /dev/loop2 64'",
        &[Err(
            "device-mapper: reload ioctl on c failed: Invalid argument",
        )],
    );
    let error = activate(&mut fake, &request(&images)).unwrap_err();
    assert!(error.to_string().ends_with("Invalid argument"));
    assert_eq!(
        fake.log[4..],
        [
            "losetup --detach /dev/loop2",
            "losetup --detach /dev/loop1",
            "losetup --detach /dev/loop0",
        ]
    );
}

const NAMES: &str = "dmsetup info -c --noheadings -o name";
/// The table `dmsetup table` printed for golden image d's clone.
const KERNEL_TABLE: &str = "0 32768 clone 254:224 254:240 254:256 64 1 no_hydration\n";

fn kernel_status(hydrated: u64, features: &str, threshold: u64) -> String {
    format!(
        "0 32768 clone 8 6/1024 64 {hydrated}/512 0 {features} 4 hydration_threshold \
         {threshold} hydration_batch_size 1 rw\n"
    )
}

fn active_clone() -> Fake {
    Fake::default()
        .answer(NAMES, &[Ok("c\nother\n")])
        .answer("dmsetup table c", &[Ok(KERNEL_TABLE)])
        .answer(
            "dmsetup table other",
            &[Ok("0 2048 snapshot 7:0 7:1 P 8\n")],
        )
}

#[test]
fn status_reads_the_table_and_the_kernels_status_line() {
    let status_line = kernel_status(12, "1 no_hydration", 1);
    let mut fake = active_clone().answer("dmsetup status c", &[Ok(&status_line)]);
    let found = status(&mut fake, "c").unwrap();
    assert_eq!(found.device, "/dev/mapper/c");
    assert_eq!(found.table.to_string(), KERNEL_TABLE.trim());
    assert_eq!(
        (found.hydration_enabled, found.complete),
        (Some(false), Some(false))
    );
    let CloneState::Active(usage) = &found.status else {
        panic!("{found:?}");
    };
    assert_eq!((usage.hydrated_regions, usage.total_regions), (12, 512));
    let json = serde_json::to_value(&found).unwrap();
    assert_eq!(json["status"]["state"], "active");
    assert_eq!(json["status"]["hydrated_regions"], 12);
    assert_eq!(json["status"]["mode"], "rw");
    assert_eq!(json["table"]["target"], "clone");
    assert_eq!(json["hydration_enabled"], false);

    let mut failed = active_clone().answer("dmsetup status c", &[Ok("0 32768 clone Fail\n")]);
    let found = status(&mut failed, "c").unwrap();
    assert_eq!(
        (found.status, found.hydration_enabled),
        (CloneState::Fail, None)
    );
    assert_eq!(
        status(&mut active_clone(), "other")
            .unwrap_err()
            .to_string(),
        "device 'other' is 0 2048 snapshot 7:0 7:1 P 8, expected a clone"
    );
    assert_eq!(
        status(&mut active_clone(), "gone").unwrap_err().to_string(),
        "no device 'gone' is active"
    );
    assert!(is_clone(&mut active_clone(), "c").unwrap());
    assert!(!is_clone(&mut active_clone(), "other").unwrap());
    assert!(!is_clone(&mut active_clone(), "gone").unwrap());
}

#[test]
fn hydration_messages_are_the_kernels_words() {
    let cases = [
        (
            HydrationMessage::Start,
            "dmsetup message c 0 enable_hydration",
        ),
        (
            HydrationMessage::Stop,
            "dmsetup message c 0 disable_hydration",
        ),
        (
            HydrationMessage::Threshold(64),
            "dmsetup message c 0 hydration_threshold 64",
        ),
        (
            HydrationMessage::BatchSize(16),
            "dmsetup message c 0 hydration_batch_size 16",
        ),
    ];
    for (sent, line) in cases {
        let mut fake = Fake::default();
        message(&mut fake, "c", sent).unwrap();
        assert_eq!(fake.log, [line]);
    }
    let refused = "device-mapper: message ioctl on other failed: Invalid argument";
    let mut wrong =
        active_clone().answer("dmsetup message other 0 enable_hydration", &[Err(refused)]);
    assert_eq!(
        message(&mut wrong, "other", HydrationMessage::Start)
            .unwrap_err()
            .to_string(),
        "device 'other' is 0 2048 snapshot 7:0 7:1 P 8, expected a clone"
    );
    let mut odd = active_clone().answer("dmsetup message c 0 enable_hydration", &[Err(refused)]);
    assert!(message(&mut odd, "c", HydrationMessage::Start)
        .unwrap_err()
        .to_string()
        .ends_with(refused));
}

const NO_WAIT: HydrationWait = HydrationWait {
    interval: Duration::ZERO,
    timeout: Duration::from_secs(600),
};

#[test]
fn waiting_reports_each_change_until_every_region_is_hydrated() {
    let (a, b, c) = (
        kernel_status(0, "0", 1),
        kernel_status(300, "0", 1),
        kernel_status(512, "0", 1),
    );
    let mut fake = active_clone().answer("dmsetup status c", &[Ok(&a), Ok(&b), Ok(&b), Ok(&c)]);
    let mut seen = Vec::new();
    let report = wait_hydrated(&mut fake, "c", NO_WAIT, &mut |usage| {
        seen.push(usage.hydrated_regions)
    })
    .unwrap();
    assert_eq!(seen, [0, 300, 512]);
    assert_eq!(report.polls, 4);
    assert!(report.usage.unwrap().is_complete());
}

#[test]
fn waiting_stops_when_hydration_cannot_finish() {
    let wait = |line: &str, timeout: Duration| {
        let mut fake = active_clone().answer("dmsetup status c", &[Ok(line)]);
        let wait = HydrationWait { timeout, ..NO_WAIT };
        wait_hydrated(&mut fake, "c", wait, &mut |_| {})
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        wait(&kernel_status(12, "1 no_hydration", 1), NO_WAIT.timeout),
        "hydrating 'c' is not done after 0.0 s (12/512 regions): hydration is off; start it \
         with `cowrt dm hydrate NAME start`"
    );
    assert!(wait(&kernel_status(12, "0", 0), NO_WAIT.timeout).ends_with(
        "hydration is paused (threshold 0); raise it with `cowrt dm hydrate NAME threshold N`"
    ));
    assert!(wait(&kernel_status(12, "0", 1), Duration::ZERO).ends_with(
        "(12/512 regions): timed out; the kernel goes on, run the wait again to follow it"
    ));
    assert_eq!(
        wait("0 32768 clone Fail\n", NO_WAIT.timeout),
        "hydrating 'c' failed: the clone reports Fail (dmesg says why)"
    );
    let mut dry = DryRun::new(Vec::new(), None);
    let report = wait_hydrated(&mut dry, "c", NO_WAIT, &mut |_| {}).unwrap();
    assert_eq!((report.polls, report.usage), (0, None));
}

#[test]
fn deactivate_removes_the_clone_then_its_three_loops() {
    let mut fake = Fake::default()
        .answer(NAMES, &[Ok("c\n")])
        .answer("dmsetup table c", &[Ok("0 2048 clone 7:0 7:1 7:2 64\n")]);
    let detached = deactivate(&mut fake, "c", false).unwrap();
    assert_eq!(detached, ["/dev/loop0", "/dev/loop1", "/dev/loop2"]);
    assert_eq!(
        fake.log[3..],
        [
            "dmsetup remove c",
            "losetup --detach /dev/loop0",
            "losetup --detach /dev/loop1",
            "losetup --detach /dev/loop2",
        ]
    );
    let mut snapshot = active_clone();
    assert!(deactivate(&mut snapshot, "other", false)
        .unwrap_err()
        .to_string()
        .ends_with("expected a clone"));
    assert!(!snapshot.log.iter().any(|l| l.contains("remove")));
}

#[test]
fn region_sizes_parse_as_sectors_or_with_a_unit() {
    assert_eq!(parse_region_size("64"), Ok(64));
    assert_eq!(parse_region_size("32k"), Ok(64));
    assert_eq!(parse_region_size("8s"), Ok(8));
    assert_eq!(parse_region_size("1G"), Ok(2_097_152));
    assert_eq!(
        parse_region_size("1000b"),
        Err("region size '1000b' is not a whole number of 512-byte sectors".to_string())
    );
    assert!(parse_region_size("x").is_err());
}

#[test]
fn more_regions_than_the_kernel_tracks_are_refused_before_any_command() {
    let images = images();
    Device::create_or_extend(&images.source, (1 << 31) * 4096 + 512).unwrap();
    Device::create_or_extend(&images.dest, (1 << 31) * 4096 + 512).unwrap();
    let many = CloneRequest {
        region_sectors: 8,
        ..request(&images)
    };
    assert_eq!(
        refused(&many),
        "--region-size 8 sectors: a target of 17179869185 sectors in regions of 8 sectors has \
         2147483649 regions, more than the kernel's limit of 2^31 (2147483648); use a larger \
         region size"
    );
}

#[test]
fn blank_metadata_too_small_for_the_kernels_format_is_refused_before_any_command() {
    let images = images();
    std::fs::remove_file(&images.metadata).unwrap();
    Device::create_or_extend(&images.metadata, 2 * 4096).unwrap();
    assert_eq!(
        refused(&request(&images)),
        format!(
            "refused: {}: is blank and too small: the metadata device holds 2 blocks of 4 KiB; \
             formatting 32 regions needs at least 6; the kernel could not format it",
            images.metadata.display()
        )
    );
}
