//! `cowrt dm` for clones from the command line, with no root and no kernel:
//! dry runs (they print every command and run none) and refusals (they run
//! no command at all).

use std::path::PathBuf;

use assert_cmd::Command;

use crate::output::{stderr, stdout};
use cowfmt::clone::superblock::{CloneSuperblock, METADATA_BLOCK_BYTES};
use cowfmt::device::{Access, Device};
use cowfmt::persistent::writer::StoreWriter;
use tempfile::TempDir;

struct Images {
    dir: TempDir,
    metadata: PathBuf,
    dest: PathBuf,
    source: PathBuf,
}

/// A blank 4 MiB metadata image, and 4 MiB destination and source images
/// (8192 sectors).
fn images() -> Images {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let (metadata, dest, source) = (path("meta.img"), path("dest.img"), path("source.img"));
    for file in [&metadata, &dest, &source] {
        Device::create_or_extend(file, 4 << 20).unwrap();
    }
    Images {
        dir,
        metadata,
        dest,
        source,
    }
}

fn cowrt() -> Command {
    Command::cargo_bin("cowrt").unwrap()
}

/// `cowrt dm activate --kind clone` over the images, then `extra`.
fn activate(images: &Images, extra: &[&str]) -> Command {
    let mut command = cowrt();
    command.args(["dm", "activate", "--kind", "clone", "--metadata"]);
    command
        .arg(&images.metadata)
        .arg("--dest")
        .arg(&images.dest);
    command.arg("--source").arg(&images.source);
    command.args(extra).arg("vm1");
    command
}

#[test]
fn a_dry_run_prints_the_clone_line_over_loop_devices_and_changes_nothing() {
    let images = images();
    let before = std::fs::read(&images.metadata).unwrap();
    let printed = stdout(
        &mut activate(&images, &["--dry-run", "--region-size", "64"]),
        0,
    );
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
             dmsetup create vm1 --table '0 8192 clone <loop device of {m}> \
             <loop device of {d}> <loop device of {s}> 64'\n\
             dmsetup mknodes\ndry run: nothing was changed\n"
        )
    );
    assert_eq!(std::fs::read(&images.metadata).unwrap(), before);

    let quiet = stdout(
        &mut activate(
            &images,
            &["--dry-run", "--no-hydration", "--region-size", "32k"],
        ),
        0,
    );
    assert!(
        quiet.contains(&format!("<loop device of {s}> 64 1 no_hydration'\n")),
        "{quiet}"
    );
}

#[test]
fn sizes_the_kernel_refuses_are_refused_before_any_command() {
    let images = images();
    let error = stderr(
        &mut activate(&images, &["--dry-run", "--region-size", "48"]),
        2,
    );
    assert_eq!(
        error,
        "cowrt: --region-size 48 sectors: region size 48 sectors is not a power of two, as the \
         kernel requires\n"
    );
    Device::create_or_extend(&images.source, 8 << 20).unwrap();
    let error = stderr(
        &mut activate(&images, &["--dry-run", "--region-size", "64"]),
        1,
    );
    assert_eq!(
        error,
        format!(
            "cowrt: refused: {}: has 8192 sectors, fewer than the source's 16384: the \
             destination must hold the whole source\n",
            images.dest.display()
        )
    );
}

#[test]
fn metadata_for_other_sizes_or_of_another_kind_is_refused_with_exit_1() {
    let images = images();
    let mut block = [0u8; METADATA_BLOCK_BYTES];
    CloneSuperblock::new(64, 8192).encode(&mut block);
    Device::open(&images.metadata, Access::ReadWrite)
        .unwrap()
        .write_at(&block, 0)
        .unwrap();
    let same = stdout(
        &mut activate(&images, &["--dry-run", "--region-size", "64"]),
        0,
    );
    assert!(same.ends_with("dry run: nothing was changed\n"));
    let error = stderr(
        &mut activate(&images, &["--dry-run", "--region-size", "128"]),
        1,
    );
    assert!(
        error.starts_with(&format!(
            "cowrt: refused: {}: the dm-clone metadata is for a 8192-sector clone with \
             64-sector regions, this table is 8192 sectors with 128-sector regions",
            images.metadata.display()
        )),
        "{error}"
    );

    let cow = images.dir.path().join("cow.img");
    let device = Device::create_or_extend(&cow, 1 << 20).unwrap();
    StoreWriter::format(device, 16).unwrap().finish().unwrap();
    let mut over_a_store = cowrt();
    over_a_store.args([
        "dm",
        "activate",
        "--dry-run",
        "--kind",
        "clone",
        "--metadata",
    ]);
    over_a_store.arg(&cow).arg("--dest").arg(&images.dest);
    over_a_store.arg("--source").arg(&images.source);
    over_a_store.args(["--region-size", "64", "vm1"]);
    let error = stderr(&mut over_a_store, 1);
    assert!(
        error.contains("holds a persistent store (SnAp, chunk size 16), not dm-clone metadata"),
        "{error}"
    );
}

#[test]
fn snapshot_and_clone_arguments_do_not_mix() {
    let images = images();
    let mut with_origin = activate(&images, &["--dry-run", "--region-size", "64", "--origin"]);
    with_origin.arg(&images.source);
    assert!(stderr(&mut with_origin, 2).starts_with(
        "cowrt: --origin, --cow, --overflow and --chunk-size go with the snapshot kinds"
    ));
    assert!(stderr(&mut activate(&images, &["--dry-run"]), 2).contains("--region-size"));

    let mut classic = cowrt();
    classic.args([
        "dm",
        "activate",
        "--dry-run",
        "--kind",
        "persistent",
        "--origin",
    ]);
    classic.arg(&images.source).arg("--cow").arg(&images.dest);
    classic.args(["--region-size", "64", "snap"]);
    assert_eq!(
        stderr(&mut classic, 2),
        "cowrt: --metadata, --dest, --source, --region-size and --no-hydration go with --kind \
         clone\n"
    );
}

#[test]
fn hydration_messages_print_as_dmsetup_messages_in_a_dry_run() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["start"],
            "dmsetup message vm1 0 enable_hydration\ndry run: nothing was changed\n",
        ),
        (
            &["stop"],
            "dmsetup message vm1 0 disable_hydration\ndry run: nothing was changed\n",
        ),
        (
            &["threshold", "256"],
            "dmsetup message vm1 0 hydration_threshold 256\ndry run: nothing was changed\n",
        ),
        (
            &["batch-size", "16"],
            "dmsetup message vm1 0 hydration_batch_size 16\ndry run: nothing was changed\n",
        ),
        (
            &["start", "--wait"],
            "dmsetup message vm1 0 enable_hydration\ndry run: nothing was changed (a real \
             --wait polls `dmsetup status vm1` until every region is hydrated)\n",
        ),
    ];
    for (args, printed) in cases {
        let mut hydrate = cowrt();
        hydrate
            .args(["dm", "hydrate", "--dry-run", "vm1"])
            .args(args);
        assert_eq!(stdout(&mut hydrate, 0), printed, "{args:?}");
    }
    let refused: [(&[&str], &str); 3] = [
        (
            &["stop", "--wait"],
            "--wait goes with start, threshold or batch-size: after stop it would never end",
        ),
        (
            &["threshold"],
            "threshold and batch-size need a number of regions",
        ),
        (&["start", "4"], "start and stop take no number"),
    ];
    for (args, why) in refused {
        let mut hydrate = cowrt();
        hydrate
            .args(["dm", "hydrate", "--dry-run", "vm1"])
            .args(args);
        assert_eq!(
            stderr(&mut hydrate, 2),
            format!("cowrt: {why}\n"),
            "{args:?}"
        );
    }
}

#[test]
fn help_shows_clone_examples() {
    let activate_help = stdout(cowrt().args(["dm", "activate", "--help"]), 0);
    assert!(activate_help.contains("cowrt dm activate --kind clone --metadata meta.img"));
    assert!(activate_help.contains("--region-size <SECTORS>"));
    let hydrate_help = stdout(cowrt().args(["dm", "hydrate", "--help"]), 0);
    assert!(hydrate_help.contains("cowrt dm hydrate vm1 start --wait"));
    assert!(hydrate_help.contains("batch-size"));
}
