//! Hostile driver PDs, for the supervision tests (`scripts/supervision-test.sh`): each takes
//! the place of one of system.xml's driver PDs (`warden-host run --program PD=PROGRAM`), with
//! that PD's channels, rings and grant, and misbehaves in one way:
//!
//! | binary | in place of | misbehaviour |
//! |---|---|---|
//! | `hostile_hang` | rtc_driver | registers for the PL031 and never answers its probe |
//! | `hostile_panic` | rtc_driver | panics in every probe |
//! | `hostile_panic_init` | rtc_driver | panics in `init`, before it registers |
//! | `hostile_impostor` | rng_driver | registers for the console, the clock, the disks and the PCI host bridge, asks for every device's PCI host description, forges children with forwarded windows, and adds children under its entropy device until refused |
//! | `hostile_log_flood` | rng_driver | makes 10,000 malformed calls and 10,000 unbinds of others' devices, each a refusal the manager would log |
//! | `hostile_table_filler` | rng_driver | a second after it starts, registers drivers until the manager's table is full |
//! | `hostile_notify_flood` | rng_driver | registers, then notifies the manager in a tight loop for ever, answering its heartbeats between bursts |
//!
//! Each says what it does and what the manager answered, so the test reads both sides.

use alloc::format;
use log::{info, warn};
use warden_driver::{Answer, Callback, Driver, DriverPd, Probe};
use warden_microkit::{Channel, ChannelSet, Handler, MessageInfo};
use warden_protocol::{Message, Status};
use warden_services::call::call;
use warden_vocabulary::{
    BusId, Compatible, DeviceId, MatchData, MatchEntry, MatchTable, MmioWindow, Name, Outcome,
};

/// What a hostile driver does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Never answers a probe.
    HangInProbe,
    /// Panics in every probe.
    PanicInProbe,
    /// Adds children under its device in its probe until the manager refuses.
    ChildFlood,
    /// Accepts its probes (the filler's own device).
    Accept,
}

/// A hostile driver.
pub struct Hostile {
    name: &'static str,
    compatible: &'static [&'static str],
    bus: BusId,
    behaviour: Behaviour,
    /// The impostor forged PCI children and asked for every device's PCI host description
    /// (once, after its first flood: the manager's refusals would otherwise crowd the flood's
    /// out of its log).
    queried: bool,
}

fn hang() -> ! {
    loop {
        #[cfg(not(target_os = "none"))]
        std::thread::sleep(core::time::Duration::from_millis(100));
        #[cfg(target_os = "none")]
        core::hint::spin_loop();
    }
}

impl Driver for Hostile {
    fn name(&self) -> &str {
        self.name
    }

    fn compatible(&self) -> &[&str] {
        self.compatible
    }

    fn bus(&self) -> BusId {
        self.bus
    }

    fn probe(&mut self, probe: &Probe) -> Answer {
        match self.behaviour {
            Behaviour::HangInProbe => {
                warn!(
                    "hostile: probe of {}: never answering",
                    probe.callback.device
                );
                hang();
            }
            Behaviour::PanicInProbe => {
                warden_microkit::fatal(format_args!(
                    "hostile: probe of {}: panicking",
                    probe.callback.device
                ));
            }
            Behaviour::ChildFlood => {
                let mut added = 0;
                let refusal = loop {
                    let mut match_data = MatchData::default();
                    let _ = match_data
                        .compatible
                        .push(Compatible::try_from("virtio,device2").unwrap_or_default());
                    match probe.callback.add_child(
                        warden_driver::bus::VIRTIO,
                        match_data,
                        probe.resources.clone(),
                    ) {
                        Ok(_) => added += 1,
                        Err(status) => break status,
                    }
                    if added == 1000 {
                        break Status::Ok;
                    }
                };
                warn!(
                    "hostile: added {added} children under {} with one and the same window; then the manager answered {refusal:?}",
                    probe.callback.device
                );
                if !core::mem::replace(&mut self.queried, true) {
                    forge_pci_children(probe);
                    query_every_pci_host();
                }
                Answer::Ok
            }
            Behaviour::Accept => Answer::Ok,
        }
    }

    fn remove(&mut self, _callback: &Callback) -> Answer {
        Answer::Ok
    }
}

/// Children with forwarded windows the parent does not have (the host bridge's ECAM and an
/// aperture), and with more forwarded windows than windows: each refused.
fn forge_pci_children(probe: &Probe) {
    let mut outside = probe.resources.clone();
    let _ = outside.mmio.push(MmioWindow {
        base: 0x40_1000_0000,
        size: 0x1000_0000,
    });
    outside.forwarded = 1;
    let mut inconsistent = probe.resources.clone();
    inconsistent.forwarded = u8::try_from(inconsistent.mmio.len() + 1).unwrap_or(u8::MAX);
    for (what, resources) in [
        ("the ECAM forwarded", outside),
        ("more forwarded windows than windows", inconsistent),
    ] {
        let answer =
            probe
                .callback
                .add_child(warden_driver::bus::PCI, MatchData::default(), resources);
        info!("hostile: a child with {what}: {answer:?}");
    }
}

/// Asks for the PCI host description of every device the manager may hold (generation 0):
/// how many it was given, and the first refusal.
fn query_every_pci_host() {
    let mut given = 0;
    let mut refusals: alloc::vec::Vec<Status> = alloc::vec::Vec::new();
    for index in 0..128 {
        match warden_driver::query_pci_host(DeviceId::from_parts(index, 0)) {
            Ok(_) => given += 1,
            Err(status) => {
                if !refusals.contains(&status) {
                    refusals.push(status);
                }
            }
        }
    }
    info!(
        "hostile: asked 128 devices for their PCI host bridge: given {given}, refused {refusals:?}"
    );
}

/// A raw registration, as any PD may send it.
fn register(name: &str, bus: BusId, compatible: &str) -> Result<(), Status> {
    let mut match_table = MatchTable::default();
    let _ = match_table.entries.push(MatchEntry::Compatible(
        Compatible::try_from(compatible).unwrap_or_default(),
    ));
    let message = Message::Register {
        name: Name::try_from(name).unwrap_or_default(),
        bus,
        match_table,
        deadline_ms: 0,
    };
    match call(warden_driver::MANAGER, &message) {
        Ok(Message::Completion {
            status: Status::Ok,
            outcome: Outcome::Driver { .. },
            ..
        }) => Ok(()),
        Ok(Message::Completion { status, .. }) => Err(status),
        _ => Err(Status::Malformed),
    }
}

/// `hostile_hang`.
#[must_use]
pub fn hang_in_probe() -> DriverPd<Hostile> {
    DriverPd::start(Hostile {
        name: "hostile-hang",
        compatible: &["arm,pl031"],
        bus: warden_driver::bus::PLATFORM,
        queried: false,
        behaviour: Behaviour::HangInProbe,
    })
}

/// `hostile_panic`.
#[must_use]
pub fn panic_in_probe() -> DriverPd<Hostile> {
    DriverPd::start(Hostile {
        name: "hostile-panic",
        compatible: &["arm,pl031"],
        bus: warden_driver::bus::PLATFORM,
        queried: false,
        behaviour: Behaviour::PanicInProbe,
    })
}

/// `hostile_panic_init`.
#[must_use]
pub fn panic_in_init() -> DriverPd<Hostile> {
    warden_microkit::fatal(format_args!("hostile: panicking in init"));
}

/// `hostile_impostor`: claims what is not its own, then floods its own device with children.
#[must_use]
pub fn impostor() -> DriverPd<Hostile> {
    for (bus, compatible) in [
        (warden_driver::bus::PLATFORM, "arm,pl011"),
        (warden_driver::bus::PLATFORM, "arm,pl031"),
        (warden_driver::bus::VIRTIO, "virtio,device2"),
        (warden_driver::bus::PLATFORM, "pci-host-ecam-generic"),
    ] {
        let name = format!("impostor-{}", compatible.replace(',', "-"));
        match register(&name, bus, compatible) {
            Ok(()) => warn!("hostile: registered '{name}' for {compatible}: accepted"),
            Err(status) => info!("hostile: registered '{name}' for {compatible}: {status:?}"),
        }
    }
    DriverPd::start(Hostile {
        name: "impostor-rng",
        compatible: &["virtio,device4"],
        bus: warden_driver::bus::VIRTIO,
        queried: false,
        behaviour: Behaviour::ChildFlood,
    })
}

/// `hostile_log_flood`: registers, then makes call after call the manager refuses, each
/// refusal a line the manager would log (until the supervisor stops it for not answering its
/// heartbeats, and again after each restart).
#[must_use]
pub fn log_flood() -> DriverPd<Hostile> {
    let pd = DriverPd::start(Hostile {
        name: "flooder-rng",
        compatible: &["virtio,device4"],
        bus: warden_driver::bus::VIRTIO,
        queried: false,
        behaviour: Behaviour::Accept,
    });
    warn!("hostile: 10,000 malformed calls and 10,000 unbinds of devices not mine");
    for round in 0..10_000u32 {
        let _ = warden_driver::MANAGER.pp_call(warden_microkit::MessageInfo::new(0x7fff, 0));
        let _ = warden_driver::unbind(DeviceId::from_parts(38 + round % 2, 0));
    }
    warn!("hostile: flood done");
    pd
}

/// Notifications a flood burst makes before the flooder looks at its ring again.
const FLOOD_BURST: u32 = 1_000;

/// `hostile_notify_flood`: registers, then never leaves `init`: it notifies the manager (its
/// peer) in a tight loop, and between bursts of [`FLOOD_BURST`] it runs its ring as if notified,
/// so it answers the manager's callbacks and heartbeats and is never taken for hung. Every
/// 100,000 notifications it says how many it made.
pub fn notify_flood() -> DriverPd<Hostile> {
    let mut pd = DriverPd::start(Hostile {
        name: "flooder-rng",
        compatible: &["virtio,device4"],
        bus: warden_driver::bus::VIRTIO,
        queried: false,
        behaviour: Behaviour::Accept,
    });
    warn!("hostile: notifying the manager in a tight loop");
    let mut sent: u64 = 0;
    loop {
        for _ in 0..FLOOD_BURST {
            warden_driver::MANAGER.notify();
        }
        sent += u64::from(FLOOD_BURST);
        if sent % 100_000 == 0 {
            warn!("hostile: {sent} notifications so far");
        }
        let manager = ChannelSet::from_bits(1 << warden_driver::MANAGER.index());
        if pd.notified(manager).is_err() {
            warn!("hostile: the ring failed");
        }
    }
}

/// `hostile_table_filler`: a second after it starts (the others have registered by then), it
/// takes every free slot of the manager's driver table, and takes again whatever frees up
/// whenever the manager tells it there is room.
#[must_use]
pub fn table_filler() -> Filler {
    #[cfg(not(target_os = "none"))]
    std::thread::sleep(core::time::Duration::from_secs(1));
    let mut filler = Filler {
        pd: DriverPd::start(Hostile {
            name: "filler-rng",
            compatible: &["virtio,device4"],
            bus: warden_driver::bus::VIRTIO,
            queried: false,
            behaviour: Behaviour::Accept,
        }),
        taken: 0,
    };
    filler.fill();
    filler
}

/// The table filler: a driver PD that registers drivers until the table is full.
pub struct Filler {
    pd: DriverPd<Hostile>,
    taken: u32,
}

impl Filler {
    fn fill(&mut self) {
        let before = self.taken;
        let refusal = loop {
            match register(
                &format!("filler-{}", self.taken),
                warden_driver::bus::VIRTIO,
                "virtio,device4",
            ) {
                Ok(()) => self.taken += 1,
                Err(status) => break status,
            }
            if self.taken >= 1000 {
                break Status::Ok;
            }
        };
        if self.taken > before {
            warn!(
                "hostile: registered {} more drivers ({} in all); then the manager answered {refusal:?}",
                self.taken - before,
                self.taken
            );
        }
    }
}

impl Handler for Filler {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        self.pd.notified(channels)?;
        if channels.contains(warden_driver::MANAGER) {
            self.fill();
        }
        Ok(())
    }

    fn protected(
        &mut self,
        channel: Channel,
        message: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        self.pd.protected(channel, message)
    }
}
