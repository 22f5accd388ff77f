//! The device manager's administrative calls, both halves: what a client such as the shell may
//! ask on one of the manager's client channels (16–23), as [`crate::call`]s.
//!
//! | call | reply | refusals |
//! |---|---|---|
//! | `QueryTree { cursor }` | `DeviceInfo` of the first device whose index ≥ cursor | NoSuchObject past the last |
//! | `QueryDevice { device }` | `DeviceInfo` | StaleHandle |
//! | `QueryDriver { driver }` | `DriverInfo` | StaleHandle |
//! | `Bind { device, driver }`, `Unbind { device }`, `Rescan {}`, `RemoveDevice { device }`, `SuspendDevice { target }`, `ResumeDevice { target }` (a device and its subtree, or `All`) | `Completion`: Ok once queued | the refusal the manager could decide at once (StaleHandle, Busy, NoMatch, NoSpace; NotPermitted with a detail) |
//! | `QueryPd { pd }` | `PdInfo`: its supervision | NoSuchObject (not a supervised PD) |
//! | `RetryPd { pd }` | `Completion`: Ok once restarted | NoSuchObject, Busy (it is running) |
//!
//! [`Client`] is the client's half, [`serve`] the manager's, over its [`Server`].

use warden_protocol::{DecodeError, FailureKind, Message, PdPhase, PowerTarget, Status};
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
    pub fn bind(&mut self, device: DeviceId, driver: DriverId) -> Result<(), Error> {
        self.request(&Message::Bind { device, driver })
    }

    /// Asks for `device` to be unbound.
    ///
    /// # Errors
    /// [`Error`].
    pub fn unbind(&mut self, device: DeviceId) -> Result<(), Error> {
        self.request(&Message::Unbind { device })
    }

    /// Asks for every unbound device to be probed again.
    ///
    /// # Errors
    /// [`Error`].
    pub fn rescan(&mut self) -> Result<(), Error> {
        self.request(&Message::Rescan {})
    }

    /// Asks for `device` and its subtree to be removed (children first).
    ///
    /// # Errors
    /// [`Error`].
    pub fn remove(&mut self, device: DeviceId) -> Result<(), Error> {
        self.request(&Message::RemoveDevice { device })
    }

    /// Asks for a device and its subtree (children first), or the whole system, to be
    /// suspended.
    ///
    /// # Errors
    /// [`Error`].
    pub fn suspend(&mut self, target: PowerTarget) -> Result<(), Error> {
        self.request(&Message::SuspendDevice { target })
    }

    /// Asks for a device and its subtree (parents first), or the whole system, to be resumed.
    ///
    /// # Errors
    /// [`Error`].
    pub fn resume(&mut self, target: PowerTarget) -> Result<(), Error> {
        self.request(&Message::ResumeDevice { target })
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

    /// Restarts a driver PD that is quarantined (or waiting for its backoff) now.
    ///
    /// # Errors
    /// [`Error`].
    pub fn retry(&mut self, pd: PdId) -> Result<(), Error> {
        self.request(&Message::RetryPd { pd })
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

    fn request(&mut self, call: &Message) -> Result<(), Error> {
        match self.0.call(call)? {
            Message::Completion {
                status: Status::Ok, ..
            } => Ok(()),
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
    fn bind(&mut self, device: DeviceId, driver: DriverId) -> Result<(), Status>;
    /// Unbinds `device` (queued).
    ///
    /// # Errors
    /// The refusal decided at once.
    fn unbind(&mut self, device: DeviceId) -> Result<(), Status>;
    /// Probes every unbound device again (queued).
    ///
    /// # Errors
    /// The refusal decided at once.
    fn rescan(&mut self) -> Result<(), Status>;
    /// Removes `device` and its subtree (queued).
    ///
    /// # Errors
    /// The refusal decided at once.
    fn remove(&mut self, device: DeviceId) -> Result<(), Status>;
    /// Suspends (`suspend`) or resumes a device and its subtree, or the whole system (queued).
    ///
    /// # Errors
    /// The refusal decided at once.
    fn power(&mut self, target: PowerTarget, suspend: bool) -> Result<(), Status>;
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
        Ok(Message::Bind { device, driver }) => done(server.bind(device, driver)),
        Ok(Message::Unbind { device }) => done(server.unbind(device)),
        Ok(Message::Rescan {}) => done(server.rescan()),
        Ok(Message::RemoveDevice { device }) => done(server.remove(device)),
        Ok(Message::SuspendDevice { target }) => done(server.power(target, true)),
        Ok(Message::ResumeDevice { target }) => done(server.power(target, false)),
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
        fn bind(&mut self, _device: DeviceId, _driver: DriverId) -> Result<(), Status> {
            if self.bound {
                Err(Status::Busy)
            } else {
                self.bound = true;
                Ok(())
            }
        }
        fn unbind(&mut self, _device: DeviceId) -> Result<(), Status> {
            Ok(())
        }
        fn rescan(&mut self) -> Result<(), Status> {
            Ok(())
        }
        fn remove(&mut self, device: DeviceId) -> Result<(), Status> {
            self.device(device).map(|_| ())
        }
        fn power(&mut self, target: PowerTarget, suspend: bool) -> Result<(), Status> {
            if let PowerTarget::Device(device) = target {
                self.device(device)?;
            }
            self.power.push((target, suspend));
            Ok(())
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
        assert_eq!(client.bind(the_device().id, driver), Ok(()));
        assert_eq!(
            client.bind(the_device().id, driver),
            Err(Error::Refused(Status::Busy))
        );
        assert_eq!(client.unbind(the_device().id), Ok(()));
        assert_eq!(client.rescan(), Ok(()));
        let stale = DeviceId::from_parts(3, 0);
        assert_eq!(client.remove(the_device().id), Ok(()));
        assert_eq!(
            client.remove(stale),
            Err(Error::Refused(Status::StaleHandle))
        );
        assert_eq!(client.suspend(PowerTarget::All), Ok(()));
        assert_eq!(client.resume(PowerTarget::Device(the_device().id)), Ok(()));
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
    }

    #[test]
    fn calls_that_are_not_offered_are_refused_and_reported() {
        let mut server = OneDevice {
            refusals: Vec::new(),
            bound: false,
            power: Vec::new(),
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
