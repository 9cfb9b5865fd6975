//! CLI tests of a snapshot's data: `cowmigrate --to raw` writes the image the
//! kernel showed for the snapshot (golden hashes) or the engine reads (shared
//! stores), sparse and through the output guard, or to a pipe;
//! `cowmigrate --merge` rolls the origin back to the snapshot, empties the
//! store or deletes the shared snapshot, and finishes a merge a crash cut
//! short. Devices held open elsewhere are warned about (cowcheck) or refused
//! (writers), through a fake sysfs.

use crate::common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use cowfmt::blockdev::BlockDev;
use cowfmt::device::{Access, Device};
use cowfmt::output::Marker;
use cowfmt::{CrashEvent, CrashLog, MemDev};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

fn migrate(args: &[&str]) -> Output {
    run_tool("cowmigrate", args)
}

/// The arguments `-i COW --to raw --origin ORIGIN -o OUT`.
fn export_args<'a>(cow: &'a Path, origin: &'a Path, out: &'a str) -> Vec<&'a str> {
    vec![
        "-i",
        s(cow),
        "--to",
        "raw",
        "--origin",
        s(origin),
        "-o",
        out,
    ]
}

/// `cowmigrate` with [`export_args`] and `extra` arguments.
fn export(cow: &Path, origin: &Path, out: &str, extra: &[&str]) -> Output {
    let mut args = export_args(cow, origin, out);
    args.extend_from_slice(extra);
    migrate(&args)
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The hash of the snapshot device the kernel printed last in golden image
/// `name`'s scenario (the one matching the final COW image).
fn kernel_snapshot_hash(name: &str) -> String {
    let text = std::fs::read_to_string(golden_folder(name).join("manifest.yaml")).unwrap();
    let manifest: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    manifest["actions"]
        .as_sequence()
        .unwrap()
        .iter()
        .rev()
        .filter(|a| a["op"].as_str() == Some("hash") && a["err"].is_null())
        .filter(|a| {
            a["label"]
                .as_str()
                .is_some_and(|l| l.starts_with("snapshot-view"))
        })
        .find_map(|a| a["sha256"].as_str())
        .unwrap_or_else(|| panic!("{name}: no snapshot hash"))
        .to_string()
}

fn allocated_bytes(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn golden_snapshots_export_to_the_hash_the_kernel_printed() {
    for name in ["a", "b2", "c2"] {
        let dir = tempdir();
        let cow = golden_cow(&dir, name);
        let origin = golden_origin(&dir, name);
        let expected = kernel_snapshot_hash(name);
        let raw = dir.path().join("snap.raw");
        let output = export(&cow, &origin, s(&raw), &[]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        assert!(
            stdout(&output).contains("bytes of the snapshot written"),
            "{}",
            stdout(&output)
        );
        assert_eq!(sha256(&std::fs::read(&raw).unwrap()), expected, "{name}");
        let piped = export(&cow, &origin, "-", &["--snapshot", "0"]);
        assert!(piped.status.success(), "{name}: {}", stderr(&piped));
        assert_eq!(sha256(&piped.stdout), expected, "{name} through a pipe");
    }
}

#[test]
fn an_export_is_sparse_where_the_origin_is() {
    let dir = tempdir();
    let origin = dir.path().join("origin.img");
    let origin_dev = Device::create_or_extend(&origin, 64 << 20).unwrap();
    origin_dev.write_at(&[0x11; 4096], 5 << 20).unwrap();
    drop(origin_dev);
    let cow = build_store(&dir, "cow.img", 8, 64, 2);
    poke(&cow, 2 * 4096, &[0x22; 4096]);
    let raw = dir.path().join("snap.raw");
    let output = export(&cow, &origin, s(&raw), &["--format", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["chunks_from_store"], 2);
    assert_eq!(report["bytes"], 64 << 20);
    assert_eq!(std::fs::read(&raw).unwrap(), snapshot_image(&origin, &cow));
    assert!(
        allocated_bytes(&raw) <= 1 << 20,
        "{} bytes allocated",
        allocated_bytes(&raw)
    );
}

/// Asserts that `--to raw` from golden `cow` failed in one line naming
/// `file` and saying `why`, leaving nothing beside the two inputs.
fn assert_export_refused(dir: &TempDir, cow: &Path, origin: &Path, file: &str, why: &str) {
    let raw = dir.path().join("snap.raw");
    let output = export(cow, origin, s(&raw), &[]);
    assert_refused_without_output(&output, 2, file, &[why], &raw);
    let left = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(left, 2, "no partial file left");
}

#[test]
fn an_invalid_snapshot_is_refused_and_no_output_is_left() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "c");
    let origin = golden_origin(&dir, "c");
    assert_export_refused(&dir, &cow, &origin, "c.img", "valid=0");
}

#[test]
fn an_export_cut_by_an_error_leaves_no_file_that_looks_complete() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let origin = golden_origin(&dir, "a");
    write_area0_record(&cow, 53, 4000, 1_000_000);
    assert_export_refused(&dir, &cow, &origin, "a.img", "chunk 1000000");
}

/// Deterministic bytes from `seed`.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// An origin of 64.5 chunks of 4 KiB and a shared store of snapshots 0..3
/// made through the engine: origin writes between creations, snapshot writes.
fn engine_store(dir: &TempDir) -> (PathBuf, PathBuf) {
    let origin = dir.path().join("origin.img");
    std::fs::write(&origin, bytes(64 * 4096 + 2048, 1)).unwrap();
    let cow = dir.path().join("shared.img");
    let origin_dev = Device::open(&origin, Access::ReadWrite).unwrap();
    let mut store = engine_create(&cow, 2 << 20, origin_dev, 8, 1);
    for id in 0..4u32 {
        store.create_snapshot(Some(id)).unwrap();
        for i in 0..6u64 {
            let chunk = (u64::from(id) * 11 + i * 7) % 65;
            let at = chunk * 4096;
            let len = (64 * 4096 + 2048 - at).min(4096) as usize;
            store
                .origin_write(at, &bytes(len, at + u64::from(id)))
                .unwrap();
        }
        store
            .snapshot_write(
                id,
                u64::from(id) * 20_000 + 100,
                &bytes(900, u64::from(id) + 50),
            )
            .unwrap();
    }
    store.commit().unwrap();
    (cow, origin)
}

#[test]
fn every_snapshot_of_a_shared_store_exports_as_the_engine_reads_it() {
    let dir = tempdir();
    let (cow, origin) = engine_store(&dir);
    let images = engine_images(&cow, &origin);
    assert_eq!(images.len(), 4);
    for (id, image) in images {
        let raw = dir.path().join(format!("snap{id}.raw"));
        let output = export(&cow, &origin, s(&raw), &["--snapshot", &id.to_string()]);
        assert!(output.status.success(), "{id}: {}", stderr(&output));
        assert_eq!(std::fs::read(&raw).unwrap(), image, "snapshot {id}");
    }
    let output = export(&cow, &origin, "-", &[]);
    assert_error_says(&output, 2, "shared.img", &["--snapshot ID"]);
    let output = export(&cow, &origin, "-", &["--snapshot", "9"]);
    assert_error_says(
        &output,
        2,
        "shared.img",
        &["snapshot 9 does not exist (snapshots: 0-3)"],
    );
}

/// `cowmigrate -i COW --merge --origin ORIGIN` with `extra` arguments.
fn merge(cow: &Path, origin: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["-i", s(cow), "--merge", "--origin", s(origin)];
    args.extend_from_slice(extra);
    migrate(&args)
}

fn cowcheck(path: &Path) -> Output {
    let output = tool("cowcheck").arg(path).output().unwrap();
    assert_no_panic(&output);
    output
}

#[test]
fn golden_snapshots_merge_into_their_origin_as_the_kernel_showed_them() {
    for name in ["a", "b2", "c2"] {
        let dir = tempdir();
        let cow = golden_cow(&dir, name);
        let origin = golden_origin(&dir, name);
        let expected = kernel_snapshot_hash(name);
        let output = merge(&cow, &origin, &[]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        assert!(
            stdout(&output).contains("the store is now empty"),
            "{}",
            stdout(&output)
        );
        assert_eq!(sha256(&std::fs::read(&origin).unwrap()), expected, "{name}");
        let check = cowcheck(&cow);
        assert_eq!(check.status.code(), Some(0), "{name}: {}", stdout(&check));
        assert!(stdout(&check).contains(" 0 records"), "{}", stdout(&check));
        let again = merge(&cow, &origin, &["--format", "json"]);
        assert!(again.status.success(), "{}", stderr(&again));
        let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
        assert_eq!(
            report["chunks_written"], 0,
            "a rerun has nothing left to do"
        );
        assert_eq!(sha256(&std::fs::read(&origin).unwrap()), expected);
    }
}

#[test]
fn a_merge_refuses_an_invalid_store_the_store_as_origin_and_a_missing_origin() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "c");
    let origin = golden_origin(&dir, "c");
    let before = std::fs::read(&origin).unwrap();
    let output = merge(&cow, &origin, &[]);
    assert_error_says(&output, 2, "c.img", &["valid=0"]);
    assert_eq!(std::fs::read(&origin).unwrap(), before);
    let output = merge(&cow, &cow, &[]);
    assert_error_says(&output, 2, "c.img", &["is the store itself"]);
    let output = migrate(&["-i", s(&cow), "--merge"]);
    assert_error_says(
        &output,
        2,
        "--origin",
        &["--merge writes the snapshot over its origin"],
    );
    let output = merge(&cow, &origin, &["--snapshot", "2"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(std::fs::read(&origin).unwrap(), before);
}

#[test]
fn a_shared_merge_rolls_the_origin_back_and_keeps_the_other_snapshots() {
    let dir = tempdir();
    let (cow, origin) = engine_store(&dir);
    let before = engine_images(&cow, &origin);
    let output = merge(&cow, &origin, &["--snapshot", "1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("snapshot 1 of"), "{text}");
    assert!(text.contains("snapshots left: 0,2-3"), "{text}");
    assert_eq!(std::fs::read(&origin).unwrap(), before[1].1);
    let after = engine_images(&cow, &origin);
    let expected: Vec<_> = before.into_iter().filter(|(id, _)| *id != 1).collect();
    assert_eq!(after, expected);
    let check = cowcheck(&cow);
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
}

/// A shared merge cut by a crash right after its first origin write (the
/// marker on the store, the origin half written): cowcheck says what
/// happened, and the same command finishes the merge.
#[test]
fn an_interrupted_shared_merge_is_explained_and_finished_by_a_rerun() {
    let dir = tempdir();
    let (cow, origin) = engine_store(&dir);
    let before = engine_images(&cow, &origin);
    let log = CrashLog::new();
    let cow_dev = log.device("mem:cow", std::fs::read(&cow).unwrap());
    let origin_dev = log.device("mem:origin", std::fs::read(&origin).unwrap());
    cowfmt::shared::merge::merge(&cow_dev, &origin_dev, 2, &mut |_, _| {}).unwrap();
    let first_origin_write = (0..log.len())
        .find(|&i| {
            matches!(log.event(i), Some(CrashEvent::Write { device, .. }) if device == origin_dev.id())
        })
        .unwrap();
    let at = first_origin_write + 1;
    std::fs::write(&cow, log.image(cow_dev.id(), at, &[]).unwrap()).unwrap();
    std::fs::write(&origin, log.image(origin_dev.id(), at, &[]).unwrap()).unwrap();
    let sector = MemDev::from_bytes("mem:cut", std::fs::read(&cow).unwrap());
    let mut first = [0u8; 512];
    sector.read_at(&mut first, 0, &String::new).unwrap();
    assert!(matches!(Marker::decode(&first), Some(Marker::Merging(_))));
    let check = cowcheck(&cow);
    assert_eq!(check.status.code(), Some(1));
    let said = format!("{}{}", stdout(&check), stderr(&check));
    assert!(said.contains("cowmigrate --merge --snapshot 2"), "{said}");
    let wrong = merge(&cow, &origin, &["--snapshot", "1"]);
    assert_error_says(&wrong, 2, "shared.img", &["is of snapshot 2, not 1"]);
    let output = merge(&cow, &origin, &["--snapshot", "2"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("an interrupted merge finished"),
        "{}",
        stdout(&output)
    );
    assert_eq!(std::fs::read(&origin).unwrap(), before[2].1);
    let expected: Vec<_> = before.into_iter().filter(|(id, _)| *id != 2).collect();
    assert_eq!(engine_images(&cow, &origin), expected);
}

/// A fake sysfs in `dir` whose loop0 is backed by `image`.
fn sysfs_with_loop(dir: &TempDir, image: &Path) -> PathBuf {
    let sysfs = dir.path().join("sys");
    let at = sysfs.join("block/loop0/loop");
    std::fs::create_dir_all(&at).unwrap();
    let backing = image.canonicalize().unwrap();
    std::fs::write(at.join("backing_file"), format!("{}\n", backing.display())).unwrap();
    sysfs
}

fn with_sysfs(name: &str, sysfs: &Path, args: &[&str]) -> Output {
    let output = tool(name)
        .env(cowfmt::in_use::SYSFS_ROOT_VAR, sysfs)
        .args(args)
        .output()
        .unwrap();
    assert_no_panic(&output);
    output
}

#[test]
fn an_image_attached_to_a_loop_device_is_warned_about_when_read_and_refused_when_written() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let origin = golden_origin(&dir, "a");
    let cow_before = std::fs::read(&cow).unwrap();
    let origin_before = std::fs::read(&origin).unwrap();
    let sysfs = sysfs_with_loop(&dir, &cow);

    let check = with_sysfs("cowcheck", &sysfs, &[s(&cow)]);
    assert_eq!(check.status.code(), Some(0), "the check goes on");
    let warning = stderr(&check);
    assert_eq!(warning.lines().count(), 1, "{warning}");
    assert!(warning.starts_with("cowcheck: "), "{warning}");
    assert!(
        warning.contains("a.img: is attached to the loop device /dev/loop0"),
        "{warning}"
    );

    let merge = with_sysfs(
        "cowmigrate",
        &sysfs,
        &["-i", s(&cow), "--merge", "--origin", s(&origin), "--force"],
    );
    assert_error_says(&merge, 4, "/dev/loop0", &["even with --force"]);
    let mkcow = with_sysfs("mkcow", &sysfs, &[s(&cow), "--chunk-size", "4k", "--force"]);
    assert_one_line_error(&mkcow, 4, "a.img");
    let input = dir.path().join("in.img");
    std::fs::copy(&cow, &input).unwrap();
    let repair = with_sysfs(
        "cowrepair",
        &sysfs,
        &["-i", s(&input), "-o", s(&cow), "--force"],
    );
    assert_one_line_error(&repair, 4, "a.img");
    let in_place = with_sysfs(
        "cowrepair",
        &sysfs,
        &[
            "-i",
            s(&cow),
            "--in-place",
            "--backup",
            s(&dir.path().join("b.img")),
        ],
    );
    assert_one_line_error(&in_place, 4, "a.img");
    let export = with_sysfs(
        "cowmigrate",
        &sysfs,
        &[export_args(&input, &origin, s(&cow)), vec!["--force"]].concat(),
    );
    assert_one_line_error(&export, 4, "a.img");
    assert_eq!(std::fs::read(&cow).unwrap(), cow_before);
    assert_eq!(std::fs::read(&origin).unwrap(), origin_before);

    let attached_origin = sysfs_with_loop(&dir, &origin);
    let merge = with_sysfs(
        "cowmigrate",
        &attached_origin,
        &["-i", s(&cow), "--merge", "--origin", s(&origin)],
    );
    assert_one_line_error(&merge, 4, "a-origin.img");
    assert_eq!(std::fs::read(&origin).unwrap(), origin_before);
}

#[test]
fn an_export_from_a_live_store_warns_and_goes_on() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let origin = golden_origin(&dir, "a");
    let sysfs = sysfs_with_loop(&dir, &cow);
    let raw = dir.path().join("snap.raw");
    let output = with_sysfs("cowmigrate", &sysfs, &export_args(&cow, &origin, s(&raw)));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("a.img: is attached to the loop device /dev/loop0"));
    assert_eq!(
        sha256(&std::fs::read(&raw).unwrap()),
        kernel_snapshot_hash("a")
    );
}

#[test]
fn golden_stores_imported_into_a_shared_store_export_and_merge_to_the_kernel_hash() {
    for name in ["a", "b2", "c2"] {
        let dir = tempdir();
        let cow = golden_cow(&dir, name);
        let origin = golden_origin(&dir, name);
        let expected = kernel_snapshot_hash(name);
        let shared = dir.path().join("shared.img");
        let output = migrate_into(&cow, &shared, &["--to", "shared"]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        let raw = dir.path().join("snap.raw");
        let output = export(&shared, &origin, s(&raw), &["--snapshot", "0"]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        assert_eq!(sha256(&std::fs::read(&raw).unwrap()), expected, "{name}");
        let output = merge(&shared, &origin, &["--snapshot", "0"]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        assert_eq!(sha256(&std::fs::read(&origin).unwrap()), expected, "{name}");
    }
}
