//! `cowrt dm` from the command line, with no root and no kernel: dry runs and
//! refusals, which run no command at all.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use cowfmt::device::{Access, Device};
use cowfmt::persistent::writer::StoreWriter;
use tempfile::TempDir;

fn images(dir: &TempDir) -> (PathBuf, PathBuf) {
    let origin = dir.path().join("origin.img");
    let cow = dir.path().join("cow.img");
    Device::create_or_extend(&origin, 4 << 20).unwrap();
    let device = Device::create_or_extend(&cow, 1 << 20).unwrap();
    StoreWriter::format(device, 16).unwrap().finish().unwrap();
    (origin, cow)
}

fn activate(kind: &str, origin: &Path, cow: &Path) -> Command {
    let mut command = Command::cargo_bin("cowrt").unwrap();
    command.args(["dm", "activate", "--dry-run", "--kind", kind, "--origin"]);
    command.arg(origin).arg("--cow").arg(cow).arg("snap");
    command
}

#[test]
fn a_dry_run_prints_every_command_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, cow) = images(&dir);
    let before = std::fs::read(&cow).unwrap();
    let output = activate("persistent", &origin, &cow).assert().success();
    let stdout = String::from_utf8(output.get_output().stdout.clone()).unwrap();
    let (o, c) = (origin.display(), cow.display());
    assert_eq!(
        stdout,
        format!(
            "losetup --find --show {o}\nlosetup --find --show {c}\n\
             dmsetup create snap-origin --table '0 8192 snapshot-origin <loop device of {o}>'\n\
             dmsetup suspend snap-origin\n\
             dmsetup create snap --table '0 8192 snapshot <loop device of {o}> <loop device of {c}> P 16'\n\
             dmsetup resume snap-origin\ndmsetup mknodes\ndry run: nothing was changed\n"
        )
    );
    assert_eq!(std::fs::read(&cow).unwrap(), before);
}

#[test]
fn a_damaged_store_is_refused_with_exit_1_and_bad_options_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (origin, cow) = images(&dir);
    let device = Device::open(&cow, Access::ReadWrite).unwrap();
    device.write_at(&5u32.to_le_bytes(), 8).unwrap();
    drop(device);
    let output = activate("legacy", &origin, &cow).assert().code(1);
    let stderr = String::from_utf8(output.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.starts_with(&format!(
            "cowrt: refused: {}: cowcheck finds the legacy store damaged: ",
            cow.display()
        )),
        "{stderr}"
    );
    assert!(output.get_output().stdout.is_empty());

    let mut overflow = activate("transient", &origin, &cow);
    overflow.arg("--overflow");
    overflow.assert().code(2);
    let mut bad_chunk = activate("persistent", &origin, &cow);
    bad_chunk.args(["--chunk-size", "3k"]);
    bad_chunk.assert().code(2);
}
