//! Data-safety cases: the one output guard and atomic outputs (issue 8, cases
//! 1, 8, 11 and 12, and the restartable `cowrepair --in-place`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use cowfmt::persistent::dump::dump;
use cowfmt::persistent::{ExceptionRecord, PersistentStore, StoreWriter};
use cowfmt::{Access, Device, StoreKind};

use crate::common::*;

fn bin(name: &str) -> PathBuf {
    assert_cmd::cargo::cargo_bin(name)
}

/// The exceptions of the SnAp store at `path`, in on-disk order.
fn records(path: &Path) -> Vec<ExceptionRecord> {
    let store = PersistentStore::open(Device::open(path, Access::ReadOnly).unwrap(), None).unwrap();
    dump(&store, StoreKind::Persistent, false)
        .unwrap()
        .exceptions
}

/// Whether cowcheck calls the store at `path` clean (exit 0).
/// Whether a job ran to its end: exit 0, or 3 for a repair that lost records
/// (the damaged fixtures hold one record that cannot be kept).
fn completed(status: std::process::ExitStatus) -> bool {
    matches!(status.code(), Some(0 | 3))
}

fn checks_clean(path: &Path) -> bool {
    tool("cowcheck")
        .arg(path)
        .output()
        .unwrap()
        .status
        .success()
}

/// A persistent store of `records` records with 512-byte chunks, large enough
/// that writing it again takes a while; record 3 of area 0 is damaged so a
/// repair drops it.
fn damaged_store(dir: &tempfile::TempDir, name: &str, records: u64) -> PathBuf {
    let path = dir.path().join(name);
    let device = Device::create_or_extend(&path, (records * 2 + 64) * 512).unwrap();
    let mut writer = StoreWriter::format(device, 1).unwrap();
    for i in 0..records {
        let new_chunk = writer.allocate().unwrap();
        writer
            .commit(ExceptionRecord {
                old_chunk: scattered_old_chunk(i),
                new_chunk,
            })
            .unwrap();
        if i % 64 == 0 {
            writer
                .device()
                .write_at(&[i as u8 | 1; 512], new_chunk * 512)
                .unwrap();
        }
    }
    writer.finish().unwrap();
    let mut damaged = [0u8; 16];
    damaged[..8].copy_from_slice(&5u64.to_le_bytes());
    damaged[8..].copy_from_slice(&99_999_999u64.to_le_bytes());
    poke(&path, 512 + 3 * 16, &damaged);
    path
}

/// Starts `program` with `args`, kills it with SIGKILL `delay` after it
/// started (or after `start` first said yes) unless it ended first; returns
/// whether it ended on its own with exit 0.
fn run_killed_after(
    program: &Path,
    args: &[&str],
    start: Option<&dyn Fn() -> bool>,
    delay: Duration,
) -> bool {
    let mut child: Child = StdCommand::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while start.is_some_and(|started| !started()) {
        if let Some(status) = child.try_wait().unwrap() {
            return completed(status);
        }
    }
    let start = Instant::now();
    while start.elapsed() < delay {
        if let Some(status) = child.try_wait().unwrap() {
            return completed(status);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let _ = child.kill();
    child.wait().unwrap();
    false
}

/// How long `args` take uninterrupted.
fn timed(program: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let output = StdCommand::new(program).args(args).output().unwrap();
    assert!(
        completed(output.status),
        "{} {args:?}: {}",
        program.display(),
        stderr(&output)
    );
    start.elapsed()
}

/// Kill points spread over a job that takes `total`.
fn kill_points(total: Duration, count: u32) -> impl Iterator<Item = Duration> {
    (0..count).map(move |i| total * i / count)
}

#[test]
fn case_1_cowdump_never_writes_over_its_input_nor_an_existing_file() {
    let dir = tempdir();
    let cow = dir.path().join("cow.img");
    tool("mkcow")
        .args(["-q", "--size", "64M", s(&cow)])
        .assert()
        .success();
    let before = std::fs::read(&cow).unwrap();
    let hard = dir.path().join("hard.img");
    std::fs::hard_link(&cow, &hard).unwrap();
    let soft = dir.path().join("soft.img");
    std::os::unix::fs::symlink(&cow, &soft).unwrap();
    for alias in [&cow, &hard, &soft] {
        for args in [
            vec!["--hex", "0"],
            vec!["--format", "json"],
            vec!["--format", "yaml"],
            vec!["--format", "table", "--force"],
        ] {
            let output = tool("cowdump")
                .args(&args)
                .args(["-o", s(alias), s(&cow)])
                .output()
                .unwrap();
            assert_one_line_error(&output, 2, s(alias));
            assert!(
                stderr(&output).contains("which this job reads"),
                "{}",
                stderr(&output)
            );
            assert_eq!(
                std::fs::read(&cow).unwrap(),
                before,
                "{args:?} -o {}",
                alias.display()
            );
        }
    }
    let script = format!(
        "exec 3<>{}; exec {} --hex 0 --force -o /proc/self/fd/3 {}",
        s(&cow),
        s(&bin("cowdump")),
        s(&cow)
    );
    let output = StdCommand::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(std::fs::read(&cow).unwrap(), before, "/proc/self/fd alias");

    let other = dir.path().join("other.txt");
    std::fs::write(&other, b"precious").unwrap();
    let output = tool("cowdump")
        .args(["-o", s(&other), s(&cow)])
        .output()
        .unwrap();
    assert_one_line_error(&output, 2, s(&other));
    assert!(stderr(&output).contains("--force"), "{}", stderr(&output));
    assert_eq!(std::fs::read(&other).unwrap(), b"precious");
    tool("cowdump")
        .args(["--force", "-o", s(&other), s(&cow)])
        .assert()
        .success();
    assert!(std::fs::read_to_string(&other)
        .unwrap()
        .contains("exceptions"));
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 4, "no temporary file is left: {names:?}");
}

#[test]
fn case_1_no_writer_takes_an_alias_of_its_input_or_origin_even_with_force() {
    let dir = tempdir();
    let cow = build_store(&dir, "cow.img", 8, 64, 10);
    let origin = blank_image(&dir, "origin.img", 8 << 30);
    let before = std::fs::read(&cow).unwrap();
    let hard = dir.path().join("hard.img");
    std::fs::hard_link(&cow, &hard).unwrap();
    let soft = dir.path().join("soft.img");
    std::os::unix::fs::symlink(&origin, &soft).unwrap();
    let runs: Vec<Vec<&str>> = vec![
        vec!["cowrepair", "-i", s(&cow), "-o", s(&hard), "--force"],
        vec![
            "cowrepair",
            "-i",
            s(&cow),
            "--in-place",
            "--backup",
            s(&hard),
            "--force",
        ],
        vec![
            "cowmigrate",
            "-i",
            s(&cow),
            "-o",
            s(&hard),
            "--force",
            "--chunk-size",
            "8k",
            "--origin",
            s(&origin),
        ],
        vec!["mkcow", "--force", "--origin", s(&cow), s(&hard)],
        vec![
            "cowrepair",
            "-i",
            s(&cow),
            "-o",
            s(&soft),
            "--force",
            "--origin",
            s(&origin),
        ],
    ];
    for run in runs {
        let output = tool(run[0]).args(&run[1..]).output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{run:?}: {}",
            stderr(&output)
        );
        let refusal = stderr(&output);
        assert!(
            refusal.contains("which this job reads"),
            "{run:?}: {refusal}"
        );
        assert_no_panic(&output);
        assert_eq!(std::fs::read(&cow).unwrap(), before, "{run:?}");
        let origin_device = Device::open(&origin, Access::ReadOnly).unwrap();
        assert!(origin_device.data_ranges(0, 8 << 30).is_empty(), "{run:?}");
    }
}

/// A small damaged store for an in-place repair: the directory, the store,
/// its bytes and the backup path (not created).
fn in_place_input() -> (tempfile::TempDir, PathBuf, Vec<u8>, PathBuf) {
    let dir = tempdir();
    let cow = build_store(&dir, "cow.img", 8, 64, 10);
    write_area0_record(&cow, 3, 5, 9999);
    let before = std::fs::read(&cow).unwrap();
    let backup = dir.path().join("cow.bak");
    (dir, cow, before, backup)
}

/// The input is as it was, and no backup was made of it.
fn assert_refused_before_backup(cow: &Path, before: &[u8], backup: &Path) {
    assert!(
        !backup.exists(),
        "no backup is made of an input that cannot be written"
    );
    assert_eq!(std::fs::read(cow).unwrap(), before);
}

#[test]
fn case_8_a_busy_in_place_input_is_refused_before_any_backup() {
    let (_dir, cow, before, backup) = in_place_input();
    let mut holder = StdCommand::new("flock")
        .args(["-x", s(&cow), "sleep", "30"])
        .spawn()
        .unwrap();
    let held = Instant::now();
    while StdCommand::new("flock")
        .args(["-n", s(&cow), "true"])
        .status()
        .unwrap()
        .success()
    {
        assert!(
            held.elapsed() < Duration::from_secs(10),
            "the lock was never taken"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = tool("cowrepair")
        .args(["-i", s(&cow), "--in-place", "--backup", s(&backup)])
        .output()
        .unwrap();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_one_line_error(&output, 2, s(&cow));
    assert_refused_before_backup(&cow, &before, &backup);
}

#[test]
fn case_8_a_read_only_in_place_input_is_refused_before_any_backup() {
    let (dir, cow, before, backup) = in_place_input();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&cow, std::fs::Permissions::from_mode(0o444)).unwrap();
    let repair = bin("cowrepair");
    let args = ["-i", s(&cow), "--in-place", "--backup", s(&backup)];
    // Root ignores file modes: run as nobody then.
    let euid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
    let output = if euid == 0 {
        StdCommand::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&repair)
            .args(args)
            .output()
            .unwrap()
    } else {
        StdCommand::new(&repair).args(args).output().unwrap()
    };
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains(s(&cow)), "{}", stderr(&output));
    assert_refused_before_backup(&cow, &before, &backup);
}

#[test]
fn case_11_a_killed_job_never_leaves_an_output_that_checks_clean() {
    let dir = tempdir();
    let input = damaged_store(&dir, "in.img", 60_000);
    let origin = blank_image(&dir, "origin.img", 1 << 30);
    let out = dir.path().join("out.img");
    let dump_file = dir.path().join("dump.json");
    let repaired = dir.path().join("repaired.img");
    tool("cowrepair")
        .args(["-q", "-i", s(&input), "-o", s(&repaired)])
        .assert()
        .code(3);
    tool("cowdump")
        .args(["--format", "json", "-o", s(&dump_file), s(&repaired)])
        .assert()
        .success();
    let jobs: Vec<(&str, Vec<&str>)> = vec![
        ("cowrepair", vec!["-q", "-i", s(&input), "-o", s(&out)]),
        (
            "cowmigrate",
            vec![
                "-q",
                "-i",
                s(&repaired),
                "-o",
                s(&out),
                "--chunk-size",
                "4k",
                "--origin",
                s(&origin),
                "--size",
                "160M",
            ],
        ),
        (
            "cowmigrate",
            vec!["-q", "-i", s(&repaired), "-o", s(&out), "--to", "shared"],
        ),
        (
            "mkcow",
            vec!["-q", "--from-dump", s(&dump_file), "--size", "64M", s(&out)],
        ),
    ];
    for (program, args) in jobs {
        let total = timed(&bin(program), &args);
        let whole = json_dump(&out);
        std::fs::remove_file(&out).unwrap();
        let mut cut = 0;
        for delay in kill_points(total * 3 / 4, 12) {
            let completed = run_killed_after(&bin(program), &args, None, delay);
            if !completed {
                cut += 1;
                // A kill that lands after the last write (while the job checks
                // its output or reports) leaves the whole output.
                assert!(
                    !out.exists() || !checks_clean(&out) || json_dump(&out) == whole,
                    "{program} {args:?} killed after {delay:?} left an output that checks clean with part of the records"
                );
            }
            let _ = std::fs::remove_file(&out);
        }
        assert!(
            cut >= 4,
            "{program}: only {cut} runs were cut short (the job takes {total:?})"
        );
    }
}

#[test]
fn case_12_two_jobs_on_one_new_output_never_both_succeed_nor_mix() {
    let dir = tempdir();
    let first = damaged_store(&dir, "first.img", 20_000);
    let second = build_store(&dir, "second.img", 1, 50_000, 15_000);
    let expected_first = dir.path().join("first.out");
    let expected_second = dir.path().join("second.out");
    for (input, out) in [(&first, &expected_first), (&second, &expected_second)] {
        tool("cowrepair")
            .args(["-q", "-i", s(input), "-o", s(out), "--size", "24M"])
            .assert()
            .code(if input == &first { 3 } else { 0 });
    }
    let wants = [records(&expected_first), records(&expected_second)];
    race(&["cowrepair"], [&first, &second], &wants, &dir);
    let migrate = ["cowmigrate", "--chunk-size", "512"];
    race(&migrate, [&expected_first, &expected_second], &wants, &dir);
}

/// Starts `command` on each of `inputs` with one new `-o`, a few times in
/// either order: exactly one run exits 0, and the output holds exactly the
/// records `wants` says its input gives.
fn race(
    command: &[&str],
    inputs: [&Path; 2],
    wants: &[Vec<ExceptionRecord>; 2],
    dir: &tempfile::TempDir,
) {
    let out = dir.path().join("race.img");
    let program = command[0];
    for round in 0..8 {
        let spawn = |input: &Path| {
            StdCommand::new(bin(program))
                .args(&command[1..])
                .args(["-q", "-i", s(input), "-o", s(&out), "--size", "24M"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let (mut a, mut b) = if round % 2 == 0 {
            (spawn(inputs[0]), spawn(inputs[1]))
        } else {
            let b = spawn(inputs[1]);
            (spawn(inputs[0]), b)
        };
        let won = [completed(a.wait().unwrap()), completed(b.wait().unwrap())];
        assert!(
            !(won[0] && won[1]),
            "{program} round {round}: both jobs exited 0"
        );
        let winner = won
            .iter()
            .position(|&w| w)
            .unwrap_or_else(|| panic!("{program} round {round}: both jobs were refused"));
        assert!(checks_clean(&out), "{program} round {round}");
        assert_eq!(
            records(&out),
            wants[winner],
            "{program} round {round}: the output is a mix"
        );
        let _ = std::fs::remove_file(&out);
    }
}

/// The in-place repair killed at many points: the input never checks clean
/// with part of its records, and a rerun with the same backup always ends
/// with every record the uninterrupted repair keeps.
fn in_place_survives_kills(
    input: &Path,
    dir: &tempfile::TempDir,
    points: u32,
    want: &dyn Fn(&Path),
) {
    let original = std::fs::read(input).unwrap();
    let backup = dir.path().join("in.bak");
    let args = ["-q", "-i", s(input), "--in-place", "--backup", s(&backup)];
    let total = timed(&bin("cowrepair"), &args);
    want(input);
    let mut resumed = 0;
    let spread = kill_points(total, points / 2).map(|delay| (false, delay));
    let after_marking = kill_points(total / 2, points - points / 2).map(|delay| (true, delay));
    for (wait_for_marker, delay) in spread.chain(after_marking) {
        std::fs::write(input, &original).unwrap();
        let _ = std::fs::remove_file(&backup);
        let marked = || {
            cowfmt::output::Marker::read(&Device::open(input, Access::ReadOnly).unwrap())
                .unwrap()
                .is_some()
        };
        let start = wait_for_marker.then_some(&marked as &dyn Fn() -> bool);
        if run_killed_after(&bin("cowrepair"), &args, start, delay) {
            want(input);
            continue;
        }
        let mut rerun_args = args.to_vec();
        if !marked() {
            if std::fs::read(input).unwrap() != original {
                want(input);
                continue;
            }
            if backup.exists() {
                assert!(
                    std::fs::read(&backup).unwrap() == original || !checks_clean(&backup),
                    "killed after {delay:?}: the cut backup checks clean with part of the input"
                );
                rerun_args.push("--force");
            }
        } else {
            resumed += 1;
            let check = tool("cowcheck").arg(input).output().unwrap();
            assert_eq!(check.status.code(), Some(1), "killed after {delay:?}");
            assert!(stdout(&check).contains("in repair") || stderr(&check).contains("in repair"));
        }
        let rerun = tool("cowrepair").args(&rerun_args).output().unwrap();
        assert!(
            completed(rerun.status),
            "after {delay:?}: {}",
            stderr(&rerun)
        );
        want(input);
    }
    assert!(
        resumed >= 3,
        "only {resumed} kills landed after the input was marked"
    );
}

#[test]
fn in_place_repair_of_a_persistent_store_resumes_after_kill_9() {
    let dir = tempdir();
    let input = damaged_store(&dir, "in.img", 60_000);
    let reference = dir.path().join("reference.img");
    tool("cowrepair")
        .args(["-q", "-i", s(&input), "-o", s(&reference)])
        .assert()
        .code(3);
    let full = records(&reference);
    assert_eq!(full.len(), 59_999);
    in_place_survives_kills(&input, &dir, 16, &|path| {
        assert!(checks_clean(path));
        assert_eq!(records(path), full);
    });
}

#[test]
fn a_backup_cut_before_the_input_is_marked_is_named_and_forced_over() {
    let dir = tempdir();
    let input = damaged_store(&dir, "in.img", 1000);
    let original = std::fs::read(&input).unwrap();
    let backup = dir.path().join("in.bak");
    let cut = Device::create_or_extend(&backup, original.len() as u64).unwrap();
    cut.write_at(&original[512..], 512).unwrap();
    cowfmt::output::Marker::Writing.write(&cut).unwrap();
    drop(cut);
    assert!(!checks_clean(&backup));
    let args = ["-q", "-i", s(&input), "--in-place", "--backup", s(&backup)];
    let refused = tool("cowrepair").args(args).output().unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains(
            "holds an incomplete output left by a job that was cut short; the input is untouched; remove it or give --force"
        ),
        "{}",
        stderr(&refused)
    );
    assert_eq!(std::fs::read(&input).unwrap(), original);
    let forced = tool("cowrepair")
        .args(args)
        .arg("--force")
        .output()
        .unwrap();
    assert!(completed(forced.status), "{}", stderr(&forced));
    assert!(checks_clean(&input));
    assert_eq!(std::fs::read(&backup).unwrap(), original);
}

#[test]
fn in_place_rerun_refuses_another_backup() {
    let dir = tempdir();
    let input = damaged_store(&dir, "in.img", 1000);
    let backup = dir.path().join("in.bak");
    let original = std::fs::read(&input).unwrap();
    std::fs::write(&backup, &original).unwrap();
    let marker = cowfmt::output::Marker::InRepair(
        cowfmt::output::InRepair::of_backup(
            &Device::open(&backup, Access::ReadOnly).unwrap(),
            u32::from_le_bytes(original[..4].try_into().unwrap()),
            s(&backup),
        )
        .unwrap(),
    );
    marker
        .write(&Device::open(&input, Access::ReadWrite).unwrap())
        .unwrap();
    let output = tool("cowrepair")
        .args(["-i", s(&input), "-o", s(&dir.path().join("x.img"))])
        .output()
        .unwrap();
    assert_one_line_error(&output, 2, s(&input));
    assert!(stderr(&output).contains("in repair"), "{}", stderr(&output));
    let other = dir.path().join("other.bak");
    let mut changed = original.clone();
    changed[100] ^= 1;
    std::fs::write(&other, &changed).unwrap();
    let output = tool("cowrepair")
        .args(["-i", s(&input), "--in-place", "--backup", s(&other)])
        .output()
        .unwrap();
    assert_one_line_error(&output, 2, s(&other));
    assert!(
        stderr(&output).contains("is not the backup"),
        "{}",
        stderr(&output)
    );
    tool("cowrepair")
        .args(["-q", "-i", s(&input), "--in-place", "--backup", s(&backup)])
        .assert()
        .code(3);
    assert_eq!(records(&input).len(), 999);
}

/// A shared store of 512-byte chunks whose two snapshots hold 39,000 records
/// (every origin chunk copied out once, every other one twice).
fn shared_store(dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join("shared.img");
    shared_copied_twice(&path, 80_000, &dir.path().join("origin.img"), 26_000);
    path
}

/// The records of the shared store at `path`, as cowdump's JSON lists them.
fn shared_records(path: &Path) -> serde_json::Value {
    let output = tool("cowdump")
        .args(["--format", "json", s(path)])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let dump: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    dump["exceptions"].clone()
}

#[test]
fn in_place_repair_of_a_shared_store_resumes_after_kill_9() {
    let dir = tempdir();
    let input = shared_store(&dir);
    let reference = dir.path().join("reference.img");
    tool("cowrepair")
        .args(["-q", "-i", s(&input), "-o", s(&reference)])
        .assert()
        .success();
    let full = shared_records(&reference);
    assert_eq!(full.as_array().map(Vec::len), Some(39_000));
    in_place_survives_kills(&input, &dir, 16, &|path| {
        assert!(checks_clean(path));
        assert_eq!(shared_records(path), full);
    });
}

/// Each writing tool's refusal names what an existing output holds, and with
/// `--force` the tool says on stderr what it overwrites.
#[test]
fn an_existing_output_is_named_in_the_refusal_and_when_forced_over() {
    let dir = tempdir();
    let input = damaged_store(&dir, "in.img", 200);
    let victim = damaged_store(&dir, "victim.img", 100);
    let held = "a persistent store (SnAp, chunk size 1)";
    let dump = dir.path().join("dump.yaml");
    let backup = dir.path().join("in.bak");
    let jobs: [(&str, &Path, Vec<&str>); 4] = [
        (
            "cowrepair",
            &victim,
            vec!["-q", "-i", s(&input), "-o", s(&victim)],
        ),
        (
            "cowrepair",
            &backup,
            vec!["-q", "-i", s(&input), "--in-place", "--backup", s(&backup)],
        ),
        (
            "cowmigrate",
            &victim,
            vec!["-q", "-i", s(&input), "-o", s(&victim), "--to", "legacy"],
        ),
        ("cowdump", &dump, vec!["-o", s(&dump), s(&input)]),
    ];
    for (name, target, args) in jobs {
        if target != victim.as_path() {
            std::fs::copy(&victim, target).unwrap();
        }
        let before = std::fs::read(target).unwrap();
        let refused = tool(name).args(&args).output().unwrap();
        assert_eq!(refused.status.code(), Some(2), "{name} {args:?}");
        let expected = format!(
            "{}: already holds {held}; refusing to overwrite it without --force",
            s(target)
        );
        assert!(stderr(&refused).contains(&expected), "{}", stderr(&refused));
        assert_eq!(std::fs::read(target).unwrap(), before);
        let forced = tool(name).args(&args).arg("--force").output().unwrap();
        assert!(completed(forced.status), "{name}: {}", stderr(&forced));
        let said = format!(
            "{name}: {}: overwriting {held} because --force was given",
            s(target)
        );
        assert_eq!(
            stderr(&forced).matches(&said).count(),
            1,
            "{name}: {}",
            stderr(&forced)
        );
        if target == victim.as_path() {
            std::fs::write(&victim, &before).unwrap();
        }
    }
}

/// `cowdump -o /dev/stdout` (a pipe here) and `-o /dev/null` write straight
/// to the character device or FIFO, as scripts expect.
#[test]
fn cowdump_writes_to_a_character_device_or_a_fifo() {
    let dir = tempdir();
    let input = damaged_store(&dir, "in.img", 100);
    let plain = tool("cowdump").arg(&input).output().unwrap();
    let piped = tool("cowdump")
        .args(["-o", "/dev/stdout", s(&input)])
        .output()
        .unwrap();
    assert_eq!(
        piped.status.code(),
        plain.status.code(),
        "{}",
        stderr(&piped)
    );
    assert!(!plain.stdout.is_empty());
    assert_eq!(piped.stdout, plain.stdout);
    let nulled = tool("cowdump")
        .args(["-o", "/dev/null", s(&input)])
        .output()
        .unwrap();
    assert_eq!(
        nulled.status.code(),
        plain.status.code(),
        "{}",
        stderr(&nulled)
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
}

/// The store at `path` as cowdump's JSON has it.
fn json_dump(path: &Path) -> Vec<u8> {
    tool("cowdump")
        .args(["--format", "json", s(path)])
        .output()
        .unwrap()
        .stdout
}
