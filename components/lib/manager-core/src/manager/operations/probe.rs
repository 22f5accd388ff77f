//! A device probed against its bus's drivers (or one driver): Stern's walk, suspended while each
//! probe runs in the driver's PD.

use crate::manager::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ProbeStage {
    Lock,
    Walk,
    Issue(u32, u32),
    Awaiting(u32),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ProbeTask {
    pub(crate) device: DeviceId,
    pub(crate) only: Option<DriverId>,
    pub(crate) enable_autoprobe: bool,
    pub(crate) walk: Walk,
    pub(crate) stage: ProbeStage,
}

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    /// Probing a device: walk its bus's drivers (Stern's step 4), holding the device's lock.
    pub(crate) fn step_probe(
        &mut self,
        op: u32,
        task: &mut ProbeTask,
        out: &mut dyn FnMut(Effect),
    ) -> Step {
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
                        Reply::Status(Answer::Ok) => {
                            self.bind(device, driver, out);
                            self.unlock(op, device);
                            self.trigger_deferred();
                            return Step::Done(Ok(Outcome::Device {
                                device: task.device,
                                driver: Some(self.driver_id(driver)),
                            }));
                        }
                        Reply::Status(Answer::Defer) => {
                            self.park_deferred(device);
                            self.unlock(op, device);
                            return Step::Done(Ok(Outcome::Device {
                                device: task.device,
                                driver: None,
                            }));
                        }
                        failure => {
                            // Children this attempt added (a bridge's `__device_add`) must not
                            // outlive it, or the next attempt adds them again beside them.
                            if !self.reap_added_children(op, device, out) {
                                // Some are in use already: the device stays with the driver, so
                                // that its cleanup (a dead PD's) or an unbind takes them down
                                // first, with their drivers' removes.
                                self.bind(device, driver, out);
                                self.unlock(op, device);
                                self.stats.probes_with_busy_children += 1;
                                return Step::Done(Err(failure_error(failure)));
                            }
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

    /// Deletes the idle children the binding of `device` added (its lock is `op`'s); false if
    /// any such child is bound, locked or has children of its own.
    fn reap_added_children(&mut self, op: u32, device: u32, out: &mut dyn FnMut(Effect)) -> bool {
        loop {
            let mut busy = false;
            let idle = self.devices[device]
                .children
                .iter(&self.devices, SiblingLinks)
                .filter(|child| self.devices[*child].added_by_binding)
                .find(|child| {
                    let entry = &self.devices[*child];
                    let idle = entry.driver.is_none()
                        && entry.lock_owner.is_none()
                        && entry.children.is_empty();
                    busy |= !idle;
                    idle
                });
            match idle {
                Some(child) => {
                    self.lock(op, child);
                    self.free_device(op, child, out);
                }
                None => return !busy,
            }
        }
    }

    /// Why a probe need not walk at all, once the device's lock is held.
    pub(crate) fn probe_precheck(&self, task: &ProbeTask) -> Option<Result<Outcome, Error>> {
        let device = &self.devices[task.device.index()];
        if self.shut_down {
            return Some(Err(Error::ShutDown));
        }
        if let Some(bound) = device.driver.get() {
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
                let candidate = &self.drivers[driver];
                let usable =
                    candidate.state == DriverState::Live && device.state == DeviceState::Active;
                let matches =
                    candidate.bus == device.bus && self.claims(driver, task.device.index());
                return Some(Err(if !usable {
                    Error::Busy
                } else if matches && !self.given(task.device.index(), candidate.pd) {
                    Error::NotGranted
                } else {
                    Error::NoMatch
                }));
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
}
