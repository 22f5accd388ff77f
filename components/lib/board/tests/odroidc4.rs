//! The Odroid C4 board description (platform/odroidc4/board.dts, compiled by dtc through
//! scripts/board-dtb.sh): addresses behind Amlogic's bus `ranges`, SPIs of the GIC-400.
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
fn odroidc4_dts_translates_the_ao_uart_through_the_aobus_ranges() {
    let blob = board_dtb("odroidc4");
    let board = Board::new(&blob).unwrap();
    assert_eq!(board.model(), Some("Hardkernel ODROID-C4"));
    assert_eq!(board.compatible(), Some("hardkernel,odroid-c4"));

    let devices = all_devices_read_cleanly(&board);
    let enabled = devices
        .iter()
        .filter(|item| item.as_ref().unwrap().enabled)
        .count();
    println!("Odroid C4: {} devices, {enabled} enabled", devices.len());

    let (soc_index, _) = device(&devices, "soc");
    let (aobus_index, aobus) = device(&devices, "bus@ff800000");
    assert_eq!(
        aobus.mmio.as_slice(),
        [MmioWindow {
            base: 0xff80_0000,
            size: 0x10_0000
        }]
    );
    assert_eq!(aobus.parent, Some(soc_index));

    let (_, uart) = device(&devices, "serial@3000");
    assert_eq!(
        uart.compatible.as_slice(),
        [
            "amlogic,meson-g12a-uart",
            "amlogic,meson-gx-uart",
            "amlogic,meson-ao-uart"
        ]
    );
    assert_eq!(
        uart.mmio.as_slice(),
        [MmioWindow {
            base: 0xff80_3000,
            size: 0x18
        }]
    );
    assert_eq!(uart.irqs.as_slice(), [225]);
    assert!(uart.enabled);
    assert_eq!((uart.depth, uart.parent), (3, Some(aobus_index)));

    let (_, uart_b) = device(&devices, "serial@23000");
    assert_eq!(
        uart_b.mmio.as_slice(),
        [MmioWindow {
            base: 0xffd2_3000,
            size: 0x18
        }]
    );
    assert_eq!(uart_b.irqs.as_slice(), [32 + 75]);
    assert!(!uart_b.enabled, "EE UART B is disabled on the C4");

    // Two levels of `ranges`: apb (0xff600000) then hiu (+0x3c000).
    let (_, hhi) = device(&devices, "system-controller@0");
    assert_eq!(
        hhi.mmio.as_slice(),
        [MmioWindow {
            base: 0xff63_c000,
            size: 0x400
        }]
    );

    let (_, gic) = device(&devices, "interrupt-controller@ffc01000");
    assert_eq!(gic.compatible.as_slice(), ["arm,gic-400"]);
    assert_eq!(gic.mmio.len(), 4);
    assert_eq!(
        gic.mmio[0],
        MmioWindow {
            base: 0xffc0_1000,
            size: 0x1000
        }
    );
    assert_eq!(gic.irqs.as_slice(), [25]);

    let (_, ethernet) = device(&devices, "ethernet@ff3f0000");
    assert_eq!(ethernet.compatible.len(), 3);
    assert_eq!(
        ethernet.mmio.as_slice(),
        [
            MmioWindow {
                base: 0xff3f_0000,
                size: 0x1_0000
            },
            MmioWindow {
                base: 0xff63_4540,
                size: 0x8
            }
        ]
    );
    assert_eq!(ethernet.irqs.as_slice(), [40]);
    let (_, emmc) = device(&devices, "mmc@ffe07000");
    assert_eq!(emmc.irqs.as_slice(), [32 + 191]);
    assert!(emmc.enabled);
    let (_, timer) = device(&devices, "timer");
    assert_eq!(timer.irqs.as_slice(), [29, 30, 27, 26]);

    // Under /cpus and /reserved-memory there are `compatible`s but no devices.
    for item in &devices {
        let name = item.as_ref().unwrap().path_name;
        assert!(
            !name.starts_with("cpu@") && name != "linux,cma",
            "{name} is no device"
        );
    }
}
