//! The daemon of one shared store: its devices (the origin, and one per
//! attached snapshot) on a [`DeviceHost`], its control socket, its periodic
//! commit, and its stop.
//!
//! - Start: the origin's device, then one per snapshot (with `--recover`, the
//!   devices `NAME.json` names, re-attached by id), a `READY NAME DEVICE` line
//!   for each; then `NAME.json` and `NAME.pid`, the socket and the commit
//!   thread, and `SERVING NAME`.
//! - Requests are served one at a time, in the order they arrive, on the
//!   socket's thread; a slow client is dropped after [`CLIENT_TIMEOUT`].
//! - The commit thread commits every `commit_interval`: what a crash can lose
//!   is bounded by it (plus what FLUSH and FUA already made durable).
//! - Stop (the `stop` request, SIGTERM): every device down (snapshots first),
//!   commit and checkpoint (the journal is left empty), the socket, map and pid
//!   file removed; a device that cannot be taken down stays in the map, for
//!   `serve --recover`. A daemon dropped without stop leaves everything as a killed
//!   one does.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use cowengine::Engine;
use cowfmt::blockdev::BlockDev;
use serde::Serialize;

use super::host::{DeviceHost, DeviceInfo, DeviceSpec};
use super::protocol::{Answer, Request};
use super::rundir::{DeviceMap, MappedDevice, RunPaths};
use super::ServeError;
use crate::control::controller::SnapshotDevices;
use crate::control::{Controller, Reply, Status};
use crate::front::{OriginTarget, SnapshotTarget};
use crate::log::Log;

/// How long the daemon waits for a client's request line.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a daemon is set up.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The run-directory files.
    pub paths: RunPaths,
    /// The COW device, as given (for the map).
    pub store: PathBuf,
    /// The origin, as given (for the map).
    pub origin: PathBuf,
    /// Queues per device.
    pub queues: u16,
    /// Commit at least this often; `None`: only on FLUSH, FUA and requests.
    pub commit_interval: Option<Duration>,
    /// Re-attach to the devices of this map (left by a daemon that died).
    pub recover: Option<DeviceMap>,
    /// The daemon's process id, for `NAME.pid` and the map (`None`: a daemon
    /// served inside another program, such as a test, writes no pid file).
    pub pid: Option<u32>,
    /// Where the daemon's own messages go (a failed periodic commit).
    pub log: Log,
}

/// The status as `status json` gives it: the counts and the devices.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The store's name.
    pub name: String,
    /// The counts.
    #[serde(flatten)]
    pub status: Status,
    /// The devices that are up.
    pub devices: Vec<MappedDevice>,
}

/// What stopping did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopReport {
    /// Devices taken down.
    pub removed: usize,
    /// Devices that could not be taken down, and why.
    pub failures: Vec<String>,
}

/// Stop state: requested, finished.
#[derive(Debug, Default)]
struct Stopping {
    done: Option<Result<StopReport, String>>,
}

/// One served store.
pub struct Daemon<D: BlockDev + 'static> {
    config: DaemonConfig,
    engine: Arc<Engine<D>>,
    controller: Controller<D>,
    host: Arc<dyn DeviceHost>,
    /// Devices that are up, by snapshot id (`None`: the origin).
    devices: Mutex<BTreeMap<Option<u32>, DeviceInfo>>,
    stopping: Mutex<Stopping>,
    stopped: Condvar,
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl<D: BlockDev + 'static> std::fmt::Debug for Daemon<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("name", &self.config.paths.name())
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl<D: BlockDev + 'static> Daemon<D> {
    /// Serves `engine` on `host` as `config` says; writes the `READY` and
    /// `SERVING` lines to `out` as the devices come up. Refuses a name whose
    /// socket answers (a daemon serves it already), and a map to recover that
    /// names another store or origin.
    pub fn start(
        engine: Engine<D>,
        host: Arc<dyn DeviceHost>,
        config: DaemonConfig,
        out: &mut dyn Write,
    ) -> Result<Arc<Self>, ServeError> {
        if let Some(map) = &config.recover {
            check_recover(map, &config.paths, &config.store, &config.origin)?;
        }
        let listener = bind(&config.paths)?;
        let engine = Arc::new(engine);
        let daemon = Arc::new(Daemon {
            controller: Controller::new(Arc::clone(&engine)),
            engine,
            host,
            config,
            devices: Mutex::new(BTreeMap::new()),
            stopping: Mutex::new(Stopping::default()),
            stopped: Condvar::new(),
            listener: Mutex::new(None),
        });
        let serving = daemon.bring_up(out).and_then(|()| {
            daemon.write_map()?;
            if let Some(pid) = daemon.config.pid {
                RunPaths::write_atomic(&daemon.config.paths.pid(), &format!("{pid}\n"))?;
            }
            let listening = spawn_listener(Arc::downgrade(&daemon), listener)?;
            *lock(&daemon.listener) = Some(listening);
            if let Some(interval) = daemon.config.commit_interval {
                spawn_committer(Arc::downgrade(&daemon), interval)?;
            }
            let name = daemon.config.paths.name();
            writeln!(out, "SERVING {name}")
                .and_then(|()| out.flush())
                .map_err(|source| ServeError::Io {
                    path: PathBuf::from("stdout"),
                    action: "cannot write",
                    source,
                })
        });
        if let Err(e) = serving {
            daemon.take_all_down();
            daemon.config.paths.remove_files();
            return Err(e);
        }
        Ok(daemon)
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine<D>> {
        &self.engine
    }

    /// The devices that are up, origin first.
    pub fn devices(&self) -> Vec<MappedDevice> {
        lock(&self.devices)
            .iter()
            .map(|(&snapshot, info)| MappedDevice {
                name: info.name.clone(),
                snapshot,
                id: info.id,
                path: info.path.clone(),
            })
            .collect()
    }

    fn device_name(&self, snapshot: Option<u32>) -> String {
        let name = self.config.paths.name();
        match snapshot {
            None => name.to_string(),
            Some(id) => format!("{name}-s{id}"),
        }
    }

    /// The device of the origin and of each snapshot to serve at start.
    fn bring_up(&self, out: &mut dyn Write) -> Result<(), ServeError> {
        let mask = self.engine.snapmask();
        let existing = (0..64u32).filter(|id| mask & (1 << id) != 0);
        let snapshots: Vec<u32> = match &self.config.recover {
            None => existing.collect(),
            Some(map) => existing
                .filter(|&id| map.device(Some(id)).is_some())
                .collect(),
        };
        for snapshot in std::iter::once(None).chain(snapshots.into_iter().map(Some)) {
            let info = self.add_device(snapshot)?;
            if let Some(id) = snapshot {
                self.controller.mark_attached(id);
            }
            writeln!(out, "READY {} {}", info.name, info.path.display())
                .and_then(|()| out.flush())
                .map_err(|source| ServeError::Io {
                    path: PathBuf::from("stdout"),
                    action: "cannot write",
                    source,
                })?;
        }
        Ok(())
    }

    /// Brings up the device of the origin (`None`) or of snapshot `id`.
    fn add_device(&self, snapshot: Option<u32>) -> Result<DeviceInfo, ServeError> {
        let target: Arc<dyn crate::target::BlockTarget> = match snapshot {
            None => Arc::new(OriginTarget::new(Arc::clone(&self.engine))),
            Some(id) => Arc::new(SnapshotTarget::new(Arc::clone(&self.engine), id)?),
        };
        let recover_id = self
            .config
            .recover
            .as_ref()
            .and_then(|map| map.device(snapshot))
            .map(|device| device.id);
        let spec = DeviceSpec {
            name: self.device_name(snapshot),
            queues: self.config.queues,
            recover_id,
        };
        let info = self.host.add(&spec, target)?;
        lock(&self.devices).insert(snapshot, info.clone());
        Ok(info)
    }

    fn remove_device(&self, snapshot: Option<u32>) -> Result<(), ServeError> {
        let Some(info) = lock(&self.devices).get(&snapshot).cloned() else {
            return Ok(());
        };
        self.host.remove(&info)?;
        lock(&self.devices).remove(&snapshot);
        Ok(())
    }

    fn write_map(&self) -> Result<(), ServeError> {
        let map = DeviceMap {
            name: self.config.paths.name().to_string(),
            store: self.config.store.clone(),
            origin: self.config.origin.clone(),
            pid: self.config.pid,
            devices: self.devices(),
        };
        Ok(map.write(&self.config.paths.map())?)
    }

    /// Serves one request; the answer to send back.
    pub fn handle(&self, request: Request) -> Answer {
        match request {
            Request::Message(message) => {
                let mut devices = HostDevices { daemon: self };
                match self.controller.handle_with(message, &mut devices) {
                    Ok(reply) => Answer::Done(reply.to_string()),
                    Err(e) => Answer::Refused(e.to_string()),
                }
            }
            Request::Status { json } => match self.status() {
                Ok(report) if json => match serde_json::to_string(&report) {
                    Ok(text) => Answer::Done(text),
                    Err(e) => Answer::Refused(format!("status: {e}")),
                },
                Ok(report) => Answer::Done(report.status.to_string()),
                Err(e) => Answer::Refused(e),
            },
            Request::Stop => match self.stop() {
                Ok(report) if report.failures.is_empty() => Answer::Done(format!(
                    "stopped {} ({} devices removed, store committed)",
                    self.config.paths.name(),
                    report.removed
                )),
                Ok(report) => Answer::Refused(format!(
                    "stopped {} with errors (store committed): {}; {} keeps the devices still up: take them back with `cowrt serve --recover`",
                    self.config.paths.name(),
                    report.failures.join("; "),
                    self.config.paths.map().display()
                )),
                Err(e) => Answer::Refused(e),
            },
        }
    }

    /// The status and the devices.
    pub fn status(&self) -> Result<StatusReport, String> {
        match self.controller.handle(crate::control::Message::Status) {
            Ok(Reply::Status(status)) => Ok(StatusReport {
                name: self.config.paths.name().to_string(),
                status,
                devices: self.devices(),
            }),
            Ok(other) => Err(format!("status answered '{other}'")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Commits what the devices wrote so far (the periodic commit).
    pub fn commit(&self) -> Result<(), String> {
        self.controller.commit().map_err(|e| e.to_string())
    }

    /// Stops serving: every device down (snapshots first), commit and
    /// checkpoint, the socket, map and pid file removed. Devices that could
    /// not be taken down stay in the map (the socket and pid file go), for
    /// `serve --recover`. A second call waits for the first and returns its
    /// result.
    pub fn stop(&self) -> Result<StopReport, String> {
        let mut stopping = lock(&self.stopping);
        if let Some(done) = &stopping.done {
            return done.clone();
        }
        let (removed, mut failures) = self.take_all_down();
        let failures_left = !failures.is_empty();
        if failures_left {
            // The map keeps the devices still up, for `serve --recover`.
            if let Err(e) = self.write_map() {
                failures.push(format!("the device map could not be kept: {e}"));
            }
        }
        let committed = self
            .engine
            .commit()
            .and_then(|()| self.engine.checkpoint())
            .map_err(|e| format!("stop: the store could not be committed: {e}"));
        let done = committed.map(|()| StopReport { removed, failures });
        stopping.done = Some(done.clone());
        self.stopped.notify_all();
        drop(stopping);
        // Wake the socket's thread (unless this request came through it): it
        // ends once it sees the daemon stopped.
        let _ = UnixStream::connect(self.config.paths.socket());
        match failures_left {
            false => self.config.paths.remove_files(),
            true => {
                let _ = std::fs::remove_file(self.config.paths.socket());
                let _ = std::fs::remove_file(self.config.paths.pid());
            }
        }
        done
    }

    /// Takes every device down, snapshots first; returns how many went down
    /// and why the others did not.
    fn take_all_down(&self) -> (usize, Vec<String>) {
        let snapshots: Vec<Option<u32>> = lock(&self.devices).keys().rev().copied().collect();
        let mut removed = 0;
        let mut failures = Vec::new();
        for snapshot in snapshots {
            match self.remove_device(snapshot) {
                Ok(()) => removed += 1,
                Err(e) => failures.push(e.to_string()),
            }
        }
        (removed, failures)
    }

    /// Blocks until the daemon is stopped; returns the stop's result.
    pub fn wait(&self) -> Result<StopReport, String> {
        let mut stopping = lock(&self.stopping);
        loop {
            if let Some(done) = &stopping.done {
                return done.clone();
            }
            stopping = self
                .stopped
                .wait(stopping)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Blocks until the daemon is stopped and its socket's thread has sent
    /// its last answer (the `stop` request's); returns the stop's result. A
    /// process must call this, not [`Daemon::wait`], before it exits.
    pub fn wait_and_close(&self) -> Result<StopReport, String> {
        let stopped = self.wait();
        let listener = lock(&self.listener).take();
        if let Some(listener) = listener {
            let start = std::time::Instant::now();
            while !listener.is_finished() && start.elapsed() < CLIENT_TIMEOUT {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        stopped
    }

    /// Whether the daemon was stopped.
    pub fn is_stopped(&self) -> bool {
        lock(&self.stopping).done.is_some()
    }

    /// Waits up to `timeout` for the stop; true when it happened.
    fn wait_stopped(&self, timeout: Duration) -> bool {
        let stopping = lock(&self.stopping);
        let (stopping, _) = self
            .stopped
            .wait_timeout_while(stopping, timeout, |s| s.done.is_none())
            .unwrap_or_else(|e| e.into_inner());
        stopping.done.is_some()
    }
}

impl<D: BlockDev + 'static> Drop for Daemon<D> {
    /// Wakes the socket's thread so that it sees the daemon is gone, and waits
    /// for it to close the socket (unless this is that thread).
    fn drop(&mut self) {
        let listener = lock(&self.listener).take();
        if let Some(listener) = listener {
            let elsewhere = listener.thread().id() != std::thread::current().id();
            if elsewhere && UnixStream::connect(self.config.paths.socket()).is_ok() {
                let _ = listener.join();
            }
        }
    }
}

/// The controller's way to bring snapshot devices up and down on the host,
/// keeping `NAME.json` current.
struct HostDevices<'a, D: BlockDev + 'static> {
    daemon: &'a Daemon<D>,
}

impl<D: BlockDev + 'static> SnapshotDevices for HostDevices<'_, D> {
    fn attach(&mut self, id: u32) -> Result<PathBuf, String> {
        let info = self
            .daemon
            .add_device(Some(id))
            .map_err(|e| e.to_string())?;
        self.daemon.write_map().map_err(|e| e.to_string())?;
        Ok(info.path)
    }

    fn detach(&mut self, id: u32) -> Result<(), String> {
        self.daemon
            .remove_device(Some(id))
            .map_err(|e| e.to_string())?;
        self.daemon.write_map().map_err(|e| e.to_string())
    }
}

/// Refuses to recover the devices of `map` for another store or origin than
/// the ones it was written for.
pub fn check_recover(
    map: &DeviceMap,
    paths: &RunPaths,
    store: &std::path::Path,
    origin: &std::path::Path,
) -> Result<(), ServeError> {
    match map.serves(store, origin) {
        true => Ok(()),
        false => Err(ServeError::RecoverMismatch {
            map: paths.map(),
            map_store: map.store.clone(),
            map_origin: map.origin.clone(),
            store: store.to_path_buf(),
            origin: origin.to_path_buf(),
        }),
    }
}

/// Binds `NAME.sock`, refusing when a daemon answers on it and replacing a
/// socket file a dead daemon left.
fn bind(paths: &RunPaths) -> Result<UnixListener, ServeError> {
    paths.create_dir()?;
    let socket = paths.socket();
    if socket.exists() {
        if UnixStream::connect(&socket).is_ok() {
            return Err(ServeError::Served {
                name: paths.name().to_string(),
                socket,
            });
        }
        let _ = std::fs::remove_file(&socket);
    }
    UnixListener::bind(&socket).map_err(|source| ServeError::Io {
        path: socket,
        action: "cannot listen on the control socket",
        source,
    })
}

fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, ServeError> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(work)
        .map_err(|source| ServeError::Io {
            path: PathBuf::from(name),
            action: "cannot start a thread",
            source,
        })
}

/// Serves the socket until the daemon stops or is gone.
fn spawn_listener<D: BlockDev + 'static>(
    daemon: Weak<Daemon<D>>,
    listener: UnixListener,
) -> Result<JoinHandle<()>, ServeError> {
    spawn("cowrt control", move || {
        for stream in listener.incoming() {
            let Some(alive) = daemon.upgrade() else {
                return;
            };
            if let Ok(stream) = stream {
                serve_client(&alive, stream);
            }
            let stopped = alive.is_stopped();
            drop(alive);
            if stopped || daemon.strong_count() == 0 {
                return;
            }
        }
    })
}

/// Reads one request line from `stream`, answers it with one line.
fn serve_client<D: BlockDev + 'static>(daemon: &Daemon<D>, stream: UnixStream) {
    let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
    let mut line = String::new();
    let mut reader = BufReader::new(&stream);
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    let answer = match line.parse::<Request>() {
        Ok(request) => daemon.handle(request),
        Err(e) => Answer::Refused(e.to_string()),
    };
    let _ = writeln!(&stream, "{}", answer.line());
}

/// Commits every `interval` until the daemon stops or is gone.
fn spawn_committer<D: BlockDev + 'static>(
    daemon: Weak<Daemon<D>>,
    interval: Duration,
) -> Result<(), ServeError> {
    spawn("cowrt commit", move || loop {
        let Some(alive) = daemon.upgrade() else {
            return;
        };
        if alive.wait_stopped(interval) {
            return;
        }
        if let Err(e) = alive.commit() {
            alive.config.log.line(&format!("periodic commit: {e}"));
        }
    })
    .map(drop)
}

#[cfg(test)]
mod tests;
