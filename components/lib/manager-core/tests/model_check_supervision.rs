//! Exhaustive model check (stateright) of the manager with its supervisor, and a driver that can
//! hang. Two driver PDs compete for the board's device and a hot-plugged one: the leaf (PD 1,
//! supervised) may leave any callback and any heartbeat unanswered while time passes; the other
//! (PD 2) answers everything, and registers at any point. A client adds a device, unbinds the
//! board's device and probes it again, one request after the other.
//!
//! Time is part of the state: it jumps to the supervisor's next wake-up (a callback's deadline,
//! a heartbeat due or unanswered, a registration overdue, a backoff over, a PD healthy again), a
//! bounded number of times, and the supervisor acts — it stops the leaf (the manager's death
//! path runs), restarts it (its new incarnation registers) or quarantines it. Checked in every
//! reachable state: the manager's invariants, no request completed twice, no callback in flight
//! past its deadline once the supervisor has acted, and no deadlock — a state where nothing can
//! happen any more has every request completed, no callback pending, and the manager
//! quiescent. Some path has the leaf stopped at a deadline, one has it quarantined, one has it
//! healthy again after a restart.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::time::Duration;

use stateright::{Checker, Model, Property};
use warden_manager_core::{
    Action as Supervise, Answer, BusId, Callback, Config, DeviceDescriptor, DriverDescriptor,
    Effect, Manager, MatchData, MatchTable, Name, PdId, Phase, Policy, Request, RequestId,
    Requester, Resources, Supervisor,
};

type SmallManager = Manager<3, 2, 1, 4>;

const LEAF: PdId = PdId(1);
const OTHER: PdId = PdId(2);
const CLIENT: Requester = Requester::Client(7);

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct State {
    manager: SmallManager,
    supervisor: Supervisor<1>,
    pending: Vec<Callback>,
    /// The leaf's heartbeat waiting for an answer.
    ping: Option<u64>,
    /// The leaf's current incarnation has registered; the other PD has registered.
    leaf_registered: bool,
    other_registered: bool,
    script: usize,
    accepted: Vec<RequestId>,
    waiting_for: Option<RequestId>,
    completed: Vec<RequestId>,
    time_left: u8,
    stopped_by_deadline: bool,
    quarantined: bool,
    healthy_again: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Action {
    RegisterLeaf,
    RegisterOther,
    Request,
    Reply(Callback, Answer),
    LeafAlive(u64),
    TimePasses,
}

struct System {
    bus: BusId,
    script: Vec<Request>,
}

fn descriptor(bus: BusId) -> DeviceDescriptor {
    DeviceDescriptor {
        bus,
        match_data: MatchData::compatible("leaf").unwrap(),
        resources: Resources::default(),
    }
}

impl System {
    fn driver(&self, pd: PdId) -> DriverDescriptor {
        DriverDescriptor {
            bus: self.bus,
            pd,
            name: Name::try_from(if pd == LEAF { "leaf" } else { "other" }).unwrap(),
            match_table: MatchTable::compatible("leaf").unwrap(),
            // Only the leaf hangs; the other answers long before any deadline.
            deadline: (pd == OTHER).then_some(Duration::MAX),
        }
    }

    fn new() -> (Self, State) {
        let mut manager = SmallManager::new(Config::PER_DEVICE);
        let bus = manager.add_bus("platform").unwrap();
        let mut effects = Vec::new();
        let add = Request::AddDevice {
            parent: None,
            descriptor: descriptor(bus),
        };
        manager
            .submit(Requester::Manager, add, &mut |e| effects.push(e))
            .unwrap();
        let board_device = manager.roots().next().unwrap();
        let system = Self {
            bus,
            script: vec![
                Request::AddDevice {
                    parent: None,
                    descriptor: descriptor(bus),
                },
                Request::Unbind(board_device),
                Request::Probe(board_device),
            ],
        };
        // Small numbers keep the state space small: quarantine at the second failure in a row.
        let policy = Policy {
            quarantine_after: 2,
            ..Policy::DEFAULT
        };
        let mut supervisor = Supervisor::new(policy);
        supervisor.supervise(LEAF, manager.now());
        let state = State {
            manager,
            supervisor,
            pending: Vec::new(),
            ping: None,
            leaf_registered: false,
            other_registered: false,
            script: 0,
            accepted: Vec::new(),
            waiting_for: None,
            completed: Vec::new(),
            time_left: 4,
            stopped_by_deadline: false,
            quarantined: false,
            healthy_again: false,
        };
        (system, state)
    }
}

impl State {
    fn absorb(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Callback(callback) => self.pending.push(callback),
                Effect::Complete(completion) => self.completed.push(completion.request),
                Effect::Changed(_) => {}
            }
        }
    }

    fn leaf_may_register(&self) -> bool {
        !self.leaf_registered
            && self
                .supervisor
                .status(LEAF)
                .is_some_and(|status| status.phase == Phase::Starting)
    }
}

impl Model for System {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![System::new().1]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        if state.leaf_may_register() {
            actions.push(Action::RegisterLeaf);
        }
        if !state.other_registered {
            actions.push(Action::RegisterOther);
        }
        let waiting = state
            .waiting_for
            .is_some_and(|id| !state.completed.contains(&id));
        if state.script < self.script.len() && !waiting {
            actions.push(Action::Request);
        }
        for callback in &state.pending {
            let answers: &[Answer] = if callback.pd == LEAF {
                &[Answer::Ok, Answer::NotMine]
            } else {
                &[Answer::Ok]
            };
            for answer in answers {
                actions.push(Action::Reply(*callback, *answer));
            }
        }
        if let Some(sequence) = state.ping {
            actions.push(Action::LeafAlive(sequence));
        }
        let wakeup = state.supervisor.next_wakeup(&state.manager);
        if state.time_left > 0 && wakeup.is_some_and(|at| at > state.manager.now()) {
            actions.push(Action::TimePasses);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut state = last.clone();
        let mut effects = Vec::new();
        let mut out = |effect| effects.push(effect);
        let now = state.manager.now();
        match action {
            Action::RegisterLeaf => {
                state.leaf_registered = true;
                if !state.supervisor.registered(LEAF, now) {
                    return None;
                }
                let request = Request::RegisterDriver(self.driver(LEAF));
                let id = state
                    .manager
                    .submit(Requester::Driver(LEAF), request, &mut out)
                    .ok()?;
                state.accepted.push(id);
            }
            Action::RegisterOther => {
                state.other_registered = true;
                let request = Request::RegisterDriver(self.driver(OTHER));
                let id = state
                    .manager
                    .submit(Requester::Driver(OTHER), request, &mut out)
                    .ok()?;
                state.accepted.push(id);
            }
            Action::Request => {
                let request = self.script[state.script].clone();
                state.script += 1;
                if let Ok(id) = state.manager.submit(CLIENT, request, &mut out) {
                    state.accepted.push(id);
                    state.waiting_for = Some(id);
                }
            }
            Action::Reply(callback, answer) => {
                state.pending.retain(|pending| pending.id != callback.id);
                state
                    .manager
                    .callback_done(callback.pd, callback.id, answer, &mut out)
                    .ok()?;
            }
            Action::LeafAlive(sequence) => {
                state.ping = None;
                state.supervisor.alive(LEAF, sequence, now);
            }
            Action::TimePasses => {
                let at = state.supervisor.next_wakeup(&state.manager)?;
                state.time_left -= 1;
                state.manager.advance_to(at);
                let mut decisions = Vec::new();
                state
                    .supervisor
                    .tick(at, &state.manager, &mut |decision| decisions.push(decision));
                for decision in decisions {
                    match decision {
                        Supervise::Ping { sequence, .. } => state.ping = Some(sequence),
                        Supervise::Stop { pd, failure } => {
                            if matches!(failure, warden_manager_core::Failure::Overdue { .. }) {
                                state.stopped_by_deadline = true;
                            }
                            state.ping = None;
                            state.pending.retain(|pending| pending.pd != pd);
                            state.manager.pd_died(pd, &mut out);
                        }
                        Supervise::Restart { .. } => state.leaf_registered = false,
                        Supervise::Quarantine { .. } => state.quarantined = true,
                        Supervise::Healthy { .. } => {
                            state.healthy_again |=
                                state.supervisor.status(LEAF).unwrap().restarts > 0;
                        }
                    }
                }
            }
        }
        state.absorb(effects);
        state.manager.take_stats();
        state.pending.sort_by_key(|callback| callback.id);
        state.accepted.sort();
        state.completed.sort();
        Some(state)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("invariants", |_, state: &State| {
                state.manager.invariants().is_ok()
            }),
            Property::always(
                "no leaf callback in flight past its deadline",
                |_, state: &State| {
                    state
                        .manager
                        .overdue_of(LEAF, state.manager.now())
                        .is_none()
                },
            ),
            Property::always("no request completes twice", |_, state: &State| {
                let mut completed = state.completed.clone();
                let count = completed.len();
                completed.dedup();
                completed.len() == count
            }),
            Property::always(
                "no deadlock: a final state is quiescent",
                |model: &System, state: &State| {
                    let mut actions = Vec::new();
                    model.actions(state, &mut actions);
                    if !actions.is_empty() {
                        return true;
                    }
                    state.manager.is_quiescent()
                        && state.pending.is_empty()
                        && state.accepted == state.completed
                },
            ),
            Property::sometimes("the leaf is stopped at a deadline", |_, state: &State| {
                state.stopped_by_deadline
            }),
            Property::sometimes("the leaf is quarantined", |_, state: &State| {
                state.quarantined
            }),
            Property::sometimes(
                "the leaf is healthy again after a restart",
                |_, state: &State| state.healthy_again,
            ),
        ]
    }
}

#[test]
fn model_check_a_driver_that_can_hang() {
    let (system, _) = System::new();
    let started = std::time::Instant::now();
    let checker = system.checker().threads(1).spawn_dfs().join();
    println!(
        "supervised: {} unique states, {} transitions explored in {:.1?}",
        checker.unique_state_count(),
        checker.state_count(),
        started.elapsed()
    );
    checker.assert_properties();
}
