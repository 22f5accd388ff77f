//! A new driver probed against its bus's devices, one device lock at a time (`driver_register`'s
//! walk).

use crate::manager::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum AttachStage {
    Start,
    Select,
    Lock(u32, u32),
    Issue(u32),
    Awaiting(u32),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct AttachTask {
    pub(crate) driver: DriverId,
    pub(crate) walk: Walk,
    pub(crate) bound: u32,
    pub(crate) stage: AttachStage,
}

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    /// A new driver: walk its bus's devices (Stern's step 5), one device lock at a time.
    pub(crate) fn step_attach(
        &mut self,
        op: u32,
        task: &mut AttachTask,
        out: &mut dyn FnMut(Effect),
    ) -> Step {
        let driver = task.driver.index();
        let done = |task: &AttachTask| {
            Step::Done(Ok(Outcome::Driver {
                driver: task.driver,
                bound: task.bound,
            }))
        };
        loop {
            if !self.drivers.is_live(driver, task.driver.generation()) {
                // Unregistered (or cleaned up after its PD died) while this walk waited.
                if let AttachStage::Lock(device, _) | AttachStage::Issue(device) = task.stage {
                    self.drop_slot_grant(op);
                    if self.devices.get(device).is_some() && self.owns(op, device) {
                        self.unlock(op, device);
                    }
                }
                return match task.stage {
                    AttachStage::Start => Step::Done(Err(Error::StaleDriver)),
                    _ => done(task),
                };
            }
            match task.stage {
                AttachStage::Start => {
                    if let Err(error) = self.resolve_driver(task.driver) {
                        return Step::Done(Err(error));
                    }
                    let bus = self.drivers[driver].bus;
                    task.walk.seen_version = self.buses[bus].devices_version;
                    task.stage = AttachStage::Select;
                }
                AttachStage::Select => {
                    if self.drivers[driver].state != DriverState::Live {
                        return done(task);
                    }
                    match self.next_device(driver, &mut task.walk) {
                        Some(device) => {
                            task.stage = AttachStage::Lock(device, self.devices.generation(device));
                        }
                        None => return done(task),
                    }
                }
                AttachStage::Lock(device, generation) => {
                    if !self.devices.is_live(device, generation) {
                        let bus = self.drivers[driver].bus;
                        let version = self.buses[bus].devices_version;
                        self.restart_if_changed(&mut task.walk, version);
                        task.stage = AttachStage::Select;
                        continue;
                    }
                    if !self.lock(op, device) {
                        return Step::Blocked;
                    }
                    if self.devices[device].autoprobe && self.probe_eligible(device, driver) {
                        task.stage = AttachStage::Issue(device);
                    } else {
                        self.unlock(op, device);
                        task.stage = AttachStage::Select;
                    }
                }
                AttachStage::Issue(device) => {
                    if !self.probe_eligible(device, driver) {
                        self.drop_slot_grant(op);
                        self.unlock(op, device);
                        task.stage = AttachStage::Select;
                        continue;
                    }
                    if self.begin_callback(op, CallbackKind::Probe, device, driver, out) {
                        task.stage = AttachStage::Awaiting(device);
                    }
                    return Step::Blocked;
                }
                AttachStage::Awaiting(device) => {
                    let Some(reply) = self.take_reply(op) else {
                        return Step::Blocked;
                    };
                    match reply {
                        Reply::Status(Answer::Ok) => {
                            self.bind(device, driver, out);
                            task.bound += 1;
                            self.unlock(op, device);
                            self.trigger_deferred();
                        }
                        Reply::Status(Answer::Defer) => {
                            self.park_deferred(device);
                            self.unlock(op, device);
                        }
                        Reply::Died => {
                            self.unlock(op, device);
                            return Step::Done(Err(Error::DriverDied));
                        }
                        Reply::Status(Answer::NotMine | Answer::Failed(_)) => {
                            self.unlock(op, device);
                            let bus = self.drivers[driver].bus;
                            let version = self.buses[bus].devices_version;
                            self.restart_if_changed(&mut task.walk, version);
                        }
                    }
                    task.stage = AttachStage::Select;
                }
            }
        }
    }
}
