//! The top-level `system.xml`: valid, and shaped as Warden needs — the device manager is the
//! parent of every driver PD (so their faults reach it) and of higher priority than every PD
//! that calls it, and each driver has its two rings mapped on both sides.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::Path;
use warden_host::sdf;

#[test]
fn the_system_description_has_the_shape_warden_needs() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../system.xml");
    let system = sdf::parse_file(&path).unwrap_or_else(|error| panic!("{error}"));
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
