//! CLI tests of the packaging issue: the thin-provisioning-tools spellings the
//! tools accept, and progress bars that never reach a stderr that is not a
//! terminal.

use crate::common;

use common::*;

#[test]
fn cowcheck_takes_thin_checks_ignore_non_fatal_errors() {
    let dir = tempdir();
    let path = build_store(&dir, "snap.cow", 8, 64, 10);
    poke(&path, 100, b"\x01");
    let check = |flag: &str| {
        let output = tool("cowcheck")
            .args([flag, "-q"])
            .arg(&path)
            .output()
            .unwrap();
        assert_no_panic(&output);
        output.status.code()
    };
    assert_eq!(check("--ignore-non-fatal-errors"), Some(0));
    assert_eq!(check("--ignore-non-fatal"), Some(0));
    write_area0_record(&path, 3, 5, 9999);
    assert_eq!(check("--ignore-non-fatal-errors"), Some(1));
}

#[test]
fn mkcow_restores_from_dash_i_and_input_as_thin_restore_does() {
    let dir = tempdir();
    let store = build_store(&dir, "snap.cow", 8, 64, 10);
    let dump = dir.path().join("snap.yaml");
    tool("cowdump")
        .arg("-o")
        .arg(&dump)
        .arg(&store)
        .assert()
        .success();
    for flag in ["-i", "--input", "--from-dump"] {
        let target = blank_image(&dir, "restored.cow", 64 * 8 * 512);
        let output = tool("mkcow")
            .args(["-q", flag])
            .arg(&dump)
            .arg(&target)
            .output()
            .unwrap();
        assert_no_panic(&output);
        assert_eq!(output.status.code(), Some(0), "{flag}: {}", stderr(&output));
        assert_eq!(
            library_dump(&target, cowfmt::StoreKind::Persistent, false).exceptions,
            library_dump(&store, cowfmt::StoreKind::Persistent, false).exceptions,
            "{flag}"
        );
        std::fs::remove_file(&target).unwrap();
    }
}

/// Runs `command` with stderr on a new pseudo-terminal and returns what the
/// tool drew there, and its exit code.
fn stderr_on_a_terminal(command: &mut std::process::Command) -> (String, Option<i32>) {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};

    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two new descriptors into the integers it is given.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned here only.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(slave)
        .spawn()
        .expect("the tool starts");
    // The command keeps the slave until told otherwise; the reader sees the end
    // only once no one but the child holds it.
    command.stderr(std::process::Stdio::null());
    let reader = std::thread::spawn(move || {
        let mut drawn = Vec::new();
        // The read ends with EIO once the child (the last holder of the slave) exits.
        let _ = std::fs::File::from(master).read_to_end(&mut drawn);
        drawn
    });
    let status = child.wait().expect("the tool ends");
    let drawn = reader.join().expect("the reader thread");
    (String::from_utf8_lossy(&drawn).into_owned(), status.code())
}

#[test]
fn cowcheck_draws_a_progress_bar_on_a_terminal_unless_quiet() {
    let dir = tempdir();
    let path = build_store(&dir, "snap.cow", 8, 2048, 1000);
    let cowcheck = || std::process::Command::new(assert_cmd::cargo::cargo_bin("cowcheck"));
    let (drawn, code) = stderr_on_a_terminal(cowcheck().arg(&path));
    assert_eq!(code, Some(0));
    assert!(drawn.contains("checking"), "no bar drawn: {drawn:?}");
    let (drawn, code) = stderr_on_a_terminal(cowcheck().arg("-q").arg(&path));
    assert_eq!(code, Some(0));
    assert_eq!(drawn, "");
}

#[test]
fn no_progress_reaches_a_stderr_that_is_not_a_terminal() {
    let dir = tempdir();
    let store = build_store(&dir, "snap.cow", 8, 2048, 1000);
    let quiet_run = |tool_name: &str, args: &[&std::ffi::OsStr]| {
        let output = tool(tool_name).args(args).output().unwrap();
        assert_no_panic(&output);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{tool_name}: {}",
            stderr(&output)
        );
        assert_eq!(stderr(&output), "", "{tool_name} {args:?}");
    };
    let path = |name: &str| dir.path().join(name).into_os_string();
    let dump = path("snap.yaml");
    let shared = path("shared.cow");
    quiet_run("cowcheck", &[store.as_os_str()]);
    quiet_run("cowdump", &["-o".as_ref(), &dump, store.as_os_str()]);
    let target = blank_image(&dir, "restored.cow", 2048 * 8 * 512);
    quiet_run(
        "mkcow",
        &["--from-dump".as_ref(), &dump, target.as_os_str()],
    );
    quiet_run(
        "cowmigrate",
        &[
            "-i".as_ref(),
            store.as_os_str(),
            "-o".as_ref(),
            &path("2k.cow"),
            "--chunk-size".as_ref(),
            "2k".as_ref(),
        ],
    );
    quiet_run(
        "cowmigrate",
        &[
            "-i".as_ref(),
            store.as_os_str(),
            "-o".as_ref(),
            &shared,
            "--to".as_ref(),
            "shared".as_ref(),
        ],
    );
    quiet_run("cowcheck", &[shared.as_os_str()]);
    quiet_run(
        "cowdump",
        &["-o".as_ref(), &path("shared.yaml"), shared.as_os_str()],
    );
    quiet_run(
        "cowrepair",
        &[
            "-i".as_ref(),
            store.as_os_str(),
            "-o".as_ref(),
            &path("fixed.cow"),
        ],
    );
    quiet_run(
        "cowrepair",
        &[
            "-i".as_ref(),
            shared.as_os_str(),
            "-o".as_ref(),
            &path("fixed-shared.cow"),
        ],
    );
}
