//! Handles from outside resolved to live slots (a stale one is a `Stale…` error), and the authority
//! checks on what a driver PD may ask.

use super::*;

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    pub(crate) fn device_id(&self, index: u32) -> DeviceId {
        DeviceId::from_parts(index, self.devices.generation(index))
    }

    pub(crate) fn driver_id(&self, index: u32) -> DriverId {
        DriverId::from_parts(index, self.drivers.generation(index))
    }

    pub(crate) fn bus_id(&self, index: u32) -> BusId {
        BusId::from_parts(index, self.buses.generation(index))
    }

    pub(crate) fn resolve_device(&self, id: DeviceId) -> Result<u32, Error> {
        if self.devices.is_live(id.index(), id.generation()) {
            Ok(id.index())
        } else {
            Err(Error::StaleDevice)
        }
    }

    pub(crate) fn resolve_driver(&self, id: DriverId) -> Result<u32, Error> {
        if self.drivers.is_live(id.index(), id.generation()) {
            Ok(id.index())
        } else {
            Err(Error::StaleDriver)
        }
    }

    pub(crate) fn lock_owner_of(&self, op: u32) -> LockOwner {
        let operation = &self.operations[op];
        match operation.in_flight {
            Some(flight) => LockOwner::Callback(CallbackId::from_parts(op, flight.sequence)),
            None => LockOwner::Manager(operation.request.map(|(id, _)| id)),
        }
    }

    pub(crate) fn authorize(&self, requester: Requester, request: &Request) -> Result<(), Error> {
        let Requester::Driver(pd) = requester else {
            return Ok(());
        };
        let bound_to_pd = |device: u32| {
            self.devices[device]
                .driver
                .is_some_and(|driver| self.drivers[driver].pd == pd)
        };
        let allowed = match request {
            Request::RegisterDriver(descriptor) => descriptor.pd == pd,
            Request::UnregisterDriver(driver) => {
                self.drivers[self.resolve_driver(*driver)?].pd == pd
            }
            Request::AddDevice {
                parent: Some(parent),
                descriptor,
            } => {
                let parent = self.resolve_device(*parent)?;
                let allowed = bound_to_pd(parent)
                    && descriptor
                        .resources
                        .as_ref()
                        .within(self.resources_of(parent));
                if allowed && self.over_quota(pd, parent, descriptor) {
                    return Err(Error::OverQuota);
                }
                allowed
            }
            Request::DeleteDevice(device) => self.devices[self.resolve_device(*device)?]
                .parent
                .is_some_and(bound_to_pd),
            // A driver may let go of a device bound to it (Linux `device_release_driver`) and
            // ask for a device to be bound to one of its own drivers (`device_attach`), as a
            // bus driver does to re-probe a transport whose device was plugged in or out: the
            // bind waits for the device's lock, so it runs after the unbind.
            Request::Unbind(device) => bound_to_pd(self.resolve_device(*device)?),
            Request::Bind { driver, .. } => self.drivers[self.resolve_driver(*driver)?].pd == pd,
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(Error::NotPermitted)
        }
    }

    pub(crate) fn authorize_callback(
        &self,
        pd: PdId,
        callback: CallbackId,
    ) -> Result<(u32, InFlight), Error> {
        let op = callback.operation();
        let flight = self
            .operations
            .get(op)
            .and_then(|operation| operation.in_flight)
            .filter(|flight| flight.sequence == callback.sequence())
            .ok_or(Error::NoSuchCallback)?;
        if flight.pd != pd {
            return Err(Error::NotPermitted);
        }
        Ok((op, flight))
    }
}
