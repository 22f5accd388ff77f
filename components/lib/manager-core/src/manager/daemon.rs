//! The daemon of the 2005 reply: one queue of operations, each stepped until it must wait, and the
//! internal work (probing new children, deferred devices, dead PDs' cleanup) that becomes an
//! operation when there is room.

use super::*;

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    pub(crate) fn new_operation(
        &mut self,
        request: Option<(RequestId, Requester)>,
        task: Task,
    ) -> Result<u32, Error> {
        let operation = Operation {
            request,
            task,
            links: Links::default(),
            wait: Wait::Running,
            in_flight: None,
            reply: None,
            owned_locks: 0,
            slot_granted: false,
        };
        self.operations
            .insert(operation)
            .map(|(index, _)| index)
            .map_err(|_| Error::NoSpace)
    }

    pub(crate) fn make_ready(&mut self, op: u32) {
        self.operations[op].wait = Wait::Ready;
        let mut ready = self.ready;
        ready.push_back(&mut self.operations, op, OperationLinks);
        self.ready = ready;
    }

    /// Runs operations until every one is waiting or done.
    pub(crate) fn run(&mut self, out: &mut dyn FnMut(Effect)) {
        loop {
            self.schedule_internal_work();
            let mut ready = self.ready;
            let next = ready.pop_front(&mut self.operations, OperationLinks);
            self.ready = ready;
            let Some(op) = next else {
                break;
            };
            self.operations[op].wait = Wait::Running;
            self.step(op, out);
        }
    }

    /// Turns queued internal work (devices to probe, dead drivers to clean up, new drivers'
    /// walks over their bus) into operations while there is room: internal work may use every
    /// slot, including those outside requests may not ([`Config::reserved_operations`]). The work is recorded in the devices and drivers themselves, so a
    /// full operation table delays it but never loses it.
    pub(crate) fn schedule_internal_work(&mut self) {
        while !self.operations.is_full() {
            let task = if let Some(device) = self.pop_pending_probe() {
                Task::Probe(ProbeTask {
                    device: self.device_id(device),
                    only: None,
                    enable_autoprobe: false,
                    walk: Walk::default(),
                    stage: ProbeStage::Lock,
                })
            } else if let Some(driver) = {
                let mut cleanup = self.cleanup;
                let driver = cleanup.pop_front(&mut self.drivers, CleanupLinks);
                self.cleanup = cleanup;
                driver
            } {
                let entry = &mut self.drivers[driver];
                entry.cleanup_queued = false;
                entry.has_unregister_operation = true;
                Task::Unregister(UnregisterTask {
                    driver: self.driver_id(driver),
                    stage: UnregisterStage::Quiesce,
                })
            } else if let Some(driver) = {
                let mut attach = self.attach;
                let driver = attach.pop_front(&mut self.drivers, AttachLinks);
                self.attach = attach;
                driver
            } {
                self.drivers[driver].attach_queued = false;
                Task::Attach(AttachTask {
                    driver: self.driver_id(driver),
                    walk: Walk::default(),
                    bound: 0,
                    stage: AttachStage::Start,
                })
            } else {
                return;
            };
            if let Ok(op) = self.new_operation(None, task) {
                self.make_ready(op);
            }
        }
    }

    pub(crate) fn pop_pending_probe(&mut self) -> Option<u32> {
        if self.shut_down {
            return None;
        }
        let mut pending = self.pending_probe;
        let device = pending.pop_front(&mut self.devices, QueueLinks);
        self.pending_probe = pending;
        if let Some(device) = device {
            self.devices[device].queue = Queue::None;
        }
        device
    }

    pub(crate) fn step(&mut self, op: u32, out: &mut dyn FnMut(Effect)) {
        loop {
            let mut task = core::mem::replace(&mut self.operations[op].task, Task::Running);
            let step = match &mut task {
                Task::Running => Step::Blocked,
                Task::Add { parent, bus, data } => self.step_add(op, *parent, *bus, *data, out),
                Task::Probe(probe) => self.step_probe(op, probe, out),
                Task::Attach(attach) => self.step_attach(op, attach, out),
                Task::Teardown(teardown) => self.step_teardown(op, teardown, out),
                Task::Unregister(unregister) => self.step_unregister(op, unregister, out),
                Task::Power(power) => self.step_power(op, power, out),
                Task::Rescan => self.step_rescan(),
            };
            match step {
                Step::Blocked => {
                    self.operations[op].task = task;
                    return;
                }
                Step::Become(next) => self.operations[op].task = next,
                Step::Done(result) => {
                    if let Task::Add { data, .. } = task {
                        // Not added: its data goes back to the store.
                        self.release_device_data(data);
                    }
                    self.finish(op, result, out);
                    return;
                }
            }
        }
    }

    pub(crate) fn finish(
        &mut self,
        op: u32,
        result: Result<Outcome, Error>,
        out: &mut dyn FnMut(Effect),
    ) {
        self.drop_slot_grant(op);
        let Some(operation) = self.operations.remove(op) else {
            return;
        };
        debug_assert_eq!(operation.owned_locks, 0, "operation finished holding locks");
        match operation.request {
            Some((request, requester)) => {
                self.stats.completions += 1;
                out(Effect::Complete(crate::model::Completion {
                    request,
                    requester,
                    result,
                }));
            }
            None => {
                if let Err(error) = result {
                    log::debug!("internal operation ended: {error:?}");
                }
            }
        }
    }
}
