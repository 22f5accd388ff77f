//! The client side: the manager's half of `warden_services::admin`, for a PD that calls on one
//! of the client channels ([`crate::interface::CLIENTS`]). Queries are answered from the core's
//! state and the supervisor's; `Bind`, `Unbind`, `Rescan`, `RemoveDevice`, `SuspendDevice`,
//! `ResumeDevice` (of a device's subtree or of the whole system) and `ShutdownSystem` enter the
//! core's queue as the client's requests: the reply is `Accepted` with the request's number, and
//! its outcome is queued for the client as a `Completed` event ([`crate::events`]), or the reply
//! is the refusal decided at once. A client with [`crate::events::COMPLETIONS`] requests whose
//! completions it has not taken is answered Busy. `Subscribe` and `NextEvent` serve the events;
//! `QueryStats` the counters and `QueryTrace` the trace ring ([`crate::trace`]); `RetryPd`
//! restarts a quarantined driver PD.

use log::{info, warn};

use alloc::vec::Vec;
use warden_manager_core::{Failure, Phase, Request, Requester, RetryError};
use warden_microkit::Channel;
use warden_protocol::{DecodeError, FailureKind, Message, PdPhase, PowerTarget, Status};
use warden_services::admin::{self, Device, Driver, Refusal, Supervised};
use warden_services::admin::{Event, Stats, Submitted, TraceRecord};
use warden_vocabulary::{DeviceId, DriverId, PdId};

use crate::{status_of, DeviceManager};

impl DeviceManager {
    /// A call from the administrative client on `channel`.
    pub(crate) fn client_call(
        &mut self,
        channel: Channel,
        call: Result<Message, DecodeError>,
    ) -> Message {
        admin::serve(
            &mut AdminServer {
                manager: self,
                channel,
            },
            call,
        )
    }

    /// A device as a client sees it.
    fn describe(&self, device: DeviceId) -> Result<Device, Status> {
        let info = self.core.device(device).map_err(status_of)?;
        Ok(Device {
            id: device,
            parent: info.parent,
            driver: info.driver,
            state: info.state,
            match_data: info.match_data.clone(),
            resources: info.resources.clone(),
            last_pd: info.last_pd,
        })
    }
}

/// The manager serving one client's call.
struct AdminServer<'a> {
    manager: &'a mut DeviceManager,
    channel: Channel,
}

impl AdminServer<'_> {
    fn request(&mut self, request: Request) -> Result<Submitted, Status> {
        let channel = self.channel.index();
        if !self.manager.subscribers.has_room(channel) {
            warn!(
                "manager: the client on channel {channel} has {} requests whose completions it has not taken; refused (Busy)",
                crate::events::COMPLETIONS
            );
            return Err(Status::Busy);
        }
        let requester = Requester::Client(u32::from(channel));
        match self.manager.submit_request(requester, request) {
            Ok((_, Some(_))) => Ok(Submitted::Done),
            Ok((id, None)) => {
                self.manager.subscribers.accepted(channel, id);
                Ok(Submitted::Accepted(id.0))
            }
            Err(error) => {
                warn!("manager: refused {requester:?}'s request: {error:?}");
                Err(crate::status_and_detail(error).0)
            }
        }
    }
}

impl admin::Server for AdminServer<'_> {
    fn next_device(&mut self, cursor: u64) -> Option<Device> {
        let next = self
            .manager
            .core
            .devices()
            .find(|device| u64::from(device.index()) >= cursor)?;
        self.manager.describe(next).ok()
    }

    fn device(&mut self, device: DeviceId) -> Result<Device, Status> {
        self.manager.describe(device)
    }

    fn driver(&mut self, driver: DriverId) -> Result<Driver, Status> {
        let info = self.manager.core.driver(driver).map_err(status_of)?;
        Ok(Driver {
            id: driver,
            pd: info.pd,
            bound: info.bound_devices,
            name: info.name.try_into().unwrap_or_default(),
        })
    }

    fn bind(&mut self, device: DeviceId, driver: DriverId) -> Result<Submitted, Status> {
        info!(
            "manager: client on channel {} asks to bind device {device} ({}) to driver {driver}",
            self.channel.index(),
            crate::report::compatible(&self.manager.core, device)
        );
        self.request(Request::Bind { device, driver })
    }

    fn unbind(&mut self, device: DeviceId) -> Result<Submitted, Status> {
        info!(
            "manager: client on channel {} asks to unbind device {device} ({})",
            self.channel.index(),
            crate::report::compatible(&self.manager.core, device)
        );
        self.request(Request::Unbind(device))
    }

    fn rescan(&mut self) -> Result<Submitted, Status> {
        info!(
            "manager: client on channel {} asks for a rescan",
            self.channel.index()
        );
        self.request(Request::Rescan)
    }

    fn remove(&mut self, device: DeviceId) -> Result<Submitted, Status> {
        info!(
            "manager: client on channel {} asks to remove device {device} ({}) and its subtree",
            self.channel.index(),
            crate::report::compatible(&self.manager.core, device)
        );
        self.request(Request::DeleteDevice(device))
    }

    fn power(&mut self, target: PowerTarget, suspend: bool) -> Result<Submitted, Status> {
        let verb = if suspend { "suspend" } else { "resume" };
        let request = match (target, suspend) {
            (PowerTarget::All, true) => Request::SuspendAll,
            (PowerTarget::All, false) => Request::ResumeAll,
            (PowerTarget::Device(device), true) => Request::Suspend(device),
            (PowerTarget::Device(device), false) => Request::Resume(device),
        };
        match target {
            PowerTarget::All => info!(
                "manager: client on channel {} asks to {verb} the whole system",
                self.channel.index()
            ),
            PowerTarget::Device(device) => info!(
                "manager: client on channel {} asks to {verb} device {device} ({}) and its subtree",
                self.channel.index(),
                crate::report::compatible(&self.manager.core, device)
            ),
        }
        self.request(request)
    }

    fn shutdown(&mut self) -> Result<Submitted, Status> {
        info!(
            "manager: client on channel {} asks to shut the system down",
            self.channel.index()
        );
        self.request(Request::Shutdown)
    }

    fn subscribe(&mut self, mask: u64) {
        info!(
            "manager: client on channel {} subscribes to events {mask:#x}",
            self.channel.index()
        );
        self.manager
            .subscribers
            .subscribe(self.channel.index(), mask);
    }

    fn next_event(&mut self) -> Option<Event> {
        self.manager.subscribers.next(self.channel.index())
    }

    fn trace_record(&mut self, cursor: u64) -> Option<TraceRecord> {
        self.manager.ring.from(cursor)
    }

    fn stats(&mut self) -> Stats {
        let wide = |value: u64| u32::try_from(value).unwrap_or(u32::MAX);
        let narrow = |value: usize| u32::try_from(value).unwrap_or(u32::MAX);
        let manager = &self.manager;
        let core = manager.core.stats();
        let counts = manager.subscribers.counts();
        let pds = || manager.supervisor.pds();
        Stats {
            events: wide(core.events),
            probes: wide(core.probe_attempts),
            binds: wide(core.binds),
            walk_restarts: wide(core.walk_restarts),
            pairs_skipped: wide(core.pairs_skipped),
            callbacks: wide(core.callbacks),
            in_flight: narrow(manager.core.callbacks_in_flight()),
            max_in_flight: wide(core.max_callbacks_in_flight),
            deferred: manager.core.deferred_devices(),
            completions: wide(core.completions),
            restarts: pds().fold(0u32, |sum, pd| sum.saturating_add(pd.restarts)),
            quarantined: narrow(pds().filter(|pd| pd.phase == Phase::Quarantined).count()),
            events_queued: wide(counts.queued),
            events_lost: wide(counts.lost),
        }
    }

    fn pd(&mut self, pd: PdId) -> Result<Supervised, Status> {
        let status = self
            .manager
            .supervisor
            .status(pd)
            .ok_or(Status::NoSuchObject)?;
        let now = self.manager.core.now();
        let (phase, restart_in_ms) = match status.phase {
            Phase::Starting => (PdPhase::Starting, 0),
            Phase::Running => (PdPhase::Running, 0),
            Phase::Waiting(at) => (
                PdPhase::Waiting,
                u32::try_from(at.since(now).as_millis()).unwrap_or(u32::MAX),
            ),
            Phase::Quarantined => (PdPhase::Quarantined, 0),
        };
        let (last_failure, failure_detail) = match status.last_failure {
            None => (FailureKind::None, 0),
            Some(Failure::Fault(label)) => {
                (FailureKind::Fault, u32::try_from(label).unwrap_or(u32::MAX))
            }
            Some(Failure::Overdue { kind, .. }) => (FailureKind::Overdue, kind as u32 + 1),
            Some(Failure::Silent) => (FailureKind::Silent, 0),
            Some(Failure::NeverRegistered) => (FailureKind::NeverRegistered, 0),
            Some(Failure::Stopped) => (FailureKind::Stopped, 0),
        };
        Ok(Supervised {
            pd,
            phase,
            restart_in_ms,
            consecutive_failures: status.consecutive_failures,
            failures: status.failures,
            restarts: status.restarts,
            last_failure,
            failure_detail,
        })
    }

    fn retry(&mut self, pd: PdId) -> Result<(), Status> {
        let now = self.manager.core.now();
        let mut actions = Vec::new();
        let result = self
            .manager
            .supervisor
            .retry(pd, now, &mut |action| actions.push(action));
        match result {
            Ok(()) => {
                info!(
                    "manager: client on channel {} retries driver PD {}",
                    self.channel.index(),
                    pd.0
                );
                self.manager.perform(actions);
                Ok(())
            }
            Err(RetryError::Unknown) => Err(Status::NoSuchObject),
            Err(RetryError::NotStopped) => Err(Status::Busy),
        }
    }

    fn refused(&mut self, why: Refusal<'_>) {
        match why {
            Refusal::NotOffered(call) => warn!(
                "manager: call not offered to clients, from channel {}: {call:?}",
                self.channel.index()
            ),
            Refusal::Malformed(error) => warn!(
                "manager: malformed call from the client on channel {}: {error:?}",
                self.channel.index()
            ),
        }
    }
}
