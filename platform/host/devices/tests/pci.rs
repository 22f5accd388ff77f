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
    enumerate, enumerate_behind, route_intx, Address, Aperture, ConfigSpace, Ecam, Intx, Problem,
    Space, Table,
};

type Config = Ecam<ModelRegisters<EcamModel>>;

/// QEMU virt's host bridge windows (its `ranges`).
const APERTURES: [Aperture; 3] = [
    Aperture {
        space: Space::Io,
        pci_base: 0,
        cpu_base: 0x3eff_0000,
        size: 0x1_0000,
    },
    Aperture {
        space: Space::Memory,
        pci_base: 0x1000_0000,
        cpu_base: 0x1000_0000,
        size: 0x2eff_0000,
    },
    Aperture {
        space: Space::Prefetchable,
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

/// Every placement is inside its bridge's window (or an aperture on the root bus), aligned,
/// at the CPU address its aperture maps, and no two overlap; every register holds it.
fn check_placements<const N: usize>(config: &Config, table: &Table<N>) {
    let mut ranges: Vec<(u64, u64, String)> = Vec::new();
    for function in &table.functions {
        for bar in function.bars.iter().flatten() {
            let Some((bus, cpu)) = bar.placed else {
                continue;
            };
            let size = bar.request.size;
            assert_eq!(
                bus % size,
                0,
                "{} BAR {} aligned",
                function.address,
                bar.request.index
            );
            let space = Space::of(&bar.request);
            let container = match function.parent {
                Some(parent) => {
                    let bridge = table.functions[usize::from(parent)].bridge.unwrap();
                    let window = bridge.window(space);
                    let base = window.base.expect("a BAR behind a closed window");
                    (base, base + window.size)
                }
                None => APERTURES
                    .iter()
                    .find(|a| a.pci_base <= bus && bus + size <= a.pci_base + a.size)
                    .map(|a| (a.pci_base, a.pci_base + a.size))
                    .expect("a root BAR outside every aperture"),
            };
            assert!(
                container.0 <= bus && bus + size <= container.1,
                "{} BAR {} inside its window",
                function.address,
                bar.request.index
            );
            let aperture = APERTURES
                .iter()
                .find(|a| a.pci_base <= bus && bus < a.pci_base + a.size)
                .unwrap();
            assert_eq!(cpu, aperture.cpu_base + (bus - aperture.pci_base));
            assert_eq!(
                warden_pci::bars::read_bar(config, function.address, &bar.request),
                bus
            );
            ranges.push((
                bus,
                bus + size,
                format!("{} BAR {}", function.address, bar.request.index),
            ));
        }
    }
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
    for (space, reserve) in Space::ALL.iter().zip(HOTPLUG_RESERVE) {
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
    assert_eq!(at(&table, 0, 1, 0).intx, Some(Intx { device: 1, pin: 1 }));
    assert_eq!(disk.intx, Some(Intx { device: 2, pin: 1 }));
    assert_eq!(
        at(&table, 3, 2, 0).intx,
        Some(Intx { device: 4, pin: 4 }),
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
        let window = bridge.window(Space::of(&bar.request));
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
    assert_eq!(disk.intx, Some(Intx { device: 0, pin: 1 }));
    assert_eq!(
        route_intx(&boot, port_index, disk.intx.unwrap()),
        Intx { device: 2, pin: 1 }
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
