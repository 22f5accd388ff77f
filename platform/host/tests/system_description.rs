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
const DESCRIPTIONS: [&str; 2] = ["system.xml", "platform/odroidc4/system.xml"];

fn parse(relative: &str) -> sdf::System {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
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
    for (index, pd) in pds.iter().enumerate() {
        if index == manager {
            continue;
        }
        assert_eq!(
            pd.parent.map(|(parent, _)| parent),
            Some(manager),
            "'{}' must be a child of the device manager",
            pd.name
        );
        assert!(
            pds[manager].priority > pd.priority,
            "'{}' must have a lower priority",
            pd.name
        );
    }
    for channel in &system.channels {
        for (caller, callee) in [
            (&channel.ends[0], &channel.ends[1]),
            (&channel.ends[1], &channel.ends[0]),
        ] {
            if caller.pp {
                assert_eq!(callee.pd, manager, "only calls into the device manager");
            }
        }
    }
    // Every region the manager maps is mapped by exactly one driver too (a ring has two ends).
    for map in &pds[manager].maps {
        let others = pds
            .iter()
            .enumerate()
            .filter(|(index, pd)| {
                *index != manager && pd.maps.iter().any(|other| other.region == map.region)
            })
            .count();
        assert_eq!(
            others, 1,
            "region '{}' must be shared with one driver",
            map.region
        );
        assert!(
            map.setvar_vaddr.is_some(),
            "the manager finds '{}' by its setvar",
            map.region
        );
    }
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
fn the_pd_crates_and_the_system_descriptions_agree() {
    use demo_driver::interface as driver;
    use device_manager::interface as manager;
    for description in DESCRIPTIONS {
        let system = parse(description);
        let manager_index = pd_index(&system, "device_manager");
        let driver_index = pd_index(&system, "demo_driver");
        let pds = &system.protection_domains;
        assert_eq!(
            pds[driver_index].parent,
            Some((manager_index, u64::from(manager::DRIVER_CHILD))),
            "{description}: the demo driver must be the manager's child {}",
            manager::DRIVER_CHILD
        );
        // The channel between them has the ids each crate uses, and the driver calls.
        let channel = system
            .channels
            .iter()
            .find(|channel| {
                let ends = [channel.ends[0].pd, channel.ends[1].pd];
                ends.contains(&manager_index) && ends.contains(&driver_index)
            })
            .unwrap_or_else(|| panic!("{description}: no manager-driver channel"));
        for end in &channel.ends {
            let (expected, pp) = if end.pd == manager_index {
                (manager::DRIVER.index(), false)
            } else {
                (driver::MANAGER.index(), true)
            };
            assert_eq!(
                end.id,
                u64::from(expected),
                "{description}: channel id of '{}'",
                pds[end.pd].name
            );
            assert_eq!(end.pp, pp, "{description}: pp of '{}'", pds[end.pd].name);
        }
        // Each ring is one memory region, mapped under the symbols each side reads.
        for (manager_symbols, driver_symbols) in manager::REGIONS.iter().zip(driver::REGIONS) {
            let manager_map = map_with(&pds[manager_index], *manager_symbols);
            let driver_map = map_with(&pds[driver_index], driver_symbols);
            assert_eq!(
                manager_map.region, driver_map.region,
                "{description}: '{}' (manager) and '{}' (driver) must be one ring",
                manager_symbols.0, driver_symbols.0
            );
        }
    }
}
