//! The data the manager is told about (descriptors, requests, replies) and what it answers
//! (effects, errors). Everything here is plain data with bounded sizes.

use core::time::Duration;

use crate::handle::Requester;
use warden_vocabulary::{
    BusId, CallbackId, DeviceId, DriverId, MatchData, MatchTable, Name, Outcome, PdId, RequestId,
    Resources,
};

/// A device to add to the tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeviceDescriptor {
    /// The bus the device sits on (may differ from its parent's: a bridge).
    pub bus: BusId,
    /// What the device is.
    pub match_data: MatchData,
    /// Its hardware resources.
    pub resources: Resources,
}

/// A driver to register.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DriverDescriptor {
    /// The bus whose devices the driver serves.
    pub bus: BusId,
    /// The PD the driver lives in; its callbacks are sent there.
    pub pd: PdId,
    /// Human-readable name (for logs and queries).
    pub name: Name,
    /// The devices it claims.
    pub match_table: MatchTable,
    /// How long it may take to answer a callback; `None`: [`Config::callback_deadline`]. A
    /// callback not answered by then is its PD's fault (see [`Manager::overdue`]).
    ///
    /// [`Manager::overdue`]: crate::Manager::overdue
    pub deadline: Option<Duration>,
}

/// An outside request (from a client, an administrator or a driver PD). Each enters the
/// manager's one queue, gets a [`RequestId`] and completes exactly once.
#[allow(
    clippy::large_enum_variant,
    reason = "a request is passed by value once, into `submit`; boxing would need an allocator"
)]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Request {
    /// `device_add`: add a device under `parent` (a root if `None`), taking the parent's lock,
    /// then probe it. Completes with [`Outcome::Device`].
    AddDevice {
        /// Parent device, if any.
        parent: Option<DeviceId>,
        /// The new device.
        descriptor: DeviceDescriptor,
    },
    /// `device_del`: remove a device and its subtree, children first, calling each bound
    /// driver's remove under the device's lock.
    DeleteDevice(DeviceId),
    /// `driver_register`: add a driver and probe it against the bus's devices. Decided at
    /// once, inside `submit` (a registration never waits for an operation slot, so nothing can
    /// crowd it out): it completes there with [`Outcome::Driver`] (`bound` 0) or is refused;
    /// the probes of the bus's devices run afterwards as the manager's own work.
    RegisterDriver(DriverDescriptor),
    /// `driver_unregister`: stop new probes of the driver, let in-flight ones finish, unbind
    /// its devices (children first) and remove it.
    UnregisterDriver(DriverId),
    /// Bind a device to one driver (it must match). Completes with [`Outcome::Device`].
    Bind {
        /// The device.
        device: DeviceId,
        /// The driver to probe it with.
        driver: DriverId,
    },
    /// Unbind a device from its driver; it is not probed again until `Probe` or `Rescan`.
    Unbind(DeviceId),
    /// Probe one device against all drivers of its bus (allows automatic probing again).
    Probe(DeviceId),
    /// Probe every unbound device again (allows automatic probing for all).
    Rescan,
    /// Suspend a device and its subtree, children before parents.
    Suspend(DeviceId),
    /// Resume a device and its subtree, parents before children.
    Resume(DeviceId),
    /// System suspend: every device, children before parents.
    SuspendAll,
    /// System resume: every device, parents before children.
    ResumeAll,
    /// System shutdown: every device, children first. The manager accepts no request after it.
    Shutdown,
}

/// The driver callbacks; each runs in the driver's PD with the device's lock held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallbackKind {
    /// Bind to this device (Linux `probe`).
    Probe,
    /// Let go of this device (Linux `remove`).
    Remove,
    /// Enter a low-power state.
    Suspend,
    /// Leave the low-power state.
    Resume,
    /// Quiesce for power-off or reboot.
    Shutdown,
}

/// A driver callback the manager wants run: send it to `pd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Callback {
    /// Quote this in the reply.
    pub id: CallbackId,
    /// The driver's PD.
    pub pd: PdId,
    /// Which callback.
    pub kind: CallbackKind,
    /// The device it is about (its lock is held until the reply).
    pub device: DeviceId,
    /// The driver that runs it.
    pub driver: DriverId,
}

/// The answer to an outside request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Completion {
    /// The request's id.
    pub request: RequestId,
    /// Who sent it.
    pub requester: Requester,
    /// What came of it.
    pub result: Result<Outcome, Error>,
}

/// What the manager asks its I/O layer to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Run a driver callback.
    Callback(Callback),
    /// Tell a requester that its request completed.
    Complete(Completion),
    /// The tree changed: what subscribers to the manager's events are told. Emitted at the
    /// moment the core's state changes, so replaying them in order rebuilds the tree's devices,
    /// bindings and power states.
    Changed(Change),
}

/// A change to the device tree, as [`Effect::Changed`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The device it happened to (for `Removed`, a handle that is stale from now on).
    pub device: DeviceId,
    /// The driver concerned: the one bound or unbound; for a power change, the device's
    /// driver if it has one.
    pub driver: Option<DriverId>,
}

/// What kind of change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// A device was added (`device_add`, `__device_add`).
    Added,
    /// A device was removed; it had no children and no driver by then.
    Removed,
    /// A device was bound to `driver`.
    Bound,
    /// A device was unbound from `driver`.
    Unbound,
    /// A device was suspended.
    Suspended,
    /// A device was resumed.
    Resumed,
    /// A device was shut down.
    ShutDown,
}

/// Everything that can go wrong, as values (the manager never panics on input).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The device handle names a device that no longer exists.
    StaleDevice,
    /// The driver handle names a driver that no longer exists.
    StaleDriver,
    /// The bus handle names no bus.
    StaleBus,
    /// The callback named is not in flight (late, duplicated or forged reply).
    NoSuchCallback,
    /// The requester may not do this (a driver acting outside its devices, a callback that
    /// does not hold the parent's lock…).
    NotPermitted,
    /// A driver PD asked for a device its system description does not give it (the device's
    /// memory is not in its [`Grant`](warden_vocabulary::Grant), or a bridge's child whose
    /// interrupt the system gives another PD).
    NotGranted,
    /// A driver added more children under one device than [`Config::children_per_device`], or
    /// its PD more devices in all than [`Config::devices_per_pd`], or more drivers than
    /// [`Config::drivers_per_pd`].
    OverQuota,
    /// A table or queue of the manager is full: try again later.
    NoSpace,
    /// The device is already bound, or the requester has [`Config::requests_per_requester`]
    /// requests in progress already.
    Busy,
    /// The driver does not match the device, or no driver accepted it.
    NoMatch,
    /// A resume was asked for a device whose parent is suspended.
    ParentSuspended,
    /// The driver's callback failed with this code.
    CallbackFailed(u16),
    /// The driver's PD died during the callback.
    DriverDied,
    /// The system is shut down.
    ShutDown,
}

/// The manager's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// How many driver callbacks may be in flight at once. `1` is the single daemon of the
    /// 2005 reply taken literally; `usize::MAX` lets every device's lock be the only limit.
    pub max_callbacks_in_flight: usize,
    /// How long a driver may take to answer a callback, unless its registration says
    /// otherwise ([`DriverDescriptor::deadline`]).
    pub callback_deadline: Duration,
    /// Operation slots kept for the manager's own work (probing new children, cleaning up
    /// after a dead PD): outside requests fill the table only up to `OPERATIONS` minus these
    /// (at most a quarter of the table is kept).
    pub reserved_operations: usize,
    /// Most requests one requester (a client, a driver PD) may have in progress at once; more
    /// are refused with [`Error::Busy`] for that requester only.
    pub requests_per_requester: usize,
    /// Most children the drivers may add under one device ([`Error::OverQuota`]).
    pub children_per_device: usize,
    /// Most devices one PD's drivers may have added, alive at once, however deep (children of
    /// their children count too: [`Error::OverQuota`]). A bridge adds one per slot it has.
    pub devices_per_pd: usize,
    /// Most drivers one PD may have registered at once ([`Error::OverQuota`]).
    pub drivers_per_pd: usize,
    /// The longest deadline a driver may ask for ([`DriverDescriptor::deadline`] is clamped).
    pub max_callback_deadline: Duration,
}

impl Config {
    /// Per-device locking: callbacks on different devices run in parallel.
    pub const PER_DEVICE: Self = Self {
        max_callbacks_in_flight: usize::MAX,
        callback_deadline: Duration::from_millis(500),
        reserved_operations: 4,
        requests_per_requester: 8,
        children_per_device: 32,
        devices_per_pd: 32,
        drivers_per_pd: 4,
        max_callback_deadline: Duration::from_secs(10),
    };
    /// One driver callback in flight system-wide.
    pub const SINGLE_CALLBACK: Self = Self {
        max_callbacks_in_flight: 1,
        ..Self::PER_DEVICE
    };
}

impl Default for Config {
    fn default() -> Self {
        Self::PER_DEVICE
    }
}

/// A callback past its deadline: its driver's PD is to blame (it hangs, or loops).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Overdue {
    /// The PD.
    pub pd: PdId,
    /// The callback.
    pub callback: CallbackId,
    /// Which callback.
    pub kind: CallbackKind,
    /// The device it is about.
    pub device: DeviceId,
    /// How long it has been in flight.
    pub waited: Duration,
}

/// Counters the manager keeps (a bounded record that tools can read, instead of printing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stats {
    /// Events handled (requests, replies, child additions, deaths).
    pub events: u64,
    /// Probe callbacks issued.
    pub probe_attempts: u64,
    /// Successful binds.
    pub binds: u64,
    /// Walks restarted because a version counter changed.
    pub walk_restarts: u64,
    /// (device, driver) pairs skipped on a restart because they were already tried.
    pub pairs_skipped: u64,
    /// Callbacks issued (all kinds).
    pub callbacks: u64,
    /// Requests completed.
    pub completions: u64,
    /// Highest number of callbacks in flight at once.
    pub max_callbacks_in_flight: u64,
    /// Outside requests refused because their requester had too many in progress.
    pub requests_over_cap: u64,
    /// Probes that failed after their driver added children that were in use already: the
    /// device stayed with the driver until its cleanup or an unbind took the children down.
    pub probes_with_busy_children: u64,
}
