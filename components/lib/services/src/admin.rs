//! The device manager's administrative calls, both halves: what a client such as the shell may
//! ask on one of the manager's client channels (16–23), as [`crate::call`]s.
//!
//! | call | reply | refusals |
//! |---|---|---|
//! | `QueryTree { cursor }` | `DeviceInfo` of the first device whose index ≥ cursor | NoSuchObject past the last |
//! | `QueryDevice { device }` | `DeviceInfo` | StaleHandle |
//! | `QueryDriver { driver }` | `DriverInfo` | StaleHandle |
//! | `Bind { device, driver }`, `Unbind { device }`, `Rescan {}`, `RemoveDevice { device }`, `SuspendDevice { target }`, `ResumeDevice { target }` (a device and its subtree, or `All`), `ShutdownSystem {}` | `Accepted { request }` once queued (its outcome follows as a `Completed` event with that number), or `Completion` Ok if it was done at once | the refusal the manager could decide at once (StaleHandle, Busy, NoMatch, NoSpace, ShutDown; NotPermitted with a detail) |
//! | `Subscribe { mask }` | `Completion` Ok: events of those kinds are queued from now on | Malformed (a bit that names no kind) |
//! | `NextEvent {}` | `Event`: the oldest queued (completions first), with the count of events lost before it | NoSuchObject (none queued) |
//! | `QueryStats {}` | `Stats`: the manager's counters | — |
//! | `QueryTrace { cursor }` | `TraceRecord`: the first record of the trace ring whose sequence ≥ cursor | NoSuchObject past the last |
//! | `QueryPd { pd }` | `PdInfo`: its supervision | NoSuchObject (not a supervised PD) |
//! | `RetryPd { pd }` | `Completion`: Ok once restarted | NoSuchObject, Busy (it is running) |
//!
//! [`Client`] is the client's half, [`serve`] the manager's, over its [`Server`].

use warden_protocol::{DecodeError, EventKind, FailureKind, Message, PdPhase, PowerTarget, Status};
use warden_vocabulary::{
    DeviceId, DeviceState, DriverId, MatchData, Name, Outcome, PdId, Resources,
};

use crate::call::{CallError, Caller};

/// A device as the manager describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Its handle.
    pub id: DeviceId,
    /// Its parent.
    pub parent: Option<DeviceId>,
    /// Its driver.
    pub driver: Option<DriverId>,
    /// Its power state.
    pub state: DeviceState,
    /// What it is.
    pub match_data: MatchData,
    /// Its MMIO windows (physical) and GIC INTIDs.
    pub resources: Resources,
    /// The PD whose driver it lost when that PD failed, until it is bound again.
    pub last_pd: Option<PdId>,
}

/// A driver PD's supervision, as the manager describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Supervised {
    /// The PD.
    pub pd: PdId,
    /// Where it is in its life.
    pub phase: PdPhase,
    /// Milliseconds until its restart (phase `Waiting`).
    pub restart_in_ms: u32,
    /// Failures in a row (zero once healthy again).
    pub consecutive_failures: u32,
    /// Failures since start-up.
    pub failures: u32,
    /// Restarts since start-up.
    pub restarts: u32,
    /// Its latest failure.
    pub last_failure: FailureKind,
    /// The fault's label (`Fault`), the callback's opcode (`Overdue`), else zero.
    pub failure_detail: u32,
}

/// A driver as the manager describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Driver {
    /// Its handle.
    pub id: DriverId,
    /// The PD it lives in.
    pub pd: PdId,
    /// Devices bound to it.
    pub bound: u32,
    /// Its name.
    pub name: Name,
}

/// What became of a request a client sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Queued as this client's request `0`: its outcome comes as a `Completed` event with that
    /// number.
    Accepted(u32),
    /// Done at once; there is nothing to wait for.
    Done,
}

/// Something the manager tells a client, taken with `NextEvent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The device concerned.
    pub device: Option<DeviceId>,
    /// The driver concerned.
    pub driver: Option<DriverId>,
    /// The driver PD concerned (`Faulted`, `Quarantined`).
    pub pd: Option<PdId>,
    /// `Completed`: the request's number.
    pub request: u32,
    /// `Completed`: how it ended.
    pub status: Status,
    /// `Completed` with `Failed` or `NotPermitted`: the detail.
    pub detail: u16,
    /// Events the manager dropped for this client before this one (its queue was full).
    pub lost: u32,
}

/// The manager's counters, as `QueryStats` answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events the core handled.
    pub events: u32,
    /// Probe callbacks issued.
    pub probes: u32,
    /// Successful binds.
    pub binds: u32,
    /// Probe walks restarted (a version counter changed).
    pub walk_restarts: u32,
    /// Pairs skipped on restarted walks.
    pub pairs_skipped: u32,
    /// Callbacks issued.
    pub callbacks: u32,
    /// Callbacks in flight now.
    pub in_flight: u32,
    /// The most callbacks in flight at once.
    pub max_in_flight: u32,
    /// Devices parked after a Defer, now.
    pub deferred: u32,
    /// Requests completed.
    pub completions: u32,
    /// Driver PD restarts.
    pub restarts: u32,
    /// Driver PDs quarantined now.
    pub quarantined: u32,
    /// Events queued for clients.
    pub events_queued: u32,
    /// Events dropped, a client's queue full.
    pub events_lost: u32,
}

/// A record of the manager's trace ring, as `QueryTrace` answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceRecord {
    /// Its number.
    pub sequence: u64,
    /// When, in nanoseconds on the manager's clock.
    pub at_ns: u64,
    /// 1 at a span's start, 0 at its end.
    pub begin: u32,
    /// What: `warden_microkit::trace::Name`'s code.
    pub name: u32,
    /// A request's number or a callback's sequence number.
    pub id: u64,
    /// For a callback: its driver PD.
    pub pd: u32,
    /// The device concerned.
    pub device: Option<DeviceId>,
    /// The driver concerned.
    pub driver: Option<DriverId>,
    /// For a callback: the request it serves, +1 (0: none).
    pub request: u64,
    /// At an end: the outcome's status code.
    pub status: u32,
}

/// Why an administrative call gave no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The call could not be made, or its reply did not decode.
    Call(CallError),
    /// The manager refused.
    Refused(Status),
    /// A reply of the wrong kind (it is reported, never trusted).
    Unexpected,
}

impl From<CallError> for Error {
    fn from(error: CallError) -> Self {
        Self::Call(error)
    }
}

/// The client's half: calls into the manager through `C` (its channel, or a fake in tests).
#[derive(Debug)]
pub struct Client<C: Caller>(pub C);

impl<C: Caller> Client<C> {
    /// The first device whose index is at least `cursor`, or `None` past the last.
    ///
    /// # Errors
    /// [`Error`].
    pub fn next_device(&mut self, cursor: u64) -> Result<Option<Device>, Error> {
        match self.device_reply(&Message::QueryTree { cursor }) {
            Err(Error::Refused(Status::NoSuchObject)) => Ok(None),
            other => other.map(Some),
        }
    }

    /// One device.
    ///
    /// # Errors
    /// [`Error`].
    pub fn device(&mut self, device: DeviceId) -> Result<Device, Error> {
        self.device_reply(&Message::QueryDevice { device })
    }

    /// One driver.
    ///
    /// # Errors
    /// [`Error`].
    pub fn driver(&mut self, driver: DriverId) -> Result<Driver, Error> {
        match self.0.call(&Message::QueryDriver { driver })? {
            Message::DriverInfo {
                driver: id,
                pd,
                bound,
                name,
            } if id == driver => Ok(Driver {
                id,
                pd,
                bound,
                name,
            }),
            other => Err(refusal(&other)),
        }
    }

    /// Asks for `device` to be bound to `driver`.
    ///
    /// # Errors
    /// [`Error`].
    pub fn bind(&mut self, device: DeviceId, driver: DriverId) -> Result<Submitted, Error> {
        self.request(&Message::Bind { device, driver })
    }

    /// Asks for `device` to be unbound.
    ///
    /// # Errors
    /// [`Error`].
    pub fn unbind(&mut self, device: DeviceId) -> Result<Submitted, Error> {
        self.request(&Message::Unbind { device })
    }

    /// Asks for every unbound device to be probed again.
    ///
    /// # Errors
    /// [`Error`].
    pub fn rescan(&mut self) -> Result<Submitted, Error> {
        self.request(&Message::Rescan {})
    }

    /// Asks for `device` and its subtree to be removed (children first).
    ///
    /// # Errors
    /// [`Error`].
    pub fn remove(&mut self, device: DeviceId) -> Result<Submitted, Error> {
        self.request(&Message::RemoveDevice { device })
    }

    /// Asks for a device and its subtree (children first), or the whole system, to be
    /// suspended.
    ///
    /// # Errors
    /// [`Error`].
    pub fn suspend(&mut self, target: PowerTarget) -> Result<Submitted, Error> {
        self.request(&Message::SuspendDevice { target })
    }

    /// Asks for a device and its subtree (parents first), or the whole system, to be resumed.
    ///
    /// # Errors
    /// [`Error`].
    pub fn resume(&mut self, target: PowerTarget) -> Result<Submitted, Error> {
        self.request(&Message::ResumeDevice { target })
    }

    /// Asks for the whole system to be shut down (children first).
    ///
    /// # Errors
    /// [`Error`].
    pub fn shutdown(&mut self) -> Result<Submitted, Error> {
        self.request(&Message::ShutdownSystem {})
    }

    /// Asks for the events of the kinds whose bits are set in `mask` (0: none) to be queued
    /// for this client.
    ///
    /// # Errors
    /// [`Error`].
    pub fn subscribe(&mut self, mask: u64) -> Result<(), Error> {
        match self.0.call(&Message::Subscribe { mask })? {
            Message::Completion {
                status: Status::Ok, ..
            } => Ok(()),
            other => Err(refusal(&other)),
        }
    }

    /// The oldest event queued for this client, or `None`.
    ///
    /// # Errors
    /// [`Error`].
    pub fn next_event(&mut self) -> Result<Option<Event>, Error> {
        match self.0.call(&Message::NextEvent {})? {
            event @ Message::Event { .. } => event_of(event).map(Some).ok_or(Error::Unexpected),
            Message::Completion {
                status: Status::NoSuchObject,
                ..
            } => Ok(None),
            other => Err(refusal(&other)),
        }
    }

    /// A driver PD's supervision.
    ///
    /// # Errors
    /// [`Error`].
    pub fn pd(&mut self, pd: PdId) -> Result<Supervised, Error> {
        match self.0.call(&Message::QueryPd { pd })? {
            Message::PdInfo {
                pd: id,
                phase,
                restart_in_ms,
                consecutive_failures,
                failures,
                restarts,
                last_failure,
                failure_detail,
            } if id == pd => Ok(Supervised {
                pd,
                phase,
                restart_in_ms,
                consecutive_failures,
                failures,
                restarts,
                last_failure,
                failure_detail,
            }),
            other => Err(refusal(&other)),
        }
    }

    /// The manager's counters.
    ///
    /// # Errors
    /// [`Error`].
    pub fn stats(&mut self) -> Result<Stats, Error> {
        match self.0.call(&Message::QueryStats {})? {
            stats @ Message::Stats { .. } => stats_of(stats).ok_or(Error::Unexpected),
            other => Err(refusal(&other)),
        }
    }

    /// The first record of the manager's trace ring whose sequence is at least `cursor`, or
    /// `None` past the last.
    ///
    /// # Errors
    /// [`Error`].
    pub fn trace_record(&mut self, cursor: u64) -> Result<Option<TraceRecord>, Error> {
        match self.0.call(&Message::QueryTrace { cursor })? {
            record @ Message::TraceRecord { .. } => {
                trace_record_of(record).map(Some).ok_or(Error::Unexpected)
            }
            Message::Completion {
                status: Status::NoSuchObject,
                ..
            } => Ok(None),
            other => Err(refusal(&other)),
        }
    }

    /// Restarts a driver PD that is quarantined (or waiting for its backoff) now.
    ///
    /// # Errors
    /// [`Error`].
    pub fn retry(&mut self, pd: PdId) -> Result<(), Error> {
        match self.request(&Message::RetryPd { pd })? {
            Submitted::Done => Ok(()),
            Submitted::Accepted(_) => Err(Error::Unexpected),
        }
    }

    fn device_reply(&mut self, call: &Message) -> Result<Device, Error> {
        match self.0.call(call)? {
            Message::DeviceInfo {
                device,
                parent,
                driver,
                state,
                match_data,
                resources,
                last_pd,
            } => Ok(Device {
                id: device,
                parent,
                driver,
                state,
                match_data,
                resources,
                last_pd,
            }),
            other => Err(refusal(&other)),
        }
    }

    fn request(&mut self, call: &Message) -> Result<Submitted, Error> {
        match self.0.call(call)? {
            Message::Accepted { request } => Ok(Submitted::Accepted(request)),
            Message::Completion {
                status: Status::Ok, ..
            } => Ok(Submitted::Done),
            Message::Completion { status, .. } => Err(Error::Refused(status)),
            _ => Err(Error::Unexpected),
        }
    }
}

/// What the manager does for its administrative clients.
pub trait Server {
    /// The first device whose index is at least `cursor`.
    fn next_device(&mut self, cursor: u64) -> Option<Device>;
    /// One device.
    ///
    /// # Errors
    /// The refusal (StaleHandle).
    fn device(&mut self, device: DeviceId) -> Result<Device, Status>;
    /// One driver.
    ///
    /// # Errors
    /// The refusal (StaleHandle).
    fn driver(&mut self, driver: DriverId) -> Result<Driver, Status>;
    /// Binds `device` to `driver` (queued).
    ///
    /// # Errors
    /// The refusal decided at once.
    fn bind(&mut self, device: DeviceId, driver: DriverId) -> Result<Submitted, Status>;
    /// Unbinds `device` (queued).
    ///
    /// # Errors
    /// The refusal decided at once.
    fn unbind(&mut self, device: DeviceId) -> Result<Submitted, Status>;
    /// Probes every unbound device again (queued).
    ///
    /// # Errors
    /// The refusal decided at once.
    fn rescan(&mut self) -> Result<Submitted, Status>;
    /// Removes `device` and its subtree (queued).
    ///
    /// # Errors
    /// The refusal decided at once.
    fn remove(&mut self, device: DeviceId) -> Result<Submitted, Status>;
    /// Suspends (`suspend`) or resumes a device and its subtree, or the whole system (queued).
    ///
    /// # Errors
    /// The refusal decided at once.
    fn power(&mut self, target: PowerTarget, suspend: bool) -> Result<Submitted, Status>;
    /// Shuts the whole system down (queued).
    ///
    /// # Errors
    /// The refusal decided at once (ShutDown: already).
    fn shutdown(&mut self) -> Result<Submitted, Status>;
    /// Queues for this client the events of the kinds in `mask` (a decoded mask: every bit
    /// names a kind).
    fn subscribe(&mut self, mask: u64);
    /// Takes the oldest event queued for this client.
    fn next_event(&mut self) -> Option<Event>;
    /// The counters.
    fn stats(&mut self) -> Stats;
    /// The first record of the trace ring whose sequence is at least `cursor`.
    fn trace_record(&mut self, cursor: u64) -> Option<TraceRecord>;
    /// A driver PD's supervision.
    ///
    /// # Errors
    /// NoSuchObject.
    fn pd(&mut self, pd: PdId) -> Result<Supervised, Status>;
    /// Restarts a stopped driver PD now.
    ///
    /// # Errors
    /// NoSuchObject, Busy.
    fn retry(&mut self, pd: PdId) -> Result<(), Status>;
    /// A call a client may not make here, or one that did not decode.
    fn refused(&mut self, why: Refusal<'_>);
}

/// Why [`serve`] refused a call without asking its [`Server`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal<'a> {
    /// A message that is not an administrative call.
    NotOffered(&'a Message),
    /// The call did not decode.
    Malformed(DecodeError),
}

/// The manager's half: answers one call from a client.
pub fn serve(server: &mut impl Server, call: Result<Message, DecodeError>) -> Message {
    let done = |result: Result<(), Status>| completion(result.err().unwrap_or(Status::Ok));
    let queued = |result: Result<Submitted, Status>| match result {
        Ok(Submitted::Accepted(request)) => Message::Accepted { request },
        Ok(Submitted::Done) => completion(Status::Ok),
        Err(status) => completion(status),
    };
    match call {
        Ok(Message::QueryTree { cursor }) => match server.next_device(cursor) {
            Some(device) => device_info(device),
            None => completion(Status::NoSuchObject),
        },
        Ok(Message::QueryDevice { device }) => {
            server.device(device).map_or_else(completion, device_info)
        }
        Ok(Message::QueryDriver { driver }) => server.driver(driver).map_or_else(
            completion,
            |Driver {
                 id,
                 pd,
                 bound,
                 name,
             }| Message::DriverInfo {
                driver: id,
                pd,
                bound,
                name,
            },
        ),
        Ok(Message::Bind { device, driver }) => queued(server.bind(device, driver)),
        Ok(Message::Unbind { device }) => queued(server.unbind(device)),
        Ok(Message::Rescan {}) => queued(server.rescan()),
        Ok(Message::RemoveDevice { device }) => queued(server.remove(device)),
        Ok(Message::SuspendDevice { target }) => queued(server.power(target, true)),
        Ok(Message::ResumeDevice { target }) => queued(server.power(target, false)),
        Ok(Message::ShutdownSystem {}) => queued(server.shutdown()),
        Ok(Message::Subscribe { mask }) => {
            server.subscribe(mask);
            completion(Status::Ok)
        }
        Ok(Message::QueryStats {}) => stats_message(server.stats()),
        Ok(Message::QueryTrace { cursor }) => server
            .trace_record(cursor)
            .map_or(completion(Status::NoSuchObject), trace_record_message),
        Ok(Message::NextEvent {}) => match server.next_event() {
            Some(event) => event_message(event),
            None => completion(Status::NoSuchObject),
        },
        Ok(Message::QueryPd { pd }) => server.pd(pd).map_or_else(completion, pd_info),
        Ok(Message::RetryPd { pd }) => done(server.retry(pd)),
        Ok(other) => {
            server.refused(Refusal::NotOffered(&other));
            completion(Status::NotPermitted)
        }
        Err(error) => {
            server.refused(Refusal::Malformed(error));
            completion(Status::Malformed)
        }
    }
}

/// Moves the named fields of a struct into a message variant (or a variant's into a struct:
/// `None` for another variant), by name.
macro_rules! moved {
    ($value:expr, $($From:ident)::+ => $($To:ident)::+ { $($field:ident),* $(,)? }) => {{
        let $($From)::+ { $($field),* } = $value;
        $($To)::+ { $($field),* }
    }};
    (variant $value:expr, $($From:ident)::+ => $($To:ident)::+ { $($field:ident),* $(,)? }) => {
        match $value {
            $($From)::+ { $($field),* } => Some($($To)::+ { $($field),* }),
            _ => None,
        }
    };
}

fn event_message(event: Event) -> Message {
    moved!(event, Event => Message::Event { kind, device, driver, pd, request, status, detail, lost })
}

/// The event a `Message::Event` carries.
fn event_of(message: Message) -> Option<Event> {
    moved!(variant message, Message::Event => Event { kind, device, driver, pd, request, status, detail, lost })
}

fn stats_message(stats: Stats) -> Message {
    moved!(stats, Stats => Message::Stats { events, probes, binds, walk_restarts, pairs_skipped, callbacks, in_flight, max_in_flight, deferred, completions, restarts, quarantined, events_queued, events_lost })
}

/// The counters a `Message::Stats` carries.
fn stats_of(message: Message) -> Option<Stats> {
    moved!(variant message, Message::Stats => Stats { events, probes, binds, walk_restarts, pairs_skipped, callbacks, in_flight, max_in_flight, deferred, completions, restarts, quarantined, events_queued, events_lost })
}

fn trace_record_message(record: TraceRecord) -> Message {
    moved!(record, TraceRecord => Message::TraceRecord { sequence, at_ns, begin, name, id, pd, device, driver, request, status })
}

/// The record a `Message::TraceRecord` carries.
fn trace_record_of(message: Message) -> Option<TraceRecord> {
    moved!(variant message, Message::TraceRecord => TraceRecord { sequence, at_ns, begin, name, id, pd, device, driver, request, status })
}

/// A completion with only a status.
#[must_use]
pub fn completion(status: Status) -> Message {
    Message::Completion {
        status,
        detail: 0,
        outcome: Outcome::Done,
    }
}

fn device_info(device: Device) -> Message {
    Message::DeviceInfo {
        device: device.id,
        parent: device.parent,
        driver: device.driver,
        state: device.state,
        match_data: device.match_data,
        resources: device.resources,
        last_pd: device.last_pd,
    }
}

fn pd_info(pd: Supervised) -> Message {
    Message::PdInfo {
        pd: pd.pd,
        phase: pd.phase,
        restart_in_ms: pd.restart_in_ms,
        consecutive_failures: pd.consecutive_failures,
        failures: pd.failures,
        restarts: pd.restarts,
        last_failure: pd.last_failure,
        failure_detail: pd.failure_detail,
    }
}

/// What a reply other than the one asked for means: the manager's refusal, or a broken reply.
fn refusal(reply: &Message) -> Error {
    match reply {
        Message::Completion { status, .. } if *status != Status::Ok => Error::Refused(*status),
        _ => Error::Unexpected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A manager with one device and one driver, as a [`Server`].
    struct OneDevice {
        refusals: Vec<alloc::string::String>,
        bound: bool,
        power: Vec<(PowerTarget, bool)>,
        events: Vec<Event>,
        mask: u64,
    }

    fn the_device() -> Device {
        Device {
            id: DeviceId::from_parts(3, 1),
            parent: None,
            driver: None,
            state: DeviceState::Active,
            match_data: MatchData::compatible("arm,pl011").unwrap(),
            resources: Resources::default(),
            last_pd: Some(PdId(1)),
        }
    }

    fn the_pd() -> Supervised {
        Supervised {
            pd: PdId(1),
            phase: PdPhase::Quarantined,
            restart_in_ms: 0,
            consecutive_failures: 5,
            failures: 5,
            restarts: 4,
            last_failure: FailureKind::Fault,
            failure_detail: 3,
        }
    }

    impl Server for OneDevice {
        fn next_device(&mut self, cursor: u64) -> Option<Device> {
            (cursor <= 3).then(the_device)
        }
        fn device(&mut self, device: DeviceId) -> Result<Device, Status> {
            (device == the_device().id)
                .then(the_device)
                .ok_or(Status::StaleHandle)
        }
        fn driver(&mut self, _driver: DriverId) -> Result<Driver, Status> {
            Err(Status::StaleHandle)
        }
        fn bind(&mut self, _device: DeviceId, _driver: DriverId) -> Result<Submitted, Status> {
            if self.bound {
                Err(Status::Busy)
            } else {
                self.bound = true;
                Ok(Submitted::Accepted(1))
            }
        }
        fn unbind(&mut self, _device: DeviceId) -> Result<Submitted, Status> {
            Ok(Submitted::Accepted(2))
        }
        fn rescan(&mut self) -> Result<Submitted, Status> {
            Ok(Submitted::Done)
        }
        fn remove(&mut self, device: DeviceId) -> Result<Submitted, Status> {
            self.device(device).map(|_| Submitted::Accepted(3))
        }
        fn power(&mut self, target: PowerTarget, suspend: bool) -> Result<Submitted, Status> {
            if let PowerTarget::Device(device) = target {
                self.device(device)?;
            }
            self.power.push((target, suspend));
            Ok(Submitted::Accepted(4))
        }
        fn shutdown(&mut self) -> Result<Submitted, Status> {
            Err(Status::ShutDown)
        }
        fn subscribe(&mut self, mask: u64) {
            self.mask = mask;
        }
        fn next_event(&mut self) -> Option<Event> {
            (!self.events.is_empty()).then(|| self.events.remove(0))
        }
        fn trace_record(&mut self, cursor: u64) -> Option<TraceRecord> {
            (cursor <= 5).then_some(TraceRecord {
                sequence: 5,
                begin: 1,
                device: Some(the_device().id),
                ..TraceRecord::default()
            })
        }
        fn stats(&mut self) -> Stats {
            Stats {
                binds: 3,
                events_lost: 9,
                ..Stats::default()
            }
        }
        fn pd(&mut self, pd: PdId) -> Result<Supervised, Status> {
            (pd == PdId(1)).then(the_pd).ok_or(Status::NoSuchObject)
        }
        fn retry(&mut self, pd: PdId) -> Result<(), Status> {
            if pd == PdId(1) {
                Ok(())
            } else {
                Err(Status::NoSuchObject)
            }
        }
        fn refused(&mut self, why: Refusal<'_>) {
            self.refusals.push(alloc::format!("{why:?}"));
        }
    }

    /// A client whose calls go straight to `serve` over a [`OneDevice`].
    struct Direct(OneDevice);

    impl Caller for Direct {
        fn call(&mut self, message: &Message) -> Result<Message, CallError> {
            Ok(serve(&mut self.0, Ok(message.clone())))
        }
    }

    #[test]
    fn both_halves_agree() {
        let mut client = Client(Direct(OneDevice {
            refusals: Vec::new(),
            bound: false,
            power: Vec::new(),
            events: Vec::new(),
            mask: 0,
        }));
        assert_eq!(client.next_device(0), Ok(Some(the_device())));
        assert_eq!(client.next_device(4), Ok(None));
        assert_eq!(client.device(the_device().id), Ok(the_device()));
        assert_eq!(
            client.device(DeviceId::from_parts(3, 0)),
            Err(Error::Refused(Status::StaleHandle))
        );
        let driver = DriverId::from_parts(0, 0);
        assert_eq!(
            client.driver(driver),
            Err(Error::Refused(Status::StaleHandle))
        );
        assert_eq!(
            client.bind(the_device().id, driver),
            Ok(Submitted::Accepted(1))
        );
        assert_eq!(
            client.bind(the_device().id, driver),
            Err(Error::Refused(Status::Busy))
        );
        assert_eq!(client.unbind(the_device().id), Ok(Submitted::Accepted(2)));
        assert_eq!(client.rescan(), Ok(Submitted::Done));
        let stale = DeviceId::from_parts(3, 0);
        assert_eq!(client.remove(the_device().id), Ok(Submitted::Accepted(3)));
        assert_eq!(
            client.remove(stale),
            Err(Error::Refused(Status::StaleHandle))
        );
        assert_eq!(client.suspend(PowerTarget::All), Ok(Submitted::Accepted(4)));
        assert_eq!(
            client.resume(PowerTarget::Device(the_device().id)),
            Ok(Submitted::Accepted(4))
        );
        assert_eq!(client.shutdown(), Err(Error::Refused(Status::ShutDown)));
        assert_eq!(
            client.suspend(PowerTarget::Device(stale)),
            Err(Error::Refused(Status::StaleHandle))
        );
        assert_eq!(
            client.0 .0.power,
            [
                (PowerTarget::All, true),
                (PowerTarget::Device(the_device().id), false)
            ]
        );
        assert_eq!(client.pd(PdId(1)), Ok(the_pd()));
        assert_eq!(
            client.pd(PdId(2)),
            Err(Error::Refused(Status::NoSuchObject))
        );
        assert_eq!(client.retry(PdId(1)), Ok(()));
        assert_eq!(
            client.retry(PdId(9)),
            Err(Error::Refused(Status::NoSuchObject))
        );
        // Events: subscribing sets the mask; each is taken once, then there are none.
        assert_eq!(client.subscribe(EventKind::MASK), Ok(()));
        assert_eq!(client.0 .0.mask, EventKind::MASK);
        let completed = Event {
            kind: EventKind::Completed,
            device: Some(the_device().id),
            driver: None,
            pd: None,
            request: 1,
            status: Status::Failed,
            detail: 7,
            lost: 0,
        };
        let faulted = Event {
            kind: EventKind::Faulted,
            device: None,
            driver: None,
            pd: Some(PdId(1)),
            request: 0,
            status: Status::Ok,
            detail: 0,
            lost: 3,
        };
        client.0 .0.events = alloc::vec![completed, faulted];
        assert_eq!(client.next_event(), Ok(Some(completed)));
        assert_eq!(client.next_event(), Ok(Some(faulted)));
        assert_eq!(client.next_event(), Ok(None));
        assert_eq!(client.trace_record(6), Ok(None));
        assert_eq!(
            client
                .trace_record(0)
                .map(|record| record.map(|record| record.sequence)),
            Ok(Some(5))
        );
        assert_eq!(
            client.stats(),
            Ok(Stats {
                binds: 3,
                events_lost: 9,
                ..Stats::default()
            })
        );
    }

    #[test]
    fn calls_that_are_not_offered_are_refused_and_reported() {
        let mut server = OneDevice {
            refusals: Vec::new(),
            bound: false,
            power: Vec::new(),
            events: Vec::new(),
            mask: 0,
        };
        let probe = Message::Alive { sequence: 1 };
        assert_eq!(
            serve(&mut server, Ok(probe.clone())),
            completion(Status::NotPermitted)
        );
        assert_eq!(
            serve(&mut server, Err(DecodeError::BadFlag)),
            completion(Status::Malformed)
        );
        assert_eq!(
            server.refusals,
            [
                alloc::format!("{:?}", Refusal::NotOffered(&probe)),
                alloc::format!("{:?}", Refusal::Malformed(DecodeError::BadFlag))
            ]
        );
    }
}
