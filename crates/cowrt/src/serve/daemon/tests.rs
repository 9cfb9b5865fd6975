use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cowengine::{CreateOptions, Engine};
use cowfmt::crashdev::{CrashDev, CrashLog};
use cowfmt::MemDev;

use super::*;
use crate::serve::client;
use crate::serve::host::MemHost;
use crate::target::BlockTarget;

const CB: u64 = 4096;
const ORIGIN_CHUNKS: u64 = 64;
const COW_CHUNKS: u64 = 512;
const COW: usize = 0;
const ORIGIN: usize = 1;

/// Chunk c of the origin holds bytes `c + 1`.
fn origin_pattern() -> Vec<u8> {
    (0..ORIGIN_CHUNKS * CB)
        .map(|i| (i / CB + 1) as u8)
        .collect()
}

/// A journaled store with `snapshots` snapshots on recording crash devices.
fn crash_engine(snapshots: u32) -> (CrashLog, Engine<CrashDev>) {
    let log = CrashLog::new();
    let cow = log.device("cow.img", vec![0; (COW_CHUNKS * CB) as usize]);
    let origin = log.device("origin.img", origin_pattern());
    let options = CreateOptions {
        chunk_sectors: CB / 512,
        journal_chunks: 80,
    };
    let engine = Engine::create(cow, origin, &options).unwrap();
    assert!(engine.commit_mode().journaled(), "{}", engine.commit_mode());
    for _ in 0..snapshots {
        engine.create_snapshot(None).unwrap();
    }
    engine.commit().unwrap();
    (log, engine)
}

/// The store as a power cut now would leave it (every write not yet synced
/// lost), opened again: the journal is replayed.
fn after_power_cut(log: &CrashLog) -> Engine<MemDev> {
    let at = log.len();
    let image = |device| log.image(device, at, &log.unsynced(device, at)).unwrap();
    let cow = MemDev::from_bytes("cow.img", image(COW));
    let origin = MemDev::from_bytes("origin.img", image(ORIGIN));
    Engine::open(cow, origin).unwrap()
}

/// The power-cut image of the store, replayed by the engine on an image
/// file, has no error finding for cowcheck's checker.
fn assert_checks_clean(log: &CrashLog) {
    use cowfmt::device::{Access, Device};
    let dir = tempfile::tempdir().unwrap();
    let at = log.len();
    let write = |device, name: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            log.image(device, at, &log.unsynced(device, at)).unwrap(),
        )
        .unwrap();
        path
    };
    let (cow, origin) = (write(COW, "cow.img"), write(ORIGIN, "origin.img"));
    let engine = Engine::open(
        Device::open(&cow, Access::ReadWrite).unwrap(),
        Device::open(&origin, Access::ReadWrite).unwrap(),
    )
    .unwrap();
    drop(engine);
    let options = cowfmt::shared::check::CheckOptions {
        kind_forced: true,
        origin_bytes: Some(ORIGIN_CHUNKS * CB),
        ..Default::default()
    };
    let report =
        cowfmt::shared::check::check(&Device::open(&cow, Access::ReadOnly).unwrap(), &options)
            .unwrap();
    assert!(!report.has_errors(), "{:?}", report.findings);
}

struct Served {
    dir: tempfile::TempDir,
    host: Arc<MemHost>,
    daemon: Arc<Daemon<CrashDev>>,
    out: String,
}

/// Drops `daemon` as a killed process would leave it: gone, with nothing
/// answering on its socket any more (its socket thread may hold the last
/// reference for a moment after an answer, and close the socket only then).
fn die(daemon: Arc<Daemon<CrashDev>>, paths: &RunPaths) {
    drop(daemon);
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(paths.socket()).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "a dropped daemon still answers on its socket"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn config(dir: &tempfile::TempDir, commit_interval: Option<Duration>) -> DaemonConfig {
    DaemonConfig {
        paths: RunPaths::new(dir.path(), "t").unwrap(),
        store: "cow.img".into(),
        origin: "origin.img".into(),
        queues: 1,
        commit_interval,
        recover: None,
        pid: Some(std::process::id()),
        log: crate::log::Log::discard(),
    }
}

fn serve(engine: Engine<CrashDev>, commit_interval: Option<Duration>) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(MemHost::new());
    let mut out = Vec::new();
    let daemon = Daemon::start(
        engine,
        Arc::clone(&host) as Arc<dyn DeviceHost>,
        config(&dir, commit_interval),
        &mut out,
    )
    .unwrap();
    Served {
        dir,
        host,
        daemon,
        out: String::from_utf8(out).unwrap(),
    }
}

impl Served {
    fn paths(&self) -> RunPaths {
        RunPaths::new(self.dir.path(), "t").unwrap()
    }

    /// Sends `line` over the socket, as `cowrt message` does.
    fn send(&self, line: &str) -> Answer {
        client::send(&self.paths(), &line.parse().unwrap()).unwrap()
    }

    fn device(&self, name: &str) -> Arc<dyn BlockTarget> {
        self.host
            .target(name)
            .unwrap_or_else(|| panic!("no device {name}"))
    }

    fn map(&self) -> DeviceMap {
        DeviceMap::read(&self.paths().map()).unwrap()
    }
}

fn done(text: &str) -> Answer {
    Answer::Done(text.to_string())
}

/// The snapshot's view of `len` bytes at `offset`.
fn read<D: BlockDev>(engine: &Engine<D>, id: u32, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    engine.snapshot_read(id, offset, &mut buf).unwrap();
    buf
}

#[test]
fn socket_messages_bring_snapshot_devices_up_and_down() {
    let (_log, engine) = crash_engine(1);
    let served = serve(engine, None);
    assert_eq!(
        served.out,
        "READY t /dev/mem0\nREADY t-s0 /dev/mem1\nSERVING t\n"
    );
    assert_eq!(served.paths().read_pid().unwrap(), Some(std::process::id()));
    assert_eq!(served.map().pid, Some(std::process::id()));

    served.device("t").write(0, &[9; 4096], false).unwrap();
    assert_eq!(served.send("create"), done("created 1 /dev/mem2"));
    assert_eq!(served.host.names(), ["t", "t-s0", "t-s1"]);
    let mut seen = vec![0; 4096];
    served.device("t-s1").read(0, &mut seen).unwrap();
    assert_eq!(seen, [9; 4096], "snapshot 1 sees the origin as it was");
    served.device("t-s0").read(0, &mut seen).unwrap();
    assert_eq!(seen, [1; 4096], "snapshot 0 still sees the old origin");

    assert_eq!(served.send("create_subsnap 0"), done("created 2 /dev/mem3"));
    assert_eq!(served.send("detach 1"), done("detached 1"));
    assert_eq!(served.host.names(), ["t", "t-s0", "t-s2"]);
    let names: Vec<String> = served.map().devices.into_iter().map(|d| d.name).collect();
    assert_eq!(names, ["t", "t-s0", "t-s2"]);
    assert_eq!(served.send("attach 1"), done("attached 1 /dev/mem2"));
    assert_eq!(served.map().device(Some(1)).unwrap().id, 2);

    let answer = served.send("status");
    assert_eq!(
        answer,
        done(&served.daemon.status().unwrap().status.to_string())
    );
    let Answer::Done(line) = answer else {
        unreachable!()
    };
    assert!(line.starts_with("5 0 2 4096 "), "{line}");
    assert!(line.ends_with(" 3 0 1 2"), "{line}");

    let Answer::Done(json) = served.send("status json") else {
        panic!("status json refused")
    };
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["name"], "t");
    assert_eq!(json["journal"]["state"], "journaled");
    assert_eq!(json["devices"].as_array().unwrap().len(), 4);
    assert_eq!(json["devices"][2]["path"], "/dev/mem2");
    assert_eq!(json["snapshots"][0]["chunks"], 1);
    assert_eq!(
        json["snapshots"][0]["exclusive_chunks"], 0,
        "snapshot 2 (of 0) shares its chunk"
    );
    assert!(json["free_chunks"].as_u64().unwrap() > 300);

    assert_eq!(
        served.send("stop"),
        done("stopped t (4 devices removed, store committed)")
    );
    assert!(served.host.names().is_empty());
    assert!(!served.paths().socket().exists());
    assert!(!served.paths().map().exists());
    assert!(!served.paths().pid().exists());
    assert!(served.daemon.is_stopped());
}

#[test]
fn delete_takes_the_device_down_before_the_snapshot_goes() {
    let (_log, engine) = crash_engine(2);
    let served = serve(engine, None);
    served.device("t").write(0, &[9; 8192], false).unwrap();
    let engine = Arc::clone(served.daemon.engine());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    served.host.on_remove(move |device| {
        record
            .lock()
            .unwrap()
            .push((device.name.clone(), engine.snapmask()));
    });
    assert_eq!(served.send("delete 0"), done("deleted 0 (0 chunks freed)"));
    assert_eq!(*seen.lock().unwrap(), [("t-s0".to_string(), 0b11)]);
    assert_eq!(served.daemon.engine().snapmask(), 0b10);
    assert_eq!(served.host.names(), ["t", "t-s1"]);

    assert_eq!(served.send("detach 1"), done("detached 1"));
    assert_eq!(served.send("delete 1"), done("deleted 1 (2 chunks freed)"));
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "a detached snapshot has no device to take down"
    );
    assert_eq!(served.daemon.engine().snapmask(), 0);
}

#[test]
fn refused_requests_change_nothing() {
    let (_log, engine) = crash_engine(2);
    let served = serve(engine, None);
    served.device("t").write(0, &[9; 4096], false).unwrap();
    assert_eq!(served.send("detach 1"), done("detached 1"));
    let status = served.daemon.status().unwrap();
    let map = served.map();
    let refused = [
        (
            "delete 7",
            "delete 7: snapshot 7 does not exist (snapshots: 0, 1)",
        ),
        ("attach 0", "attach 0: snapshot 0 is already attached"),
        ("detach 1", "detach 1: snapshot 1 is not attached"),
        (
            "create_subsnap 5",
            "create_subsnap 5: snapshot 5 does not exist (snapshots: 0, 1)",
        ),
    ];
    for (line, text) in refused {
        assert_eq!(
            served.send(line),
            Answer::Refused(text.to_string()),
            "{line}"
        );
    }
    let garbage = [
        (
            "frobnicate",
            "unknown message 'frobnicate'; expected one of: create",
        ),
        ("create 3", "'create' takes no argument; unexpected '3'"),
        (
            "stop please",
            "'stop' takes no argument; unexpected 'please'",
        ),
    ];
    for (line, start) in garbage {
        let socket = served.paths().socket();
        let stream = UnixStream::connect(&socket).unwrap();
        writeln!(&stream, "{line}").unwrap();
        let mut reply = String::new();
        BufReader::new(&stream).read_line(&mut reply).unwrap();
        assert!(
            reply.starts_with(&format!("error {start}")),
            "{line}: {reply}"
        );
    }

    served.host.refuse_adds(Some("no more ublk devices"));
    assert_eq!(
        served.send("create"),
        Answer::Refused(
            "create: t-s2: no more ublk devices; snapshot 2 was deleted again".to_string()
        )
    );
    assert_eq!(
        served.send("attach 1"),
        Answer::Refused("attach 1: t-s1: no more ublk devices".to_string())
    );
    served.host.refuse_adds(None);

    let after = served.daemon.status().unwrap();
    assert_eq!(after.status.snapshots, status.status.snapshots);
    assert_eq!(after.status.new_snapshot, status.status.new_snapshot);
    assert_eq!(after.status.error, 0);
    assert_eq!(after.devices, status.devices);
    assert_eq!(served.map(), map);
    assert_eq!(served.daemon.engine().snapmask(), 0b11);
    assert_eq!(served.host.names(), ["t", "t-s0"]);
    assert!(!served.daemon.is_stopped());
}

/// Writer `w` writes chunk `w * SLOTS + i % SLOTS` of the origin at its step
/// `i`, holding `(w, i)`; its region before any step holds the origin pattern.
const SLOTS: u64 = 8;

fn step_chunk(writer: u64, step: u64) -> Vec<u8> {
    let mut chunk = vec![0xee; CB as usize];
    chunk[..8].copy_from_slice(&writer.to_le_bytes());
    chunk[8..16].copy_from_slice(&step.to_le_bytes());
    chunk
}

/// Writer `w`'s region after its first `steps` steps.
fn region_after(writer: u64, steps: u64) -> Vec<u8> {
    let pattern = origin_pattern();
    (0..SLOTS)
        .flat_map(|slot| {
            let chunk = writer * SLOTS + slot;
            match (0..steps).rev().find(|step| step % SLOTS == slot) {
                Some(step) => step_chunk(writer, step),
                None => pattern[(chunk * CB) as usize..((chunk + 1) * CB) as usize].to_vec(),
            }
        })
        .collect()
}

#[test]
fn each_snapshot_equals_the_origin_at_its_create_under_concurrent_writes() {
    const WRITERS: u64 = 3;
    const STEPS: u64 = 120;
    let (_log, engine) = crash_engine(0);
    let served = serve(engine, None);
    let origin = served.device("t");
    let started: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (origin, started, acked) = (
                Arc::clone(&origin),
                Arc::clone(&started),
                Arc::clone(&acked),
            );
            std::thread::spawn(move || {
                for step in 0..STEPS {
                    started[w as usize].store(step + 1, Ordering::SeqCst);
                    let chunk = w * SLOTS + step % SLOTS;
                    origin
                        .write(chunk * CB, &step_chunk(w, step), false)
                        .unwrap();
                    acked[w as usize].store(step + 1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let mut bounds = Vec::new();
    while bounds.len() < 6 {
        let low: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
        let answer = served
            .daemon
            .handle(Request::Message(crate::control::Message::Create));
        let high: Vec<u64> = started.iter().map(|s| s.load(Ordering::SeqCst)).collect();
        assert_eq!(
            answer,
            done(&format!(
                "created {} /dev/mem{}",
                bounds.len(),
                bounds.len() + 1
            ))
        );
        bounds.push((low, high));
        std::thread::sleep(Duration::from_millis(3));
    }
    for writer in writers {
        writer.join().unwrap();
    }
    let engine = served.daemon.engine();
    for (id, (low, high)) in bounds.iter().enumerate() {
        for w in 0..WRITERS {
            let seen = read(engine, id as u32, w * SLOTS * CB, (SLOTS * CB) as usize);
            let cut =
                (low[w as usize]..=high[w as usize]).find(|&steps| region_after(w, steps) == seen);
            assert!(
                cut.is_some(),
                "snapshot {id}, writer {w}: not the origin after any of its steps {}..={}",
                low[w as usize],
                high[w as usize]
            );
        }
    }
    let mut now = vec![0; (WRITERS * SLOTS * CB) as usize];
    origin.read(0, &mut now).unwrap();
    let all: Vec<u8> = (0..WRITERS).flat_map(|w| region_after(w, STEPS)).collect();
    assert_eq!(now, all);
}

#[test]
fn the_periodic_commit_makes_snapshot_writes_durable_without_a_flush() {
    let (log, engine) = crash_engine(1);
    let served = serve(engine, Some(Duration::from_millis(20)));
    served.device("t-s0").write(CB, &[7; 4096], false).unwrap();
    let start = Instant::now();
    loop {
        if read(&after_power_cut(&log), 0, CB, 4096) == [7; 4096] {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no periodic commit made the write durable"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn without_a_flush_a_power_cut_may_lose_a_snapshot_write_but_stop_commits_it() {
    let (log, engine) = crash_engine(1);
    let served = serve(engine, None);
    served.device("t-s0").write(CB, &[7; 4096], false).unwrap();
    assert_eq!(
        read(&after_power_cut(&log), 0, CB, 4096),
        [2; 4096],
        "nothing committed the write yet"
    );
    assert_eq!(
        client::stop(&served.paths()).unwrap(),
        done("stopped t (2 devices removed, store committed)")
    );
    assert_eq!(read(&after_power_cut(&log), 0, CB, 4096), [7; 4096]);
}

#[test]
fn a_daemon_that_dies_keeps_every_flushed_write_and_its_snapshots() {
    let (log, engine) = crash_engine(1);
    let served = serve(engine, None);
    let (origin, snapshot) = (served.device("t"), served.device("t-s0"));
    origin.write(0, &[0xa1; 8192], false).unwrap();
    snapshot.write(4 * CB, &[0xb2; 4096], false).unwrap();
    origin.flush().unwrap();
    snapshot.flush().unwrap();
    origin.write(10 * CB, &[0xc3; 4096], false).unwrap();
    snapshot.write(5 * CB, &[0xd4; 4096], false).unwrap();
    // The power cut comes now, with the daemon and its engine still up
    // (a dropped engine would checkpoint).
    let replayed = after_power_cut(&log);
    assert_checks_clean(&log);
    let map = served.map();
    let paths = served.paths();
    die(served.daemon, &paths);

    let mut buf = vec![0; 8192];
    replayed.origin_read(0, &mut buf).unwrap();
    assert_eq!(buf, [0xa1; 8192], "flushed origin write kept");
    assert_eq!(read(&replayed, 0, 0, 8192), origin_pattern()[..8192]);
    assert_eq!(
        read(&replayed, 0, 4 * CB, 4096),
        [0xb2; 4096],
        "flushed snapshot write kept"
    );
    assert_eq!(
        read(&replayed, 0, 10 * CB, 4096),
        origin_pattern()[(10 * CB) as usize..(11 * CB) as usize],
        "the unflushed origin write copied out first: the snapshot still sees the old data"
    );
    assert_eq!(paths.read_pid().unwrap(), Some(std::process::id()));
    assert_eq!(
        DeviceMap::read(&paths.map()).unwrap(),
        map,
        "the map is left for --recover"
    );
    assert!(paths.socket().exists());
}

#[test]
fn recover_takes_back_the_devices_of_the_map_only() {
    let (log, engine) = crash_engine(2);
    let served = serve(engine, None);
    assert_eq!(served.send("detach 0"), done("detached 0"));
    let map = served.map();
    let paths = served.paths();
    let dir = served.dir;
    die(served.daemon, &paths);

    let at = log.len();
    let reopen = |device| log.image(device, at, &[]).unwrap();
    let relog = CrashLog::new();
    let engine = Engine::open(
        relog.device("cow.img", reopen(COW)),
        relog.device("origin.img", reopen(ORIGIN)),
    )
    .unwrap();
    let host = Arc::new(MemHost::new());
    let mut out = Vec::new();
    let config = DaemonConfig {
        recover: Some(map.clone()),
        ..config(&dir, None)
    };
    let daemon = Daemon::start(
        engine,
        Arc::clone(&host) as Arc<dyn DeviceHost>,
        config,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!(
            "READY t {}\nREADY t-s1 {}\nSERVING t\n",
            map.device(None).unwrap().path.display(),
            map.device(Some(1)).unwrap().path.display()
        )
    );
    assert_eq!(daemon.devices(), map.devices);
    assert_eq!(host.names(), ["t", "t-s1"]);
    assert_eq!(daemon.stop().unwrap().removed, 2);
}

#[test]
fn recover_refuses_another_store_or_origin_than_the_map_names() {
    let (_log, engine) = crash_engine(1);
    let served = serve(engine, None);
    let map = served.map();
    let paths = served.paths();
    let dir = served.dir;
    die(served.daemon, &paths);
    let other = dir.path().join("other.img");
    std::fs::write(&other, b"x").unwrap();
    for (store, origin) in [
        (other.clone(), "origin.img".into()),
        ("cow.img".into(), other),
    ] {
        let (_relog, engine) = crash_engine(1);
        let host = Arc::new(MemHost::new());
        let mut out = Vec::new();
        let config = DaemonConfig {
            recover: Some(map.clone()),
            store: store.clone(),
            origin: origin.clone(),
            ..config(&dir, None)
        };
        let error = Daemon::start(
            engine,
            Arc::clone(&host) as Arc<dyn DeviceHost>,
            config,
            &mut out,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            format!(
                "{}: the devices were served for store cow.img and origin origin.img, not store {} and origin {}; give the paths of NAME.json to --recover",
                paths.map().display(),
                store.display(),
                origin.display()
            )
        );
        assert!(out.is_empty());
        assert!(host.names().is_empty(), "no device taken over");
        assert_eq!(DeviceMap::read(&paths.map()).unwrap(), map, "map kept");
        assert!(paths.socket().exists(), "socket left as it was");
    }
}

#[test]
fn the_map_compares_canonical_paths() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("cow.img");
    let origin = dir.path().join("origin.img");
    std::fs::write(&store, b"c").unwrap();
    std::fs::write(&origin, b"o").unwrap();
    std::os::unix::fs::symlink(&store, dir.path().join("link")).unwrap();
    let map = DeviceMap {
        name: "t".to_string(),
        store: store.clone(),
        origin: origin.clone(),
        pid: None,
        devices: Vec::new(),
    };
    assert!(map.serves(&dir.path().join("link"), &dir.path().join("./origin.img")));
    assert!(!map.serves(&origin, &origin));
    assert!(!map.serves(&store, &store));
}

#[test]
fn a_stop_that_cannot_take_a_device_down_keeps_it_in_the_map() {
    let (_log, engine) = crash_engine(2);
    let served = serve(engine, None);
    let paths = served.paths();
    served.host.refuse_removes(Some("t-s1"));
    let kept = served.map().device(Some(1)).unwrap().clone();
    let Answer::Refused(text) = served.send("stop") else {
        panic!("a stop with a device left up is not done");
    };
    assert_eq!(
        text,
        format!(
            "stopped t with errors (store committed): t-s1: the device is busy; {} keeps the devices still up: take them back with `cowrt serve --recover`",
            paths.map().display()
        )
    );
    assert_eq!(served.host.names(), ["t-s1"]);
    let map = DeviceMap::read(&paths.map()).expect("the map is kept");
    assert_eq!(map.devices, [kept], "only the device still up");
    assert!(!paths.socket().exists());
    assert_eq!(paths.read_pid().unwrap(), None);
}

#[test]
fn a_second_daemon_on_the_same_name_is_refused() {
    let (_log, engine) = crash_engine(0);
    let served = serve(engine, None);
    let (_log2, other) = crash_engine(0);
    let mut out = Vec::new();
    let error = Daemon::start(
        other,
        Arc::new(MemHost::new()),
        config(&served.dir, None),
        &mut out,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        format!(
            "'t' is served already ({} answers); stop it first with `cowrt stop t`",
            served.paths().socket().display()
        )
    );
    assert!(out.is_empty());
    assert_eq!(served.send("create"), done("created 0 /dev/mem1"));
}

#[test]
fn flush_of_a_store_without_snapshots() {
    let (_log, engine) = crash_engine(0);
    let served = serve(engine, None);
    let origin = served.device("t");
    origin.flush().unwrap();
    origin.write(0, &[1; 4096], true).unwrap();
    origin.flush().unwrap();
}
