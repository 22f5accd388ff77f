//! The device-manager PD: the daemon of the 2005 reply, running `warden-manager-core`.
//!
//! **The board** ([`board`]). The initial device tree is the board's device tree blob, embedded
//! at build time (`build.rs`: the DTB QEMU dumps for `qemu_virt_aarch64`,
//! `platform/odroidc4/board.dts` for the Odroid C4; `WARDEN_BOARD_DTB` overrides at build time,
//! and on the host platform the launcher names its board's blob to the manager at run time).
//! Every node with a `compatible` becomes a device on the platform bus, under its nearest device
//! ancestor, with its compatible strings, physical MMIO windows and GIC INTIDs; nodes no driver
//! claims stay in the tree, unbound. A node the board crate cannot describe, or one more than
//! the core has room for, is reported and left out; the manager goes on with the rest.
//!
//! **Driver PDs** ([`drivers`]). Up to eight, each this PD's child `n` (1–8) on channel `n`,
//! with a ring pair `to_drivern` / `from_drivern` (setvar symbols; the driver side's are in
//! `warden-driver`). A driver PD calls `protected` to register (`Register`, naming its bus),
//! and from inside a probe or resume to add or remove children (`AddChild`, the `__device_add`
//! path, and `RemoveChild`); it answers callbacks with `CallbackDone` on its ring. Whatever a
//! driver sends is decoded and checked (`warden-protocol`), and what it asks for is checked
//! against its authority by the core. A driver PD that faults is cleaned up (`pd_died`: its
//! callbacks fail, its devices are unbound, its drivers removed) and restarted.
//!
//! **Clients** ([`clients`]). A PD of lower priority may call the manager on its channels
//! 16–23 ([`interface::CLIENTS`]), as the shell does: the server half of
//! `warden_services::admin`. Such a client has the administrator's authority over every device;
//! the system description decides who gets a client channel.
//!
//! **Buses.** Two, created in this order so their handles are fixed
//! (`warden_driver::bus`): `platform` (the board's devices) and `virtio` (devices found behind
//! virtio-mmio transports). A driver names its bus when it registers.
//!
//! **The log** ([`report`]): one line per change to the tree (a device added, bound, unbound,
//! removed) and per driver PD's fault; the whole tree once, at the end of bring-up (when every
//! driver PD has asked to register and the manager is idle).
//!
//! The crate is `no_std` + `alloc` so the same code runs on seL4 and on the host; `main.rs` is
//! the PD binary. The channel ids and setvar symbols it uses are in [`interface`], which a test
//! of `warden-host` checks against the system descriptions.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod board;
pub mod clients;
pub mod drivers;
pub mod report;

use alloc::boxed::Box;
use alloc::vec::Vec;
use log::{info, warn};

use warden_manager_core::{Config, Effect, Error, PdId, Request, Requester};
use warden_microkit::{Channel, ChannelSet, Child, Handler, MessageInfo};
use warden_protocol::Status;
use warden_services::call;
use warden_vocabulary::{BusId, Outcome};

/// What this PD expects of the system description.
pub mod interface {
    /// Driver PDs: child id and channel id `n` for `n` in 1..=8.
    pub const DRIVER_PDS: core::ops::RangeInclusive<u8> = 1..=8;
    /// Administrative clients (the shell): channel ids 16..=23, on which a PD of lower
    /// priority calls the manager (`warden_services::admin`).
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

type Core = warden_manager_core::Manager<96, 16, 2, 32>;

/// The device-manager PD's handler.
pub struct DeviceManager {
    core: Box<Core>,
    platform: BusId,
    virtio: BusId,
    drivers: Vec<drivers::DriverLink>,
    report: report::Report,
}

/// The wire status of a refusal by the core.
fn status_of(error: Error) -> Status {
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
        let platform = core.add_bus("platform");
        let virtio = core.add_bus("virtio");
        let (Ok(platform), Ok(virtio)) = (platform, virtio) else {
            warden_microkit::fatal(format_args!("manager: cannot create the buses"));
        };
        let mut manager = Self {
            core,
            platform,
            virtio,
            drivers: drivers::links(),
            report: report::Report::new(),
        };
        manager.load_board();
        manager.report.loaded(&manager.core);
        manager
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

    /// Sends the callbacks, reports the completions, then logs what changed in the tree.
    fn carry_out(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Callback(callback) => self.send_callback(&callback),
                Effect::Complete(completion) => self.report.completed(&completion),
            }
        }
        let bring_up_done = self.drivers.iter().all(|driver| driver.registered);
        self.report.changed(&self.core, bring_up_done);
    }
}

impl Handler for DeviceManager {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        for index in 0..self.drivers.len() {
            let Some(channel) = self.drivers.get(index).map(|driver| driver.channel) else {
                continue;
            };
            if channels.contains(channel) {
                self.driver_notified(index);
            }
        }
        Ok(())
    }

    fn protected(
        &mut self,
        channel: Channel,
        message: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        let decoded = call::receive(message);
        let reply = if interface::CLIENTS.contains(&channel.index()) {
            self.client_call(channel, decoded)
        } else {
            let pd = PdId(u32::from(channel.index()));
            if self.link(pd).is_none() {
                return Ok(MessageInfo::new(0, 0));
            }
            self.driver_call(pd, decoded)
        };
        Ok(call::reply(&reply))
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
        self.driver_died(PdId(u32::from(child.index())));
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
