//! Supervision in the core: callback deadlines, registration decided at once, the slots kept
//! for the manager's own work, the per-requester cap, the per-device child quota, grants from
//! the system description, and the supervisor's restart policy and heartbeats. Each test is
//! named after the failure it closes (the supervision issue's list).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod common;

use core::time::Duration;

use common::{descriptor, driver_descriptor, Harness, CLIENT};
use warden_manager_core::{
    Action, Answer, Callback, CallbackKind, Config, Error, Failure, Grant, Instant, MmioWindow,
    Outcome, PdId, Phase, Policy, Request, Requester, Resources, Supervisor,
};

fn ms(value: u64) -> Instant {
    Instant(value * 1_000_000)
}

fn window(base: u64, size: u64) -> MmioWindow {
    MmioWindow { base, size }
}

/// Failure 1: a probe that is never answered is overdue at its deadline; the death path then
/// frees the device's lock, and the unbind queued behind it runs.
#[test]
fn a_hung_probe_is_overdue_at_its_deadline_and_its_death_frees_the_lock() {
    let mut h = Harness::new(Config::PER_DEVICE);
    h.at(1000);
    h.register("hangs", "x", 1);
    let add = h.add_device(None, "x");
    let probe = h.pending_of(CallbackKind::Probe)[0];
    assert_eq!(
        h.manager.next_deadline(),
        Some(ms(1500)),
        "500 ms by default"
    );
    assert_eq!(h.manager.overdue(ms(1499)), None);
    let overdue = h.manager.overdue(ms(1500)).unwrap();
    assert_eq!(
        (overdue.pd, overdue.callback, overdue.kind),
        (PdId(1), probe.id, CallbackKind::Probe)
    );
    assert_eq!(overdue.waited, Duration::from_millis(500));
    // Meanwhile an unbind of the device waits for its lock.
    let device = probe.device;
    let unbind = h.submit(Request::Unbind(device));
    assert!(h.completion(unbind).is_none());
    // The supervisor stops the PD: the death path ends the probe as failed.
    h.pd_died(1);
    assert!(h.completion(add).is_some());
    assert!(
        h.completion(unbind).is_some(),
        "the unbind ran once the lock was free"
    );
    assert_eq!(h.manager.overdue(ms(10_000)), None);
    assert!(h.manager.is_quiescent());
}

/// A driver's own deadline replaces the default.
#[test]
fn a_driver_names_its_own_deadline() {
    let mut h = Harness::new(Config::PER_DEVICE);
    let mut slow = driver_descriptor(h.bus, "slow", "x", 1);
    slow.deadline = Some(Duration::from_secs(3));
    h.try_submit(Requester::Driver(PdId(1)), Request::RegisterDriver(slow))
        .unwrap();
    h.add_device(None, "x");
    assert_eq!(h.manager.overdue(ms(2999)), None);
    assert!(h.manager.overdue(ms(3000)).is_some());
    assert_eq!(
        h.manager.overdue_of(PdId(2), ms(3000)),
        None,
        "another PD's"
    );
}

/// A driver may ask for more time, but at most `max_callback_deadline`: a hang cannot hide
/// behind a deadline of 49 days.
#[test]
fn a_driver_asking_for_forever_gets_the_longest_deadline() {
    let mut h = Harness::new(Config::PER_DEVICE);
    let mut greedy = driver_descriptor(h.bus, "greedy", "x", 1);
    greedy.deadline = Some(Duration::from_millis(u64::from(u32::MAX)));
    h.try_submit(Requester::Driver(PdId(1)), Request::RegisterDriver(greedy))
        .unwrap();
    h.add_device(None, "x");
    let longest = Config::PER_DEVICE.max_callback_deadline;
    assert_eq!(
        h.manager.overdue(Instant(longest.as_nanos() as u64 - 1)),
        None
    );
    assert!(h.manager.overdue(Instant(0).after(longest)).is_some());
}

/// Failure 5 (the table): one PD may hold `drivers_per_pd` drivers, so it cannot fill the
/// table and keep a restarted PD out.
#[test]
fn one_pd_may_not_fill_the_driver_table() {
    let mut h = Harness::new(Config::PER_DEVICE);
    for n in 0..Config::PER_DEVICE.drivers_per_pd {
        let descriptor = driver_descriptor(h.bus, &format!("filler-{n}"), "x", 1);
        h.try_submit(
            Requester::Driver(PdId(1)),
            Request::RegisterDriver(descriptor),
        )
        .unwrap();
    }
    let one_more = driver_descriptor(h.bus, "filler-more", "x", 1);
    assert_eq!(
        h.try_submit(
            Requester::Driver(PdId(1)),
            Request::RegisterDriver(one_more)
        ),
        Err(Error::OverQuota)
    );
    let other = driver_descriptor(h.bus, "rtc", "y", 2);
    assert!(h
        .try_submit(Requester::Driver(PdId(2)), Request::RegisterDriver(other))
        .is_ok());
}

/// Failure 1 (the rest): retries of requests stuck behind a hung callback fill the table only
/// up to the slots kept for the manager, and never a registration out: a driver PD that
/// restarts meanwhile is registered, and its cleanup and walk run.
#[test]
fn stuck_requests_cannot_crowd_out_registration_or_cleanup() {
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("hangs", "x", 1);
    h.add_device(None, "x");
    let device = h.pending_of(CallbackKind::Probe)[0].device;
    // Clients retry an unbind of the locked device until the door closes.
    let mut accepted = 0;
    for client in 0..100 {
        match h.try_submit(Requester::Client(client), Request::Unbind(device)) {
            Ok(_) => accepted += 1,
            Err(error) => {
                assert_eq!(error, Error::NoSpace);
                break;
            }
        }
    }
    assert_eq!(
        accepted,
        32 - 4 - 1,
        "28 outside slots, one taken by the probe"
    );
    // A second driver PD registers all the same, at once.
    let other = h.register("other", "y", 2);
    assert!(matches!(h.result(other), Ok(Outcome::Driver { .. })));
    // The hung PD dies; its cleanup runs in a kept slot, and everything drains.
    h.pd_died(1);
    h.drain_ok();
    assert!(h.manager.is_quiescent());
}

/// Failure 5: a registration's outcome reaches the driver — the handle, or the refusal.
#[test]
fn registration_is_answered_at_once_with_the_handle_or_the_refusal() {
    let mut h = Harness::new(Config::PER_DEVICE);
    for pd in 0..16 {
        let id = h.register("d", "x", pd);
        assert!(matches!(h.result(id), Ok(Outcome::Driver { bound: 0, .. })));
    }
    let descriptor = driver_descriptor(h.bus, "one-too-many", "x", 16);
    let refused = h.try_submit(
        Requester::Driver(PdId(16)),
        Request::RegisterDriver(descriptor.clone()),
    );
    assert_eq!(refused, Err(Error::NoSpace), "the driver table is full");
    // Room again once a PD's drivers are cleaned up: the same registration goes through.
    h.pd_died(3);
    h.drain_ok();
    let accepted = h.try_submit(
        Requester::Driver(PdId(16)),
        Request::RegisterDriver(descriptor),
    );
    assert!(accepted.is_ok());
}

/// A client over its cap is refused with Busy; other clients are not.
#[test]
fn one_client_over_its_cap_is_busy_and_others_are_served() {
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("hangs", "x", 1);
    h.add_device(None, "x");
    let device = h.pending_of(CallbackKind::Probe)[0].device;
    // The device's own addition is still in progress (its probe hangs): one of eight.
    for _ in 0..7 {
        h.try_submit(CLIENT, Request::Unbind(device)).unwrap();
    }
    assert_eq!(
        h.try_submit(CLIENT, Request::Unbind(device)),
        Err(Error::Busy)
    );
    assert!(h
        .try_submit(Requester::Client(2), Request::Unbind(device))
        .is_ok());
    assert_eq!(h.manager.stats().requests_over_cap, 1);
}

/// Failure 6 (children): a driver may add at most `children_per_device` children under one
/// device.
#[test]
fn a_driver_adds_children_up_to_its_quota() {
    let config = Config {
        children_per_device: 3,
        ..Config::PER_DEVICE
    };
    let mut h = Harness::new(config);
    h.register("bridge", "bridge", 1);
    h.add_device(None, "bridge");
    let probe = h.pending_of(CallbackKind::Probe)[0];
    for _ in 0..3 {
        h.child_add(probe, "leaf").unwrap();
    }
    assert_eq!(h.child_add(probe, "leaf"), Err(Error::OverQuota));
    h.reply(probe, Answer::Ok);
    // The same quota holds for the queued path (`device_add` by the bound driver).
    let request = Request::AddDevice {
        parent: Some(probe.device),
        descriptor: descriptor(h.bus, "leaf"),
    };
    assert_eq!(
        h.try_submit(Requester::Driver(PdId(1)), request),
        Err(Error::OverQuota)
    );
}

/// Failure 6 (children, however deep): children of children count towards the PD's quota, so
/// a driver that probes its own children and adds more under them is stopped too.
#[test]
fn a_pd_adds_devices_up_to_its_quota_however_deep() {
    let config = Config {
        devices_per_pd: 4,
        ..Config::PER_DEVICE
    };
    let mut h = Harness::new(config);
    h.register("bridge", "bridge", 1);
    h.add_device(None, "bridge");
    let mut added = 0;
    let mut refused = None;
    // Every probe adds a child that is a bridge again.
    for _ in 0..10 {
        let Some(probe) = h.pending_of(CallbackKind::Probe).first().copied() else {
            break;
        };
        match h.child_add(probe, "bridge") {
            Ok(_) => added += 1,
            Err(error) => refused = Some(error),
        }
        h.reply(probe, Answer::Ok);
    }
    assert_eq!(added, 4);
    assert_eq!(refused, Some(Error::OverQuota));
    // The quota is of live devices: one removed makes room for one more.
    let leaf = h
        .manager
        .devices()
        .filter(|&device| h.manager.device(device).unwrap().added_by_binding)
        .last()
        .unwrap();
    let parent = h.manager.device(leaf).unwrap().parent.unwrap();
    let unbind = h.submit(Request::Unbind(parent));
    h.drain_ok();
    assert!(h.result(unbind).is_ok());
    let driver = h.manager.drivers().next().unwrap();
    let bind = h.submit(Request::Bind {
        device: parent,
        driver,
    });
    let probe = h.pending_for(CallbackKind::Probe, parent);
    assert!(h.child_add(probe, "leaf").is_ok());
    h.reply(probe, Answer::Ok);
    h.drain_ok();
    assert!(h.result(bind).is_ok());
}

/// Failure 6 (the store): the store is one table for every device, so a hostile driver adding
/// children that carry every window and interrupt its device has, with long compatibles of
/// their own, is refused at its share of it — long before its device quota, and before the
/// store is full — and a device the board adds afterwards still fits.
#[test]
fn a_pd_adds_devices_up_to_its_share_of_the_store() {
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("bridge", "bridge", 1);
    let mut bridge = descriptor(h.bus, "bridge");
    for window in 0..warden_vocabulary::MAX_MMIO as u64 {
        bridge
            .resources
            .mmio
            .push(warden_vocabulary::MmioWindow {
                base: 0x1000_0000 + window * 0x1000,
                size: 0x1000,
            })
            .unwrap();
    }
    for irq in 0..warden_vocabulary::MAX_IRQS as u32 {
        bridge.resources.irqs.push(40 + irq).unwrap();
    }
    let request = h.submit(Request::AddDevice {
        parent: None,
        descriptor: bridge.clone(),
    });
    let probe = h.pending_of(CallbackKind::Probe)[0];
    let mut added = 0;
    let refused = loop {
        let mut child = bridge.clone();
        child.match_data.compatible.clear();
        for name in 0..4 {
            let text = format!("hostile,{added:04}-{name}-{}", "x".repeat(20));
            child
                .match_data
                .compatible
                .push(text.as_str().try_into().unwrap())
                .unwrap();
        }
        match h.child_add_described(probe, &child) {
            Ok(_) => added += 1,
            Err(error) => break error,
        }
        assert!(added < 64, "never refused");
    };
    assert_eq!(refused, Error::OverQuota);
    // 32 devices' share: 32 windows (4 children of 8), 64 interrupts (4 of 16), 512 bytes of
    // compatibles (3 children of 4 × 35 bytes): the fourth child is refused for its text.
    assert_eq!(added, 3, "its device quota is 32");
    h.reply(probe, Answer::Ok);
    h.drain_ok();
    assert!(h.result(request).is_ok());
    // The board's next device, with a window and an interrupt of its own, still fits.
    let mut board = descriptor(h.bus, "arm,pl011");
    board.resources = resources(0x900_0000, 0x1000, Some(33));
    let next = h.submit(Request::AddDevice {
        parent: None,
        descriptor: board,
    });
    h.drain_ok();
    assert!(h.result(next).is_ok());
    h.manager.invariants().unwrap();
}

/// Failure 6 (the store, as the review found it open): a PD's queued `device_add`s count
/// towards its share as its live devices do; so do its children's compatibles, one each on
/// average (the store has one text per device slot); and its drivers' match tables hold at most
/// their share of the claims.
#[test]
fn queued_adds_compatibles_and_match_tables_count_towards_a_pds_share() {
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("bridge", "bridge", 1);
    h.add_device(None, "bridge");
    let probe = h.pending_of(CallbackKind::Probe)[0];
    // Each child names four short new compatibles: 32 texts is the PD's share, so the ninth
    // child is refused though its bytes would fit.
    let bus = h.bus;
    let child = |n: usize| {
        let mut child = descriptor(bus, "leaf");
        child.match_data.compatible.clear();
        for name in 0..4 {
            let text = format!("h,{n}{name}");
            child
                .match_data
                .compatible
                .push(text.as_str().try_into().unwrap())
                .unwrap();
        }
        child
    };
    for n in 0..8 {
        h.child_add_described(probe, &child(n)).unwrap();
    }
    assert_eq!(
        h.child_add_described(probe, &child(8)),
        Err(Error::OverQuota)
    );
    h.reply(probe, Answer::Ok);
    h.drain_ok();

    // Queued adds: the bridge's device bound, a suspend holding its lock, and `device_add`s
    // queued behind that lock by its driver: each queued one counts.
    let mut h = Harness::new(Config {
        devices_per_pd: 3,
        ..Config::PER_DEVICE
    });
    h.register("bridge", "bridge", 1);
    h.add_device(None, "bridge");
    let probe = h.pending_of(CallbackKind::Probe)[0];
    h.reply(probe, Answer::Ok);
    h.drain_ok();
    let parent = probe.device;
    h.submit(Request::Suspend(parent));
    let suspend = h.pending_of(CallbackKind::Suspend)[0];
    let queued = |h: &mut Harness| {
        h.try_submit(
            Requester::Driver(PdId(1)),
            Request::AddDevice {
                parent: Some(parent),
                descriptor: descriptor(h.bus, "leaf"),
            },
        )
    };
    assert!(queued(&mut h).is_ok());
    assert!(queued(&mut h).is_ok());
    assert!(queued(&mut h).is_ok());
    assert_eq!(
        queued(&mut h),
        Err(Error::OverQuota),
        "three queued: the quota"
    );
    h.reply(suspend, Answer::Ok);
    h.drain_ok();
    h.manager.invariants().unwrap();

    // Match tables: 4 drivers of one PD hold at most 12 claims (a full table of 8 fits).
    let mut h = Harness::new(Config::PER_DEVICE);
    let table = |entries: usize| {
        let mut table = warden_vocabulary::MatchTable::default();
        for entry in 0..entries {
            table
                .entries
                .push(warden_vocabulary::MatchEntry::BusId(entry as u32))
                .unwrap();
        }
        table
    };
    let mut driver = driver_descriptor(h.bus, "greedy", "x", 7);
    driver.match_table = table(8);
    assert!(h
        .try_submit(
            Requester::Driver(PdId(7)),
            Request::RegisterDriver(driver.clone())
        )
        .is_ok());
    driver.match_table = table(4);
    assert!(h
        .try_submit(
            Requester::Driver(PdId(7)),
            Request::RegisterDriver(driver.clone())
        )
        .is_ok());
    driver.match_table = table(1);
    assert_eq!(
        h.try_submit(
            Requester::Driver(PdId(7)),
            Request::RegisterDriver(driver.clone())
        ),
        Err(Error::OverQuota)
    );
    // Another PD is not hindered.
    driver.pd = PdId(8);
    driver.match_table = table(8);
    assert!(h
        .try_submit(Requester::Driver(PdId(8)), Request::RegisterDriver(driver))
        .is_ok());
    h.manager.invariants().unwrap();
}

/// A bridge whose PD dies in its probe after adding a child (found by the soak: the restarted
/// bridge added the disk again, and two devices for one disk were bound to virtio-blk). The
/// children of a failed attempt go with it: at once when idle, through the dead PD's cleanup
/// (children first, their drivers' removes) when already bound.
#[test]
fn a_failed_probe_takes_the_children_it_added_with_it() {
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("bridge", "bridge", 1);
    h.register("leaf", "leaf", 2);
    h.add_device(None, "bridge");
    let probe = h.pending_of(CallbackKind::Probe)[0];
    let transport = probe.device;
    let child = h.child_add(probe, "leaf").unwrap();
    // The leaf's driver binds the child while the bridge's probe is still in flight.
    let leaf_probe = h.pending_for(CallbackKind::Probe, child);
    h.reply(leaf_probe, Answer::Ok);
    assert!(h.manager.device(child).unwrap().driver.is_some());
    h.pd_died(1);
    h.drain_ok();
    assert!(
        h.manager.device(child).is_err(),
        "the child went with the attempt"
    );
    let children = |h: &Harness| {
        h.manager
            .devices()
            .filter(|&device| h.manager.device(device).unwrap().parent == Some(transport))
            .count()
    };
    assert_eq!(children(&h), 0);
    // The restarted bridge probes again and adds the child once.
    h.register("bridge", "bridge", 1);
    let probe = h.pending_for(CallbackKind::Probe, transport);
    h.child_add(probe, "leaf").unwrap();
    h.reply(probe, Answer::Ok);
    h.drain_ok();
    assert_eq!(children(&h), 1);
    // An idle child of an attempt that fails goes at once.
    let unbind = h.submit(Request::Unbind(transport));
    h.drain_ok();
    assert!(h.result(unbind).is_ok());
    let bridge = h
        .manager
        .drivers()
        .find(|&driver| h.manager.driver(driver).unwrap().pd == PdId(1))
        .unwrap();
    let bind = h.submit(Request::Bind {
        device: transport,
        driver: bridge,
    });
    let probe = h.pending_for(CallbackKind::Probe, transport);
    h.child_add(probe, "nobody-drives-this").unwrap();
    h.reply(probe, Answer::Failed(7));
    h.drain_ok();
    assert_eq!(h.result(bind), Err(Error::CallbackFailed(7)));
    assert_eq!(children(&h), 0);
    h.manager.invariants().unwrap();
}

fn resources(base: u64, size: u64, irq: Option<u32>) -> Resources {
    let mut resources = Resources::default();
    resources.mmio.push(window(base, size)).unwrap();
    if let Some(irq) = irq {
        resources.irqs.push(irq).unwrap();
    }
    resources
}

fn grant(windows: &[(u64, u64)], irqs: &[u32]) -> Grant {
    let mut grant = Grant::default();
    for &(base, size) in windows {
        grant.windows.push(window(base, size)).unwrap();
    }
    for &irq in irqs {
        grant.irqs.push(irq).unwrap();
    }
    grant
}

/// Failure 6 (authority): with grants from the system description, a PD registers only for
/// devices it is given, and is probed only with them; a bridge's children go to the PD their
/// interrupt is given to (or to any PD mapping them when the bridge's own PD holds it).
#[test]
fn a_pd_is_given_only_what_its_system_description_gives_it() {
    let mut h = Harness::new(Config::PER_DEVICE);
    // The QEMU virt system: uart PD 1, virtio-mmio PD 3, blk PD 4, rng PD 5, an impostor 9
    // that maps the virtio transports but has no interrupt.
    h.manager
        .grant(PdId(1), grant(&[(0x900_0000, 0x1000)], &[33]))
        .unwrap();
    h.manager
        .grant(PdId(3), grant(&[(0xa00_0000, 0x4000)], &[48]))
        .unwrap();
    h.manager
        .grant(PdId(4), grant(&[(0xa00_0000, 0x4000)], &[79]))
        .unwrap();
    h.manager
        .grant(PdId(5), grant(&[(0xa00_0000, 0x4000)], &[78]))
        .unwrap();
    h.manager
        .grant(PdId(9), grant(&[(0xa00_0000, 0x4000)], &[]))
        .unwrap();
    let add = |h: &mut Harness, compatible: &str, resources: Resources| {
        let mut device = descriptor(h.bus, compatible);
        device.resources = resources;
        let id = h.submit(Request::AddDevice {
            parent: None,
            descriptor: device,
        });
        h.device_of(id)
    };
    add(&mut h, "arm,pl011", resources(0x900_0000, 0x1000, Some(33)));
    let boot = add(
        &mut h,
        "virtio,mmio",
        resources(0xa00_3e00, 0x200, Some(79)),
    );
    let slot = add(
        &mut h,
        "virtio,mmio",
        resources(0xa00_0000, 0x200, Some(48)),
    );
    let register = |h: &mut Harness, name: &str, compatible: &str, pd: u32| {
        let descriptor = driver_descriptor(h.bus, name, compatible, pd);
        h.try_submit(
            Requester::Driver(PdId(pd)),
            Request::RegisterDriver(descriptor),
        )
    };
    // The impostor may not register for the console: the system gives it no PL011.
    assert_eq!(
        register(&mut h, "impostor", "arm,pl011", 9),
        Err(Error::NotGranted)
    );
    assert_eq!(
        register(&mut h, "nobody", "arm,pl011", 7),
        Err(Error::NotGranted),
        "a PD without a grant"
    );
    assert!(register(&mut h, "console", "arm,pl011", 1).is_ok());
    // The transports go to the bus driver, whose memory they are.
    register(&mut h, "virtio-mmio", "virtio,mmio", 3).unwrap();
    let probes = h.pending_of(CallbackKind::Probe);
    assert!(probes.iter().all(|probe| probe.pd != PdId(9)));
    // The bridge adds a disk behind the boot transport (interrupt 79, the blk PD's) and one
    // behind a hot-plug slot (interrupt 48, the bridge's own).
    let child = |h: &mut Harness, probe: Callback, resources: Resources| {
        let mut device = descriptor(h.bus, "virtio,device2");
        device.resources = resources;
        let id = h.child_add_described(probe, &device).unwrap();
        h.manager.invariants().unwrap();
        h.reply(probe, Answer::Ok);
        id
    };
    // The walk probes one transport at a time.
    let boot_probe = h.pending_for(CallbackKind::Probe, boot);
    let boot_disk = child(&mut h, boot_probe, resources(0xa00_3e00, 0x200, Some(79)));
    let slot_probe = h.pending_for(CallbackKind::Probe, slot);
    let slot_disk = child(&mut h, slot_probe, resources(0xa00_0000, 0x200, Some(48)));
    h.drain_ok();
    // The impostor registers for disks (a bus only bridges populate: allowed), the rng PD for
    // them too: the boot disk is the blk PD's (its interrupt), the slot's is open to all who
    // map it — the first registered takes it.
    register(&mut h, "impostor", "virtio,device2", 9).unwrap();
    register(&mut h, "rng-posing", "virtio,device2", 5).unwrap();
    h.drain(|callback| {
        assert_ne!(
            callback.device, boot_disk,
            "only the blk PD may probe the boot disk"
        );
        Answer::Ok
    });
    assert_eq!(h.manager.device(boot_disk).unwrap().driver, None);
    let slot_driver = h.manager.device(slot_disk).unwrap().driver.unwrap();
    assert_eq!(h.manager.driver(slot_driver).unwrap().pd, PdId(9));
    // The rightful driver binds the boot disk; an explicit bind to the impostor is refused.
    let blk = register(&mut h, "blk", "virtio,device2", 4).unwrap();
    h.drain_ok();
    let blk = h.driver_of(blk);
    assert_eq!(h.manager.device(boot_disk).unwrap().driver, Some(blk));
    let unbind = h.submit(Request::Unbind(boot_disk));
    h.drain_ok();
    assert!(h.result(unbind).is_ok());
    let impostor = h
        .manager
        .drivers()
        .find(|&driver| h.manager.driver(driver).unwrap().pd == PdId(9))
        .unwrap();
    let bind = h.submit(Request::Bind {
        device: boot_disk,
        driver: impostor,
    });
    assert_eq!(h.result(bind), Err(Error::NotGranted));
    // A hot-plug: the bridge lets go of the slot and probes it again, and the disk it adds
    // there while the drivers for disks are registered already is bound (its interrupt is
    // relayed by the PD that added it, whose driver is not yet the slot's while it probes).
    let unbind = h.submit(Request::Unbind(slot));
    h.drain_ok();
    assert!(h.result(unbind).is_ok());
    let bridge = h
        .manager
        .drivers()
        .find(|&driver| h.manager.driver(driver).unwrap().pd == PdId(3))
        .unwrap();
    let bind = h.submit(Request::Bind {
        device: slot,
        driver: bridge,
    });
    let slot_probe = h.pending_for(CallbackKind::Probe, slot);
    let hot_disk = child(&mut h, slot_probe, resources(0xa00_0000, 0x200, Some(48)));
    h.drain_ok();
    assert!(h.result(bind).is_ok());
    assert!(
        h.manager.device(hot_disk).unwrap().driver.is_some(),
        "the hot-plugged disk is bound: {:?}",
        h.manager.device(hot_disk)
    );
}

/// A device that lost its driver to a PD's death says whose it was until it is bound again.
#[test]
fn a_device_remembers_the_pd_it_lost() {
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("a", "x", 1);
    let add = h.add_device(None, "x");
    h.drain_ok();
    let device = h.device_of(add);
    assert_eq!(h.manager.device(device).unwrap().last_pd, None);
    h.pd_died(1);
    h.drain_ok();
    assert_eq!(h.manager.device(device).unwrap().last_pd, Some(PdId(1)));
    h.register("a", "x", 1);
    h.drain_ok();
    assert_eq!(h.manager.device(device).unwrap().last_pd, None);
    // A device never bound, whose probe died with its PD (a hung probe stopped), says so too.
    h.register("b", "y", 2);
    let add = h.add_device(None, "y");
    let probe = h.pending_of(CallbackKind::Probe)[0];
    h.pd_died(2);
    h.drain_ok();
    let device = h.device_of(add);
    assert_eq!(probe.device, device);
    assert_eq!(h.manager.device(device).unwrap().last_pd, Some(PdId(2)));
}

type TestSupervisor = Supervisor<4>;

fn actions(run: impl FnOnce(&mut dyn FnMut(Action))) -> Vec<Action> {
    let mut out = Vec::new();
    run(&mut |action| out.push(action));
    out
}

/// Failure 2: a PD that crashes at once after every start is restarted at once, then after
/// 100, 200 and 400 ms, and quarantined at its fifth failure in a row; a retry starts it
/// with a clean record.
#[test]
fn a_crash_loop_backs_off_then_is_quarantined_until_retried() {
    let h = Harness::new(Config::PER_DEVICE);
    let mut supervisor = TestSupervisor::new(Policy::DEFAULT);
    let pd = PdId(1);
    assert!(supervisor.supervise(pd, ms(0)));
    let mut now = 0;
    let mut restarts = Vec::new();
    for failure in 1..=5u32 {
        let done = actions(|out| supervisor.faulted(pd, 3, ms(now), out));
        if failure == 5 {
            assert_eq!(done, [Action::Quarantine { pd, failures: 5 }]);
            break;
        }
        if failure == 1 {
            assert_eq!(done, [Action::Restart { pd, failures: 1 }]);
            restarts.push(now);
        } else {
            assert!(done.is_empty(), "waits before restart {failure}");
            let Phase::Waiting(at) = supervisor.status(pd).unwrap().phase else {
                panic!("not waiting");
            };
            let wait = at.since(ms(now)).as_millis() as u64;
            assert_eq!(wait, 100 << (failure - 2));
            assert!(actions(|out| supervisor.tick(ms(now + wait - 1), &h.manager, out)).is_empty());
            now += wait;
            let done = actions(|out| supervisor.tick(ms(now), &h.manager, out));
            assert_eq!(
                done,
                [Action::Restart {
                    pd,
                    failures: failure
                }]
            );
            restarts.push(now);
        }
        now += 5; // it crashes 5 ms after each start
    }
    assert_eq!(restarts, [0, 105, 310, 715]);
    let status = supervisor.status(pd).unwrap();
    assert_eq!(status.phase, Phase::Quarantined);
    assert_eq!((status.failures, status.restarts), (5, 4));
    // Quarantined: no more restarts, however long we wait.
    assert!(actions(|out| supervisor.tick(ms(3_600_000), &h.manager, out)).is_empty());
    assert_eq!(supervisor.next_wakeup(&h.manager), None);
    // An administrator retries it.
    let done = actions(|out| supervisor.retry(pd, ms(3_600_000), out).unwrap());
    assert_eq!(done, [Action::Restart { pd, failures: 0 }]);
    assert_eq!(supervisor.status(pd).unwrap().consecutive_failures, 0);
}

/// A PD that hangs in init (never registers) is stopped at its start deadline.
#[test]
fn a_pd_that_never_registers_is_stopped_at_its_start_deadline() {
    let h = Harness::new(Config::PER_DEVICE);
    let mut supervisor = TestSupervisor::new(Policy::DEFAULT);
    let pd = PdId(2);
    supervisor.supervise(pd, ms(0));
    assert_eq!(supervisor.next_wakeup(&h.manager), Some(ms(2000)));
    assert!(actions(|out| supervisor.tick(ms(1999), &h.manager, out)).is_empty());
    let done = actions(|out| supervisor.tick(ms(2000), &h.manager, out));
    assert_eq!(
        done,
        [
            Action::Stop {
                pd,
                failure: Failure::NeverRegistered
            },
            Action::Restart { pd, failures: 1 }
        ]
    );
}

/// Failure 1, supervised: a PD whose probe is past its deadline is stopped (and restarted).
#[test]
fn the_supervisor_stops_a_pd_whose_callback_is_overdue() {
    let mut h = Harness::new(Config::PER_DEVICE);
    let mut supervisor = TestSupervisor::new(Policy::DEFAULT);
    let pd = PdId(1);
    supervisor.supervise(pd, ms(0));
    h.at(10);
    h.register("hangs", "x", 1);
    assert!(supervisor.registered(pd, ms(10)));
    h.add_device(None, "x");
    // While the probe runs, no heartbeat is due (the callback's deadline governs).
    assert!(actions(|out| supervisor.tick(ms(500), &h.manager, out)).is_empty());
    let done = actions(|out| supervisor.tick(ms(510), &h.manager, out));
    assert!(matches!(
        done[0],
        Action::Stop {
            failure: Failure::Overdue {
                kind: CallbackKind::Probe,
                ..
            },
            ..
        }
    ));
    assert_eq!(done[1], Action::Restart { pd, failures: 1 });
}

/// An idle PD is sent heartbeats; one it does not answer in time stops it. Answers that are
/// late, repeated or forged change nothing.
#[test]
fn an_idle_pd_that_stops_answering_heartbeats_is_stopped() {
    let h = Harness::new(Config::PER_DEVICE);
    let mut supervisor = TestSupervisor::new(Policy::DEFAULT);
    let pd = PdId(1);
    supervisor.supervise(pd, ms(0));
    supervisor.registered(pd, ms(0));
    let done = actions(|out| supervisor.tick(ms(1000), &h.manager, out));
    let [Action::Ping { sequence, .. }] = done[..] else {
        panic!("expected a ping: {done:?}");
    };
    assert!(!supervisor.alive(pd, sequence + 1, ms(1001)), "forged");
    assert!(supervisor.alive(pd, sequence, ms(1002)));
    assert!(!supervisor.alive(pd, sequence, ms(1003)), "repeated");
    let done = actions(|out| supervisor.tick(ms(2002), &h.manager, out));
    assert!(matches!(done[..], [Action::Ping { .. }]));
    assert_eq!(supervisor.next_wakeup(&h.manager), Some(ms(2502)));
    let done = actions(|out| supervisor.tick(ms(2502), &h.manager, out));
    assert_eq!(
        done,
        [
            Action::Stop {
                pd,
                failure: Failure::Silent
            },
            Action::Restart { pd, failures: 1 }
        ]
    );
}

/// A PD that runs settled for a second is healthy again: its failures in a row start from
/// zero, so faults far apart never quarantine it.
#[test]
fn a_pd_healthy_again_starts_its_record_afresh() {
    let mut h = Harness::new(Config::PER_DEVICE);
    let mut supervisor = TestSupervisor::new(Policy::DEFAULT);
    let pd = PdId(1);
    supervisor.supervise(pd, ms(0));
    let mut now = 0;
    for round in 0..20 {
        h.at(now);
        h.register("d", "x", 1);
        supervisor.registered(pd, ms(now));
        h.drain_ok();
        // Settled: healthy a second later.
        let done = actions(|out| supervisor.tick(ms(now), &h.manager, out));
        assert!(done
            .iter()
            .all(|action| !matches!(action, Action::Healthy { .. })));
        now += 1000;
        let mut done = actions(|out| supervisor.tick(ms(now), &h.manager, out));
        // Healthy once it has answered a heartbeat too (the PD layer ticks after the answer).
        assert!(!done.contains(&Action::Healthy { pd }), "{done:?}");
        for action in done.clone() {
            if let Action::Ping { sequence, .. } = action {
                supervisor.alive(pd, sequence, ms(now));
            }
        }
        done.extend(actions(|out| supervisor.tick(ms(now), &h.manager, out)));
        if round > 0 {
            assert!(done.contains(&Action::Healthy { pd }), "{done:?}");
        }
        h.pd_died(1);
        h.drain_ok();
        let done = actions(|out| supervisor.faulted(pd, 3, ms(now), out));
        assert_eq!(done, [Action::Restart { pd, failures: 1 }], "round {round}");
        now += 10;
    }
    assert_eq!(supervisor.status(pd).unwrap().failures, 20);
}

/// The soak's never-healthy PD: a driver PD lets its own device go and asks for it again
/// (unbind + bind, as a driver reloading itself does), then hangs in the remove callback its
/// own unbind asked for. Stopped and restarted, it registers and rebinds; it must settle, or
/// the supervisor never calls it healthy and faults far apart quarantine it.
#[test]
fn a_pd_stopped_in_the_remove_it_asked_for_settles_after_its_restart() {
    let mut h = Harness::new(Config::PER_DEVICE);
    let pd = PdId(1);
    let me = Requester::Driver(pd);
    let register = h.register("d", "x", 1);
    let add = h.add_device(None, "x");
    h.drain_ok();
    let driver = h.driver_of(register);
    let device = h.device_of(add);
    assert_eq!(h.bound_to(device), Some(driver));
    assert!(h.manager.pd_settled(pd));
    let unbind = h.try_submit(me, Request::Unbind(device)).unwrap();
    let bind = h.try_submit(me, Request::Bind { device, driver }).unwrap();
    let remove = h.pending_for(CallbackKind::Remove, device);
    assert_eq!(remove.pd, pd);
    assert!(!h.manager.pd_settled(pd));
    // The remove is never answered: the supervisor stops the PD.
    h.pd_died(1);
    h.drain_ok();
    assert!(h.completion(unbind).is_some());
    assert!(h.completion(bind).is_some());
    // The new incarnation registers and is bound again.
    let again = h.register("d", "x", 1);
    h.drain_ok();
    let driver = h.driver_of(again);
    assert_eq!(h.bound_to(device), Some(driver));
    assert!(h.manager.is_quiescent(), "{:?}", h.manager.stats());
    assert!(h.manager.pd_settled(pd));
}

/// The soak's never-healthy PD, as it was: the rng and blk drivers' devices are children of
/// the virtio-mmio bridge, and every restart of the bridge's PD removes them and adds them
/// again. A child's driver that answers every one of those callbacks at once is settled again
/// within milliseconds each time, yet never for a whole second on end; it must be healthy all
/// the same (or faults of its own far apart add up to a quarantine).
#[test]
fn a_pd_busy_with_others_churn_is_healthy_once_it_has_run_long_enough() {
    let mut h = Harness::new(Config::PER_DEVICE);
    let mut supervisor = TestSupervisor::new(Policy::DEFAULT);
    let pd = PdId(1);
    supervisor.supervise(pd, ms(0));
    // A tick, and (as the PD layer ticks after every event) one more after the PD answers a
    // heartbeat at once.
    let tick = |h: &mut Harness, supervisor: &mut TestSupervisor, now: u64| {
        h.at(now);
        let mut done = actions(|out| supervisor.tick(ms(now), &h.manager, out));
        let pinged = done.iter().find_map(|action| match action {
            Action::Ping { sequence, .. } => Some(*sequence),
            _ => None,
        });
        if let Some(sequence) = pinged {
            assert!(supervisor.alive(pd, sequence, ms(now)));
            done.extend(actions(|out| supervisor.tick(ms(now), &h.manager, out)));
        }
        done
    };
    h.register("child-driver", "x", 1);
    supervisor.registered(pd, ms(0));
    let add = h.add_device(None, "x");
    h.drain_ok();
    let device = h.device_of(add);
    // Its own fault: restarted, registered again, bound again.
    h.pd_died(1);
    assert_eq!(
        actions(|out| supervisor.faulted(pd, 3, ms(0), out)),
        [Action::Restart { pd, failures: 1 }]
    );
    h.register("child-driver", "x", 1);
    assert!(supervisor.registered(pd, ms(10)));
    h.drain_ok();
    tick(&mut h, &mut supervisor, 10);
    // Every 600 ms someone else's restart takes its device away and gives it back: a remove
    // and a probe, each answered at once, with a tick after each event as the PD layer does.
    let mut healthy_at = None;
    for round in 1..=5u64 {
        let now = round * 600;
        h.at(now);
        let unbind = h.submit(Request::Unbind(device));
        tick(&mut h, &mut supervisor, now);
        h.drain_ok();
        assert!(h.completion(unbind).is_some());
        let driver = h.manager.drivers_of(pd).next().unwrap();
        h.submit(Request::Bind { device, driver });
        tick(&mut h, &mut supervisor, now);
        h.drain_ok();
        let done = tick(&mut h, &mut supervisor, now + 1);
        if done.contains(&Action::Healthy { pd }) {
            healthy_at.get_or_insert(now);
        }
    }
    assert_eq!(
        healthy_at,
        Some(1200),
        "healthy at its first settled moment a second after it registered"
    );
    assert_eq!(supervisor.status(pd).unwrap().consecutive_failures, 0);
}

/// What healthy still asks: a PD hung in a callback with a long deadline of its own is not
/// healthy while it hangs, however long it has run; its stop is a second failure in a row.
#[test]
fn a_pd_hung_in_a_long_callback_is_never_healthy() {
    let mut h = Harness::new(Config::PER_DEVICE);
    let mut supervisor = TestSupervisor::new(Policy::DEFAULT);
    let pd = PdId(1);
    supervisor.supervise(pd, ms(0));
    let mut slow = driver_descriptor(h.bus, "slow", "x", 1);
    slow.deadline = Some(Duration::from_secs(3));
    h.try_submit(Requester::Driver(pd), Request::RegisterDriver(slow.clone()))
        .unwrap();
    supervisor.registered(pd, ms(0));
    actions(|out| supervisor.faulted(pd, 3, ms(0), out));
    h.pd_died(1);
    h.try_submit(Requester::Driver(pd), Request::RegisterDriver(slow))
        .unwrap();
    supervisor.registered(pd, ms(0));
    h.add_device(None, "x");
    for now in (0..3000).step_by(100) {
        h.at(now);
        let done = actions(|out| supervisor.tick(ms(now), &h.manager, out));
        assert!(!done.contains(&Action::Healthy { pd }), "at {now} ms");
    }
    h.at(3000);
    let done = actions(|out| supervisor.tick(ms(3000), &h.manager, out));
    assert!(matches!(done[..], [Action::Stop { .. }]), "{done:?}");
    assert_eq!(supervisor.status(pd).unwrap().consecutive_failures, 2);
}

/// A PD that registers and then hangs outside any callback (in its event loop) is settled, but
/// never answers a heartbeat: it is never healthy, so its stops add up to a quarantine instead
/// of a restart every 1.5 s forever.
#[test]
fn a_pd_hung_outside_callbacks_is_quarantined_not_restarted_forever() {
    let mut h = Harness::new(Config::PER_DEVICE);
    let mut supervisor = TestSupervisor::new(Policy::DEFAULT);
    let pd = PdId(1);
    supervisor.supervise(pd, ms(0));
    let mut now = 0;
    for failure in 1..=5u32 {
        // (Re)started: it registers at once, then hangs.
        h.at(now);
        h.register("d", "x", 1);
        assert!(supervisor.registered(pd, ms(now)), "failure {failure}");
        h.drain_ok();
        let mut stopped = None;
        for step in 0..40 {
            let at = now + step * 100;
            h.at(at);
            let done = actions(|out| supervisor.tick(ms(at), &h.manager, out));
            assert!(!done.contains(&Action::Healthy { pd }), "{done:?}");
            if done.iter().any(|action| {
                matches!(
                    action,
                    Action::Stop {
                        failure: Failure::Silent,
                        ..
                    }
                )
            }) {
                stopped = Some((at, done));
                break;
            }
        }
        let (at, done) = stopped.expect("stopped for silence");
        h.pd_died(1);
        h.drain_ok();
        if failure == 5 {
            assert!(
                done.contains(&Action::Quarantine { pd, failures: 5 }),
                "{done:?}"
            );
            return;
        }
        // Its restart comes at once or after the backoff.
        now = match supervisor.status(pd).unwrap().phase {
            Phase::Waiting(until) => until.0 / 1_000_000,
            _ => at,
        };
        actions(|out| supervisor.tick(ms(now), &h.manager, out));
    }
}
