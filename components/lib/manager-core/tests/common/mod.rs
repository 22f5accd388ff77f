//! Test harness: a manager plus the effects it emitted, with helpers that play the drivers.
//! Every event goes through `Harness`, which checks the manager's invariants after it.
#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

use std::collections::BTreeMap;
use warden_manager_core::{
    Answer, BusId, Callback, CallbackKind, Change, ChangeKind, Completion, Config,
    DeviceDescriptor, DeviceId, DeviceState, DriverDescriptor, DriverId, Effect, Error, Instant,
    Manager, MatchData, MatchTable, Name, Outcome, PdId, Request, RequestId, Requester, Resources,
};

/// Small capacities: enough for the scenarios, small enough to run out on purpose.
pub type TestManager = Manager<64, 16, 2, 32>;

pub const CLIENT: Requester = Requester::Client(1);

pub struct Harness {
    pub manager: Box<TestManager>,
    pub bus: BusId,
    /// Callbacks sent and not yet answered, in the order they were sent.
    pub pending: Vec<Callback>,
    /// Every callback ever sent, in order.
    pub sent: Vec<Callback>,
    pub completions: Vec<Completion>,
    /// The tree as the manager's change reports tell it (device → driver, power state): after
    /// every event it must be the tree the manager holds.
    pub mirror: BTreeMap<(u32, u32), (Option<DriverId>, DeviceState)>,
    /// Every change reported, in order.
    pub changes: Vec<Change>,
}

fn key(device: DeviceId) -> (u32, u32) {
    (device.index(), device.generation())
}

pub fn descriptor(bus: BusId, compatible: &str) -> DeviceDescriptor {
    DeviceDescriptor {
        bus,
        match_data: MatchData::compatible(compatible).unwrap(),
        resources: Resources::default(),
    }
}

pub fn driver_descriptor(bus: BusId, name: &str, compatible: &str, pd: u32) -> DriverDescriptor {
    DriverDescriptor {
        bus,
        pd: PdId(pd),
        name: Name::try_from(name).unwrap(),
        match_table: MatchTable::compatible(compatible).unwrap(),
        deadline: None,
    }
}

impl Harness {
    pub fn new(config: Config) -> Self {
        let mut manager = Box::new(TestManager::new(config));
        let bus = manager.add_bus("platform").unwrap();
        Self {
            manager,
            bus,
            pending: Vec::new(),
            sent: Vec::new(),
            completions: Vec::new(),
            mirror: BTreeMap::new(),
            changes: Vec::new(),
        }
    }

    /// One effect: callbacks to play, completions to count, changes to replay on the mirror
    /// (each must make sense in the mirror's state: no device added twice, no unbind of a
    /// driver the device does not have…).
    pub fn track(&mut self, effect: Effect) {
        match effect {
            Effect::Callback(callback) => {
                self.pending.push(callback);
                self.sent.push(callback);
            }
            Effect::Complete(completion) => self.completions.push(completion),
            Effect::Changed(change) => {
                self.changes.push(change);
                let entry = self.mirror.get_mut(&key(change.device));
                match (change.kind, entry) {
                    (ChangeKind::Added, None) => {
                        self.mirror
                            .insert(key(change.device), (None, DeviceState::Active));
                    }
                    (ChangeKind::Removed, Some((None, _))) => {
                        self.mirror.remove(&key(change.device));
                    }
                    (ChangeKind::Bound, Some(entry))
                        if entry.0.is_none() && change.driver.is_some() =>
                    {
                        entry.0 = change.driver;
                    }
                    (ChangeKind::Unbound, Some(entry))
                        if entry.0.is_some() && entry.0 == change.driver =>
                    {
                        entry.0 = None;
                    }
                    (ChangeKind::Suspended, Some(entry)) if entry.1 != DeviceState::Suspended => {
                        entry.1 = DeviceState::Suspended;
                    }
                    (ChangeKind::Resumed, Some(entry)) if entry.1 != DeviceState::Active => {
                        entry.1 = DeviceState::Active;
                    }
                    (ChangeKind::ShutDown, Some(entry)) if entry.1 != DeviceState::ShutDown => {
                        entry.1 = DeviceState::ShutDown;
                    }
                    (kind, entry) => {
                        panic!(
                            "change {kind:?} of {:?} does not follow from {entry:?}",
                            change.device
                        )
                    }
                }
            }
        }
    }

    /// The tree the change reports built is the manager's.
    pub fn check_mirror(&self) {
        let mut held = BTreeMap::new();
        for device in self.manager.devices() {
            let info = self.manager.device(device).unwrap();
            held.insert(key(device), (info.driver, info.state));
        }
        assert_eq!(
            held, self.mirror,
            "the changes reported do not rebuild the tree"
        );
    }

    fn absorb(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            self.track(effect);
        }
        if let Err(violation) = self.manager.invariants() {
            panic!("invariant broken: {violation:?}");
        }
        self.check_mirror();
    }

    /// Time passes: the manager's clock moves to `ms` milliseconds after the start.
    pub fn at(&mut self, ms: u64) {
        self.manager.advance_to(Instant(ms * 1_000_000));
    }

    pub fn try_submit(
        &mut self,
        requester: Requester,
        request: Request,
    ) -> Result<RequestId, Error> {
        let mut effects = Vec::new();
        let result = self
            .manager
            .submit(requester, request, &mut |effect| effects.push(effect));
        self.absorb(effects);
        result
    }

    pub fn submit(&mut self, request: Request) -> RequestId {
        self.try_submit(CLIENT, request).unwrap()
    }

    pub fn add_device(&mut self, parent: Option<DeviceId>, compatible: &str) -> RequestId {
        let descriptor = descriptor(self.bus, compatible);
        self.submit(Request::AddDevice { parent, descriptor })
    }

    pub fn register(&mut self, name: &str, compatible: &str, pd: u32) -> RequestId {
        let descriptor = driver_descriptor(self.bus, name, compatible, pd);
        self.submit(Request::RegisterDriver(descriptor))
    }

    pub fn try_reply(&mut self, callback: Callback, status: Answer) -> Result<(), Error> {
        let mut effects = Vec::new();
        let result = self
            .manager
            .callback_done(callback.pd, callback.id, status, &mut |effect| {
                effects.push(effect)
            });
        if result.is_ok() {
            self.pending.retain(|pending| pending.id != callback.id);
        }
        self.absorb(effects);
        result
    }

    pub fn reply(&mut self, callback: Callback, status: Answer) {
        self.try_reply(callback, status).unwrap();
    }

    pub fn child_add(&mut self, callback: Callback, compatible: &str) -> Result<DeviceId, Error> {
        let descriptor = descriptor(self.bus, compatible);
        self.child_add_described(callback, &descriptor)
    }

    /// `__device_add` of a child described in full (its resources too).
    pub fn child_add_described(
        &mut self,
        callback: Callback,
        descriptor: &DeviceDescriptor,
    ) -> Result<DeviceId, Error> {
        let mut effects = Vec::new();
        let result = self.manager.child_add(
            callback.pd,
            callback.id,
            callback.device,
            descriptor,
            &mut |effect| effects.push(effect),
        );
        self.absorb(effects);
        result
    }

    /// `__device_add` naming a parent other than the callback's device.
    pub fn child_add_under(
        &mut self,
        callback: Callback,
        parent: DeviceId,
        compatible: &str,
    ) -> Result<DeviceId, Error> {
        let mut effects = Vec::new();
        let descriptor = descriptor(self.bus, compatible);
        let result = self.manager.child_add(
            callback.pd,
            callback.id,
            parent,
            &descriptor,
            &mut |effect| effects.push(effect),
        );
        self.absorb(effects);
        result
    }

    pub fn pd_died(&mut self, pd: u32) {
        let mut effects = Vec::new();
        self.manager
            .pd_died(PdId(pd), &mut |effect| effects.push(effect));
        self.pending.retain(|pending| pending.pd != PdId(pd));
        self.absorb(effects);
    }

    /// The pending callback of `kind` on `device`; panics if there is none.
    pub fn pending_for(&self, kind: CallbackKind, device: DeviceId) -> Callback {
        *self
            .pending
            .iter()
            .find(|callback| callback.kind == kind && callback.device == device)
            .unwrap_or_else(|| panic!("no pending {kind:?} for {device:?}: {:?}", self.pending))
    }

    pub fn pending_of(&self, kind: CallbackKind) -> Vec<Callback> {
        self.pending
            .iter()
            .filter(|callback| callback.kind == kind)
            .copied()
            .collect()
    }

    /// Answers the oldest pending callback with `policy`'s status, until none is pending.
    pub fn drain(&mut self, mut policy: impl FnMut(&Callback) -> Answer) {
        let mut budget = 100_000;
        while let Some(callback) = self.pending.first().copied() {
            budget -= 1;
            assert!(budget > 0, "callbacks never stop");
            let status = policy(&callback);
            self.reply(callback, status);
        }
    }

    pub fn drain_ok(&mut self) {
        self.drain(|_| Answer::Ok);
    }

    pub fn completion(&self, id: RequestId) -> Option<Completion> {
        let mut found = self
            .completions
            .iter()
            .filter(|completion| completion.request == id);
        let first = found.next().copied();
        assert!(found.next().is_none(), "request {id:?} completed twice");
        first
    }

    pub fn result(&self, id: RequestId) -> Result<Outcome, Error> {
        self.completion(id)
            .unwrap_or_else(|| panic!("request {id:?} has not completed"))
            .result
    }

    pub fn device_of(&self, id: RequestId) -> DeviceId {
        match self.result(id) {
            Ok(Outcome::Device { device, .. }) => device,
            other => panic!("not a device outcome: {other:?}"),
        }
    }

    pub fn driver_of(&self, id: RequestId) -> DriverId {
        match self.result(id) {
            Ok(Outcome::Driver { driver, .. }) => driver,
            other => panic!("not a driver outcome: {other:?}"),
        }
    }

    pub fn bound_to(&self, device: DeviceId) -> Option<DriverId> {
        self.manager.device(device).unwrap().driver
    }

    /// The (kind, device) sequence of callbacks sent since index `from`.
    pub fn sent_since(&self, from: usize) -> Vec<(CallbackKind, DeviceId)> {
        self.sent[from..]
            .iter()
            .map(|callback| (callback.kind, callback.device))
            .collect()
    }
}
