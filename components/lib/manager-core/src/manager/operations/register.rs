//! `driver_register`: a driver added to its bus at once (its requester learns the handle in the
//! same call), then probed against the bus's devices as the manager's own work.

use crate::manager::*;

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    /// Adds the driver to its bus's list (bumping `drivers_version`, so walks in progress see
    /// it) and queues its walk over the bus's devices. Needs no operation slot: only a free
    /// entry in the driver table.
    pub(crate) fn register_now(
        &mut self,
        descriptor: &DriverDescriptor,
    ) -> Result<DriverId, Error> {
        let bus_index = descriptor.bus.index();
        let Some(bus) = self.buses.resolve(bus_index, descriptor.bus.generation()) else {
            return Err(Error::StaleBus);
        };
        let sequence = bus.next_sequence;
        // One PD may not fill the table and lock the others out (a restarted PD among them).
        let registered = self
            .drivers
            .iter()
            .filter(|(_, driver)| driver.pd == descriptor.pd && driver.state != DriverState::Dead)
            .count();
        if registered >= self.config.drivers_per_pd {
            return Err(Error::OverQuota);
        }
        if self.drivers.is_full() {
            return Err(Error::NoSpace);
        }
        // Nor may it fill the store's claims: its drivers hold at most their average share
        // (a full table always fits).
        let claims: usize = self
            .drivers
            .iter()
            .filter(|(_, driver)| driver.pd == descriptor.pd && driver.state != DriverState::Dead)
            .map(|(_, driver)| driver.table.len())
            .sum();
        let share = self
            .config
            .drivers_per_pd
            .saturating_mul(crate::CLAIMS_PER_DRIVER)
            .max(warden_vocabulary::MAX_MATCH_ENTRIES);
        if claims + descriptor.match_table.entries.len() > share {
            return Err(Error::OverQuota);
        }
        let table = self
            .store
            .store_table(&descriptor.match_table)
            .ok_or(Error::NoSpace)?;
        if let Err(error) = self.may_register(descriptor.pd, bus_index, table) {
            self.release_table(table);
            return Err(error);
        }
        let driver = Driver {
            bus: bus_index,
            pd: descriptor.pd,
            name: descriptor.name.clone(),
            table,
            bus_links: Links::default(),
            sequence,
            devices: List::new(),
            state: DriverState::Live,
            in_flight: 0,
            idle_waiters: List::new(),
            has_unregister_operation: false,
            cleanup_queued: false,
            cleanup_links: Links::default(),
            // A driver may ask for more time, but not for so much that a hang goes unseen.
            deadline: descriptor
                .deadline
                .unwrap_or(self.config.callback_deadline)
                .min(self.config.max_callback_deadline),
            attach_queued: true,
            attach_links: Links::default(),
        };
        let Ok((index, _)) = self.drivers.insert(driver) else {
            self.release_table(table);
            return Err(Error::NoSpace);
        };
        let bus = &mut self.buses[bus_index];
        bus.next_sequence += 1;
        bus.drivers_version += 1;
        let mut list = bus.drivers;
        list.push_back(&mut self.drivers, index, BusDriverLinks);
        self.buses[bus_index].drivers = list;
        let mut attach = self.attach;
        attach.push_back(&mut self.drivers, index, AttachLinks);
        self.attach = attach;
        Ok(self.driver_id(index))
    }

    /// Takes a driver off the queue of walks not started yet (it is being removed).
    pub(crate) fn unqueue_attach(&mut self, driver: u32) {
        if self.drivers[driver].attach_queued {
            self.drivers[driver].attach_queued = false;
            let mut attach = self.attach;
            attach.remove(&mut self.drivers, driver, AttachLinks);
            self.attach = attach;
        }
    }
}
