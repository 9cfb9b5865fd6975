//! The command-line contract every tool keeps, written once and applied to
//! all five: a missing file, a directory, an empty file, a zeroed or junk
//! file, a truncated store and another kind's metadata are each refused with
//! one line naming the file and a documented exit code, writing nothing;
//! `--help` has examples and documents the exit codes; `-V` prints the
//! version; usage errors exit 2.

use std::fs;
use std::path::Path;
use std::process::Output;

use crate::common::{build_store, golden_clone_metadata, stderr, stdout, tempdir, tool};

/// The five tools, each with the arguments that come before the input path
/// (the output, where the tool writes one, is `out.img` in the same folder).
const TOOLS: [(&str, &[&str]); 5] = [
    ("mkcow", &[]),
    ("cowdump", &[]),
    ("cowcheck", &[]),
    ("cowrepair", &["-o", "out.img", "-i"]),
    ("cowmigrate", &["-o", "out.img", "--to", "legacy", "-i"]),
];

/// What each tool (in the order of [`TOOLS`]) answers to one bad input: its
/// exit code and a phrase of its message; `HANDLED` for a tool that reads
/// the input as a kind of its own (its module tests what it says).
type Answers = [(i32, &'static str); 5];

/// The answer of a tool that handles the input.
const HANDLED: (i32, &str) = (0, "");

/// Runs every tool on `input` (a name in `dir`) and checks its answer: the
/// exit code, one line naming the file (stderr; cowcheck's findings go to
/// stdout), no panic, no output file, the input unchanged.
fn assert_every_tool_refuses(dir: &Path, input: &str, answers: Answers) {
    let before = fs::read(dir.join(input)).ok();
    let refusing = TOOLS.into_iter().zip(answers);
    for ((name, args), (code, phrase)) in refusing.filter(|(_, answer)| *answer != HANDLED) {
        let output = tool(name)
            .args(args)
            .arg(input)
            .current_dir(dir)
            .output()
            .unwrap();
        let context = format!("{name} {} {input}", args.join(" "));
        let (out, err) = (stdout(&output), stderr(&output));
        assert_eq!(output.status.code(), Some(code), "{context}: {out}{err}");
        assert!(!err.contains("panicked"), "{context}: {err}");
        let message = if err.is_empty() { &out } else { &err };
        assert!(
            err.lines().count() <= 1,
            "{context}: one line expected: {err}"
        );
        assert!(
            message.contains(&format!("{input}:")),
            "{context}: names the file: {message}"
        );
        assert!(
            message.contains(phrase),
            "{context}: says {phrase:?}: {message}"
        );
        assert!(!dir.join("out.img").exists(), "{context}: wrote an output");
        assert_eq!(
            fs::read(dir.join(input)).ok(),
            before,
            "{context}: changed the input"
        );
    }
}

#[test]
fn a_missing_file_is_refused_by_every_tool() {
    let dir = tempdir();
    assert_every_tool_refuses(
        dir.path(),
        "missing.img",
        [
            (2, "does not exist; give --size"),
            (2, "cannot open"),
            (2, "cannot open"),
            (2, "cannot open"),
            (2, "cannot open"),
        ],
    );
    assert!(!dir.path().join("missing.img").exists(), "nothing created");
}

#[test]
fn a_directory_is_refused_by_every_tool() {
    let dir = tempdir();
    fs::create_dir(dir.path().join("folder")).unwrap();
    assert_every_tool_refuses(dir.path(), "folder", [(2, "is a directory"); 5]);
}

#[test]
fn an_empty_file_is_refused_by_every_tool() {
    let dir = tempdir();
    fs::write(dir.path().join("empty.img"), b"").unwrap();
    assert_every_tool_refuses(
        dir.path(),
        "empty.img",
        [
            (2, "too small"),
            (2, "truncated"),
            (2, "truncated"),
            (2, "truncated"),
            (2, "truncated"),
        ],
    );
}

#[test]
fn a_zeroed_file_is_refused_by_every_tool() {
    let dir = tempdir();
    fs::write(dir.path().join("zeros.img"), [0u8; 100]).unwrap();
    assert_every_tool_refuses(
        dir.path(),
        "zeros.img",
        [
            (2, "too small"),
            (2, "not formatted"),
            (2, "not formatted"),
            (1, "nothing to salvage"),
            (2, "not formatted"),
        ],
    );
}

#[test]
fn a_truncated_store_is_refused_by_every_tool() {
    let dir = tempdir();
    let path = build_store(&dir, "cut.img", 8, 64, 1);
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(6000)
        .unwrap();
    assert_every_tool_refuses(
        dir.path(),
        "cut.img",
        [
            (2, "already holds a persistent store"),
            (2, "needs a header and an area"),
            (1, "device-too-small"),
            (1, "nothing to salvage"),
            (2, "needs a header and an area"),
        ],
    );
}

#[test]
fn junk_is_refused_by_every_tool() {
    let dir = tempdir();
    fs::write(dir.path().join("junk.img"), [0x5au8; 8192]).unwrap();
    assert_every_tool_refuses(
        dir.path(),
        "junk.img",
        [
            (2, "is not all zero"),
            (2, "not a COW store"),
            (2, "not a COW store"),
            (1, "nothing to salvage"),
            (2, "not a COW store"),
        ],
    );
}

#[test]
fn another_kind_is_refused_by_every_tool() {
    let dir = tempdir();
    golden_clone_metadata(&dir);
    assert_every_tool_refuses(
        dir.path(),
        "d-meta.img",
        [
            (2, "already holds dm-clone metadata"),
            HANDLED,
            HANDLED,
            HANDLED,
            (
                2,
                "is dm-clone metadata: give its new region size with --region-size SIZE",
            ),
        ],
    );
}

fn run(name: &str, args: &[&str]) -> Output {
    tool(name).args(args).output().unwrap()
}

#[test]
fn every_help_has_examples_and_the_exit_codes() {
    for (name, _) in TOOLS {
        let output = run(name, &["--help"]);
        let help = stdout(&output);
        assert_eq!(output.status.code(), Some(0), "{name} --help");
        assert!(
            output.stderr.is_empty(),
            "{name} --help: {}",
            stderr(&output)
        );
        assert!(help.contains(&format!("Usage: {name} ")), "{name}: {help}");
        let examples = help.split_once("EXAMPLES:").map_or("", |(_, rest)| rest);
        assert!(
            examples
                .lines()
                .any(|line| line.trim_start().starts_with(&format!("{name} "))),
            "{name} --help has examples of {name}: {help}"
        );
        assert!(
            help.contains("Exit codes: 0") || help.contains("(exit 0 "),
            "{name} --help documents its exit codes: {help}"
        );
        let short = run(name, &["-h"]);
        assert_eq!(short.status.code(), Some(0), "{name} -h");
        assert!(
            stdout(&short).contains(&format!("Usage: {name} ")),
            "{name} -h"
        );
    }
}

#[test]
fn every_tool_prints_its_version() {
    for (name, _) in TOOLS {
        for flag in ["-V", "--version"] {
            let output = run(name, &[flag]);
            assert_eq!(output.status.code(), Some(0), "{name} {flag}");
            assert_eq!(
                stdout(&output),
                format!("{name} {}\n", env!("CARGO_PKG_VERSION")),
                "{name} {flag}"
            );
            assert!(output.stderr.is_empty(), "{name} {flag}");
        }
    }
}

#[test]
fn usage_errors_exit_2_with_the_usage_line() {
    for (name, _) in TOOLS {
        for args in [&[][..], &["--bogus"]] {
            let output = run(name, args);
            let err = stderr(&output);
            assert_eq!(output.status.code(), Some(2), "{name} {args:?}: {err}");
            assert!(output.stdout.is_empty(), "{name} {args:?}");
            assert!(err.starts_with("error: "), "{name} {args:?}: {err}");
            assert!(
                err.contains(&format!("Usage: {name} ")),
                "{name} {args:?}: {err}"
            );
        }
        let output = run(name, &["--bogus"]);
        assert!(
            stderr(&output).contains("unexpected argument '--bogus'"),
            "{name}"
        );
    }
}
