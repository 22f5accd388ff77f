//! `Manager::invariants`: the consistency rules the manager keeps after every event. Tests call
//! it after every step; it costs O(devices × depth + operations), so production code does not.

use crate::arena::{Arena, LinkField, List};
use crate::manager::{
    AttachLinks, BusDeviceLinks, BusDriverLinks, Claim, CleanupLinks, DeviceData,
    DriverDeviceLinks, Manager, OperationLinks, Queue, QueueLinks, Run, SiblingLinks, Task, Wait,
};

/// A broken invariant: which rule, and the table index of the object that breaks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The rule that does not hold.
    pub rule: &'static str,
    /// Index of the device, driver or operation concerned.
    pub index: u32,
}

fn fail<T>(rule: &'static str, index: u32) -> Result<T, Violation> {
    Err(Violation { rule, index })
}

/// Walks a list, checking its links, tail and length; calls `each` on every element.
fn check_list<T, F: LinkField<T>, const N: usize>(
    arena: &Arena<T, N>,
    list: List,
    owner: u32,
    mut each: impl FnMut(u32, &T) -> Result<(), Violation>,
) -> Result<(), Violation> {
    let mut previous = None;
    let mut node = list.head();
    let mut count: u32 = 0;
    while let Some(index) = node {
        if count as usize > N {
            return fail("list has a cycle", owner);
        }
        let Some(element) = arena.get(index) else {
            return fail("list links a free slot", owner);
        };
        if F::links(element).previous() != previous {
            return fail("list back link broken", index);
        }
        each(index, element)?;
        previous = Some(index);
        node = F::links(element).next();
        count += 1;
    }
    if list.tail() != previous {
        return fail("list tail wrong", owner);
    }
    if list.len != count {
        return fail("list length wrong", owner);
    }
    Ok(())
}

/// Do the runs tile `used` items without overlapping (a pool packed by its compaction)?
fn check_runs(
    runs: impl Iterator<Item = (u32, Run)> + Clone,
    used: usize,
) -> Result<(), Violation> {
    let mut total = 0usize;
    for (position, (index, run)) in runs.clone().enumerate() {
        total += run.len();
        if run.end() > used {
            return fail("a run lies past its pool's end", index);
        }
        if runs
            .clone()
            .skip(position + 1)
            .any(|(_, other)| run.overlaps(other))
        {
            return fail("two runs of one pool overlap", index);
        }
    }
    if total != used {
        return fail("a pool holds items no run names", u32::MAX);
    }
    Ok(())
}

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    /// Checks every structural rule of the manager: list consistency, no orphan children,
    /// bindings only to matching drivers on the same bus, lock ownership and waiters, the lock
    /// order (no operation waits for a device while holding one of its descendants), one
    /// callback per device and only under its lock, the callback-slot accounting, and the
    /// store (its runs tile what it holds; every text counts its holders).
    ///
    /// # Errors
    /// The first rule found broken.
    pub fn invariants(&self) -> Result<(), Violation> {
        self.check_tree()?;
        self.check_buses_and_bindings()?;
        self.check_queues()?;
        self.check_operations()?;
        self.check_store()
    }

    /// Every device's data and every pending `device_add`'s.
    fn held_device_data(&self) -> impl Iterator<Item = (u32, &DeviceData)> + Clone + '_ {
        self.devices
            .iter()
            .map(|(index, device)| (index, &device.data))
            .chain(
                self.operations
                    .iter()
                    .filter_map(|(index, operation)| match &operation.task {
                        Task::Add { data, .. } => Some((index, data)),
                        _ => None,
                    }),
            )
    }

    fn check_store(&self) -> Result<(), Violation> {
        let held = self.held_device_data();
        check_runs(
            held.clone().map(|(i, data)| (i, data.windows)),
            self.store.windows.used(),
        )?;
        check_runs(
            held.clone().map(|(i, data)| (i, data.irqs)),
            self.store.irqs.used(),
        )?;
        check_runs(
            self.drivers
                .iter()
                .map(|(index, driver)| (index, driver.table)),
            self.store.claims.used(),
        )?;
        if !self.store.texts.is_packed() {
            return fail("texts overlap or leave holes", u32::MAX);
        }
        for (text, refs) in self.store.texts.in_use() {
            let by_devices = held
                .clone()
                .map(|(_, data)| data.compatibles().iter().filter(|&&t| t == text).count())
                .sum::<usize>();
            let by_drivers = self
                .drivers
                .iter()
                .map(|(_, driver)| {
                    self.store
                        .claims(driver.table)
                        .iter()
                        .filter(|claim| **claim == Claim::Compatible(text))
                        .count()
                })
                .sum::<usize>();
            if by_devices + by_drivers != usize::from(refs) {
                return fail("a text's count is not its holders'", u32::from(text));
            }
        }
        for (index, data) in held {
            if data
                .compatibles()
                .iter()
                .any(|&text| self.store.texts.refs(text) == 0)
            {
                return fail("a device names a freed text", index);
            }
        }
        Ok(())
    }

    fn check_tree(&self) -> Result<(), Violation> {
        let mut listed = 0usize;
        check_list::<_, SiblingLinks, DEVICES>(
            &self.devices,
            self.roots,
            u32::MAX,
            |_, device| {
                listed += 1;
                if device.parent.is_some() {
                    return fail("a root has a parent", u32::MAX);
                }
                Ok(())
            },
        )?;
        for (index, device) in self.devices.iter() {
            if let Some(parent) = device.parent.get() {
                if self.devices.get(parent).is_none() {
                    return fail("orphan child: parent is gone", index);
                }
            }
            check_list::<_, SiblingLinks, DEVICES>(
                &self.devices,
                device.children,
                index,
                |child, entry| {
                    listed += 1;
                    if entry.parent != Some(index) {
                        return fail("child listed under the wrong parent", child);
                    }
                    Ok(())
                },
            )?;
        }
        if listed != self.devices.len() {
            return fail("a device is missing from its parent's children", u32::MAX);
        }
        Ok(())
    }

    fn check_buses_and_bindings(&self) -> Result<(), Violation> {
        let mut on_buses = 0usize;
        let mut drivers_on_buses = 0usize;
        for (bus_index, bus) in self.buses.iter() {
            let mut last = 0;
            check_list::<_, BusDeviceLinks, DEVICES>(
                &self.devices,
                bus.devices,
                bus_index,
                |index, device| {
                    on_buses += 1;
                    if device.bus != bus_index {
                        return fail("device on the wrong bus list", index);
                    }
                    if device.sequence <= last {
                        return fail("bus device list out of sequence", index);
                    }
                    last = device.sequence;
                    Ok(())
                },
            )?;
            let mut last = 0;
            check_list::<_, BusDriverLinks, DRIVERS>(
                &self.drivers,
                bus.drivers,
                bus_index,
                |index, driver| {
                    drivers_on_buses += 1;
                    if driver.bus != bus_index {
                        return fail("driver on the wrong bus list", index);
                    }
                    if driver.sequence <= last {
                        return fail("bus driver list out of sequence", index);
                    }
                    last = driver.sequence;
                    Ok(())
                },
            )?;
        }
        if on_buses != self.devices.len() {
            return fail("a device is missing from its bus", u32::MAX);
        }
        if drivers_on_buses != self.drivers.len() {
            return fail("a driver is missing from its bus", u32::MAX);
        }
        let mut bound = 0usize;
        for (driver_index, driver) in self.drivers.iter() {
            check_list::<_, DriverDeviceLinks, DEVICES>(
                &self.devices,
                driver.devices,
                driver_index,
                |index, device| {
                    bound += 1;
                    if device.driver != Some(driver_index) {
                        return fail("device on the wrong driver's list", index);
                    }
                    if device.bus != driver.bus {
                        return fail("device bound to a driver of another bus", index);
                    }
                    if !self.claims(driver_index, index) {
                        return fail("device bound to a driver that does not match it", index);
                    }
                    Ok(())
                },
            )?;
            let in_flight = self
                .operations
                .iter()
                .filter(|(_, operation)| {
                    operation
                        .in_flight
                        .is_some_and(|flight| flight.driver == driver_index)
                        || operation
                            .reply
                            .is_some_and(|(_, driver)| driver == driver_index)
                })
                .count();
            if in_flight != driver.in_flight as usize {
                return fail("driver's in-flight count wrong", driver_index);
            }
        }
        let bound_devices = self
            .devices
            .iter()
            .filter(|(_, device)| device.driver.is_some())
            .count();
        if bound != bound_devices {
            return fail("a bound device is missing from its driver's list", u32::MAX);
        }
        Ok(())
    }

    fn check_queues(&self) -> Result<(), Violation> {
        let mut queued = 0usize;
        for (list, expected) in [
            (self.pending_probe, Queue::PendingProbe),
            (self.deferred, Queue::Deferred),
        ] {
            check_list::<_, QueueLinks, DEVICES>(
                &self.devices,
                list,
                u32::MAX,
                |index, device| {
                    queued += 1;
                    if device.queue != expected {
                        return fail("device on the wrong probe queue", index);
                    }
                    if device.driver.is_some() && expected == Queue::Deferred {
                        return fail("bound device still parked as deferred", index);
                    }
                    Ok(())
                },
            )?;
        }
        let marked = self
            .devices
            .iter()
            .filter(|(_, device)| device.queue != Queue::None)
            .count();
        if queued != marked {
            return fail("device marked queued but not on a queue", u32::MAX);
        }
        check_list::<_, CleanupLinks, DRIVERS>(
            &self.drivers,
            self.cleanup,
            u32::MAX,
            |index, driver| {
                if !driver.cleanup_queued {
                    return fail("driver on the cleanup queue without the mark", index);
                }
                Ok(())
            },
        )?;
        let mut attaching = 0usize;
        check_list::<_, AttachLinks, DRIVERS>(
            &self.drivers,
            self.attach,
            u32::MAX,
            |index, driver| {
                attaching += 1;
                if !driver.attach_queued {
                    return fail("driver on the attach queue without the mark", index);
                }
                Ok(())
            },
        )?;
        let marked = self
            .drivers
            .iter()
            .filter(|(_, driver)| driver.attach_queued)
            .count();
        if attaching != marked {
            return fail("driver marked for its walk but not queued", u32::MAX);
        }
        Ok(())
    }

    fn check_operations(&self) -> Result<(), Violation> {
        let mut ready = 0usize;
        check_list::<_, OperationLinks, OPERATIONS>(
            &self.operations,
            self.ready,
            u32::MAX,
            |index, operation| {
                ready += 1;
                if operation.wait != Wait::Ready {
                    return fail("operation on the ready queue is not ready", index);
                }
                Ok(())
            },
        )?;
        let mut slot_waiters = 0usize;
        check_list::<_, OperationLinks, OPERATIONS>(
            &self.operations,
            self.slot_waiters,
            u32::MAX,
            |index, operation| {
                slot_waiters += 1;
                if operation.wait != Wait::CallbackSlot {
                    return fail("operation queued for a slot is not waiting for one", index);
                }
                Ok(())
            },
        )?;
        let mut waiting = 0usize;
        for (device_index, device) in self.devices.iter() {
            if let Some(owner) = device.lock_owner.get() {
                if self.operations.get(owner).is_none() {
                    return fail("lock owned by a finished operation", device_index);
                }
            }
            check_list::<_, OperationLinks, OPERATIONS>(
                &self.operations,
                device.lock_waiters,
                device_index,
                |index, operation| {
                    waiting += 1;
                    if operation.wait != Wait::Lock(device_index) {
                        return fail("lock waiter is not waiting for this lock", index);
                    }
                    if device.lock_owner.is_none() {
                        return fail("operation waits for a free lock", index);
                    }
                    Ok(())
                },
            )?;
        }
        for (driver_index, driver) in self.drivers.iter() {
            check_list::<_, OperationLinks, OPERATIONS>(
                &self.operations,
                driver.idle_waiters,
                driver_index,
                |index, operation| {
                    waiting += 1;
                    if operation.wait != Wait::DriverIdle(driver_index) {
                        return fail("idle waiter is not waiting for this driver", index);
                    }
                    Ok(())
                },
            )?;
        }
        let mut in_flight = 0usize;
        let mut granted = 0usize;
        for (index, operation) in self.operations.iter() {
            let owned = self
                .devices
                .iter()
                .filter(|(_, device)| device.lock_owner == Some(index))
                .count();
            if owned != operation.owned_locks as usize {
                return fail("operation's lock count wrong", index);
            }
            if operation.slot_granted {
                granted += 1;
            }
            match operation.wait {
                Wait::Running => return fail("operation left running between events", index),
                Wait::Callback => {
                    let Some(flight) = operation.in_flight else {
                        return fail("operation awaits a reply to no callback", index);
                    };
                    in_flight += 1;
                    // Rule 1: a callback runs with its device's lock held (by its operation).
                    if self
                        .devices
                        .get(flight.device)
                        .and_then(|device| device.lock_owner.get())
                        != Some(index)
                    {
                        return fail("callback in flight without its device's lock", index);
                    }
                }
                Wait::Lock(device) => {
                    // Rule 2: never wait for a device while holding one of its descendants.
                    if self.holds_descendant_of(index, device) {
                        return fail("operation waits for a parent while holding a child", index);
                    }
                }
                Wait::Ready | Wait::CallbackSlot | Wait::DriverIdle(_) => {}
            }
            if operation.wait != Wait::Callback && operation.in_flight.is_some() {
                return fail(
                    "callback in flight but the operation is not awaiting it",
                    index,
                );
            }
        }
        let ready_marked = self
            .operations
            .iter()
            .filter(|(_, op)| op.wait == Wait::Ready)
            .count();
        let slot_marked = self
            .operations
            .iter()
            .filter(|(_, op)| op.wait == Wait::CallbackSlot)
            .count();
        if ready != ready_marked || slot_waiters != slot_marked {
            return fail("operation marked waiting but not queued", u32::MAX);
        }
        let lock_or_idle = self
            .operations
            .iter()
            .filter(|(_, op)| matches!(op.wait, Wait::Lock(_) | Wait::DriverIdle(_)))
            .count();
        if waiting != lock_or_idle {
            return fail(
                "operation marked waiting for a lock but not queued on it",
                u32::MAX,
            );
        }
        if in_flight != self.in_flight_count {
            return fail("in-flight callback count wrong", u32::MAX);
        }
        if self.slots_taken != in_flight + granted {
            return fail("callback slots leaked", u32::MAX);
        }
        if in_flight > self.config().max_callbacks_in_flight {
            return fail("more callbacks in flight than configured", u32::MAX);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{
        Answer, Config, DeviceDescriptor, DriverDescriptor, Effect, Manager, MatchData, MatchTable,
        Name, PdId, Request, Requester, Resources,
    };
    use std::vec::Vec;

    type Small = Manager<8, 4, 1, 4>;

    /// A manager with a parent device bound to a driver and an unbound child.
    fn bound_manager() -> Small {
        let mut manager = Small::new(Config::PER_DEVICE);
        let bus = manager.add_bus("bus").unwrap();
        let mut effects = Vec::new();
        let driver = DriverDescriptor {
            bus,
            pd: PdId(1),
            name: Name::try_from("a").unwrap(),
            match_table: MatchTable::compatible("a").unwrap(),
            deadline: None,
        };
        let client = Requester::Client(0);
        manager
            .submit(client, Request::RegisterDriver(driver), &mut |e| {
                effects.push(e)
            })
            .unwrap();
        let descriptor = |compatible| DeviceDescriptor {
            bus,
            match_data: MatchData::compatible(compatible).unwrap(),
            resources: Resources::default(),
        };
        let request = Request::AddDevice {
            parent: None,
            descriptor: descriptor("a"),
        };
        manager
            .submit(client, request, &mut |e| effects.push(e))
            .unwrap();
        let Some(Effect::Callback(probe)) = effects.pop() else {
            panic!("expected a probe");
        };
        manager
            .callback_done(probe.pd, probe.id, Answer::Ok, &mut |_| {})
            .unwrap();
        let request = Request::AddDevice {
            parent: Some(probe.device),
            descriptor: descriptor("b"),
        };
        manager.submit(client, request, &mut |_| {}).unwrap();
        manager.invariants().unwrap();
        manager
    }

    #[test]
    fn detects_a_binding_missing_from_the_driver_list() {
        let mut manager = bound_manager();
        manager.devices[0].driver = crate::arena::Link::NONE;
        assert!(manager.invariants().is_err());
    }

    #[test]
    fn detects_a_binding_to_a_driver_that_does_not_match() {
        let mut manager = bound_manager();
        let other = manager
            .store
            .store_table(&MatchTable::compatible("other").unwrap())
            .unwrap();
        manager.drivers[0].table = other;
        let violation = manager.invariants().unwrap_err();
        assert_eq!(
            violation.rule,
            "device bound to a driver that does not match it"
        );
    }

    #[test]
    fn detects_a_store_that_lost_count() {
        let mut manager = bound_manager();
        // A table stored and held by nobody: the claims hold items no run names.
        manager
            .store
            .store_table(&MatchTable::compatible("a").unwrap())
            .unwrap();
        assert_eq!(
            manager.invariants().unwrap_err().rule,
            "a pool holds items no run names"
        );
        let mut manager = bound_manager();
        // A text counted once more than it is held.
        let text = manager.devices[0].data.compatible[0];
        assert!(manager
            .store
            .texts
            .intern(&std::string::String::from(manager.store.texts.text(text)))
            .is_some());
        assert_eq!(
            manager.invariants().unwrap_err().rule,
            "a text's count is not its holders'"
        );
    }

    #[test]
    fn detects_an_orphan_child() {
        let mut manager = bound_manager();
        manager.devices[1].parent = crate::arena::Link::to(5);
        assert!(manager.invariants().is_err());
    }

    #[test]
    fn detects_a_lock_held_by_a_finished_operation() {
        let mut manager = bound_manager();
        manager.devices[1].lock_owner = crate::arena::Link::to(3);
        let violation = manager.invariants().unwrap_err();
        assert_eq!(violation.rule, "lock owned by a finished operation");
    }

    #[test]
    fn detects_a_leaked_callback_slot() {
        let mut manager = bound_manager();
        manager.slots_taken += 1;
        assert_eq!(
            manager.invariants().unwrap_err().rule,
            "callback slots leaked"
        );
    }
}
