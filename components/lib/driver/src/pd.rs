//! [`DriverPd`]: a [`Driver`] as a protection domain — registering with the manager (and again
//! when the manager's table had no room), answering its callbacks and heartbeats on the rings,
//! and, on the host platform, the faults the launcher injects.

use alloc::vec::Vec;
use log::{error, info, warn};

use warden_microkit::{fatal, Channel, ChannelSet, Handler, InjectedFault, MessageInfo};
use warden_protocol::ring::SLOT_BYTES;
use warden_protocol::{
    not_permitted, Consumer, Message, Outbox, Producer, RingError, RingMemory, Status,
};
use warden_vocabulary::{
    BusId, CallbackId, Compatible, DeviceId, DriverId, MatchEntry, MatchTable, Outcome,
};

use crate::{call_manager, Callback, Driver, Probe, MANAGER};

/// The ring in the region mapped as `symbol`; a driver PD without it cannot run.
fn ring(
    symbol: &str,
    words: Option<&'static [core::sync::atomic::AtomicU32]>,
) -> RingMemory<'static> {
    let words = words.unwrap_or_else(|| {
        fatal(format_args!(
            "driver: no memory region mapped as '{symbol}'"
        ))
    });
    RingMemory::over(words)
        .unwrap_or_else(|error| fatal(format_args!("driver: ring '{symbol}': {error:?}")))
}

/// Where the PD's registration stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Registration {
    /// Registered: the manager's handle for the driver.
    Done(DriverId),
    /// The manager's driver table was full: tried again at its next notification.
    Retry,
    /// Refused for good (this PD may not serve those devices, say).
    Refused,
}

/// A fault the launcher injected, waiting for the callback it happens in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Armed {
    /// Hang in the next callback.
    Hang,
    /// Panic in the next probe.
    Panic,
}

/// A driver as a protection domain (see the crate docs).
pub struct DriverPd<D: Driver> {
    driver: D,
    from_manager: Consumer<'static>,
    /// Answers, queued while the ring is full.
    to_manager: Outbox<'static>,
    registration: Registration,
    /// The companion driver's ([`Driver::companion`]), registered after the driver's.
    companion: Registration,
    /// The devices bound to this PD's driver (probes answered `Ok`, not removed since).
    bound: Vec<(DeviceId, DriverId)>,
    /// Slots of the manager's ring that were malformed and skipped.
    corrupt_slots: u32,
    armed: Option<Armed>,
}

impl<D: Driver> DriverPd<D> {
    /// The PD's `init`: maps the rings, registers `driver` with the manager and serves the
    /// probes the registration queued.
    pub fn start(driver: D) -> Self {
        let from_manager = warden_microkit::memory_region_words!(from_manager, from_manager_size);
        let to_manager = warden_microkit::memory_region_words!(to_manager, to_manager_size);
        let mut pd = Self {
            driver,
            from_manager: Consumer::new(ring("from_manager", from_manager)),
            to_manager: Outbox::new(Producer::new(ring("to_manager", to_manager))),
            registration: Registration::Retry,
            companion: Registration::Retry,
            bound: Vec::new(),
            corrupt_slots: 0,
            armed: None,
        };
        pd.register();
        // Probes may have been queued during the registration call.
        pd.drain();
        pd
    }

    /// The driver.
    pub fn driver(&mut self) -> &mut D {
        &mut self.driver
    }

    /// The manager's handle for this PD's driver, once registered.
    #[must_use]
    pub fn driver_id(&self) -> Option<DriverId> {
        match self.registration {
            Registration::Done(driver) => Some(driver),
            Registration::Retry | Registration::Refused => None,
        }
    }

    /// The manager's handle for the companion driver, once registered.
    #[must_use]
    pub fn companion_id(&self) -> Option<DriverId> {
        match self.companion {
            Registration::Done(driver) => Some(driver),
            Registration::Retry | Registration::Refused => None,
        }
    }

    fn match_table(compatibles: &[&str]) -> MatchTable {
        let mut match_table = MatchTable::default();
        for name in compatibles {
            match Compatible::try_from(*name) {
                Ok(name) => {
                    if match_table
                        .entries
                        .push(MatchEntry::Compatible(name))
                        .is_err()
                    {
                        error!("driver: more than 8 compatible strings; the rest are ignored");
                        break;
                    }
                }
                Err(()) => error!("driver: compatible '{name}' is too long; ignored"),
            }
        }
        match_table
    }

    /// Registers the driver, then its companion; the manager answers each at once with its
    /// handle or the refusal. A full driver table is tried again when the manager next
    /// notifies this PD.
    fn register(&mut self) {
        let deadline_ms = self.driver.deadline().map_or(0, |deadline| {
            u32::try_from(deadline.as_millis())
                .unwrap_or(u32::MAX)
                .max(1)
        });
        if self.registration == Registration::Retry {
            self.registration = Self::register_one(
                self.driver.name(),
                self.driver.bus(),
                self.driver.compatible(),
                deadline_ms,
            );
        }
        if !matches!(self.registration, Registration::Done(_)) {
            return;
        }
        match self.driver.companion() {
            Some(companion) if self.companion == Registration::Retry => {
                self.companion = Self::register_one(
                    companion.name,
                    companion.bus,
                    companion.compatible,
                    deadline_ms,
                );
            }
            Some(_) => {}
            None => self.companion = Registration::Refused,
        }
    }

    fn register_one(
        driver_name: &str,
        bus: BusId,
        compatibles: &[&str],
        deadline_ms: u32,
    ) -> Registration {
        let Ok(name) = driver_name.try_into() else {
            fatal(format_args!(
                "driver: name '{driver_name}' is longer than 32 bytes"
            ));
        };
        let message = Message::Register {
            name,
            bus,
            match_table: Self::match_table(compatibles),
            deadline_ms,
        };
        let compatible = compatibles.join(", ");
        match call_manager(&message) {
            Ok(Message::Completion {
                status: Status::Ok,
                outcome: Outcome::Driver { driver, .. },
                ..
            }) => {
                info!("driver: '{driver_name}' registered as driver {driver} for {compatible}");
                Registration::Done(driver)
            }
            Ok(Message::Completion {
                status: Status::NoSpace,
                ..
            }) => {
                warn!("driver: the manager's driver table is full; registering again when it has room");
                Registration::Retry
            }
            Ok(Message::Completion {
                status: Status::NotPermitted,
                detail: not_permitted::NOT_GRANTED,
                ..
            }) => {
                error!(
                    "driver: the manager refused '{driver_name}': the system description gives this PD no device {compatible} matches"
                );
                Registration::Refused
            }
            Ok(Message::Completion { status, .. }) => {
                error!("driver: the manager refused the registration: {status:?}");
                Registration::Refused
            }
            other => {
                error!("driver: unexpected answer to the registration: {other:?}");
                Registration::Refused
            }
        }
    }

    fn send(&mut self, message: &Message) {
        match self.to_manager.send(0, message) {
            Ok(true) => MANAGER.notify(),
            Ok(false) => {}
            Err(why) => error!("driver: cannot encode {message:?}: {why:?}"),
        }
    }

    fn answer(&mut self, callback: CallbackId, answer: crate::Answer) {
        self.send(&Message::CallbackDone { callback, answer });
    }

    /// Handles every message on the manager's ring, then asks for a notification for the
    /// next. A malformed slot or message is skipped (and counted); the ring goes on.
    fn drain(&mut self) {
        let mut buffer = [0u8; SLOT_BYTES];
        loop {
            let length = match self.from_manager.pop_or_arm(&mut buffer) {
                Ok(Some(length)) => length,
                Ok(None) => return,
                Err(RingError::PeerSlotCorrupt { length }) => {
                    self.corrupt_slots += 1;
                    error!(
                        "driver: the manager's ring has a slot of {length} bytes; skipped ({} so far)",
                        self.corrupt_slots
                    );
                    continue;
                }
                Err(why) => {
                    error!("driver: the manager's ring is unusable ({why:?})");
                    return;
                }
            };
            match warden_protocol::decode(buffer.get(..length).unwrap_or_default()) {
                Ok((_, message)) => self.handle(message),
                Err(why) => error!("driver: malformed message from the manager: {why:?}"),
            }
        }
    }

    fn handle(&mut self, message: Message) {
        let (id, device) = match &message {
            Message::Ping { sequence } => {
                self.send(&Message::Alive {
                    sequence: *sequence,
                });
                return;
            }
            Message::Probe {
                callback, device, ..
            }
            | Message::Remove { callback, device }
            | Message::Suspend { callback, device }
            | Message::Resume { callback, device }
            | Message::Shutdown { callback, device } => (*callback, *device),
            other => {
                error!("driver: unexpected message from the manager: {other:?}");
                return;
            }
        };
        let callback = Callback { id, device };
        self.fire_armed(&message);
        let answer = match message {
            Message::Probe {
                driver,
                match_data,
                resources,
                ..
            } => {
                let answer = self.driver.probe(&Probe {
                    callback,
                    driver,
                    match_data,
                    resources,
                });
                if answer == crate::Answer::Ok && !self.bound.iter().any(|(at, _)| *at == device) {
                    self.bound.push((device, driver));
                }
                answer
            }
            Message::Remove { .. } => {
                let answer = self.driver.remove(&callback);
                self.bound.retain(|(bound, _)| *bound != device);
                answer
            }
            Message::Suspend { .. } => self.driver.suspend(&callback),
            Message::Resume { .. } => self.driver.resume(&callback),
            _ => self.driver.shutdown(&callback),
        };
        self.answer(id, answer);
    }

    /// An injected fault waiting for this callback happens now.
    fn fire_armed(&mut self, message: &Message) {
        match (self.armed, message) {
            (Some(Armed::Hang), _) => {
                warn!("driver: injected fault: hanging in this callback");
                hang();
            }
            (Some(Armed::Panic), Message::Probe { .. }) => {
                fatal(format_args!("driver: injected fault: panic in probe"));
            }
            _ => {}
        }
    }

    /// Arms `armed` for the next callback, and brings one about: this PD lets go of one of
    /// its devices and asks for it back (the remove, then the probe). With no device bound
    /// there is no callback to wait for: `now` happens instead.
    fn arm(&mut self, armed: Armed, now: impl FnOnce()) {
        let Some(&(device, driver)) = self.bound.first() else {
            now();
            return;
        };
        self.armed = Some(armed);
        if crate::unbind(device).is_err() || crate::bind(device, driver).is_err() {
            warn!("driver: injected fault: the manager refused the unbind or bind; it happens now");
            now();
        }
    }
}

/// Never returns (an injected hang: the supervisor's deadline must catch it).
fn hang() -> ! {
    loop {
        #[cfg(not(target_os = "none"))]
        std::thread::sleep(core::time::Duration::from_secs(1));
        #[cfg(target_os = "none")]
        core::hint::spin_loop();
    }
}

impl<D: Driver> Handler for DriverPd<D> {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(MANAGER) {
            if self.registration == Registration::Retry || self.companion == Registration::Retry {
                self.register();
            }
            self.drain();
            // The manager also signals when it has made room on our ring.
            if self.to_manager.flush() {
                MANAGER.notify();
            }
        }
        let others = ChannelSet::from_bits(channels.bits() & !(1 << MANAGER.index()));
        if others.bits() != 0 {
            self.driver.notified(others);
        }
        Ok(())
    }

    fn protected(
        &mut self,
        channel: Channel,
        message: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        Ok(self.driver.protected(channel, message))
    }

    fn inject(&mut self, fault: InjectedFault) -> Result<(), Self::Error> {
        match fault {
            InjectedFault::Hang => self.arm(Armed::Hang, || {
                warn!("driver: injected fault: hanging now");
                hang();
            }),
            InjectedFault::Panic => self.arm(Armed::Panic, || {
                fatal(format_args!("driver: injected fault: panic"));
            }),
            InjectedFault::Corrupt => {
                warn!("driver: injected fault: a slot of 0x1000 bytes on the manager's ring");
                let notify = self.to_manager.send_malformed(0x1000).unwrap_or(false);
                // Well-formed messages follow it: the manager must read them.
                self.send(&Message::Alive { sequence: 0 });
                if notify {
                    MANAGER.notify();
                }
            }
            InjectedFault::Flood => {
                warn!("driver: injected fault: notifying the manager 10000 times");
                for _ in 0..10_000 {
                    MANAGER.notify();
                }
            }
        }
        Ok(())
    }
}
