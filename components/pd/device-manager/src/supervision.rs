//! Supervision in the manager PD: time from the timer PD (`warden_services::timer`), the core's
//! [`Supervisor`] ticked after every event, and what its decisions mean for a driver PD — a
//! heartbeat on its ring, stopping it ([`Child::stop`]) and running the death path, restarting
//! it with its rings reset, quarantining it — and the grants the system description makes,
//! which the core enforces.
//!
//! Time comes from the timer PD on channel [`interface::TIMER`](crate::interface::TIMER): the
//! manager asks for the time when an event starts, and after it asks to be woken at the
//! supervisor's next deadline. Without a timer (a system that has none) nothing has a deadline:
//! faults are still handled, but hangs are not caught; the manager says so at start-up.

use alloc::vec::Vec;
use core::time::Duration;
use log::{info, warn};

use warden_manager_core::{Action, CallbackKind, Failure, Grant, Instant, MmioWindow, PdId};
use warden_microkit::{Channel, Child};
use warden_protocol::Message;
use warden_services::timer;

use crate::DeviceManager;

/// Most driver PDs supervised.
pub const SUPERVISED: usize = 8;

/// The manager's supervisor.
pub type Supervisor = warden_manager_core::Supervisor<SUPERVISED>;

/// The manager's clock and its wake-ups.
pub struct Clock {
    timer: Option<timer::Client>,
    /// The wake-up the timer has been asked for.
    armed: Option<Instant>,
}

impl Clock {
    /// The timer on `channel`, if the system has one (a call the PD may not make is refused).
    pub(crate) fn new(channel: warden_microkit::Channel) -> Self {
        let timer = timer::Client(channel);
        let timer = match timer.now() {
            Ok(_) => Some(timer),
            Err(error) => {
                warn!(
                    "manager: no timer ({error:?}): callbacks, heartbeats and restarts have no deadlines; a hung driver is not caught"
                );
                None
            }
        };
        Self { timer, armed: None }
    }

    /// The time now (the start of time without a timer).
    pub(crate) fn now(&self) -> Instant {
        self.timer
            .and_then(|timer| timer.now().ok())
            .unwrap_or(Instant::ZERO)
    }

    /// Wakes the manager at `at` (or not at all): the timer is asked only when the wake-up
    /// moves earlier or the one asked for has passed.
    fn wake_at(&mut self, at: Option<Instant>, now: Instant) {
        let (Some(timer), Some(at)) = (self.timer, at) else {
            return;
        };
        // What was due has just been done: a wake-up at or before now would only spin.
        let at = at.max(now.after(Duration::from_millis(1)));
        let stale = self.armed.is_none_or(|armed| armed <= now || at < armed);
        if stale {
            timer.set_timeout(at.since(now));
            self.armed = Some(at);
        }
    }
}

/// The grants of the system description, child id by child id (see `build.rs`; on the host
/// platform read from the description the launcher runs).
pub(crate) fn grants() -> Vec<(u64, Grant)> {
    #[cfg(not(target_os = "none"))]
    if let Some(grants) = host_grants() {
        return grants;
    }
    mod embedded {
        include!(concat!(env!("OUT_DIR"), "/grants.rs"));
    }
    info!(
        "manager: the driver PDs' grants are {}'s",
        embedded::SYSTEM_FILE
    );
    embedded::GRANTS
        .iter()
        .map(|(id, windows, irqs)| {
            let mut grant = Grant::default();
            for (base, size) in windows.iter() {
                let _ = grant.windows.push(MmioWindow {
                    base: *base,
                    size: *size,
                });
            }
            for irq in irqs.iter() {
                let _ = grant.irqs.push(*irq);
            }
            (*id, grant)
        })
        .collect()
}

/// On the host platform: the grants of the system the launcher runs (`WARDEN_SYSTEM_FILE`),
/// to this PD (`WARDEN_PD_INDEX`).
#[cfg(not(target_os = "none"))]
fn host_grants() -> Option<Vec<(u64, Grant)>> {
    let file = std::env::var_os("WARDEN_SYSTEM_FILE")?;
    let index: usize = std::env::var("WARDEN_PD_INDEX").ok()?.parse().ok()?;
    let system = match warden_system::parse_file(std::path::Path::new(&file)) {
        Ok(system) => system,
        Err(error) => {
            warn!("manager: the system description: {error}; using the built-in grants");
            return None;
        }
    };
    match warden_system::grants::child_grants(&system, index) {
        Ok(grants) => {
            info!(
                "manager: the driver PDs' grants are {}'s",
                std::path::Path::new(&file).display()
            );
            Some(grants)
        }
        Err(error) => {
            warn!("manager: the system description's grants: {error}");
            None
        }
    }
}

fn callback_name(kind: CallbackKind) -> &'static str {
    match kind {
        CallbackKind::Probe => "probe",
        CallbackKind::Remove => "remove",
        CallbackKind::Suspend => "suspend",
        CallbackKind::Resume => "resume",
        CallbackKind::Shutdown => "shutdown",
    }
}

/// Why a PD was stopped, for the log.
pub(crate) fn describe(failure: Failure, deadline: Duration) -> alloc::string::String {
    match failure {
        Failure::Fault(label) => alloc::format!("faulted (label {label})"),
        Failure::Overdue { kind, waited } => alloc::format!(
            "has not answered its {} callback after {} ms (its deadline: {} ms)",
            callback_name(kind),
            waited.as_millis(),
            deadline.as_millis()
        ),
        Failure::Silent => "has not answered a heartbeat in time".into(),
        Failure::NeverRegistered => "has not registered since it started".into(),
        Failure::Stopped => "broke its ring with the manager".into(),
    }
}

impl DeviceManager {
    /// Every event starts here: the manager's clock moves on.
    pub(crate) fn start_event(&mut self) -> Instant {
        let now = self.clock.now();
        self.core.advance_to(now);
        self.core.now()
    }

    /// Every event ends here: the supervisor acts on what the time and the event changed, the
    /// log says how many peer-caused lines it held back, and the timer is set for the next
    /// deadline.
    pub(crate) fn end_event(&mut self) {
        let now = self.core.now();
        // A deadline that has passed is judged on what the PDs sent, not on which doorbells
        // this event saw: an answer can sit in a ring whose notification comes later (the
        // manager itself ran late, or the doorbell was coalesced into the next set), and a
        // driver that answered in time is not stopped for it.
        // Only PDs that run are read: a stopped PD's ring waits for its restart to be reset
        // (a broken one would be reported and stopped again at every sweep).
        if self
            .supervisor
            .next_wakeup(&self.core)
            .is_some_and(|at| at <= now)
        {
            for index in 0..self.drivers.len() {
                let running = self.drivers.get(index).is_some_and(|link| {
                    let pd = PdId(u32::from(link.channel.index()));
                    self.supervisor.status(pd).is_some_and(|status| {
                        matches!(
                            status.phase,
                            warden_manager_core::Phase::Starting
                                | warden_manager_core::Phase::Running
                        )
                    })
                });
                if running {
                    self.driver_notified(index);
                }
            }
        }
        let mut actions = Vec::new();
        self.supervisor
            .tick(now, &self.core, &mut |action| actions.push(action));
        self.perform(actions);
        for driver in &mut self.drivers {
            driver.log.flush(now, driver.channel.index());
        }
        let wakeup = self.supervisor.next_wakeup(&self.core);
        // Held-back log lines are summed up within a second.
        let flush = self
            .drivers
            .iter()
            .filter_map(|driver| driver.log.due())
            .min();
        let wakeup = match (wakeup, flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.clock.wake_at(wakeup, now);
        for channel in self.subscribers.take_wakes() {
            Channel::new(channel).notify();
        }
    }

    /// Carries out the supervisor's decisions.
    pub(crate) fn perform(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Ping { pd, sequence } => {
                    self.send_to_driver(pd, &Message::Ping { sequence });
                }
                Action::Stop { pd, failure } => {
                    let deadline = self
                        .core
                        .drivers_of(pd)
                        .find_map(|driver| self.core.driver(driver).ok())
                        .map_or(Duration::ZERO, |driver| driver.deadline);
                    warn!(
                        "manager: driver PD {} {}; stopping it",
                        pd.0,
                        describe(failure, deadline)
                    );
                    Child::new(pd_index(pd)).stop();
                    self.driver_died(pd);
                }
                Action::Restart { pd, failures } => {
                    if let Some(link) = self.link(pd).and_then(|index| self.drivers.get_mut(index))
                    {
                        link.reset();
                    }
                    if failures > 1 {
                        info!(
                            "manager: restarting driver PD {} (failure {failures} in a row)",
                            pd.0
                        );
                    } else {
                        info!("manager: restarting driver PD {}", pd.0);
                    }
                    Child::new(pd_index(pd)).restart();
                }
                Action::Quarantine { pd, failures } => {
                    warn!(
                        "manager: driver PD {} failed {failures} times in a row: quarantined; its devices stay unbound until a client retries it ('retry {}')",
                        pd.0, pd.0
                    );
                    self.subscribers
                        .pd(warden_protocol::EventKind::Quarantined, pd);
                    // It may have been the last PD bring-up waited for.
                    self.carry_out(Vec::new());
                }
                Action::Healthy { pd } => {
                    info!("manager: driver PD {} is healthy again", pd.0);
                }
            }
        }
    }
}

/// The child id of driver PD `pd` (its channel id, 1–8).
pub(crate) fn pd_index(pd: PdId) -> u8 {
    u8::try_from(pd.0).unwrap_or(0)
}
