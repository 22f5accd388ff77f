//! Devices and bindings: creating and freeing devices, binding and unbinding, and the probe and
//! deferred-probe queues.

use super::*;

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    /// Puts a device's match data and resources in the store.
    ///
    /// # Errors
    /// [`Error::NoSpace`] when they do not fit (nothing is kept then).
    pub(crate) fn store_device_data(
        &mut self,
        descriptor: &DeviceDescriptor,
    ) -> Result<DeviceData, Error> {
        self.store
            .store_device(&descriptor.match_data, &descriptor.resources)
            .ok_or(Error::NoSpace)
    }

    /// Gives a device's data back to the store; every other holder's runs move down past the
    /// freed ones (the devices', and those of `device_add`s not done yet).
    pub(crate) fn release_device_data(&mut self, data: DeviceData) {
        let (windows, irqs) = self.store.release_device(&data);
        let moved = |held: &mut DeviceData| {
            held.windows = held.windows.after_free(windows);
            held.irqs = held.irqs.after_free(irqs);
        };
        self.devices
            .iter_mut()
            .for_each(|device| moved(&mut device.data));
        for operation in self.operations.iter_mut() {
            if let Task::Add { data, .. } = &mut operation.task {
                moved(data);
            }
        }
    }

    /// Gives a driver's match table back to the store; the other drivers' tables move down.
    pub(crate) fn release_table(&mut self, table: Run) {
        self.store.release_table(table);
        for driver in self.drivers.iter_mut() {
            driver.table = driver.table.after_free(table);
        }
    }

    /// A device's resources, where the store keeps them.
    pub(crate) fn resources_of(&self, device: u32) -> ResourcesRef<'_> {
        self.store.resources(&self.devices[device].data)
    }

    /// Does driver `driver`'s table claim device `device`?
    pub(crate) fn claims(&self, driver: u32, device: u32) -> bool {
        self.store
            .matches(self.drivers[driver].table, &self.devices[device].data)
    }

    /// Creates a device from data already in the store. On `Err` the data is still the
    /// caller's to release.
    pub(crate) fn create_device(
        &mut self,
        parent: Option<u32>,
        bus: BusId,
        data: DeviceData,
        added_by_binding: bool,
        added_by: Option<PdId>,
        out: &mut dyn FnMut(Effect),
    ) -> Result<u32, Error> {
        let bus_index = bus.index();
        let bus = self
            .buses
            .resolve(bus_index, bus.generation())
            .ok_or(Error::StaleBus)?;
        let device = Device {
            bus: bus_index,
            parent: parent.into(),
            children: List::new(),
            sibling: Links::default(),
            bus_links: Links::default(),
            sequence: bus.next_sequence,
            driver: Link::NONE,
            driver_links: Links::default(),
            state: DeviceState::Active,
            data,
            lock_owner: Link::NONE,
            lock_waiters: List::new(),
            added_by_binding,
            added_by: added_by.into(),
            autoprobe: true,
            queue: Queue::None,
            queue_links: Links::default(),
            last_pd: MaybePd::NONE,
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
        self.changed(ChangeKind::Added, index, None, out);
        Ok(index)
    }

    /// Tells the I/O layer what changed in the tree.
    pub(crate) fn changed(
        &self,
        kind: ChangeKind,
        device: u32,
        driver: Option<u32>,
        out: &mut dyn FnMut(Effect),
    ) {
        out(Effect::Changed(Change {
            kind,
            device: self.device_id(device),
            driver: driver.map(|driver| self.driver_id(driver)),
        }));
    }

    /// Deletes a childless device whose lock `op` holds. Operations queued on its lock wake
    /// and find it gone.
    pub(crate) fn free_device(&mut self, op: u32, device: u32, out: &mut dyn FnMut(Effect)) {
        debug_assert!(self.devices[device].children.is_empty());
        let mut waiters = self.devices[device].lock_waiters;
        while let Some(waiter) = waiters.pop_front(&mut self.operations, OperationLinks) {
            self.make_ready(waiter);
        }
        self.devices[device].lock_waiters = waiters;
        if self.owns(op, device) {
            self.operations[op].owned_locks -= 1;
        }
        self.unbind(device, out);
        self.dequeue(device);
        match self.devices[device].parent.get() {
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
        // The handle is reported before the slot's generation moves on.
        self.changed(ChangeKind::Removed, device, None, out);
        if let Some(removed) = self.devices.remove(device) {
            self.release_device_data(removed.data);
        }
    }

    pub(crate) fn bind(&mut self, device: u32, driver: u32, out: &mut dyn FnMut(Effect)) {
        self.dequeue(device);
        self.devices[device].driver = Link::from(Some(driver));
        self.devices[device].last_pd = MaybePd::NONE;
        let mut list = self.drivers[driver].devices;
        list.push_back(&mut self.devices, device, DriverDeviceLinks);
        self.drivers[driver].devices = list;
        self.stats.binds += 1;
        self.changed(ChangeKind::Bound, device, Some(driver), out);
    }

    pub(crate) fn unbind(&mut self, device: u32, out: &mut dyn FnMut(Effect)) {
        if let Some(driver) = self.devices[device].driver.get() {
            let mut list = self.drivers[driver].devices;
            list.remove(&mut self.devices, device, DriverDeviceLinks);
            self.drivers[driver].devices = list;
            self.devices[device].driver = Link::NONE;
            self.changed(ChangeKind::Unbound, device, Some(driver), out);
        }
    }

    pub(crate) fn dequeue(&mut self, device: u32) {
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
    pub(crate) fn queue_probe(&mut self, device: u32) {
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
    pub(crate) fn park_deferred(&mut self, device: u32) {
        self.dequeue(device);
        let mut deferred = self.deferred;
        deferred.push_back(&mut self.devices, device, QueueLinks);
        self.deferred = deferred;
        self.devices[device].queue = Queue::Deferred;
    }

    /// Linux's deferred-probe trigger: after a successful bind, retry every parked device.
    pub(crate) fn trigger_deferred(&mut self) {
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
}
