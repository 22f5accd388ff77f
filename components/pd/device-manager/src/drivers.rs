//! The driver side: the manager's link to each driver PD (its channel and ring pair), the
//! callbacks sent on it, and what a driver asks for (registration, `__device_add` and
//! `__device_del`, letting go of a device and binding it again).

use alloc::vec::Vec;
use core::sync::atomic::AtomicU32;
use log::{debug, info, warn};

use warden_manager_core::{
    Callback, CallbackKind, DeviceDescriptor, DriverDescriptor, PdId, Request, Requester,
};
use warden_microkit::Channel;
use warden_protocol::ring::SLOT_BYTES;
use warden_protocol::{Consumer, DecodeError, Message, Outbox, Producer, RingMemory, Status};
use warden_services::admin::completion;
use warden_vocabulary::{
    BusId, CallbackId, DeviceId, MatchData, MatchTable, Name, Outcome, Resources,
};

use crate::{interface, status_of, DeviceManager};

/// The manager's link to one driver PD.
pub struct DriverLink {
    /// Its channel (and child id).
    pub channel: Channel,
    /// Callbacks, queued while its ring is full.
    to_driver: Outbox<'static>,
    from_driver: Consumer<'static>,
    /// It has asked to register since it (re)started: bring-up waits for every driver PD.
    pub registered: bool,
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
        let from_driver = Consumer::new(from_driver);
        // Ask for a notification when the driver puts its first message on the ring.
        let _ = from_driver.arm_signal();
        links.push(DriverLink {
            channel: Channel::new(n),
            to_driver: Outbox::new(Producer::new(to_driver)),
            from_driver,
            registered: false,
        });
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

    /// A driver PD faulted: its callbacks fail, its devices are unbound, its drivers removed;
    /// bring-up waits for it to register again.
    pub(crate) fn driver_died(&mut self, pd: PdId) {
        if let Some(driver) = self.link(pd).and_then(|index| self.drivers.get_mut(index)) {
            driver.registered = false;
        }
        let mut effects = Vec::new();
        self.core.pd_died(pd, &mut |effect| effects.push(effect));
        self.carry_out(effects);
    }

    pub(crate) fn send_callback(&mut self, callback: &Callback) {
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
        let Some(driver) = self
            .link(callback.pd)
            .and_then(|index| self.drivers.get_mut(index))
        else {
            warn!("manager: callback for unknown driver PD {}", callback.pd.0);
            return;
        };
        match driver.to_driver.send(0, &message) {
            Ok(true) => driver.channel.notify(),
            Ok(false) => {}
            Err(error) => warn!("manager: cannot encode {message:?}: {error:?}"),
        }
    }

    fn drain_driver_ring(&mut self, index: usize) {
        let mut buffer = [0u8; SLOT_BYTES];
        loop {
            let Some(driver) = self.drivers.get_mut(index) else {
                return;
            };
            let pd = PdId(u32::from(driver.channel.index()));
            match driver.from_driver.pop_or_arm(&mut buffer) {
                Ok(Some(length)) => {
                    let bytes = buffer.get(..length).unwrap_or_default();
                    self.driver_message(pd, bytes);
                }
                Ok(None) => return,
                Err(error) => {
                    warn!(
                        "manager: driver PD {}'s ring is corrupt ({error:?}); ignoring it",
                        pd.0
                    );
                    return;
                }
            }
        }
    }

    fn driver_message(&mut self, pd: PdId, bytes: &[u8]) {
        match warden_protocol::decode(bytes) {
            Ok((_, Message::CallbackDone { callback, answer })) => {
                let mut effects = Vec::new();
                if let Err(error) = self
                    .core
                    .callback_done(pd, callback, answer, &mut |effect| effects.push(effect))
                {
                    warn!("manager: refused driver PD {}'s answer: {error:?}", pd.0);
                }
                self.carry_out(effects);
            }
            Ok((_, other)) => warn!(
                "manager: unexpected message from driver PD {}: {other:?}",
                pd.0
            ),
            Err(error) => warn!(
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
            }) => completion(self.register(pd, name, bus, match_table)),
            Ok(Message::AddChild {
                callback,
                parent,
                bus,
                match_data,
                resources,
            }) => self.add_child(pd, callback, parent, bus, match_data, resources),
            Ok(Message::RemoveChild { callback, child }) => self.remove_child(pd, callback, child),
            Ok(Message::Unbind { device }) => {
                info!("manager: driver PD {} lets go of device {device}", pd.0);
                self.request(Requester::Driver(pd), Request::Unbind(device))
            }
            Ok(Message::Bind { device, driver }) => {
                info!(
                    "manager: driver PD {} asks to bind device {device} again",
                    pd.0
                );
                self.request(Requester::Driver(pd), Request::Bind { device, driver })
            }
            Ok(other) => {
                warn!(
                    "manager: unexpected call from driver PD {}: {other:?}",
                    pd.0
                );
                completion(Status::NotPermitted)
            }
            Err(error) => {
                warn!("manager: malformed call from driver PD {}: {error:?}", pd.0);
                completion(Status::Malformed)
            }
        }
    }

    fn register(&mut self, pd: PdId, name: Name, bus: BusId, match_table: MatchTable) -> Status {
        if let Some(driver) = self.link(pd).and_then(|index| self.drivers.get_mut(index)) {
            driver.registered = true;
        }
        let Some(bus_name) = [(self.platform, "platform"), (self.virtio, "virtio")]
            .into_iter()
            .find_map(|(id, bus_name)| (id == bus).then_some(bus_name))
        else {
            warn!(
                "manager: driver PD {} registers '{name}' on no bus ({bus})",
                pd.0
            );
            return Status::StaleHandle;
        };
        info!(
            "manager: driver PD {} registers '{name}' on the {bus_name} bus",
            pd.0
        );
        let descriptor = DriverDescriptor {
            bus,
            pd,
            name,
            match_table,
        };
        match self.submit(Requester::Driver(pd), Request::RegisterDriver(descriptor)) {
            Ok(_) => Status::Ok,
            Err(error) => status_of(error),
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
                warn!("manager: refused driver PD {}'s child: {error:?}", pd.0);
                completion(status_of(error))
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
                warn!(
                    "manager: refused driver PD {}'s child removal: {error:?}",
                    pd.0
                );
                completion(status_of(error))
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
                warn!("manager: refused {requester:?}'s request: {error:?}");
                completion(status_of(error))
            }
        }
    }
}
