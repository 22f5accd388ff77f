//! The device-manager PD: the daemon of the 2005 reply, running `device-manager-core`.
//!
//! **The board.** The initial device tree is the board's device tree blob, embedded at build
//! time (`build.rs`: the DTB QEMU dumps for `qemu_virt_aarch64`, `platform/odroidc4/board.dts`
//! for the Odroid C4; `WARDEN_BOARD_DTB` overrides at build time, and on the host platform the
//! launcher names its board's blob to the manager at run time). Every node with a `compatible` becomes a
//! device on the platform bus, under its nearest device ancestor, with its compatible strings,
//! physical MMIO windows and GIC INTIDs; nodes no driver claims stay in the tree, unbound. A
//! node the board crate cannot describe, or one more than the core has room for, is reported
//! and left out; the manager goes on with the rest.
//!
//! **Driver PDs.** Up to eight, each this PD's child `n` (1–8) on channel `n`, with a ring
//! pair `to_drivern` / `from_drivern` (setvar symbols; the driver side's are in
//! `warden-driver`). A driver PD calls `protected` to register (`Register`), and from inside a
//! probe or resume to add or remove children (`AddChild`, the `__device_add` path, and
//! `RemoveChild`); it answers callbacks with `CallbackDone` on its ring. Whatever a driver sends
//! is decoded and checked (`warden-protocol`), and what it asks for is checked against its
//! authority by the core. A driver PD that faults is cleaned up (`pd_died`: its callbacks fail,
//! its devices are unbound, its drivers removed) and restarted.
//!
//! **Clients.** A PD of lower priority may call the manager on its channels 16–23
//! ([`interface::CLIENTS`]), as the shell does: `QueryTree`, `QueryDevice` and `QueryDriver`
//! are answered from the core's state; `Unbind`, `Bind` and `Rescan` are the client's requests
//! (answered with their outcome if the core decided at once, `Ok` while they are under way).
//! Such a client has the administrator's authority over every device; the system description
//! decides who gets a client channel.
//!
//! **Buses.** Two, created in this order so their handles are fixed
//! (`warden_driver::bus`): `platform` (the board's devices) and `virtio` (devices found behind
//! virtio-mmio transports). A driver whose match table names a `virtio,device…` compatible
//! serves the virtio bus; any other the platform bus.
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
use core::sync::atomic::AtomicU32;
use log::{debug, info, warn};

use warden_manager_core::{
    BusId, CallbackId, CallbackKind, CallbackStatus, Config, DeviceDescriptor, DeviceId,
    DriverDescriptor, Effect, Error, MatchData, MatchEntry, MatchTable, MmioRange, Name, Outcome,
    PdId, Request, RequestId, Requester, Resources,
};
use warden_microkit::{get_mr, set_mr, Channel, ChannelSet, Child, Handler, MessageInfo};
use warden_protocol::ppc::{decode_call, encode_call, MAX_REGISTERS};
use warden_protocol::ring::SLOT_BYTES;
use warden_protocol::{Consumer, Message, Outbox, Producer, RingMemory, Status};

/// What this PD expects of the system description.
pub mod interface {
    /// Driver PDs: child id and channel id `n` for `n` in 1..=8.
    pub const DRIVER_PDS: core::ops::RangeInclusive<u8> = 1..=8;
    /// Administrative clients (the shell): channel ids 16..=23, on which a PD of lower
    /// priority calls the manager to read the tree (`QueryTree`, `QueryDevice`,
    /// `QueryDriver`) and to ask for `Unbind`, `Bind` and `Rescan`.
    pub const CLIENTS: core::ops::RangeInclusive<u8> = 16..=23;
    /// The setvar symbols of driver PD `n`'s rings: (vaddr symbol, size symbol), manager →
    /// driver then driver → manager.
    #[must_use]
    pub fn driver_regions(n: u8) -> [(alloc::string::String, alloc::string::String); 2] {
        use alloc::format;
        [
            (format!("to_driver{n}"), format!("to_driver{n}_size")),
            (format!("from_driver{n}"), format!("from_driver{n}_size")),
        ]
    }
}

/// The board's device tree blob (see `build.rs`).
pub static BOARD_DTB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/board.dtb"));

/// The blob the manager reads: [`BOARD_DTB`] on seL4. On the host platform the launcher names
/// the board it models (`warden-host run --board FILE`) in `WARDEN_BOARD_DTB`, and the manager
/// reads that one, so that one build runs any board's system description; an unreadable file
/// is reported and the embedded blob used.
fn board_dtb() -> alloc::borrow::Cow<'static, [u8]> {
    #[cfg(not(target_os = "none"))]
    if let Some(path) = std::env::var_os("WARDEN_BOARD_DTB") {
        match std::fs::read(&path) {
            Ok(bytes) => return alloc::borrow::Cow::Owned(bytes),
            Err(error) => warn!(
                "manager: board {}: {error}; using the built-in board",
                path.to_string_lossy()
            ),
        }
    }
    alloc::borrow::Cow::Borrowed(BOARD_DTB)
}

type Core = warden_manager_core::Manager<96, 16, 2, 32>;
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

/// One driver PD as the manager sees it.
struct DriverPd {
    channel: Channel,
    /// Callbacks, queued while its ring is full.
    to_driver: Outbox<'static>,
    from_driver: Consumer<'static>,
    /// It has asked to register (whatever the answer): bring-up waits for every driver PD.
    registered: bool,
}

/// A device as the log last described it: each change to the tree is one line.
#[derive(Clone, PartialEq, Eq)]
struct Seen {
    device: DeviceId,
    compatible: String,
    /// The driver it is bound to, with its name.
    driver: Option<(warden_manager_core::DriverId, String)>,
}

/// The device-manager PD's handler.
pub struct DeviceManager {
    core: Box<Core>,
    platform: BusId,
    virtio: BusId,
    drivers: Vec<DriverPd>,
    /// The tree as the log last described it.
    seen: Vec<Seen>,
    /// While the board is loaded its devices are summed up in one line, not one each.
    loading: bool,
    /// The whole tree has been printed, once bring-up ended.
    brought_up: bool,
}

fn wire_handle(index: u32, generation: u32) -> warden_protocol::Handle {
    warden_protocol::Handle { index, generation }
}

fn device_handle(device: DeviceId) -> warden_protocol::Handle {
    wire_handle(device.index(), device.generation())
}

fn status_code(error: Error) -> Status {
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

/// The core's match data for wire match data (strings that do not fit are dropped).
fn core_match_data(wire: &warden_protocol::MatchData) -> MatchData {
    let mut data = MatchData {
        bus_id: wire.bus_id,
        ..MatchData::default()
    };
    for name in &wire.compatible {
        if let Ok(name) = warden_manager_core::Compatible::try_from(name.as_str()) {
            let _ = data.compatible.push(name);
        }
    }
    data
}

fn core_resources(wire: &warden_protocol::Resources) -> Resources {
    let mut resources = Resources::default();
    for window in &wire.mmio {
        let _ = resources.mmio.push(MmioRange {
            base: window.address,
            size: window.size,
        });
    }
    for irq in &wire.irqs {
        let _ = resources.irqs.push(*irq);
    }
    resources
}

impl DeviceManager {
    fn new() -> Self {
        let mut core = Box::new(Core::new(Config::PER_DEVICE));
        let platform = core.add_bus("platform");
        let virtio = core.add_bus("virtio");
        let (Ok(platform), Ok(virtio)) = (platform, virtio) else {
            warden_microkit::fatal(format_args!("manager: cannot create the buses"));
        };
        let mut drivers = Vec::new();
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
            drivers.push(DriverPd {
                channel: Channel::new(n),
                to_driver: Outbox::new(Producer::new(to_driver)),
                from_driver,
                registered: false,
            });
        }
        let mut manager = Self {
            core,
            platform,
            virtio,
            drivers,
            seen: Vec::new(),
            loading: true,
            brought_up: false,
        };
        manager.load_board();
        manager.loading = false;
        manager.seen = manager.describe_tree();
        manager
    }

    /// Adds the board's devices from its DTB (see the crate docs).
    fn load_board(&mut self) {
        let blob = board_dtb();
        let board = match warden_board::Board::new(&blob) {
            Ok(board) => board,
            Err(error) => {
                warn!("manager: the board's device tree is unusable: {error}; no board devices");
                return;
            }
        };
        info!(
            "manager: board '{}': reading its device tree",
            board.model().or(board.compatible()).unwrap_or("?"),
        );
        // The manager's device for each board device, by its index in the DTB's sequence.
        let mut added: Vec<Option<DeviceId>> = Vec::new();
        let (mut count, mut disabled) = (0, 0);
        for device in board.devices() {
            let device = match device {
                Ok(device) => device,
                Err(error) => {
                    warn!("manager: board: {error}; node left out");
                    added.push(None);
                    continue;
                }
            };
            let mut descriptor = DeviceDescriptor {
                bus: self.platform,
                match_data: MatchData::default(),
                resources: Resources::default(),
            };
            for name in &device.compatible {
                if let Ok(name) = warden_manager_core::Compatible::try_from(*name) {
                    let _ = descriptor.match_data.compatible.push(name);
                }
            }
            descriptor.resources = board_resources(&device);
            let parent = device
                .parent
                .and_then(|index| added.get(index).copied().flatten());
            if !device.enabled {
                // A disabled node is in the tree, but no driver may have it: with no match
                // data, no match table matches it.
                descriptor.match_data = MatchData::default();
            }
            let result = self.add_device(parent, descriptor);
            match result {
                Ok(id) => {
                    count += 1;
                    if !device.enabled {
                        disabled += 1;
                    }
                    added.push(Some(id));
                }
                Err(error) => {
                    warn!(
                        "manager: board node '{}' not added: {error:?}",
                        device.path_name
                    );
                    added.push(None);
                }
            }
        }
        info!(
            "manager: board device tree loaded: {count} devices ({disabled} disabled), waiting for drivers"
        );
    }

    /// `device_add` from the manager itself; returns the new device.
    fn add_device(
        &mut self,
        parent: Option<DeviceId>,
        descriptor: DeviceDescriptor,
    ) -> Result<DeviceId, Error> {
        match self.submit(
            Requester::Client(0),
            Request::AddDevice { parent, descriptor },
        )? {
            Some(Outcome::Device { device, .. }) => Ok(device),
            _ => Err(Error::Busy),
        }
    }

    /// Submits a request to the core and carries out what it does. `Ok(Some(outcome))` if
    /// the core decided it inside `submit`, `Ok(None)` while it is under way, `Err` for a
    /// refusal, at the door or decided at once.
    fn submit(&mut self, requester: Requester, request: Request) -> Result<Option<Outcome>, Error> {
        let mut effects = Vec::new();
        let id = self
            .core
            .submit(requester, request, &mut |effect| effects.push(effect));
        let decided = id.as_ref().ok().and_then(|id| {
            effects.iter().find_map(|effect| match effect {
                Effect::Complete(done) if done.request == *id => Some(done.result),
                _ => None,
            })
        });
        self.carry_out(effects);
        id?;
        decided.transpose()
    }

    /// A device's most specific compatible string; `(disabled)` for a device with no match
    /// data, which only the board's disabled nodes have (so that no driver can match them).
    fn compatible(&self, device: DeviceId) -> String {
        let Ok(info) = self.core.device(device) else {
            return String::new();
        };
        match (info.match_data.compatible.first(), info.match_data.bus_id) {
            (Some(name), _) => name.to_string(),
            (None, None) => "(disabled)".to_string(),
            (None, Some(id)) => alloc::format!("(bus id {id})"),
        }
    }

    fn driver_name(&self, device: DeviceId) -> Option<String> {
        let driver = self.core.device(device).ok()?.driver?;
        Some(self.core.driver(driver).ok()?.name.to_string())
    }

    fn carry_out(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Callback(callback) => self.send_callback(&callback),
                Effect::Complete(completion) => {
                    self.completed(completion.request, completion.result)
                }
            }
        }
        self.log_changes();
        self.print_tree_after_bring_up();
    }

    fn completed(&mut self, request: RequestId, result: Result<Outcome, Error>) {
        match result {
            Ok(Outcome::Driver { driver, bound }) => info!(
                "manager: driver {}:{} registered, bound to {bound} device(s)",
                driver.index(),
                driver.generation()
            ),
            // A device's binding is logged as a change of the tree.
            Ok(_) => {}
            Err(error) => info!("manager: request {request:?} failed: {error:?}"),
        }
    }

    /// Every device with what the log says of it.
    fn describe_tree(&self) -> Vec<Seen> {
        self.core
            .devices()
            .map(|device| Seen {
                device,
                compatible: self.compatible(device),
                driver: self.core.device(device).ok().and_then(|info| {
                    let driver = info.driver?;
                    Some((driver, self.core.driver(driver).ok()?.name.to_string()))
                }),
            })
            .collect()
    }

    /// One line for each change to the tree since the last call: a device added, bound,
    /// unbound or removed.
    fn log_changes(&mut self) {
        if self.loading {
            return;
        }
        let now = self.describe_tree();
        let name = |seen: &Seen| {
            alloc::format!(
                "device {}:{} ({})",
                seen.device.index(),
                seen.device.generation(),
                seen.compatible
            )
        };
        for old in &self.seen {
            let new = now.iter().find(|new| new.device == old.device);
            if let Some((_, driver)) = &old.driver {
                if new.is_none_or(|new| new.driver != old.driver) {
                    info!("manager: {} unbound from '{driver}'", name(old));
                }
            }
            if new.is_none() {
                info!("manager: {} removed", name(old));
            }
        }
        for new in &now {
            let old = self.seen.iter().find(|old| old.device == new.device);
            if old.is_none() {
                let parent = self
                    .core
                    .device(new.device)
                    .ok()
                    .and_then(|info| info.parent);
                match parent {
                    Some(parent) => info!(
                        "manager: {} added under {}:{}",
                        name(new),
                        parent.index(),
                        parent.generation()
                    ),
                    None => info!("manager: {} added", name(new)),
                }
            }
            if let Some((_, driver)) = &new.driver {
                if old.is_none_or(|old| old.driver != new.driver) {
                    info!("manager: {} bound to driver '{driver}'", name(new));
                }
            }
        }
        self.seen = now;
    }

    /// The whole tree, once: when every driver PD has asked to register and the manager is
    /// idle, the end of bring-up. (Later the shell's `tree` shows it.)
    fn print_tree_after_bring_up(&mut self) {
        if self.brought_up
            || self.loading
            || !self.core.is_quiescent()
            || self.drivers.iter().any(|driver| !driver.registered)
        {
            return;
        }
        self.brought_up = true;
        let bound = self
            .seen
            .iter()
            .filter(|seen| seen.driver.is_some())
            .count();
        info!(
            "manager: bring-up done; device tree ({} devices, {bound} bound):",
            self.seen.len()
        );
        let roots: Vec<DeviceId> = self.core.roots().collect();
        for root in roots {
            self.print_subtree(root, 1);
        }
    }

    fn print_subtree(&self, device: DeviceId, depth: usize) {
        let driver = self.driver_name(device);
        let resources = self
            .core
            .device(device)
            .ok()
            .map(|info| {
                let mut text = String::new();
                if let Some(window) = info.resources.mmio.first() {
                    text.push_str(&alloc::format!(" @0x{:x}", window.base));
                }
                if let Some(irq) = info.resources.irqs.first() {
                    text.push_str(&alloc::format!(" irq {irq}"));
                }
                text
            })
            .unwrap_or_default();
        info!(
            "manager: {:indent$}{}:{} {}{resources} -> {}",
            "",
            device.index(),
            device.generation(),
            self.compatible(device),
            driver.as_deref().unwrap_or("(unbound)"),
            indent = depth * 2
        );
        let children: Vec<DeviceId> = self
            .core
            .children(device)
            .map(Iterator::collect)
            .unwrap_or_default();
        for child in children {
            self.print_subtree(child, depth + 1);
        }
    }

    fn pd_index(&self, pd: PdId) -> Option<usize> {
        self.drivers
            .iter()
            .position(|driver| u32::from(driver.channel.index()) == pd.0)
    }

    fn send_callback(&mut self, callback: &warden_manager_core::Callback) {
        let id = warden_protocol::CallbackId {
            operation: callback.id.operation(),
            sequence: callback.id.sequence(),
        };
        let device = device_handle(callback.device);
        let message = match callback.kind {
            CallbackKind::Probe => {
                let (match_data, resources) = self.wire_description(callback.device);
                debug!(
                    "manager: probing device {}:{} ({}) with driver PD {}",
                    device.index,
                    device.generation,
                    self.compatible(callback.device),
                    callback.pd.0
                );
                Message::Probe {
                    callback: id,
                    device,
                    driver: wire_handle(callback.driver.index(), callback.driver.generation()),
                    match_data,
                    resources,
                }
            }
            CallbackKind::Remove => {
                debug!(
                    "manager: removing device {}:{} ({}) from driver PD {}",
                    device.index,
                    device.generation,
                    self.compatible(callback.device),
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
        let Some(index) = self.pd_index(callback.pd) else {
            warn!("manager: callback for unknown driver PD {}", callback.pd.0);
            return;
        };
        if let Some(driver) = self.drivers.get_mut(index) {
            match driver.to_driver.send(0, &message) {
                Ok(true) => driver.channel.notify(),
                Ok(false) => {}
                Err(error) => warn!("manager: cannot encode {message:?}: {error:?}"),
            }
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
                    self.handle_driver_message(pd, bytes);
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

    fn handle_driver_message(&mut self, pd: PdId, bytes: &[u8]) {
        let message = match warden_protocol::decode(bytes) {
            Ok((_, message)) => message,
            Err(error) => {
                warn!(
                    "manager: malformed message from driver PD {}: {error:?}",
                    pd.0
                );
                return;
            }
        };
        match message {
            Message::CallbackDone {
                callback,
                status,
                detail,
            } => {
                let status = match status {
                    Status::Ok => CallbackStatus::Ok,
                    Status::NotMine => CallbackStatus::NotMine,
                    Status::Defer => CallbackStatus::Defer,
                    _ => CallbackStatus::Failed(detail),
                };
                let id = CallbackId::from_parts(callback.operation, callback.sequence);
                let mut effects = Vec::new();
                if let Err(error) = self
                    .core
                    .callback_done(pd, id, status, &mut |effect| effects.push(effect))
                {
                    warn!("manager: refused driver PD {}'s answer: {error:?}", pd.0);
                }
                self.carry_out(effects);
            }
            other => warn!(
                "manager: unexpected message from driver PD {}: {other:?}",
                pd.0
            ),
        }
    }

    fn register(
        &mut self,
        pd: PdId,
        name: &str,
        entries: &[warden_protocol::MatchEntry],
    ) -> Status {
        if let Some(driver) = self
            .pd_index(pd)
            .and_then(|index| self.drivers.get_mut(index))
        {
            driver.registered = true;
        }
        let mut match_table = MatchTable::default();
        let mut virtio = false;
        for entry in entries {
            let entry = match entry {
                warden_protocol::MatchEntry::Compatible(name) => {
                    virtio |= name.starts_with("virtio,device");
                    match warden_manager_core::Compatible::try_from(name.as_str()) {
                        Ok(name) => MatchEntry::Compatible(name),
                        Err(()) => return Status::Malformed,
                    }
                }
                warden_protocol::MatchEntry::BusId(id) => MatchEntry::BusId(*id),
            };
            let _ = match_table.entries.push(entry);
        }
        let Ok(name) = Name::try_from(name) else {
            return Status::Malformed;
        };
        let bus = if virtio { self.virtio } else { self.platform };
        info!(
            "manager: driver PD {} registers '{name}' on the {} bus",
            pd.0,
            if virtio { "virtio" } else { "platform" }
        );
        let descriptor = DriverDescriptor {
            bus,
            pd,
            name,
            match_table,
        };
        let mut effects = Vec::new();
        let result = self.core.submit(
            Requester::Driver(pd),
            Request::RegisterDriver(descriptor),
            &mut |effect| effects.push(effect),
        );
        self.carry_out(effects);
        match result {
            Ok(_) => Status::Ok,
            Err(error) => status_code(error),
        }
    }

    fn bus_of(&self, handle: warden_protocol::Handle) -> Option<BusId> {
        [self.platform, self.virtio]
            .into_iter()
            .find(|bus| bus.index() == handle.index && bus.generation() == handle.generation)
    }

    /// A driver's `__device_add` from inside its probe or resume.
    fn add_child(
        &mut self,
        pd: PdId,
        callback: warden_protocol::CallbackId,
        parent: warden_protocol::Handle,
        bus: warden_protocol::Handle,
        match_data: &warden_protocol::MatchData,
        resources: &warden_protocol::Resources,
    ) -> Message {
        let Some(bus) = self.bus_of(bus) else {
            return completion(Status::StaleHandle, warden_protocol::Outcome::None);
        };
        let descriptor = DeviceDescriptor {
            bus,
            match_data: core_match_data(match_data),
            resources: core_resources(resources),
        };
        let parent = DeviceId::from_parts(parent.index, parent.generation);
        let callback = CallbackId::from_parts(callback.operation, callback.sequence);
        let mut effects = Vec::new();
        let result = self
            .core
            .child_add(pd, callback, parent, &descriptor, &mut |effect| {
                effects.push(effect)
            });
        let reply = match result {
            Ok(child) => {
                let compatible = self.compatible(child);
                info!(
                    "manager: driver PD {} added child {}:{} ({compatible}) under {}:{} (__device_add, parent locked by its probe)",
                    pd.0,
                    child.index(),
                    child.generation(),
                    parent.index(),
                    parent.generation()
                );
                // That line is the change's: the log of changes need not repeat it.
                self.seen.push(Seen {
                    device: child,
                    compatible,
                    driver: None,
                });
                completion(
                    Status::Ok,
                    warden_protocol::Outcome::Device {
                        device: device_handle(child),
                        driver: None,
                    },
                )
            }
            Err(error) => {
                warn!("manager: refused driver PD {}'s child: {error:?}", pd.0);
                completion(status_code(error), warden_protocol::Outcome::None)
            }
        };
        self.carry_out(effects);
        reply
    }

    /// A request a driver may make outside a callback (the core checks its authority); it is
    /// queued like any other, and the answer says only whether it was accepted.
    /// A driver's or a client's request, answered: `Ok` while it is under way or if the core
    /// carried it out at once, else the refusal (at the door, or decided at once: a stale
    /// handle, a driver that does not match, a device already bound).
    fn request(&mut self, requester: Requester, request: Request) -> Message {
        match self.submit(requester, request) {
            Ok(_) => completion(Status::Ok, warden_protocol::Outcome::None),
            Err(error) => {
                warn!("manager: refused {requester:?}'s request: {error:?}");
                completion(status_code(error), warden_protocol::Outcome::None)
            }
        }
    }

    /// A driver's `__device_del` from inside a callback on the parent.
    fn remove_child(
        &mut self,
        pd: PdId,
        callback: warden_protocol::CallbackId,
        child: warden_protocol::Handle,
    ) -> Message {
        let child = DeviceId::from_parts(child.index, child.generation);
        let callback = CallbackId::from_parts(callback.operation, callback.sequence);
        let name = self.compatible(child);
        let mut effects = Vec::new();
        let result = self
            .core
            .child_remove(pd, callback, child, &mut |effect| effects.push(effect));
        self.carry_out(effects);
        match result {
            Ok(()) => {
                info!(
                    "manager: driver PD {} removed child {}:{} ({name})",
                    pd.0,
                    child.index(),
                    child.generation()
                );
                completion(Status::Ok, warden_protocol::Outcome::None)
            }
            Err(error) => {
                warn!(
                    "manager: refused driver PD {}'s child removal: {error:?}",
                    pd.0
                );
                completion(status_code(error), warden_protocol::Outcome::None)
            }
        }
    }
}

/// A board device's resources as the core keeps them. What the protocol cannot carry to a
/// driver (an empty or wrapping window, an interrupt beyond the GIC's 0-1019, as a GICv3.1
/// extended SPI would be) is left out, with a word, so that every device in the tree can be
/// probed and listed; so is what does not fit the core's capacity.
fn board_resources(device: &warden_board::BoardDevice<'_>) -> Resources {
    let mut resources = Resources::default();
    for window in &device.mmio {
        let usable = window.size != 0 && window.base.checked_add(window.size - 1).is_some();
        let range = MmioRange {
            base: window.base,
            size: window.size,
        };
        if !usable || resources.mmio.push(range).is_err() {
            warn!(
                "manager: board node '{}': window {:#x}+{:#x} left out",
                device.path_name, window.base, window.size
            );
        }
    }
    for &irq in &device.irqs {
        if irq > warden_protocol::message::MAX_INTID || resources.irqs.push(irq).is_err() {
            warn!(
                "manager: board node '{}': interrupt {irq} left out (not a GIC INTID a driver \
                 can be given, or one too many)",
                device.path_name
            );
        }
    }
    resources
}

fn completion(status: Status, outcome: warden_protocol::Outcome) -> Message {
    Message::Completion {
        status,
        detail: 0,
        outcome,
    }
}

impl Handler for DeviceManager {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        for index in 0..self.drivers.len() {
            let Some(channel) = self.drivers.get(index).map(|driver| driver.channel) else {
                continue;
            };
            if !channels.contains(channel) {
                continue;
            }
            self.drain_driver_ring(index);
            // The driver also signals when it has made room on our ring.
            if let Some(driver) = self.drivers.get_mut(index) {
                if driver.to_driver.flush() {
                    channel.notify();
                }
            }
        }
        Ok(())
    }

    fn protected(
        &mut self,
        channel: Channel,
        message: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        let pd = PdId(u32::from(channel.index()));
        let client = interface::CLIENTS.contains(&channel.index());
        if !client && self.pd_index(pd).is_none() {
            return Ok(MessageInfo::new(0, 0));
        }
        let count = usize::from(message.count()).min(MAX_REGISTERS);
        let registers: Vec<u64> = (0..count).map(get_mr).collect();
        let info = warden_protocol::ppc::MessageInfo {
            label: message.label(),
            count: count as u16,
        };
        let decoded = decode_call(info, &registers);
        let reply = if client {
            self.client_call(channel, decoded)
        } else {
            self.driver_call(pd, decoded)
        };
        let mut out = [0u64; MAX_REGISTERS];
        let info = encode_call(&reply, &mut out).map_err(|_| "cannot encode a reply")?;
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
        warn!(
            "manager: driver PD {} faulted (label {}); cleaning up and restarting it",
            child.index(),
            message.label()
        );
        // Bring-up waits for it to register again.
        let pd = PdId(u32::from(child.index()));
        if let Some(driver) = self
            .pd_index(pd)
            .and_then(|index| self.drivers.get_mut(index))
        {
            driver.registered = false;
        }
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

impl DeviceManager {
    /// A call from a driver PD.
    fn driver_call(
        &mut self,
        pd: PdId,
        decoded: Result<Message, warden_protocol::DecodeError>,
    ) -> Message {
        match decoded {
            Ok(Message::Register { name, match_table }) => completion(
                self.register(pd, &name, &match_table),
                warden_protocol::Outcome::None,
            ),
            Ok(Message::AddChild {
                callback,
                parent,
                bus,
                match_data,
                resources,
            }) => self.add_child(pd, callback, parent, bus, &match_data, &resources),
            Ok(Message::RemoveChild { callback, child }) => self.remove_child(pd, callback, child),
            Ok(Message::Unbind { device }) => {
                info!(
                    "manager: driver PD {} lets go of device {}:{} ({})",
                    pd.0,
                    device.index,
                    device.generation,
                    self.compatible(DeviceId::from_parts(device.index, device.generation))
                );
                self.request(
                    Requester::Driver(pd),
                    Request::Unbind(DeviceId::from_parts(device.index, device.generation)),
                )
            }
            Ok(Message::Bind { device, driver }) => {
                info!(
                    "manager: driver PD {} asks to bind device {}:{} again",
                    pd.0, device.index, device.generation
                );
                self.request(
                    Requester::Driver(pd),
                    Request::Bind {
                        device: DeviceId::from_parts(device.index, device.generation),
                        driver: warden_manager_core::DriverId::from_parts(
                            driver.index,
                            driver.generation,
                        ),
                    },
                )
            }
            Ok(other) => {
                warn!(
                    "manager: unexpected call from driver PD {}: {other:?}",
                    pd.0
                );
                completion(Status::NotPermitted, warden_protocol::Outcome::None)
            }
            Err(error) => {
                warn!("manager: malformed call from driver PD {}: {error:?}", pd.0);
                completion(Status::Malformed, warden_protocol::Outcome::None)
            }
        }
    }

    /// A call from an administrative client (channel ids [`interface::CLIENTS`]): queries are
    /// answered from the core's state; `Unbind`, `Bind` and `Rescan` enter the core's queue as the
    /// client's requests, and the reply says whether they were accepted (their outcome is
    /// logged when they complete, and shows in the tree).
    fn client_call(
        &mut self,
        channel: Channel,
        decoded: Result<Message, warden_protocol::DecodeError>,
    ) -> Message {
        let requester = Requester::Client(u32::from(channel.index()));
        let refused = |status| completion(status, warden_protocol::Outcome::None);
        match decoded {
            Ok(Message::QueryTree { cursor }) => {
                let next = self
                    .core
                    .devices()
                    .find(|device| u64::from(device.index()) >= cursor);
                match next {
                    Some(device) => self.device_info(device),
                    None => refused(Status::NoSuchObject),
                }
            }
            Ok(Message::QueryDevice { device }) => {
                self.device_info(DeviceId::from_parts(device.index, device.generation))
            }
            Ok(Message::QueryDriver { driver }) => {
                let id = warden_manager_core::DriverId::from_parts(driver.index, driver.generation);
                match self.core.driver(id) {
                    Ok(info) => Message::DriverInfo {
                        driver,
                        pd: info.pd.0,
                        bound: info.bound_devices,
                        name: warden_protocol::DriverName::try_from(info.name).unwrap_or_default(),
                    },
                    Err(error) => refused(status_code(error)),
                }
            }
            Ok(Message::Unbind { device }) => {
                let device = DeviceId::from_parts(device.index, device.generation);
                info!(
                    "manager: client on channel {} asks to unbind device {}:{} ({})",
                    channel.index(),
                    device.index(),
                    device.generation(),
                    self.compatible(device)
                );
                self.request(requester, Request::Unbind(device))
            }
            Ok(Message::Bind { device, driver }) => {
                let device = DeviceId::from_parts(device.index, device.generation);
                info!(
                    "manager: client on channel {} asks to bind device {}:{} ({}) to driver {}:{}",
                    channel.index(),
                    device.index(),
                    device.generation(),
                    self.compatible(device),
                    driver.index,
                    driver.generation
                );
                let driver =
                    warden_manager_core::DriverId::from_parts(driver.index, driver.generation);
                self.request(requester, Request::Bind { device, driver })
            }
            Ok(Message::Rescan) => {
                info!(
                    "manager: client on channel {} asks for a rescan",
                    channel.index()
                );
                self.request(requester, Request::Rescan)
            }
            Ok(other) => {
                warn!(
                    "manager: call not offered to clients, from channel {}: {other:?}",
                    channel.index()
                );
                refused(Status::NotPermitted)
            }
            Err(error) => {
                warn!(
                    "manager: malformed call from the client on channel {}: {error:?}",
                    channel.index()
                );
                refused(Status::Malformed)
            }
        }
    }

    /// A device as a client sees it.
    fn device_info(&self, device: DeviceId) -> Message {
        let Ok(info) = self.core.device(device) else {
            return completion(Status::StaleHandle, warden_protocol::Outcome::None);
        };
        let (match_data, resources) = self.wire_description(device);
        Message::DeviceInfo {
            device: device_handle(device),
            parent: info.parent.map(device_handle),
            driver: info
                .driver
                .map(|driver| wire_handle(driver.index(), driver.generation())),
            state: match info.state {
                warden_manager_core::DeviceState::Active => warden_protocol::DeviceState::Active,
                warden_manager_core::DeviceState::Suspended => {
                    warden_protocol::DeviceState::Suspended
                }
                warden_manager_core::DeviceState::ShutDown => {
                    warden_protocol::DeviceState::ShutDown
                }
            },
            match_data,
            resources,
        }
    }

    /// A device's match data and resources in the protocol's types.
    fn wire_description(
        &self,
        device: DeviceId,
    ) -> (warden_protocol::MatchData, warden_protocol::Resources) {
        let mut match_data = warden_protocol::MatchData::default();
        let mut resources = warden_protocol::Resources::default();
        if let Ok(info) = self.core.device(device) {
            for name in &info.match_data.compatible {
                if let Ok(name) = warden_protocol::Compatible::try_from(name.as_str()) {
                    let _ = match_data.compatible.push(name);
                }
            }
            match_data.bus_id = info.match_data.bus_id;
            for window in &info.resources.mmio {
                let _ = resources.mmio.push(warden_protocol::MmioWindow {
                    address: window.base,
                    size: window.size,
                });
            }
            for irq in &info.resources.irqs {
                let _ = resources.irqs.push(*irq);
            }
        }
        (match_data, resources)
    }
}

/// The PD's `init`: the manager with the board's devices added.
#[must_use]
pub fn init() -> DeviceManager {
    info!("manager: device manager starting");
    DeviceManager::new()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use warden_board::{BoardDevice, Window};

    #[test]
    fn board_resources_leave_out_what_no_driver_can_be_given() {
        let window = |base, size| Window { base, size };
        let device = BoardDevice {
            path_name: "odd@0",
            depth: 1,
            parent: None,
            compatible: heapless::Vec::new(),
            mmio: heapless::Vec::from_slice(&[
                window(0x900_0000, 0x1000),
                window(0x1000, 0),
                window(u64::MAX, 2),
            ])
            .unwrap(),
            irqs: heapless::Vec::from_slice(&[33, 1019, 1020, 4096 + 5]).unwrap(),
            interrupt_parent_not_gic: false,
            enabled: true,
        };
        let resources = board_resources(&device);
        assert_eq!(
            resources.mmio.as_slice(),
            [MmioRange {
                base: 0x900_0000,
                size: 0x1000
            }]
        );
        assert_eq!(resources.irqs.as_slice(), [33, 1019]);
    }
}
