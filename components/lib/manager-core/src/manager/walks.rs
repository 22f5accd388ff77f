//! Stern's traversals: walking a bus's driver or device list, restarted when its version counter
//! changed, skipping the pairs already tried.

use super::*;

/// Progress through a bus list (Stern's traversal with a version check).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Walk {
    /// Last element tried, as (index, generation): valid while the version is unchanged.
    pub(crate) cursor: Option<(u32, u32)>,
    /// The list's version when the walk (re)started.
    pub(crate) seen_version: u64,
    /// Every element with a sequence at or below this was already tried by this walk: a
    /// restart skips them, so registrations during the walk cannot starve it.
    pub(crate) high_water: u64,
}

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    pub(crate) fn probe_eligible(&self, device: u32, driver: u32) -> bool {
        let entry = &self.devices[device];
        let candidate = &self.drivers[driver];
        entry.driver.is_none()
            && entry.state == DeviceState::Active
            && candidate.state == DriverState::Live
            && candidate.bus == entry.bus
            && self.claims(driver, device)
            && self.given(device, candidate.pd)
    }

    /// The next driver of `device`'s bus to probe it with (device-driven walk).
    pub(crate) fn next_driver(
        &mut self,
        device: u32,
        walk: &mut Walk,
        only: Option<DriverId>,
    ) -> Option<u32> {
        let bus = self.devices[device].bus;
        let mut candidate = match walk.cursor {
            Some((index, generation)) if self.drivers.is_live(index, generation) => {
                self.drivers[index].bus_links.next()
            }
            _ => self.buses[bus].drivers.head(),
        };
        while let Some(index) = candidate {
            let driver = &self.drivers[index];
            candidate = driver.bus_links.next();
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
    pub(crate) fn next_device(&mut self, driver: u32, walk: &mut Walk) -> Option<u32> {
        let bus = self.drivers[driver].bus;
        let mut candidate = match walk.cursor {
            Some((index, generation)) if self.devices.is_live(index, generation) => {
                self.devices[index].bus_links.next()
            }
            _ => self.buses[bus].devices.head(),
        };
        while let Some(index) = candidate {
            let device = &self.devices[index];
            candidate = device.bus_links.next();
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
    pub(crate) fn restart_if_changed(&mut self, walk: &mut Walk, version: u64) {
        if walk.seen_version != version {
            walk.seen_version = version;
            walk.cursor = None;
            self.stats.walk_restarts += 1;
        }
    }
}
