//! The device manager: Stern's driver-model locking run by one queue-fed daemon.
//!
//! The manager is single-threaded and never blocks: every outside request becomes an
//! *operation* that runs until it must wait — for a device's lock, for a callback slot, for a
//! driver's reply or for a driver's in-flight callbacks to drain — and is resumed when that
//! wait ends. Locks are logical: a device's lock is owned by one operation (and through it by
//! the one driver callback that operation has in flight) and has a FIFO of waiting operations.
//! Operations take locks parent before child and never wait for a parent while holding a child,
//! so the waits-for graph cannot have a cycle.

// Indexing here is `Arena`'s `Index` on indices stored inside the manager, which always name
// live objects (`Manager::invariants` checks it after every event in the tests). Handles from
// outside never index: they go through `resolve_*`, which returns a `Stale…` error.
#![allow(
    clippy::indexing_slicing,
    reason = "internal arena indices are always live; outside handles are resolved first"
)]

use crate::arena::{Arena, LinkField, Links, List};
use crate::handle::{BusId, CallbackId, DeviceId, DriverId, PdId, RequestId, Requester};
use crate::model::{
    CallbackKind, CallbackStatus, Config, DeviceDescriptor, DriverDescriptor, Effect, Error,
    MatchData, MatchTable, Name, Outcome, Request, Resources, Stats,
};

/// Power state of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceState {
    /// Running.
    Active,
    /// Suspended (by a device or system suspend).
    Suspended,
    /// Shut down; stays so.
    ShutDown,
}

/// Life cycle of a driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DriverState {
    /// Registered; may be probed.
    Live,
    /// Being unregistered: no new probe starts; its devices are being unbound.
    Unregistering,
    /// Its PD died: no callback is sent to it any more; it is being cleaned up.
    Dead,
}

/// Who holds a device's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockOwner {
    /// The manager itself, on behalf of an operation (the request's id if it has one).
    Manager(Option<RequestId>),
    /// A driver callback in flight (its operation holds the lock for it).
    Callback(CallbackId),
}

/// A read-only view of a device.
#[derive(Clone, Copy, Debug)]
pub struct DeviceInfo<'a> {
    /// The device.
    pub id: DeviceId,
    /// Its bus.
    pub bus: BusId,
    /// Its parent.
    pub parent: Option<DeviceId>,
    /// The driver bound to it.
    pub driver: Option<DriverId>,
    /// Its power state.
    pub state: DeviceState,
    /// What it is.
    pub match_data: &'a MatchData,
    /// Its resources.
    pub resources: &'a Resources,
    /// Who holds its lock.
    pub lock_owner: Option<LockOwner>,
    /// Parked by a deferred probe.
    pub deferred: bool,
    /// Added by its parent's driver (the `__device_add` path); removed when that binding ends.
    pub added_by_binding: bool,
}

/// A read-only view of a driver.
#[derive(Clone, Copy, Debug)]
pub struct DriverInfo<'a> {
    /// The driver.
    pub id: DriverId,
    /// Its bus.
    pub bus: BusId,
    /// Its PD.
    pub pd: PdId,
    /// Its name.
    pub name: &'a str,
    /// The devices it claims.
    pub match_table: &'a MatchTable,
    /// Its state.
    pub state: DriverState,
    /// How many devices are bound to it.
    pub bound_devices: u32,
    /// How many of its callbacks are in flight.
    pub callbacks_in_flight: u32,
}

/// A read-only view of a bus.
#[derive(Clone, Copy, Debug)]
pub struct BusInfo<'a> {
    /// The bus.
    pub id: BusId,
    /// Its name.
    pub name: &'a str,
    /// Bumped on every device added to or deleted from the bus.
    pub devices_version: u64,
    /// Bumped on every driver registered on or removed from the bus.
    pub drivers_version: u64,
    /// Devices on the bus.
    pub devices: u32,
    /// Drivers on the bus.
    pub drivers: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Bus {
    pub(crate) name: Name,
    pub(crate) devices: List,
    pub(crate) drivers: List,
    pub(crate) devices_version: u64,
    pub(crate) drivers_version: u64,
    next_sequence: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Queue {
    None,
    PendingProbe,
    Deferred,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Device {
    pub(crate) bus: u32,
    pub(crate) parent: Option<u32>,
    pub(crate) children: List,
    pub(crate) sibling: Links,
    pub(crate) bus_links: Links,
    /// Position on the bus's device list (increasing in list order).
    pub(crate) sequence: u64,
    pub(crate) driver: Option<u32>,
    pub(crate) driver_links: Links,
    pub(crate) state: DeviceState,
    pub(crate) match_data: MatchData,
    pub(crate) resources: Resources,
    pub(crate) lock_owner: Option<u32>,
    pub(crate) lock_waiters: List,
    pub(crate) added_by_binding: bool,
    /// Cleared by a manual unbind: the device is then not probed automatically.
    pub(crate) autoprobe: bool,
    pub(crate) queue: Queue,
    pub(crate) queue_links: Links,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Driver {
    pub(crate) bus: u32,
    pub(crate) pd: PdId,
    pub(crate) name: Name,
    pub(crate) match_table: MatchTable,
    pub(crate) bus_links: Links,
    /// Position on the bus's driver list (increasing in list order).
    pub(crate) sequence: u64,
    pub(crate) devices: List,
    pub(crate) state: DriverState,
    pub(crate) in_flight: u32,
    pub(crate) idle_waiters: List,
    pub(crate) has_unregister_operation: bool,
    pub(crate) cleanup_queued: bool,
    pub(crate) cleanup_links: Links,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Wait {
    Running,
    Ready,
    Lock(u32),
    CallbackSlot,
    Callback,
    DriverIdle(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct InFlight {
    pub(crate) sequence: u64,
    pub(crate) pd: PdId,
    pub(crate) kind: CallbackKind,
    pub(crate) device: u32,
    pub(crate) driver: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Reply {
    Status(CallbackStatus),
    Died,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Operation {
    pub(crate) request: Option<(RequestId, Requester)>,
    task: Task,
    pub(crate) links: Links,
    pub(crate) wait: Wait,
    pub(crate) in_flight: Option<InFlight>,
    /// A reply not yet acted on, with the driver that sent it.
    pub(crate) reply: Option<(Reply, u32)>,
    pub(crate) owned_locks: u32,
    pub(crate) slot_granted: bool,
}

macro_rules! link_field {
    ($marker:ident, $element:ty, $field:ident) => {
        #[derive(Clone, Copy)]
        pub(crate) struct $marker;
        impl LinkField<$element> for $marker {
            fn links(element: &$element) -> &Links {
                &element.$field
            }
            fn links_mut(element: &mut $element) -> &mut Links {
                &mut element.$field
            }
        }
    };
}

link_field!(SiblingLinks, Device, sibling);
link_field!(BusDeviceLinks, Device, bus_links);
link_field!(DriverDeviceLinks, Device, driver_links);
link_field!(QueueLinks, Device, queue_links);
link_field!(BusDriverLinks, Driver, bus_links);
link_field!(CleanupLinks, Driver, cleanup_links);
link_field!(OperationLinks, Operation, links);

/// Progress through a bus list (Stern's traversal with a version check).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct Walk {
    /// Last element tried, as (index, generation): valid while the version is unchanged.
    cursor: Option<(u32, u32)>,
    /// The list's version when the walk (re)started.
    seen_version: u64,
    /// Every element with a sequence at or below this was already tried by this walk: a
    /// restart skips them, so registrations during the walk cannot starve it.
    high_water: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ProbeStage {
    Lock,
    Walk,
    Issue(u32, u32),
    Awaiting(u32),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ProbeTask {
    device: DeviceId,
    only: Option<DriverId>,
    enable_autoprobe: bool,
    walk: Walk,
    stage: ProbeStage,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum AttachStage {
    Start,
    Select,
    Lock(u32, u32),
    Issue(u32),
    Awaiting(u32),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct AttachTask {
    driver: DriverId,
    walk: Walk,
    bound: u32,
    stage: AttachStage,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum TeardownMode {
    /// `device_del`: the device and its whole subtree go.
    Delete,
    /// Unbind the device (only from `expected` if given); children its binding added go.
    Unbind { manual: bool, expected: Option<u32> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum TeardownStage {
    LockParent,
    LockSubtree,
    Work,
    Issue(u32),
    Awaiting(u32),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TeardownTask {
    target: DeviceId,
    mode: TeardownMode,
    parent: Option<(u32, u32)>,
    stage: TeardownStage,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum UnregisterStage {
    Start,
    Quiesce,
    Pick,
    Unbinding(TeardownTask),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct UnregisterTask {
    driver: DriverId,
    stage: UnregisterStage,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Transition {
    Suspend,
    Resume,
    Shutdown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum PowerStage {
    Start,
    Lock,
    Run(Option<u32>),
    Issue(u32),
    Awaiting(u32),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PowerTask {
    scope: Option<DeviceId>,
    transition: Transition,
    stage: PowerStage,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Task {
    /// Placeholder while the task is being stepped.
    Running,
    Add {
        parent: Option<DeviceId>,
        descriptor: DeviceDescriptor,
    },
    Register(DriverDescriptor),
    Probe(ProbeTask),
    Attach(AttachTask),
    Teardown(TeardownTask),
    Unregister(UnregisterTask),
    Power(PowerTask),
    Rescan,
}

#[allow(
    clippy::large_enum_variant,
    reason = "a Step lives for one call on the stack; boxing would need an allocator"
)]
enum Step {
    Blocked,
    Become(Task),
    Done(Result<Outcome, Error>),
}

/// Which part of the device forest a traversal covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Scope {
    Subtree(u32),
    All,
}

/// The device manager's state. Capacities are compile-time parameters: `DEVICES` devices,
/// `DRIVERS` drivers, `BUSES` buses and `OPERATIONS` operations in progress at once (outside
/// requests plus internal work such as probing a newly added child).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Manager<
    const DEVICES: usize,
    const DRIVERS: usize,
    const BUSES: usize,
    const OPERATIONS: usize,
> {
    config: Config,
    pub(crate) buses: Arena<Bus, BUSES>,
    pub(crate) devices: Arena<Device, DEVICES>,
    pub(crate) drivers: Arena<Driver, DRIVERS>,
    pub(crate) operations: Arena<Operation, OPERATIONS>,
    /// Devices without a parent, linked through their sibling links.
    pub(crate) roots: List,
    pub(crate) ready: List,
    pub(crate) slot_waiters: List,
    /// Callback slots taken: callbacks in flight plus slots handed to a waiting operation.
    pub(crate) slots_taken: usize,
    pub(crate) in_flight_count: usize,
    pub(crate) pending_probe: List,
    pub(crate) deferred: List,
    pub(crate) cleanup: List,
    next_request: u32,
    next_callback: u64,
    shut_down: bool,
    stats: Stats,
}

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    /// An empty manager. It is large: construct it in place (a `static`, or `Box::new` on the
    /// host) rather than on a small stack.
    #[must_use]
    pub fn new(config: Config) -> Self {
        Self {
            config,
            buses: Arena::new(),
            devices: Arena::new(),
            drivers: Arena::new(),
            operations: Arena::new(),
            roots: List::new(),
            ready: List::new(),
            slot_waiters: List::new(),
            slots_taken: 0,
            in_flight_count: 0,
            pending_probe: List::new(),
            deferred: List::new(),
            cleanup: List::new(),
            next_request: 1,
            next_callback: 1,
            shut_down: false,
            stats: Stats::default(),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> Config {
        self.config
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Reads the counters and starts them again from zero (for a tool that polls them).
    pub fn take_stats(&mut self) -> Stats {
        core::mem::take(&mut self.stats)
    }

    /// Creates a bus (a configuration step, done before requests arrive).
    ///
    /// # Errors
    /// [`Error::NoSpace`] when the bus table is full.
    pub fn add_bus(&mut self, name: &str) -> Result<BusId, Error> {
        let name = Name::try_from(name).map_err(|()| Error::NoSpace)?;
        let bus = Bus {
            name,
            devices: List::new(),
            drivers: List::new(),
            devices_version: 0,
            drivers_version: 0,
            next_sequence: 1,
        };
        let (index, generation) = self.buses.insert(bus).map_err(|_| Error::NoSpace)?;
        Ok(BusId::from_parts(index, generation))
    }

    // ----- events in ---------------------------------------------------------------------

    /// An outside request enters the queue. On `Ok` it has an id and exactly one
    /// [`Effect::Complete`] will carry that id (possibly from within this call).
    ///
    /// # Errors
    /// Refused at the door, with no id and no completion: [`Error::ShutDown`],
    /// [`Error::NoSpace`] (backpressure: the operation table is full), [`Error::NotPermitted`]
    /// or a `Stale…` error when a driver requester names what it has no authority over.
    pub fn submit(
        &mut self,
        requester: Requester,
        request: Request,
        out: &mut dyn FnMut(Effect),
    ) -> Result<RequestId, Error> {
        if self.shut_down {
            return Err(Error::ShutDown);
        }
        self.authorize(requester, &request)?;
        let task = match request {
            Request::AddDevice { parent, descriptor } => Task::Add { parent, descriptor },
            Request::DeleteDevice(device) => Task::Teardown(TeardownTask {
                target: device,
                mode: TeardownMode::Delete,
                parent: None,
                stage: TeardownStage::LockParent,
            }),
            Request::RegisterDriver(descriptor) => Task::Register(descriptor),
            Request::UnregisterDriver(driver) => Task::Unregister(UnregisterTask {
                driver,
                stage: UnregisterStage::Start,
            }),
            Request::Bind { device, driver } => Task::Probe(ProbeTask {
                device,
                only: Some(driver),
                enable_autoprobe: true,
                walk: Walk::default(),
                stage: ProbeStage::Lock,
            }),
            Request::Unbind(device) => Task::Teardown(TeardownTask {
                target: device,
                mode: TeardownMode::Unbind {
                    manual: true,
                    expected: None,
                },
                parent: None,
                stage: TeardownStage::LockParent,
            }),
            Request::Probe(device) => Task::Probe(ProbeTask {
                device,
                only: None,
                enable_autoprobe: true,
                walk: Walk::default(),
                stage: ProbeStage::Lock,
            }),
            Request::Rescan => Task::Rescan,
            Request::Suspend(device) => power_task(Some(device), Transition::Suspend),
            Request::Resume(device) => power_task(Some(device), Transition::Resume),
            Request::SuspendAll => power_task(None, Transition::Suspend),
            Request::ResumeAll => power_task(None, Transition::Resume),
            Request::Shutdown => power_task(None, Transition::Shutdown),
        };
        let id = RequestId(self.next_request);
        let op = self.new_operation(Some((id, requester)), task)?;
        self.stats.events += 1;
        self.next_request = self.next_request.wrapping_add(1).max(1);
        self.make_ready(op);
        self.run(out);
        Ok(id)
    }

    /// A driver PD answers a callback.
    ///
    /// # Errors
    /// [`Error::NoSuchCallback`] for a reply to nothing in flight (late, duplicate, forged);
    /// [`Error::NotPermitted`] when `pd` is not the PD the callback was sent to. The manager's
    /// state is unchanged in both cases.
    pub fn callback_done(
        &mut self,
        pd: PdId,
        callback: CallbackId,
        status: CallbackStatus,
        out: &mut dyn FnMut(Effect),
    ) -> Result<(), Error> {
        let (op, _) = self.authorize_callback(pd, callback)?;
        self.stats.events += 1;
        self.end_callback(op, Reply::Status(status));
        self.run(out);
        Ok(())
    }

    /// `__device_add`: a driver whose probe or resume callback is in flight (and so holds the
    /// device's lock) adds a child under that device. Synchronous — the caller already holds
    /// the parent's lock, so nothing is waited for and nothing can deadlock; the child is then
    /// probed like any new device (it has its own lock).
    ///
    /// # Errors
    /// [`Error::NoSuchCallback`], [`Error::NotPermitted`] (wrong PD, `parent` is not the
    /// callback's device, or a callback other than probe/resume), [`Error::StaleBus`],
    /// [`Error::NoSpace`].
    pub fn child_add(
        &mut self,
        pd: PdId,
        callback: CallbackId,
        parent: DeviceId,
        descriptor: &DeviceDescriptor,
        out: &mut dyn FnMut(Effect),
    ) -> Result<DeviceId, Error> {
        let (_, flight) = self.authorize_callback(pd, callback)?;
        self.stats.events += 1;
        let holds_parent = self
            .resolve_device(parent)
            .is_ok_and(|parent| parent == flight.device);
        if !holds_parent || !matches!(flight.kind, CallbackKind::Probe | CallbackKind::Resume) {
            return Err(Error::NotPermitted);
        }
        if !descriptor
            .resources
            .within(&self.devices[flight.device].resources)
        {
            return Err(Error::NotPermitted);
        }
        let child = self.create_device(Some(flight.device), descriptor, true)?;
        self.queue_probe(child);
        let id = self.device_id(child);
        self.run(out);
        Ok(id)
    }

    /// `__device_del` from a callback: the driver of `callback`'s device removes a child it
    /// added that is idle (unbound, unlocked, childless) — for instance one that turned out to
    /// be absent during the bridge's probe. Anything busier goes through
    /// [`Request::DeleteDevice`], which waits for the parent's lock like any outside request.
    ///
    /// # Errors
    /// [`Error::NoSuchCallback`], [`Error::NotPermitted`] (wrong PD, or not a child of the
    /// callback's device), [`Error::StaleDevice`], [`Error::Busy`] (the child is bound, locked
    /// or has children).
    pub fn child_remove(
        &mut self,
        pd: PdId,
        callback: CallbackId,
        child: DeviceId,
        out: &mut dyn FnMut(Effect),
    ) -> Result<(), Error> {
        let (op, flight) = self.authorize_callback(pd, callback)?;
        self.stats.events += 1;
        let index = self.resolve_device(child)?;
        let device = &self.devices[index];
        if device.parent != Some(flight.device) {
            return Err(Error::NotPermitted);
        }
        if device.driver.is_some() || device.lock_owner.is_some() || !device.children.is_empty() {
            return Err(Error::Busy);
        }
        // The parent's lock is held by `op` for the callback; the child's is free: take it and
        // delete the child in one step.
        self.lock(op, index);
        self.free_device(op, index);
        self.run(out);
        Ok(())
    }

    /// A driver PD died (crashed, or was stopped). Its callbacks in flight end as failed, the
    /// locks they held pass on, its drivers stop receiving callbacks and are cleaned up: their
    /// devices unbound (children their bindings added removed), then the drivers removed from
    /// their buses (their handles go stale). Unbound devices are probed again.
    pub fn pd_died(&mut self, pd: PdId, out: &mut dyn FnMut(Effect)) {
        self.stats.events += 1;
        for index in 0..DRIVERS as u32 {
            let Some(driver) = self.drivers.get_mut(index) else {
                continue;
            };
            if driver.pd != pd || driver.state == DriverState::Dead {
                continue;
            }
            driver.state = DriverState::Dead;
            if !driver.has_unregister_operation && !driver.cleanup_queued {
                driver.cleanup_queued = true;
                let mut cleanup = self.cleanup;
                cleanup.push_back(&mut self.drivers, index, CleanupLinks);
                self.cleanup = cleanup;
            }
        }
        for op in 0..OPERATIONS as u32 {
            let dead = self
                .operations
                .get(op)
                .and_then(|operation| operation.in_flight)
                .is_some_and(|flight| flight.pd == pd);
            if dead {
                self.end_callback(op, Reply::Died);
            }
        }
        self.run(out);
    }

    // ----- queries -----------------------------------------------------------------------

    /// A device.
    ///
    /// # Errors
    /// [`Error::StaleDevice`].
    pub fn device(&self, id: DeviceId) -> Result<DeviceInfo<'_>, Error> {
        let index = self.resolve_device(id)?;
        let device = &self.devices[index];
        Ok(DeviceInfo {
            id,
            bus: self.bus_id(device.bus),
            parent: device.parent.map(|parent| self.device_id(parent)),
            driver: device.driver.map(|driver| self.driver_id(driver)),
            state: device.state,
            match_data: &device.match_data,
            resources: &device.resources,
            lock_owner: device.lock_owner.map(|op| self.lock_owner_of(op)),
            deferred: device.queue == Queue::Deferred,
            added_by_binding: device.added_by_binding,
        })
    }

    /// The children of a device, in the order they were added.
    ///
    /// # Errors
    /// [`Error::StaleDevice`].
    pub fn children(&self, id: DeviceId) -> Result<impl Iterator<Item = DeviceId> + '_, Error> {
        let index = self.resolve_device(id)?;
        Ok(self.devices[index]
            .children
            .iter(&self.devices, SiblingLinks)
            .map(|child| self.device_id(child)))
    }

    /// Devices without a parent.
    pub fn roots(&self) -> impl Iterator<Item = DeviceId> + '_ {
        self.roots
            .iter(&self.devices, SiblingLinks)
            .map(|index| self.device_id(index))
    }

    /// Every device.
    pub fn devices(&self) -> impl Iterator<Item = DeviceId> + '_ {
        self.devices.indices().map(|index| self.device_id(index))
    }

    /// Every driver.
    pub fn drivers(&self) -> impl Iterator<Item = DriverId> + '_ {
        self.drivers.indices().map(|index| self.driver_id(index))
    }

    /// A driver.
    ///
    /// # Errors
    /// [`Error::StaleDriver`].
    pub fn driver(&self, id: DriverId) -> Result<DriverInfo<'_>, Error> {
        let index = self.resolve_driver(id)?;
        let driver = &self.drivers[index];
        Ok(DriverInfo {
            id,
            bus: self.bus_id(driver.bus),
            pd: driver.pd,
            name: driver.name.as_str(),
            match_table: &driver.match_table,
            state: driver.state,
            bound_devices: driver.devices.len,
            callbacks_in_flight: driver.in_flight,
        })
    }

    /// The devices bound to a driver.
    ///
    /// # Errors
    /// [`Error::StaleDriver`].
    pub fn bound_devices(
        &self,
        id: DriverId,
    ) -> Result<impl Iterator<Item = DeviceId> + '_, Error> {
        let index = self.resolve_driver(id)?;
        Ok(self.drivers[index]
            .devices
            .iter(&self.devices, DriverDeviceLinks)
            .map(|device| self.device_id(device)))
    }

    /// A bus.
    ///
    /// # Errors
    /// [`Error::StaleBus`].
    pub fn bus(&self, id: BusId) -> Result<BusInfo<'_>, Error> {
        let bus = self
            .buses
            .resolve(id.index(), id.generation())
            .ok_or(Error::StaleBus)?;
        Ok(BusInfo {
            id,
            name: bus.name.as_str(),
            devices_version: bus.devices_version,
            drivers_version: bus.drivers_version,
            devices: bus.devices.len,
            drivers: bus.drivers.len,
        })
    }

    /// Callbacks in flight right now.
    #[must_use]
    pub fn callbacks_in_flight(&self) -> usize {
        self.in_flight_count
    }

    /// Operations in progress (outside requests not yet completed plus internal work).
    #[must_use]
    pub fn operations_in_progress(&self) -> usize {
        self.operations.len()
    }

    /// Nothing in progress and nothing queued: every request has completed.
    #[must_use]
    pub fn is_quiescent(&self) -> bool {
        self.operations.len() == 0 && self.pending_probe.is_empty() && self.cleanup.is_empty()
    }

    /// The system has been shut down.
    #[must_use]
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    // ----- handles -----------------------------------------------------------------------

    pub(crate) fn device_id(&self, index: u32) -> DeviceId {
        DeviceId::from_parts(index, self.devices.generation(index))
    }

    pub(crate) fn driver_id(&self, index: u32) -> DriverId {
        DriverId::from_parts(index, self.drivers.generation(index))
    }

    fn bus_id(&self, index: u32) -> BusId {
        BusId::from_parts(index, self.buses.generation(index))
    }

    fn resolve_device(&self, id: DeviceId) -> Result<u32, Error> {
        if self.devices.is_live(id.index(), id.generation()) {
            Ok(id.index())
        } else {
            Err(Error::StaleDevice)
        }
    }

    fn resolve_driver(&self, id: DriverId) -> Result<u32, Error> {
        if self.drivers.is_live(id.index(), id.generation()) {
            Ok(id.index())
        } else {
            Err(Error::StaleDriver)
        }
    }

    fn lock_owner_of(&self, op: u32) -> LockOwner {
        let operation = &self.operations[op];
        match operation.in_flight {
            Some(flight) => LockOwner::Callback(CallbackId::from_parts(op, flight.sequence)),
            None => LockOwner::Manager(operation.request.map(|(id, _)| id)),
        }
    }

    // ----- authority ---------------------------------------------------------------------

    fn authorize(&self, requester: Requester, request: &Request) -> Result<(), Error> {
        let Requester::Driver(pd) = requester else {
            return Ok(());
        };
        let bound_to_pd = |device: u32| {
            self.devices[device]
                .driver
                .is_some_and(|driver| self.drivers[driver].pd == pd)
        };
        let allowed = match request {
            Request::RegisterDriver(descriptor) => descriptor.pd == pd,
            Request::UnregisterDriver(driver) => {
                self.drivers[self.resolve_driver(*driver)?].pd == pd
            }
            Request::AddDevice {
                parent: Some(parent),
                descriptor,
            } => {
                let parent = self.resolve_device(*parent)?;
                bound_to_pd(parent) && descriptor.resources.within(&self.devices[parent].resources)
            }
            Request::DeleteDevice(device) => self.devices[self.resolve_device(*device)?]
                .parent
                .is_some_and(bound_to_pd),
            // A driver may let go of a device bound to it (Linux `device_release_driver`) and
            // ask for a device to be bound to one of its own drivers (`device_attach`), as a
            // bus driver does to re-probe a transport whose device was plugged in or out: the
            // bind waits for the device's lock, so it runs after the unbind.
            Request::Unbind(device) => bound_to_pd(self.resolve_device(*device)?),
            Request::Bind { driver, .. } => self.drivers[self.resolve_driver(*driver)?].pd == pd,
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(Error::NotPermitted)
        }
    }

    fn authorize_callback(&self, pd: PdId, callback: CallbackId) -> Result<(u32, InFlight), Error> {
        let op = callback.operation();
        let flight = self
            .operations
            .get(op)
            .and_then(|operation| operation.in_flight)
            .filter(|flight| flight.sequence == callback.sequence())
            .ok_or(Error::NoSuchCallback)?;
        if flight.pd != pd {
            return Err(Error::NotPermitted);
        }
        Ok((op, flight))
    }

    // ----- the daemon loop ---------------------------------------------------------------

    fn new_operation(
        &mut self,
        request: Option<(RequestId, Requester)>,
        task: Task,
    ) -> Result<u32, Error> {
        let operation = Operation {
            request,
            task,
            links: Links::default(),
            wait: Wait::Running,
            in_flight: None,
            reply: None,
            owned_locks: 0,
            slot_granted: false,
        };
        self.operations
            .insert(operation)
            .map(|(index, _)| index)
            .map_err(|_| Error::NoSpace)
    }

    fn make_ready(&mut self, op: u32) {
        self.operations[op].wait = Wait::Ready;
        let mut ready = self.ready;
        ready.push_back(&mut self.operations, op, OperationLinks);
        self.ready = ready;
    }

    /// Runs operations until every one is waiting or done.
    fn run(&mut self, out: &mut dyn FnMut(Effect)) {
        loop {
            self.schedule_internal_work();
            let mut ready = self.ready;
            let next = ready.pop_front(&mut self.operations, OperationLinks);
            self.ready = ready;
            let Some(op) = next else {
                break;
            };
            self.operations[op].wait = Wait::Running;
            self.step(op, out);
        }
    }

    /// Turns queued internal work (devices to probe, dead drivers to clean up) into operations
    /// while there is room. The work is recorded in the devices and drivers themselves, so a
    /// full operation table delays it but never loses it.
    fn schedule_internal_work(&mut self) {
        while !self.operations.is_full() {
            let task = if let Some(device) = self.pop_pending_probe() {
                Task::Probe(ProbeTask {
                    device: self.device_id(device),
                    only: None,
                    enable_autoprobe: false,
                    walk: Walk::default(),
                    stage: ProbeStage::Lock,
                })
            } else if let Some(driver) = {
                let mut cleanup = self.cleanup;
                let driver = cleanup.pop_front(&mut self.drivers, CleanupLinks);
                self.cleanup = cleanup;
                driver
            } {
                let entry = &mut self.drivers[driver];
                entry.cleanup_queued = false;
                entry.has_unregister_operation = true;
                Task::Unregister(UnregisterTask {
                    driver: self.driver_id(driver),
                    stage: UnregisterStage::Quiesce,
                })
            } else {
                return;
            };
            if let Ok(op) = self.new_operation(None, task) {
                self.make_ready(op);
            }
        }
    }

    fn pop_pending_probe(&mut self) -> Option<u32> {
        if self.shut_down {
            return None;
        }
        let mut pending = self.pending_probe;
        let device = pending.pop_front(&mut self.devices, QueueLinks);
        self.pending_probe = pending;
        if let Some(device) = device {
            self.devices[device].queue = Queue::None;
        }
        device
    }

    fn step(&mut self, op: u32, out: &mut dyn FnMut(Effect)) {
        loop {
            let mut task = core::mem::replace(&mut self.operations[op].task, Task::Running);
            let step = match &mut task {
                Task::Running => Step::Blocked,
                Task::Add { parent, descriptor } => self.step_add(op, *parent, descriptor),
                Task::Register(descriptor) => self.step_register(descriptor),
                Task::Probe(probe) => self.step_probe(op, probe, out),
                Task::Attach(attach) => self.step_attach(op, attach, out),
                Task::Teardown(teardown) => self.step_teardown(op, teardown, out),
                Task::Unregister(unregister) => self.step_unregister(op, unregister, out),
                Task::Power(power) => self.step_power(op, power, out),
                Task::Rescan => self.step_rescan(),
            };
            match step {
                Step::Blocked => {
                    self.operations[op].task = task;
                    return;
                }
                Step::Become(next) => self.operations[op].task = next,
                Step::Done(result) => {
                    self.finish(op, result, out);
                    return;
                }
            }
        }
    }

    fn finish(&mut self, op: u32, result: Result<Outcome, Error>, out: &mut dyn FnMut(Effect)) {
        self.drop_slot_grant(op);
        let Some(operation) = self.operations.remove(op) else {
            return;
        };
        debug_assert_eq!(operation.owned_locks, 0, "operation finished holding locks");
        match operation.request {
            Some((request, requester)) => {
                self.stats.completions += 1;
                out(Effect::Complete(crate::model::Completion {
                    request,
                    requester,
                    result,
                }));
            }
            None => {
                if let Err(error) = result {
                    log::debug!("internal operation ended: {error:?}");
                }
            }
        }
    }

    // ----- locks -------------------------------------------------------------------------

    /// Takes `device`'s lock for `op`, or queues `op` on it (FIFO) and returns false.
    fn lock(&mut self, op: u32, device: u32) -> bool {
        match self.devices[device].lock_owner {
            None => {
                self.devices[device].lock_owner = Some(op);
                self.operations[op].owned_locks += 1;
                true
            }
            Some(owner) if owner == op => true,
            Some(_) => {
                let mut waiters = self.devices[device].lock_waiters;
                waiters.push_back(&mut self.operations, op, OperationLinks);
                self.devices[device].lock_waiters = waiters;
                self.operations[op].wait = Wait::Lock(device);
                false
            }
        }
    }

    /// Releases `device`'s lock, handing it straight to the first waiter.
    fn unlock(&mut self, op: u32, device: u32) {
        debug_assert_eq!(self.devices[device].lock_owner, Some(op));
        self.operations[op].owned_locks -= 1;
        let mut waiters = self.devices[device].lock_waiters;
        let next = waiters.pop_front(&mut self.operations, OperationLinks);
        self.devices[device].lock_waiters = waiters;
        self.devices[device].lock_owner = next;
        if let Some(waiter) = next {
            self.operations[waiter].owned_locks += 1;
            self.make_ready(waiter);
        }
    }

    fn owns(&self, op: u32, device: u32) -> bool {
        self.devices[device].lock_owner == Some(op)
    }

    fn release_if_owned(&mut self, op: u32, device: Option<(u32, u32)>) {
        if let Some((index, generation)) = device {
            if self.devices.is_live(index, generation) && self.owns(op, index) {
                self.unlock(op, index);
            }
        }
    }

    /// Locks every device of `scope` in pre-order (parents before children). Returns false
    /// when `op` had to queue on a lock; calling it again resumes (locks already owned are
    /// skipped, and a device that vanished meanwhile is simply no longer visited).
    fn lock_scope(&mut self, op: u32, scope: Scope) -> bool {
        let mut node = self.scope_first(scope);
        while let Some(current) = node {
            if !self.lock(op, current) {
                return false;
            }
            node = self.preorder_next(current, scope);
        }
        true
    }

    fn unlock_scope(&mut self, op: u32, scope: Scope) {
        let mut node = self.scope_first(scope);
        while let Some(current) = node {
            if self.owns(op, current) {
                self.unlock(op, current);
            }
            node = self.preorder_next(current, scope);
        }
    }

    // ----- tree traversal ----------------------------------------------------------------

    fn scope_first(&self, scope: Scope) -> Option<u32> {
        match scope {
            Scope::Subtree(root) => Some(root),
            Scope::All => self.roots.head,
        }
    }

    fn preorder_next(&self, node: u32, scope: Scope) -> Option<u32> {
        if let Some(child) = self.devices[node].children.head {
            return Some(child);
        }
        let mut node = node;
        loop {
            if scope == Scope::Subtree(node) {
                return None;
            }
            if let Some(sibling) = self.devices[node].sibling.next {
                return Some(sibling);
            }
            node = self.devices[node].parent?;
        }
    }

    fn first_leaf(&self, node: u32) -> u32 {
        let mut node = node;
        while let Some(child) = self.devices[node].children.head {
            node = child;
        }
        node
    }

    fn postorder_first(&self, scope: Scope) -> Option<u32> {
        self.scope_first(scope).map(|node| self.first_leaf(node))
    }

    fn postorder_next(&self, node: u32, scope: Scope) -> Option<u32> {
        if scope == Scope::Subtree(node) {
            return None;
        }
        match self.devices[node].sibling.next {
            Some(sibling) => Some(self.first_leaf(sibling)),
            None => self.devices[node].parent,
        }
    }

    fn is_ancestor(&self, ancestor: u32, node: u32) -> bool {
        let mut current = self.devices[node].parent;
        while let Some(parent) = current {
            if parent == ancestor {
                return true;
            }
            current = self.devices[parent].parent;
        }
        false
    }

    // ----- callbacks ---------------------------------------------------------------------

    /// Sends a callback for `op`, or queues `op` for a callback slot and returns false.
    fn begin_callback(
        &mut self,
        op: u32,
        kind: CallbackKind,
        device: u32,
        driver: u32,
        out: &mut dyn FnMut(Effect),
    ) -> bool {
        if self.operations[op].slot_granted {
            self.operations[op].slot_granted = false;
        } else if self.slots_taken >= self.config.max_callbacks_in_flight {
            let mut waiters = self.slot_waiters;
            waiters.push_back(&mut self.operations, op, OperationLinks);
            self.slot_waiters = waiters;
            self.operations[op].wait = Wait::CallbackSlot;
            return false;
        } else {
            self.slots_taken += 1;
        }
        let sequence = self.next_callback;
        self.next_callback += 1;
        let pd = self.drivers[driver].pd;
        self.drivers[driver].in_flight += 1;
        let operation = &mut self.operations[op];
        operation.in_flight = Some(InFlight {
            sequence,
            pd,
            kind,
            device,
            driver,
        });
        operation.wait = Wait::Callback;
        self.stats.callbacks += 1;
        if kind == CallbackKind::Probe {
            self.stats.probe_attempts += 1;
        }
        self.in_flight_count += 1;
        let in_flight = self.in_flight_count as u64;
        self.stats.max_callbacks_in_flight = self.stats.max_callbacks_in_flight.max(in_flight);
        out(Effect::Callback(crate::model::Callback {
            id: CallbackId::from_parts(op, sequence),
            pd,
            kind,
            device: self.device_id(device),
            driver: self.driver_id(driver),
        }));
        true
    }

    fn end_callback(&mut self, op: u32, reply: Reply) {
        let Some(flight) = self.operations[op].in_flight.take() else {
            return;
        };
        self.in_flight_count -= 1;
        self.release_slot();
        // The driver still counts the callback as in flight until the operation has acted on
        // the reply (bound the device, say): an unregister waiting for the driver to go idle
        // must see that binding.
        self.operations[op].reply = Some((reply, flight.driver));
        self.make_ready(op);
    }

    /// Gives a callback slot back: to the first operation waiting for one, or to the pool.
    fn release_slot(&mut self) {
        let mut waiters = self.slot_waiters;
        let next = waiters.pop_front(&mut self.operations, OperationLinks);
        self.slot_waiters = waiters;
        match next {
            Some(waiter) => {
                self.operations[waiter].slot_granted = true;
                self.make_ready(waiter);
            }
            None => self.slots_taken -= 1,
        }
    }

    /// An operation that was handed a slot but will not send a callback after all.
    fn drop_slot_grant(&mut self, op: u32) {
        if let Some(operation) = self.operations.get_mut(op) {
            if operation.slot_granted {
                operation.slot_granted = false;
                self.release_slot();
            }
        }
    }

    /// The reply to `op`'s callback, once; from here on the callback no longer counts as in
    /// flight for its driver. The caller acts on the reply before it returns.
    fn take_reply(&mut self, op: u32) -> Option<Reply> {
        let (reply, driver) = self.operations[op].reply.take()?;
        let entry = &mut self.drivers[driver];
        entry.in_flight -= 1;
        if entry.in_flight == 0 {
            let mut waiters = entry.idle_waiters;
            while let Some(waiter) = waiters.pop_front(&mut self.operations, OperationLinks) {
                self.make_ready(waiter);
            }
            self.drivers[driver].idle_waiters = waiters;
        }
        Some(reply)
    }

    // ----- devices and bindings ----------------------------------------------------------

    fn create_device(
        &mut self,
        parent: Option<u32>,
        descriptor: &DeviceDescriptor,
        added_by_binding: bool,
    ) -> Result<u32, Error> {
        let bus_index = descriptor.bus.index();
        let bus = self
            .buses
            .resolve(bus_index, descriptor.bus.generation())
            .ok_or(Error::StaleBus)?;
        let device = Device {
            bus: bus_index,
            parent,
            children: List::new(),
            sibling: Links::default(),
            bus_links: Links::default(),
            sequence: bus.next_sequence,
            driver: None,
            driver_links: Links::default(),
            state: DeviceState::Active,
            match_data: descriptor.match_data.clone(),
            resources: descriptor.resources.clone(),
            lock_owner: None,
            lock_waiters: List::new(),
            added_by_binding,
            autoprobe: true,
            queue: Queue::None,
            queue_links: Links::default(),
        };
        let (index, _) = self.devices.insert(device).map_err(|_| Error::NoSpace)?;
        match parent {
            Some(parent) => {
                let mut children = self.devices[parent].children;
                children.push_back(&mut self.devices, index, SiblingLinks);
                self.devices[parent].children = children;
            }
            None => {
                let mut roots = self.roots;
                roots.push_back(&mut self.devices, index, SiblingLinks);
                self.roots = roots;
            }
        }
        let bus = &mut self.buses[bus_index];
        bus.next_sequence += 1;
        bus.devices_version += 1;
        let mut list = bus.devices;
        list.push_back(&mut self.devices, index, BusDeviceLinks);
        self.buses[bus_index].devices = list;
        Ok(index)
    }

    /// Deletes a childless device whose lock `op` holds. Operations queued on its lock wake
    /// and find it gone.
    fn free_device(&mut self, op: u32, device: u32) {
        debug_assert!(self.devices[device].children.is_empty());
        let mut waiters = self.devices[device].lock_waiters;
        while let Some(waiter) = waiters.pop_front(&mut self.operations, OperationLinks) {
            self.make_ready(waiter);
        }
        self.devices[device].lock_waiters = waiters;
        if self.owns(op, device) {
            self.operations[op].owned_locks -= 1;
        }
        self.unbind(device);
        self.dequeue(device);
        match self.devices[device].parent {
            Some(parent) => {
                let mut children = self.devices[parent].children;
                children.remove(&mut self.devices, device, SiblingLinks);
                self.devices[parent].children = children;
            }
            None => {
                let mut roots = self.roots;
                roots.remove(&mut self.devices, device, SiblingLinks);
                self.roots = roots;
            }
        }
        let bus_index = self.devices[device].bus;
        let mut list = self.buses[bus_index].devices;
        list.remove(&mut self.devices, device, BusDeviceLinks);
        let bus = &mut self.buses[bus_index];
        bus.devices = list;
        bus.devices_version += 1;
        self.devices.remove(device);
    }

    fn bind(&mut self, device: u32, driver: u32) {
        self.dequeue(device);
        self.devices[device].driver = Some(driver);
        let mut list = self.drivers[driver].devices;
        list.push_back(&mut self.devices, device, DriverDeviceLinks);
        self.drivers[driver].devices = list;
        self.stats.binds += 1;
    }

    fn unbind(&mut self, device: u32) {
        if let Some(driver) = self.devices[device].driver {
            let mut list = self.drivers[driver].devices;
            list.remove(&mut self.devices, device, DriverDeviceLinks);
            self.drivers[driver].devices = list;
            self.devices[device].driver = None;
        }
    }

    fn dequeue(&mut self, device: u32) {
        let mut list = match self.devices[device].queue {
            Queue::None => return,
            Queue::PendingProbe => self.pending_probe,
            Queue::Deferred => self.deferred,
        };
        list.remove(&mut self.devices, device, QueueLinks);
        match self.devices[device].queue {
            Queue::PendingProbe => self.pending_probe = list,
            Queue::Deferred => self.deferred = list,
            Queue::None => {}
        }
        self.devices[device].queue = Queue::None;
    }

    /// Asks for `device` to be probed by its own operation when there is room for one.
    fn queue_probe(&mut self, device: u32) {
        if self.devices[device].queue == Queue::PendingProbe {
            return;
        }
        self.dequeue(device);
        let mut pending = self.pending_probe;
        pending.push_back(&mut self.devices, device, QueueLinks);
        self.pending_probe = pending;
        self.devices[device].queue = Queue::PendingProbe;
    }

    /// A probe answered "defer": park the device until the next successful bind.
    fn park_deferred(&mut self, device: u32) {
        self.dequeue(device);
        let mut deferred = self.deferred;
        deferred.push_back(&mut self.devices, device, QueueLinks);
        self.deferred = deferred;
        self.devices[device].queue = Queue::Deferred;
    }

    /// Linux's deferred-probe trigger: after a successful bind, retry every parked device.
    fn trigger_deferred(&mut self) {
        let mut deferred = self.deferred;
        while let Some(device) = deferred.pop_front(&mut self.devices, QueueLinks) {
            self.devices[device].queue = Queue::None;
            let mut pending = self.pending_probe;
            pending.push_back(&mut self.devices, device, QueueLinks);
            self.pending_probe = pending;
            self.devices[device].queue = Queue::PendingProbe;
        }
        self.deferred = deferred;
    }

    fn probe_eligible(&self, device: u32, driver: u32) -> bool {
        let device = &self.devices[device];
        let driver = &self.drivers[driver];
        device.driver.is_none()
            && device.state == DeviceState::Active
            && driver.state == DriverState::Live
            && driver.bus == device.bus
            && driver.match_table.matches(&device.match_data)
    }

    /// The next driver of `device`'s bus to probe it with (device-driven walk).
    fn next_driver(&mut self, device: u32, walk: &mut Walk, only: Option<DriverId>) -> Option<u32> {
        let bus = self.devices[device].bus;
        let mut candidate = match walk.cursor {
            Some((index, generation)) if self.drivers.is_live(index, generation) => {
                self.drivers[index].bus_links.next
            }
            _ => self.buses[bus].drivers.head,
        };
        while let Some(index) = candidate {
            let driver = &self.drivers[index];
            candidate = driver.bus_links.next;
            if only.is_some_and(|only| only.index() != index) {
                continue;
            }
            if !self.probe_eligible(device, index) {
                continue;
            }
            if driver.sequence <= walk.high_water {
                self.stats.pairs_skipped += 1;
                continue;
            }
            walk.high_water = driver.sequence;
            walk.cursor = Some((index, self.drivers.generation(index)));
            return Some(index);
        }
        None
    }

    /// The next device of `driver`'s bus to probe with it (driver-driven walk).
    fn next_device(&mut self, driver: u32, walk: &mut Walk) -> Option<u32> {
        let bus = self.drivers[driver].bus;
        let mut candidate = match walk.cursor {
            Some((index, generation)) if self.devices.is_live(index, generation) => {
                self.devices[index].bus_links.next
            }
            _ => self.buses[bus].devices.head,
        };
        while let Some(index) = candidate {
            let device = &self.devices[index];
            candidate = device.bus_links.next;
            if !device.autoprobe || !self.probe_eligible(index, driver) {
                continue;
            }
            if device.sequence <= walk.high_water {
                self.stats.pairs_skipped += 1;
                continue;
            }
            walk.high_water = device.sequence;
            walk.cursor = Some((index, self.devices.generation(index)));
            return Some(index);
        }
        None
    }

    /// After a failed probe: if the list changed since the walk (re)started, start again from
    /// the beginning (Stern's rule); the high-water mark keeps tried pairs from being retried.
    fn restart_if_changed(&mut self, walk: &mut Walk, version: u64) {
        if walk.seen_version != version {
            walk.seen_version = version;
            walk.cursor = None;
            self.stats.walk_restarts += 1;
        }
    }

    // ----- operations --------------------------------------------------------------------

    fn step_add(
        &mut self,
        op: u32,
        parent: Option<DeviceId>,
        descriptor: &DeviceDescriptor,
    ) -> Step {
        let parent_index = match parent {
            Some(parent) => match self.resolve_device(parent) {
                Ok(index) => {
                    if !self.lock(op, index) {
                        return Step::Blocked;
                    }
                    Some(index)
                }
                Err(error) => return Step::Done(Err(error)),
            },
            None => None,
        };
        let created = self.create_device(parent_index, descriptor, false);
        if let Some(parent) = parent_index {
            self.unlock(op, parent);
        }
        match created {
            Ok(device) => Step::Become(Task::Probe(ProbeTask {
                device: self.device_id(device),
                only: None,
                enable_autoprobe: false,
                walk: Walk::default(),
                stage: ProbeStage::Lock,
            })),
            Err(error) => Step::Done(Err(error)),
        }
    }

    fn step_register(&mut self, descriptor: &DriverDescriptor) -> Step {
        let bus_index = descriptor.bus.index();
        let Some(bus) = self.buses.resolve(bus_index, descriptor.bus.generation()) else {
            return Step::Done(Err(Error::StaleBus));
        };
        let driver = Driver {
            bus: bus_index,
            pd: descriptor.pd,
            name: descriptor.name.clone(),
            match_table: descriptor.match_table.clone(),
            bus_links: Links::default(),
            sequence: bus.next_sequence,
            devices: List::new(),
            state: DriverState::Live,
            in_flight: 0,
            idle_waiters: List::new(),
            has_unregister_operation: false,
            cleanup_queued: false,
            cleanup_links: Links::default(),
        };
        let Ok((index, _)) = self.drivers.insert(driver) else {
            return Step::Done(Err(Error::NoSpace));
        };
        let bus = &mut self.buses[bus_index];
        bus.next_sequence += 1;
        bus.drivers_version += 1;
        let mut list = bus.drivers;
        list.push_back(&mut self.drivers, index, BusDriverLinks);
        self.buses[bus_index].drivers = list;
        Step::Become(Task::Attach(AttachTask {
            driver: self.driver_id(index),
            walk: Walk::default(),
            bound: 0,
            stage: AttachStage::Start,
        }))
    }

    /// Probing a device: walk its bus's drivers (Stern's step 4), holding the device's lock.
    fn step_probe(&mut self, op: u32, task: &mut ProbeTask, out: &mut dyn FnMut(Effect)) -> Step {
        let device = task.device.index();
        loop {
            match task.stage {
                ProbeStage::Lock => {
                    if let Err(error) = self.resolve_device(task.device) {
                        return Step::Done(Err(error));
                    }
                    if !self.lock(op, device) {
                        return Step::Blocked;
                    }
                    self.dequeue(device);
                    if task.enable_autoprobe {
                        self.devices[device].autoprobe = true;
                    }
                    if let Some(result) = self.probe_precheck(task) {
                        self.unlock(op, device);
                        return Step::Done(result);
                    }
                    let bus = self.devices[device].bus;
                    task.walk = Walk {
                        cursor: None,
                        seen_version: self.buses[bus].drivers_version,
                        high_water: 0,
                    };
                    task.stage = ProbeStage::Walk;
                }
                ProbeStage::Walk => match self.next_driver(device, &mut task.walk, task.only) {
                    Some(driver) => {
                        task.stage = ProbeStage::Issue(driver, self.drivers.generation(driver));
                    }
                    None => {
                        self.unlock(op, device);
                        let result = if task.only.is_some() {
                            Err(Error::NoMatch)
                        } else {
                            Ok(Outcome::Device {
                                device: task.device,
                                driver: None,
                            })
                        };
                        return Step::Done(result);
                    }
                },
                ProbeStage::Issue(driver, generation) => {
                    if !self.drivers.is_live(driver, generation)
                        || !self.probe_eligible(device, driver)
                    {
                        self.drop_slot_grant(op);
                        task.stage = ProbeStage::Walk;
                        continue;
                    }
                    if self.begin_callback(op, CallbackKind::Probe, device, driver, out) {
                        task.stage = ProbeStage::Awaiting(driver);
                    }
                    return Step::Blocked;
                }
                ProbeStage::Awaiting(driver) => {
                    let Some(reply) = self.take_reply(op) else {
                        return Step::Blocked;
                    };
                    match reply {
                        Reply::Status(CallbackStatus::Ok) => {
                            self.bind(device, driver);
                            self.unlock(op, device);
                            self.trigger_deferred();
                            return Step::Done(Ok(Outcome::Device {
                                device: task.device,
                                driver: Some(self.driver_id(driver)),
                            }));
                        }
                        Reply::Status(CallbackStatus::Defer) => {
                            self.park_deferred(device);
                            self.unlock(op, device);
                            return Step::Done(Ok(Outcome::Device {
                                device: task.device,
                                driver: None,
                            }));
                        }
                        failure => {
                            if task.only.is_some() {
                                self.unlock(op, device);
                                return Step::Done(Err(failure_error(failure)));
                            }
                            let bus = self.devices[device].bus;
                            let version = self.buses[bus].drivers_version;
                            self.restart_if_changed(&mut task.walk, version);
                            task.stage = ProbeStage::Walk;
                        }
                    }
                }
            }
        }
    }

    /// Why a probe need not walk at all, once the device's lock is held.
    fn probe_precheck(&self, task: &ProbeTask) -> Option<Result<Outcome, Error>> {
        let device = &self.devices[task.device.index()];
        if self.shut_down {
            return Some(Err(Error::ShutDown));
        }
        if let Some(bound) = device.driver {
            return Some(if task.only.is_some() {
                Err(Error::Busy)
            } else {
                Ok(Outcome::Device {
                    device: task.device,
                    driver: Some(self.driver_id(bound)),
                })
            });
        }
        if let Some(only) = task.only {
            let Ok(driver) = self.resolve_driver(only) else {
                return Some(Err(Error::StaleDriver));
            };
            if !self.probe_eligible(task.device.index(), driver) {
                return Some(Err(
                    if self.drivers[driver].state == DriverState::Live
                        && device.state == DeviceState::Active
                    {
                        Error::NoMatch
                    } else {
                        Error::Busy
                    },
                ));
            }
        } else if device.state != DeviceState::Active {
            // Probed again when it resumes.
            return Some(Ok(Outcome::Device {
                device: task.device,
                driver: None,
            }));
        }
        None
    }

    /// A new driver: walk its bus's devices (Stern's step 5), one device lock at a time.
    fn step_attach(&mut self, op: u32, task: &mut AttachTask, out: &mut dyn FnMut(Effect)) -> Step {
        let driver = task.driver.index();
        let done = |task: &AttachTask| {
            Step::Done(Ok(Outcome::Driver {
                driver: task.driver,
                bound: task.bound,
            }))
        };
        loop {
            if !self.drivers.is_live(driver, task.driver.generation()) {
                // Unregistered (or cleaned up after its PD died) while this walk waited.
                if let AttachStage::Lock(device, _) | AttachStage::Issue(device) = task.stage {
                    self.drop_slot_grant(op);
                    if self.devices.get(device).is_some() && self.owns(op, device) {
                        self.unlock(op, device);
                    }
                }
                return match task.stage {
                    AttachStage::Start => Step::Done(Err(Error::StaleDriver)),
                    _ => done(task),
                };
            }
            match task.stage {
                AttachStage::Start => {
                    if let Err(error) = self.resolve_driver(task.driver) {
                        return Step::Done(Err(error));
                    }
                    let bus = self.drivers[driver].bus;
                    task.walk.seen_version = self.buses[bus].devices_version;
                    task.stage = AttachStage::Select;
                }
                AttachStage::Select => {
                    if self.drivers[driver].state != DriverState::Live {
                        return done(task);
                    }
                    match self.next_device(driver, &mut task.walk) {
                        Some(device) => {
                            task.stage = AttachStage::Lock(device, self.devices.generation(device));
                        }
                        None => return done(task),
                    }
                }
                AttachStage::Lock(device, generation) => {
                    if !self.devices.is_live(device, generation) {
                        let bus = self.drivers[driver].bus;
                        let version = self.buses[bus].devices_version;
                        self.restart_if_changed(&mut task.walk, version);
                        task.stage = AttachStage::Select;
                        continue;
                    }
                    if !self.lock(op, device) {
                        return Step::Blocked;
                    }
                    if self.devices[device].autoprobe && self.probe_eligible(device, driver) {
                        task.stage = AttachStage::Issue(device);
                    } else {
                        self.unlock(op, device);
                        task.stage = AttachStage::Select;
                    }
                }
                AttachStage::Issue(device) => {
                    if !self.probe_eligible(device, driver) {
                        self.drop_slot_grant(op);
                        self.unlock(op, device);
                        task.stage = AttachStage::Select;
                        continue;
                    }
                    if self.begin_callback(op, CallbackKind::Probe, device, driver, out) {
                        task.stage = AttachStage::Awaiting(device);
                    }
                    return Step::Blocked;
                }
                AttachStage::Awaiting(device) => {
                    let Some(reply) = self.take_reply(op) else {
                        return Step::Blocked;
                    };
                    match reply {
                        Reply::Status(CallbackStatus::Ok) => {
                            self.bind(device, driver);
                            task.bound += 1;
                            self.unlock(op, device);
                            self.trigger_deferred();
                        }
                        Reply::Status(CallbackStatus::Defer) => {
                            self.park_deferred(device);
                            self.unlock(op, device);
                        }
                        Reply::Died => {
                            self.unlock(op, device);
                            return Step::Done(Err(Error::DriverDied));
                        }
                        Reply::Status(CallbackStatus::NotMine | CallbackStatus::Failed(_)) => {
                            self.unlock(op, device);
                            let bus = self.drivers[driver].bus;
                            let version = self.buses[bus].devices_version;
                            self.restart_if_changed(&mut task.walk, version);
                        }
                    }
                    task.stage = AttachStage::Select;
                }
            }
        }
    }

    /// `device_del` and unbinding: lock the parent (for a delete), then the subtree parents
    /// first; then tear down children first, calling remove under each device's lock.
    fn step_teardown(
        &mut self,
        op: u32,
        task: &mut TeardownTask,
        out: &mut dyn FnMut(Effect),
    ) -> Step {
        let target = task.target.index();
        loop {
            match task.stage {
                TeardownStage::LockParent => {
                    if let Err(error) = self.resolve_device(task.target) {
                        self.release_if_owned(op, task.parent);
                        return Step::Done(Err(error));
                    }
                    if task.mode == TeardownMode::Delete {
                        if let Some(parent) = self.devices[target].parent {
                            task.parent = Some((parent, self.devices.generation(parent)));
                            if !self.lock(op, parent) {
                                return Step::Blocked;
                            }
                        }
                    }
                    task.stage = TeardownStage::LockSubtree;
                }
                TeardownStage::LockSubtree => {
                    if let Err(error) = self.resolve_device(task.target) {
                        self.release_if_owned(op, task.parent);
                        return Step::Done(Err(error));
                    }
                    if !self.lock_scope(op, Scope::Subtree(target)) {
                        return Step::Blocked;
                    }
                    if let TeardownMode::Unbind {
                        expected: Some(expected),
                        ..
                    } = task.mode
                    {
                        if self.devices[target].driver != Some(expected) {
                            // Unbound (and perhaps rebound elsewhere) meanwhile: not ours.
                            self.unlock_scope(op, Scope::Subtree(target));
                            return Step::Done(Ok(Outcome::Done));
                        }
                    }
                    task.stage = TeardownStage::Work;
                }
                TeardownStage::Work => {
                    let node = self.next_to_tear_down(target, task.mode);
                    let needs_remove = self.devices[node]
                        .driver
                        .is_some_and(|driver| self.drivers[driver].state != DriverState::Dead);
                    if needs_remove {
                        task.stage = TeardownStage::Issue(node);
                        continue;
                    }
                    self.unbind(node);
                    if node != target {
                        self.free_device(op, node);
                        continue;
                    }
                    return match task.mode {
                        TeardownMode::Delete => {
                            self.free_device(op, target);
                            self.release_if_owned(op, task.parent);
                            Step::Done(Ok(Outcome::Done))
                        }
                        TeardownMode::Unbind { manual, .. } => {
                            if manual {
                                self.devices[target].autoprobe = false;
                                self.dequeue(target);
                            }
                            self.unlock_scope(op, Scope::Subtree(target));
                            Step::Done(Ok(Outcome::Done))
                        }
                    };
                }
                TeardownStage::Issue(node) => {
                    let Some(driver) = self.devices[node]
                        .driver
                        .filter(|driver| self.drivers[*driver].state != DriverState::Dead)
                    else {
                        self.drop_slot_grant(op);
                        task.stage = TeardownStage::Work;
                        continue;
                    };
                    if self.begin_callback(op, CallbackKind::Remove, node, driver, out) {
                        task.stage = TeardownStage::Awaiting(node);
                    }
                    return Step::Blocked;
                }
                TeardownStage::Awaiting(node) => {
                    if self.take_reply(op).is_none() {
                        return Step::Blocked;
                    }
                    // Whatever the driver answered, it no longer drives the device.
                    self.unbind(node);
                    task.stage = TeardownStage::Work;
                }
            }
        }
    }

    /// The next device to tear down: the first leaf of what must go (the whole subtree for a
    /// delete; the subtrees of the children the binding added for an unbind), else the target.
    fn next_to_tear_down(&self, target: u32, mode: TeardownMode) -> u32 {
        match mode {
            TeardownMode::Delete => self.first_leaf(target),
            TeardownMode::Unbind { .. } => self.devices[target]
                .children
                .iter(&self.devices, SiblingLinks)
                .find(|child| self.devices[*child].added_by_binding)
                .map_or(target, |child| self.first_leaf(child)),
        }
    }

    /// `driver_unregister` (and the cleanup after a driver's PD died).
    fn step_unregister(
        &mut self,
        op: u32,
        task: &mut UnregisterTask,
        out: &mut dyn FnMut(Effect),
    ) -> Step {
        let driver = task.driver.index();
        loop {
            match &mut task.stage {
                UnregisterStage::Start => {
                    if let Err(error) = self.resolve_driver(task.driver) {
                        return Step::Done(Err(error));
                    }
                    let entry = &mut self.drivers[driver];
                    if entry.has_unregister_operation {
                        return Step::Done(Err(Error::Busy));
                    }
                    entry.has_unregister_operation = true;
                    if entry.cleanup_queued {
                        // Its PD died and the cleanup has not started: this operation is it.
                        entry.cleanup_queued = false;
                        let mut cleanup = self.cleanup;
                        cleanup.remove(&mut self.drivers, driver, CleanupLinks);
                        self.cleanup = cleanup;
                    }
                    let entry = &mut self.drivers[driver];
                    if entry.state == DriverState::Live {
                        entry.state = DriverState::Unregistering;
                    }
                    task.stage = UnregisterStage::Quiesce;
                }
                UnregisterStage::Quiesce => {
                    // No new probe of the driver starts now; let the ones in flight finish.
                    if self.drivers[driver].in_flight > 0 {
                        let mut waiters = self.drivers[driver].idle_waiters;
                        waiters.push_back(&mut self.operations, op, OperationLinks);
                        self.drivers[driver].idle_waiters = waiters;
                        self.operations[op].wait = Wait::DriverIdle(driver);
                        return Step::Blocked;
                    }
                    task.stage = UnregisterStage::Pick;
                }
                UnregisterStage::Pick => match self.bound_device_children_first(driver) {
                    Some(device) => {
                        task.stage = UnregisterStage::Unbinding(TeardownTask {
                            target: self.device_id(device),
                            mode: TeardownMode::Unbind {
                                manual: false,
                                expected: Some(driver),
                            },
                            parent: None,
                            stage: TeardownStage::LockParent,
                        });
                    }
                    None => {
                        let bus = self.drivers[driver].bus;
                        let mut list = self.buses[bus].drivers;
                        list.remove(&mut self.drivers, driver, BusDriverLinks);
                        self.buses[bus].drivers = list;
                        self.buses[bus].drivers_version += 1;
                        self.drivers.remove(driver);
                        return Step::Done(Ok(Outcome::Done));
                    }
                },
                UnregisterStage::Unbinding(teardown) => {
                    let device = teardown.target;
                    match self.step_teardown(op, teardown, out) {
                        Step::Blocked => return Step::Blocked,
                        Step::Become(_) | Step::Done(_) => {}
                    }
                    if let Ok(index) = self.resolve_device(device) {
                        let entry = &self.devices[index];
                        if entry.driver.is_none() && entry.autoprobe {
                            self.queue_probe(index);
                        }
                    }
                    task.stage = UnregisterStage::Pick;
                }
            }
        }
    }

    /// A device bound to `driver` none of whose descendants is bound to it.
    fn bound_device_children_first(&self, driver: u32) -> Option<u32> {
        let mut device = self.drivers[driver].devices.head?;
        'descend: loop {
            let scope = Scope::Subtree(device);
            let mut node = self.preorder_next(device, scope);
            while let Some(current) = node {
                if self.devices[current].driver == Some(driver) {
                    device = current;
                    continue 'descend;
                }
                node = self.preorder_next(current, scope);
            }
            return Some(device);
        }
    }

    /// Suspend, resume and shutdown, for one subtree or the whole system: lock parents first,
    /// then call suspend/shutdown children first and resume parents first.
    fn step_power(&mut self, op: u32, task: &mut PowerTask, out: &mut dyn FnMut(Effect)) -> Step {
        loop {
            let scope = match task.scope {
                Some(root) => match self.resolve_device(root) {
                    Ok(index) => Scope::Subtree(index),
                    Err(error) => return Step::Done(Err(error)),
                },
                None => Scope::All,
            };
            match task.stage {
                PowerStage::Start => {
                    if let (Scope::Subtree(root), Transition::Resume) = (scope, task.transition) {
                        let parent_suspended = self.devices[root].parent.is_some_and(|parent| {
                            self.devices[parent].state != DeviceState::Active
                        });
                        if parent_suspended {
                            return Step::Done(Err(Error::ParentSuspended));
                        }
                    }
                    task.stage = PowerStage::Lock;
                }
                PowerStage::Lock => {
                    if !self.lock_scope(op, scope) {
                        return Step::Blocked;
                    }
                    let first = match task.transition {
                        Transition::Resume => self.scope_first(scope),
                        Transition::Suspend | Transition::Shutdown => self.postorder_first(scope),
                    };
                    task.stage = PowerStage::Run(first);
                }
                PowerStage::Run(None) => {
                    self.unlock_scope(op, scope);
                    if task.transition == Transition::Shutdown && scope == Scope::All {
                        self.shut_down = true;
                    }
                    return Step::Done(Ok(Outcome::Done));
                }
                PowerStage::Run(Some(node)) => {
                    if !self.owns(op, node) {
                        // Added after the locking pass (a child from a resume callback, a new
                        // root): lock again parents first, then restart the pass; devices
                        // already transitioned are skipped.
                        task.stage = PowerStage::Lock;
                        continue;
                    }
                    let target = power_target(task.transition);
                    let device = &self.devices[node];
                    let applies = match task.transition {
                        Transition::Suspend => device.state == DeviceState::Active,
                        Transition::Resume => device.state == DeviceState::Suspended,
                        Transition::Shutdown => device.state != DeviceState::ShutDown,
                    };
                    if !applies {
                        task.stage = PowerStage::Run(self.power_next(node, scope, task.transition));
                        continue;
                    }
                    let live_driver = device
                        .driver
                        .is_some_and(|driver| self.drivers[driver].state != DriverState::Dead);
                    if live_driver {
                        task.stage = PowerStage::Issue(node);
                        continue;
                    }
                    self.set_power_state(node, target);
                    task.stage = PowerStage::Run(self.power_next(node, scope, task.transition));
                }
                PowerStage::Issue(node) => {
                    let Some(driver) = self.devices[node]
                        .driver
                        .filter(|driver| self.drivers[*driver].state != DriverState::Dead)
                    else {
                        self.drop_slot_grant(op);
                        task.stage = PowerStage::Run(Some(node));
                        continue;
                    };
                    let kind = match task.transition {
                        Transition::Suspend => CallbackKind::Suspend,
                        Transition::Resume => CallbackKind::Resume,
                        Transition::Shutdown => CallbackKind::Shutdown,
                    };
                    if self.begin_callback(op, kind, node, driver, out) {
                        task.stage = PowerStage::Awaiting(node);
                    }
                    return Step::Blocked;
                }
                PowerStage::Awaiting(node) => {
                    let Some(reply) = self.take_reply(op) else {
                        return Step::Blocked;
                    };
                    match reply {
                        Reply::Status(CallbackStatus::Ok) | Reply::Died => {
                            self.set_power_state(node, power_target(task.transition));
                            task.stage =
                                PowerStage::Run(self.power_next(node, scope, task.transition));
                        }
                        Reply::Status(failure) => {
                            // Stop here: devices already transitioned stay so, the rest are
                            // untouched; the requester decides what to do.
                            self.unlock_scope(op, scope);
                            return Step::Done(Err(failure_error(Reply::Status(failure))));
                        }
                    }
                }
            }
        }
    }

    fn power_next(&self, node: u32, scope: Scope, transition: Transition) -> Option<u32> {
        match transition {
            Transition::Resume => self.preorder_next(node, scope),
            Transition::Suspend | Transition::Shutdown => self.postorder_next(node, scope),
        }
    }

    fn set_power_state(&mut self, device: u32, state: DeviceState) {
        self.devices[device].state = state;
        let entry = &self.devices[device];
        if state == DeviceState::Active && entry.driver.is_none() && entry.autoprobe {
            self.queue_probe(device);
        }
    }

    fn step_rescan(&mut self) -> Step {
        for index in 0..DEVICES as u32 {
            let Some(device) = self.devices.get_mut(index) else {
                continue;
            };
            device.autoprobe = true;
            if device.driver.is_none() && device.state == DeviceState::Active {
                self.queue_probe(index);
            }
        }
        Step::Done(Ok(Outcome::Done))
    }

    // ----- checks ------------------------------------------------------------------------

    /// Operation `op` holds a lock on a descendant of `device` (used by the lock-order check).
    pub(crate) fn holds_descendant_of(&self, op: u32, device: u32) -> bool {
        self.devices
            .iter()
            .any(|(index, entry)| entry.lock_owner == Some(op) && self.is_ancestor(device, index))
    }
}

fn power_task(scope: Option<DeviceId>, transition: Transition) -> Task {
    Task::Power(PowerTask {
        scope,
        transition,
        stage: PowerStage::Start,
    })
}

fn power_target(transition: Transition) -> DeviceState {
    match transition {
        Transition::Suspend => DeviceState::Suspended,
        Transition::Resume => DeviceState::Active,
        Transition::Shutdown => DeviceState::ShutDown,
    }
}

fn failure_error(reply: Reply) -> Error {
    match reply {
        Reply::Died => Error::DriverDied,
        Reply::Status(CallbackStatus::Failed(code)) => Error::CallbackFailed(code),
        Reply::Status(CallbackStatus::NotMine | CallbackStatus::Ok | CallbackStatus::Defer) => {
            Error::NoMatch
        }
    }
}
