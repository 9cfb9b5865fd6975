//! Every tool's output on the kernel-written golden images, compared with the
//! outputs committed under `testdata/expected/<image>/<case>.txt`: the command,
//! its exit code, stdout, stderr, and the SHA-256 of every file left in its
//! directory (outputs, and inputs rewritten in place).
//!
//! After a change that is meant to alter an output, rewrite the files and
//! review the diff (`UPDATE_EXPECTED=1` rewrites; any other value compares):
//!
//!     UPDATE_EXPECTED=1 cargo test -p cowtools --test data_safety expected_outputs
//!
//! (`cargo xtask same-output --base REV` compares many more cases against an
//! older revision; this test keeps the golden-image ones in CI.)

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::common::{golden_folder, tempdir, tool};

/// The environment variable that rewrites the expected files instead of
/// comparing with them.
const UPDATE: &str = "UPDATE_EXPECTED";

/// A case: its file name under `testdata/expected/<image>/`, and its command
/// line (tool and arguments separated by spaces). Commands joined by ` && `
/// run in turn; only the last is recorded.
type Case = (&'static str, &'static str);

/// The cases run on each classic golden image (`cow.img`, `origin.img`).
const CLASSIC_CASES: &[Case] = &[
    ("cowcheck", "cowcheck cow.img"),
    ("cowcheck-json", "cowcheck --format json cow.img"),
    ("cowcheck-origin", "cowcheck --origin origin.img cow.img"),
    ("cowcheck-legacy", "cowcheck --kind legacy cow.img"),
    ("cowdump-yaml", "cowdump cow.img"),
    ("cowdump-json-runs", "cowdump --format json --runs cow.img"),
    ("cowdump-table", "cowdump --format table cow.img"),
    ("cowdump-hex-1", "cowdump --hex 1 cow.img"),
    ("cowdump-to-file", "cowdump -o dump.yaml cow.img"),
    ("cowrepair-dry-run", "cowrepair -i cow.img --dry-run"),
    ("cowrepair-table", "cowrepair -i cow.img -n --format table"),
    (
        "cowrepair-json",
        "cowrepair -i cow.img -o out.img --origin origin.img --format json",
    ),
    (
        "cowmigrate-16k",
        "cowmigrate -i cow.img -o out.img --chunk-size 16k --origin origin.img",
    ),
    (
        "cowmigrate-2k-json",
        "cowmigrate -i cow.img -o out.img --chunk-size 2k --format json",
    ),
    (
        "cowmigrate-legacy",
        "cowmigrate -i cow.img -o out.img --to legacy --origin origin.img",
    ),
    (
        "cowmigrate-shared",
        "cowmigrate -i cow.img -o out.img --to shared",
    ),
    (
        "cowmigrate-raw",
        "cowmigrate -i cow.img -o snap.raw --to raw --origin origin.img",
    ),
    (
        "cowmigrate-merge",
        "cowmigrate -i cow.img --merge --origin origin.img",
    ),
    (
        "mkcow-restore",
        "cowdump -q -o dump.yaml cow.img && mkcow --force -i dump.yaml cow.img",
    ),
    ("mkcow-refuses-a-store", "mkcow cow.img"),
];

/// The cases run on the dm-clone golden image (`meta.img`): another kind.
const CLONE_CASES: &[Case] = &[
    ("cowcheck", "cowcheck meta.img"),
    ("cowdump", "cowdump meta.img"),
    ("cowrepair", "cowrepair -i meta.img -o out.img"),
    (
        "cowmigrate",
        "cowmigrate -i meta.img -o out.img --region-size 64k",
    ),
    ("mkcow", "mkcow meta.img"),
    ("cowdump-json", "cowdump --format json meta.img"),
    ("cowdump-table", "cowdump --format table meta.img"),
    ("cowdump-blocks", "cowdump --blocks --format table meta.img"),
];

#[test]
fn golden_a_outputs_are_the_expected_ones() {
    check_image(
        "a",
        &[("cow.img.xz", "cow.img"), ("origin.img.xz", "origin.img")],
        CLASSIC_CASES,
    );
}

#[test]
fn golden_b2_outputs_are_the_expected_ones() {
    check_image(
        "b2",
        &[("cow.img.xz", "cow.img"), ("origin.img.xz", "origin.img")],
        CLASSIC_CASES,
    );
}

#[test]
fn golden_c_outputs_are_the_expected_ones() {
    check_image(
        "c",
        &[("cow.img.xz", "cow.img"), ("origin.img.xz", "origin.img")],
        CLASSIC_CASES,
    );
}

#[test]
fn golden_c2_outputs_are_the_expected_ones() {
    check_image(
        "c2",
        &[("cow.img.xz", "cow.img"), ("origin.img.xz", "origin.img")],
        CLASSIC_CASES,
    );
}

#[test]
fn golden_d_clone_outputs_are_the_expected_ones() {
    check_image("d", &[("meta.img.xz", "meta.img")], CLONE_CASES);
}

/// Runs `cases` on golden image `image` (its `files`, decompressed under the
/// given names) and compares each with its expected file, or rewrites them.
fn check_image(image: &str, files: &[(&str, &str)], cases: &[Case]) {
    let images = tempdir();
    for (xz, name) in files {
        decompress(&golden_folder(image).join(xz), &images.path().join(name));
    }
    let expected_dir = expected_root().join(image);
    let update = std::env::var_os(UPDATE).is_some_and(|value| value == "1");
    let mut mismatches = Vec::new();
    for &(name, line) in cases {
        let actual = run(line, &images);
        let path = expected_dir.join(format!("{name}.txt"));
        if update {
            fs::create_dir_all(&expected_dir).expect("testdata/expected writable");
            fs::write(&path, &actual).expect("expected file written");
            continue;
        }
        match fs::read_to_string(&path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => mismatches.push(first_difference(&path, &expected, &actual)),
            Err(_) => mismatches.push(format!("{}: missing", path.display())),
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} outputs of golden image {image} differ from testdata/expected \
         (rewrite with {UPDATE}=1 if the change is intended):\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
}

fn expected_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/expected")
}

fn decompress(xz: &Path, to: &Path) {
    let mut input = std::io::BufReader::new(fs::File::open(xz).expect("golden xz image"));
    let mut output = fs::File::create_new(to).expect("image created in a fresh directory");
    lzma_rs::xz_decompress(&mut input, &mut output).expect("valid xz");
}

/// Runs the command `line` in a fresh directory holding copies of the
/// images; returns the text its expected file holds.
fn run(line: &str, images: &TempDir) -> String {
    let dir = tempdir();
    for entry in fs::read_dir(images.path()).expect("images") {
        let entry = entry.expect("an image");
        fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("image copied");
    }
    let (setup, recorded) = line.rsplit_once(" && ").unwrap_or(("", line));
    for step in setup.split(" && ").filter(|step| !step.is_empty()) {
        let output = command(step, dir.path());
        assert_eq!(output.status.code(), Some(0), "setup {step} of {line}");
    }
    let output = command(recorded, dir.path());
    let mut text = format!(
        "$ {}\n",
        recorded.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    match output.status.code() {
        Some(code) => writeln!(text, "exit: {code}").unwrap(),
        None => writeln!(text, "exit: killed").unwrap(),
    }
    text.push_str("--- stdout\n");
    text.push_str(&String::from_utf8_lossy(&output.stdout));
    text.push_str("--- stderr\n");
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text.push_str("--- files\n");
    let mut files: Vec<PathBuf> = fs::read_dir(dir.path())
        .expect("case directory")
        .map(|entry| entry.expect("an entry").path())
        .collect();
    files.sort();
    for path in files {
        let bytes = fs::read(&path).expect("a file the tool left");
        let name = path.file_name().expect("a file name").to_string_lossy();
        writeln!(
            text,
            "{name}: {} bytes, sha256 {}",
            bytes.len(),
            hex_digest(&bytes)
        )
        .unwrap();
    }
    text
}

/// Runs one command line (a tool and its arguments) in `dir`.
fn command(line: &str, dir: &Path) -> std::process::Output {
    let mut words = line.split_whitespace();
    tool(words.next().expect("a tool"))
        .args(words)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LC_ALL", "C")
        .output()
        .expect("the tool runs")
}

fn hex_digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Names the file and shows the first line that differs.
fn first_difference(path: &Path, expected: &str, actual: &str) -> String {
    let (mut expected_lines, mut actual_lines) = (expected.lines(), actual.lines());
    let mut line = 1;
    loop {
        match (expected_lines.next(), actual_lines.next()) {
            (Some(e), Some(a)) if e == a => line += 1,
            (e, a) => {
                return format!(
                    "{}:{line}:\n  expected: {}\n  actual:   {}",
                    path.display(),
                    e.unwrap_or("(end of file)"),
                    a.unwrap_or("(end of output)")
                )
            }
        }
    }
}
