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

use crate::arena::{Arena, Link, LinkField, Links, List};
use crate::handle::Requester;
use crate::model::{
    CallbackKind, Change, ChangeKind, Config, DeviceDescriptor, DriverDescriptor, Effect, Error,
    Request, Stats,
};
use warden_vocabulary::{
    Answer, BusId, CallbackId, DeviceId, DeviceState, DriverId, Grant, Instant, MatchData,
    MatchTable, Name, Outcome, PdId, RequestId, Resources, ResourcesRef,
};

mod authority;
mod callbacks;
mod daemon;
mod devices;
mod events;
mod forest;
mod grants;
mod locks;
mod operations;
mod state;
mod store;
mod views;
mod walks;

pub(crate) use callbacks::*;
pub(crate) use forest::*;
pub(crate) use grants::Grants;
pub use grants::MAX_GRANTED_PDS;
pub(crate) use operations::*;
pub(crate) use state::*;
pub(crate) use store::{Claim, DeviceData, Run, Store};
pub use store::{CLAIMS_PER_DRIVER, IRQS_PER_DEVICE, TEXT_BYTES_PER_DEVICE, WINDOWS_PER_DEVICE};
pub use views::{BusInfo, DeviceInfo, DriverInfo, DriverState, LockOwner};
pub(crate) use walks::*;

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
    pub(crate) config: Config,
    pub(crate) buses: Arena<Bus, BUSES>,
    pub(crate) devices: Arena<Device, DEVICES>,
    pub(crate) drivers: Arena<Driver, DRIVERS>,
    pub(crate) operations: Arena<Operation, OPERATIONS>,
    /// The devices' match data and resources, the drivers' match tables.
    pub(crate) store: Store<DEVICES, DRIVERS>,
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
    /// Drivers registered whose walk over their bus's devices waits for an operation slot.
    pub(crate) attach: List,
    /// What the system description gives each driver PD; `None` until the first
    /// [`Manager::grant`]: then every PD without a grant is given nothing.
    pub(crate) grants: Option<Grants>,
    /// The latest time the manager was told ([`Manager::advance_to`]).
    pub(crate) now: Instant,
    pub(crate) next_request: u32,
    pub(crate) next_callback: u64,
    pub(crate) shut_down: bool,
    pub(crate) stats: Stats,
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
            store: Store::new(),
            roots: List::new(),
            ready: List::new(),
            slot_waiters: List::new(),
            slots_taken: 0,
            in_flight_count: 0,
            pending_probe: List::new(),
            deferred: List::new(),
            cleanup: List::new(),
            attach: List::new(),
            grants: None,
            now: Instant::ZERO,
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

    /// Time passes: the manager's clock moves to `now` (never back). Callbacks sent from here
    /// on are stamped with it; their deadlines count from it.
    pub fn advance_to(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// The manager's clock (the latest time it was told).
    #[must_use]
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Devices parked after a probe answered Defer, waiting for the next bind to retry them.
    #[must_use]
    pub fn deferred_devices(&self) -> u32 {
        self.deferred.len
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
}
