//! `device_del` and unbind: a subtree torn down children first, each bound driver's remove run
//! under the device's lock.

use crate::manager::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TeardownMode {
    /// `device_del`: the device and its whole subtree go.
    Delete,
    /// Unbind the device (only from `expected` if given); children its binding added go.
    Unbind { manual: bool, expected: Option<u32> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TeardownStage {
    LockParent,
    LockSubtree,
    Work,
    Issue(u32),
    Awaiting(u32),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TeardownTask {
    pub(crate) target: DeviceId,
    pub(crate) mode: TeardownMode,
    pub(crate) parent: Option<(u32, u32)>,
    pub(crate) stage: TeardownStage,
}

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    /// `device_del` and unbinding: lock the parent (for a delete), then the subtree parents
    /// first; then tear down children first, calling remove under each device's lock.
    pub(crate) fn step_teardown(
        &mut self,
        op: u32,
        task: &mut TeardownTask,
        out: &mut dyn FnMut(Effect),
    ) -> Step {
        let target = task.target.index();
        loop {
            match task.stage {
                TeardownStage::LockParent => {
                    if let Err(error) = self.resolve_device(task.target) {
                        self.release_if_owned(op, task.parent);
                        return Step::Done(Err(error));
                    }
                    if task.mode == TeardownMode::Delete {
                        if let Some(parent) = self.devices[target].parent.get() {
                            task.parent = Some((parent, self.devices.generation(parent)));
                            if !self.lock(op, parent) {
                                return Step::Blocked;
                            }
                        }
                    }
                    task.stage = TeardownStage::LockSubtree;
                }
                TeardownStage::LockSubtree => {
                    if let Err(error) = self.resolve_device(task.target) {
                        self.release_if_owned(op, task.parent);
                        return Step::Done(Err(error));
                    }
                    if !self.lock_scope(op, Scope::Subtree(target)) {
                        return Step::Blocked;
                    }
                    if let TeardownMode::Unbind {
                        expected: Some(expected),
                        ..
                    } = task.mode
                    {
                        if self.devices[target].driver != Some(expected) {
                            // Unbound (and perhaps rebound elsewhere) meanwhile: not ours.
                            self.unlock_scope(op, Scope::Subtree(target));
                            return Step::Done(Ok(Outcome::Done));
                        }
                    }
                    task.stage = TeardownStage::Work;
                }
                TeardownStage::Work => {
                    let node = self.next_to_tear_down(target, task.mode);
                    let needs_remove = self.devices[node]
                        .driver
                        .is_some_and(|driver| self.drivers[driver].state != DriverState::Dead);
                    if needs_remove {
                        task.stage = TeardownStage::Issue(node);
                        continue;
                    }
                    self.unbind(node, out);
                    if node != target {
                        self.free_device(op, node, out);
                        continue;
                    }
                    return match task.mode {
                        TeardownMode::Delete => {
                            self.free_device(op, target, out);
                            self.release_if_owned(op, task.parent);
                            Step::Done(Ok(Outcome::Done))
                        }
                        TeardownMode::Unbind { manual, .. } => {
                            if manual {
                                self.devices[target].autoprobe = false;
                                self.dequeue(target);
                            }
                            self.unlock_scope(op, Scope::Subtree(target));
                            Step::Done(Ok(Outcome::Done))
                        }
                    };
                }
                TeardownStage::Issue(node) => {
                    let Some(driver) = self.devices[node]
                        .driver
                        .filter(|driver| self.drivers[*driver].state != DriverState::Dead)
                    else {
                        self.drop_slot_grant(op);
                        task.stage = TeardownStage::Work;
                        continue;
                    };
                    if self.begin_callback(op, CallbackKind::Remove, node, driver, out) {
                        task.stage = TeardownStage::Awaiting(node);
                    }
                    return Step::Blocked;
                }
                TeardownStage::Awaiting(node) => {
                    if self.take_reply(op).is_none() {
                        return Step::Blocked;
                    }
                    // Whatever the driver answered, it no longer drives the device.
                    self.unbind(node, out);
                    task.stage = TeardownStage::Work;
                }
            }
        }
    }

    /// The next device to tear down: the first leaf of what must go (the whole subtree for a
    /// delete; the subtrees of the children the binding added for an unbind), else the target.
    pub(crate) fn next_to_tear_down(&self, target: u32, mode: TeardownMode) -> u32 {
        match mode {
            TeardownMode::Delete => self.first_leaf(target),
            TeardownMode::Unbind { .. } => self.devices[target]
                .children
                .iter(&self.devices, SiblingLinks)
                .find(|child| self.devices[*child].added_by_binding)
                .map_or(target, |child| self.first_leaf(child)),
        }
    }
}
