//! The device-manager PD: the daemon of the 2005 reply, running `device-manager-core`.
//!
//! Channels: 1 — the driver PD (it calls `protected` to register; both sides notify when they
//! put a message on a ring). Memory: `to_driver` (ring, manager → driver) and `from_driver`
//! (ring, driver → manager). The driver PD is this PD's child 1, so its faults arrive at
//! `fault`. Everything a driver sends is decoded and checked (`warden-protocol`), and what it
//! asks for is checked against its authority by the core.
//!
//! The board's devices are, until the device-tree issue lands, the two the QEMU virt board has
//! at fixed addresses (PL011 and PL031).
//!
//! The crate is `no_std` + `alloc` so the same code runs on seL4 and on the host; `main.rs` is
//! the PD binary. The channel ids and setvar symbols it uses are in [`interface`], which a test
//! of `warden-host` checks against the system descriptions.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use log::info;

use device_manager_core::{
    BusId, CallbackId, CallbackKind, CallbackStatus, Config, DeviceDescriptor, DriverDescriptor,
    Effect, Error, MatchData, MatchEntry, MatchTable, MmioRange, Name, PdId, Request, Requester,
    Resources,
};
use warden_microkit::{fatal, get_mr, set_mr, Channel, ChannelSet, Child, Handler, MessageInfo};
use warden_protocol::ppc::{decode_call, encode_call, MAX_REGISTERS};
use warden_protocol::ring::SLOT_BYTES;
use warden_protocol::{Consumer, Outbox, Producer, RingMemory};

/// What this PD expects of the system description.
pub mod interface {
    use warden_microkit::Channel;

    /// The channel to the driver PD (the driver calls `protected` on it; both sides notify).
    pub const DRIVER: Channel = Channel::new(1);
    /// The driver PD's child id.
    pub const DRIVER_CHILD: u8 = 1;
    /// The setvar symbols of the maps this PD needs: (vaddr symbol, size symbol).
    pub const REGIONS: [(&str, &str); 2] = [
        ("to_driver", "to_driver_size"),
        ("from_driver", "from_driver_size"),
    ];
}

use interface::DRIVER;
const DRIVER_PD: PdId = PdId(interface::DRIVER_CHILD as u32);
const RING_CAPACITY: u32 = 15;

type Core = device_manager_core::Manager<64, 16, 2, 32>;

/// The device-manager PD's handler.
pub struct DeviceManager {
    core: Box<Core>,
    bus: BusId,
    /// Probes and other callbacks for the driver, queued while its ring is full.
    to_driver: Outbox<'static>,
    from_driver: Consumer<'static>,
}

/// The ring in the region mapped as `symbol`; a PD without it cannot run.
fn ring(
    symbol: &str,
    words: Option<&'static [core::sync::atomic::AtomicU32]>,
) -> RingMemory<'static> {
    let words = words.unwrap_or_else(|| {
        fatal(format_args!(
            "manager: no memory region mapped as '{symbol}'"
        ))
    });
    RingMemory::new(words, RING_CAPACITY)
        .unwrap_or_else(|error| fatal(format_args!("manager: ring '{symbol}': {error:?}")))
}

fn wire_handle(index: u32, generation: u32) -> warden_protocol::Handle {
    warden_protocol::Handle { index, generation }
}

fn status_code(error: Error) -> warden_protocol::Status {
    use warden_protocol::Status;
    match error {
        Error::StaleDevice | Error::StaleDriver | Error::StaleBus => Status::StaleHandle,
        Error::NoSuchCallback => Status::NoSuchObject,
        Error::NotPermitted => Status::NotPermitted,
        Error::NoSpace => Status::NoSpace,
        Error::Busy => Status::Busy,
        Error::NoMatch => Status::NoMatch,
        Error::ParentSuspended => Status::ParentSuspended,
        Error::CallbackFailed(_) => Status::Failed,
        Error::DriverDied => Status::Died,
        Error::ShutDown => Status::ShutDown,
    }
}

impl DeviceManager {
    fn new() -> Self {
        let mut core = Box::new(Core::new(Config::PER_DEVICE));
        let bus = core
            .add_bus("platform")
            .unwrap_or_else(|error| fatal(format_args!("manager: no bus: {error:?}")));
        let to_driver = warden_microkit::memory_region_words!(to_driver, to_driver_size);
        let from_driver = warden_microkit::memory_region_words!(from_driver, from_driver_size);
        let mut manager = Self {
            core,
            bus,
            to_driver: Outbox::new(Producer::new(ring("to_driver", to_driver))),
            from_driver: Consumer::new(ring("from_driver", from_driver)),
        };
        // Ask the driver for a notification when it puts its first message on the ring.
        let _ = manager.from_driver.arm_signal();
        for (compatible, base, irq) in [
            ("arm,pl011", 0x0900_0000, 33),
            ("arm,pl031", 0x0901_0000, 34),
        ] {
            let mut resources = Resources::default();
            let _ = resources.mmio.push(MmioRange { base, size: 0x1000 });
            let _ = resources.irqs.push(irq);
            let descriptor = DeviceDescriptor {
                bus,
                match_data: MatchData::compatible(compatible).unwrap_or_default(),
                resources,
            };
            info!("manager: board device {compatible} at 0x{base:x}, irq {irq}");
            manager.submit(
                Requester::Client(0),
                Request::AddDevice {
                    parent: None,
                    descriptor,
                },
            );
        }
        manager
    }

    fn submit(&mut self, requester: Requester, request: Request) {
        let mut effects = Vec::new();
        if let Err(error) = self
            .core
            .submit(requester, request, &mut |effect| effects.push(effect))
        {
            info!("manager: request refused: {error:?}");
        }
        self.carry_out(effects);
    }

    fn compatible(&self, device: device_manager_core::DeviceId) -> String {
        self.core
            .device(device)
            .ok()
            .and_then(|info| {
                info.match_data
                    .compatible
                    .first()
                    .map(|name| name.to_string())
            })
            .unwrap_or_default()
    }

    fn carry_out(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Callback(callback) => self.send_callback(&callback),
                Effect::Complete(completion) => match completion.result {
                    Ok(device_manager_core::Outcome::Device {
                        device,
                        driver: Some(driver),
                    }) => {
                        let name = self
                            .core
                            .driver(driver)
                            .map(|info| info.name.to_string())
                            .unwrap_or_default();
                        info!(
                            "manager: device {}:{} ({}) bound to driver '{name}'",
                            device.index(),
                            device.generation(),
                            self.compatible(device)
                        );
                    }
                    Ok(device_manager_core::Outcome::Device {
                        device,
                        driver: None,
                    }) => info!(
                        "manager: device {}:{} ({}) added, no driver yet",
                        device.index(),
                        device.generation(),
                        self.compatible(device)
                    ),
                    Ok(device_manager_core::Outcome::Driver { driver, bound }) => info!(
                        "manager: driver {}:{} registered, bound to {bound} device(s)",
                        driver.index(),
                        driver.generation()
                    ),
                    Ok(device_manager_core::Outcome::Done) => {}
                    Err(error) => info!(
                        "manager: request {:?} failed: {error:?}",
                        completion.request
                    ),
                },
            }
        }
        self.print_tree_if_quiescent();
    }

    fn print_tree_if_quiescent(&self) {
        if !self.core.is_quiescent() {
            return;
        }
        info!("manager: device tree:");
        for device in self.core.devices() {
            let driver = self
                .core
                .device(device)
                .ok()
                .and_then(|info| info.driver)
                .and_then(|driver| {
                    self.core
                        .driver(driver)
                        .ok()
                        .map(|info| info.name.to_string())
                });
            info!(
                "manager:   {}:{} {} -> {}",
                device.index(),
                device.generation(),
                self.compatible(device),
                driver.as_deref().unwrap_or("(unbound)")
            );
        }
    }

    fn send_callback(&mut self, callback: &device_manager_core::Callback) {
        let id = warden_protocol::CallbackId {
            operation: callback.id.operation(),
            sequence: callback.id.sequence(),
        };
        let device = wire_handle(callback.device.index(), callback.device.generation());
        let message = match callback.kind {
            CallbackKind::Probe => {
                let mut match_data = warden_protocol::MatchData::default();
                if let Ok(info) = self.core.device(callback.device) {
                    for name in &info.match_data.compatible {
                        if let Ok(name) = warden_protocol::Compatible::try_from(name.as_str()) {
                            let _ = match_data.compatible.push(name);
                        }
                    }
                    match_data.bus_id = info.match_data.bus_id;
                }
                info!(
                    "manager: probing device {}:{} ({}) with the driver PD",
                    device.index,
                    device.generation,
                    self.compatible(callback.device)
                );
                warden_protocol::Message::Probe {
                    callback: id,
                    device,
                    driver: wire_handle(callback.driver.index(), callback.driver.generation()),
                    match_data,
                    // The driver's view of the device (its vaddrs and IRQ channels) comes from
                    // the system description once drivers map devices (the drivers issue).
                    resources: warden_protocol::Resources::default(),
                }
            }
            CallbackKind::Remove => warden_protocol::Message::Remove {
                callback: id,
                device,
            },
            CallbackKind::Suspend => warden_protocol::Message::Suspend {
                callback: id,
                device,
            },
            CallbackKind::Resume => warden_protocol::Message::Resume {
                callback: id,
                device,
            },
            CallbackKind::Shutdown => warden_protocol::Message::Shutdown {
                callback: id,
                device,
            },
        };
        match self.to_driver.send(0, &message) {
            Ok(true) => DRIVER.notify(),
            Ok(false) => {}
            Err(error) => info!("manager: cannot encode {message:?}: {error:?}"),
        }
    }

    fn drain_driver_ring(&mut self) {
        let mut buffer = [0u8; SLOT_BYTES];
        loop {
            match self.from_driver.pop_or_arm(&mut buffer) {
                Ok(Some(length)) => {
                    let bytes = buffer.get(..length).unwrap_or_default();
                    self.handle_driver_message(bytes);
                }
                Ok(None) => return,
                Err(error) => {
                    info!("manager: driver ring is corrupt ({error:?}); ignoring it");
                    return;
                }
            }
        }
    }

    fn handle_driver_message(&mut self, bytes: &[u8]) {
        let message = match warden_protocol::decode(bytes) {
            Ok((_, message)) => message,
            Err(error) => {
                info!("manager: malformed message from the driver: {error:?}");
                return;
            }
        };
        match message {
            warden_protocol::Message::CallbackDone {
                callback,
                status,
                detail,
            } => {
                let status = match status {
                    warden_protocol::Status::Ok => CallbackStatus::Ok,
                    warden_protocol::Status::NotMine => CallbackStatus::NotMine,
                    warden_protocol::Status::Defer => CallbackStatus::Defer,
                    _ => CallbackStatus::Failed(detail),
                };
                let id = CallbackId::from_parts(callback.operation, callback.sequence);
                let mut effects = Vec::new();
                if let Err(error) = self
                    .core
                    .callback_done(DRIVER_PD, id, status, &mut |effect| effects.push(effect))
                {
                    info!("manager: refused the driver's reply: {error:?}");
                }
                self.carry_out(effects);
            }
            other => info!("manager: unexpected message from the driver: {other:?}"),
        }
    }

    fn register(
        &mut self,
        name: &str,
        entries: &[warden_protocol::MatchEntry],
    ) -> warden_protocol::Status {
        let mut match_table = MatchTable::default();
        for entry in entries {
            let entry = match entry {
                warden_protocol::MatchEntry::Compatible(name) => {
                    match device_manager_core::Compatible::try_from(name.as_str()) {
                        Ok(name) => MatchEntry::Compatible(name),
                        Err(()) => return warden_protocol::Status::Malformed,
                    }
                }
                warden_protocol::MatchEntry::BusId(id) => MatchEntry::BusId(*id),
            };
            let _ = match_table.entries.push(entry);
        }
        let Ok(name) = Name::try_from(name) else {
            return warden_protocol::Status::Malformed;
        };
        info!("manager: driver PD registers '{name}'");
        let descriptor = DriverDescriptor {
            bus: self.bus,
            pd: DRIVER_PD,
            name,
            match_table,
        };
        let mut effects = Vec::new();
        let result = self.core.submit(
            Requester::Driver(DRIVER_PD),
            Request::RegisterDriver(descriptor),
            &mut |effect| effects.push(effect),
        );
        self.carry_out(effects);
        match result {
            Ok(_) => warden_protocol::Status::Ok,
            Err(error) => status_code(error),
        }
    }
}

impl Handler for DeviceManager {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(DRIVER) {
            self.drain_driver_ring();
            // The driver also signals when it has made room on our ring.
            if self.to_driver.flush() {
                DRIVER.notify();
            }
        }
        Ok(())
    }

    fn protected(
        &mut self,
        channel: Channel,
        message: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        if channel != DRIVER {
            return Ok(MessageInfo::new(0, 0));
        }
        let count = usize::from(message.count()).min(MAX_REGISTERS);
        let registers: Vec<u64> = (0..count).map(get_mr).collect();
        let info = warden_protocol::ppc::MessageInfo {
            label: message.label(),
            count: count as u16,
        };
        let status = match decode_call(info, &registers) {
            Ok(warden_protocol::Message::Register { name, match_table }) => {
                self.register(&name, &match_table)
            }
            Ok(other) => {
                info!("manager: unexpected call from the driver: {other:?}");
                warden_protocol::Status::NotPermitted
            }
            Err(error) => {
                info!("manager: malformed call from the driver: {error:?}");
                warden_protocol::Status::Malformed
            }
        };
        let reply = warden_protocol::Message::Completion {
            status,
            detail: 0,
            outcome: warden_protocol::Outcome::None,
        };
        let mut out = [0u64; warden_protocol::ppc::MAX_REGISTERS];
        let info = encode_call(&reply, &mut out).map_err(|_| "cannot encode a completion")?;
        for (index, value) in out.iter().take(usize::from(info.count)).enumerate() {
            set_mr(index, *value);
        }
        Ok(MessageInfo::new(info.label, info.count as u8))
    }

    fn fault(
        &mut self,
        child: Child,
        message: MessageInfo,
    ) -> Result<Option<MessageInfo>, Self::Error> {
        info!(
            "manager: driver PD {} faulted (label {}); cleaning up and restarting it",
            child.index(),
            message.label()
        );
        let mut effects = Vec::new();
        self.core
            .pd_died(PdId(u32::from(child.index())), &mut |effect| {
                effects.push(effect)
            });
        self.carry_out(effects);
        child.restart();
        Ok(None)
    }
}

/// The PD's `init`: the manager with the board's devices added.
#[must_use]
pub fn init() -> DeviceManager {
    info!("manager: device manager starting");
    DeviceManager::new()
}
