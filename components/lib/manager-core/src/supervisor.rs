//! The supervisor: what happens to a driver PD that fails — MINIX 3's reincarnation server,
//! Hubris's supervisor and Fuchsia's driver hosts at Warden's scale — as a sans-IO state machine
//! beside the [`Manager`]. Time enters as a value ([`Supervisor::tick`]); the PD layer carries
//! out the [`Action`]s: it stops a PD, runs the manager's death path for it
//! ([`Manager::pd_died`]), restarts it, sends it a heartbeat.
//!
//! **Failures.** A PD fails when it faults (the kernel tells its parent), when a callback it was
//! sent is past its deadline ([`Manager::overdue_of`]: it hangs or loops inside the callback),
//! when it does not answer a heartbeat in time while it has no callback in flight (it hangs
//! outside any callback: in its data path, say), and when it has not registered within
//! [`Policy::start_deadline`] of a (re)start (it hangs in `init`). A PD that is alive but has
//! failed is stopped ([`Action::Stop`]) before anything else happens to it.
//!
//! **Restarts.** After its first failure a PD is restarted at once; after each further
//! failure in a row the wait doubles from [`Policy::backoff_base`] (100, 200, 400 ms…), and
//! after [`Policy::quarantine_after`] failures in a row it is quarantined: not restarted
//! until an administrator retries it ([`Supervisor::retry`]). A PD that has run for
//! [`Policy::healthy_after`] since it registered, without a failure, and is then found settled
//! (its drivers registered, their walks over the bus done, no callback in flight), having
//! answered a heartbeat since it registered, is healthy:
//! its count of failures in a row starts again from zero. Settled at one moment, not for the
//! whole second: a driver whose devices others take away and give back (the children of a
//! bridge whose PD restarts) is busy through no fault of its own, and is healthy at the first
//! moment it has answered everything; a driver hung in a callback is never settled.
//! A driver that crashes in every probe or in `init` is therefore restarted a handful of times
//! within a second or two, then left alone.

use core::time::Duration;

use crate::manager::Manager;
use crate::model::{CallbackKind, Overdue};
use warden_vocabulary::{Instant, PdId};

/// The restart policy and the heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Policy {
    /// The wait before the restart after the second failure in a row; it doubles with each
    /// further one (the first restart is immediate).
    pub backoff_base: Duration,
    /// The longest wait before a restart.
    pub backoff_max: Duration,
    /// Failures in a row after which the PD is quarantined.
    pub quarantine_after: u32,
    /// How long a PD must run after it registered, without a failure, before it counts as
    /// healthy again (at the first moment after that it is settled).
    pub healthy_after: Duration,
    /// How long a (re)started PD has to register.
    pub start_deadline: Duration,
    /// How often an idle PD is sent a heartbeat.
    pub ping_interval: Duration,
    /// How long it has to answer one.
    pub ping_deadline: Duration,
}

impl Policy {
    /// Warden's default: restarts at 0, 100, 200, 400 ms, quarantine at the fifth failure in a
    /// row; healthy after 1 s; 2 s to register; a heartbeat every second, answered within
    /// 500 ms.
    pub const DEFAULT: Self = Self {
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(5),
        quarantine_after: 5,
        healthy_after: Duration::from_secs(1),
        start_deadline: Duration::from_secs(2),
        ping_interval: Duration::from_secs(1),
        ping_deadline: Duration::from_millis(500),
    };

    /// The wait before restarting after the `failures`-th failure in a row.
    #[must_use]
    pub fn backoff(&self, failures: u32) -> Duration {
        match failures {
            0 | 1 => Duration::ZERO,
            n => {
                let factor = 1u32.checked_shl(n - 2).unwrap_or(u32::MAX);
                self.backoff_base
                    .checked_mul(factor)
                    .unwrap_or(self.backoff_max)
                    .min(self.backoff_max)
            }
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a PD failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// It faulted (the fault's label, as the kernel gives it).
    Fault(u64),
    /// A callback it was sent went past its deadline.
    Overdue {
        /// Which callback.
        kind: CallbackKind,
        /// How long it had been in flight.
        waited: Duration,
    },
    /// It did not answer a heartbeat.
    Silent,
    /// It did not register after its (re)start.
    NeverRegistered,
    /// The PD layer stopped it (its ring was unusable, say).
    Stopped,
}

/// Where a supervised PD is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Started (or restarted), not registered yet.
    Starting,
    /// Registered.
    Running,
    /// Stopped after a failure; restarted at the time given.
    Waiting(Instant),
    /// Stopped for good, until an administrator retries it.
    Quarantined,
}

/// What the PD layer is to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send the PD a heartbeat with this sequence number.
    Ping {
        /// The PD.
        pd: PdId,
        /// To be quoted in its answer.
        sequence: u64,
    },
    /// Stop the PD (it is alive but failed), then run the manager's death path for it.
    Stop {
        /// The PD.
        pd: PdId,
        /// Why.
        failure: Failure,
    },
    /// Restart the PD now (its shared rings with the manager start empty).
    Restart {
        /// The PD.
        pd: PdId,
        /// Failures in a row so far.
        failures: u32,
    },
    /// The PD failed too often in a row: it is left stopped.
    Quarantine {
        /// The PD.
        pd: PdId,
        /// Failures in a row.
        failures: u32,
    },
    /// The PD has run settled long enough after a failure: its failures in a row start from
    /// zero again.
    Healthy {
        /// The PD.
        pd: PdId,
    },
}

/// A read-only view of a supervised PD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PdStatus {
    /// The PD.
    pub pd: PdId,
    /// Where it is.
    pub phase: Phase,
    /// Its current run started then.
    pub since: Instant,
    /// Failures in a row (zero once it is healthy again).
    pub consecutive_failures: u32,
    /// Failures since the system started.
    pub failures: u32,
    /// Restarts since the system started.
    pub restarts: u32,
    /// The latest failure.
    pub last_failure: Option<Failure>,
    /// It has run settled for [`Policy::healthy_after`] since it last (re)started.
    pub healthy: bool,
}

/// Why [`Supervisor::retry`] did nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryError {
    /// The PD is not supervised.
    Unknown,
    /// It is running (or starting): there is nothing to retry.
    NotStopped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Entry {
    status: PdStatus,
    /// When it registered, while it is not yet healthy.
    running_since: Option<Instant>,
    /// [`Policy::healthy_after`] since it registered has yet to come (a wakeup is due then;
    /// after it, settling happens at an event, after which the PD layer ticks anyway).
    health_due: bool,
    /// It has answered a heartbeat since it registered: a PD hung outside any callback (in
    /// its event loop) is settled, and would otherwise be called healthy at every start.
    answered: bool,
    /// The heartbeat it has not answered yet: (sequence, sent).
    ping: Option<(u64, Instant)>,
    next_ping: Instant,
    next_sequence: u64,
}

/// The supervisor of up to `PDS` driver PDs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Supervisor<const PDS: usize> {
    policy: Policy,
    entries: heapless::Vec<Entry, PDS>,
}

impl<const PDS: usize> Supervisor<PDS> {
    /// A supervisor of nobody yet.
    #[must_use]
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            entries: heapless::Vec::new(),
        }
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Supervises `pd`, which was started at `now` (a configuration step). Returns `false` if
    /// the table is full or the PD is already supervised.
    pub fn supervise(&mut self, pd: PdId, now: Instant) -> bool {
        if self.entry(pd).is_some() {
            return false;
        }
        self.entries
            .push(Entry {
                status: PdStatus {
                    pd,
                    phase: Phase::Starting,
                    since: now,
                    consecutive_failures: 0,
                    failures: 0,
                    restarts: 0,
                    last_failure: None,
                    healthy: false,
                },
                running_since: None,
                health_due: false,
                answered: false,
                ping: None,
                next_ping: now,
                next_sequence: 1,
            })
            .is_ok()
    }

    /// The PDs supervised, in the order they were added.
    pub fn pds(&self) -> impl Iterator<Item = PdStatus> + '_ {
        self.entries.iter().map(|entry| entry.status)
    }

    /// One PD's status.
    #[must_use]
    pub fn status(&self, pd: PdId) -> Option<PdStatus> {
        self.entries
            .iter()
            .find(|entry| entry.status.pd == pd)
            .map(|entry| entry.status)
    }

    fn entry(&mut self, pd: PdId) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|entry| entry.status.pd == pd)
    }

    /// `pd` registered a driver: it runs. Returns `false` for a PD that should not be running
    /// (not supervised, stopped or quarantined): the PD layer refuses the registration.
    pub fn registered(&mut self, pd: PdId, now: Instant) -> bool {
        let interval = self.policy.ping_interval;
        let Some(entry) = self.entry(pd) else {
            return false;
        };
        match entry.status.phase {
            Phase::Starting => {
                entry.status.phase = Phase::Running;
                entry.next_ping = now.after(interval);
                entry.running_since = Some(now);
                entry.health_due = true;
                entry.answered = false;
                true
            }
            Phase::Running => true,
            Phase::Waiting(_) | Phase::Quarantined => false,
        }
    }

    /// `pd` answered heartbeat `sequence`. Returns whether it was the one outstanding (a late,
    /// repeated or forged answer changes nothing).
    pub fn alive(&mut self, pd: PdId, sequence: u64, now: Instant) -> bool {
        let interval = self.policy.ping_interval;
        let Some(entry) = self.entry(pd) else {
            return false;
        };
        if entry.status.phase != Phase::Running {
            return false;
        }
        match entry.ping {
            Some((outstanding, _)) if outstanding == sequence => {
                entry.ping = None;
                entry.answered = true;
                entry.next_ping = now.after(interval);
                true
            }
            _ => false,
        }
    }

    /// `pd` faulted (it is stopped; the PD layer has run the death path). What follows —
    /// restart now, later, or quarantine — comes out of `out`.
    pub fn faulted(&mut self, pd: PdId, label: u64, now: Instant, out: &mut dyn FnMut(Action)) {
        self.fail(pd, Failure::Fault(label), now, out);
    }

    /// The PD layer stopped `pd` for a reason of its own (it has run the death path).
    pub fn stopped(&mut self, pd: PdId, now: Instant, out: &mut dyn FnMut(Action)) {
        self.fail(pd, Failure::Stopped, now, out);
    }

    fn fail(&mut self, pd: PdId, failure: Failure, now: Instant, out: &mut dyn FnMut(Action)) {
        let policy = self.policy;
        let Some(entry) = self.entry(pd) else {
            return;
        };
        if matches!(entry.status.phase, Phase::Waiting(_) | Phase::Quarantined) {
            // Already stopped: a second report of the same failure.
            return;
        }
        let status = &mut entry.status;
        status.failures = status.failures.saturating_add(1);
        status.consecutive_failures = status.consecutive_failures.saturating_add(1);
        status.last_failure = Some(failure);
        status.healthy = false;
        entry.running_since = None;
        entry.health_due = false;
        entry.answered = false;
        entry.ping = None;
        let failures = status.consecutive_failures;
        if failures >= policy.quarantine_after {
            status.phase = Phase::Quarantined;
            status.since = now;
            out(Action::Quarantine { pd, failures });
            return;
        }
        let wait = policy.backoff(failures);
        if wait.is_zero() {
            Self::restart_entry(entry, now, out);
        } else {
            status.phase = Phase::Waiting(now.after(wait));
            status.since = now;
        }
    }

    fn restart_entry(entry: &mut Entry, now: Instant, out: &mut dyn FnMut(Action)) {
        let status = &mut entry.status;
        status.phase = Phase::Starting;
        status.since = now;
        status.restarts = status.restarts.saturating_add(1);
        entry.running_since = None;
        entry.health_due = false;
        entry.answered = false;
        entry.ping = None;
        out(Action::Restart {
            pd: status.pd,
            failures: status.consecutive_failures,
        });
    }

    /// An administrator retries a stopped PD: quarantined (its record starts clean) or waiting
    /// for its backoff (restarted now).
    ///
    /// # Errors
    /// [`RetryError`].
    pub fn retry(
        &mut self,
        pd: PdId,
        now: Instant,
        out: &mut dyn FnMut(Action),
    ) -> Result<(), RetryError> {
        let entry = self.entry(pd).ok_or(RetryError::Unknown)?;
        match entry.status.phase {
            Phase::Quarantined => {
                entry.status.consecutive_failures = 0;
                Self::restart_entry(entry, now, out);
                Ok(())
            }
            Phase::Waiting(_) => {
                Self::restart_entry(entry, now, out);
                Ok(())
            }
            Phase::Starting | Phase::Running => Err(RetryError::NotStopped),
        }
    }

    /// Time has come to `now`: deadlines missed (callbacks, heartbeats, registrations) stop
    /// their PDs, backoffs that ended restart theirs, idle PDs are sent heartbeats, and PDs that
    /// have run settled long enough are healthy again.
    pub fn tick<const D: usize, const R: usize, const B: usize, const O: usize>(
        &mut self,
        now: Instant,
        manager: &Manager<D, R, B, O>,
        out: &mut dyn FnMut(Action),
    ) {
        for index in 0..self.entries.len() {
            let Some(pd) = self.entries.get(index).map(|entry| entry.status.pd) else {
                continue;
            };
            if let Some(failure) = self.check(index, now, manager, out) {
                out(Action::Stop { pd, failure });
                self.fail(pd, failure, now, out);
            }
        }
    }

    /// One PD's part of [`Supervisor::tick`]; `Some` when it failed (and must be stopped).
    fn check<const D: usize, const R: usize, const B: usize, const O: usize>(
        &mut self,
        index: usize,
        now: Instant,
        manager: &Manager<D, R, B, O>,
        out: &mut dyn FnMut(Action),
    ) -> Option<Failure> {
        let policy = self.policy;
        let entry = self.entries.get_mut(index)?;
        let pd = entry.status.pd;
        match entry.status.phase {
            Phase::Starting => (now >= entry.status.since.after(policy.start_deadline))
                .then_some(Failure::NeverRegistered),
            Phase::Waiting(at) => {
                if now >= at {
                    Self::restart_entry(entry, now, out);
                }
                None
            }
            Phase::Quarantined => None,
            Phase::Running => {
                if let Some(Overdue { kind, waited, .. }) = manager.overdue_of(pd, now) {
                    return Some(Failure::Overdue { kind, waited });
                }
                if manager.pd_busy(pd) {
                    // Busy in a callback, whose deadline governs: a heartbeat waits behind it.
                    entry.ping = None;
                    entry.next_ping = entry.next_ping.max(now);
                } else {
                    match entry.ping {
                        Some((_, sent)) if now >= sent.after(policy.ping_deadline) => {
                            return Some(Failure::Silent);
                        }
                        Some(_) => {}
                        None if now >= entry.next_ping => {
                            let sequence = entry.next_sequence;
                            entry.next_sequence = sequence.wrapping_add(1).max(1);
                            entry.ping = Some((sequence, now));
                            out(Action::Ping { pd, sequence });
                        }
                        None => {}
                    }
                }
                let long_enough = entry
                    .running_since
                    .is_some_and(|since| now >= since.after(policy.healthy_after));
                if !entry.status.healthy && long_enough {
                    entry.health_due = false;
                    // An answered heartbeat is an event too, after which the PD layer ticks.
                    if entry.answered && manager.pd_settled(pd) {
                        entry.status.healthy = true;
                        if entry.status.consecutive_failures > 0 {
                            entry.status.consecutive_failures = 0;
                            out(Action::Healthy { pd });
                        }
                    }
                }
                None
            }
        }
    }

    /// When [`Supervisor::tick`] next has something to do (a deadline, a heartbeat, a
    /// restart), counting the manager's callback deadlines; `None` if nothing is scheduled.
    #[must_use]
    pub fn next_wakeup<const D: usize, const R: usize, const B: usize, const O: usize>(
        &self,
        manager: &Manager<D, R, B, O>,
    ) -> Option<Instant> {
        let policy = self.policy;
        let mut next = manager.next_deadline();
        let mut consider = |at: Instant| next = Some(next.map_or(at, |next| next.min(at)));
        for entry in &self.entries {
            match entry.status.phase {
                Phase::Starting => consider(entry.status.since.after(policy.start_deadline)),
                Phase::Waiting(at) => consider(at),
                Phase::Quarantined => {}
                Phase::Running => {
                    match entry.ping {
                        Some((_, sent)) => consider(sent.after(policy.ping_deadline)),
                        // While a callback is in flight its deadline governs (the manager's,
                        // counted above); the heartbeat waits for it to end.
                        None if manager.pd_busy(entry.status.pd) => {}
                        None => consider(entry.next_ping),
                    }
                    if !entry.status.healthy && entry.health_due {
                        // Once this time has come, settling happens at an event, after which
                        // the PD layer ticks: no wakeup is needed for it.
                        if let Some(since) = entry.running_since {
                            consider(since.after(policy.healthy_after));
                        }
                    }
                }
            }
        }
        next
    }
}
