//! Power management in tree order: suspend and shutdown children first, resume parents first, for a
//! subtree or the whole system.

use crate::manager::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Transition {
    Suspend,
    Resume,
    Shutdown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PowerStage {
    Start,
    Lock,
    Run(Option<u32>),
    Issue(u32),
    Awaiting(u32),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PowerTask {
    pub(crate) scope: Option<DeviceId>,
    pub(crate) transition: Transition,
    pub(crate) stage: PowerStage,
}

pub(crate) fn power_task(scope: Option<DeviceId>, transition: Transition) -> Task {
    Task::Power(PowerTask {
        scope,
        transition,
        stage: PowerStage::Start,
    })
}

pub(crate) fn power_target(transition: Transition) -> DeviceState {
    match transition {
        Transition::Suspend => DeviceState::Suspended,
        Transition::Resume => DeviceState::Active,
        Transition::Shutdown => DeviceState::ShutDown,
    }
}

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    /// Suspend, resume and shutdown, for one subtree or the whole system: lock parents first,
    /// then call suspend/shutdown children first and resume parents first.
    pub(crate) fn step_power(
        &mut self,
        op: u32,
        task: &mut PowerTask,
        out: &mut dyn FnMut(Effect),
    ) -> Step {
        loop {
            let scope = match task.scope {
                Some(root) => match self.resolve_device(root) {
                    Ok(index) => Scope::Subtree(index),
                    Err(error) => return Step::Done(Err(error)),
                },
                None => Scope::All,
            };
            match task.stage {
                PowerStage::Start => {
                    if let (Scope::Subtree(root), Transition::Resume) = (scope, task.transition) {
                        let parent_suspended = self.devices[root].parent.is_some_and(|parent| {
                            self.devices[parent].state != DeviceState::Active
                        });
                        if parent_suspended {
                            return Step::Done(Err(Error::ParentSuspended));
                        }
                    }
                    task.stage = PowerStage::Lock;
                }
                PowerStage::Lock => {
                    if !self.lock_scope(op, scope) {
                        return Step::Blocked;
                    }
                    let first = match task.transition {
                        Transition::Resume => self.scope_first(scope),
                        Transition::Suspend | Transition::Shutdown => self.postorder_first(scope),
                    };
                    task.stage = PowerStage::Run(first);
                }
                PowerStage::Run(None) => {
                    self.unlock_scope(op, scope);
                    if task.transition == Transition::Shutdown && scope == Scope::All {
                        self.shut_down = true;
                    }
                    return Step::Done(Ok(Outcome::Done));
                }
                PowerStage::Run(Some(node)) => {
                    if !self.owns(op, node) {
                        // Added after the locking pass (a child from a resume callback, a new
                        // root): lock again parents first, then restart the pass; devices
                        // already transitioned are skipped.
                        task.stage = PowerStage::Lock;
                        continue;
                    }
                    let target = power_target(task.transition);
                    let device = &self.devices[node];
                    let applies = match task.transition {
                        Transition::Suspend => device.state == DeviceState::Active,
                        Transition::Resume => device.state == DeviceState::Suspended,
                        Transition::Shutdown => device.state != DeviceState::ShutDown,
                    };
                    if !applies {
                        task.stage = PowerStage::Run(self.power_next(node, scope, task.transition));
                        continue;
                    }
                    let live_driver = device
                        .driver
                        .is_some_and(|driver| self.drivers[driver].state != DriverState::Dead);
                    if live_driver {
                        task.stage = PowerStage::Issue(node);
                        continue;
                    }
                    self.set_power_state(node, target, out);
                    task.stage = PowerStage::Run(self.power_next(node, scope, task.transition));
                }
                PowerStage::Issue(node) => {
                    let Some(driver) = self.devices[node]
                        .driver
                        .filter(|driver| self.drivers[*driver].state != DriverState::Dead)
                    else {
                        self.drop_slot_grant(op);
                        task.stage = PowerStage::Run(Some(node));
                        continue;
                    };
                    let kind = match task.transition {
                        Transition::Suspend => CallbackKind::Suspend,
                        Transition::Resume => CallbackKind::Resume,
                        Transition::Shutdown => CallbackKind::Shutdown,
                    };
                    if self.begin_callback(op, kind, node, driver, out) {
                        task.stage = PowerStage::Awaiting(node);
                    }
                    return Step::Blocked;
                }
                PowerStage::Awaiting(node) => {
                    let Some(reply) = self.take_reply(op) else {
                        return Step::Blocked;
                    };
                    match reply {
                        Reply::Status(Answer::Ok) | Reply::Died => {
                            self.set_power_state(node, power_target(task.transition), out);
                            task.stage =
                                PowerStage::Run(self.power_next(node, scope, task.transition));
                        }
                        Reply::Status(failure) => {
                            // Stop here: devices already transitioned stay so, the rest are
                            // untouched; the requester decides what to do.
                            self.unlock_scope(op, scope);
                            return Step::Done(Err(failure_error(Reply::Status(failure))));
                        }
                    }
                }
            }
        }
    }

    pub(crate) fn power_next(
        &self,
        node: u32,
        scope: Scope,
        transition: Transition,
    ) -> Option<u32> {
        match transition {
            Transition::Resume => self.preorder_next(node, scope),
            Transition::Suspend | Transition::Shutdown => self.postorder_next(node, scope),
        }
    }

    pub(crate) fn set_power_state(
        &mut self,
        device: u32,
        state: DeviceState,
        out: &mut dyn FnMut(Effect),
    ) {
        if self.devices[device].state != state {
            let kind = match state {
                DeviceState::Active => ChangeKind::Resumed,
                DeviceState::Suspended => ChangeKind::Suspended,
                DeviceState::ShutDown => ChangeKind::ShutDown,
            };
            self.changed(kind, device, self.devices[device].driver.get(), out);
        }
        self.devices[device].state = state;
        let entry = &self.devices[device];
        if state == DeviceState::Active && entry.driver.is_none() && entry.autoprobe {
            self.queue_probe(device);
        }
    }
}
