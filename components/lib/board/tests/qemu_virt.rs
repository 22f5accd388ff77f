//! The QEMU virt machine's own device tree (dumped by QEMU through scripts/board-dtb.sh) read as
//! the device manager reads it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{all_devices_read_cleanly, board_dtb, device};
use warden_board::Board;
use warden_vocabulary::MmioWindow;

#[test]
fn qemu_virt_dtb_lists_the_virt_machines_devices() {
    let blob = board_dtb("qemu_virt_aarch64");
    let board = Board::new(&blob).unwrap();
    assert_eq!(board.model(), Some("linux,dummy-virt"));
    assert_eq!(board.compatible(), Some("linux,dummy-virt"));

    let devices = all_devices_read_cleanly(&board);
    println!("QEMU virt: {} devices", devices.len());

    let (_, uart) = device(&devices, "pl011@9000000");
    assert_eq!(uart.compatible.as_slice(), ["arm,pl011", "arm,primecell"]);
    assert_eq!(
        uart.mmio.as_slice(),
        [MmioWindow {
            base: 0x900_0000,
            size: 0x1000
        }]
    );
    assert_eq!(uart.irqs.as_slice(), [33]);
    assert!(uart.enabled && !uart.interrupt_parent_not_gic);
    assert_eq!((uart.depth, uart.parent), (1, None));

    let (_, rtc) = device(&devices, "pl031@9010000");
    assert_eq!(rtc.compatible.as_slice(), ["arm,pl031", "arm,primecell"]);
    assert_eq!(
        rtc.mmio.as_slice(),
        [MmioWindow {
            base: 0x901_0000,
            size: 0x1000
        }]
    );
    assert_eq!(rtc.irqs.as_slice(), [34]);

    for slot in 0..32_u32 {
        let base = 0xa00_0000 + 0x200 * u64::from(slot);
        let (_, virtio) = device(&devices, &format!("virtio_mmio@{base:x}"));
        assert_eq!(virtio.compatible.as_slice(), ["virtio,mmio"]);
        assert_eq!(virtio.mmio.as_slice(), [MmioWindow { base, size: 0x200 }]);
        assert_eq!(virtio.irqs.as_slice(), [48 + slot]);
    }
    let virtio_count = devices
        .iter()
        .filter(|item| {
            item.as_ref()
                .is_ok_and(|device| device.compatible.first() == Some(&"virtio,mmio"))
        })
        .count();
    assert_eq!(virtio_count, 32);

    // The GIC (v2 with the virtualization extension: distributor, CPU, hypervisor and virtual
    // CPU interfaces) and its maintenance interrupt, PPI 9.
    let (gic_index, gic) = device(&devices, "intc@8000000");
    assert_eq!(gic.compatible.as_slice(), ["arm,cortex-a15-gic"]);
    assert_eq!(gic.mmio.len(), 4);
    assert_eq!(
        gic.mmio[0],
        MmioWindow {
            base: 0x800_0000,
            size: 0x1_0000
        }
    );
    assert_eq!(gic.irqs.as_slice(), [25]);
    let (_, v2m) = device(&devices, "v2m@8020000");
    assert_eq!((v2m.depth, v2m.parent), (2, Some(gic_index)));
    assert_eq!(
        v2m.mmio.as_slice(),
        [MmioWindow {
            base: 0x802_0000,
            size: 0x1000
        }]
    );

    let (_, timer) = device(&devices, "timer");
    assert_eq!(timer.irqs.as_slice(), [29, 30, 27, 26]);
    assert!(timer.mmio.is_empty());
    let (_, gpio) = device(&devices, "pl061@9030000");
    assert_eq!(gpio.irqs.as_slice(), [39]);
    let (_, flash) = device(&devices, "flash@0");
    assert_eq!(
        flash.mmio.as_slice(),
        [
            MmioWindow {
                base: 0,
                size: 0x400_0000
            },
            MmioWindow {
                base: 0x400_0000,
                size: 0x400_0000
            }
        ]
    );
    let (_, pcie) = device(&devices, "pcie@10000000");
    assert_eq!(
        pcie.mmio.as_slice(),
        [MmioWindow {
            base: 0x40_1000_0000,
            size: 0x1000_0000
        }]
    );
    for name in [
        "psci",
        "fw-cfg@9020000",
        "platform-bus@c000000",
        "gpio-keys",
        "pmu",
        "apb-pclk",
    ] {
        device(&devices, name);
    }
    // /cpus and /chosen hold no devices, and `memory` has no `compatible`.
    for item in &devices {
        let name = item.as_ref().unwrap().path_name;
        assert!(
            !name.starts_with("cpu@") && !name.starts_with("memory"),
            "{name} is no device"
        );
    }
}

#[test]
fn qemu_virts_pcie_host_bridge_gives_its_buses_apertures_and_intx_routes() {
    use warden_pci::{PciAperture, PciSpace};
    let blob = board_dtb("qemu_virt_aarch64");
    let board = Board::new(&blob).unwrap();
    let devices = all_devices_read_cleanly(&board);
    let (_, host) = device(&devices, "pcie@10000000");
    assert_eq!(
        host.mmio.as_slice(),
        [MmioWindow {
            base: 0x40_1000_0000,
            size: 0x1000_0000
        }],
        "the ECAM window (QEMU's high ECAM)"
    );
    let pci = host.pci.as_ref().expect("a PCI host bridge");
    assert_eq!((pci.first_bus, pci.last_bus), (0, 255));
    assert_eq!(
        pci.apertures.as_slice(),
        [
            PciAperture {
                space: PciSpace::Io,
                pci_base: 0,
                cpu_base: 0x3eff_0000,
                size: 0x1_0000
            },
            PciAperture {
                space: PciSpace::Memory,
                pci_base: 0x1000_0000,
                cpu_base: 0x1000_0000,
                size: 0x2eff_0000
            },
            PciAperture {
                space: PciSpace::Prefetchable,
                pci_base: 0x80_0000_0000,
                cpu_base: 0x80_0000_0000,
                size: 0x80_0000_0000
            },
        ]
    );
    assert_eq!(pci.intx.len(), 16);
    assert!(!pci.intx_not_gic && !pci.intx_malformed);
    // QEMU's swizzled map: device d, pin p goes to SPI 3 + (d + p - 1) % 4.
    for device in 0..8u8 {
        for pin in 1..=4u8 {
            let spi = 3 + (u32::from(device) + u32::from(pin) - 1) % 4;
            assert_eq!(
                pci.intid(device, 0, pin),
                Some(32 + spi),
                "device {device} pin {pin}"
            );
        }
    }
    assert_eq!(pci.intid(0, 0, 5), None);
}
