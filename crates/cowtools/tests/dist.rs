//! CLI tests of the packaging issue: the thin-provisioning-tools spellings the
//! tools accept, and progress bars that never reach a stderr that is not a
//! terminal.

mod common;

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
