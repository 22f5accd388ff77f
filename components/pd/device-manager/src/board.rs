//! The board's devices, from its device tree blob, added to the tree at start-up.

use alloc::borrow::Cow;
use alloc::vec::Vec;
use log::{info, warn};

use warden_manager_core::{DeviceDescriptor, Request, Requester};
use warden_vocabulary::{DeviceId, MatchData, Outcome, PciHostInfo, Resources, MAX_INTID};

use crate::DeviceManager;

/// The board's device tree blob (see `build.rs`).
pub static BOARD_DTB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/board.dtb"));

/// The blob the manager reads: [`BOARD_DTB`] on seL4. On the host platform the launcher names
/// the board it models (`warden-host run --board FILE`) in `WARDEN_BOARD_DTB`, and the manager
/// reads that one, so that one build runs any board's system description; an unreadable file
/// is reported and the embedded blob used.
fn board_dtb() -> Cow<'static, [u8]> {
    #[cfg(not(target_os = "none"))]
    if let Some(path) = std::env::var_os("WARDEN_BOARD_DTB") {
        match std::fs::read(&path) {
            Ok(bytes) => return Cow::Owned(bytes),
            Err(error) => warn!(
                "manager: board {}: {error}; using the built-in board",
                path.to_string_lossy()
            ),
        }
    }
    Cow::Borrowed(BOARD_DTB)
}

impl DeviceManager {
    /// Adds the board's devices from its DTB (see the crate docs).
    pub(crate) fn load_board(&mut self) {
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
        // Phandles indexed once: the walk is linear in the blob's size, however many
        // interrupt controllers and interrupt-parent hops the tree has.
        let mut phandles = alloc::vec![warden_board::PhandleSlot::default(); board.phandle_count()];
        let index = match board.index_phandles(&mut phandles) {
            Ok(index) => index,
            Err(error) => {
                warn!("manager: the board's device tree is unusable: {error}; no board devices");
                return;
            }
        };
        for device in board.devices_indexed(&index) {
            let device = match device {
                Ok(device) => device,
                Err(error) => {
                    warn!("manager: board: {error}; node left out");
                    added.push(None);
                    continue;
                }
            };
            let mut match_data = MatchData::default();
            // A disabled node is in the tree, but no driver may have it: with no match data,
            // no match table matches it.
            if device.enabled {
                for name in &device.compatible {
                    if let Ok(name) = (*name).try_into() {
                        let _ = match_data.compatible.push(name);
                    }
                }
            }
            let bus = match device.bus {
                warden_board::BoardBus::Platform => Ok(self.platform),
                warden_board::BoardBus::Local { kind, .. } => bus_named(&mut self.core, kind),
            };
            let bus = match bus {
                Ok(bus) => bus,
                Err(why) => {
                    warn!("manager: board node '{}' left out: {why}", device.path_name);
                    added.push(None);
                    continue;
                }
            };
            if device.reg_not_translatable {
                info!(
                    "manager: board node '{}': a reg entry names no CPU-physical address; the \
                     device has the {} window(s) before it",
                    device.path_name,
                    device.mmio.len()
                );
            }
            let descriptor = DeviceDescriptor {
                bus,
                match_data,
                resources: board_resources(&device),
            };
            let parent = device
                .parent
                .and_then(|index| added.get(index).copied().flatten());
            let request = Request::AddDevice { parent, descriptor };
            match self.submit(Requester::Manager, request) {
                Ok(Some(Outcome::Device { device: id, .. })) => {
                    count += 1;
                    if let Some(host) = &device.pci {
                        self.pci_hosts.push((id, pci_host_info(host)));
                    }
                    if !device.enabled {
                        disabled += 1;
                    }
                    added.push(Some(id));
                }
                other => {
                    warn!(
                        "manager: board node '{}' not added: {other:?}",
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
}

/// The bus of a device on a bus that is not memory-mapped, named `kind` after its controller
/// (one of the fixed ones, or one made for the board's tree now); `Err` says why there is none.
fn bus_named(core: &mut crate::Core, kind: &str) -> Result<warden_vocabulary::BusId, &'static str> {
    let memory_mapped = [warden_protocol::bus::PLATFORM, warden_protocol::bus::VIRTIO];
    if warden_protocol::bus::FIXED
        .iter()
        .any(|&(name, id)| name == kind && memory_mapped.contains(&id))
    {
        // A controller named like one: its children are on neither.
        return Err("its controller's bus is named like a memory-mapped one");
    }
    if kind.len() > warden_vocabulary::NAME_BYTES {
        return Err("its controller's name is longer than a bus name may be");
    }
    // Buses are never removed: they are slots 0, 1, … in the order they were made.
    let found = (0..crate::BUSES as u32)
        .map(|index| warden_vocabulary::BusId::from_parts(index, 0))
        .map_while(|id| core.bus(id).ok().map(|info| (id, info.name == kind)))
        .find_map(|(id, same)| same.then_some(id));
    if let Some(found) = found {
        return Ok(found);
    }
    let made = core
        .add_bus(kind)
        .map_err(|_| "no room for another bus (see BUSES)")?;
    info!("manager: the board names a {kind} bus: bus {made}");
    Ok(made)
}

/// A board device's resources as the core keeps them. What no driver can be given (an empty
/// or wrapping window, an interrupt beyond the GIC's 0-1019, as a GICv3.1 extended SPI would
/// be) is left out, with a word, so that every device in the tree can be probed and listed; so
/// is what does not fit the core's capacity.
fn board_resources(device: &warden_board::BoardDevice<'_>) -> Resources {
    let mut resources = Resources::default();
    if let warden_board::BoardBus::Local { address, .. } = device.bus {
        resources.address = address;
    }
    for window in &device.mmio {
        if !window.is_valid() || resources.mmio.push(*window).is_err() {
            warn!(
                "manager: board node '{}': window {:#x}+{:#x} left out",
                device.path_name, window.base, window.size
            );
        }
    }
    for &irq in &device.irqs {
        if irq > MAX_INTID || resources.irqs.push(irq).is_err() {
            warn!(
                "manager: board node '{}': interrupt {irq} left out (not a GIC INTID a driver \
                 can be given, or one too many)",
                device.path_name
            );
        }
    }
    if let Some(host) = &device.pci {
        forward_pci_host(device.path_name, host, &mut resources);
    }
    resources
}

/// A PCI host bridge forwards its apertures to its functions (their BARs lie there), and its
/// INTx routes are theirs: both are added to its resources (after its registers), so that the
/// functions its driver adds may be given them. Its driver maps neither.
fn forward_pci_host(name: &str, host: &warden_board::PciHost, resources: &mut Resources) {
    for aperture in &host.apertures {
        let window = warden_vocabulary::MmioWindow {
            base: aperture.cpu_base,
            size: aperture.size,
        };
        if !window.is_valid() || resources.mmio.push(window).is_err() {
            warn!(
                "manager: board node '{name}': aperture {:#x}+{:#x} left out (one too many)",
                window.base, window.size
            );
            continue;
        }
        resources.forwarded += 1;
    }
    for route in &host.intx {
        if resources.irqs.contains(&route.intid) || route.intid > MAX_INTID {
            continue;
        }
        if resources.irqs.push(route.intid).is_err() {
            warn!(
                "manager: board node '{name}': INTx interrupt {} left out (one too many)",
                route.intid
            );
        }
    }
}

/// What the host bridge's driver is told of it (`QueryPciHost`).
fn pci_host_info(host: &warden_board::PciHost) -> PciHostInfo {
    let mut info = PciHostInfo {
        first_bus: host.first_bus,
        last_bus: host.last_bus,
        ..PciHostInfo::default()
    };
    for aperture in host.apertures.iter().filter(|aperture| aperture.is_valid()) {
        if info.apertures.push(*aperture).is_err() {
            break;
        }
    }
    for (device, pins) in (0u8..).zip(info.intx.iter_mut()) {
        for (pin, slot) in (1u8..).zip(pins.iter_mut()) {
            *slot = host
                .intid(device, 0, pin)
                .filter(|&intid| intid <= MAX_INTID)
                .and_then(|intid| u16::try_from(intid).ok())
                .unwrap_or(0);
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_board::BoardDevice;
    use warden_vocabulary::MmioWindow;

    #[test]
    fn board_resources_leave_out_what_no_driver_can_be_given() {
        let window = |base, size| MmioWindow { base, size };
        let device = BoardDevice {
            bus: warden_board::BoardBus::Platform,
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
            reg_not_translatable: false,
            enabled: true,
            pci: None,
        };
        let resources = board_resources(&device);
        assert_eq!(resources.mmio.as_slice(), [window(0x900_0000, 0x1000)]);
        assert_eq!(resources.irqs.as_slice(), [33, 1019]);
        assert_eq!(resources.address, None);
    }

    #[test]
    fn devices_on_buses_that_are_not_memory_mapped_go_on_a_bus_of_their_kind() {
        let mut core =
            alloc::boxed::Box::new(crate::Core::new(warden_manager_core::Config::PER_DEVICE));
        for (name, fixed) in warden_protocol::bus::FIXED {
            assert_eq!(core.add_bus(name), Ok(fixed));
        }
        assert_eq!(bus_named(&mut core, "i2c"), Ok(warden_protocol::bus::I2C));
        assert_eq!(bus_named(&mut core, "mdio"), Ok(warden_protocol::bus::MDIO));
        // A kind the board names: made once, then found.
        let w1 = bus_named(&mut core, "w1").unwrap();
        assert_eq!(bus_named(&mut core, "w1"), Ok(w1));
        assert_eq!(core.bus(w1).unwrap().name, "w1");
        // Never a memory-mapped bus, never a truncated name.
        assert!(bus_named(&mut core, "platform").is_err());
        assert!(bus_named(&mut core, &"x".repeat(33)).is_err());
        // Until the table is full: then none, and the node is left out (not put elsewhere).
        let made = (0..crate::BUSES)
            .take_while(|kind| bus_named(&mut core, &alloc::format!("k{kind}")).is_ok())
            .count();
        assert_eq!(made, crate::BUSES - 7, "six fixed buses and w1 before them");
        assert_eq!(
            bus_named(&mut core, "c"),
            Err("no room for another bus (see BUSES)")
        );
        let device = BoardDevice {
            bus: warden_board::BoardBus::Local {
                kind: "i2c",
                address: Some(0x50),
            },
            path_name: "eeprom@50",
            depth: 2,
            parent: Some(0),
            compatible: heapless::Vec::new(),
            mmio: heapless::Vec::new(),
            irqs: heapless::Vec::new(),
            interrupt_parent_not_gic: false,
            reg_not_translatable: false,
            enabled: true,
            pci: None,
        };
        let resources = board_resources(&device);
        assert_eq!(resources.address, Some(0x50));
        assert!(resources.mmio.is_empty());
    }
}
