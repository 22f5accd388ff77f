//! One test per rule of the device-manager core (issue 2, rules 1–12), each a small scenario
//! played through the harness, which checks the invariants after every event.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod common;

use common::{Harness, CLIENT};
use warden_manager_core::{
    Answer as Status, CallbackKind as Kind, Config, DeviceState, DriverState, Error, LockOwner,
    Outcome, PdId, Request, Requester,
};

/// Rule 1: every callback runs with the device's lock held, owned by that callback, and the
/// operations waiting for the lock run in FIFO order after it.
#[test]
fn rule_01_callbacks_hold_the_device_lock_and_never_overlap() {
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("uart", "arm,pl011", 1);
    let add = h.add_device(None, "arm,pl011");
    let probe = h.pending_of(Kind::Probe)[0];
    let device = probe.device;
    assert_eq!(
        h.manager.device(device).unwrap().lock_owner,
        Some(LockOwner::Callback(probe.id))
    );
    // Suspend and unbind queue behind the probe: no second callback on the device yet.
    let suspend = h.submit(Request::Suspend(device));
    let unbind = h.submit(Request::Unbind(device));
    assert_eq!(h.pending.len(), 1);
    h.reply(probe, Status::Ok);
    assert_eq!(h.device_of(add), device);
    // FIFO: the suspend runs first, alone.
    assert_eq!(h.pending.len(), 1);
    let suspend_callback = h.pending_for(Kind::Suspend, device);
    h.reply(suspend_callback, Status::Ok);
    assert_eq!(h.result(suspend), Ok(Outcome::Done));
    let remove = h.pending_for(Kind::Remove, device);
    assert_eq!(h.pending.len(), 1);
    h.reply(remove, Status::Ok);
    assert_eq!(h.result(unbind), Ok(Outcome::Done));
    assert_eq!(h.manager.device(device).unwrap().lock_owner, None);
}

/// Rule 2: parents are locked before children; an operation never waits for a parent while
/// holding a child. Deleting a child whose probe is in flight takes the parent first, then
/// waits for the child; a suspend of the parent queues behind it.
#[test]
fn rule_02_lock_order_is_parent_before_child() {
    let mut h = Harness::new(Config::PER_DEVICE);
    let parent = h.add_device(None, "bus,parent");
    let parent = h.device_of(parent);
    h.register("child-driver", "dev,child", 2);
    let add_child = h.add_device(Some(parent), "dev,child");
    let probe = h.pending_for(Kind::Probe, h.pending[0].device);
    let child = probe.device;
    let delete = h.submit(Request::DeleteDevice(child));
    // The delete owns the parent and waits for the child (the invariant check after every
    // event proves no operation waits for a parent while holding a child).
    assert_eq!(
        h.manager.device(parent).unwrap().lock_owner,
        Some(LockOwner::Manager(Some(delete)))
    );
    let suspend_parent = h.submit(Request::Suspend(parent));
    assert!(h.completion(suspend_parent).is_none());
    h.reply(probe, Status::Ok);
    assert_eq!(h.device_of(add_child), child);
    let remove = h.pending_for(Kind::Remove, child);
    h.reply(remove, Status::Ok);
    assert_eq!(h.result(delete), Ok(Outcome::Done));
    assert_eq!(h.result(suspend_parent), Ok(Outcome::Done));
    assert_eq!(
        h.manager.device(parent).unwrap().state,
        DeviceState::Suspended
    );
}

/// Rule 3: adding or deleting a device or driver bumps the bus's version counter.
#[test]
fn rule_03_list_changes_bump_the_bus_versions() {
    let mut h = Harness::new(Config::PER_DEVICE);
    let versions = |h: &Harness| {
        let bus = h.manager.bus(h.bus).unwrap();
        (bus.devices_version, bus.drivers_version)
    };
    assert_eq!(versions(&h), (0, 0));
    let add = h.add_device(None, "a");
    let device = h.device_of(add);
    assert_eq!(versions(&h), (1, 0));
    let register = h.register("b-driver", "b", 1);
    let driver = h.driver_of(register);
    assert_eq!(versions(&h), (1, 1));
    h.submit(Request::DeleteDevice(device));
    assert_eq!(versions(&h), (2, 1));
    h.submit(Request::UnregisterDriver(driver));
    assert_eq!(versions(&h), (2, 2));
    // A failed request changes nothing.
    h.submit(Request::DeleteDevice(device));
    assert_eq!(versions(&h), (2, 2));
}

/// Rule 4: a new device walks the bus's drivers; "not mine" moves on to the next driver.
#[test]
fn rule_04a_new_device_walks_the_drivers() {
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("generic", "virtio,mmio", 1);
    let specific = h.register("specific", "virtio,mmio", 2);
    let specific = h.driver_of(specific);
    let add = h.add_device(None, "virtio,mmio");
    let first = h.pending[0];
    assert_eq!(first.pd, PdId(1));
    h.reply(first, Status::NotMine);
    let second = h.pending[0];
    assert_eq!(second.pd, PdId(2));
    h.reply(second, Status::Ok);
    assert_eq!(
        h.result(add),
        Ok(Outcome::Device {
            device: first.device,
            driver: Some(specific)
        })
    );
}

/// Rule 4: a new driver walks the bus's devices, binding every one that accepts it.
#[test]
fn rule_04b_new_driver_walks_the_devices() {
    let mut h = Harness::new(Config::PER_DEVICE);
    let devices: Vec<_> = (0..3).map(|_| h.add_device(None, "arm,pl031")).collect();
    let other = h.add_device(None, "arm,pl011");
    let register = h.register("rtc", "arm,pl031", 1);
    // The registration is decided at once; the walk over the devices follows.
    let driver = h.driver_of(register);
    assert_eq!(h.result(register), Ok(Outcome::Driver { driver, bound: 0 }));
    assert_eq!(h.pending_of(Kind::Probe).len(), 1, "one device at a time");
    h.drain_ok();
    for add in devices {
        assert_eq!(h.bound_to(h.device_of(add)), Some(driver));
    }
    assert_eq!(h.bound_to(h.device_of(other)), None);
}

/// Rule 4: after a failed probe, a changed `drivers_version` restarts the walk from the
/// beginning, and the pair already tried is not tried again.
#[test]
fn rule_04c_walk_restarts_on_version_change_without_retrying_pairs() {
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("first", "x", 1);
    let add = h.add_device(None, "x");
    let first = h.pending[0];
    let device = first.device;
    // A second driver registers while the first probe is in flight: its own walk waits for
    // the device's lock.
    let register = h.register("second", "x", 2);
    h.reply(first, Status::Failed(5));
    assert_eq!(h.manager.stats().walk_restarts, 1);
    let second = h.pending[0];
    assert_eq!(second.pd, PdId(2), "the first driver must not be retried");
    h.reply(second, Status::Ok);
    let bound = h.bound_to(device).unwrap();
    assert_eq!(h.manager.driver(bound).unwrap().pd, PdId(2));
    assert_eq!(h.device_of(add), device);
    // The second driver's walk found the device bound already.
    assert!(matches!(
        h.result(register),
        Ok(Outcome::Driver { bound: 0, .. })
    ));
    let probes_of_first = h.sent.iter().filter(|c| c.pd == PdId(1)).count();
    assert_eq!(probes_of_first, 1);
}

/// Rule 4: a stream of registrations — one during every probe — cannot starve a device's walk:
/// it ends after trying each driver once.
#[test]
fn rule_04d_registrations_during_every_probe_cannot_starve_the_walk() {
    const DRIVERS: u32 = 12;
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("driver-0", "x", 100);
    let add = h.add_device(None, "x");
    let device = h.pending[0].device;
    let mut registered = 1;
    let mut walk_probes = 0;
    while h.completion(add).is_none() {
        let probe = *h
            .pending
            .iter()
            .find(|c| c.device == device)
            .expect("the device's walk must make progress");
        walk_probes += 1;
        assert!(
            walk_probes <= DRIVERS,
            "a driver was tried twice by the walk"
        );
        if registered < DRIVERS {
            h.register(&format!("driver-{registered}"), "x", 100 + registered);
            registered += 1;
        }
        h.reply(probe, Status::Failed(1));
    }
    assert_eq!(walk_probes, DRIVERS, "every driver tried exactly once");
    assert!(h.manager.stats().walk_restarts >= u64::from(DRIVERS - 1));
    // Each walk tried each pair once; everything settles.
    h.drain(|_| Status::Failed(1));
    assert!(h.manager.is_quiescent());
    let mut pairs: Vec<_> = h.sent.iter().map(|c| (c.device, c.driver)).collect();
    let attempts = pairs.len();
    pairs.sort();
    pairs.dedup();
    assert!(
        attempts <= 2 * pairs.len(),
        "at most one retry per pair (the driver's own walk)"
    );
}

/// Rule 5: `device_add` from an outside requester takes the parent's lock first, so it waits
/// for a callback on the parent to finish.
#[test]
fn rule_05a_device_add_takes_the_parent_lock() {
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("bridge", "bus,bridge", 1);
    let parent = h.add_device(None, "bus,bridge");
    let probe = h.pending[0];
    let add_child = h.add_device(Some(probe.device), "dev,leaf");
    assert!(h.completion(add_child).is_none());
    assert_eq!(h.manager.children(probe.device).unwrap().count(), 0);
    h.reply(probe, Status::Ok);
    let child = h.device_of(add_child);
    assert_eq!(
        h.manager.device(child).unwrap().parent,
        Some(h.device_of(parent))
    );
}

/// Rule 5: `__device_add` from a bridge's probe (which holds the parent's lock) is synchronous,
/// and the child is probed at once without waiting for the parent: no deadlock, in either
/// configuration.
#[test]
fn rule_05b_device_add_from_a_probe_does_not_deadlock() {
    for config in [Config::PER_DEVICE, Config::SINGLE_CALLBACK] {
        let mut h = Harness::new(config);
        h.register("bridge", "virtio,mmio", 1);
        h.register("blk", "virtio,blk", 2);
        let add = h.add_device(None, "virtio,mmio");
        let bridge_probe = h.pending[0];
        let child = h.child_add(bridge_probe, "virtio,blk").unwrap();
        assert!(h.manager.device(child).unwrap().added_by_binding);
        if config == Config::PER_DEVICE {
            // The child's probe runs while the bridge's is still in flight.
            let child_probe = h.pending_for(Kind::Probe, child);
            h.reply(child_probe, Status::Ok);
            h.reply(bridge_probe, Status::Ok);
        } else {
            assert_eq!(h.pending.len(), 1, "one callback at a time");
            h.reply(bridge_probe, Status::Ok);
            let child_probe = h.pending_for(Kind::Probe, child);
            h.reply(child_probe, Status::Ok);
        }
        assert!(h.result(add).is_ok());
        assert!(h.bound_to(child).is_some());
        assert!(h.manager.is_quiescent());
    }
}

/// Rule 5: a driver hands a child only resources its own device has: every window inside one
/// of the parent's, every interrupt one of the parent's (a child's driver is another PD).
#[test]
fn rule_05b2_a_child_gets_only_its_parents_resources() {
    use warden_manager_core::MmioWindow;
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("bridge", "bridge", 1);
    let mut parent = common::descriptor(h.bus, "bridge");
    parent
        .resources
        .mmio
        .push(MmioWindow {
            base: 0xa00_0000,
            size: 0x4000,
        })
        .unwrap();
    parent.resources.irqs.push(48).unwrap();
    h.submit(Request::AddDevice {
        parent: None,
        descriptor: parent,
    });
    let probe = h.pending[0];
    let child = |base: u64, size: u64, irq: u32| {
        let mut descriptor = common::descriptor(h.bus, "leaf");
        descriptor
            .resources
            .mmio
            .push(MmioWindow { base, size })
            .unwrap();
        descriptor.resources.irqs.push(irq).unwrap();
        descriptor
    };
    let refused = [
        child(0x900_0000, 0x1000, 48),  // another device's window
        child(0xa00_3f00, 0x200, 48),   // runs past the parent's window
        child(0xa00_0000, 0x200, 33),   // another device's interrupt
        child(u64::MAX - 1, 0x200, 48), // wraps around
    ];
    for descriptor in refused {
        let result =
            h.manager
                .child_add(probe.pd, probe.id, probe.device, &descriptor, &mut |_| {});
        assert_eq!(result, Err(Error::NotPermitted), "{descriptor:?}");
    }
    assert_eq!(h.manager.devices().count(), 1, "nothing was added");
    let inside = child(0xa00_3e00, 0x200, 48);
    let mut effects = Vec::new();
    assert!(h
        .manager
        .child_add(probe.pd, probe.id, probe.device, &inside, &mut |effect| {
            effects.push(effect)
        })
        .is_ok());
    assert_eq!(h.manager.devices().count(), 2);
}

/// Rule 5: `__device_add` is accepted only from the owner of the callback that holds the
/// parent's lock, and only during probe or resume.
#[test]
fn rule_05c_device_add_from_a_callback_needs_its_owner() {
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("bridge", "bridge", 1);
    h.add_device(None, "bridge");
    let probe = h.pending[0];
    let mut forged = probe;
    forged.pd = PdId(9);
    assert_eq!(h.child_add(forged, "leaf"), Err(Error::NotPermitted));
    // Naming a parent other than the device the callback holds is refused too.
    let other = h.add_device(None, "unrelated");
    let other = h.device_of(other);
    assert_eq!(
        h.child_add_under(probe, other, "leaf"),
        Err(Error::NotPermitted)
    );
    h.reply(probe, Status::Ok);
    assert_eq!(
        h.child_add(probe, "leaf"),
        Err(Error::NoSuchCallback),
        "callback is over"
    );
    h.submit(Request::Unbind(probe.device));
    let remove = h.pending[0];
    assert_eq!(
        h.child_add(remove, "leaf"),
        Err(Error::NotPermitted),
        "not during remove"
    );
    h.reply(remove, Status::Ok);
    assert_eq!(h.manager.devices().count(), 2, "no child was added");
}

/// Rule 5: `device_del` removes children depth-first before the parent, calling each bound
/// driver's remove under that device's lock.
#[test]
fn rule_05d_device_del_removes_children_depth_first() {
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("any", "n", 1);
    let root = h.add_device(None, "n");
    h.drain_ok();
    let root = h.device_of(root);
    let c1 = h.add_device(Some(root), "n");
    h.drain_ok();
    let c1 = h.device_of(c1);
    let g = h.add_device(Some(c1), "n");
    h.drain_ok();
    let g = h.device_of(g);
    let c2 = h.add_device(Some(root), "n");
    h.drain_ok();
    let c2 = h.device_of(c2);
    let from = h.sent.len();
    let delete = h.submit(Request::DeleteDevice(root));
    while let Some(remove) = h.pending.first().copied() {
        assert_eq!(
            h.manager.device(remove.device).unwrap().lock_owner,
            Some(LockOwner::Callback(remove.id))
        );
        h.reply(remove, Status::Ok);
    }
    assert_eq!(
        h.sent_since(from),
        vec![
            (Kind::Remove, g),
            (Kind::Remove, c1),
            (Kind::Remove, c2),
            (Kind::Remove, root)
        ]
    );
    assert_eq!(h.result(delete), Ok(Outcome::Done));
    assert_eq!(h.manager.devices().count(), 0);
    for device in [root, c1, g, c2] {
        assert_eq!(h.manager.device(device).err(), Some(Error::StaleDevice));
    }
}

/// Rule 5: deleting a device whose probe is in flight waits for the probe to end.
#[test]
fn rule_05e_delete_waits_for_the_probe_in_flight() {
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("slow", "s", 1);
    h.add_device(None, "s");
    let probe = h.pending[0];
    let delete = h.submit(Request::DeleteDevice(probe.device));
    assert!(h.completion(delete).is_none());
    assert_eq!(h.pending, vec![probe], "no remove while the probe runs");
    h.reply(probe, Status::Ok);
    let remove = h.pending_for(Kind::Remove, probe.device);
    h.reply(remove, Status::Ok);
    assert_eq!(h.result(delete), Ok(Outcome::Done));
}

/// Rule 6: unregistering a driver starts no new probe of it, lets the in-flight ones finish,
/// then unbinds its devices children first and removes it.
#[test]
fn rule_06_unregister_waits_for_probes_then_unbinds_children_first() {
    let mut h = Harness::new(Config::PER_DEVICE);
    let register = h.register("a", "a", 1);
    let driver = h.driver_of(register);
    let parent = h.add_device(None, "a");
    h.drain_ok();
    let parent = h.device_of(parent);
    let child = h.add_device(Some(parent), "a");
    h.drain_ok();
    let child = h.device_of(child);
    h.add_device(None, "a");
    let in_flight = h.pending[0];
    let unregister = h.submit(Request::UnregisterDriver(driver));
    assert_eq!(
        h.manager.driver(driver).unwrap().state,
        DriverState::Unregistering
    );
    // A device added now is not probed with the departing driver.
    let late = h.add_device(None, "a");
    assert_eq!(
        h.result(late).unwrap(),
        Outcome::Device {
            device: h.device_of(late),
            driver: None
        }
    );
    assert_eq!(
        h.pending,
        vec![in_flight],
        "no remove before the probe in flight ends"
    );
    let from = h.sent.len();
    h.reply(in_flight, Status::Ok);
    h.drain_ok();
    assert_eq!(
        h.sent_since(from),
        vec![
            (Kind::Remove, child),
            (Kind::Remove, parent),
            (Kind::Remove, in_flight.device)
        ]
    );
    assert_eq!(h.result(unregister), Ok(Outcome::Done));
    assert_eq!(h.manager.driver(driver).err(), Some(Error::StaleDriver));
    assert!(h.manager.devices().all(|d| h.bound_to(d).is_none()));
}

/// Rule 7: a probe that answers "defer" parks the device; the next successful bind anywhere
/// retries every parked device.
#[test]
fn rule_07_deferred_probe_is_retried_after_a_bind() {
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("needs-clock", "uart", 1);
    let uart = h.add_device(None, "uart");
    let probe = h.pending[0];
    h.reply(probe, Status::Defer);
    let uart = h.device_of(uart);
    assert!(h.manager.device(uart).unwrap().deferred);
    assert!(h.pending.is_empty());
    // The clock provider appears and binds: the trigger retries the UART.
    h.register("clock", "clock", 2);
    h.add_device(None, "clock");
    let clock_probe = h.pending[0];
    h.reply(clock_probe, Status::Ok);
    let retry = h.pending_for(Kind::Probe, uart);
    h.reply(retry, Status::Ok);
    assert!(h.bound_to(uart).is_some());
    assert!(!h.manager.device(uart).unwrap().deferred);
}

/// Rule 8: suspend runs children before parents, resume parents before children, shutdown
/// children first — for the system and for one subtree.
#[test]
fn rule_08_power_management_order() {
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("any", "n", 1);
    let p = h.add_device(None, "n");
    h.drain_ok();
    let p = h.device_of(p);
    let c = h.add_device(Some(p), "n");
    h.drain_ok();
    let c = h.device_of(c);
    let g = h.add_device(Some(c), "n");
    h.drain_ok();
    let g = h.device_of(g);
    let run = |h: &mut Harness, request: Request| {
        let from = h.sent.len();
        let id = h.submit(request);
        h.drain_ok();
        assert_eq!(h.result(id), Ok(Outcome::Done));
        h.sent_since(from)
            .into_iter()
            .map(|(_, device)| device)
            .collect::<Vec<_>>()
    };
    assert_eq!(run(&mut h, Request::SuspendAll), vec![g, c, p]);
    assert_eq!(run(&mut h, Request::ResumeAll), vec![p, c, g]);
    assert_eq!(run(&mut h, Request::Suspend(c)), vec![g, c]);
    let resume_child = h.submit(Request::Resume(g));
    assert_eq!(h.result(resume_child), Err(Error::ParentSuspended));
    assert_eq!(run(&mut h, Request::Resume(c)), vec![c, g]);
    let from = h.sent.len();
    let shutdown = h.submit(Request::Shutdown);
    h.drain_ok();
    assert!(h.sent[from..]
        .iter()
        .all(|callback| callback.kind == Kind::Shutdown));
    assert_eq!(
        h.sent_since(from)
            .into_iter()
            .map(|(_, d)| d)
            .collect::<Vec<_>>(),
        vec![g, c, p]
    );
    assert_eq!(h.result(shutdown), Ok(Outcome::Done));
    assert_eq!(h.try_submit(CLIENT, Request::Rescan), Err(Error::ShutDown));
}

/// Rule 9: every accepted request gets an id and completes exactly once — also when its target
/// vanished while it waited.
#[test]
fn rule_09_every_request_completes_exactly_once() {
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("d", "d", 1);
    h.add_device(None, "d");
    let probe = h.pending[0];
    let device = probe.device;
    let first_delete = h.submit(Request::DeleteDevice(device));
    let second_delete = h.submit(Request::DeleteDevice(device));
    let add_under = h.add_device(Some(device), "d");
    let bind = h.submit(Request::Bind {
        device,
        driver: probe.driver,
    });
    h.reply(probe, Status::Ok);
    h.drain_ok();
    assert_eq!(h.result(first_delete), Ok(Outcome::Done));
    assert_eq!(h.result(second_delete), Err(Error::StaleDevice));
    assert_eq!(h.result(add_under), Err(Error::StaleDevice));
    assert_eq!(h.result(bind), Err(Error::StaleDevice));
    let mut ids: Vec<_> = h.completions.iter().map(|c| c.request).collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "no request completed twice");
    assert!(h.completions.iter().all(|c| c.requester == CLIENT));
}

/// Rule 10: a driver PD's death releases the locks its callbacks held, unbinds its devices
/// (removing the children its bindings added), makes its handles stale, lets waiting
/// operations proceed, and reprobes the devices with the remaining drivers.
#[test]
fn rule_10_driver_death_releases_locks_and_unbinds() {
    let mut h = Harness::new(Config::PER_DEVICE);
    let bridge = h.register("bridge", "bridge", 1);
    let bridge = h.driver_of(bridge);
    h.register("leaf", "leaf", 2);
    h.add_device(None, "bridge");
    let bridge_probe = h.pending[0];
    let parent = bridge_probe.device;
    let child = h.child_add(bridge_probe, "leaf").unwrap();
    h.reply(bridge_probe, Status::Ok);
    h.drain_ok();
    assert!(h.bound_to(child).is_some());
    // A second device's probe by the bridge is in flight, and a suspend waits behind it.
    h.add_device(None, "bridge");
    let stuck = h.pending[0];
    let suspend = h.submit(Request::Suspend(stuck.device));
    // A fallback driver for bridges, registered later.
    h.register("fallback", "bridge", 3);
    h.pd_died(1);
    assert_eq!(
        h.manager.driver(bridge).err(),
        None,
        "cleanup still running"
    );
    // The child the bridge added is removed (its own driver's remove runs), then the parent
    // is unbound without a callback to the dead PD.
    let remove = h.pending_for(Kind::Remove, child);
    assert_ne!(remove.pd, PdId(1));
    h.reply(remove, Status::Ok);
    h.drain(|callback| {
        assert_ne!(callback.pd, PdId(1), "no callback to a dead PD");
        Status::Ok
    });
    assert_eq!(h.result(suspend), Ok(Outcome::Done));
    assert_eq!(h.manager.driver(bridge).err(), Some(Error::StaleDriver));
    assert_eq!(h.manager.device(child).err(), Some(Error::StaleDevice));
    // Both bridges were reprobed and taken by the fallback driver (the suspended one once it
    // resumes).
    let fallback_pd = |h: &Harness, d| {
        h.bound_to(d)
            .map(|driver| h.manager.driver(driver).unwrap().pd)
    };
    assert_eq!(fallback_pd(&h, parent), Some(PdId(3)));
    h.submit(Request::Resume(stuck.device));
    h.drain_ok();
    assert_eq!(fallback_pd(&h, stuck.device), Some(PdId(3)));
    assert!(h.manager.is_quiescent());
}

/// Rule 11: the invariant check runs after every event of every test here (see the harness);
/// this test shows it is not vacuous on a busy manager and that replies the manager did not
/// ask for are refused without changing anything.
#[test]
fn rule_11_invariants_hold_and_bogus_replies_change_nothing() {
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("a", "a", 1);
    for _ in 0..5 {
        h.add_device(None, "a");
    }
    assert_eq!(h.pending.len(), 5);
    let before = h.manager.clone();
    let mut bogus = h.pending[0];
    bogus.pd = PdId(7);
    assert_eq!(h.try_reply(bogus, Status::Ok), Err(Error::NotPermitted));
    let mut late = h.pending[0];
    late.id = warden_manager_core::CallbackId::from_parts(late.id.operation(), 999);
    assert_eq!(h.try_reply(late, Status::Ok), Err(Error::NoSuchCallback));
    let out_of_range = warden_manager_core::CallbackId::from_parts(u32::MAX, 1);
    late.id = out_of_range;
    assert_eq!(h.try_reply(late, Status::Ok), Err(Error::NoSuchCallback));
    assert!(
        *h.manager == *before,
        "refused replies left the state untouched"
    );
    h.drain_ok();
    h.manager.invariants().unwrap();
}

/// Rule 12: the single-callback configuration allows one callback in flight system-wide and
/// still binds everything; per-device locking runs the probes in parallel.
#[test]
fn rule_12_single_callback_configuration() {
    for (config, expected_parallel) in [(Config::SINGLE_CALLBACK, 1), (Config::PER_DEVICE, 6)] {
        let mut h = Harness::new(config);
        h.register("a", "a", 1);
        let adds: Vec<_> = (0..6).map(|_| h.add_device(None, "a")).collect();
        assert_eq!(h.pending.len(), expected_parallel);
        // Reply newest first, to mix the order.
        while let Some(callback) = h.pending.last().copied() {
            assert!(h.pending.len() <= expected_parallel);
            h.reply(callback, Status::Ok);
        }
        for add in adds {
            assert!(h.bound_to(h.device_of(add)).is_some());
        }
        assert_eq!(
            h.manager.stats().max_callbacks_in_flight,
            expected_parallel as u64
        );
    }
}

/// Handles are (index, generation) pairs: a handle to a deleted device stays stale after its
/// slot is reused.
#[test]
fn stale_handles_never_alias_new_objects() {
    let mut h = Harness::new(Config::PER_DEVICE);
    let first = h.add_device(None, "a");
    let first = h.device_of(first);
    h.submit(Request::DeleteDevice(first));
    let second = h.add_device(None, "a");
    let second = h.device_of(second);
    assert_eq!(first.index(), second.index(), "slot reused");
    assert_eq!(h.manager.device(first).err(), Some(Error::StaleDevice));
    let unbind = h.submit(Request::Unbind(first));
    assert_eq!(h.result(unbind), Err(Error::StaleDevice));
    assert!(h.manager.device(second).is_ok());
}

/// Capacity is an error value: a full device table refuses the add, the request completes
/// with `NoSpace`, and nothing else changes.
#[test]
fn running_out_of_room_is_an_error() {
    let mut h = Harness::new(Config::PER_DEVICE);
    for _ in 0..64 {
        h.add_device(None, "x");
    }
    let overflow = h.add_device(None, "x");
    assert_eq!(h.result(overflow), Err(Error::NoSpace));
    // The operation table is full but for the manager's own slots while 28 probes (one per
    // client) are in flight: backpressure at the door.
    let mut h = Harness::new(Config::PER_DEVICE);
    h.register("x", "x", 1);
    for client in 0..28 {
        let descriptor = common::descriptor(h.bus, "x");
        let request = Request::AddDevice {
            parent: None,
            descriptor,
        };
        h.try_submit(Requester::Client(client), request).unwrap();
    }
    assert_eq!(h.manager.operations_in_progress(), 28);
    let refused = h.try_submit(Requester::Client(99), Request::Rescan);
    assert_eq!(refused, Err(Error::NoSpace));
    h.drain_ok();
    assert!(h.try_submit(CLIENT, Request::Rescan).is_ok());
}

/// Drivers may act only on devices bound to them (and their children).
#[test]
fn driver_requests_need_authority() {
    let mut h = Harness::new(Config::PER_DEVICE);
    let register = h.register("a", "a", 1);
    let driver = h.driver_of(register);
    let mine = h.add_device(None, "a");
    h.drain_ok();
    let mine = h.device_of(mine);
    let other = h.add_device(None, "b");
    let other = h.device_of(other);
    let as_driver = |pd| Requester::Driver(PdId(pd));
    let add = |parent| Request::AddDevice {
        parent: Some(parent),
        descriptor: common::descriptor(h.bus, "c"),
    };
    let (add_mine, add_other) = (add(mine), add(other));
    assert!(h.try_submit(as_driver(1), add_mine).is_ok());
    assert_eq!(
        h.try_submit(as_driver(1), add_other),
        Err(Error::NotPermitted)
    );
    assert_eq!(
        h.try_submit(as_driver(2), Request::UnregisterDriver(driver)),
        Err(Error::NotPermitted)
    );
    assert_eq!(
        h.try_submit(as_driver(1), Request::SuspendAll),
        Err(Error::NotPermitted)
    );
    let forged = common::driver_descriptor(h.bus, "z", "z", 5);
    assert_eq!(
        h.try_submit(as_driver(1), Request::RegisterDriver(forged)),
        Err(Error::NotPermitted)
    );
    assert_eq!(
        h.try_submit(as_driver(2), Request::Unbind(mine)),
        Err(Error::NotPermitted),
        "only the PD whose driver has the device may unbind it"
    );
    assert_eq!(
        h.try_submit(as_driver(1), Request::Unbind(other)),
        Err(Error::NotPermitted),
        "a device bound to no driver of the PD"
    );
    assert_eq!(
        h.try_submit(
            as_driver(2),
            Request::Bind {
                device: mine,
                driver
            }
        ),
        Err(Error::NotPermitted),
        "a driver of another PD"
    );
    assert_eq!(
        h.try_submit(as_driver(1), Request::Rescan),
        Err(Error::NotPermitted)
    );
    assert!(h.try_submit(as_driver(1), Request::Unbind(mine)).is_ok());
    assert!(h
        .try_submit(
            as_driver(1),
            Request::Bind {
                device: mine,
                driver
            }
        )
        .is_ok());
    assert!(h
        .try_submit(as_driver(1), Request::UnregisterDriver(driver))
        .is_ok());
}
