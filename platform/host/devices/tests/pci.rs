//! Warden's PCI enumeration (warden-pci) against the ECAM model: the QEMU virt topology Warden
//! boots (endpoints on the root bus, root ports with their links, a conventional bridge, a
//! multi-function device), and hostile configuration space: BARs of size 0 and 2^63, capability
//! lists that loop or point into the header, a bridge that will not take its bus number, a
//! function that vanishes in the middle of its scan, more bridges than bus numbers, nesting past
//! the limit, a full table, and random bytes everywhere.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use proptest::prelude::*;
use warden_host_devices::{BarSpec, EcamModel, ModelRegisters, PciBus, PciFunction};
use warden_pci::capabilities::{self, CapabilityError};
use warden_pci::config::{command, register};
use warden_pci::enumerate::{HOTPLUG_RESERVE, MAX_DEPTH, MAX_PROBLEMS};
use warden_pci::express::PortType;
use warden_pci::hotplug::{self, SlotChange};
use warden_pci::{
    enumerate, enumerate_behind, route_intx, Address, ConfigSpace, Ecam, Intx, PciAperture,
    PciSpace, Problem, Table,
};

type Config = Ecam<ModelRegisters<EcamModel>>;

/// QEMU virt's host bridge windows (its `ranges`).
const APERTURES: [PciAperture; 3] = [
    PciAperture {
        space: PciSpace::Io,
        pci_base: 0,
        cpu_base: 0x3eff_0000,
        size: 0x1_0000,
    },
    PciAperture {
        space: PciSpace::Memory,
        pci_base: 0x1000_0000,
        cpu_base: 0x1000_0000,
        size: 0x2eff_0000,
    },
    PciAperture {
        space: PciSpace::Prefetchable,
        pci_base: 0x80_0000_0000,
        cpu_base: 0x80_0000_0000,
        size: 0x80_0000_0000,
    },
];

const VIRTIO: u16 = 0x1af4;

fn ecam(root: PciBus) -> Config {
    Ecam::new(ModelRegisters::new(EcamModel::new(0, 256, root)), 0, 255)
}

/// A modern virtio-pci function (QEMU's layout: BAR1 32-bit MSI-X table, BAR4 64-bit
/// prefetchable for the virtio structures).
fn virtio(device: u16) -> PciFunction {
    PciFunction::endpoint(VIRTIO, device, 0x01_00_00)
        .with_bar(
            1,
            BarSpec::Memory32 {
                size: 0x1000,
                prefetchable: false,
            },
        )
        .with_bar(
            4,
            BarSpec::Memory64 {
                size: 0x4000,
                prefetchable: true,
            },
        )
        .with_pin(1)
        .with_capability(0x11, &[0; 10])
        .with_capability(0x09, &[16, 1, 4, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0])
}

fn host_bridge() -> PciFunction {
    PciFunction::endpoint(0x1b36, 0x0008, 0x06_00_00)
}

/// QEMU virt as `make qemu` gives it: host bridge, a virtio disk on the root bus, two root
/// ports (one with a disk behind it, one empty), a conventional bridge with two devices, and a
/// device with functions 0 and 3.
fn virt_tree() -> PciBus {
    PciBus::new()
        .with(0, 0, host_bridge())
        .with(1, 0, virtio(0x1042))
        .with(
            2,
            0,
            PciFunction::root_port(1, PciBus::aliasing_link().with(0, 0, virtio(0x1042))),
        )
        .with(3, 0, PciFunction::root_port(2, PciBus::link()))
        .with(
            4,
            0,
            PciFunction::bridge(
                0x1b36,
                0x0001,
                PciBus::new()
                    .with(0, 0, virtio(0x1044))
                    .with(2, 0, virtio(0x1041).with_pin(2)),
            ),
        )
        .with(5, 0, PciFunction::endpoint(0x8086, 0x100e, 0x02_00_00))
        .with(
            5,
            3,
            PciFunction::endpoint(0x8086, 0x100f, 0x02_00_00)
                .with_bar(0, BarSpec::Io { size: 0x40 }),
        )
}

fn run<const N: usize>(config: &Config) -> Box<Table<N>> {
    let mut table = Box::new(Table::new());
    enumerate(config, 0, 255, &APERTURES, &mut table);
    table
}

/// A card into the slot of the root port at 00:`device`.0.
fn plug(config: &Config, device: u8, card: PciFunction) {
    let mut model = config.registers().model();
    let port = model.function_mut(0, device, 0).expect("a port");
    assert!(port.plug(card).is_ok(), "the slot takes the card");
}

/// The problems found, in order.
fn problems<const N: usize>(table: &Table<N>) -> Vec<Problem> {
    table.problems.iter().map(|found| found.problem).collect()
}

fn at(table: &Table<64>, bus: u8, device: u8, function: u8) -> &warden_pci::Function {
    let address = Address::new(bus, device, function).unwrap();
    table
        .functions
        .iter()
        .find(|found| found.address == address)
        .unwrap_or_else(|| panic!("{address} not found: {:?}", table.functions))
}

/// Where items of `space` on the bus behind `parent` must lie: the bridge's window that takes
/// them (its memory window for prefetchable ones when it has no 64-bit prefetchable window),
/// or the aperture that serves the space on the root bus.
fn container_of<const N: usize>(
    table: &Table<N>,
    parent: Option<u16>,
    space: PciSpace,
    apertures: &[PciAperture],
) -> (u64, u64, PciAperture) {
    let root = |space: PciSpace| {
        let find = |wanted| apertures.iter().find(|a| a.space == wanted).copied();
        match space {
            PciSpace::Io => find(PciSpace::Io),
            PciSpace::Memory => find(PciSpace::Memory).or_else(|| {
                find(PciSpace::Prefetchable).filter(|a| a.pci_base + a.size <= 1 << 32)
            }),
            PciSpace::Prefetchable => {
                find(PciSpace::Prefetchable).or_else(|| find(PciSpace::Memory))
            }
        }
        .expect("an aperture for the space")
    };
    match parent {
        None => {
            let aperture = root(space);
            (
                aperture.pci_base,
                aperture.pci_base + aperture.size,
                aperture,
            )
        }
        Some(parent) => {
            let above = &table.functions[usize::from(parent)];
            let bridge = above.bridge.unwrap();
            let through = if bridge.forwards(space) {
                space
            } else {
                assert_eq!(
                    space,
                    PciSpace::Prefetchable,
                    "{space} behind a bridge without it"
                );
                PciSpace::Memory
            };
            let window = bridge.window(through);
            let base = window.base.expect("an item behind a closed window");
            let (_, _, aperture) = container_of(table, above.parent, through, apertures);
            (base, base + window.size, aperture)
        }
    }
}

/// Every placement is inside its bridge's window (or its space's aperture on the root bus),
/// aligned, at the CPU address its aperture maps, read back from its registers; bridge windows
/// likewise; and no two items on one bus overlap in one address space.
fn check_placements<const N: usize>(config: &Config, table: &Table<N>) {
    check_placements_in(config, table, &APERTURES);
}

/// A placed range and what it is.
type Placed = (u64, u64, String);

fn check_placements_in<const N: usize>(
    config: &Config,
    table: &Table<N>,
    apertures: &[PciAperture],
) {
    // (parent, is I/O) -> ranges on that bus in that address space.
    let mut buses: std::collections::BTreeMap<(Option<u16>, bool), Vec<Placed>> =
        std::collections::BTreeMap::new();
    for function in &table.functions {
        for bar in function.bars.iter().flatten() {
            let Some((bus, cpu)) = bar.placed else {
                continue;
            };
            let (size, index) = (bar.request.size, bar.request.index);
            let label = format!("{} BAR {index}", function.address);
            assert_eq!(bus % size, 0, "{label} aligned");
            let space = bar.request.space();
            let (start, end, aperture) = container_of(table, function.parent, space, apertures);
            assert!(
                start <= bus && bus + size <= end,
                "{label} inside its window"
            );
            assert_eq!(
                cpu,
                aperture.cpu_base + (bus - aperture.pci_base),
                "{label} CPU address"
            );
            assert_eq!(
                warden_pci::bars::read_bar(config, function.address, &bar.request),
                bus
            );
            buses
                .entry((function.parent, space == PciSpace::Io))
                .or_default()
                .push((bus, bus + size, label));
        }
        let Some(bridge) = function.bridge else {
            continue;
        };
        for space in PciSpace::ALL {
            let window = bridge.window(space);
            let Some(base) = window.base else {
                continue;
            };
            let label = format!("{} {space} window", function.address);
            assert!(
                bridge.forwards(space),
                "{label} opened on a bridge without it"
            );
            assert_eq!(base % window.align, 0, "{label} aligned");
            let (start, end, _) = container_of(table, function.parent, space, apertures);
            assert!(
                start <= base && base + window.size <= end,
                "{label} inside its parent's"
            );
            let limit = base + window.size - 1;
            let address = function.address;
            let (held_base, held_limit) = match space {
                PciSpace::Io => (
                    (u64::from(config.read16(address, register::IO_BASE_UPPER)) << 16)
                        | (u64::from(config.read8(address, register::IO_BASE) & 0xF0) << 8),
                    (u64::from(config.read16(address, register::IO_LIMIT_UPPER)) << 16)
                        | (u64::from(config.read8(address, register::IO_LIMIT) & 0xF0) << 8)
                        | 0xFFF,
                ),
                PciSpace::Memory => (
                    u64::from(config.read16(address, register::MEMORY_BASE) & 0xFFF0) << 16,
                    (u64::from(config.read16(address, register::MEMORY_LIMIT) & 0xFFF0) << 16)
                        | 0xF_FFFF,
                ),
                PciSpace::Prefetchable => (
                    (u64::from(config.read32(address, register::PREFETCHABLE_BASE_UPPER)) << 32)
                        | (u64::from(config.read16(address, register::PREFETCHABLE_BASE) & 0xFFF0)
                            << 16),
                    (u64::from(config.read32(address, register::PREFETCHABLE_LIMIT_UPPER)) << 32)
                        | (u64::from(
                            config.read16(address, register::PREFETCHABLE_LIMIT) & 0xFFF0,
                        ) << 16)
                        | 0xF_FFFF,
                ),
            };
            assert_eq!((held_base, held_limit), (base, limit), "{label} registers");
            buses
                .entry((function.parent, space == PciSpace::Io))
                .or_default()
                .push((base, base + window.size, label));
        }
    }
    for ranges in buses.values_mut() {
        ranges.sort();
        for pair in ranges.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "{} overlaps {}",
                pair[0].2,
                pair[1].2
            );
        }
    }
}

#[test]
fn the_virt_tree_is_found_numbered_placed_and_programmed() {
    let config = ecam(virt_tree());
    let table = run::<64>(&config);
    assert!(table.problems.is_empty(), "{:?}", table.problems);
    let addresses: Vec<String> = table
        .functions
        .iter()
        .map(|f| f.address.to_string())
        .collect();
    // Depth first, parents before children; behind a root port only device 0 (its port
    // answers for every device number with device 0: the 31 aliases are not taken).
    assert_eq!(
        addresses,
        [
            "00:00.0", "00:01.0", "00:02.0", "01:00.0", "00:03.0", "00:04.0", "03:00.0", "03:02.0",
            "00:05.0", "00:05.3"
        ]
    );
    let port = at(&table, 0, 2, 0);
    let bridge = port.bridge.unwrap();
    assert_eq!((bridge.secondary, bridge.subordinate), (1, 1));
    let express = port.express.unwrap();
    assert_eq!(express.port_type, PortType::RootPort);
    let slot = express.slot.unwrap();
    assert!(slot.hot_plug());
    assert_eq!(slot.number(), 1);
    assert_eq!(config.read8(port.address, register::SECONDARY_BUS), 1);
    assert_eq!(config.read8(port.address, register::SUBORDINATE_BUS), 1);
    assert_eq!(config.read8(port.address, register::PRIMARY_BUS), 0);
    let empty = at(&table, 0, 3, 0).bridge.unwrap();
    assert_eq!((empty.secondary, empty.subordinate), (2, 2));
    // An empty hot-plug port keeps room for a card in each space.
    for (space, reserve) in PciSpace::ALL.iter().zip(HOTPLUG_RESERVE) {
        let window = empty.window(*space);
        assert!(
            window.base.is_some() && window.size == reserve,
            "{space}: {window:?}"
        );
    }
    let conventional = at(&table, 0, 4, 0).bridge.unwrap();
    assert_eq!((conventional.secondary, conventional.subordinate), (3, 3));
    assert_eq!(table.last_bus, 3);

    let disk = at(&table, 1, 0, 0);
    assert_eq!(
        (disk.vendor, disk.device, disk.class),
        (VIRTIO, 0x1042, 0x01_00_00)
    );
    assert_eq!(disk.parent, Some(2));
    assert!(disk.bars[1].unwrap().placed.is_some() && disk.bars[4].unwrap().placed.is_some());
    // The 64-bit prefetchable BAR is above 4 GiB, through the port's prefetchable window.
    let (bar4, _) = disk.bars[4].unwrap().placed.unwrap();
    assert!(bar4 >= 0x80_0000_0000);
    let command = config.read16(disk.address, register::COMMAND);
    assert_eq!(command & command::MEMORY, command::MEMORY);
    assert_eq!(
        command & command::BUS_MASTER,
        0,
        "bus mastering is the function's driver's to turn on"
    );
    // The port forwards what is behind it.
    let port_command = config.read16(port.address, register::COMMAND);
    assert_eq!(
        port_command & (command::MEMORY | command::BUS_MASTER),
        command::MEMORY | command::BUS_MASTER
    );
    let memory_base = u64::from(config.read16(port.address, register::MEMORY_BASE) & 0xFFF0) << 16;
    let memory_limit =
        (u64::from(config.read16(port.address, register::MEMORY_LIMIT) & 0xFFF0) << 16) | 0xF_FFFF;
    let (bar1, _) = disk.bars[1].unwrap().placed.unwrap();
    assert!(memory_base <= bar1 && bar1 + 0x1000 - 1 <= memory_limit);
    let prefetch_base = (u64::from(config.read32(port.address, register::PREFETCHABLE_BASE_UPPER))
        << 32)
        | (u64::from(config.read16(port.address, register::PREFETCHABLE_BASE) & 0xFFF0) << 16);
    assert!(prefetch_base <= bar4);

    // INTx: on the root bus the pin as it is; behind a bridge swizzled by the device number.
    assert_eq!(
        at(&table, 0, 1, 0).intx,
        Some(Intx {
            device: 1,
            function: 0,
            pin: 1
        })
    );
    assert_eq!(
        disk.intx,
        Some(Intx {
            device: 2,
            function: 0,
            pin: 1
        })
    );
    assert_eq!(
        at(&table, 3, 2, 0).intx,
        Some(Intx {
            device: 4,
            function: 0,
            pin: 4
        }),
        "INTB of device 2 is INTD above"
    );
    assert_eq!(at(&table, 0, 5, 0).intx, None);
    // The multi-function device's I/O BAR in the I/O aperture, decoding I/O.
    let io = at(&table, 0, 5, 3);
    let (io_bus, io_cpu) = io.bars[0].unwrap().placed.unwrap();
    assert!(io_bus < 0x1_0000 && io_cpu == 0x3eff_0000 + io_bus);
    assert_eq!(
        config.read16(io.address, register::COMMAND) & command::IO,
        command::IO
    );
    check_placements(&config, &table);
}

#[test]
fn enumerating_twice_gives_the_same_result() {
    // The driver enumerates again after a restart: the bus numbers and windows an earlier
    // incarnation wrote must not change what is found.
    let config = ecam(virt_tree());
    let first = run::<64>(&config);
    let second = run::<64>(&config);
    assert_eq!(first.functions, second.functions);
    check_placements(&config, &second);
}

#[test]
fn a_bar_of_size_zero_is_not_implemented_and_a_bar_of_2_to_the_63_gets_no_room() {
    let huge = PciFunction::endpoint(0x1234, 0x5678, 0x0)
        .with_bar(
            0,
            BarSpec::Memory64 {
                size: 1 << 63,
                prefetchable: true,
            },
        )
        .with_bar(
            2,
            BarSpec::Memory32 {
                size: 0x1000,
                prefetchable: false,
            },
        )
        .with_bar(
            3,
            BarSpec::Memory32 {
                size: 0,
                prefetchable: false,
            },
        );
    let root = PciBus::new().with(0, 0, huge).with(1, 0, virtio(0x1042));
    let config = ecam(root);
    let table = run::<64>(&config);
    let huge = at(&table, 0, 0, 0);
    assert!(huge.bars[0].unwrap().refused && huge.bars[0].unwrap().placed.is_none());
    // Its memory decoding stays off: the refused BAR would decode wherever it points.
    assert_eq!(
        config.read16(huge.address, register::COMMAND) & command::MEMORY,
        0
    );
    assert!(huge.bars[3].is_none(), "size 0: not implemented");
    assert!(huge.bars[2].unwrap().placed.is_some());
    assert_eq!(
        table
            .problems
            .iter()
            .map(|found| (found.address.to_string(), found.problem))
            .collect::<Vec<_>>(),
        [(
            "00:00.0".to_string(),
            Problem::BarNoRoom {
                index: 0,
                size: 1 << 63
            }
        )]
    );
    assert!(table.problems[0]
        .problem
        .to_string()
        .contains("fits no window"));
    // Its neighbour is unharmed.
    assert!(at(&table, 0, 1, 0).bars[4].unwrap().placed.is_some());
    check_placements(&config, &table);

    // Behind a bridge the same BAR does not take its siblings' window with it.
    let huge_behind = PciFunction::endpoint(0x1234, 0x5678, 0).with_bar(
        0,
        BarSpec::Memory64 {
            size: 1 << 63,
            prefetchable: true,
        },
    );
    let root = PciBus::new().with(
        0,
        0,
        PciFunction::bridge(
            0x1b36,
            1,
            PciBus::new()
                .with(0, 0, huge_behind)
                .with(1, 0, virtio(0x1042)),
        ),
    );
    let config = ecam(root);
    let table = run::<64>(&config);
    assert!(at(&table, 1, 1, 0).bars[4].unwrap().placed.is_some());
    check_placements(&config, &table);
}

#[test]
fn a_full_window_leaves_the_bars_that_do_not_fit_unassigned_and_decoding_off() {
    // 16 functions of 256 MiB 32-bit BARs: the 752 MiB memory aperture holds two.
    let mut root = PciBus::new();
    for device in 0..16 {
        root.insert(
            device,
            0,
            PciFunction::endpoint(0x1234, 0x1, 0).with_bar(
                0,
                BarSpec::Memory32 {
                    size: 0x1000_0000,
                    prefetchable: false,
                },
            ),
        );
    }
    let config = ecam(root);
    let table = run::<64>(&config);
    let placed = table
        .functions
        .iter()
        .filter(|function| function.bars[0].unwrap().placed.is_some())
        .count();
    assert_eq!(placed, 2);
    assert_eq!(table.problems.len(), 14);
    for function in table
        .functions
        .iter()
        .filter(|f| f.bars[0].unwrap().placed.is_none())
    {
        assert_eq!(
            config.read16(function.address, register::COMMAND) & command::MEMORY,
            0
        );
    }
    check_placements(&config, &table);
}

#[test]
fn capability_lists_that_loop_or_point_into_the_header_stop_with_an_error() {
    // A list 0x40 -> 0x50 -> 0x40.
    let looping = PciFunction::endpoint(0x1234, 1, 0)
        .with_raw(register::STATUS, &[0x10, 0])
        .with_raw(register::CAPABILITIES, &[0x40])
        .with_raw(0x40, &[0x10, 0x50])
        .with_raw(0x50, &[0x05, 0x40]);
    // A list that points at itself.
    let itself = PciFunction::endpoint(0x1234, 2, 0)
        .with_raw(register::STATUS, &[0x10, 0])
        .with_raw(register::CAPABILITIES, &[0x44])
        .with_raw(0x44, &[0x09, 0x44]);
    // A list into the header.
    let header = PciFunction::endpoint(0x1234, 3, 0)
        .with_raw(register::STATUS, &[0x10, 0])
        .with_raw(register::CAPABILITIES, &[0x40])
        .with_raw(0x40, &[0x09, 0x10]);
    let root = PciBus::new()
        .with(0, 0, looping)
        .with(1, 0, itself)
        .with(2, 0, header);
    let config = ecam(root);
    let walk = |device| {
        capabilities::capabilities(&config, Address::new(0, device, 0).unwrap()).collect::<Vec<_>>()
    };
    let first = walk(0);
    assert_eq!(first.len(), 3);
    assert_eq!(first[2], Err(CapabilityError::Loop { offset: 0x40 }));
    assert_eq!(walk(1)[1], Err(CapabilityError::Loop { offset: 0x44 }));
    assert_eq!(
        walk(2)[1],
        Err(CapabilityError::IntoHeader { pointer: 0x10 })
    );
    let table = run::<64>(&config);
    // Each is still found, with its problem; the loop's PCIe capability was read before it.
    assert_eq!(table.functions.len(), 3);
    assert_eq!(table.problems.len(), 3);
    assert!(table
        .problems
        .iter()
        .all(|found| matches!(found.problem, Problem::Capabilities(_))));
    assert!(table.functions[0].express.is_some());
}

#[test]
fn a_bridge_that_will_not_take_its_bus_number_is_not_scanned_behind() {
    // Its secondary bus reads 0, its own bus: scanning behind it would find bus 0 again.
    let stubborn = PciFunction::bridge(0x1b36, 1, PciBus::new().with(0, 0, virtio(0x1042)))
        .with_fixed_secondary(0);
    let root = PciBus::new().with(0, 0, stubborn).with(
        1,
        0,
        PciFunction::bridge(0x1b36, 1, PciBus::new().with(0, 0, virtio(0x1042))),
    );
    let config = ecam(root);
    let table = run::<64>(&config);
    assert_eq!(
        problems(&table),
        [Problem::BusNumberNotTaken { wrote: 1, read: 0 }]
    );
    // The next bridge gets bus 1, and only its disk is found behind a bridge.
    let good = at(&table, 0, 1, 0).bridge.unwrap();
    assert_eq!(good.secondary, 1);
    let addresses: Vec<String> = table
        .functions
        .iter()
        .map(|f| f.address.to_string())
        .collect();
    assert_eq!(addresses, ["00:00.0", "00:01.0", "01:00.0"]);
    check_placements(&config, &table);
}

#[test]
fn a_function_that_vanishes_during_its_scan_is_left_out() {
    let vanishing = virtio(0x1042).vanishing_after(12);
    let root = PciBus::new()
        .with(0, 0, vanishing)
        .with(1, 0, virtio(0x1042));
    let config = ecam(root);
    let table = run::<64>(&config);
    assert_eq!(table.functions.len(), 1);
    assert_eq!(table.functions[0].address, Address::new(0, 1, 0).unwrap());
    assert_eq!(table.problems[0].problem, Problem::Vanished);
    check_placements(&config, &table);
}

#[test]
fn bridges_beyond_the_bus_range_or_the_depth_limit_are_not_scanned_behind() {
    // Three bridges and a bus-range of 0..=2.
    let leaf = || PciFunction::bridge(0x1b36, 1, PciBus::new().with(0, 0, virtio(0x1042)));
    let root = PciBus::new()
        .with(0, 0, leaf())
        .with(1, 0, leaf())
        .with(2, 0, leaf());
    let config = ecam(root);
    let mut table = Box::new(Table::<64>::new());
    enumerate(&config, 0, 2, &APERTURES, &mut table);
    assert_eq!(problems(&table), [Problem::BusNumbersExhausted]);
    assert_eq!(table.last_bus, 2);

    // Bridges nested 12 deep: scanned to MAX_DEPTH, then not behind.
    let mut bus = PciBus::new().with(0, 0, virtio(0x1042));
    for _ in 0..12 {
        bus = PciBus::new().with(0, 0, PciFunction::bridge(0x1b36, 1, bus));
    }
    let config = ecam(bus);
    let table = run::<64>(&config);
    assert_eq!(table.functions.len(), usize::from(MAX_DEPTH) + 1);
    assert_eq!(problems(&table), [Problem::TooDeep]);
    check_placements(&config, &table);
}

#[test]
fn more_functions_than_the_table_holds_are_counted_as_left_out() {
    let mut root = PciBus::new();
    for device in 0..32 {
        for function in 0..8 {
            root.insert(device, function, virtio(0x1042));
        }
    }
    let config = ecam(root);
    let table = run::<16>(&config);
    assert_eq!(table.functions.len(), 16);
    assert_eq!(table.problems.len(), MAX_PROBLEMS);
    assert_eq!(table.problems_dropped, 256 - 16 - MAX_PROBLEMS as u32);
    assert!(table
        .problems
        .iter()
        .all(|found| found.problem == Problem::TableFull));
    check_placements(&config, &table);
}

#[test]
fn an_ecam_window_smaller_than_its_bus_range_holds_only_its_buses() {
    let model = EcamModel::new(0, 2, PciBus::new().with(0, 0, virtio(0x1042)));
    let config = Ecam::new(ModelRegisters::new(model), 0, 255);
    assert_eq!(config.buses(), Some((0, 1)));
    assert_eq!(config.read32(Address::new(2, 0, 0).unwrap(), 0), u32::MAX);
    assert_eq!(config.read16(Address::new(0, 0, 0).unwrap(), 0), VIRTIO);
    // Misaligned and past the 4 KiB: all ones, no access.
    assert_eq!(config.read16(Address::new(0, 0, 0).unwrap(), 1), 0xFFFF);
    assert_eq!(
        config.read32(Address::new(0, 0, 0).unwrap(), 4094),
        u32::MAX
    );
    let tiny = Ecam::new(
        ModelRegisters::new(EcamModel::new(0, 1, PciBus::new())),
        4,
        3,
    );
    assert_eq!(tiny.buses(), None);
}

/// A function of random bytes with random writable bits: any header, BARs, pointers.
fn random_function(bytes: Vec<u8>, mask: Vec<u8>) -> PciFunction {
    let mut function = PciFunction::endpoint(0x1234, 0x1, 0)
        .with_raw(0x4, &bytes[4..])
        .with_writable(0x4, &mask[4..]);
    // Vendor stays valid, so the function is scanned at all.
    function = function.with_raw(0, &[0x34, 0x12]);
    function
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_configuration_space_never_panics_and_places_nothing_wrong(
        functions in prop::collection::vec(
            (0u8..32, 0u8..8, prop::collection::vec(any::<u8>(), 256), prop::collection::vec(any::<u8>(), 256)),
            1..12,
        ),
        behind in prop::collection::vec((0u8..32, prop::collection::vec(any::<u8>(), 256), prop::collection::vec(any::<u8>(), 256)), 0..4),
    ) {
        let mut root = PciBus::new();
        for (device, number, bytes, mask) in functions {
            root.insert(device, number, random_function(bytes, mask));
        }
        let mut bus = PciBus::new();
        for (device, bytes, mask) in behind {
            bus.insert(device, 0, random_function(bytes, mask));
        }
        root.insert(31, 0, PciFunction::bridge(0x1b36, 1, bus));
        let config = ecam(root);
        let table = run::<64>(&config);
        prop_assert!(table.functions.len() <= 64);
        check_placements(&config, &table);
    }
}

#[test]
fn a_card_plugged_into_a_slot_is_enumerated_in_its_reserved_windows_and_ejected_on_request() {
    let root = PciBus::new()
        .with(0, 0, host_bridge())
        .with(1, 0, PciFunction::root_port(1, PciBus::link()))
        .with(2, 0, PciFunction::root_port(2, PciBus::link()));
    let config = ecam(root);
    let boot = run::<64>(&config);
    assert!(boot.problems.is_empty(), "{:?}", boot.problems);
    let port_index = 2;
    let port = boot.functions[port_index];
    assert_eq!(port.address, Address::new(0, 2, 0).unwrap());
    let express = port.express.unwrap();
    hotplug::enable(&config, port.address, &express);
    let model = |config: &Config| config.registers().irq_level();
    assert!(!model(&config), "no event yet");

    // Plug: the port interrupts; the slot reads as a card that arrived.
    plug(&config, 2, virtio(0x1042));
    assert!(model(&config), "presence and link events interrupt");
    let state = hotplug::read_and_clear(&config, port.address, &express);
    assert_eq!(state.change(false), SlotChange::Arrived);
    assert!(!model(&config), "the events are cleared by the read");

    let mut card = Box::new(Table::<8>::new());
    enumerate_behind(&config, &boot, port_index, &APERTURES, &mut card);
    assert!(card.problems.is_empty(), "{:?}", card.problems);
    assert_eq!(card.functions.len(), 1);
    let disk = card.functions[0];
    assert_eq!(disk.address, Address::new(2, 0, 0).unwrap());
    // Its BARs inside the port's reserved windows.
    let bridge = port.bridge.unwrap();
    for bar in disk.bars.iter().flatten() {
        let (address, _) = bar.placed.unwrap();
        let window = bridge.window(bar.request.space());
        let base = window.base.unwrap();
        assert!(base <= address && address + bar.request.size <= base + window.size);
        assert_eq!(
            warden_pci::bars::read_bar(&config, disk.address, &bar.request),
            address
        );
    }
    assert_eq!(
        config.read16(disk.address, register::COMMAND) & command::MEMORY,
        command::MEMORY
    );
    // INTA of the card (device 0 behind the port) is INTA of the port's device 2 at the host
    // bridge, whose interrupt-map takes it from there.
    assert_eq!(
        disk.intx,
        Some(Intx {
            device: 0,
            function: 0,
            pin: 1
        })
    );
    assert_eq!(
        route_intx(&boot, port_index, disk.intx.unwrap()),
        Intx {
            device: 2,
            function: 0,
            pin: 1
        }
    );

    // Orderly removal: the button asks; software turns the power off; the card goes.
    assert!(config
        .registers()
        .model()
        .function_mut(0, 2, 0)
        .unwrap()
        .press_attention_button());
    assert!(model(&config));
    let state = hotplug::read_and_clear(&config, port.address, &express);
    assert_eq!(state.change(true), SlotChange::EjectRequested);
    hotplug::set_power(&config, port.address, &express, false);
    assert_eq!(
        config.read16(disk.address, register::VENDOR_ID),
        0xFFFF,
        "ejected"
    );
    let state = hotplug::read_and_clear(&config, port.address, &express);
    assert_eq!(state.change(true), SlotChange::Gone);

    // Power back on and plug again: the same addresses (nothing else moved).
    hotplug::set_power(&config, port.address, &express, true);
    let _ = hotplug::read_and_clear(&config, port.address, &express);
    plug(&config, 2, virtio(0x1042));
    assert_eq!(
        hotplug::read_and_clear(&config, port.address, &express).change(false),
        SlotChange::Arrived
    );
    let mut again = Box::new(Table::<8>::new());
    enumerate_behind(&config, &boot, port_index, &APERTURES, &mut again);
    assert_eq!(again.functions[0].bars, disk.bars);

    // A surprise removal: gone while bound.
    let pulled = config
        .registers()
        .model()
        .function_mut(0, 2, 0)
        .unwrap()
        .pull();
    assert!(pulled.is_some());
    assert_eq!(
        hotplug::read_and_clear(&config, port.address, &express).change(true),
        SlotChange::Gone
    );
    // Pulled and another plugged between two reads: the old card is gone first, then the
    // new one arrives.
    plug(&config, 2, virtio(0x1044));
    let _ = config
        .registers()
        .model()
        .function_mut(0, 2, 0)
        .unwrap()
        .pull();
    plug(&config, 2, virtio(0x1041));
    let state = hotplug::read_and_clear(&config, port.address, &express);
    assert_eq!(state.change(true), SlotChange::Gone);
    assert_eq!(state.change(false), SlotChange::Arrived);
    // The other slot never saw anything.
    let other = boot.functions[1];
    let quiet = hotplug::read_and_clear(&config, other.address, &other.express.unwrap());
    assert_eq!(quiet.change(false), SlotChange::Nothing);
}

#[test]
fn a_card_too_large_for_its_slots_reserve_gets_no_room_and_nothing_else_moves() {
    let root = PciBus::new().with(0, 0, PciFunction::root_port(1, PciBus::link()));
    let config = ecam(root);
    let boot = run::<64>(&config);
    let big = PciFunction::endpoint(0x1234, 1, 0).with_bar(
        0,
        BarSpec::Memory32 {
            size: 0x40_0000,
            prefetchable: false,
        },
    );
    plug(&config, 0, big);
    let mut card = Box::new(Table::<8>::new());
    enumerate_behind(&config, &boot, 0, &APERTURES, &mut card);
    assert_eq!(card.functions.len(), 1);
    assert!(card.functions[0].bars[0].unwrap().placed.is_none());
    assert_eq!(
        problems(&card),
        [Problem::BarNoRoom {
            index: 0,
            size: 0x40_0000
        }]
    );
    assert_eq!(
        config.read16(card.functions[0].address, register::COMMAND) & command::MEMORY,
        0
    );
    // A port that is no bridge, or out of the table: nothing.
    enumerate_behind(&config, &boot, 7, &APERTURES, &mut card);
    assert!(card.functions.is_empty());
}

#[test]
fn a_bar_that_reads_wrong_or_a_rom_left_enabled_do_not_decode() {
    // BAR 0 of the reserved memory type; a ROM that firmware left enabled.
    let odd = PciFunction::endpoint(0x1234, 1, 0)
        .with_raw(register::BAR0, &[0b110, 0, 0, 0])
        .with_writable(register::BAR0, &[0, 0xF0, 0xFF, 0xFF])
        .with_bar(
            2,
            BarSpec::Memory32 {
                size: 0x1000,
                prefetchable: false,
            },
        )
        .with_raw(register::ROM, &[0x01, 0, 0, 0xF0])
        .with_writable(register::ROM, &[0x01, 0xF8, 0xFF, 0xFF]);
    let config = ecam(PciBus::new().with(0, 0, odd));
    let table = run::<64>(&config);
    let odd = at(&table, 0, 0, 0);
    assert!(odd.broken_bar);
    assert_eq!(
        problems(&table),
        [Problem::Bar(warden_pci::BarError::ReservedType {
            index: 0
        })]
    );
    // Its good BAR is placed, but nothing decodes: BAR 0 holds an address nobody gave it.
    assert!(odd.bars[2].unwrap().placed.is_some());
    assert_eq!(
        config.read16(odd.address, register::COMMAND) & command::MEMORY,
        0
    );
    assert_eq!(
        config.read32(odd.address, register::ROM) & 1,
        0,
        "the ROM is off"
    );
    check_placements(&config, &table);
}

#[test]
fn bus_numbers_left_on_a_later_bridge_do_not_capture_the_buses_being_numbered() {
    // The second bridge still claims buses 1-5 from firmware when the first is given bus 1:
    // both would answer for bus 1 (the model answers neither) unless every bridge on the bus
    // is closed first.
    let stale = PciFunction::bridge(0x1b36, 1, PciBus::new().with(0, 0, virtio(0x1044)))
        .with_raw(register::SECONDARY_BUS, &[1, 5]);
    let root = PciBus::new()
        .with(
            0,
            0,
            PciFunction::bridge(0x1b36, 1, PciBus::new().with(0, 0, virtio(0x1042))),
        )
        .with(1, 0, stale);
    let config = ecam(root);
    let table = run::<64>(&config);
    assert!(table.problems.is_empty(), "{:?}", table.problems);
    assert_eq!(at(&table, 1, 0, 0).device, 0x1042);
    assert_eq!(at(&table, 2, 0, 0).device, 0x1044);
    check_placements(&config, &table);
}

#[test]
fn a_bridge_without_io_or_prefetchable_windows_forwards_what_it_can() {
    // No I/O window and no prefetchable window (their registers keep nothing written).
    let narrow = PciFunction::bridge(
        0x1b36,
        1,
        PciBus::new().with(0, 0, virtio(0x1042).with_bar(0, BarSpec::Io { size: 0x40 })),
    )
    .with_raw(register::IO_BASE, &[0, 0])
    .with_writable(register::IO_BASE, &[0, 0])
    .with_raw(register::PREFETCHABLE_BASE, &[0; 4])
    .with_writable(register::PREFETCHABLE_BASE, &[0; 4]);
    let config = ecam(PciBus::new().with(0, 0, narrow));
    let table = run::<64>(&config);
    let bridge = at(&table, 0, 0, 0).bridge.unwrap();
    assert!(!bridge.forwards(PciSpace::Io) && !bridge.forwards(PciSpace::Prefetchable));
    assert_eq!(
        problems(&table),
        [Problem::NoWindow {
            space: PciSpace::Io
        }]
    );
    let disk = at(&table, 1, 0, 0);
    assert!(disk.bars[0].unwrap().placed.is_none(), "no I/O behind it");
    // The 64-bit prefetchable BAR goes through the memory window, below 4 GiB (Linux's
    // fallback).
    let (bar4, _) = disk.bars[4].unwrap().placed.unwrap();
    assert!(bar4 < 1 << 32);
    let command = config.read16(disk.address, register::COMMAND);
    assert_eq!(command & (command::IO | command::MEMORY), command::MEMORY);
    check_placements(&config, &table);
}

#[test]
fn a_64_bit_range_below_4_gib_serves_32_bit_bars_and_overlapping_ranges_are_ignored() {
    let only_wide = [
        PciAperture {
            space: PciSpace::Prefetchable,
            pci_base: 0x1000_0000,
            cpu_base: 0x1000_0000,
            size: 0x1000_0000,
        },
        // Overlaps the first: ignored.
        PciAperture {
            space: PciSpace::Memory,
            pci_base: 0x1800_0000,
            cpu_base: 0x1800_0000,
            size: 0x1000_0000,
        },
        // Its end names no address: ignored.
        PciAperture {
            space: PciSpace::Io,
            pci_base: u64::MAX - 0xFF,
            cpu_base: 0,
            size: 0x1000,
        },
    ];
    let config = ecam(PciBus::new().with(0, 0, virtio(0x1042)));
    let mut table = Box::new(Table::<64>::new());
    enumerate(&config, 0, 255, &only_wide, &mut table);
    assert_eq!(table.apertures_ignored, 2);
    assert!(table.problems.is_empty(), "{:?}", table.problems);
    let disk = at(&table, 0, 0, 0);
    assert!(disk.bars.iter().flatten().all(|bar| bar.placed.is_some()));
    check_placements_in(&config, &table, &only_wide[..1]);
}

#[test]
fn a_bridge_that_drops_its_memory_window_forwards_no_memory() {
    // The memory limit register keeps nothing: the window reads as closed after it is written.
    let leaky = PciFunction::bridge(0x1b36, 1, PciBus::new().with(0, 0, virtio(0x1042)))
        .with_writable(register::MEMORY_LIMIT, &[0, 0]);
    let config = ecam(PciBus::new().with(0, 0, leaky));
    let table = run::<64>(&config);
    assert_eq!(
        problems(&table),
        [Problem::WindowNotKept {
            space: PciSpace::Memory
        }]
    );
    let bridge = at(&table, 0, 0, 0);
    assert_eq!(
        config.read16(bridge.address, register::COMMAND) & command::MEMORY,
        0,
        "the bridge forwards no memory"
    );
}
