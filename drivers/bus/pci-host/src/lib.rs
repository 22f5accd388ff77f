//! The PCI host bridge driver PD: the seed's own bridge, "a PCI SCSI adapter driver that
//! registers the SCSI host device during its probe routine", one level up.
//!
//! It hosts two drivers that share one enumeration:
//! - **`pci-host-ecam`** binds `pci-host-ecam-generic`. Its probe, which holds the bridge's
//!   lock, asks the manager for the bridge's description (`QueryPciHost`: buses, apertures
//!   and their bus addresses, INTx routes, from the board's `bus-range`, `ranges` and
//!   `interrupt-map`), enumerates the hierarchy through the ECAM window (`warden-pci`: BARs
//!   sized and placed in the apertures, bridges numbered and their windows programmed,
//!   hot-plug slots given reserves), and adds every function of the root bus as a child on
//!   the `pci` bus through `__device_add`.
//! - **`pci-bridge`** (the companion, on the `pci` bus) binds the bridges it added
//!   (`pciclass,0604`: root ports and PCI-to-PCI bridges). Its probe, holding the bridge's
//!   lock, adds the functions behind it as the bridge's children, so a function behind a root
//!   port is that port's child in the tree, and removing the port removes it first.
//!
//! A function's resources are its 4 KiB of configuration space (inside the bridge's ECAM,
//! which its driver may map to read its capabilities), its placed BARs at CPU addresses
//! (inside the host bridge's apertures, which the bridge forwards) and its INTx's GIC INTID.
//! A bridge also forwards the configuration space of its buses and its windows.
//! Match data: `pciVVVV,DDDD`, `pciclass,CCSSPP`, `pciclass,CCSS`; bus id
//! `vendor << 16 | device`.
//!
//! **Hot-plug (native PCI Express).** Every hot-plug capable port's slot events are enabled.
//! On a slot's interrupt (channels 1 and 2, the root ports' INTA lines) the driver reads and clears each slot's status
//! (`warden_pci::hotplug`). A card that arrived is enumerated behind its port, inside the
//! windows reserved for the slot at boot, and the port is let go of and bound again
//! (`Unbind`, `Bind`: the manager removes nothing, since the slot was empty, then probes the
//! port, whose probe adds the card's functions). A card gone (a surprise removal, or a link
//! that dropped) lets go of the port the same way: its functions are removed, children first,
//! while nothing waits on the missing card. An attention button press (QEMU's `device_del`)
//! removes the functions, then turns the slot's power off, which completes the ejection.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;
use log::{info, warn};
use warden_driver::{bus, Answer, Callback, Companion, Driver, DriverPd, Probe};
use warden_microkit::{ChannelSet, DeviceRegion, DeviceRegisters};
use warden_pci::enumerate::{self, Function, PciAperture, PciSpace, Table};
use warden_pci::{hotplug, Address, Ecam};
use warden_vocabulary::{
    Compatible, DeviceId, DriverId, MatchData, MmioWindow, PciHostInfo, Resources,
};

/// What this PD expects of the system description.
pub mod interface {
    use warden_interface::pci_host::{
        ECAM, ECAM_BUS1, ECAM_BUS2, ECAM_BUS3, ECAM_REST, SLOT1, SLOT2,
    };
    use warden_microkit::Channel;

    /// The device manager.
    pub const MANAGER: Channel = warden_driver::MANAGER;
    /// The setvar symbols of the ring maps: (vaddr symbol, size symbol).
    pub const REGIONS: [(&str, &str); 2] = warden_driver::MANAGER_REGIONS;
    /// The ECAM window's maps, each following the one before: (vaddr symbol, size symbol,
    /// paddr symbol).
    pub const DEVICE_REGIONS: [(&str, &str, &str); 5] =
        [ECAM, ECAM_BUS1, ECAM_BUS2, ECAM_BUS3, ECAM_REST];
    /// The hot-plug slots' interrupts (each root port's INTA).
    pub const SLOTS: [Channel; 2] = [SLOT1, SLOT2];
}

/// Functions one enumeration keeps (QEMU virt's with a few cards: about a dozen).
pub const MAX_FUNCTIONS: usize = 64;
/// Functions one plugged card may have.
pub const MAX_CARD_FUNCTIONS: usize = 8;
/// The configuration space of one function.
const FUNCTION_BYTES: u64 = 0x1000;

/// The compatible of the bridges the companion binds.
const BRIDGE_CLASS: &str = "pciclass,0604";

/// The host bridge's state, from its probe on.
struct Host {
    device: DeviceId,
    ecam: Ecam<DeviceRegisters>,
    /// The ECAM window's CPU-physical address (of bus `first_bus`).
    ecam_base: u64,
    info: PciHostInfo,
    apertures: heapless::Vec<PciAperture, { warden_vocabulary::MAX_PCI_APERTURES }>,
    table: Box<Table<MAX_FUNCTIONS>>,
    /// The bridges found, by their index in `table`.
    bridges: Vec<BridgeState>,
}

/// A bridge of the enumeration.
struct BridgeState {
    /// Its index in the boot table.
    index: usize,
    /// The bridge's function, as the boot enumeration found it.
    function: Function,
    /// Its device in the manager's tree, once added.
    device: Option<DeviceId>,
    /// The companion driver's handle it was bound with (to bind it again).
    bound: Option<DriverId>,
    /// A hot-plug port's card, once its slot changed since boot (`None`: what boot found).
    card: Option<Box<Table<MAX_CARD_FUNCTIONS>>>,
    /// The attention button asked for the card to go: the slot is turned off once its
    /// functions are removed (at the port's next probe, which runs after them).
    eject_pending: bool,
}

/// The driver.
pub struct PciHostDriver {
    region: Option<DeviceRegion>,
    host: Option<Host>,
}

/// The match data of a function.
fn match_data(function: &Function) -> MatchData {
    let mut data = MatchData {
        bus_id: Some((u32::from(function.vendor) << 16) | u32::from(function.device)),
        ..MatchData::default()
    };
    for name in [
        format!("pci{:04x},{:04x}", function.vendor, function.device),
        format!("pciclass,{:06x}", function.class),
        format!("pciclass,{:04x}", function.class >> 8),
    ] {
        if let Ok(name) = Compatible::try_from(name.as_str()) {
            let _ = data.compatible.push(name);
        }
    }
    data
}

impl Host {
    /// The CPU-physical address of `address`'s configuration space.
    fn config_page(&self, address: Address) -> Option<MmioWindow> {
        let bus = u64::from(address.bus.checked_sub(self.info.first_bus)?);
        let offset =
            (bus << 20) | (u64::from(address.device) << 15) | (u64::from(address.function) << 12);
        Some(MmioWindow {
            base: self.ecam_base + offset,
            size: FUNCTION_BYTES,
        })
    }

    /// The distinct INTx INTIDs of the host bridge.
    fn all_intx(&self) -> impl Iterator<Item = u32> + '_ {
        let mut seen: heapless::Vec<u16, 16> = heapless::Vec::new();
        self.info
            .intx
            .iter()
            .flatten()
            .copied()
            .filter(move |&intid| intid != 0 && !seen.contains(&intid) && seen.push(intid).is_ok())
            .map(u32::from)
    }

    /// A function's resources: its configuration page, its placed BARs, its INTx; a bridge
    /// also forwards its buses' configuration space, its windows and every INTx line.
    fn resources(&self, function: &Function) -> Resources {
        let mut resources = Resources::default();
        if let Some(page) = self.config_page(function.address) {
            let _ = resources.mmio.push(page);
        }
        // A bridge's own BARs (a root port's MSI-X table) are left out: its driver here uses
        // none, and its PD maps only the configuration space.
        for bar in function
            .bars
            .iter()
            .flatten()
            .filter(|_| function.bridge.is_none())
        {
            if let Some((_, cpu)) = bar.placed {
                let _ = resources.mmio.push(MmioWindow {
                    base: cpu,
                    size: bar.request.size,
                });
            }
        }
        let intx = function
            .intx
            .and_then(|intx| self.info.intid(intx.device, intx.pin));
        if let Some(intid) = intx {
            let _ = resources.irqs.push(intid);
        }
        if let Some(bridge) = &function.bridge {
            let before = resources.mmio.len();
            if bridge.secondary != 0 {
                let first = bridge.secondary;
                let buses = u64::from(bridge.subordinate.saturating_sub(first)) + 1;
                if let Some(page) = self.config_page(Address {
                    bus: first,
                    device: 0,
                    function: 0,
                }) {
                    let _ = resources.mmio.push(MmioWindow {
                        base: page.base,
                        size: buses << 20,
                    });
                }
            }
            for space in PciSpace::ALL {
                let window = bridge.window(space);
                let Some(base) = window.base.filter(|_| window.size != 0) else {
                    continue;
                };
                if let Some(cpu) = enumerate::cpu_address(&self.apertures, space, base, window.size)
                {
                    let _ = resources.mmio.push(MmioWindow {
                        base: cpu,
                        size: window.size,
                    });
                }
            }
            resources.forwarded = (resources.mmio.len() - before) as u8;
            for intid in self.all_intx() {
                if Some(intid) != intx {
                    let _ = resources.irqs.push(intid);
                }
            }
        }
        resources
    }

    /// The bridge whose configuration page is `window`.
    fn bridge_at(&self, window: MmioWindow) -> Option<usize> {
        self.bridges
            .iter()
            .position(|bridge| self.config_page(bridge.function.address) == Some(window))
    }

    /// The functions directly behind bridge `bridge` (its card's, if its slot changed).
    fn behind(&self, bridge: &BridgeState) -> Vec<Function> {
        match &bridge.card {
            Some(card) => card
                .functions
                .iter()
                .filter(|function| function.parent.is_none())
                .map(|function| {
                    let mut function = *function;
                    function.intx = function
                        .intx
                        .map(|intx| enumerate::route_intx(&self.table, bridge.index, intx));
                    function
                })
                .collect(),
            None => self
                .table
                .functions
                .iter()
                .filter(|function| function.parent == u16::try_from(bridge.index).ok())
                .copied()
                .collect(),
        }
    }
}

/// Adds `functions` as children of the callback's device; how many were added.
fn add_functions(host: &Host, callback: &Callback, functions: &[Function]) -> usize {
    let mut added = 0;
    for function in functions {
        let resources = host.resources(function);
        let mut bars = alloc::string::String::new();
        for bar in function.bars.iter().flatten() {
            if let Some((_, cpu)) = bar.placed {
                bars.push_str(&format!(
                    "; BAR{} 0x{cpu:x}+0x{:x}",
                    bar.request.index, bar.request.size
                ));
            }
        }
        match callback.add_child(bus::PCI, match_data(function), resources) {
            Ok(child) => {
                added += 1;
                info!(
                    "pci: {} [{:04x}:{:04x}] class {:06x}: added child {child}{bars}",
                    function.address, function.vendor, function.device, function.class
                );
            }
            Err(status) => warn!(
                "pci: {}: the manager refused the child: {status:?}",
                function.address
            ),
        }
    }
    added
}

impl PciHostDriver {
    fn probe_host(&mut self, probe: &Probe) -> Answer {
        let Some(registers) = probe.registers(&[self.region]) else {
            return Answer::NotMine;
        };
        let Some(window) = probe.window() else {
            return Answer::NotMine;
        };
        let info = match warden_driver::query_pci_host(probe.callback.device) {
            Ok(info) => info,
            Err(status) => {
                warn!("pci: the manager did not describe the host bridge: {status:?}");
                return Answer::Failed(1);
            }
        };
        let apertures = info.apertures.clone();
        let ecam = Ecam::new(registers, info.first_bus, info.last_bus);
        let Some((first, last)) = ecam.buses() else {
            warn!("pci: the ECAM window holds no bus");
            return Answer::Failed(2);
        };
        let mut table = Box::new(Table::new());
        enumerate::enumerate(&ecam, first, last, &apertures, &mut table);
        for found in &table.problems {
            warn!("pci: {}: {}", found.address, found.problem);
        }
        if table.problems_dropped != 0 {
            warn!("pci: {} more problems", table.problems_dropped);
        }
        info!(
            "pci: host bridge at 0x{:x}: buses {first}-{last}, {} functions, {} apertures",
            window.base,
            table.functions.len(),
            apertures.len()
        );
        let bridges = table
            .functions
            .iter()
            .enumerate()
            .filter(|(_, function)| function.bridge.is_some())
            .map(|(index, function)| BridgeState {
                index,
                function: *function,
                device: None,
                bound: None,
                card: None,
                eject_pending: false,
            })
            .collect();
        let host = Host {
            device: probe.callback.device,
            ecam,
            ecam_base: window.base,
            info,
            apertures,
            table,
            bridges,
        };
        for bridge in &host.bridges {
            let function = &bridge.function;
            if let Some(express) = function
                .express
                .filter(|express| express.slot.is_some_and(|slot| slot.hot_plug()))
            {
                hotplug::enable(&host.ecam, function.address, &express);
                info!("pci: {}: hot-plug slot enabled", function.address);
            }
        }
        let root: Vec<Function> = host
            .table
            .functions
            .iter()
            .filter(|function| function.parent.is_none())
            .copied()
            .collect();
        add_functions(&host, &probe.callback, &root);
        self.host = Some(host);
        Answer::Ok
    }

    fn probe_bridge(&mut self, probe: &Probe) -> Answer {
        let Some(host) = self.host.as_mut() else {
            return Answer::NotMine;
        };
        let Some(at) = probe.window().and_then(|window| host.bridge_at(window)) else {
            return Answer::NotMine;
        };
        let Some(bridge) = host.bridges.get_mut(at) else {
            return Answer::NotMine;
        };
        bridge.device = Some(probe.callback.device);
        bridge.bound = Some(probe.driver);
        let address = bridge.function.address;
        if core::mem::take(&mut bridge.eject_pending) {
            eject(&host.ecam, &bridge.function);
        }
        let Some(bridge) = host.bridges.get(at) else {
            return Answer::NotMine;
        };
        let functions = host.behind(bridge);
        let added = add_functions(host, &probe.callback, &functions);
        info!("pci: bridge {address}: {added} functions behind it");
        Answer::Ok
    }

    /// A hot-plug port's slot changed: what it holds now, and the port bound again. A card
    /// gone while one reads as there (pulled and another plugged, or the link dropped and
    /// came back) is looked at again at once: it arrived.
    fn slot_changed(&mut self, at: usize) {
        if self.slot_changed_once(at) {
            self.slot_changed_once(at);
        }
    }

    /// One look at the slot; whether a card may be there that is not known.
    fn slot_changed_once(&mut self, at: usize) -> bool {
        let Some(host) = self.host.as_mut() else {
            return false;
        };
        let Some(bridge) = host.bridges.get(at) else {
            return false;
        };
        let (index, function) = (bridge.index, bridge.function);
        let Some(express) = function.express else {
            return false;
        };
        let state = hotplug::read_and_clear(&host.ecam, function.address, &express);
        let occupied = !host.behind(bridge).is_empty();
        let change = state.change(occupied);
        let again = change == hotplug::SlotChange::Gone && state.present() && state.link_active();
        let mut card = Box::new(Table::new());
        match change {
            hotplug::SlotChange::Nothing => return false,
            hotplug::SlotChange::Arrived => {
                // The slot powered (again, after an ejection), as Linux's pciehp does.
                hotplug::set_power(&host.ecam, function.address, &express, true);
                enumerate::enumerate_behind(
                    &host.ecam,
                    &host.table,
                    index,
                    &host.apertures,
                    &mut card,
                );
                for found in &card.problems {
                    warn!("pci: {}: {}", found.address, found.problem);
                }
                info!(
                    "pci: slot at {}: a card arrived ({} functions)",
                    function.address,
                    card.functions.len()
                );
            }
            hotplug::SlotChange::Gone => {
                info!("pci: slot at {}: the card is gone", function.address);
            }
            hotplug::SlotChange::EjectRequested => {
                info!(
                    "pci: slot at {}: attention button: removing the card",
                    function.address
                );
            }
        }
        let Some(bridge) = host.bridges.get_mut(at) else {
            return false;
        };
        bridge.card = Some(card);
        let eject_now = change == hotplug::SlotChange::EjectRequested;
        let (Some(device), Some(driver)) = (bridge.device, bridge.bound) else {
            // Nobody drives the port, so nothing of the card is in the tree.
            if eject_now {
                eject(&host.ecam, &function);
            }
            return again;
        };
        // The slot goes off after the card's functions are removed: at the probe the bind
        // below brings, which waits for the port's lock, so runs after the unbind's removes.
        bridge.eject_pending |= eject_now;
        // The port let go of (its children removed first) and probed again: the same
        // locked path as at boot.
        let unbound = warden_driver::unbind(device)
            .map_err(|status| warn!("pci: unbind of port {device} refused: {status:?}"));
        let bound = warden_driver::bind(device, driver)
            .map_err(|status| warn!("pci: bind of port {device} refused: {status:?}"));
        if (unbound.is_err() || bound.is_err()) && core::mem::take(&mut bridge.eject_pending) {
            // No probe will come to do it: the slot goes off now.
            eject(&host.ecam, &function);
        }
        again
    }
}

/// Turns the slot of `port` off, which completes an ejection (the platform takes the card).
fn eject(ecam: &Ecam<DeviceRegisters>, port: &Function) {
    if let Some(express) = port.express {
        hotplug::set_power(ecam, port.address, &express, false);
        info!("pci: slot at {}: powered off", port.address);
    }
}

impl Driver for PciHostDriver {
    fn name(&self) -> &str {
        "pci-host-ecam"
    }

    fn compatible(&self) -> &[&str] {
        &["pci-host-ecam-generic"]
    }

    fn companion(&self) -> Option<Companion> {
        Some(Companion {
            name: "pci-bridge",
            bus: bus::PCI,
            compatible: &[BRIDGE_CLASS],
        })
    }

    fn probe(&mut self, probe: &Probe) -> Answer {
        let is_bridge = probe
            .match_data
            .compatible
            .iter()
            .any(|name| name.as_str() == BRIDGE_CLASS);
        if is_bridge {
            self.probe_bridge(probe)
        } else {
            self.probe_host(probe)
        }
    }

    fn remove(&mut self, callback: &Callback) -> Answer {
        let Some(host) = self.host.as_mut() else {
            return Answer::Ok;
        };
        if host.device == callback.device {
            info!("pci: host bridge {} let go of", callback.device);
            self.host = None;
            return Answer::Ok;
        }
        for bridge in &mut host.bridges {
            if bridge.device == Some(callback.device) {
                bridge.device = None;
                bridge.bound = None;
            }
        }
        Answer::Ok
    }

    fn notified(&mut self, channels: ChannelSet) {
        let signalled: Vec<_> = interface::SLOTS
            .into_iter()
            .filter(|channel| channels.contains(*channel))
            .collect();
        if signalled.is_empty() {
            return;
        }
        let ports: Vec<usize> = self
            .host
            .as_ref()
            .map(|host| {
                host.bridges
                    .iter()
                    .enumerate()
                    .filter(|(_, bridge)| {
                        bridge
                            .function
                            .express
                            .and_then(|express| express.slot)
                            .is_some_and(|slot| slot.hot_plug())
                    })
                    .map(|(at, _)| at)
                    .collect()
            })
            .unwrap_or_default();
        // Every slot is looked at: the lines are shared and level-triggered, and an event
        // read and cleared lowers its line before the acknowledgement.
        for at in ports {
            self.slot_changed(at);
        }
        for channel in signalled {
            channel.irq_ack();
        }
    }
}

/// The PD's `init`.
#[must_use]
pub fn init() -> DriverPd<PciHostDriver> {
    // The ECAM as one window: the maps that follow the first, in order (a system may map it
    // whole as `ecam` alone, or a region per bus that other PDs map too).
    let mut region = warden_microkit::device_region!(ecam_vaddr, ecam_size, ecam_paddr);
    for next in [
        warden_microkit::device_region!(ecam_bus1_vaddr, ecam_bus1_size, ecam_bus1_paddr),
        warden_microkit::device_region!(ecam_bus2_vaddr, ecam_bus2_size, ecam_bus2_paddr),
        warden_microkit::device_region!(ecam_bus3_vaddr, ecam_bus3_size, ecam_bus3_paddr),
        warden_microkit::device_region!(ecam_rest_vaddr, ecam_rest_size, ecam_rest_paddr),
    ]
    .into_iter()
    .flatten()
    {
        match region.and_then(|region| region.joined(next)) {
            Some(joined) => region = Some(joined),
            None => {
                warn!(
                    "pci: the ECAM map at 0x{:x} does not follow the one before; the window ends there",
                    next.window.base
                );
                break;
            }
        }
    }
    DriverPd::start(PciHostDriver { region, host: None })
}
