//! `driver_register`: a driver added to its bus, then probed against the bus's devices.

use crate::manager::*;

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    pub(crate) fn step_register(&mut self, descriptor: &DriverDescriptor) -> Step {
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
}
