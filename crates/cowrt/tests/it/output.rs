//! What a finished command printed, with its exit code asserted.

use assert_cmd::Command;

/// The standard output of `command`, which must exit with `code`.
pub fn stdout(command: &mut Command, code: i32) -> String {
    let output = command.assert().code(code);
    String::from_utf8(output.get_output().stdout.clone()).unwrap()
}

/// The standard error of `command`, which must exit with `code` and print
/// nothing on standard output.
pub fn stderr(command: &mut Command, code: i32) -> String {
    let output = command.assert().code(code);
    assert!(output.get_output().stdout.is_empty());
    String::from_utf8(output.get_output().stderr.clone()).unwrap()
}
