//! The shared-store daemon behind `cowrt serve`, transport-neutral: the
//! devices it serves live on a [`host::DeviceHost`] (ublk in the real
//! daemon, memory in tests).

pub mod host;
