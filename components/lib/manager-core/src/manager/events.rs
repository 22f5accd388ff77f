//! Events in: outside requests, driver replies, children added or removed from inside a callback,
//! and PD deaths.

use super::*;

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    /// An outside request enters the queue. On `Ok` it has an id and exactly one
    /// [`Effect::Complete`] will carry that id (possibly from within this call).
    ///
    /// # Errors
    /// Refused at the door, with no id and no completion: [`Error::ShutDown`],
    /// [`Error::NoSpace`] (backpressure: the operation table is full but for the slots kept
    /// for the manager's own work, or — a registration — the driver table is full),
    /// [`Error::Busy`] (this requester has [`Config::requests_per_requester`] requests in
    /// progress), [`Error::NotPermitted`], [`Error::NotGranted`], [`Error::OverQuota`] or a
    /// `Stale…` error when a driver requester names what it has no authority over.
    pub fn submit(
        &mut self,
        requester: Requester,
        request: Request,
        out: &mut dyn FnMut(Effect),
    ) -> Result<RequestId, Error> {
        if self.shut_down {
            return Err(Error::ShutDown);
        }
        self.authorize(requester, &request)?;
        if let Request::RegisterDriver(descriptor) = &request {
            // Decided here and now: a registration needs a driver-table entry, never an
            // operation slot, so no number of other requests can crowd it out.
            let driver = self.register_now(descriptor)?;
            let id = self.take_request_id();
            self.stats.completions += 1;
            out(Effect::Complete(crate::model::Completion {
                request: id,
                requester,
                result: Ok(Outcome::Driver { driver, bound: 0 }),
            }));
            self.run(out);
            return Ok(id);
        }
        if requester != Requester::Manager {
            // The last slots are the manager's own (probing children, cleaning up after a
            // dead PD), and no requester may hold more than its share.
            let reserved = self.config.reserved_operations.min(OPERATIONS / 4);
            if self.operations.len() + reserved >= OPERATIONS {
                return Err(Error::NoSpace);
            }
            if self.requests_of(requester) >= self.config.requests_per_requester {
                self.stats.requests_over_cap += 1;
                return Err(Error::Busy);
            }
        }
        if self.operations.is_full() {
            // Checked before a device's data goes into the store, so that the data is never
            // stored for an operation that cannot exist.
            return Err(Error::NoSpace);
        }
        let task = match request {
            Request::AddDevice { parent, descriptor } => Task::Add {
                parent,
                bus: descriptor.bus,
                data: self.store_device_data(&descriptor)?,
            },
            Request::DeleteDevice(device) => Task::Teardown(TeardownTask {
                target: device,
                mode: TeardownMode::Delete,
                parent: None,
                stage: TeardownStage::LockParent,
            }),
            Request::RegisterDriver(_) => return Err(Error::NotPermitted),
            Request::UnregisterDriver(driver) => Task::Unregister(UnregisterTask {
                driver,
                stage: UnregisterStage::Start,
            }),
            Request::Bind { device, driver } => Task::Probe(ProbeTask {
                device,
                only: Some(driver),
                enable_autoprobe: true,
                walk: Walk::default(),
                stage: ProbeStage::Lock,
            }),
            Request::Unbind(device) => Task::Teardown(TeardownTask {
                target: device,
                mode: TeardownMode::Unbind {
                    manual: true,
                    expected: None,
                },
                parent: None,
                stage: TeardownStage::LockParent,
            }),
            Request::Probe(device) => Task::Probe(ProbeTask {
                device,
                only: None,
                enable_autoprobe: true,
                walk: Walk::default(),
                stage: ProbeStage::Lock,
            }),
            Request::Rescan => Task::Rescan,
            Request::Suspend(device) => power_task(Some(device), Transition::Suspend),
            Request::Resume(device) => power_task(Some(device), Transition::Resume),
            Request::SuspendAll => power_task(None, Transition::Suspend),
            Request::ResumeAll => power_task(None, Transition::Resume),
            Request::Shutdown => power_task(None, Transition::Shutdown),
        };
        let id = RequestId(self.next_request);
        let op = self.new_operation(Some((id, requester)), task)?;
        self.take_request_id();
        self.make_ready(op);
        self.run(out);
        Ok(id)
    }

    /// The next request id, counted as an event.
    fn take_request_id(&mut self) -> RequestId {
        let id = RequestId(self.next_request);
        self.stats.events += 1;
        self.next_request = self.next_request.wrapping_add(1).max(1);
        id
    }

    /// Requests of `requester` in progress.
    fn requests_of(&self, requester: Requester) -> usize {
        (0..OPERATIONS as u32)
            .filter(|&op| {
                self.operations
                    .get(op)
                    .and_then(|operation| operation.request)
                    .is_some_and(|(_, owner)| owner == requester)
            })
            .count()
    }

    /// A driver PD answers a callback.
    ///
    /// # Errors
    /// [`Error::NoSuchCallback`] for a reply to nothing in flight (late, duplicate, forged);
    /// [`Error::NotPermitted`] when `pd` is not the PD the callback was sent to. The manager's
    /// state is unchanged in both cases.
    pub fn callback_done(
        &mut self,
        pd: PdId,
        callback: CallbackId,
        status: Answer,
        out: &mut dyn FnMut(Effect),
    ) -> Result<(), Error> {
        let (op, _) = self.authorize_callback(pd, callback)?;
        self.stats.events += 1;
        self.end_callback(op, Reply::Status(status));
        self.run(out);
        Ok(())
    }

    /// `__device_add`: a driver whose probe or resume callback is in flight (and so holds the
    /// device's lock) adds a child under that device. Synchronous — the caller already holds
    /// the parent's lock, so nothing is waited for and nothing can deadlock; the child is then
    /// probed like any new device (it has its own lock).
    ///
    /// # Errors
    /// [`Error::NoSuchCallback`], [`Error::NotPermitted`] (wrong PD, `parent` is not the
    /// callback's device, a callback other than probe/resume, or resources outside the
    /// parent's), [`Error::OverQuota`] (the parent has [`Config::children_per_device`]
    /// children), [`Error::StaleBus`], [`Error::NoSpace`].
    pub fn child_add(
        &mut self,
        pd: PdId,
        callback: CallbackId,
        parent: DeviceId,
        descriptor: &DeviceDescriptor,
        out: &mut dyn FnMut(Effect),
    ) -> Result<DeviceId, Error> {
        let (_, flight) = self.authorize_callback(pd, callback)?;
        self.stats.events += 1;
        let holds_parent = self
            .resolve_device(parent)
            .is_ok_and(|parent| parent == flight.device);
        if !holds_parent || !matches!(flight.kind, CallbackKind::Probe | CallbackKind::Resume) {
            return Err(Error::NotPermitted);
        }
        if !descriptor
            .resources
            .as_ref()
            .within(self.resources_of(flight.device))
        {
            return Err(Error::NotPermitted);
        }
        if self.over_quota(pd, flight.device, descriptor) {
            return Err(Error::OverQuota);
        }
        let data = self.store_device_data(descriptor)?;
        let child = match self.create_device(
            Some(flight.device),
            descriptor.bus,
            data,
            true,
            Some(pd),
            out,
        ) {
            Ok(child) => child,
            Err(error) => {
                self.release_device_data(data);
                return Err(error);
            }
        };
        self.queue_probe(child);
        let id = self.device_id(child);
        self.run(out);
        Ok(id)
    }

    /// `__device_del` from a callback: the driver of `callback`'s device removes a child it
    /// added that is idle (unbound, unlocked, childless) — for instance one that turned out to
    /// be absent during the bridge's probe. Anything busier goes through
    /// [`Request::DeleteDevice`], which waits for the parent's lock like any outside request.
    ///
    /// # Errors
    /// [`Error::NoSuchCallback`], [`Error::NotPermitted`] (wrong PD, or not a child of the
    /// callback's device), [`Error::StaleDevice`], [`Error::Busy`] (the child is bound, locked
    /// or has children).
    pub fn child_remove(
        &mut self,
        pd: PdId,
        callback: CallbackId,
        child: DeviceId,
        out: &mut dyn FnMut(Effect),
    ) -> Result<(), Error> {
        let (op, flight) = self.authorize_callback(pd, callback)?;
        self.stats.events += 1;
        let index = self.resolve_device(child)?;
        let device = &self.devices[index];
        if device.parent != Some(flight.device) {
            return Err(Error::NotPermitted);
        }
        if device.driver.is_some() || device.lock_owner.is_some() || !device.children.is_empty() {
            return Err(Error::Busy);
        }
        // The parent's lock is held by `op` for the callback; the child's is free: take it and
        // delete the child in one step.
        self.lock(op, index);
        self.free_device(op, index, out);
        self.run(out);
        Ok(())
    }

    /// A driver PD died (crashed, or was stopped). Its callbacks in flight end as failed, the
    /// locks they held pass on, its drivers stop receiving callbacks and are cleaned up: their
    /// devices unbound (children their bindings added removed), then the drivers removed from
    /// their buses (their handles go stale). Unbound devices are probed again.
    pub fn pd_died(&mut self, pd: PdId, out: &mut dyn FnMut(Effect)) {
        self.stats.events += 1;
        for index in 0..DRIVERS as u32 {
            let Some(driver) = self.drivers.get_mut(index) else {
                continue;
            };
            if driver.pd != pd || driver.state == DriverState::Dead {
                continue;
            }
            driver.state = DriverState::Dead;
            if !driver.has_unregister_operation && !driver.cleanup_queued {
                driver.cleanup_queued = true;
                let mut cleanup = self.cleanup;
                cleanup.push_back(&mut self.drivers, index, CleanupLinks);
                self.cleanup = cleanup;
            }
        }
        for op in 0..OPERATIONS as u32 {
            let Some(flight) = self
                .operations
                .get(op)
                .and_then(|operation| operation.in_flight)
                .filter(|flight| flight.pd == pd)
            else {
                continue;
            };
            // A device whose probe died with the PD was that PD's to bind: a query says so
            // while it restarts or is quarantined.
            if flight.kind == CallbackKind::Probe && self.devices[flight.device].driver.is_none() {
                self.devices[flight.device].last_pd = Some(pd).into();
            }
            self.end_callback(op, Reply::Died);
        }
        self.run(out);
    }
}
