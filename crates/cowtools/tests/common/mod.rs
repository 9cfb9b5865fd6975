//! Fixtures shared by the CLI tests: stores built with cowfmt, damaged headers,
//! golden images written by the kernel, and checks on how a tool fails.

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::BufReader;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use cowfmt::device::{Access, Device};
use cowfmt::persistent::dump::{dump, PersistentDump};
use cowfmt::persistent::view::SnapshotView;
use cowfmt::persistent::{ExceptionRecord, PersistentStore, StoreWriter};
use cowfmt::StoreKind;
use tempfile::TempDir;

/// A fresh temporary directory.
pub fn tempdir() -> TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

/// A command running one of the cowtools binaries.
pub fn tool(name: &str) -> Command {
    Command::cargo_bin(name).expect("the binary is built")
}

/// The origin chunk of the `i`-th record written by [`build_store`]: scattered,
/// never repeated.
pub fn scattered_old_chunk(i: u64) -> u64 {
    (i * 7919) % 1_000_003
}

/// Formats `path` (created with `chunks` chunks of `chunk_sectors`) and commits
/// `records` exceptions as the kernel would, returning the path.
pub fn build_store(
    dir: &TempDir,
    name: &str,
    chunk_sectors: u32,
    chunks: u64,
    records: u64,
) -> PathBuf {
    let path = dir.path().join(name);
    let bytes = chunks * u64::from(chunk_sectors) * 512;
    let device = Device::create_or_extend(&path, bytes).expect("image created");
    let mut writer = StoreWriter::format(device, chunk_sectors).expect("formatted");
    for i in 0..records {
        let new_chunk = writer.allocate().expect("room for the record");
        writer
            .commit(ExceptionRecord {
                old_chunk: scattered_old_chunk(i),
                new_chunk,
            })
            .expect("committed");
    }
    writer.finish().expect("flushed");
    path
}

/// A blank (all-zero, sparse) image of `bytes`.
pub fn blank_image(dir: &TempDir, name: &str, bytes: u64) -> PathBuf {
    let path = dir.path().join(name);
    File::create(&path)
        .and_then(|f| f.set_len(bytes))
        .expect("blank image");
    path
}

/// Writes `bytes` at `offset` of the file at `path`.
pub fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.write_all_at(bytes, offset))
        .expect("poked");
}

/// Overwrites the 16 header bytes with the given fields.
pub fn write_header(path: &Path, magic: u32, valid: u32, version: u32, chunk_size: u32) {
    let mut bytes = Vec::with_capacity(16);
    for field in [magic, valid, version, chunk_size] {
        bytes.extend_from_slice(&field.to_le_bytes());
    }
    poke(path, 0, &bytes);
}

/// Overwrites record `index` of area 0 of a store with 4 KiB chunks.
pub fn write_area0_record(path: &Path, index: u64, old_chunk: u64, new_chunk: u64) {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&old_chunk.to_le_bytes());
    bytes[8..].copy_from_slice(&new_chunk.to_le_bytes());
    poke(path, 4096 + index * 16, &bytes);
}

/// The whole dump of the store at `path`, read with cowfmt.
pub fn library_dump(path: &Path, kind: StoreKind, with_runs: bool) -> PersistentDump {
    let device = Device::open(path, Access::ReadOnly).expect("opened");
    let store = PersistentStore::open(device, None).expect("a store");
    dump(&store, kind, with_runs).expect("dumped")
}

/// The folder of golden image `name` (`a`, `b2`, `c`, `c2`...).
pub fn golden_folder(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden");
    let prefix = format!("{name}-");
    std::fs::read_dir(&root)
        .expect("testdata/golden")
        .map(|entry| entry.expect("a folder entry").path())
        .find(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .unwrap_or_else(|| panic!("no golden image {name}"))
}

/// Decompresses `file` (`cow.img.xz`, `origin.img.xz`) of golden image `name`
/// into `dir` as `<name><suffix>.img`.
fn golden_image(dir: &TempDir, name: &str, file: &str, suffix: &str) -> PathBuf {
    let xz = golden_folder(name).join(file);
    let mut input = BufReader::new(File::open(&xz).expect("golden xz image"));
    let mut bytes = Vec::new();
    lzma_rs::xz_decompress(&mut input, &mut bytes).expect("valid xz");
    let path = dir.path().join(format!("{name}{suffix}.img"));
    std::fs::write(&path, bytes).expect("image written");
    path
}

/// Decompresses the COW image of golden image `name` into `dir`.
pub fn golden_cow(dir: &TempDir, name: &str) -> PathBuf {
    golden_image(dir, name, "cow.img.xz", "")
}

/// Decompresses the origin image of golden image `name` into `dir`.
pub fn golden_origin(dir: &TempDir, name: &str) -> PathBuf {
    golden_image(dir, name, "origin.img.xz", "-origin")
}

/// The whole logical image of the snapshot of `origin` kept in store `cow`.
pub fn snapshot_image(origin: &Path, cow: &Path) -> Vec<u8> {
    let origin = Device::open(origin, Access::ReadOnly).unwrap();
    let store = PersistentStore::open(Device::open(cow, Access::ReadOnly).unwrap(), None).unwrap();
    let view = SnapshotView::of_store(&origin, &store).unwrap();
    let mut bytes = vec![0u8; view.size_bytes() as usize];
    view.read_at(&mut bytes, 0).unwrap();
    bytes
}

/// A path as an argument string.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The `expected` section of golden image `name`'s manifest.
pub fn golden_expected(name: &str) -> serde_yaml::Value {
    let text =
        std::fs::read_to_string(golden_folder(name).join("manifest.yaml")).expect("manifest");
    let manifest: serde_yaml::Value = serde_yaml::from_str(&text).expect("manifest is YAML");
    manifest["expected"].clone()
}

/// Stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 stdout")
}

/// Stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("UTF-8 stderr")
}

/// Asserts that a tool failed with `code`, explaining itself in one line on
/// stderr that names `file`, without a panic or backtrace.
pub fn assert_one_line_error(output: &Output, code: i32, file: &str) -> String {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(!text.contains("RUST_BACKTRACE"), "{text}");
    assert_eq!(text.lines().count(), 1, "one line expected: {text}");
    assert!(text.contains(file), "the error should name {file}: {text}");
    text
}

/// Asserts that no output mentions a panic.
pub fn assert_no_panic(output: &Output) {
    let text = stderr(output);
    assert!(!text.contains("panicked"), "{text}");
}

/// Asserts that a job refused to write over its origin: one clear error
/// (exit 2) and the origin's bytes as they were.
pub fn assert_origin_untouched(output: &Output, origin: &Path, before: &[u8]) {
    let text = assert_one_line_error(output, 2, "origin.img");
    assert!(text.contains("same file as"), "{text}");
    assert_eq!(std::fs::read(origin).unwrap(), before, "the origin changed");
}

/// Decompresses the dm-clone metadata of golden image `d` (written by the
/// kernel's dm-clone) into `dir` as `d-meta.img`.
pub fn golden_clone_metadata(dir: &TempDir) -> PathBuf {
    golden_image(dir, "d", "meta.img.xz", "-meta")
}

/// The leaves of the shared store at `path` as (chunk, records), in key order.
pub fn shared_leaves(path: &Path) -> Vec<(u64, u64)> {
    use cowfmt::shared::dump::SharedSource;
    use cowfmt::shared::walk::{walk_tree, BlockAt, TreeVisitor, WalkProblem};
    use cowfmt::shared::{Leaf, Node};
    struct Leaves(Vec<(u64, u64)>);
    impl TreeVisitor for Leaves {
        fn node(&mut self, _: &BlockAt, _: &Node) -> cowfmt::Result<()> {
            Ok(())
        }
        fn leaf(&mut self, at: &BlockAt, leaf: &Leaf) -> cowfmt::Result<()> {
            self.0.push((at.chunk, leaf.records.len() as u64));
            Ok(())
        }
        fn problem(&mut self, _: &BlockAt, p: &WalkProblem) -> cowfmt::Result<()> {
            panic!("{p:?}")
        }
    }
    let source = SharedSource::open(Device::open(path, Access::ReadOnly).unwrap()).unwrap();
    let header = source.header();
    let mut leaves = Leaves(Vec::new());
    walk_tree(
        source.device(),
        source.geometry(),
        header.root_tree_chunk,
        header.tree_level,
        &mut leaves,
    )
    .unwrap();
    leaves.0
}

/// Every snapshot of the shared store at `cow` with its id, read whole through
/// the engine.
pub fn engine_images(cow: &Path, origin: &Path) -> Vec<(u32, Vec<u8>)> {
    let origin = Device::open(origin, Access::ReadOnly).unwrap();
    let size = origin.size_bytes() as usize;
    let mut store =
        cowengine::SharedStore::open(Device::open(cow, Access::ReadOnly).unwrap(), origin).unwrap();
    cowfmt::shared::mask::id_list(store.snapmask())
        .into_iter()
        .map(|id| {
            let mut image = vec![0u8; size];
            store.snapshot_read(id, 0, &mut image).unwrap();
            (id, image)
        })
        .collect()
}

/// As [`assert_one_line_error`], and the line also says each of `says`.
pub fn assert_error_says(output: &Output, code: i32, file: &str, says: &[&str]) -> String {
    let text = assert_one_line_error(output, code, file);
    for expected in says {
        assert!(text.contains(expected), "{text}");
    }
    text
}

/// Runs `mkcow -q ARGS PATH`, which must succeed.
pub fn mkcow_quiet(args: &[&str], path: &Path) {
    tool("mkcow")
        .arg("-q")
        .args(args)
        .arg(path)
        .assert()
        .success();
}

/// Runs `mkcow ARGS PATH` and returns what it printed, whatever the exit.
pub fn mkcow(args: &[&str], path: impl AsRef<std::ffi::OsStr>) -> Output {
    tool("mkcow").args(args).arg(path).output().unwrap()
}

/// The JSON document a tool printed on stdout; the tool must have exited 0.
pub fn success_json(output: &Output) -> serde_json::Value {
    assert_eq!(output.status.code(), Some(0), "{}", stderr(output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A new shared store made by the engine: a COW image at `cow` of `cow_bytes`
/// over `origin`, with chunks of `chunk_sectors` and `journal_chunks` journal
/// chunks.
pub fn engine_create(
    cow: &Path,
    cow_bytes: u64,
    origin: Device,
    chunk_sectors: u64,
    journal_chunks: u64,
) -> cowengine::SharedStore {
    let cow = Device::create_or_extend(cow, cow_bytes).unwrap();
    let options = cowengine::CreateOptions {
        chunk_sectors,
        journal_chunks,
    };
    cowengine::SharedStore::create(cow, origin, &options).unwrap()
}

/// A shared store of 512-byte chunks (4 journal chunks), `cow_chunks` long at
/// `cow`, over a zeroed origin of `origin_chunks` at `origin`, written by the
/// engine: snapshot 0, every origin chunk written, snapshot 1, every other
/// origin chunk written again, committed.
pub fn shared_copied_twice(cow: &Path, cow_chunks: u64, origin: &Path, origin_chunks: u64) {
    let origin = Device::create_or_extend(origin, origin_chunks * 512).unwrap();
    let mut store = engine_create(cow, cow_chunks * 512, origin, 1, 4);
    store.create_snapshot(None).unwrap();
    for chunk in 0..origin_chunks {
        store.origin_write(chunk * 512, &[1; 512]).unwrap();
    }
    store.create_snapshot(None).unwrap();
    for chunk in (0..origin_chunks).step_by(2) {
        store.origin_write(chunk * 512, &[2; 512]).unwrap();
    }
    store.commit().unwrap();
}

/// Runs `NAME -i INPUT -o OUTPUT EXTRA`, which must not panic.
pub fn run_in_out(name: &str, input: &Path, output: &Path, extra: &[&str]) -> Output {
    let run = tool(name)
        .arg("-i")
        .arg(input)
        .arg("-o")
        .arg(output)
        .args(extra)
        .output()
        .unwrap();
    assert_no_panic(&run);
    run
}

/// `cowmigrate -i INPUT -o OUTPUT EXTRA`, which must not panic.
pub fn migrate_into(input: &Path, output: &Path, extra: &[&str]) -> Output {
    run_in_out("cowmigrate", input, output, extra)
}

/// `cowrepair -i INPUT -o OUTPUT EXTRA`, which must not panic.
pub fn repair_into(input: &Path, output: &Path, extra: &[&str]) -> Output {
    run_in_out("cowrepair", input, output, extra)
}

/// Asserts that a tool exited 0 and said each of `says` on stdout; returns
/// its stdout.
pub fn assert_success_says(output: &Output, says: &[&str]) -> String {
    assert_eq!(output.status.code(), Some(0), "{}", stderr(output));
    let text = stdout(output);
    for expected in says {
        assert!(text.contains(expected), "{text}");
    }
    text
}

/// Runs `cowdump ARGS PATH` and returns what it printed, whatever the exit.
pub fn cowdump(args: &[&str], path: impl AsRef<std::ffi::OsStr>) -> Output {
    tool("cowdump").args(args).arg(path).output().unwrap()
}

/// Runs the tool `name` with `args`, which must not panic.
pub fn run_tool(name: &str, args: &[&str]) -> Output {
    let output = tool(name).args(args).output().unwrap();
    assert_no_panic(&output);
    output
}

/// The library's check of the persistent (or legacy, by `kind`) store at
/// `path`.
pub fn classic_check(path: &Path, kind: StoreKind) -> cowfmt::persistent::check::CheckReport {
    let device = Device::open(path, Access::ReadOnly).unwrap();
    let options = cowfmt::persistent::check::CheckOptions {
        kind,
        ..Default::default()
    };
    cowfmt::persistent::check::check(&device, &options).unwrap()
}

/// Runs `NAME -i INPUT -o OUTPUT EXTRA --format json`, which must succeed, and
/// returns the JSON report it printed.
pub fn json_report(name: &str, input: &Path, output: &Path, extra: &[&str]) -> serde_json::Value {
    let extra = [extra, &["--format", "json"]].concat();
    success_json(&run_in_out(name, input, output, &extra))
}

/// Writes `text` to a new file `name` in `dir` and returns its path.
pub fn text_file(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// [`assert_error_says`], and nothing was left at `output_path`; returns
/// stderr.
pub fn assert_refused_without_output(
    output: &Output,
    code: i32,
    file: &str,
    says: &[&str],
    output_path: &Path,
) -> String {
    let text = assert_error_says(output, code, file, says);
    assert!(!output_path.exists(), "{}", output_path.display());
    text
}

/// The folder of the kernel-made dm-clone fixtures (`testdata/kernel-clone`).
pub fn kernel_clone_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/kernel-clone")
}

/// The names of the kernel-made dm-clone fixtures, sorted.
pub fn kernel_clone_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(kernel_clone_root())
        .expect("testdata/kernel-clone")
        .map(|entry| entry.expect("a folder entry").path())
        .filter(|path| path.is_dir())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The manifest of kernel-made dm-clone fixture `name`.
pub fn kernel_clone_manifest(name: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(kernel_clone_root().join(name).join("manifest.yaml"))
        .expect("a fixture manifest");
    serde_yaml::from_str(&text).expect("a YAML manifest")
}

/// Decompresses `image` (`meta-formatted`, `meta-final`) of kernel-made
/// dm-clone fixture `name` into `dir` as `<name>-<image>.img`.
pub fn kernel_clone_image(dir: &TempDir, name: &str, image: &str) -> PathBuf {
    let xz = kernel_clone_root()
        .join(name)
        .join(format!("{image}.img.xz"));
    let mut input = BufReader::new(File::open(&xz).expect("fixture xz image"));
    let path = dir.path().join(format!("{name}-{image}.img"));
    let mut output = File::create_new(&path).expect("image created in a fresh temporary directory");
    lzma_rs::xz_decompress(&mut input, &mut output).expect("valid xz");
    path
}

/// Damage on purpose to dm-clone metadata images (the corruption matrices).
pub mod clone_damage;

/// The figures of a clone's `dmsetup status` line that its metadata decides
/// (fields 4..8: `8 10/1024 8 74/131072`).
pub fn status_figures(line: &str) -> String {
    line.split_whitespace()
        .skip(3)
        .take(4)
        .collect::<Vec<_>>()
        .join(" ")
}
