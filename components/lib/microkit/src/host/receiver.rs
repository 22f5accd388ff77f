//! What a PD runs next, on the host platform: the Microkit's delivery rules for one PD, as a
//! state machine its event loop feeds. The rules (see `shared/MICROKIT-NOTES.md`):
//! * one entry point at a time: the loop asks for the next entry only when the last returned;
//! * notifications are a binary semaphore per channel, OR-accumulated while the PD is busy and
//!   delivered together as one channel set: repeated signals before delivery coalesce;
//! * pending notifications are delivered before anything that waits on the endpoint (the bound
//!   notification is seen before the endpoint), and an injected fault after the notifications;
//! * the endpoint (calls and child faults) is served in arrival order, one call per channel at a
//!   time (a caller is blocked until its reply, so it has at most one call outstanding).

use std::collections::VecDeque;

/// An entry point to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// `notified` with these channel bits.
    Notified(u64),
    /// `inject` with this fault code.
    Inject(u8),
    /// `protected` for the call waiting in this channel's slot.
    Protected(u8),
    /// `fault` for this child, with this label.
    Fault(u8, u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiting {
    Call(u8),
    Fault(u8, u64),
}

/// Endpoint entries a PD holds at most: a call per channel and a fault per child (62 + 62); more
/// would mean a peer or the launcher misbehaves, and the extra is dropped.
const ENDPOINT: usize = 2 * (crate::MAX_CHANNEL as usize + 1);
/// Injected faults waiting at most (the soak injects one at a time).
const INJECTED: usize = 16;

/// The PD's undelivered events.
#[derive(Debug, Default)]
pub(crate) struct Receiver {
    pending: u64,
    injected: VecDeque<u8>,
    endpoint: VecDeque<Waiting>,
}

impl Receiver {
    /// A notification (or an interrupt) on channel `channel`.
    pub(crate) fn signal(&mut self, channel: u8) {
        if let Some(bit) = 1u64.checked_shl(u32::from(channel)) {
            self.pending |= bit;
        }
    }

    /// A call arrived in `channel`'s slot (its doorbell rang). A channel with a call waiting
    /// already is not queued twice: a caller has one call outstanding, and a doorbell rung again
    /// for it is the same call.
    pub(crate) fn call(&mut self, channel: u8) {
        let waiting = Waiting::Call(channel);
        if !self.endpoint.contains(&waiting) && self.endpoint.len() < ENDPOINT {
            self.endpoint.push_back(waiting);
        }
    }

    /// A child faulted.
    pub(crate) fn fault(&mut self, child: u8, label: u64) {
        if self.endpoint.len() < ENDPOINT {
            self.endpoint.push_back(Waiting::Fault(child, label));
        }
    }

    /// A child was stopped: its faults not yet delivered are withdrawn.
    pub(crate) fn withdraw_fault(&mut self, child: u8) {
        self.endpoint
            .retain(|waiting| !matches!(waiting, Waiting::Fault(from, _) if *from == child));
    }

    /// The launcher injects a fault.
    pub(crate) fn inject(&mut self, code: u8) {
        if self.injected.len() < INJECTED {
            self.injected.push_back(code);
        }
    }

    /// Is anything waiting?
    pub(crate) fn has_work(&self) -> bool {
        self.pending != 0 || !self.injected.is_empty() || !self.endpoint.is_empty()
    }

    /// The entry to run now, if any.
    pub(crate) fn next(&mut self) -> Option<Next> {
        if self.pending != 0 {
            return Some(Next::Notified(core::mem::take(&mut self.pending)));
        }
        if let Some(code) = self.injected.pop_front() {
            return Some(Next::Inject(code));
        }
        self.endpoint.pop_front().map(|waiting| match waiting {
            Waiting::Call(channel) => Next::Protected(channel),
            Waiting::Fault(child, label) => Next::Fault(child, label),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_coalesce_while_the_pd_is_busy() {
        let mut receiver = Receiver::default();
        for _ in 0..3 {
            receiver.signal(5);
        }
        receiver.signal(7);
        assert_eq!(receiver.next(), Some(Next::Notified(1 << 5 | 1 << 7)));
        assert_eq!(receiver.next(), None, "repeated signals were one");
    }

    #[test]
    fn pending_notifications_are_served_before_queued_calls_and_faults() {
        let mut receiver = Receiver::default();
        receiver.call(5);
        receiver.fault(3, 6);
        receiver.inject(2);
        receiver.signal(7);
        assert_eq!(receiver.next(), Some(Next::Notified(1 << 7)));
        assert_eq!(receiver.next(), Some(Next::Inject(2)));
        // A notification that arrives between two endpoint entries still goes first.
        receiver.signal(1);
        assert_eq!(receiver.next(), Some(Next::Notified(1 << 1)));
        assert_eq!(receiver.next(), Some(Next::Protected(5)));
        assert_eq!(receiver.next(), Some(Next::Fault(3, 6)));
        assert!(!receiver.has_work());
    }

    #[test]
    fn a_doorbell_rung_again_is_the_same_call() {
        let mut receiver = Receiver::default();
        for _ in 0..1000 {
            receiver.call(4);
        }
        receiver.call(9);
        assert_eq!(receiver.next(), Some(Next::Protected(4)));
        assert_eq!(receiver.next(), Some(Next::Protected(9)));
        assert_eq!(receiver.next(), None);
    }

    #[test]
    fn a_stopped_childs_fault_is_withdrawn() {
        let mut receiver = Receiver::default();
        receiver.fault(3, 6);
        receiver.call(1);
        receiver.fault(4, 6);
        receiver.withdraw_fault(3);
        assert_eq!(receiver.next(), Some(Next::Protected(1)));
        assert_eq!(receiver.next(), Some(Next::Fault(4, 6)));
        assert_eq!(receiver.next(), None);
    }

    #[test]
    fn hostile_input_is_bounded() {
        let mut receiver = Receiver::default();
        receiver.signal(200); // no such channel: ignored, no overflow
        assert!(!receiver.has_work());
        for _ in 0..10_000 {
            receiver.fault(1, 3);
            receiver.inject(1);
        }
        assert!(receiver.endpoint.len() <= ENDPOINT);
        assert!(receiver.injected.len() <= INJECTED);
    }
}
