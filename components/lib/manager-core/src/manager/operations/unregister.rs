//! `driver_unregister`: no new probes, in-flight callbacks drained, then every device it drives
//! unbound, children first.

use crate::manager::*;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum UnregisterStage {
    Start,
    Quiesce,
    Pick,
    Unbinding(TeardownTask),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct UnregisterTask {
    pub(crate) driver: DriverId,
    pub(crate) stage: UnregisterStage,
}

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    /// `driver_unregister` (and the cleanup after a driver's PD died).
    pub(crate) fn step_unregister(
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
                        self.unqueue_attach(driver);
                        let bus = self.drivers[driver].bus;
                        let mut list = self.buses[bus].drivers;
                        list.remove(&mut self.drivers, driver, BusDriverLinks);
                        self.buses[bus].drivers = list;
                        self.buses[bus].drivers_version += 1;
                        if let Some(removed) = self.drivers.remove(driver) {
                            self.release_table(removed.table);
                        }
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
                        if self.devices[index].driver.is_none() {
                            if self.drivers[driver].state == DriverState::Dead {
                                // Lost to its PD's death: a query says whose.
                                self.devices[index].last_pd = Some(self.drivers[driver].pd).into();
                            }
                            if self.devices[index].autoprobe {
                                self.queue_probe(index);
                            }
                        }
                    }
                    task.stage = UnregisterStage::Pick;
                }
            }
        }
    }

    /// A device bound to `driver` none of whose descendants is bound to it.
    pub(crate) fn bound_device_children_first(&self, driver: u32) -> Option<u32> {
        let mut device = self.drivers[driver].devices.head()?;
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
}
