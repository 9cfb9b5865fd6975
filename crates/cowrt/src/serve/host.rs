//! Where a served store's devices live: a [`DeviceHost`] brings a block
//! device up for a [`BlockTarget`] and takes it down again. The ublk adapter
//! (`crate::ublk`, feature `ublk`) is the real one; [`MemHost`] keeps the
//! targets in memory, so the daemon's logic runs in tests without a kernel.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::target::BlockTarget;

/// What to bring up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    /// The device's name: `NAME` for the origin, `NAME-sID` for a snapshot.
    pub name: String,
    /// Queues (one serving thread each).
    pub queues: u16,
    /// Re-attach to the live device with this id left by a daemon that died,
    /// instead of adding a new one.
    pub recover_id: Option<u32>,
}

/// A device that is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device's name (as in its [`DeviceSpec`]).
    pub name: String,
    /// The host's id for it (the ublk device id).
    pub id: u32,
    /// Its block device node, e.g. `/dev/ublkb0`.
    pub path: PathBuf,
}

/// Why a device could not be brought up or down.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {reason}")]
pub struct HostError {
    /// The device's name.
    pub name: String,
    /// What went wrong, in one sentence.
    pub reason: String,
}

/// Brings block devices up and down for targets.
pub trait DeviceHost: Send + Sync {
    /// Brings up a device serving `target`; returns once I/O can be sent to it.
    fn add(&self, spec: &DeviceSpec, target: Arc<dyn BlockTarget>)
        -> Result<DeviceInfo, HostError>;

    /// Takes `device` down; returns once no request of it is being served
    /// (requests still queued fail).
    fn remove(&self, device: &DeviceInfo) -> Result<(), HostError>;
}

/// A host that keeps its devices in memory: ids are handed out in order
/// (the lowest free one, as ublk does), paths are `/dev/memN`, and tests reach
/// the targets through [`MemHost::target`].
#[derive(Default)]
pub struct MemHost {
    devices: Mutex<MemDevices>,
    refuse: Mutex<Option<String>>,
    refuse_remove: Mutex<Option<String>>,
    on_remove: Mutex<Option<RemoveHook>>,
}

/// The devices of a [`MemHost`] by id: name and target.
type MemDevices = BTreeMap<u32, (String, Arc<dyn BlockTarget>)>;

/// What a test runs as a device goes down, before it is gone.
type RemoveHook = Box<dyn Fn(&DeviceInfo) + Send>;

impl std::fmt::Debug for MemHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemHost")
            .field("devices", &self.names())
            .finish()
    }
}

impl MemHost {
    /// An empty host.
    pub fn new() -> Self {
        MemHost::default()
    }

    fn devices(&self) -> MutexGuard<'_, MemDevices> {
        self.devices.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The target of the device called `name`, if it is up.
    pub fn target(&self, name: &str) -> Option<Arc<dyn BlockTarget>> {
        self.devices()
            .values()
            .find(|(n, _)| n == name)
            .map(|(_, target)| Arc::clone(target))
    }

    /// The names of the devices that are up, by id.
    pub fn names(&self) -> Vec<String> {
        self.devices().values().map(|(n, _)| n.clone()).collect()
    }

    /// Runs `hook` each time a device is taken down, before it goes.
    pub fn on_remove(&self, hook: impl Fn(&DeviceInfo) + Send + 'static) {
        *self.on_remove.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(hook));
    }

    /// Makes every later [`DeviceHost::add`] fail with `reason` (`None`: work again).
    pub fn refuse_adds(&self, reason: Option<&str>) {
        *self.refuse.lock().unwrap_or_else(|e| e.into_inner()) = reason.map(str::to_string);
    }
}

impl MemHost {
    /// Makes every later [`DeviceHost::remove`] of the device called `name`
    /// fail (`None`: work again).
    pub fn refuse_removes(&self, name: Option<&str>) {
        *self.refuse_remove.lock().unwrap_or_else(|e| e.into_inner()) = name.map(str::to_string);
    }
}

impl DeviceHost for MemHost {
    fn add(
        &self,
        spec: &DeviceSpec,
        target: Arc<dyn BlockTarget>,
    ) -> Result<DeviceInfo, HostError> {
        if let Some(reason) = self
            .refuse
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(HostError {
                name: spec.name.clone(),
                reason,
            });
        }
        let mut devices = self.devices();
        let id = match spec.recover_id {
            Some(id) if devices.contains_key(&id) => {
                return Err(HostError {
                    name: spec.name.clone(),
                    reason: format!("device {id} is served already"),
                })
            }
            Some(id) => id,
            None => (0..).find(|id| !devices.contains_key(id)).unwrap_or(0),
        };
        devices.insert(id, (spec.name.clone(), target));
        Ok(DeviceInfo {
            name: spec.name.clone(),
            id,
            path: PathBuf::from(format!("/dev/mem{id}")),
        })
    }

    fn remove(&self, device: &DeviceInfo) -> Result<(), HostError> {
        if let Some(hook) = &*self.on_remove.lock().unwrap_or_else(|e| e.into_inner()) {
            hook(device);
        }
        let refused = self.refuse_remove.lock().unwrap_or_else(|e| e.into_inner());
        if refused.as_deref() == Some(device.name.as_str()) {
            return Err(HostError {
                name: device.name.clone(),
                reason: "the device is busy".to_string(),
            });
        }
        drop(refused);
        match self.devices().remove(&device.id) {
            Some(_) => Ok(()),
            None => Err(HostError {
                name: device.name.clone(),
                reason: format!("device {} is not up", device.id),
            }),
        }
    }
}
