//! Device locks: one owner each and a FIFO of waiting operations, handed straight to the first
//! waiter on release (no barging); parents are locked before children.

use super::*;

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    /// Takes `device`'s lock for `op`, or queues `op` on it (FIFO) and returns false.
    pub(crate) fn lock(&mut self, op: u32, device: u32) -> bool {
        match self.devices[device].lock_owner.get() {
            None => {
                self.devices[device].lock_owner = Link::from(Some(op));
                self.operations[op].owned_locks += 1;
                true
            }
            Some(owner) if owner == op => true,
            Some(_) => {
                let mut waiters = self.devices[device].lock_waiters;
                waiters.push_back(&mut self.operations, op, OperationLinks);
                self.devices[device].lock_waiters = waiters;
                self.operations[op].wait = Wait::Lock(device);
                false
            }
        }
    }

    /// Releases `device`'s lock, handing it straight to the first waiter.
    pub(crate) fn unlock(&mut self, op: u32, device: u32) {
        debug_assert_eq!(self.devices[device].lock_owner, Some(op));
        self.operations[op].owned_locks -= 1;
        let mut waiters = self.devices[device].lock_waiters;
        let next = waiters.pop_front(&mut self.operations, OperationLinks);
        self.devices[device].lock_waiters = waiters;
        self.devices[device].lock_owner = Link::from(next);
        if let Some(waiter) = next {
            self.operations[waiter].owned_locks += 1;
            self.make_ready(waiter);
        }
    }

    pub(crate) fn owns(&self, op: u32, device: u32) -> bool {
        self.devices[device].lock_owner == Some(op)
    }

    pub(crate) fn release_if_owned(&mut self, op: u32, device: Option<(u32, u32)>) {
        if let Some((index, generation)) = device {
            if self.devices.is_live(index, generation) && self.owns(op, index) {
                self.unlock(op, index);
            }
        }
    }

    /// Locks every device of `scope` in pre-order (parents before children). Returns false
    /// when `op` had to queue on a lock; calling it again resumes (locks already owned are
    /// skipped, and a device that vanished meanwhile is simply no longer visited).
    pub(crate) fn lock_scope(&mut self, op: u32, scope: Scope) -> bool {
        let mut node = self.scope_first(scope);
        while let Some(current) = node {
            if !self.lock(op, current) {
                return false;
            }
            node = self.preorder_next(current, scope);
        }
        true
    }

    pub(crate) fn unlock_scope(&mut self, op: u32, scope: Scope) {
        let mut node = self.scope_first(scope);
        while let Some(current) = node {
            if self.owns(op, current) {
                self.unlock(op, current);
            }
            node = self.preorder_next(current, scope);
        }
    }

    /// Operation `op` holds a lock on a descendant of `device` (used by the lock-order check).
    pub(crate) fn holds_descendant_of(&self, op: u32, device: u32) -> bool {
        self.devices
            .iter()
            .any(|(index, entry)| entry.lock_owner == Some(op) && self.is_ancestor(device, index))
    }
}
