//! The driver side of Warden's protocol, written once: [`DriverPd`] turns a [`Driver`] into a
//! Microkit protection domain, the generic adapter of rust-sel4's driver crates.
//!
//! A driver PD follows one convention in the system description (checked by `warden-host`'s
//! system-description test): channel 0 is the device manager (the driver's end may call it,
//! `pp="true"`), and two rings are mapped with `setvar_vaddr="from_manager"
//! setvar_size="from_manager_size"` (manager → driver) and `setvar_vaddr="to_manager"
//! setvar_size="to_manager_size"` (driver → manager). The driver PD is a child of the manager,
//! which restarts it when it faults.
//!
//! What the adapter does: in `init` it maps the rings and registers the driver's name, match
//! table and callback deadline with the manager (a protected procedure call, answered at once
//! with the driver's handle or the refusal; a full driver table is tried again at the
//! manager's next notification); then it decodes every callback on the manager's ring, calls
//! the driver, and answers `CallbackDone` (queued in an [`Outbox`](warden_protocol::Outbox)
//! while the ring is full: a lost answer would leave the device locked), and answers each
//! heartbeat (`Ping`) with `Alive`. Everything else that reaches the PD (device interrupts,
//! client channels, calls from clients) goes to the driver. Messages from the manager are
//! decoded and checked like any other untrusted input; a malformed one (or a malformed slot)
//! is logged and skipped.
//!
//! A driver that takes longer than its deadline to answer a callback, or does not answer a
//! heartbeat while idle, is taken for hung: the manager stops its PD, cleans up after it and
//! restarts it (with a backoff, and a quarantine after repeated failures). On the host
//! platform the launcher can inject faults ([`Handler::inject`](warden_microkit::Handler)):
//! a hang or a panic in the next callback (the PD lets go of one of its devices and asks for
//! it back to bring one about), a malformed slot on the manager's ring, a notification flood.
//!
//! Inside `probe` (and `resume`), the callback holds the device's lock, so the driver may add
//! children under it with [`Callback::add_child`] (`__device_add`) and remove idle ones with
//! [`Callback::remove_child`] (`__device_del`): synchronous calls into the manager, which has a
//! higher priority, as the Microkit requires of a call.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod console;
mod pd;

pub use pd::DriverPd;

use warden_microkit::{Channel, ChannelSet, MessageInfo};
use warden_protocol::{Message, Status};
use warden_services::call::call;
pub use warden_vocabulary::Answer;
use warden_vocabulary::{
    BusId, CallbackId, DeviceId, DriverId, MatchData, MmioWindow, Outcome, PciHostInfo, Resources,
};

/// The channel to the device manager, in every driver PD.
pub const MANAGER: Channel = warden_interface::driver::MANAGER;
/// The setvar symbols of the two rings every driver PD maps: (vaddr symbol, size symbol).
pub const MANAGER_REGIONS: [(&str, &str); 2] = [
    warden_interface::driver::FROM_MANAGER,
    warden_interface::driver::TO_MANAGER,
];

/// The bus handles the manager gives the buses it creates (in this order, at start-up).
pub use warden_protocol::bus;

/// A callback in flight: it holds the device's lock until the driver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Callback {
    /// Its id (quoted to the manager).
    pub id: CallbackId,
    /// The device.
    pub device: DeviceId,
}

/// A probe: the device, what it is and its resources, in physical terms (MMIO windows at
/// physical addresses, GIC INTIDs). The driver finds them in its own maps and IRQs.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The callback (for [`Callback::add_child`]).
    pub callback: Callback,
    /// The driver handle the manager probes with (a PD may host several drivers).
    pub driver: DriverId,
    /// Compatible strings and bus id.
    pub match_data: MatchData,
    /// MMIO windows and interrupts.
    pub resources: Resources,
}

/// A PCI function's registers, as Warden's PCI host bridge driver gives a function: its 4 KiB
/// of configuration space (its first window) and its placed BARs (the windows after it, one
/// per BAR with an address, in BAR order), each found in one of the driver's maps.
#[derive(Debug)]
pub struct PciFunctionRegisters {
    /// The configuration space.
    pub config: warden_microkit::DeviceRegisters,
    /// BARs by index (`None`: no BAR there, or not in the driver's maps); the upper half of a
    /// 64-bit BAR is `None`.
    pub bars: [Option<warden_microkit::DeviceRegisters>; 6],
}

/// Which BAR registers of `config` (a function's configuration space) hold an address: the
/// BARs a function is given windows for, in this order (Warden's host bridge driver clears
/// the BARs it does not place). The upper half of a 64-bit BAR is skipped; a register that
/// reads all ones (nothing answering) holds none. A function whose BARs do not keep what is
/// written was not given them.
#[must_use]
pub fn placed_bars<R: warden_microkit::Registers>(config: &R) -> [bool; 6] {
    let mut placed = [false; 6];
    let mut index = 0;
    while index < 6 {
        let low = config.read32(0x10 + 4 * index);
        let io = low & 1 != 0;
        let wide = !io && (low >> 1) & 0b11 == 0b10;
        let high = if wide && index < 5 {
            config.read32(0x10 + 4 * (index + 1))
        } else {
            0
        };
        let address = if io {
            u64::from(low & !0x3)
        } else {
            u64::from(low & !0xf) | (u64::from(high) << 32)
        };
        if let Some(slot) = placed.get_mut(index) {
            *slot = address != 0 && low != u32::MAX;
        }
        index += if wide { 2 } else { 1 };
    }
    placed
}

impl Probe {
    /// The registers of the PCI function being probed ([`PciFunctionRegisters`]), found in
    /// `regions`; `None` when its configuration space is in none of them.
    #[must_use]
    pub fn pci_function(
        &self,
        regions: &[Option<warden_microkit::DeviceRegion>],
    ) -> Option<PciFunctionRegisters> {
        let config = self.registers(regions)?;
        let placed = placed_bars(&config);
        let resources = self.resources.as_ref();
        let mut given = resources.registers().iter().skip(1);
        let mut bars: [Option<warden_microkit::DeviceRegisters>; 6] =
            core::array::from_fn(|_| None);
        for (bar, placed) in bars.iter_mut().zip(placed) {
            if placed {
                *bar = given.next().and_then(|window| {
                    regions
                        .iter()
                        .flatten()
                        .find_map(|region| region.registers(*window))
                });
            }
        }
        Some(PciFunctionRegisters { config, bars })
    }

    /// The most specific compatible string.
    #[must_use]
    pub fn compatible(&self) -> &str {
        self.match_data.first_compatible().unwrap_or("?")
    }

    /// The device's first MMIO window.
    #[must_use]
    pub fn window(&self) -> Option<MmioWindow> {
        self.resources.mmio.first().copied()
    }

    /// The registers of the device's first MMIO window, found in one of `regions` (the
    /// device maps this PD's system description grants it); `None` when the device has no
    /// window or none of the maps holds it (the PD was not given this device).
    #[must_use]
    pub fn registers(
        &self,
        regions: &[Option<warden_microkit::DeviceRegion>],
    ) -> Option<warden_microkit::DeviceRegisters> {
        let window = self.window()?;
        regions
            .iter()
            .flatten()
            .find_map(|region| region.registers(window))
    }
}

/// A second driver in a driver's PD ([`Driver::companion`]).
#[derive(Clone, Copy, Debug)]
pub struct Companion {
    /// Its name (at most 32 bytes).
    pub name: &'static str,
    /// Its bus.
    pub bus: BusId,
    /// The compatible strings it binds to (1–8).
    pub compatible: &'static [&'static str],
}

/// What a driver implements. Callbacks run one at a time, each holding its device's lock.
pub trait Driver {
    /// The driver's name (at most 32 bytes).
    fn name(&self) -> &str;
    /// The compatible strings it binds to (1–8).
    fn compatible(&self) -> &[&str];
    /// The bus whose devices it serves ([`bus`]).
    fn bus(&self) -> BusId {
        bus::PLATFORM
    }
    /// A second driver this PD hosts, registered after this one, whose callbacks also come
    /// to this driver's methods ([`Probe::driver`] tells which was probed): a bridge's driver
    /// that also drives the bridges it finds, on another bus (a PCI host bridge's driver and
    /// its root ports'), with the state they share. `None` by default.
    fn companion(&self) -> Option<Companion> {
        None
    }
    /// How long its callbacks may take before the manager takes it for hung (`None`: the
    /// manager's default, 500 ms).
    fn deadline(&self) -> Option<core::time::Duration> {
        None
    }
    /// Bind to a device: find its registers, reset it, start it.
    fn probe(&mut self, probe: &Probe) -> Answer;
    /// Let go of a device: stop it and forget it (children first: the manager removes a
    /// device's children before its own remove).
    fn remove(&mut self, callback: &Callback) -> Answer;
    /// Quiesce a device for power-off.
    fn shutdown(&mut self, callback: &Callback) -> Answer {
        let _ = callback;
        Answer::Ok
    }
    /// Enter a low-power state.
    fn suspend(&mut self, callback: &Callback) -> Answer {
        let _ = callback;
        Answer::Ok
    }
    /// Leave it.
    fn resume(&mut self, callback: &Callback) -> Answer {
        let _ = callback;
        Answer::Ok
    }
    /// Channels other than the manager's were signalled (device interrupts, clients).
    fn notified(&mut self, channels: ChannelSet) {
        let _ = channels;
    }
    /// A protected procedure call from a client (not the manager's channel). The default
    /// answers an empty message.
    fn protected(&mut self, channel: Channel, message: MessageInfo) -> MessageInfo {
        let _ = (channel, message);
        MessageInfo::new(0, 0)
    }
}

/// Calls the manager; a reply that cannot be had is `Status::Malformed`.
pub(crate) fn call_manager(message: &Message) -> Result<Message, Status> {
    call(MANAGER, message).map_err(|_| Status::Malformed)
}

impl Callback {
    /// `__device_add`: adds a child under this callback's device (which the callback holds
    /// locked), on `bus` ([`bus`]); the manager probes it like any new device. Returns the
    /// child's handle.
    ///
    /// # Errors
    /// The manager's status (`NotPermitted` outside a probe/resume, `NoSpace`, …).
    pub fn add_child(
        &self,
        bus: BusId,
        match_data: MatchData,
        resources: Resources,
    ) -> Result<DeviceId, Status> {
        let message = Message::AddChild {
            callback: self.id,
            parent: self.device,
            bus,
            match_data,
            resources,
        };
        match call_manager(&message)? {
            Message::Completion {
                status: Status::Ok,
                outcome: Outcome::Device { device, .. },
                ..
            } => Ok(device),
            Message::Completion { status, .. } if status != Status::Ok => Err(status),
            _ => Err(Status::Malformed),
        }
    }

    /// `__device_del`: removes an idle child of this callback's device.
    ///
    /// # Errors
    /// The manager's status (`Busy` if the child is bound, `NotPermitted`, …).
    pub fn remove_child(&self, child: DeviceId) -> Result<(), Status> {
        let message = Message::RemoveChild {
            callback: self.id,
            child,
        };
        match call_manager(&message)? {
            Message::Completion {
                status: Status::Ok, ..
            } => Ok(()),
            Message::Completion { status, .. } => Err(status),
            _ => Err(Status::Malformed),
        }
    }
}

/// Lets go of `device`, which is bound to a driver of this PD (Linux
/// `device_release_driver`): the manager removes the children its probe added, then calls this
/// driver's `remove` — later, on the ring, since the device's lock may be busy.
///
/// # Errors
/// The manager's status (`NotPermitted` if the device is not bound to this PD).
pub fn unbind(device: DeviceId) -> Result<(), Status> {
    expect_ok(call_manager(&Message::Unbind { device })?)
}

/// Asks the manager to bind `device` to `driver`, one of this PD's drivers (`device_attach`):
/// the probe waits for the device's lock, so after [`unbind`] it re-probes the device.
///
/// # Errors
/// The manager's status (`NotPermitted` if `driver` is not this PD's).
pub fn bind(device: DeviceId, driver: DriverId) -> Result<(), Status> {
    expect_ok(call_manager(&Message::Bind { device, driver })?)
}

/// The description of PCI host bridge `device` (its buses, apertures and INTx routes), which
/// this PD's system description gives it or which is bound to one of its drivers.
///
/// # Errors
/// The manager's status (`NotPermitted`: not this PD's; `NoSuchObject`: no host bridge).
pub fn query_pci_host(device: DeviceId) -> Result<PciHostInfo, Status> {
    match call_manager(&Message::QueryPciHost { device })? {
        Message::PciHost { device: of, host } if of == device && host.is_valid() => Ok(host),
        Message::Completion { status, .. } if status != Status::Ok => Err(status),
        _ => Err(Status::Malformed),
    }
}

fn expect_ok(reply: Message) -> Result<(), Status> {
    match reply {
        Message::Completion {
            status: Status::Ok, ..
        } => Ok(()),
        Message::Completion { status, .. } => Err(status),
        _ => Err(Status::Malformed),
    }
}
