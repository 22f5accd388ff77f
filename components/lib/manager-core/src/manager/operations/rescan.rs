//! A rescan: every unbound device probed again.

use crate::manager::*;

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    pub(crate) fn step_rescan(&mut self) -> Step {
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
}
