//! `cowrt message`, `status` and `stop` from the command line against a daemon
//! served in this test process (over the in-memory device host, on image
//! files), and `cowrt serve` refusing in a build without ublk.

use std::path::PathBuf;
use std::sync::Arc;

use assert_cmd::Command;

use crate::output::{stderr, stdout};
use cowengine::{CreateOptions, Engine};
use cowfmt::device::Device;
use cowrt::serve::{Daemon, DaemonConfig, DeviceHost, MemHost, RunPaths};
use tempfile::TempDir;

const CB: u64 = 4096;

struct Served {
    dir: TempDir,
    daemon: Arc<Daemon<Device>>,
}

impl Served {
    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn cowrt(&self, args: &[&str]) -> Command {
        let mut command = Command::cargo_bin("cowrt").unwrap();
        command.args(args).arg("--run-dir").arg(self.run_dir());
        command
    }
}

/// A journaled store with `snapshots` snapshots on image files, served as `t`.
fn serve(snapshots: u32) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let (cow, origin) = (dir.path().join("cow.img"), dir.path().join("origin.img"));
    let options = CreateOptions {
        chunk_sectors: CB / 512,
        journal_chunks: 80,
    };
    let engine = Engine::create(
        Device::create_or_extend(&cow, 512 * CB).unwrap(),
        Device::create_or_extend(&origin, 64 * CB).unwrap(),
        &options,
    )
    .unwrap();
    for _ in 0..snapshots {
        engine.create_snapshot(None).unwrap();
    }
    engine.commit().unwrap();
    let config = DaemonConfig {
        paths: RunPaths::new(dir.path().join("run"), "t").unwrap(),
        store: cow,
        origin,
        queues: 1,
        commit_interval: None,
        recover: None,
        pid: None,
        log: cowrt::log::Log::discard(),
    };
    let host: Arc<dyn DeviceHost> = Arc::new(MemHost::new());
    let daemon = Daemon::start(engine, host, config, &mut Vec::new()).unwrap();
    Served { dir, daemon }
}

#[test]
fn messages_print_what_the_daemon_did() {
    let served = serve(1);
    let mut create = served.cowrt(&["message", "t", "create"]);
    assert_eq!(stdout(&mut create, 0), "created 1 /dev/mem2\n");
    let mut subsnap = served.cowrt(&["message", "t", "create_subsnap", "1"]);
    assert_eq!(stdout(&mut subsnap, 0), "created 2 /dev/mem3\n");
    let mut detach = served.cowrt(&["message", "t", "detach", "2"]);
    assert_eq!(stdout(&mut detach, 0), "detached 2\n");
    let mut attach = served.cowrt(&["message", "t", "attach", "2"]);
    assert_eq!(stdout(&mut attach, 0), "attached 2 /dev/mem3\n");
    let mut delete = served.cowrt(&["message", "t", "delete", "0"]);
    assert_eq!(stdout(&mut delete, 0), "deleted 0 (0 chunks freed)\n");
    assert_eq!(served.daemon.engine().snapmask(), 0b110);
}

#[test]
fn refused_messages_exit_1_and_change_nothing() {
    let served = serve(1);
    let mut missing = served.cowrt(&["message", "t", "delete", "9"]);
    assert_eq!(
        stderr(&mut missing, 1),
        "cowrt: delete 9: snapshot 9 does not exist (snapshots: 0)\n"
    );
    let mut attached = served.cowrt(&["message", "t", "attach", "0"]);
    assert_eq!(
        stderr(&mut attached, 1),
        "cowrt: attach 0: snapshot 0 is already attached\n"
    );
    let not_a_mount = served.dir.path().join("nowhere");
    let mut freeze = Command::cargo_bin("cowrt").unwrap();
    freeze
        .args(["message", "t", "create", "--freeze"])
        .arg(&not_a_mount);
    freeze.arg("--run-dir").arg(served.run_dir());
    let error = stderr(&mut freeze, 1);
    assert!(
        error.starts_with(&format!(
            "cowrt: --freeze {}: cannot freeze the filesystem (is it a mount point?): ",
            not_a_mount.display()
        )),
        "{error}"
    );
    assert!(error.ends_with("; nothing was changed\n"), "{error}");
    assert_eq!(served.daemon.engine().snapmask(), 0b1);
    assert_eq!(served.daemon.devices().len(), 2);
}

#[test]
fn usage_errors_and_a_missing_daemon_exit_2() {
    let served = serve(0);
    let mut unknown = served.cowrt(&["message", "t", "snap"]);
    assert!(stderr(&mut unknown, 2).starts_with("cowrt: unknown message 'snap'; expected one of:"));
    let mut freeze_delete = served.cowrt(&["message", "t", "delete", "0", "--freeze", "/"]);
    assert_eq!(
        stderr(&mut freeze_delete, 2),
        "cowrt: --freeze goes with create and create_subsnap, not 'delete 0'\n"
    );
    let mut nobody = served.cowrt(&["status", "other"]);
    let error = stderr(&mut nobody, 2);
    let socket = served.run_dir().join("other.sock");
    assert!(
        error.starts_with(&format!(
            "cowrt: no daemon serves 'other': cannot connect to {}: ",
            socket.display()
        )),
        "{error}"
    );
    let mut bad_name = served.cowrt(&["stop", "../t"]);
    assert!(stderr(&mut bad_name, 2).starts_with("cowrt: '../t' is not a usable name"));
    assert_eq!(served.daemon.engine().snapmask(), 0);
}

#[test]
fn status_gives_seed_002s_line_or_json() {
    let served = serve(2);
    let mut line = served.cowrt(&["status", "t"]);
    let text = stdout(&mut line, 0);
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(words[..3], ["5", "0", "-"]);
    assert_eq!(words[3], "4096", "512 chunks of 8 sectors");
    assert_eq!(words[6..], ["2", "0", "1"]);

    let mut json = served.cowrt(&["status", "t", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&mut json, 0)).unwrap();
    assert_eq!(json["name"], "t");
    assert_eq!(json["total_chunks"], 512);
    assert_eq!(json["journal"]["state"], "journaled");
    assert_eq!(json["devices"][1]["name"], "t-s0");
    assert_eq!(json["devices"][2]["snapshot"], 1);
    assert_eq!(json["snapshots"].as_array().unwrap().len(), 2);
}

#[test]
fn stop_takes_the_devices_down_and_commits() {
    let served = serve(1);
    let paths = RunPaths::new(served.run_dir(), "t").unwrap();
    assert!(paths.map().exists());
    let mut stop = served.cowrt(&["stop", "t"]);
    assert_eq!(
        stdout(&mut stop, 0),
        "stopped t (2 devices removed, store committed)\n"
    );
    assert!(served.daemon.is_stopped());
    assert!(served.daemon.devices().is_empty());
    assert!(!paths.socket().exists() && !paths.map().exists() && !paths.pid().exists());
    let mut again = served.cowrt(&["stop", "t"]);
    assert!(stderr(&mut again, 2).starts_with("cowrt: no daemon serves 't'"));
}

#[cfg(not(feature = "ublk"))]
#[test]
fn serve_without_ublk_names_the_build_that_has_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Command::cargo_bin("cowrt").unwrap();
    serve.args([
        "serve",
        "--store",
        "cow.img",
        "--origin",
        "origin.img",
        "t",
        "--run-dir",
    ]);
    serve.arg(dir.path());
    let output = serve.assert().code(2);
    assert_eq!(
        String::from_utf8(output.get_output().stderr.clone()).unwrap(),
        "cowrt: serve: this cowrt was built without the ublk transport; build one with \
         `cargo xtask runtime` (target/release/cowrt)\n"
    );
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}
