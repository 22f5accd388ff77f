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
//! against its authority by the core: the devices the system description gives the PD (its
//! grants, embedded at build time: `build.rs`) are the only ones it may register for and be
//! bound to.
//!
//! **Supervision** ([`supervision`]). Every driver PD is supervised: a fault, a callback past
//! its deadline, a heartbeat not answered, or no registration after a start makes it fail; it
//! is stopped, cleaned up after (`pd_died`: its callbacks fail, its devices are unbound, its
//! drivers removed), and restarted with both rings reset — at once after its first failure,
//! then after a doubling backoff, and quarantined after five failures in a row until a client
//! retries it. Time comes from the timer PD (channel 24). Lines a driver's messages cause are
//! rate-limited ([`peer_log`]).
//!
//! **Clients** ([`clients`]). A PD of lower priority may call the manager on its channels
//! 16–23 ([`interface::CLIENTS`]), as the shell does: the server half of
//! `warden_services::admin`. Such a client has the administrator's authority over every device;
//! the system description decides who gets a client channel.
//!
//! **Buses.** Six, created in this order so their handles are fixed
//! (`warden_protocol::bus::FIXED`): `platform` (the board's memory-mapped devices), `virtio`
//! (devices found behind virtio-mmio transports), `i2c`, `spi` and `mdio` (the board's devices
//! on controllers of those kinds, at their addresses there) and `pci` (the functions PCI host
//! bridges' drivers find); a board naming another kind of bus
//! that is not memory-mapped gets one of that name, while there is room ([`BUSES`]). A driver
//! names its bus when it registers.
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
pub mod events;
pub mod peer_log;
pub mod report;
pub mod supervision;
pub mod trace;

use alloc::boxed::Box;
use alloc::vec::Vec;
use log::{info, warn};

use warden_manager_core::{
    ChangeKind, Config, Effect, Error, PdId, Policy, Request, RequestId, Requester,
};
use warden_microkit::{Channel, ChannelSet, Child, Handler, MessageInfo};
use warden_protocol::{not_permitted, Message, Status};
use warden_services::call;
use warden_vocabulary::{BusId, DeviceId, Outcome, PciHostInfo};

/// What this PD expects of the system description.
pub mod interface {
    pub use warden_interface::device_manager::{
        CLIENTS, DRIVER_PDS, DRIVER_RINGS_VADDR, DRIVER_RING_SIZE, TIMER,
    };

    /// The setvar symbols of driver PD `n`'s rings: (vaddr symbol, size symbol), manager →
    /// driver then driver → manager (warden-sysgen names the regions and symbols so).
    #[must_use]
    pub fn driver_regions(n: u8) -> [(alloc::string::String, alloc::string::String); 2] {
        use alloc::format;
        [
            (format!("to_driver{n}"), format!("to_driver{n}_size")),
            (format!("from_driver{n}"), format!("from_driver{n}_size")),
        ]
    }
}

/// Drivers the core has room for.
pub const DRIVERS: usize = 16;

/// Devices the core has room for: a board's (QEMU virt has 46), the virtio-mmio bridge's
/// children (one per transport: 32) and one more PD's quota of added devices
/// ([`Config::devices_per_pd`]), so one hostile driver cannot fill the table.
pub const DEVICES: usize = 128;

/// Buses the core has room for: the six fixed ones and ten more kinds a board may name (of
/// the 576 arm64 trees of Debian's Linux 6.1, the most besides the fixed ones is 7: a
/// Qualcomm board's `pmic`, `spmi`, `fastrpc`, `apr`… each a bus of its own).
pub const BUSES: usize = 16;

pub(crate) type Core = warden_manager_core::Manager<DEVICES, DRIVERS, BUSES, 32>;

/// The device-manager PD's handler.
pub struct DeviceManager {
    core: Box<Core>,
    platform: BusId,
    drivers: Vec<drivers::DriverLink>,
    report: report::Report,
    supervisor: supervision::Supervisor,
    clock: supervision::Clock,
    subscribers: events::Subscribers,
    ring: trace::Ring,
    /// The board's PCI host bridges, as their drivers ask for them (`QueryPciHost`).
    pci_hosts: Vec<(DeviceId, PciHostInfo)>,
}

/// The wire status of a refusal by the core.
fn status_of(error: Error) -> Status {
    match error {
        Error::StaleDevice | Error::StaleDriver | Error::StaleBus => Status::StaleHandle,
        Error::NoSuchCallback => Status::NoSuchObject,
        Error::NotPermitted | Error::NotGranted | Error::OverQuota => Status::NotPermitted,
        Error::NoSpace => Status::NoSpace,
        Error::Busy => Status::Busy,
        Error::NoMatch => Status::NoMatch,
        Error::ParentSuspended => Status::ParentSuspended,
        Error::CallbackFailed(_) => Status::Failed,
        Error::DriverDied => Status::Died,
        Error::ShutDown => Status::ShutDown,
    }
}

/// A refusal by the core on the wire: its status, and the detail (for `NotPermitted`, why;
/// for `Failed`, the driver's code).
fn status_and_detail(error: Error) -> (Status, u16) {
    let detail = match error {
        Error::NotGranted => not_permitted::NOT_GRANTED,
        Error::OverQuota => not_permitted::OVER_QUOTA,
        Error::CallbackFailed(code) => code,
        _ => not_permitted::UNSPECIFIED,
    };
    (status_of(error), detail)
}

/// A refusal by the core as a completion.
fn refusal(error: Error) -> Message {
    let (status, detail) = status_and_detail(error);
    Message::Completion {
        status,
        detail,
        outcome: Outcome::Done,
    }
}

impl DeviceManager {
    fn new() -> Self {
        let mut core = Box::new(Core::new(Config::PER_DEVICE));
        for (name, fixed) in warden_protocol::bus::FIXED {
            if core.add_bus(name) != Ok(fixed) {
                warden_microkit::fatal(format_args!("manager: cannot create the {name} bus"));
            }
        }
        let platform = warden_protocol::bus::PLATFORM;
        let clock = supervision::Clock::new(interface::TIMER);
        let now = clock.now();
        core.advance_to(now);
        let drivers = drivers::links();
        let mut supervisor = supervision::Supervisor::new(Policy::DEFAULT);
        for link in &drivers {
            supervisor.supervise(PdId(u32::from(link.channel.index())), now);
        }
        for (id, grant) in supervision::grants() {
            let Ok(pd) = u32::try_from(id) else { continue };
            if core.grant(PdId(pd), grant).is_err() {
                log::warn!("manager: no room for driver PD {pd}'s grant");
            }
        }
        let mut manager = Self {
            core,
            platform,
            drivers,
            report: report::Report::new(),
            supervisor,
            clock,
            subscribers: events::Subscribers::default(),
            ring: trace::Ring::default(),
            pci_hosts: Vec::new(),
        };
        manager.load_board();
        manager.report.loaded(&manager.core);
        manager.end_event();
        manager
    }

    /// Submits a request to the core and carries out what it does. `Ok(Some(outcome))` if
    /// the core decided it inside `submit`, `Ok(None)` while it is under way, `Err` for a
    /// refusal, at the door or decided at once.
    fn submit(&mut self, requester: Requester, request: Request) -> Result<Option<Outcome>, Error> {
        self.submit_request(requester, request)
            .map(|(_, decided)| decided)
    }

    /// [`Self::submit`], with the request's id.
    fn submit_request(
        &mut self,
        requester: Requester,
        request: Request,
    ) -> Result<(RequestId, Option<Outcome>), Error> {
        let mut effects = Vec::new();
        let traced = trace::describe(&request);
        let id = self
            .core
            .submit(requester, request, &mut |effect| effects.push(effect));
        if let Ok(id) = id {
            let now = self.core.now();
            self.ring.record(now, trace::request_arrived(id, traced));
        }
        let decided = id.as_ref().ok().and_then(|id| {
            effects.iter().find_map(|effect| match effect {
                Effect::Complete(done) if done.request == *id => Some(done.result),
                _ => None,
            })
        });
        self.carry_out(effects);
        let id = id?;
        decided.transpose().map(|decided| (id, decided))
    }

    /// Sends the callbacks, reports the completions, then logs what changed in the tree.
    fn carry_out(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Callback(callback) => self.send_callback(&callback),
                // Subscribed clients are told every change. The report logs additions,
                // removals and bindings by comparing the tree with what it last saw; power
                // changes are logged as the core reports them.
                Effect::Changed(change) => {
                    self.subscribers.changed(&change);
                    let what = match change.kind {
                        ChangeKind::Suspended => "suspended",
                        ChangeKind::Resumed => "resumed",
                        ChangeKind::ShutDown => "shut down",
                        _ => continue,
                    };
                    info!(
                        "manager: device {} ({}) {what}",
                        change.device,
                        report::compatible(&self.core, change.device)
                    );
                }
                Effect::Complete(completion) => {
                    let status = match completion.result {
                        Ok(_) => 0,
                        Err(error) => status_of(error) as u16,
                    };
                    let now = self.core.now();
                    self.ring
                        .record(now, trace::request_completed(&completion, status));
                    if let Requester::Client(channel) = completion.requester {
                        if let Ok(channel) = u8::try_from(channel) {
                            self.subscribers.completed(channel, &completion);
                        }
                    }
                    // A driver's failed requests are lines it causes: rate-limited.
                    let allowed = match completion.requester {
                        Requester::Driver(pd) if completion.result.is_err() => {
                            let now = self.core.now();
                            self.link(pd)
                                .and_then(|index| self.drivers.get_mut(index))
                                .is_none_or(|link| link.log.allow(now))
                        }
                        _ => true,
                    };
                    if allowed {
                        self.report.completed(&completion);
                    }
                }
            }
        }
        // Bring-up is over once every driver PD registered, or was given up on.
        let supervisor = &self.supervisor;
        let bring_up_done = self.drivers.iter().all(|driver| {
            driver.registered
                || supervisor
                    .status(PdId(u32::from(driver.channel.index())))
                    .is_some_and(|status| status.phase == warden_manager_core::Phase::Quarantined)
        });
        self.report.changed(&self.core, bring_up_done);
        self.offer_room();
    }
}

impl Handler for DeviceManager {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        self.start_event();
        for index in 0..self.drivers.len() {
            let Some(channel) = self.drivers.get(index).map(|driver| driver.channel) else {
                continue;
            };
            if channels.contains(channel) {
                self.driver_notified(index);
            }
        }
        // The timer's notification needs nothing of its own: every event ends with the
        // supervisor's tick.
        self.end_event();
        Ok(())
    }

    fn protected(
        &mut self,
        channel: Channel,
        message: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        // The call's registers are read before anything else, and the reply's written after
        // everything else: asking the timer for the time is a call too, and it would
        // overwrite them.
        let decoded = call::receive(message);
        self.start_event();
        let reply = if interface::CLIENTS.contains(&channel.index()) {
            Some(self.client_call(channel, decoded))
        } else {
            let pd = PdId(u32::from(channel.index()));
            self.link(pd).map(|_| self.driver_call(pd, decoded))
        };
        self.end_event();
        Ok(reply.map_or(MessageInfo::new(0, 0), |reply| call::reply(&reply)))
    }

    fn fault(
        &mut self,
        child: Child,
        message: MessageInfo,
    ) -> Result<Option<MessageInfo>, Self::Error> {
        let now = self.start_event();
        let pd = PdId(u32::from(child.index()));
        warn!(
            "manager: driver PD {} faulted (label {}); cleaning up",
            child.index(),
            message.label()
        );
        self.driver_died(pd);
        let mut actions = Vec::new();
        self.supervisor
            .faulted(pd, message.label(), now, &mut |action| actions.push(action));
        self.perform(actions);
        self.end_event();
        Ok(None)
    }
}

/// The PD's `init`: the manager with the board's devices added.
#[must_use]
pub fn init() -> DeviceManager {
    info!("manager: device manager starting");
    DeviceManager::new()
}
