//! `device_add`: a device added under its parent (whose lock it takes first), then probed.

use crate::manager::*;

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    pub(crate) fn step_add(
        &mut self,
        op: u32,
        parent: Option<DeviceId>,
        bus: BusId,
        data: DeviceData,
        out: &mut dyn FnMut(Effect),
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
        // A driver's `device_add` counts towards its PD's quota; the board's devices are
        // nobody's.
        let adder = match self
            .operations
            .get(op)
            .and_then(|operation| operation.request)
        {
            Some((_, Requester::Driver(pd))) => Some(pd),
            _ => None,
        };
        let created = self.create_device(parent_index, bus, data, false, adder, out);
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
}
