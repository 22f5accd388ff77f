//! Read-only views of devices, drivers and buses, and the queries that return them.

use super::*;

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
#[derive(Clone, Debug)]
pub struct DeviceInfo {
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
    /// What it is (copied out of the store).
    pub match_data: MatchData,
    /// Its resources (copied out of the store).
    pub resources: Resources,
    /// Who holds its lock.
    pub lock_owner: Option<LockOwner>,
    /// Parked by a deferred probe.
    pub deferred: bool,
    /// Added by its parent's driver (the `__device_add` path); removed when that binding ends.
    pub added_by_binding: bool,
    /// The PD whose driver it lost when that PD died, until it is bound again.
    pub last_pd: Option<PdId>,
}

/// A read-only view of a driver.
#[derive(Clone, Debug)]
pub struct DriverInfo<'a> {
    /// The driver.
    pub id: DriverId,
    /// Its bus.
    pub bus: BusId,
    /// Its PD.
    pub pd: PdId,
    /// Its name.
    pub name: &'a str,
    /// The devices it claims (copied out of the store).
    pub match_table: MatchTable,
    /// Its state.
    pub state: DriverState,
    /// How many devices are bound to it.
    pub bound_devices: u32,
    /// How many of its callbacks are in flight.
    pub callbacks_in_flight: u32,
    /// How long it may take to answer a callback.
    pub deadline: core::time::Duration,
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

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    /// A device.
    ///
    /// # Errors
    /// [`Error::StaleDevice`].
    pub fn device(&self, id: DeviceId) -> Result<DeviceInfo, Error> {
        let index = self.resolve_device(id)?;
        let device = &self.devices[index];
        Ok(DeviceInfo {
            id,
            bus: self.bus_id(device.bus),
            parent: device.parent.map(|parent| self.device_id(parent)),
            driver: device.driver.map(|driver| self.driver_id(driver)),
            state: device.state,
            match_data: self.store.match_data(&device.data),
            resources: self.store.resources_owned(&device.data),
            lock_owner: device.lock_owner.map(|op| self.lock_owner_of(op)),
            deferred: device.queue == Queue::Deferred,
            added_by_binding: device.added_by_binding,
            last_pd: device.last_pd.get(),
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
            match_table: self.store.match_table(driver.table),
            state: driver.state,
            bound_devices: driver.devices.len,
            callbacks_in_flight: driver.in_flight,
            deadline: driver.deadline,
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

    /// The request a callback in flight serves: an outside request's id, or the id the manager
    /// gave its own work (`None` for a callback no longer in flight).
    #[must_use]
    pub fn request_of(&self, callback: CallbackId) -> Option<RequestId> {
        let operation = self.operations.get(callback.operation())?;
        let flight = operation.in_flight.as_ref()?;
        if flight.sequence != callback.sequence() {
            return None;
        }
        operation.request.map(|(id, _)| id)
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
        self.operations.len() == 0
            && self.pending_probe.is_empty()
            && self.cleanup.is_empty()
            && self.attach.is_empty()
    }

    /// Has `pd` settled since it registered: it has a live driver, and none of its drivers
    /// has a callback in flight, a walk over its bus still to run or under way, or a cleanup
    /// pending? (What a supervisor waits for before it calls the PD healthy.)
    #[must_use]
    pub fn pd_settled(&self, pd: PdId) -> bool {
        let mut live = false;
        for index in self.drivers.indices() {
            let driver = &self.drivers[index];
            if driver.pd != pd {
                continue;
            }
            if driver.state != DriverState::Live
                || driver.in_flight > 0
                || driver.attach_queued
                || driver.cleanup_queued
            {
                return false;
            }
            live = true;
        }
        // A walk of one of its drivers (by handle: a walk left over from a driver since
        // removed is not the walk of the driver now at that index).
        let walking = (0..OPERATIONS as u32).any(|op| {
            self.operations.get(op).is_some_and(|operation| {
                matches!(&operation.task, Task::Attach(attach)
                    if self.resolve_driver(attach.driver).is_ok_and(|index| self.drivers[index].pd == pd))
            })
        });
        live && !walking
    }

    /// The drivers of `pd` (live or being cleaned up).
    pub fn drivers_of(&self, pd: PdId) -> impl Iterator<Item = DriverId> + '_ {
        self.drivers
            .indices()
            .filter(move |&index| self.drivers[index].pd == pd)
            .map(|index| self.driver_id(index))
    }

    /// The system has been shut down.
    #[must_use]
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }
}
