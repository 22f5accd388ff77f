//! What the manager tells its clients, one [`Subscriber`] per client channel: the kinds of
//! event it subscribed to and a bounded queue of them, with a count of those dropped when the
//! queue was full (the next event it takes carries the count: nothing is lost silently), and
//! the completions of its own accepted requests, which have room of their own — a client has
//! at most [`COMPLETIONS`] requests accepted and not yet taken back as completions, so they are
//! never dropped. The manager notifies a client's channel when its queue goes from empty to not
//! empty; the client takes events with `NextEvent` until there are none.

use heapless::{Deque, Vec};
use warden_manager_core::{Change, ChangeKind, Completion, RequestId};
use warden_protocol::{EventKind, Status};
use warden_services::admin::Event;
use warden_vocabulary::{Outcome, PdId};

/// Events a client's queue holds.
pub const EVENTS: usize = 32;
/// Requests a client may have accepted and not yet taken back as completions (the core's
/// per-requester limit, `Config::requests_per_requester`).
pub const COMPLETIONS: usize = 8;
/// Client channels ([`crate::interface::CLIENTS`]: 16–23).
const CLIENTS: usize =
    (*crate::interface::CLIENTS.end() - *crate::interface::CLIENTS.start() + 1) as usize;

/// One client channel's events.
#[derive(Debug, Default)]
pub struct Subscriber {
    mask: u64,
    events: Deque<Event, EVENTS>,
    lost: u32,
    completions: Deque<Event, COMPLETIONS>,
    accepted: Vec<RequestId, COMPLETIONS>,
    wake: bool,
}

impl Subscriber {
    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.completions.is_empty()
    }

    fn push(&mut self, event: Event) {
        let was_empty = self.is_empty();
        if self.events.push_back(event).is_err() {
            self.lost = self.lost.saturating_add(1);
        }
        self.wake |= was_empty;
    }
}

/// Counters for the shell's `stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Events queued for some client.
    pub queued: u64,
    /// Events dropped, a client's queue full.
    pub lost: u64,
}

/// Every client channel's events.
#[derive(Debug, Default)]
pub struct Subscribers {
    clients: [Subscriber; CLIENTS],
    counts: Counts,
}

/// The event a change to the tree is.
fn kind_of(kind: ChangeKind) -> EventKind {
    match kind {
        ChangeKind::Added => EventKind::DeviceAdded,
        ChangeKind::Removed => EventKind::DeviceRemoved,
        ChangeKind::Bound => EventKind::Bound,
        ChangeKind::Unbound => EventKind::Unbound,
        ChangeKind::Suspended => EventKind::Suspended,
        ChangeKind::Resumed => EventKind::Resumed,
        ChangeKind::ShutDown => EventKind::ShutDown,
    }
}

fn event(kind: EventKind) -> Event {
    Event {
        kind,
        device: None,
        driver: None,
        pd: None,
        request: 0,
        status: Status::Ok,
        detail: 0,
        lost: 0,
    }
}

impl Subscribers {
    fn client(&mut self, channel: u8) -> Option<&mut Subscriber> {
        let first = *crate::interface::CLIENTS.start();
        self.clients
            .get_mut(usize::from(channel.checked_sub(first)?))
    }

    /// Client `channel` subscribes to the kinds in `mask` (0: none), from now on.
    pub fn subscribe(&mut self, channel: u8, mask: u64) {
        if let Some(client) = self.client(channel) {
            client.mask = mask & EventKind::MASK;
        }
    }

    fn broadcast(&mut self, event: Event) {
        for client in &mut self.clients {
            if client.mask & event.kind.bit() != 0 {
                let lost = client.lost;
                client.push(event);
                if client.lost == lost {
                    self.counts.queued += 1;
                } else {
                    self.counts.lost += 1;
                }
            }
        }
    }

    /// The tree changed.
    pub fn changed(&mut self, change: &Change) {
        self.broadcast(Event {
            device: Some(change.device),
            driver: change.driver,
            ..event(kind_of(change.kind))
        });
    }

    /// A driver PD failed and was stopped (`Faulted`), or was quarantined.
    pub fn pd(&mut self, kind: EventKind, pd: PdId) {
        self.broadcast(Event {
            pd: Some(pd),
            ..event(kind)
        });
    }

    /// Whether client `channel` may have one more request accepted.
    pub fn has_room(&mut self, channel: u8) -> bool {
        self.client(channel)
            .is_some_and(|client| client.accepted.len() + client.completions.len() < COMPLETIONS)
    }

    /// Client `channel`'s request `id` was accepted: its completion will be queued for it.
    pub fn accepted(&mut self, channel: u8, id: RequestId) {
        if let Some(client) = self.client(channel) {
            // `has_room` was asked first; were it full, the completion would only be missing.
            let _ = client.accepted.push(id);
        }
    }

    /// A request completed: queued for its client if that client had it accepted (one
    /// decided at once was answered in the call's reply).
    pub fn completed(&mut self, channel: u8, completion: &Completion) {
        let Some(client) = self.client(channel) else {
            return;
        };
        let Some(position) = client
            .accepted
            .iter()
            .position(|id| *id == completion.request)
        else {
            return;
        };
        client.accepted.swap_remove(position);
        let (status, detail, device, driver) = match completion.result {
            Ok(Outcome::Device { device, driver }) => (Status::Ok, 0, Some(device), driver),
            Ok(Outcome::Driver { driver, .. }) => (Status::Ok, 0, None, Some(driver)),
            Ok(Outcome::Done) => (Status::Ok, 0, None, None),
            Err(error) => {
                let (status, detail) = crate::status_and_detail(error);
                (status, detail, None, None)
            }
        };
        let was_empty = client.is_empty();
        // Room was kept for it when the request was accepted.
        let _ = client.completions.push_back(Event {
            device,
            driver,
            request: completion.request.0,
            status,
            detail,
            ..event(EventKind::Completed)
        });
        client.wake |= was_empty;
    }

    /// The oldest event for client `channel`: its completions first, then the rest in order;
    /// the count of events it lost rides on the first it takes after losing them.
    pub fn next(&mut self, channel: u8) -> Option<Event> {
        let client = self.client(channel)?;
        let mut event = client
            .completions
            .pop_front()
            .or_else(|| client.events.pop_front())?;
        event.lost = core::mem::take(&mut client.lost);
        // A client that stops taking before its queue is empty (a bound of its own, a reply it
        // could not read) is notified again, so that what is left does not wait for an event
        // that may never come.
        client.wake |= !client.is_empty();
        Some(event)
    }

    /// The client channels to notify: those whose queue went from empty to not empty.
    pub fn take_wakes(&mut self) -> impl Iterator<Item = u8> + '_ {
        self.clients
            .iter_mut()
            .zip(*crate::interface::CLIENTS.start()..)
            .filter_map(|(client, channel)| core::mem::take(&mut client.wake).then_some(channel))
    }

    /// The counters.
    #[must_use]
    pub fn counts(&self) -> Counts {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_manager_core::{Error, Requester};
    use warden_vocabulary::DeviceId;

    fn bound(index: u32) -> Change {
        Change {
            kind: ChangeKind::Bound,
            device: DeviceId::from_parts(index, 0),
            driver: None,
        }
    }

    #[test]
    fn only_subscribers_get_events_and_overflow_is_counted() {
        let mut subscribers = Subscribers::default();
        subscribers.subscribe(16, EventKind::Bound.bit());
        subscribers.subscribe(17, EventKind::Unbound.bit());
        for index in 0..(EVENTS as u32 + 5) {
            subscribers.changed(&bound(index));
        }
        // One wake, for the client whose queue went from empty to not empty.
        assert_eq!(
            subscribers.take_wakes().collect::<alloc::vec::Vec<_>>(),
            [16]
        );
        assert_eq!(subscribers.next(17), None);
        let first = subscribers.next(16).unwrap();
        // Taken but not emptied: woken again, so the rest is not stranded.
        assert_eq!(
            subscribers.take_wakes().collect::<alloc::vec::Vec<_>>(),
            [16]
        );
        assert_eq!(first.device, Some(DeviceId::from_parts(0, 0)));
        assert_eq!(first.lost, 5);
        let mut rest = 0;
        while let Some(event) = subscribers.next(16) {
            assert_eq!(event.lost, 0);
            rest += 1;
        }
        assert_eq!(rest, EVENTS - 1);
        // Emptied: no more wakes.
        let _ = subscribers.take_wakes().count();
        assert_eq!(subscribers.next(16), None);
        assert_eq!(subscribers.take_wakes().count(), 0);
        assert_eq!(
            subscribers.counts(),
            Counts {
                queued: EVENTS as u64,
                lost: 5
            }
        );
        // Channels outside 16–23 are nobody's.
        subscribers.subscribe(24, EventKind::MASK);
        subscribers.subscribe(3, EventKind::MASK);
        assert_eq!(subscribers.next(24), None);
        assert_eq!(subscribers.next(3), None);
    }

    #[test]
    fn completions_of_accepted_requests_are_never_dropped() {
        let mut subscribers = Subscribers::default();
        subscribers.subscribe(16, EventKind::MASK);
        for index in 0..(EVENTS as u32 * 2) {
            subscribers.changed(&bound(index));
        }
        for id in 0..COMPLETIONS as u32 {
            assert!(subscribers.has_room(16));
            subscribers.accepted(16, RequestId(id));
        }
        assert!(!subscribers.has_room(16));
        for id in 0..COMPLETIONS as u32 {
            let result = if id == 0 {
                Err(Error::Busy)
            } else {
                Ok(Outcome::Done)
            };
            subscribers.completed(
                16,
                &Completion {
                    request: RequestId(id),
                    requester: Requester::Client(16),
                    result,
                },
            );
        }
        // Another client's request, or one never accepted (decided at once), is not queued.
        subscribers.completed(
            16,
            &Completion {
                request: RequestId(99),
                requester: Requester::Client(16),
                result: Ok(Outcome::Done),
            },
        );
        assert!(!subscribers.has_room(16));
        let first = subscribers.next(16).unwrap();
        assert_eq!(
            (first.kind, first.request, first.status, first.lost),
            (EventKind::Completed, 0, Status::Busy, EVENTS as u32)
        );
        for id in 1..COMPLETIONS as u32 {
            let event = subscribers.next(16).unwrap();
            assert_eq!((event.kind, event.request), (EventKind::Completed, id));
        }
        // Taking them back makes room for more requests.
        assert!(subscribers.has_room(16));
        assert_eq!(subscribers.next(16).unwrap().kind, EventKind::Bound);
    }
}
