//! Warden's system descriptions (the top-level `system.xml` for QEMU virt and
//! `platform/odroidc4/system.xml`): valid, and shaped as Warden needs — the device manager is
//! the parent of every driver PD (so their faults reach it) and of higher priority than every
//! PD that calls it, and each driver has its two rings mapped on both sides — and in agreement
//! with the PD crates: every channel id, child id and setvar symbol a PD's `interface` module
//! names is the one the description gives it, so the XML and the Rust code cannot drift apart.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::Path;
use warden_host::sdf;

/// Every board's system description, relative to the repository.
const DESCRIPTIONS: [&str; 4] = [
    "system.xml",
    "platform/odroidc4/system.xml",
    "platform/qemu_virt_aarch64/restart_demo.xml",
    "platform/qemu_virt_aarch64/sddf_serial.xml",
];

fn parse(relative: &str) -> sdf::System {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../..")
        .join(relative);
    sdf::parse_file(&path).unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn the_system_descriptions_have_the_shape_warden_needs() {
    for description in DESCRIPTIONS {
        has_the_shape_warden_needs(&parse(description));
    }
}

fn has_the_shape_warden_needs(system: &sdf::System) {
    let pds = &system.protection_domains;
    let manager = pds
        .iter()
        .position(|pd| pd.name == "device_manager")
        .unwrap();
    assert_eq!(pds[manager].parent, None, "the manager is a root PD");
    // Every driver PD (it maps the manager's ring as `from_manager`) is the manager's child n,
    // on the manager's channel n, with rings to_drivern / from_drivern on the manager's side.
    for (index, pd) in pds.iter().enumerate() {
        if !pd
            .maps
            .iter()
            .any(|map| map.setvar_vaddr.as_deref() == Some("from_manager"))
        {
            continue;
        }
        let Some((parent, n)) = pd.parent else {
            panic!(
                "driver PD '{}' must be a child of the device manager",
                pd.name
            );
        };
        assert_eq!(parent, manager, "'{}' must be the manager's child", pd.name);
        assert!(
            warden_device_manager::interface::DRIVER_PDS.contains(&(n as u8)),
            "'{}': child id {n} is not a driver PD slot",
            pd.name
        );
        let [to_driver, from_driver] = warden_device_manager::interface::driver_regions(n as u8);
        for ((manager_vaddr, manager_size), driver_symbols) in [to_driver, from_driver]
            .iter()
            .zip(warden_driver::MANAGER_REGIONS)
        {
            let manager_map = map_with(&pds[manager], (manager_vaddr, manager_size));
            let driver_map = map_with(pd, driver_symbols);
            assert_eq!(
                manager_map.region, driver_map.region,
                "'{manager_vaddr}' (manager) and '{}' ('{}') must be one ring",
                driver_symbols.0, pd.name
            );
        }
        let channel = channel_between(system, manager, index)
            .unwrap_or_else(|| panic!("no channel between the manager and '{}'", pd.name));
        for end in &channel.ends {
            let (expected, pp) = if end.pd == manager {
                (n, false)
            } else {
                (u64::from(warden_driver::MANAGER.index()), true)
            };
            assert_eq!(end.id, expected, "channel id of '{}'", pds[end.pd].name);
            assert_eq!(end.pp, pp, "pp of '{}'", pds[end.pd].name);
        }
    }
    // The Microkit's rule for calls: the callee has a higher priority than the caller.
    for channel in &system.channels {
        for (caller, callee) in [
            (&channel.ends[0], &channel.ends[1]),
            (&channel.ends[1], &channel.ends[0]),
        ] {
            if caller.pp {
                assert!(
                    pds[callee.pd].priority > pds[caller.pd].priority,
                    "'{}' calls '{}', which must have a higher priority",
                    pds[caller.pd].name,
                    pds[callee.pd].name
                );
            }
        }
    }
}

#[test]
fn every_pd_logs_through_the_log_printer() {
    for description in DESCRIPTIONS {
        logs_through_the_printer(&parse(description));
    }
}

/// The log printer is passive and of the highest priority (a call runs on its caller's budget
/// and no other line starts while one is printed); every other PD calls it on the runtime's log
/// channel, with `notify="false"` on both ends (a notification means nothing to it).
fn logs_through_the_printer(system: &sdf::System) {
    let printer = pd_index(system, "log_printer");
    let pds = &system.protection_domains;
    assert!(pds[printer].passive, "the log printer must be passive");
    for (index, pd) in pds.iter().enumerate() {
        if index == printer {
            continue;
        }
        assert!(
            pd.priority < pds[printer].priority,
            "'{}' must have a lower priority than the log printer",
            pd.name
        );
        calls(
            system,
            index,
            warden_microkit::log_line::CHANNEL.index(),
            printer,
        );
        let channel = channel_between(system, index, printer).unwrap();
        assert!(
            channel.ends.iter().all(|end| !end.notify),
            "'{}' and the log printer: notify=\"false\" on both ends",
            pd.name
        );
    }
}

fn channel_between(system: &sdf::System, first: usize, second: usize) -> Option<&sdf::Channel> {
    system.channels.iter().find(|channel| {
        let ends = [channel.ends[0].pd, channel.ends[1].pd];
        ends.contains(&first) && ends.contains(&second)
    })
}

/// `pd`'s end of a channel with id `id` goes to `peer`.
fn has_channel(system: &sdf::System, pd: usize, id: u8, peer: usize) {
    let found = system.channels.iter().any(|channel| {
        let [first, second] = &channel.ends;
        (first.pd == pd && first.id == u64::from(id) && second.pd == peer)
            || (second.pd == pd && second.id == u64::from(id) && first.pd == peer)
    });
    assert!(
        found,
        "'{}' has no channel {id} to '{}'",
        system.protection_domains[pd].name, system.protection_domains[peer].name
    );
}

/// `caller`'s end of its channel `id` goes to `callee` and may call it (`pp="true"`); the
/// kernel checks the priorities (the host's parser too).
fn calls(system: &sdf::System, caller: usize, id: u8, callee: usize) {
    has_channel(system, caller, id, callee);
    let channel = channel_between(system, caller, callee).unwrap();
    let end = channel.ends.iter().find(|end| end.pd == caller).unwrap();
    assert!(
        end.pp,
        "'{}' calls '{}': its end needs pp=\"true\"",
        system.protection_domains[caller].name, system.protection_domains[callee].name
    );
}

/// `pd` maps a device or DMA region under (vaddr, size) symbols and learns its physical
/// address from a `region_paddr` setvar of the same region.
fn device_map(pd: &sdf::ProtectionDomain, (vaddr, size, paddr): (&str, &str, &str)) -> String {
    let map = map_with(pd, (vaddr, size));
    let setvar = pd
        .setvars
        .iter()
        .find(|setvar| setvar.symbol == paddr)
        .unwrap_or_else(|| panic!("'{}' has no <setvar symbol=\"{paddr}\">", pd.name));
    assert_eq!(
        setvar.region, map.region,
        "'{}': '{paddr}' must be the physical address of the region mapped as '{vaddr}'",
        pd.name
    );
    map.region.clone()
}

fn has_irq(pd: &sdf::ProtectionDomain, irq: u32, channel: u8) {
    assert!(
        pd.irqs
            .iter()
            .any(|entry| entry.irq == u64::from(irq) && entry.id == u64::from(channel)),
        "'{}' needs <irq irq=\"{irq}\" id=\"{channel}\"/>",
        pd.name
    );
}

fn pd_index(system: &sdf::System, name: &str) -> usize {
    system
        .protection_domains
        .iter()
        .position(|pd| pd.name == name)
        .unwrap_or_else(|| panic!("no protection domain '{name}'"))
}

/// The map of `pd` whose `setvar_vaddr` is `vaddr`, checked to set `size` as its size symbol.
fn map_with<'a>(pd: &'a sdf::ProtectionDomain, (vaddr, size): (&str, &str)) -> &'a sdf::Map {
    let map = pd
        .maps
        .iter()
        .find(|map| map.setvar_vaddr.as_deref() == Some(vaddr))
        .unwrap_or_else(|| panic!("'{}' has no map with setvar_vaddr=\"{vaddr}\"", pd.name));
    assert_eq!(
        map.setvar_size.as_deref(),
        Some(size),
        "'{}': the map setting '{vaddr}' must set '{size}' (the PD reads both)",
        pd.name
    );
    map
}

#[test]
fn the_pd_crates_and_the_qemu_virt_system_description_agree() {
    let system = parse("system.xml");
    let pds = &system.protection_domains;
    let index = |name| pd_index(&system, name);
    let (manager, uart, rtc, bus, blk, rng, client, shell) = (
        index("device_manager"),
        index("uart_driver"),
        index("rtc_driver"),
        index("virtio_mmio_driver"),
        index("blk_driver"),
        index("rng_driver"),
        index("client"),
        index("shell"),
    );
    for driver in [uart, rtc, bus, blk, rng] {
        assert_eq!(pds[driver].parent.map(|(parent, _)| parent), Some(manager));
    }
    {
        use pl011_driver::interface as uart_interface;
        device_map(&pds[uart], uart_interface::DEVICE_REGIONS[0]);
        has_irq(&pds[uart], 33, uart_interface::UART_IRQ.index());
    }
    {
        use pl031_driver::interface as rtc_interface;
        device_map(&pds[rtc], rtc_interface::DEVICE_REGIONS[0]);
        has_channel(&system, rtc, rtc_interface::CLIENT.index(), client);
        has_channel(
            &system,
            client,
            warden_demo_client::interface::CLOCK.index(),
            rtc,
        );
    }
    {
        use virtio_mmio_driver::interface as bus_interface;
        device_map(&pds[bus], bus_interface::DEVICE_REGIONS[0]);
        for (intid, channel) in bus_interface::HOTPLUG_IRQS {
            has_irq(&pds[bus], intid, channel.index());
        }
    }
    {
        use virtio_blk_driver::interface as blk_interface;
        for symbols in blk_interface::DEVICE_REGIONS {
            device_map(&pds[blk], symbols);
        }
        has_irq(&pds[blk], 79, blk_interface::DISK_IRQ.index());
        has_channel(&system, blk, blk_interface::CLIENT.index(), client);
        has_channel(
            &system,
            client,
            warden_demo_client::interface::BLOCK.index(),
            blk,
        );
        // The queue pair and the data region are shared with the client, symbol for symbol.
        for symbols in warden_demo_client::interface::REGIONS {
            assert!(blk_interface::REGIONS.contains(&symbols));
            assert_eq!(
                map_with(&pds[blk], symbols).region,
                map_with(&pds[client], symbols).region,
                "'{}' must be one region for the driver and the client",
                symbols.0
            );
        }
        // So are sDDF's regions (both PDs name `sddf_block::SYMBOLS`; one region each, so
        // both sides derive the same queue capacity), the storage information read-only for
        // the client (only the driver fills it in).
        assert_eq!(
            warden_demo_client::interface::SDDF_REGIONS,
            blk_interface::SDDF_REGIONS
        );
        for symbols in blk_interface::SDDF_REGIONS {
            let (driver, client) = (
                map_with(&pds[blk], symbols),
                map_with(&pds[client], symbols),
            );
            assert_eq!(
                driver.region, client.region,
                "'{}' must be one region for the driver and the client",
                symbols.0
            );
            assert!(
                driver.permissions.write,
                "the driver writes '{}'",
                symbols.0
            );
            assert_eq!(
                client.permissions.write,
                symbols.0 != "blk_storage_info",
                "the client's '{}' map",
                symbols.0
            );
        }
    }
    {
        use virtio_rng_driver::interface as rng_interface;
        for symbols in rng_interface::DEVICE_REGIONS {
            device_map(&pds[rng], symbols);
        }
        has_irq(&pds[rng], 78, rng_interface::DEVICE_IRQ.index());
        has_channel(&system, rng, rng_interface::CLIENT.index(), client);
        has_channel(
            &system,
            client,
            warden_demo_client::interface::ENTROPY.index(),
            rng,
        );
    }
    // The virtio drivers share the transports' region (each maps it; seL4 allows that for
    // device memory), but each has its own DMA region.
    let virtio = device_map(&pds[bus], ("virtio_vaddr", "virtio_size", "virtio_paddr"));
    for driver in [blk, rng] {
        assert_eq!(
            device_map(
                &pds[driver],
                ("virtio_vaddr", "virtio_size", "virtio_paddr")
            ),
            virtio
        );
    }
    assert_ne!(
        device_map(&pds[blk], ("dma_vaddr", "dma_size", "dma_paddr")),
        device_map(&pds[rng], ("dma_vaddr", "dma_size", "dma_paddr"))
    );
    // The shell: the console's rings with the UART driver (lines in, output out), calls into
    // the clock, the entropy source and the manager (on one of its client channels).
    {
        use warden_shell::interface as shell_interface;
        console_and_shell(&system, uart, pl011_driver::interface::SHELL_REGIONS);
        has_channel(&system, uart, pl011_driver::interface::SHELL.index(), shell);
        calls(&system, shell, shell_interface::CLOCK.index(), rtc);
        has_channel(&system, rtc, pl031_driver::interface::SHELL.index(), shell);
        calls(&system, shell, shell_interface::ENTROPY.index(), rng);
        has_channel(
            &system,
            rng,
            virtio_rng_driver::interface::SHELL.index(),
            shell,
        );
    }
}

/// The UART driver `uart` is the console of the shell: the console's rings are shared symbol
/// for symbol (`shell_regions`: the driver's), the shell's console channel goes to it, and the
/// shell calls the manager on one of its client channels.
fn console_and_shell(system: &sdf::System, uart: usize, shell_regions: [(&str, &str); 2]) {
    use warden_shell::interface as shell_interface;
    let pds = &system.protection_domains;
    let (shell, manager) = (
        pd_index(system, "shell"),
        pd_index(system, "device_manager"),
    );
    let [lines, output] = shell_interface::REGIONS;
    let [to_shell, from_shell] = shell_regions;
    assert_eq!(
        map_with(&pds[shell], lines).region,
        map_with(&pds[uart], to_shell).region,
        "the console's lines: one region for the UART driver and the shell"
    );
    assert_eq!(
        map_with(&pds[shell], output).region,
        map_with(&pds[uart], from_shell).region,
        "the console's output: one region for the shell and the UART driver"
    );
    assert_ne!(
        map_with(&pds[shell], lines).region,
        map_with(&pds[shell], output).region
    );
    has_channel(system, shell, shell_interface::CONSOLE.index(), uart);
    calls(system, shell, shell_interface::MANAGER.index(), manager);
    let channel = channel_between(system, shell, manager).unwrap();
    let manager_end = channel.ends.iter().find(|end| end.pd == manager).unwrap();
    assert!(
        warden_device_manager::interface::CLIENTS.contains(&(manager_end.id as u8)),
        "the manager answers clients on its channels {:?} only",
        warden_device_manager::interface::CLIENTS
    );
}

#[test]
fn the_pd_crates_and_the_odroidc4_system_description_agree() {
    use meson_uart_driver::interface as uart_interface;
    let system = parse("platform/odroidc4/system.xml");
    let pds = &system.protection_domains;
    let uart = pd_index(&system, "uart_driver");
    assert!(pds[uart].program_image.ends_with("meson_uart_driver.elf"));
    let region = device_map(&pds[uart], uart_interface::DEVICE_REGIONS[0]);
    let memory = system
        .memory_regions
        .iter()
        .find(|mr| mr.name == region)
        .unwrap();
    // The AO UART as board.dts has it (the test of warden-board checks the blob says so).
    assert_eq!(memory.phys_addr, Some(0xff80_3000));
    has_irq(&pds[uart], 225, uart_interface::UART_IRQ.index());
    console_and_shell(&system, uart, uart_interface::SHELL_REGIONS);
    has_channel(
        &system,
        uart,
        uart_interface::SHELL.index(),
        pd_index(&system, "shell"),
    );
}

#[test]
fn the_pd_crates_and_the_sddf_serial_system_description_agree() {
    use pl011_driver::interface as uart_interface;
    use warden_demo_client::serial::interface as client_interface;
    let system = parse("platform/qemu_virt_aarch64/sddf_serial.xml");
    let pds = &system.protection_domains;
    let (uart, client) = (
        pd_index(&system, "uart_driver"),
        pd_index(&system, "serial_client"),
    );
    assert!(pds[client].program_image.ends_with("serial_client.elf"));
    // No shell: the console's input is the sDDF client's.
    assert!(pds.iter().all(|pd| pd.name != "shell"));
    assert_eq!(uart_interface::SDDF_REGIONS, client_interface::SDDF_REGIONS);
    for symbols in uart_interface::SDDF_REGIONS {
        let (driver, client) = (
            map_with(&pds[uart], symbols),
            map_with(&pds[client], symbols),
        );
        assert_eq!(
            driver.region, client.region,
            "'{}' must be one region for the driver and the client",
            symbols.0
        );
        // The received characters are the driver's to write; everything else both write
        // (each its own index, and the producer its characters).
        assert_eq!(
            client.permissions.write,
            symbols.0 != "serial_rx_data",
            "the client's '{}' map",
            symbols.0
        );
    }
    has_channel(&system, uart, uart_interface::SERIAL_CLIENT.index(), client);
    has_channel(&system, client, client_interface::SERIAL.index(), uart);
}
