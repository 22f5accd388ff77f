//! The driver side: the manager's link to each driver PD (its channel and ring pair), the
//! callbacks sent on it, and what a driver asks for (registration, `__device_add` and
//! `__device_del`, letting go of a device and binding it again).

use alloc::vec::Vec;
use core::sync::atomic::AtomicU32;
use core::time::Duration;
use log::{debug, info, warn};

use warden_manager_core::{
    Callback, CallbackKind, DeviceDescriptor, DriverDescriptor, Error, PdId, Request, Requester,
};
use warden_microkit::{Channel, Child};
use warden_protocol::ring::SLOT_BYTES;
use warden_protocol::{
    Consumer, DecodeError, Message, Outbox, Producer, RingError, RingMemory, Status,
};
use warden_services::admin::completion;
use warden_vocabulary::{
    BusId, CallbackId, DeviceId, MatchData, MatchTable, Name, Outcome, Resources,
};

use crate::peer_log::PeerLog;
use crate::{interface, refusal, DeviceManager};

/// Lines caused by driver PD `$index`'s messages: rate-limited ([`PeerLog`]).
macro_rules! peer_warn {
    ($manager:expr, $index:expr, $($format:tt)*) => {{
        let now = $manager.core.now();
        if let Some(link) = $manager.drivers.get_mut($index) {
            if link.log.allow(now) {
                warn!($($format)*);
            }
        }
    }};
}

/// A line caused by driver PD `$pd`'s call: rate-limited like [`peer_warn`] (a PD without a
/// link, which cannot be, is not limited).
macro_rules! by_peer {
    ($manager:expr, $pd:expr, $log:expr) => {{
        let now = $manager.core.now();
        let allowed = $manager
            .link($pd)
            .and_then(|index| $manager.drivers.get_mut(index))
            .is_none_or(|link| link.log.allow(now));
        if allowed {
            $log;
        }
    }};
}

/// The manager's link to one driver PD.
pub struct DriverLink {
    /// Its channel (and child id).
    pub channel: Channel,
    /// The two rings' memory (manager → driver, driver → manager).
    memory: (RingMemory<'static>, RingMemory<'static>),
    /// Callbacks and heartbeats, queued while its ring is full.
    to_driver: Outbox<'static>,
    from_driver: Consumer<'static>,
    /// It has asked to register since it (re)started: bring-up waits for every driver PD.
    pub registered: bool,
    /// Its registration was refused for want of room: it is notified when there is some.
    wants_room: bool,
    /// Malformed slots it wrote, skipped.
    pub corrupt_slots: u64,
    /// The log lines it causes.
    pub(crate) log: PeerLog,
}

impl DriverLink {
    fn new(channel: Channel, memory: (RingMemory<'static>, RingMemory<'static>)) -> Self {
        let from_driver = Consumer::new(memory.1);
        // Ask for a notification when the driver puts its first message on the ring.
        let _ = from_driver.arm_signal();
        Self {
            channel,
            memory,
            to_driver: Outbox::new(Producer::new(memory.0)),
            from_driver,
            registered: false,
            wants_room: false,
            corrupt_slots: 0,
            log: PeerLog::default(),
        }
    }

    /// Both rings start empty again, and this side with them: what a restart of the driver PD
    /// needs (it is stopped: nobody else touches them now). Whatever the old incarnation left
    /// on them, well-formed or not, is gone.
    pub(crate) fn reset(&mut self) {
        self.memory.0.reset();
        self.memory.1.reset();
        *self = Self {
            corrupt_slots: self.corrupt_slots,
            log: core::mem::take(&mut self.log),
            ..Self::new(self.channel, self.memory)
        };
    }
}

type Words = Option<&'static [AtomicU32]>;

/// The rings of driver PDs 1–8, as the system description maps them (`None`: not mapped).
fn driver_ring_words() -> [(Words, Words); 8] {
    use warden_microkit::memory_region_words as words;
    [
        (
            words!(to_driver1, to_driver1_size),
            words!(from_driver1, from_driver1_size),
        ),
        (
            words!(to_driver2, to_driver2_size),
            words!(from_driver2, from_driver2_size),
        ),
        (
            words!(to_driver3, to_driver3_size),
            words!(from_driver3, from_driver3_size),
        ),
        (
            words!(to_driver4, to_driver4_size),
            words!(from_driver4, from_driver4_size),
        ),
        (
            words!(to_driver5, to_driver5_size),
            words!(from_driver5, from_driver5_size),
        ),
        (
            words!(to_driver6, to_driver6_size),
            words!(from_driver6, from_driver6_size),
        ),
        (
            words!(to_driver7, to_driver7_size),
            words!(from_driver7, from_driver7_size),
        ),
        (
            words!(to_driver8, to_driver8_size),
            words!(from_driver8, from_driver8_size),
        ),
    ]
}

/// A link to every driver PD whose rings the system description maps.
pub(crate) fn links() -> Vec<DriverLink> {
    let mut links = Vec::new();
    for (n, (to_driver, from_driver)) in interface::DRIVER_PDS.zip(driver_ring_words()) {
        let (Some(to_driver), Some(from_driver)) = (to_driver, from_driver) else {
            continue;
        };
        let rings = (RingMemory::over(to_driver), RingMemory::over(from_driver));
        let (Ok(to_driver), Ok(from_driver)) = rings else {
            warn!("manager: driver PD {n}'s rings are too small; it is left out");
            continue;
        };
        links.push(DriverLink::new(Channel::new(n), (to_driver, from_driver)));
    }
    links
}

impl DeviceManager {
    /// The link to driver PD `pd`.
    pub(crate) fn link(&self, pd: PdId) -> Option<usize> {
        self.drivers
            .iter()
            .position(|driver| u32::from(driver.channel.index()) == pd.0)
    }

    /// Driver PD `index` signalled: it queued answers, or made room on our ring.
    pub(crate) fn driver_notified(&mut self, index: usize) {
        self.drain_driver_ring(index);
        if let Some(driver) = self.drivers.get_mut(index) {
            if driver.to_driver.flush() {
                driver.channel.notify();
            }
        }
    }

    /// A driver PD faulted or was stopped: its callbacks fail, its devices are unbound, its
    /// drivers removed; bring-up waits for it to register again.
    pub(crate) fn driver_died(&mut self, pd: PdId) {
        if let Some(driver) = self.link(pd).and_then(|index| self.drivers.get_mut(index)) {
            driver.registered = false;
        }
        self.subscribers.pd(warden_protocol::EventKind::Faulted, pd);
        let mut effects = Vec::new();
        self.core.pd_died(pd, &mut |effect| effects.push(effect));
        self.carry_out(effects);
    }

    /// A driver PD broke its ring (an impossible index): it is stopped, cleaned up after and
    /// restarted like a PD that failed; the restart resets the ring.
    fn ring_broken(&mut self, pd: PdId, error: RingError) {
        warn!(
            "manager: driver PD {}'s ring is unusable ({error:?}); stopping it",
            pd.0
        );
        Child::new(crate::supervision::pd_index(pd)).stop();
        self.driver_died(pd);
        let now = self.core.now();
        let mut actions = Vec::new();
        self.supervisor
            .stopped(pd, now, &mut |action| actions.push(action));
        self.perform(actions);
    }

    /// Puts `message` on driver PD `pd`'s ring (queued while it is full).
    pub(crate) fn send_to_driver(&mut self, pd: PdId, message: &Message) {
        let Some(driver) = self.link(pd).and_then(|index| self.drivers.get_mut(index)) else {
            warn!("manager: a message for unknown driver PD {}", pd.0);
            return;
        };
        match driver.to_driver.send(0, message) {
            Ok(true) => driver.channel.notify(),
            Ok(false) => {}
            Err(error) => warn!("manager: cannot encode {message:?}: {error:?}"),
        }
    }

    /// Driver PDs whose registration found the driver table full hear when it has room.
    pub(crate) fn offer_room(&mut self) {
        let room = self.core.drivers().count() < crate::DRIVERS;
        if !room {
            return;
        }
        for driver in &mut self.drivers {
            if driver.wants_room {
                driver.wants_room = false;
                driver.channel.notify();
            }
        }
    }

    pub(crate) fn send_callback(&mut self, callback: &Callback) {
        let now = self.core.now();
        let mark = crate::trace::callback_sent(callback, self.core.request_of(callback.id));
        self.ring.record(now, mark);
        let (id, device) = (callback.id, callback.device);
        let message = match callback.kind {
            CallbackKind::Probe => {
                let Ok(info) = self.core.device(device) else {
                    return;
                };
                debug!(
                    "manager: probing device {device} with driver PD {}",
                    callback.pd.0
                );
                Message::Probe {
                    callback: id,
                    device,
                    driver: callback.driver,
                    match_data: info.match_data.clone(),
                    resources: info.resources.clone(),
                }
            }
            CallbackKind::Remove => {
                debug!(
                    "manager: removing device {device} from driver PD {}",
                    callback.pd.0
                );
                Message::Remove {
                    callback: id,
                    device,
                }
            }
            CallbackKind::Suspend => Message::Suspend {
                callback: id,
                device,
            },
            CallbackKind::Resume => Message::Resume {
                callback: id,
                device,
            },
            CallbackKind::Shutdown => Message::Shutdown {
                callback: id,
                device,
            },
        };
        self.send_to_driver(callback.pd, &message);
    }

    /// Takes every message driver PD `index` queued. A malformed slot is skipped and counted,
    /// never the end of the ring; an impossible index stops the PD (its restart resets the
    /// ring). At most a ring's worth per notification and a bounded number of malformed slots,
    /// so a driver that refills its ring as fast as it is read cannot keep the manager to
    /// itself.
    fn drain_driver_ring(&mut self, index: usize) {
        let mut buffer = [0u8; SLOT_BYTES];
        let Some(capacity) = self
            .drivers
            .get(index)
            .map(|driver| driver.from_driver.capacity())
        else {
            return;
        };
        for _ in 0..capacity {
            let Some(driver) = self.drivers.get_mut(index) else {
                return;
            };
            let pd = PdId(u32::from(driver.channel.index()));
            match driver.from_driver.pop_or_arm(&mut buffer) {
                Ok(Some(length)) => {
                    let bytes = buffer.get(..length).unwrap_or_default();
                    self.driver_message(index, pd, bytes);
                }
                Ok(None) => return,
                Err(RingError::PeerSlotCorrupt { length }) => {
                    driver.corrupt_slots += 1;
                    let count = driver.corrupt_slots;
                    peer_warn!(
                        self,
                        index,
                        "manager: driver PD {} wrote a slot of {length} bytes; skipped ({count} so far)",
                        pd.0
                    );
                }
                Err(error) => {
                    self.ring_broken(pd, error);
                    return;
                }
            }
        }
        // More than a ring's worth: the rest at the next notification, which we ask for.
        if let Some(driver) = self.drivers.get(index) {
            if !driver.from_driver.is_empty() {
                driver.channel.notify();
            }
        }
    }

    fn driver_message(&mut self, index: usize, pd: PdId, bytes: &[u8]) {
        match warden_protocol::decode(bytes) {
            Ok((_, Message::CallbackDone { callback, answer })) => {
                let mut effects = Vec::new();
                let done = self
                    .core
                    .callback_done(pd, callback, answer, &mut |effect| effects.push(effect));
                if done.is_ok() {
                    let now = self.core.now();
                    self.ring
                        .record(now, crate::trace::callback_answered(callback, answer));
                }
                if let Err(error) = done {
                    peer_warn!(
                        self,
                        index,
                        "manager: refused driver PD {}'s answer: {error:?}",
                        pd.0
                    );
                }
                self.carry_out(effects);
            }
            Ok((_, Message::Alive { sequence })) => {
                let now = self.core.now();
                if !self.supervisor.alive(pd, sequence, now) {
                    debug!(
                        "manager: driver PD {}'s heartbeat {sequence} answers nothing",
                        pd.0
                    );
                }
            }
            Ok((_, other)) => peer_warn!(
                self,
                index,
                "manager: unexpected message from driver PD {}: {other:?}",
                pd.0
            ),
            Err(error) => peer_warn!(
                self,
                index,
                "manager: malformed message from driver PD {}: {error:?}",
                pd.0
            ),
        }
    }

    /// A call from a driver PD.
    pub(crate) fn driver_call(&mut self, pd: PdId, call: Result<Message, DecodeError>) -> Message {
        match call {
            Ok(Message::Register {
                name,
                bus,
                match_table,
                deadline_ms,
            }) => self.register(pd, name, bus, match_table, deadline_ms),
            Ok(Message::AddChild {
                callback,
                parent,
                bus,
                match_data,
                resources,
            }) => self.add_child(pd, callback, parent, bus, match_data, resources),
            Ok(Message::RemoveChild { callback, child }) => self.remove_child(pd, callback, child),
            Ok(Message::Unbind { device }) => {
                by_peer!(
                    self,
                    pd,
                    info!("manager: driver PD {} lets go of device {device}", pd.0)
                );
                self.request(Requester::Driver(pd), Request::Unbind(device))
            }
            Ok(Message::QueryPciHost { device }) => self.pci_host(pd, device),
            Ok(Message::Bind { device, driver }) => {
                by_peer!(
                    self,
                    pd,
                    info!(
                        "manager: driver PD {} asks to bind device {device} again",
                        pd.0
                    )
                );
                self.request(Requester::Driver(pd), Request::Bind { device, driver })
            }
            Ok(other) => {
                by_peer!(
                    self,
                    pd,
                    warn!(
                        "manager: unexpected call from driver PD {}: {other:?}",
                        pd.0
                    )
                );
                completion(Status::NotPermitted)
            }
            Err(error) => {
                by_peer!(
                    self,
                    pd,
                    warn!("manager: malformed call from driver PD {}: {error:?}", pd.0)
                );
                completion(Status::Malformed)
            }
        }
    }

    /// A PCI host bridge's description, for the PD whose system description gives it the
    /// bridge (its registers) or whose driver is bound to it; anyone else is refused, as is a
    /// device that is no host bridge (`NoSuchObject`) or no device (`StaleHandle`).
    fn pci_host(&mut self, pd: PdId, device: DeviceId) -> Message {
        let info = match self.core.device(device) {
            Ok(info) => info,
            Err(error) => return completion(crate::status_of(error)),
        };
        let granted = self
            .core
            .grant_of(pd)
            .is_some_and(|grant| grant.gives(&info.resources));
        let bound = info
            .driver
            .and_then(|driver| self.core.driver(driver).ok())
            .is_some_and(|driver| driver.pd == pd);
        if !granted && !bound {
            by_peer!(
                self,
                pd,
                warn!(
                    "manager: driver PD {} asked for host bridge {device}, which is not its own",
                    pd.0
                )
            );
            return completion(Status::NotPermitted);
        }
        match self.pci_hosts.iter().find(|(id, _)| *id == device) {
            Some((_, host)) => Message::PciHost {
                device,
                host: host.clone(),
            },
            None => completion(Status::NoSuchObject),
        }
    }

    /// A driver's registration, decided at once: the handle, or the refusal with why.
    fn register(
        &mut self,
        pd: PdId,
        name: Name,
        bus: BusId,
        match_table: MatchTable,
        deadline_ms: u32,
    ) -> Message {
        let now = self.core.now();
        // Whatever the outcome, the PD is up and answering: it is registered with the
        // supervisor, whose heartbeats check it from now on. A call from an incarnation the
        // supervisor stopped (queued before the stop) is refused.
        if !self.supervisor.registered(pd, now) {
            by_peer!(
                self,
                pd,
                warn!(
                    "manager: refused driver PD {}'s registration of '{name}': the PD is stopped",
                    pd.0
                )
            );
            return completion(Status::NotPermitted);
        }
        let index = self.link(pd);
        if let Some(driver) = index.and_then(|index| self.drivers.get_mut(index)) {
            driver.registered = true;
        }
        let Ok(bus_name) = self
            .core
            .bus(bus)
            .map(|info| alloc::string::String::from(info.name))
        else {
            by_peer!(
                self,
                pd,
                warn!(
                    "manager: driver PD {} registers '{name}' on no bus ({bus})",
                    pd.0
                )
            );
            return completion(Status::StaleHandle);
        };
        let deadline = (deadline_ms > 0).then(|| Duration::from_millis(u64::from(deadline_ms)));
        let descriptor = DriverDescriptor {
            bus,
            pd,
            name: name.clone(),
            match_table,
            deadline,
        };
        match self.submit(Requester::Driver(pd), Request::RegisterDriver(descriptor)) {
            Ok(Some(outcome @ Outcome::Driver { driver, .. })) => {
                info!(
                    "manager: driver PD {} registers '{name}' on the {bus_name} bus: driver {driver}",
                    pd.0
                );
                Message::Completion {
                    status: Status::Ok,
                    detail: 0,
                    outcome,
                }
            }
            Ok(_) => completion(Status::Failed),
            Err(error) => {
                let why = match error {
                    Error::NotGranted => {
                        " (the system description gives this PD no device it claims)"
                    }
                    Error::NoSpace => {
                        if let Some(driver) = index.and_then(|index| self.drivers.get_mut(index)) {
                            driver.wants_room = true;
                        }
                        " (the driver table is full: it hears when there is room)"
                    }
                    _ => "",
                };
                by_peer!(
                    self,
                    pd,
                    warn!(
                        "manager: refused driver PD {}'s registration of '{name}': {error:?}{why}",
                        pd.0
                    )
                );
                refusal(error)
            }
        }
    }

    /// A driver's `__device_add` from inside its probe or resume.
    fn add_child(
        &mut self,
        pd: PdId,
        callback: CallbackId,
        parent: DeviceId,
        bus: BusId,
        match_data: MatchData,
        resources: Resources,
    ) -> Message {
        let descriptor = DeviceDescriptor {
            bus,
            match_data,
            resources,
        };
        let mut effects = Vec::new();
        let result = self
            .core
            .child_add(pd, callback, parent, &descriptor, &mut |effect| {
                effects.push(effect)
            });
        let reply = match result {
            Ok(child) => {
                self.report.child_added(&self.core, pd, child, parent);
                Message::Completion {
                    status: Status::Ok,
                    detail: 0,
                    outcome: Outcome::Device {
                        device: child,
                        driver: None,
                    },
                }
            }
            Err(error) => {
                by_peer!(
                    self,
                    pd,
                    warn!("manager: refused driver PD {}'s child: {error:?}", pd.0)
                );
                refusal(error)
            }
        };
        self.carry_out(effects);
        reply
    }

    /// A driver's `__device_del` from inside a callback on the parent.
    fn remove_child(&mut self, pd: PdId, callback: CallbackId, child: DeviceId) -> Message {
        let mut effects = Vec::new();
        let result = self
            .core
            .child_remove(pd, callback, child, &mut |effect| effects.push(effect));
        self.carry_out(effects);
        match result {
            Ok(()) => completion(Status::Ok),
            Err(error) => {
                by_peer!(
                    self,
                    pd,
                    warn!(
                        "manager: refused driver PD {}'s child removal: {error:?}",
                        pd.0
                    )
                );
                refusal(error)
            }
        }
    }

    /// A driver's or a client's request, answered: `Ok` while it is under way or if the core
    /// carried it out at once, else the refusal (at the door, or decided at once: a stale
    /// handle, a driver that does not match, a device already bound).
    pub(crate) fn request(&mut self, requester: Requester, request: Request) -> Message {
        match self.submit(requester, request) {
            Ok(_) => completion(Status::Ok),
            Err(error) => {
                match requester {
                    Requester::Driver(pd) => by_peer!(
                        self,
                        pd,
                        warn!("manager: refused driver PD {}'s request: {error:?}", pd.0)
                    ),
                    _ => warn!("manager: refused {requester:?}'s request: {error:?}"),
                }
                refusal(error)
            }
        }
    }
}
