//! Driver callbacks: issuing one (a callback slot, the device's lock held for it), its reply, and
//! the slots `Config` limits.

use super::*;

pub(crate) fn failure_error(reply: Reply) -> Error {
    match reply {
        Reply::Died => Error::DriverDied,
        Reply::Status(Answer::Failed(code)) => Error::CallbackFailed(code),
        Reply::Status(Answer::NotMine | Answer::Ok | Answer::Defer) => Error::NoMatch,
    }
}

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    /// Sends a callback for `op`, or queues `op` for a callback slot and returns false.
    pub(crate) fn begin_callback(
        &mut self,
        op: u32,
        kind: CallbackKind,
        device: u32,
        driver: u32,
        out: &mut dyn FnMut(Effect),
    ) -> bool {
        if self.operations[op].slot_granted {
            self.operations[op].slot_granted = false;
        } else if self.slots_taken >= self.config.max_callbacks_in_flight {
            let mut waiters = self.slot_waiters;
            waiters.push_back(&mut self.operations, op, OperationLinks);
            self.slot_waiters = waiters;
            self.operations[op].wait = Wait::CallbackSlot;
            return false;
        } else {
            self.slots_taken += 1;
        }
        let sequence = self.next_callback;
        self.next_callback += 1;
        let pd = self.drivers[driver].pd;
        self.drivers[driver].in_flight += 1;
        let operation = &mut self.operations[op];
        operation.in_flight = Some(InFlight {
            sequence,
            pd,
            kind,
            device,
            driver,
            issued: self.now,
        });
        operation.wait = Wait::Callback;
        self.stats.callbacks += 1;
        if kind == CallbackKind::Probe {
            self.stats.probe_attempts += 1;
        }
        self.in_flight_count += 1;
        let in_flight = self.in_flight_count as u64;
        self.stats.max_callbacks_in_flight = self.stats.max_callbacks_in_flight.max(in_flight);
        out(Effect::Callback(crate::model::Callback {
            id: CallbackId::from_parts(op, sequence),
            pd,
            kind,
            device: self.device_id(device),
            driver: self.driver_id(driver),
        }));
        true
    }

    pub(crate) fn end_callback(&mut self, op: u32, reply: Reply) {
        let Some(flight) = self.operations[op].in_flight.take() else {
            return;
        };
        self.in_flight_count -= 1;
        self.release_slot();
        // The driver still counts the callback as in flight until the operation has acted on
        // the reply (bound the device, say): an unregister waiting for the driver to go idle
        // must see that binding.
        self.operations[op].reply = Some((reply, flight.driver));
        self.make_ready(op);
    }

    /// Gives a callback slot back: to the first operation waiting for one, or to the pool.
    pub(crate) fn release_slot(&mut self) {
        let mut waiters = self.slot_waiters;
        let next = waiters.pop_front(&mut self.operations, OperationLinks);
        self.slot_waiters = waiters;
        match next {
            Some(waiter) => {
                self.operations[waiter].slot_granted = true;
                self.make_ready(waiter);
            }
            None => self.slots_taken -= 1,
        }
    }

    /// An operation that was handed a slot but will not send a callback after all.
    pub(crate) fn drop_slot_grant(&mut self, op: u32) {
        if let Some(operation) = self.operations.get_mut(op) {
            if operation.slot_granted {
                operation.slot_granted = false;
                self.release_slot();
            }
        }
    }

    /// The reply to `op`'s callback, once; from here on the callback no longer counts as in
    /// flight for its driver. The caller acts on the reply before it returns.
    pub(crate) fn take_reply(&mut self, op: u32) -> Option<Reply> {
        let (reply, driver) = self.operations[op].reply.take()?;
        let entry = &mut self.drivers[driver];
        entry.in_flight -= 1;
        if entry.in_flight == 0 {
            let mut waiters = entry.idle_waiters;
            while let Some(waiter) = waiters.pop_front(&mut self.operations, OperationLinks) {
                self.make_ready(waiter);
            }
            self.drivers[driver].idle_waiters = waiters;
        }
        Some(reply)
    }

    /// The callback in flight the longest past its driver's deadline at `now`, if any: its
    /// driver's PD hangs or loops. The manager does not act on it by itself; its supervisor
    /// stops the PD, and [`Manager::pd_died`] then ends the callback as failed.
    #[must_use]
    pub fn overdue(&self, now: Instant) -> Option<crate::model::Overdue> {
        self.overdue_where(now, |_| true)
    }

    /// [`Manager::overdue`], among `pd`'s callbacks only.
    #[must_use]
    pub fn overdue_of(&self, pd: PdId, now: Instant) -> Option<crate::model::Overdue> {
        self.overdue_where(now, |flight| flight.pd == pd)
    }

    /// Has `pd` a callback in flight?
    #[must_use]
    pub fn pd_busy(&self, pd: PdId) -> bool {
        (0..OPERATIONS as u32).any(|op| {
            self.operations
                .get(op)
                .and_then(|operation| operation.in_flight)
                .is_some_and(|flight| flight.pd == pd)
        })
    }

    fn overdue_where(
        &self,
        now: Instant,
        wanted: impl Fn(&InFlight) -> bool,
    ) -> Option<crate::model::Overdue> {
        let mut worst: Option<(Instant, u32, InFlight)> = None;
        for op in 0..OPERATIONS as u32 {
            let Some(flight) = self
                .operations
                .get(op)
                .and_then(|operation| operation.in_flight)
            else {
                continue;
            };
            if !wanted(&flight) {
                continue;
            }
            let due = flight.issued.after(self.drivers[flight.driver].deadline);
            if due <= now && worst.is_none_or(|(earliest, _, _)| due < earliest) {
                worst = Some((due, op, flight));
            }
        }
        worst.map(|(_, op, flight)| crate::model::Overdue {
            pd: flight.pd,
            callback: CallbackId::from_parts(op, flight.sequence),
            kind: flight.kind,
            device: self.device_id(flight.device),
            waited: now.since(flight.issued),
        })
    }

    /// When the next callback in flight will be overdue, if one is in flight.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        (0..OPERATIONS as u32)
            .filter_map(|op| {
                self.operations
                    .get(op)
                    .and_then(|operation| operation.in_flight)
            })
            .map(|flight| flight.issued.after(self.drivers[flight.driver].deadline))
            .min()
    }
}
