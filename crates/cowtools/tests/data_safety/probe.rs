//! Data-safety cases: signature probing (issue 8, case 2) and kind-safe repair
//! (case 3). Every signature family libblkid knows, made by the real tool
//! where Debian has one (.ci/run installs them) and crafted where not, must
//! make mkcow refuse without touching a byte, and `--force` must name what it
//! destroys.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use crate::common::*;
use cowfmt::device::{Access, Device};

/// The path of `program` (searched in PATH and the sbin folders); fails the
/// test, naming the Debian package, when it is missing.
fn required(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("{program} is missing: install the Debian package {package} (.ci/run does)")
        })
}

/// Runs `program` (from `package`) with `args`; fails the test if it fails.
fn run(program: &str, package: &str, args: &[&str]) {
    let output = Process::new(required(program, package))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A sparse copy of `path` beside it, to prove later that nothing changed.
fn pristine_copy(path: &Path) -> PathBuf {
    let copy = path.with_extension("pristine");
    run("cp", "coreutils", &["--sparse=always", s(path), s(&copy)]);
    copy
}

/// Whether two files hold the same bytes (`cmp`, fast on big sparse images).
fn same_bytes(a: &Path, b: &Path) -> bool {
    Process::new(required("cmp", "diffutils"))
        .args(["-s", s(a), s(b)])
        .status()
        .expect("cmp runs")
        .success()
}

/// Makes one signature family's image in a folder.
type MakeImage = fn(&tempfile::TempDir) -> PathBuf;

/// A sparse image of `bytes` formatted by `program` (from `package`) with
/// `args` and the image's path.
fn formatted(
    dir: &tempfile::TempDir,
    name: &str,
    bytes: u64,
    (program, package): (&str, &str),
    args: &[&str],
) -> PathBuf {
    let path = blank_image(dir, name, bytes);
    let mut args = args.to_vec();
    args.push(s(&path));
    run(program, package, &args);
    path
}

fn ext4(dir: &tempfile::TempDir) -> PathBuf {
    let tool = ("mkfs.ext4", "e2fsprogs");
    formatted(dir, "ext4.img", 64 << 20, tool, &["-q", "-F"])
}

fn btrfs(dir: &tempfile::TempDir) -> PathBuf {
    let tool = ("mkfs.btrfs", "btrfs-progs");
    formatted(dir, "btrfs.img", 128 << 20, tool, &["-q", "-f"])
}

fn xfs(dir: &tempfile::TempDir) -> PathBuf {
    let tool = ("mkfs.xfs", "xfsprogs");
    formatted(dir, "xfs.img", 300 << 20, tool, &["-q", "-f"])
}

fn swap(dir: &tempfile::TempDir) -> PathBuf {
    formatted(dir, "swap.img", 16 << 20, ("mkswap", "util-linux"), &["-q"])
}

fn vfat(dir: &tempfile::TempDir) -> PathBuf {
    formatted(dir, "vfat.img", 16 << 20, ("mkfs.vfat", "dosfstools"), &[])
}

fn luks(dir: &tempfile::TempDir) -> PathBuf {
    let key = dir.path().join("key");
    std::fs::write(&key, b"not a secret").unwrap();
    formatted(
        dir,
        "luks.img",
        32 << 20,
        ("cryptsetup", "cryptsetup-bin"),
        &[
            "luksFormat",
            "-q",
            "--type",
            "luks2",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
            "--key-file",
            s(&key),
        ],
    )
}

/// A GPT made by sgdisk whose primary header (LBA 1) was then wiped, so only
/// the protective MBR and the backup header in the last sector remain.
fn backup_gpt(dir: &tempfile::TempDir) -> PathBuf {
    let path = blank_image(dir, "gpt.img", 16 << 20);
    run("sgdisk", "gdisk", &["-o", "-n", "1:2048:0", s(&path)]);
    poke(&path, 512, &[0u8; 512]);
    path
}

/// LVM2's label CRC: CRC-32 (reflected 0xedb88320) from 0xf597a6cf, no final
/// inversion.
fn lvm_crc(bytes: &[u8]) -> u32 {
    let mut crc = 0xf597_a6cf_u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// An LVM2 physical volume label in sector 1, as pvcreate writes it
/// (pvcreate refuses plain files, so it is crafted).
fn lvm_pv(dir: &tempfile::TempDir) -> PathBuf {
    let path = blank_image(dir, "pv.img", 16 << 20);
    let mut sector = [0u8; 512];
    sector[..8].copy_from_slice(b"LABELONE");
    sector[8..16].copy_from_slice(&1u64.to_le_bytes());
    sector[20..24].copy_from_slice(&32u32.to_le_bytes());
    sector[24..32].copy_from_slice(b"LVM2 001");
    sector[32..64].copy_from_slice(b"Fz3mX2cQk9LpVw7RtY4bN8dJ6hG1sA5e");
    sector[64..72].copy_from_slice(&(16u64 << 20).to_le_bytes());
    let crc = lvm_crc(&sector[20..]);
    sector[16..20].copy_from_slice(&crc.to_le_bytes());
    poke(&path, 512, &sector);
    path
}

/// An md RAID v1.2 superblock at 4 KiB, as mdadm writes it (mdadm refuses
/// plain files, so it is crafted, checksum included).
fn md_member(dir: &tempfile::TempDir) -> PathBuf {
    let path = blank_image(dir, "md.img", 16 << 20);
    let mut sb = [0u8; 256];
    sb[0..4].copy_from_slice(&0xa92b_4efc_u32.to_le_bytes());
    sb[4..8].copy_from_slice(&1u32.to_le_bytes());
    sb[16..32].copy_from_slice(&[0x5a; 16]);
    sb[32..38].copy_from_slice(b"host:9");
    sb[72..76].copy_from_slice(&1u32.to_le_bytes());
    sb[92..96].copy_from_slice(&2u32.to_le_bytes());
    sb[128..136].copy_from_slice(&2048u64.to_le_bytes());
    sb[144..152].copy_from_slice(&8u64.to_le_bytes());
    sb[168..184].copy_from_slice(&[0xa5; 16]);
    let sum: u64 = sb
        .chunks(4)
        .map(|w| u64::from(u32::from_le_bytes(w.try_into().unwrap())))
        .sum();
    let csum = (sum & 0xffff_ffff) + (sum >> 32);
    sb[216..220].copy_from_slice(&(csum as u32).to_le_bytes());
    poke(&path, 4096, &sb);
    path
}

/// A persistent-data superblock (dm-thin, dm-cache, dm-era): its own block
/// number 0 at byte 8 and the 64-bit magic at byte 32.
fn persistent_data(dir: &tempfile::TempDir, name: &str, magic: u64) -> PathBuf {
    let path = blank_image(dir, name, 4 << 20);
    poke(&path, 0, &0x0bad_c5c5_u32.to_le_bytes());
    poke(&path, 32, &magic.to_le_bytes());
    poke(&path, 40, &2u32.to_le_bytes());
    path
}

/// mkcow with `args` must refuse `target` (exit 2, one line naming it and
/// `expected`) without changing a byte; with `--force` it must format and say
/// that it overwrites `expected`.
fn assert_refused_then_forced(target: &Path, args: &[&str], expected: &str) {
    let name = target.file_name().unwrap().to_str().unwrap();
    let before = pristine_copy(target);
    let output = tool("mkcow").args(args).arg(target).output().unwrap();
    assert_error_says(
        &output,
        2,
        name,
        &[&format!("already holds {expected}"), "use --force"],
    );
    assert!(
        same_bytes(target, &before),
        "{name}: the refusal changed the file"
    );

    let output = tool("mkcow")
        .args(args)
        .args(["-q", "--force"])
        .arg(target)
        .output()
        .unwrap();
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let said = format!("mkcow: {}: overwriting {expected}", target.display());
    assert!(text.contains(&said), "{said:?} expected in: {text}");
    assert!(text.contains("because --force was given"), "{text}");
    assert!(
        !same_bytes(target, &before),
        "{name}: --force did not format"
    );
    let device = Device::open(target, Access::ReadOnly).unwrap();
    let left: Vec<String> = cowfmt::probe::probe(&device)
        .unwrap()
        .signatures
        .iter()
        .filter(|s| !s.is_cow_store())
        .map(ToString::to_string)
        .collect();
    assert!(
        left.is_empty(),
        "{name}: --force left {left:?} on the store"
    );
    tool("cowcheck").arg(target).assert().success();
}

#[test]
fn case2_btrfs_superblock_at_64k_is_refused() {
    let dir = tempdir();
    let path = btrfs(&dir);
    assert_refused_then_forced(&path, &[], "a btrfs file system (superblock at byte 65600)");
}

#[test]
fn case2_lvm_label_in_sector_1_is_refused_with_512_byte_chunks() {
    let dir = tempdir();
    let path = lvm_pv(&dir);
    assert_refused_then_forced(
        &path,
        &["--chunk-size", "512"],
        "an LVM physical volume (label at byte 536)",
    );
}

#[test]
fn case2_ext4_is_refused_by_a_shared_format_with_512_byte_chunks() {
    let dir = tempdir();
    let path = ext4(&dir);
    assert_refused_then_forced(
        &path,
        &[
            "--kind",
            "shared",
            "--chunk-size",
            "512",
            "--journal-size",
            "0",
        ],
        "an ext4 file system (superblock at byte 1080)",
    );
}

#[test]
fn every_family_made_by_its_tool_is_refused() {
    let dir = tempdir();
    let families: [(MakeImage, &str); 5] = [
        (xfs, "an XFS file system (superblock at byte 0)"),
        (swap, "swap space (signature at byte 4086)"),
        (vfat, "a FAT file system (superblock at byte 0"),
        (
            luks,
            "a LUKS encrypted volume (header at byte 0, second header at byte 16384)",
        ),
        (ext4, "an ext4 file system (superblock at byte 1080)"),
    ];
    for (make, expected) in families {
        let path = make(&dir);
        assert_refused_then_forced(&path, &["--chunk-size", "512"], expected);
    }
}

#[test]
fn a_gpt_whose_primary_header_is_wiped_is_found_by_its_backup_at_the_end() {
    let dir = tempdir();
    let path = backup_gpt(&dir);
    let last_sector = (16u64 << 20) - 512;
    let expected = format!("a GPT partition table (backup header at byte {last_sector})");
    assert_refused_then_forced(&path, &["--chunk-size", "512"], "a protective MBR");
    let path = backup_gpt(&dir);
    poke(&path, 0, &[0u8; 512]);
    assert_refused_then_forced(&path, &["--kind", "legacy"], &expected);
}

#[test]
fn crafted_md_and_device_mapper_metadata_are_refused() {
    let dir = tempdir();
    let path = md_member(&dir);
    assert_refused_then_forced(
        &path,
        &["--chunk-size", "512"],
        "a Linux md RAID member labelled \"host:9\" (superblock at byte 4096)",
    );
    let path = golden_clone_metadata(&dir);
    assert_refused_then_forced(&path, &[], "dm-clone metadata (superblock at byte 32)");
    for (name, magic, what) in [
        ("thin.img", 27_022_010, "dm-thin pool metadata"),
        ("cache.img", 0o6_142_003, "dm-cache metadata"),
        ("era.img", 2_126_579_579, "dm-era metadata"),
    ] {
        let path = persistent_data(&dir, name, magic);
        let expected = format!("{what} (superblock at byte 32)");
        assert_refused_then_forced(&path, &["--kind", "shared"], &expected);
    }
}

#[test]
fn force_over_a_store_names_the_store() {
    let dir = tempdir();
    let path = build_store(&dir, "cow.img", 16, 512, 100);
    assert_refused_then_forced(&path, &[], "a persistent store (SnAp, chunk size 16)");
}

#[test]
fn force_over_stray_bytes_in_chunk_0_says_so() {
    let dir = tempdir();
    let path = blank_image(&dir, "disk.img", 1 << 20);
    poke(&path, 1000, b"\x01");
    let output = mkcow(&["-q", "--force"], &path);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("overwriting chunk 0, which is not all zero (first non-zero byte at offset 1000), because --force was given"),
        "{}",
        stderr(&output)
    );
}

/// cowrepair must refuse `input` (exit 2, one line naming it and `expected`)
/// with `args`, leaving it byte-identical and creating nothing else.
fn assert_repair_refused(
    dir: &tempfile::TempDir,
    input: &Path,
    args: &[&str],
    expected: &str,
) -> String {
    let name = input.file_name().unwrap().to_str().unwrap();
    let before = pristine_copy(input);
    let entries = std::fs::read_dir(dir.path()).unwrap().count();
    let output = tool("cowrepair")
        .current_dir(dir.path())
        .arg("-i")
        .arg(input)
        .args(args)
        .output()
        .unwrap();
    let text = assert_error_says(&output, 2, name, &[expected]);
    assert!(
        same_bytes(input, &before),
        "{name}: the refusal changed the input"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        entries,
        "the refusal left a file behind"
    );
    text
}

#[test]
fn case3_in_place_repair_of_dm_clone_metadata_repairs_it_as_clone() {
    let dir = tempdir();
    let meta = golden_clone_metadata(&dir);
    let before = std::fs::read(&meta).unwrap();
    let output = tool("cowrepair")
        .current_dir(dir.path())
        .arg("-i")
        .arg(&meta)
        .args(["--in-place", "--backup", "meta.bak"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output)
            .contains("clone metadata, 512 regions of 64 sectors: 512 read, 0 lost; 12 hydrated"),
        "{}",
        stdout(&output)
    );
    assert_eq!(std::fs::read(dir.path().join("meta.bak")).unwrap(), before);
}

#[test]
fn kind_insists_only_with_force_over_a_foreign_signature() {
    let dir = tempdir();
    let meta = golden_clone_metadata(&dir);
    let text = assert_repair_refused(
        &dir,
        &meta,
        &["--kind", "persistent", "--in-place", "--backup", "meta.bak"],
        "--kind persistent insists",
    );
    assert!(text.contains("--force"), "{text}");

    let out = dir.path().join("out.img");
    let output = tool("cowrepair")
        .arg("-i")
        .arg(&meta)
        .arg("-o")
        .arg(&out)
        .args(["--kind", "persistent", "--force", "-q"])
        .output()
        .unwrap();
    assert_no_panic(&output);
    assert!(
        stderr(&output).contains("treating dm-clone metadata (superblock at byte 32) as a persistent store because --kind and --force were given"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn repair_refuses_thin_metadata_and_file_systems() {
    let dir = tempdir();
    let thin = persistent_data(&dir, "thin.img", 27_022_010);
    assert_repair_refused(
        &dir,
        &thin,
        &["-o", "out.img"],
        "holds dm-thin pool metadata",
    );
    let fs = ext4(&dir);
    assert_repair_refused(
        &dir,
        &fs,
        &["-o", "out.img"],
        "holds an ext4 file system (superblock at byte 1080), not a COW store",
    );
    assert_repair_refused(
        &dir,
        &fs,
        &["--kind", "shared", "--dry-run"],
        "--kind shared insists",
    );
}

#[test]
fn repair_of_a_store_with_its_magic_is_not_probed_away() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let out = dir.path().join("fixed.img");
    let output = tool("cowrepair")
        .args(["-i", s(&cow), "-o", s(&out), "-q"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
}

#[test]
fn an_unfinished_output_is_named_as_such() {
    let dir = tempdir();
    let path = blank_image(&dir, "cut.img", 1 << 20);
    let device = Device::open(&path, Access::ReadWrite).unwrap();
    cowfmt::output::Marker::Writing.write(&device).unwrap();
    drop(device);
    assert_refused_then_forced(&path, &[], "an incomplete output");
}
