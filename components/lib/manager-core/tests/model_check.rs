//! Exhaustive model check (stateright) of the manager with three driver PDs — a bridge driver
//! that adds a child from its probe and two leaf drivers competing for the same devices — and
//! one requester, over every interleaving of registrations, requests, replies (with every
//! answer a driver may give), a bridge `__device_add`, and a driver PD's death.
//!
//! Checked in every reachable state: the manager's invariants (lock order, one callback per
//! device under its lock, list consistency…), no request completed twice, and no deadlock:
//! a state where nothing can happen any more has every request completed, no callback
//! pending and the manager quiescent.
//!
//! The state graph has no cycles — every action spends a one-shot step (a registration, a
//! request, the death) or answers a callback, and the manager's callback sequence number only
//! grows — so "every final state is quiescent" means every reachable state can reach
//! quiescence: no deadlock and no livelock.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use stateright::{Checker, Model, Property};
use warden_manager_core::{
    Answer, BusId, Callback, CallbackId, CallbackKind, Config, DeviceDescriptor, DeviceId,
    DriverDescriptor, Effect, Manager, MatchData, MatchTable, Name, PdId, Request, RequestId,
    Requester, Resources,
};

type SmallManager = Manager<4, 3, 1, 6>;

const BRIDGE: u32 = 1;
const LEAF_A: u32 = 2;
const LEAF_B: u32 = 3;
const REQUESTER: Requester = Requester::Client(9);

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct SystemState {
    manager: SmallManager,
    /// Callbacks sent and not answered yet.
    pending: Vec<Callback>,
    /// Bridge probes that already added their child.
    child_added: Vec<CallbackId>,
    registered: [bool; 3],
    /// How far the requester is through its script.
    script: usize,
    accepted: Vec<RequestId>,
    /// The requester's own requests.
    requested: Vec<RequestId>,
    completed: Vec<RequestId>,
    died: bool,
    /// Counters are drained after every step (so that paths differing only in how often they
    /// counted merge); what the properties need of them is kept here.
    walk_restarted: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Action {
    Register(u32),
    Request,
    BridgeAddsChild(Callback),
    Reply(Callback, Answer),
    LeafADies,
}

/// What the requester does, one request after the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// A leaf device is plugged in, then the bridge is deleted.
    HotPlug,
    /// The system is suspended, then the bridge is deleted.
    Power,
    /// Hot-plug, system suspend and resume, then the bridge is deleted.
    Everything,
}

struct System {
    config: Config,
    scenario: Scenario,
    bus: BusId,
    bridge_device: DeviceId,
    script: Vec<Request>,
}

fn descriptor(bus: BusId, compatible: &str) -> DeviceDescriptor {
    DeviceDescriptor {
        bus,
        match_data: MatchData::compatible(compatible).unwrap(),
        resources: Resources::default(),
    }
}

impl SystemState {
    fn absorb(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Callback(callback) => self.pending.push(callback),
                Effect::Complete(completion) => self.completed.push(completion.request),
                Effect::Changed(_) => {}
            }
        }
    }
}

impl System {
    fn new(config: Config, scenario: Scenario) -> (Self, SystemState) {
        let mut manager = SmallManager::new(config);
        let bus = manager.add_bus("virtio").unwrap();
        let mut effects = Vec::new();
        let mut system = Self {
            config,
            scenario,
            bus,
            bridge_device: DeviceId::from_parts(0, 0),
            script: Vec::new(),
        };
        // The bridge driver and the first leaf driver are up before the board's devices
        // appear; the second leaf driver registers at any point of the run.
        for pd in [BRIDGE, LEAF_A] {
            let request = Request::RegisterDriver(system.driver(pd));
            manager
                .submit(Requester::Driver(PdId(pd)), request, &mut |e| {
                    effects.push(e)
                })
                .unwrap();
        }
        // The board: a virtio-mmio transport (the bridge's device), whose probe is in flight
        // when the run starts; the leaf device is the child the bridge adds.
        let request = Request::AddDevice {
            parent: None,
            descriptor: descriptor(bus, "bridge"),
        };
        let id = manager.submit(Requester::Client(0), request, &mut |e| effects.push(e));
        let accepted = vec![id.unwrap()];
        let bridge_device = manager.roots().next().unwrap();
        system.bridge_device = bridge_device;
        let hot_plug = Request::AddDevice {
            parent: None,
            descriptor: descriptor(bus, "leaf"),
        };
        system.script = match scenario {
            Scenario::HotPlug => vec![hot_plug, Request::DeleteDevice(bridge_device)],
            Scenario::Power => vec![Request::SuspendAll, Request::DeleteDevice(bridge_device)],
            Scenario::Everything => vec![
                hot_plug,
                Request::SuspendAll,
                Request::ResumeAll,
                Request::DeleteDevice(bridge_device),
            ],
        };
        let mut state = SystemState {
            manager,
            pending: Vec::new(),
            child_added: Vec::new(),
            registered: [true, true, false],
            script: 0,
            accepted,
            requested: Vec::new(),
            completed: Vec::new(),
            died: false,
            walk_restarted: false,
        };
        state.absorb(effects);
        state.completed.clear();
        state.manager.take_stats();
        (system, state)
    }

    fn driver(&self, pd: u32) -> DriverDescriptor {
        let (name, compatible) = match pd {
            BRIDGE => ("bridge", "bridge"),
            LEAF_A => ("leaf-a", "leaf"),
            _ => ("leaf-b", "leaf"),
        };
        DriverDescriptor {
            bus: self.bus,
            pd: PdId(pd),
            name: Name::try_from(name).unwrap(),
            match_table: MatchTable::compatible(compatible).unwrap(),
            deadline: None,
        }
    }

    /// What a driver may answer to a callback.
    fn answers(callback: &Callback) -> &'static [Answer] {
        match (callback.kind, callback.pd.0) {
            (CallbackKind::Probe, LEAF_A) => &[Answer::Ok, Answer::NotMine],
            (CallbackKind::Probe, LEAF_B) => &[Answer::Ok, Answer::Defer],
            _ => &[Answer::Ok],
        }
    }
}

impl Model for System {
    type State = SystemState;
    type Action = Action;

    fn init_states(&self) -> Vec<SystemState> {
        vec![System::new(self.config, self.scenario).1]
    }

    fn actions(&self, state: &SystemState, actions: &mut Vec<Action>) {
        for (slot, pd) in [BRIDGE, LEAF_A, LEAF_B].into_iter().enumerate() {
            if !(state.registered[slot] || pd == LEAF_A && state.died) {
                actions.push(Action::Register(pd));
            }
        }
        // The requester is a client that waits for each completion before its next request.
        let waiting = state
            .requested
            .iter()
            .any(|id| !state.completed.contains(id));
        if state.script < self.script.len() && !waiting {
            actions.push(Action::Request);
        }
        for callback in &state.pending {
            let is_bridge_probe = callback.pd.0 == BRIDGE && callback.kind == CallbackKind::Probe;
            if is_bridge_probe && !state.child_added.contains(&callback.id) {
                // The bridge adds its child before it answers.
                actions.push(Action::BridgeAddsChild(*callback));
                continue;
            }
            for status in System::answers(callback) {
                actions.push(Action::Reply(*callback, *status));
            }
        }
        if !state.died && state.registered[1] {
            actions.push(Action::LeafADies);
        }
    }

    fn next_state(&self, last: &SystemState, action: Action) -> Option<SystemState> {
        let mut state = last.clone();
        let mut effects = Vec::new();
        let mut out = |effect| effects.push(effect);
        match action {
            Action::Register(pd) => {
                state.registered[(pd - 1) as usize] = true;
                let request = Request::RegisterDriver(self.driver(pd));
                let id = state
                    .manager
                    .submit(Requester::Driver(PdId(pd)), request, &mut out)
                    .ok()?;
                state.accepted.push(id);
            }
            Action::Request => {
                let request = self.script[state.script].clone();
                state.script += 1;
                if let Ok(id) = state.manager.submit(REQUESTER, request, &mut out) {
                    state.accepted.push(id);
                    state.requested.push(id);
                }
            }
            Action::BridgeAddsChild(callback) => {
                state.child_added.push(callback.id);
                let child = descriptor(self.bus, "leaf");
                // May be refused (no room): the bridge then just answers.
                let _ = state.manager.child_add(
                    callback.pd,
                    callback.id,
                    callback.device,
                    &child,
                    &mut out,
                );
            }
            Action::Reply(callback, status) => {
                state.pending.retain(|pending| pending.id != callback.id);
                state
                    .manager
                    .callback_done(callback.pd, callback.id, status, &mut out)
                    .ok()?;
            }
            Action::LeafADies => {
                state.died = true;
                state.pending.retain(|pending| pending.pd != PdId(LEAF_A));
                state.manager.pd_died(PdId(LEAF_A), &mut out);
            }
        }
        state.absorb(effects);
        state.walk_restarted |= state.manager.take_stats().walk_restarts > 0;
        // Order of the bookkeeping vectors carries no meaning: keep one canonical form.
        state.pending.sort_by_key(|callback| callback.id);
        state.child_added.sort();
        state.accepted.sort();
        state.completed.sort();
        Some(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("invariants", |_, state: &SystemState| {
                state.manager.invariants().is_ok()
            }),
            Property::always("no request completes twice", |_, state: &SystemState| {
                let mut completed = state.completed.clone();
                let count = completed.len();
                completed.sort();
                completed.dedup();
                completed.len() == count
            }),
            Property::always(
                "no deadlock: a final state is quiescent",
                |model: &System, state: &SystemState| {
                    let mut actions = Vec::new();
                    model.actions(state, &mut actions);
                    if !actions.is_empty() {
                        return true;
                    }
                    let mut accepted = state.accepted.clone();
                    let mut completed = state.completed.clone();
                    accepted.sort();
                    completed.sort();
                    state.manager.is_quiescent()
                        && state.pending.is_empty()
                        && accepted == completed
                },
            ),
            Property::sometimes("the bridge's child gets bound", |_, state: &SystemState| {
                state.manager.devices().any(|device| {
                    let info = state.manager.device(device).unwrap();
                    info.added_by_binding && info.driver.is_some()
                })
            }),
            Property::sometimes(
                "a walk restarts after a version change",
                |_, state: &SystemState| state.walk_restarted,
            ),
            Property::sometimes(
                "a device is parked by a deferred probe",
                |_, state: &SystemState| {
                    state
                        .manager
                        .devices()
                        .any(|d| state.manager.device(d).unwrap().deferred)
                },
            ),
        ]
    }
}

fn check(config: Config, scenario: Scenario) {
    let (system, _) = System::new(config, scenario);
    assert_eq!(system.bridge_device.index(), 0);
    let started = std::time::Instant::now();
    let limit = std::env::var("MODEL_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let checker = system
        .checker()
        // One thread: with two, the workers idle-wait on small frontiers and the
        // run is several times slower.
        .threads(1)
        .timeout(std::time::Duration::from_secs(limit))
        .spawn_dfs()
        .join();
    println!(
        "{config:?} {scenario:?}: {} unique states, {} transitions explored in {:.1?}",
        checker.unique_state_count(),
        checker.state_count(),
        started.elapsed()
    );
    checker.assert_properties();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(limit),
        "the checker hit its time limit: the state space was not explored completely"
    );
}

#[test]
fn model_check_per_device_locking_hot_plug() {
    check(Config::PER_DEVICE, Scenario::HotPlug);
}

#[test]
fn model_check_per_device_locking_power() {
    check(Config::PER_DEVICE, Scenario::Power);
}

#[test]
fn model_check_per_device_locking_everything() {
    check(Config::PER_DEVICE, Scenario::Everything);
}

#[test]
fn model_check_single_callback_everything() {
    check(Config::SINGLE_CALLBACK, Scenario::Everything);
}

#[test]
fn model_check_single_callback_hot_plug() {
    check(Config::SINGLE_CALLBACK, Scenario::HotPlug);
}

#[test]
fn model_check_single_callback_power() {
    check(Config::SINGLE_CALLBACK, Scenario::Power);
}
