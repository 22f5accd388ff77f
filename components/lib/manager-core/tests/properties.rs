//! Property tests: random sequences of adds, deletes, registrations, unregistrations,
//! suspends, deaths, replies and the passing of time, from several clients, in random order.
//! Time that passes stops the PDs whose callbacks are past their deadline (as the supervisor
//! does). The invariants hold after every step (the harness checks them), every accepted
//! request completes exactly once, and once the inputs stop and the drivers cooperate, the
//! manager reaches quiescence with every device bound to a matching driver whenever one exists.
//! A second property has drivers that never answer at all: time alone, through their
//! deadlines, brings the manager to quiescence.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod common;

use common::Harness;
use proptest::prelude::*;
use warden_manager_core::{Answer, Config, DeviceState, DriverState, Request, RequestId};

const CLASSES: [&str; 3] = ["class-a", "class-b", "class-c"];

#[derive(Clone, Debug)]
enum Action {
    AddDevice {
        parent: Option<u8>,
        class: u8,
    },
    ChildFromCallback {
        callback: u8,
        class: u8,
    },
    DeleteDevice(u8),
    Register {
        class: u8,
        pd: u8,
    },
    Unregister(u8),
    Bind {
        device: u8,
        driver: u8,
    },
    Reply {
        callback: u8,
        status: u8,
    },
    Suspend(u8),
    Resume(u8),
    SuspendAll,
    ResumeAll,
    Rescan,
    Die(u8),
    /// Time passes (milliseconds); PDs with a callback past its deadline are stopped.
    Wait(u16),
    /// Forged input from a misbehaving PD: raw handles and callback ids.
    Forged {
        what: u8,
        index: u32,
        generation: u32,
        pd: u8,
    },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (proptest::option::of(any::<u8>()), 0..3u8)
            .prop_map(|(parent, class)| Action::AddDevice { parent, class }),
        2 => (any::<u8>(), 0..3u8)
            .prop_map(|(callback, class)| Action::ChildFromCallback { callback, class }),
        2 => any::<u8>().prop_map(Action::DeleteDevice),
        3 => (0..3u8, 1..5u8).prop_map(|(class, pd)| Action::Register { class, pd }),
        1 => any::<u8>().prop_map(Action::Unregister),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(device, driver)| Action::Bind { device, driver }),
        10 => (any::<u8>(), 0..4u8).prop_map(|(callback, status)| Action::Reply { callback, status }),
        1 => any::<u8>().prop_map(Action::Suspend),
        1 => any::<u8>().prop_map(Action::Resume),
        1 => Just(Action::SuspendAll),
        1 => Just(Action::ResumeAll),
        1 => Just(Action::Rescan),
        1 => (1..5u8).prop_map(Action::Die),
        2 => (0..1200u16).prop_map(Action::Wait),
        2 => (0..6u8, 0..70u32, 0..3u32, 0..6u8)
            .prop_map(|(what, index, generation, pd)| Action::Forged { what, index, generation, pd }),
    ]
}

fn status(code: u8) -> Answer {
    match code {
        0 => Answer::Ok,
        1 => Answer::NotMine,
        2 => Answer::Defer,
        _ => Answer::Failed(u16::from(code)),
    }
}

fn pick<T: Copy>(items: &[T], index: u8) -> Option<T> {
    if items.is_empty() {
        None
    } else {
        Some(items[usize::from(index) % items.len()])
    }
}

/// What the supervisor does at `now`: every PD with a callback past its deadline is stopped
/// (its callbacks end as failed). Afterwards none is overdue.
fn stop_overdue(h: &mut Harness, now: u64) {
    let instant = warden_manager_core::Instant(now * 1_000_000);
    while let Some(overdue) = h.manager.overdue(instant) {
        h.pd_died(overdue.pd.0);
    }
    assert_eq!(h.manager.overdue(instant), None);
}

fn apply(h: &mut Harness, accepted: &mut Vec<RequestId>, now: &mut u64, action: &Action) {
    let devices: Vec<_> = h.manager.devices().collect();
    let drivers: Vec<_> = h.manager.drivers().collect();
    let request = match *action {
        Action::AddDevice { parent, class } => {
            let parent = parent.and_then(|index| pick(&devices, index));
            Some(Request::AddDevice {
                parent,
                descriptor: common::descriptor(h.bus, CLASSES[usize::from(class)]),
            })
        }
        Action::ChildFromCallback { callback, class } => {
            if let Some(callback) = pick(&h.pending, callback) {
                // Refused unless the callback is a probe or resume: that is fine.
                let _ = h.child_add(callback, CLASSES[usize::from(class)]);
            }
            None
        }
        Action::DeleteDevice(index) => pick(&devices, index).map(Request::DeleteDevice),
        Action::Register { class, pd } => Some(Request::RegisterDriver(common::driver_descriptor(
            h.bus,
            "driver",
            CLASSES[usize::from(class)],
            u32::from(pd),
        ))),
        Action::Unregister(index) => pick(&drivers, index).map(Request::UnregisterDriver),
        Action::Bind { device, driver } => match (pick(&devices, device), pick(&drivers, driver)) {
            (Some(device), Some(driver)) => Some(Request::Bind { device, driver }),
            _ => None,
        },
        Action::Reply {
            callback,
            status: code,
        } => {
            if let Some(callback) = pick(&h.pending, callback) {
                h.reply(callback, status(code));
            }
            None
        }
        Action::Suspend(index) => pick(&devices, index).map(Request::Suspend),
        Action::Resume(index) => pick(&devices, index).map(Request::Resume),
        Action::SuspendAll => Some(Request::SuspendAll),
        Action::ResumeAll => Some(Request::ResumeAll),
        Action::Rescan => Some(Request::Rescan),
        Action::Die(pd) => {
            h.pd_died(u32::from(pd));
            None
        }
        Action::Wait(ms) => {
            *now += u64::from(ms);
            h.at(*now);
            stop_overdue(h, *now);
            None
        }
        Action::Forged {
            what,
            index,
            generation,
            pd,
        } => {
            accepted.extend(forged(h, what, index, generation, pd));
            None
        }
    };
    if let Some(request) = request {
        // Refusals at the door (no room, a client over its cap) are backpressure, not
        // completions. Requests come from four clients.
        let client = warden_manager_core::Requester::Client(accepted.len() as u32 % 4);
        if let Ok(id) = h.try_submit(client, request) {
            accepted.push(id);
        }
    }
}

/// A misbehaving driver PD sends whatever it likes: every call must answer with an error or
/// act within the driver's authority, and never panic (the harness checks the invariants).
fn forged(h: &mut Harness, what: u8, index: u32, generation: u32, pd: u8) -> Option<RequestId> {
    use warden_manager_core::{CallbackId, DeviceId, DriverId, PdId, Requester};
    let device = DeviceId::from_parts(index, generation);
    let driver = DriverId::from_parts(index % 20, generation);
    let pd = PdId(u32::from(pd));
    let callback = CallbackId::from_parts(index % 40, u64::from(generation) + u64::from(index));
    let mut effects = Vec::new();
    let mut out = |effect| effects.push(effect);
    let accepted = match what {
        0 => {
            let replied = h.manager.callback_done(pd, callback, Answer::Ok, &mut out);
            if replied.is_ok() {
                // A guess that hit one of this PD's own callbacks is a real reply.
                h.pending.retain(|pending| pending.id != callback);
            }
            None
        }
        1 => {
            let descriptor = common::descriptor(h.bus, CLASSES[0]);
            let _ = h
                .manager
                .child_add(pd, callback, device, &descriptor, &mut out);
            None
        }
        2 => {
            let _ = h.manager.child_remove(pd, callback, device, &mut out);
            None
        }
        3 => {
            let request = Request::DeleteDevice(device);
            h.manager
                .submit(Requester::Driver(pd), request, &mut out)
                .ok()
        }
        4 => {
            let request = Request::UnregisterDriver(driver);
            h.manager
                .submit(Requester::Driver(pd), request, &mut out)
                .ok()
        }
        _ => {
            let request = Request::Bind { device, driver };
            h.manager
                .submit(Requester::Driver(pd), request, &mut out)
                .ok()
        }
    };
    // Whatever was accepted is tracked like any other effect.
    for effect in effects {
        h.track(effect);
    }
    h.manager.invariants().unwrap();
    h.check_mirror();
    accepted
}

fn settle(h: &mut Harness, accepted: &mut Vec<RequestId>) {
    h.drain(|_| Answer::Ok);
    for request in [Request::ResumeAll, Request::Rescan] {
        loop {
            match h.try_submit(common::CLIENT, request.clone()) {
                Ok(id) => {
                    accepted.push(id);
                    break;
                }
                Err(_) => h.drain(|_| Answer::Ok),
            }
        }
        h.drain(|_| Answer::Ok);
    }
}

fn check_quiescent(h: &Harness, accepted: &[RequestId]) {
    assert!(
        h.manager.is_quiescent(),
        "work left after the drivers went quiet"
    );
    assert_eq!(h.manager.callbacks_in_flight(), 0);
    let mut completed: Vec<_> = h.completions.iter().map(|c| c.request).collect();
    completed.sort();
    let count = completed.len();
    completed.dedup();
    assert_eq!(completed.len(), count, "a request completed twice");
    let mut expected = accepted.to_vec();
    expected.sort();
    assert_eq!(completed, expected, "every accepted request completed");
    for device in h.manager.devices() {
        let info = h.manager.device(device).unwrap();
        assert_eq!(info.state, DeviceState::Active);
        assert!(info.lock_owner.is_none());
        if info.driver.is_some() {
            continue;
        }
        let matching = h.manager.drivers().any(|driver| {
            let driver = h.manager.driver(driver).unwrap();
            driver.state == DriverState::Live
                && driver.bus == info.bus
                && driver.match_table.matches(&info.match_data)
        });
        assert!(
            !matching,
            "device {device:?} is unbound although a live driver matches it"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_invariants_and_reach_quiescence(
        single in any::<bool>(),
        actions in proptest::collection::vec(action(), 1..160),
    ) {
        let config = if single { Config::SINGLE_CALLBACK } else { Config::PER_DEVICE };
        let mut h = Harness::new(config);
        let mut accepted = Vec::new();
        let mut now = 0;
        for action in &actions {
            apply(&mut h, &mut accepted, &mut now, action);
        }
        settle(&mut h, &mut accepted);
        check_quiescent(&h, &accepted);
    }

    #[test]
    fn drivers_that_never_answer_are_stopped_by_their_deadlines(
        actions in proptest::collection::vec(action(), 1..120),
    ) {
        let mut h = Harness::new(Config::PER_DEVICE);
        let mut accepted = Vec::new();
        let mut now = 0;
        for action in actions.iter().filter(|action| !matches!(action, Action::Reply { .. })) {
            apply(&mut h, &mut accepted, &mut now, action);
        }
        // Nobody answers: only time passes.
        let mut rounds = 0;
        while !h.manager.is_quiescent() {
            rounds += 1;
            prop_assert!(rounds < 1000, "time does not bring quiescence");
            now += 600;
            h.at(now);
            stop_overdue(&mut h, now);
        }
        prop_assert_eq!(h.manager.callbacks_in_flight(), 0);
        let mut completed: Vec<_> = h.completions.iter().map(|c| c.request).collect();
        completed.sort();
        accepted.sort();
        prop_assert_eq!(completed, accepted, "every accepted request completed");
    }
}
