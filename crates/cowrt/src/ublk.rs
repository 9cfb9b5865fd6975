//! The ublk transport: serves any [`BlockTarget`] as a `/dev/ublkbN` device
//! through libublk 0.4.8, with only what Linux 6.12 has (runtime.md 2.1):
//!
//! - flags `UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE` (the device
//!   outlives a daemon that dies, and its requests in flight are sent again to
//!   the next one), plus `UBLK_F_CMD_IOCTL_ENCODE` when the driver has it;
//! - attributes `UBLK_ATTR_VOLATILE_CACHE | UBLK_ATTR_FUA`, so FLUSH and FUA
//!   reach the target;
//! - copied buffers, one per tag (the kernel copies the request's pages in and
//!   out), one thread per queue, each request decoded by
//!   [`Request::from_ublk`] and served by [`target::serve`] on that thread.
//!
//! Each device runs `UblkCtrl::run_target` on a thread of its own, which
//! returns once the device is stopped. A device left by a daemon that died is
//! taken over with `START_USER_RECOVERY`, then the builder with its id and
//! `UBLK_DEV_F_RECOVER_DEV`. This is the only module that uses libublk; the
//! semantics are all in [`target`] and the front ends, tested without it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use libublk::ctrl::{UblkCtrl, UblkCtrlBuilder};
use libublk::io::{BufDescList, UblkDev, UblkQueue};
use libublk::{sys, BufDesc, UblkError, UblkFlags, UblkIORes};

use crate::log::Log;
use crate::serve::host::{DeviceHost, DeviceInfo, DeviceSpec, HostError};
use crate::target::{self, BlockTarget, Failure, Request};

/// Requests each queue holds at once (its thread serves one at a time).
const QUEUE_DEPTH: u16 = 32;
/// The largest request, in bytes (the device's max_sectors follows from it):
/// fewer, larger origin writes mean fewer commits of their copy-outs. With
/// [`QUEUE_DEPTH`] it bounds a queue's buffers at 32 MiB, touched only as
/// tags are used.
const IO_BUF_BYTES: u32 = 1 << 20;
/// Failed requests each queue writes to the log (the rest only fail).
const FAILURES_LOGGED: u32 = 100;
/// The target name libublk records in its JSON export.
const TARGET_NAME: &str = "cowrt";

/// Serves targets as ublk devices; one thread per device, one per queue.
#[derive(Debug)]
pub struct UblkHost {
    devices: Mutex<BTreeMap<u32, JoinHandle<()>>>,
    log: Log,
}

impl UblkHost {
    /// A host with no device; its devices' messages (failed requests, a
    /// device that cannot be deleted) go to `log`.
    pub fn new(log: Log) -> Self {
        UblkHost {
            devices: Mutex::new(BTreeMap::new()),
            log,
        }
    }
}

/// One sentence for a libublk error.
fn describe(error: &UblkError) -> String {
    match error {
        UblkError::OtherError(errno) | UblkError::UringIOError(errno) => {
            std::io::Error::from_raw_os_error(errno.abs()).to_string()
        }
        UblkError::IOError(e) => e.to_string(),
        other => other.to_string(),
    }
}

fn host_error(name: &str, what: &str, error: &UblkError) -> HostError {
    HostError {
        name: name.to_string(),
        reason: format!("{what}: {}", describe(error)),
    }
}

/// The control flags every device is created with.
fn ctrl_flags() -> u64 {
    let mut flags = u64::from(sys::UBLK_F_USER_RECOVERY | sys::UBLK_F_USER_RECOVERY_REISSUE);
    let encode = u64::from(sys::UBLK_F_CMD_IOCTL_ENCODE);
    if UblkCtrl::get_features().is_some_and(|features| features & encode != 0) {
        flags |= encode;
    }
    flags
}

/// The control device of `spec`: a new device, or the one to recover.
fn control(spec: &DeviceSpec) -> Result<UblkCtrl, HostError> {
    let builder = UblkCtrlBuilder::default()
        .name(TARGET_NAME)
        .nr_queues(spec.queues.max(1))
        .depth(QUEUE_DEPTH)
        .io_buf_bytes(IO_BUF_BYTES)
        .ctrl_flags(ctrl_flags());
    // Deleting waits for the last opener of the disk when synchronous; a
    // filesystem left mounted on it would hang the stop.
    let delete = UblkFlags::UBLK_DEV_F_DEL_DEV_ASYNC;
    let builder = match spec.recover_id {
        None => builder
            .id(-1)
            .dev_flags(UblkFlags::UBLK_DEV_F_ADD_DEV | delete),
        Some(id) => {
            let id = id as i32;
            UblkCtrl::new_simple(id)
                .and_then(|old| old.start_user_recover())
                .map_err(|e| {
                    host_error(
                        &spec.name,
                        &format!("ublk device {id} cannot be recovered (is its daemon still running, or was it stopped?)"),
                        &e,
                    )
                })?;
            builder
                .id(id)
                .dev_flags(UblkFlags::UBLK_DEV_F_RECOVER_DEV | delete)
        }
    };
    builder
        .build()
        .map_err(|e| host_error(&spec.name, "cannot add a ublk device", &e))
}

/// Runs one device until it is stopped; reports it up (or why not) on `up`.
fn run_device(
    spec: DeviceSpec,
    target: Arc<dyn BlockTarget>,
    up: mpsc::Sender<Result<DeviceInfo, HostError>>,
    log: Log,
) {
    let ctrl = match control(&spec) {
        Ok(ctrl) => ctrl,
        Err(e) => {
            let _ = up.send(Err(e));
            return;
        }
    };
    let size = target.size();
    let init = move |dev: &mut UblkDev| {
        dev.set_default_params(size);
        dev.tgt.params.basic.attrs = sys::UBLK_ATTR_VOLATILE_CACHE | sys::UBLK_ATTR_FUA;
        Ok(())
    };
    let queue_target = Arc::clone(&target);
    let queue_log = log.clone();
    let serve_queue =
        move |qid: u16, dev: &UblkDev| serve_queue(qid, dev, &*queue_target, &queue_log);
    let name = spec.name.clone();
    let started_up = up.clone();
    let started = move |ctrl: &UblkCtrl| {
        let _ = started_up.send(Ok(DeviceInfo {
            name,
            id: ctrl.dev_info().dev_id,
            path: PathBuf::from(ctrl.get_bdev_path()),
        }));
    };
    if let Err(e) = ctrl.run_target(init, serve_queue, started) {
        let _ = up.send(Err(host_error(
            &spec.name,
            "cannot start the ublk device",
            &e,
        )));
    }
    // Delete the stopped device (DEL_DEV_ASYNC: the kernel frees it once its
    // last opener is gone); a kernel without the async command gets the
    // synchronous one.
    if ctrl.del_dev().is_err() {
        let id = ctrl.dev_info().dev_id as i32;
        if let Err(e) = UblkCtrl::new_simple(id).and_then(|old| old.del_dev()) {
            log.line(&format!(
                "{}: cannot delete ublk device {id}: {}",
                spec.name,
                describe(&e)
            ));
        }
    }
}

/// Serves queue `qid` of `dev` on this thread until the device stops.
fn serve_queue(qid: u16, dev: &UblkDev, target: &dyn BlockTarget, log: &Log) {
    let mut bufs = dev.alloc_queue_io_bufs();
    let queue = match UblkQueue::new(qid, dev)
        .and_then(|q| q.submit_fetch_commands_unified(BufDescList::Slices(Some(&bufs))))
    {
        Ok(queue) => queue,
        Err(e) => {
            log.line(&format!(
                "ublk device {} queue {qid}: cannot start: {}",
                dev.dev_info.dev_id,
                describe(&e)
            ));
            return;
        }
    };
    let mut logged = 0;
    queue.wait_and_handle_io(|q, tag, _| {
        let iod = q.get_iod(tag);
        let buf = bufs[usize::from(tag)].as_mut_slice();
        let served = match Request::from_ublk(iod.op_flags, iod.start_sector, iod.nr_sectors) {
            Ok(request) => target::serve(target, &request, buf),
            Err(errno) => Err(Failure {
                errno,
                reason: "an operation this device does not serve".to_string(),
            }),
        };
        let result = match served {
            Ok(bytes) => bytes as i32,
            Err(failure) => {
                if logged < FAILURES_LOGGED {
                    logged += 1;
                    log.line(&format!(
                        "ublk device {} queue {qid}: request op_flags {:#x} sector {} ({} sectors) failed ({}): {}",
                        dev.dev_info.dev_id,
                        iod.op_flags,
                        iod.start_sector,
                        iod.nr_sectors,
                        std::io::Error::from_raw_os_error(failure.errno),
                        failure.reason
                    ));
                }
                -failure.errno
            }
        };
        let buf = BufDesc::Slice(bufs[usize::from(tag)].as_slice());
        if let Err(e) = q.complete_io_cmd_unified(tag, buf, Ok(UblkIORes::Result(result))) {
            log.line(&format!(
                "ublk device {} queue {qid} tag {tag}: cannot complete: {}",
                dev.dev_info.dev_id,
                describe(&e)
            ));
        }
    });
}

impl DeviceHost for UblkHost {
    fn add(
        &self,
        spec: &DeviceSpec,
        target: Arc<dyn BlockTarget>,
    ) -> Result<DeviceInfo, HostError> {
        let (up, is_up) = mpsc::channel();
        let owned = spec.clone();
        let log = self.log.clone();
        let thread = std::thread::Builder::new()
            .name(format!("ublk {}", spec.name))
            .spawn(move || run_device(owned, target, up, log))
            .map_err(|e| HostError {
                name: spec.name.clone(),
                reason: format!("cannot start a device thread: {e}"),
            })?;
        let answer = is_up.recv().unwrap_or_else(|_| {
            Err(HostError {
                name: spec.name.clone(),
                reason: "the device thread ended before the device came up".to_string(),
            })
        });
        match answer {
            Ok(info) => {
                self.devices
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(info.id, thread);
                Ok(info)
            }
            Err(e) => {
                let _ = thread.join();
                Err(e)
            }
        }
    }

    fn remove(&self, device: &DeviceInfo) -> Result<(), HostError> {
        let mut devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        if !devices.contains_key(&device.id) {
            return Err(HostError {
                name: device.name.clone(),
                reason: format!("ublk device {} is not served here", device.id),
            });
        }
        UblkCtrl::new_simple(device.id as i32)
            .and_then(|ctrl| ctrl.kill_dev())
            .map_err(|e| host_error(&device.name, "cannot stop the ublk device", &e))?;
        let thread = devices.remove(&device.id);
        drop(devices);
        match thread.map(JoinHandle::join) {
            Some(Err(_)) => Err(HostError {
                name: device.name.clone(),
                reason: "its device thread panicked".to_string(),
            }),
            _ => Ok(()),
        }
    }
}
