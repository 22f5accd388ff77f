//! Authority from the system description: what each driver PD is given ([`Grant`]: its device
//! memory and interrupts), and the rules that turn it into which devices the PD may be bound to
//! and which compatibles it may register for.
//!
//! * A device the board describes (not added by a driver) is given to a PD when its registers
//!   lie in the PD's device memory: a device is its registers.
//! * A device a bridge driver added (a virtio device behind its transport) has its parent's
//!   registers, which several PDs may map; its interrupt tells them apart. It is given to a PD
//!   that maps its registers unless one of its interrupts is given to another PD — other than
//!   the PD whose driver added it, which relays it (the hot-plug slots of the virtio-mmio bus).
//! * A PD may register a driver for a compatible on a bus the board describes only if some
//!   device there matches it and is given to the PD; on a bus only bridges populate (virtio),
//!   the devices do not exist yet, and the probe-time rule above decides.
//!
//! Without any grant ([`Manager::grant`] never called) everything is given to everyone, as in
//! the core's own tests.

use super::*;

/// Most PDs with a grant.
pub const MAX_GRANTED_PDS: usize = 16;

/// The grant of each driver PD.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Grants {
    pub(crate) entries: heapless::Vec<(PdId, Grant), MAX_GRANTED_PDS>,
}

impl Grants {
    pub(crate) fn of(&self, pd: PdId) -> Option<&Grant> {
        self.entries
            .iter()
            .find_map(|(owner, grant)| (*owner == pd).then_some(grant))
    }

    /// A PD other than `pd` that is given interrupt `irq`.
    pub(crate) fn other_owner(&self, irq: u32, pd: PdId) -> Option<PdId> {
        self.entries
            .iter()
            .find_map(|(owner, grant)| (*owner != pd && grant.has_irq(irq)).then_some(*owner))
    }
}

impl<const DEVICES: usize, const DRIVERS: usize, const BUSES: usize, const OPERATIONS: usize>
    Manager<DEVICES, DRIVERS, BUSES, OPERATIONS>
{
    /// Gives driver PD `pd` what its system description gives it (a configuration step,
    /// before the PD registers). From the first grant on, a PD without one is given nothing.
    ///
    /// # Errors
    /// [`Error::NoSpace`] when [`MAX_GRANTED_PDS`] PDs already have one.
    pub fn grant(&mut self, pd: PdId, grant: Grant) -> Result<(), Error> {
        let grants = self.grants.get_or_insert_with(Grants::default);
        if let Some(entry) = grants.entries.iter_mut().find(|(owner, _)| *owner == pd) {
            entry.1 = grant;
            return Ok(());
        }
        grants.entries.push((pd, grant)).map_err(|_| Error::NoSpace)
    }

    /// What `pd` is given; `None` when grants are not enforced or it has none.
    #[must_use]
    pub fn grant_of(&self, pd: PdId) -> Option<&Grant> {
        self.grants.as_ref()?.of(pd)
    }

    /// Would `pd`'s driver adding `descriptor` under `parent` pass its quota? Each device has
    /// at most [`Config::children_per_device`] children; each PD adds at most
    /// [`Config::devices_per_pd`] devices, and they may hold at most that many devices'
    /// average share of the store ([`WINDOWS_PER_DEVICE`] windows, [`IRQS_PER_DEVICE`]
    /// interrupts, one compatible and [`TEXT_BYTES_PER_DEVICE`] bytes of compatibles each,
    /// counted whether shared or not): the store is one table for all, and one hostile driver
    /// adding children with every window its device has, or with new compatibles, must not
    /// leave the others no room. Its `device_add`s still queued count as devices already.
    ///
    /// [`WINDOWS_PER_DEVICE`]: crate::WINDOWS_PER_DEVICE
    /// [`IRQS_PER_DEVICE`]: crate::IRQS_PER_DEVICE
    /// [`TEXT_BYTES_PER_DEVICE`]: crate::TEXT_BYTES_PER_DEVICE
    pub(crate) fn over_quota(&self, pd: PdId, parent: u32, descriptor: &DeviceDescriptor) -> bool {
        let (mut windows, mut irqs, mut text) = (
            descriptor.resources.mmio.len() + usize::from(descriptor.resources.address.is_some()),
            descriptor.resources.irqs.len(),
            descriptor
                .match_data
                .compatible
                .iter()
                .map(|name| name.len())
                .sum::<usize>(),
        );
        let mut texts = descriptor.match_data.compatible.len();
        let mut devices = 0;
        let added = self
            .devices
            .iter()
            .filter(|(_, device)| device.added_by.get() == Some(pd))
            .map(|(_, device)| &device.data);
        let queued = self.operations.iter().filter_map(|(_, operation)| {
            match (&operation.task, operation.request) {
                (Task::Add { data, .. }, Some((_, Requester::Driver(by)))) if by == pd => {
                    Some(data)
                }
                _ => None,
            }
        });
        for data in added.chain(queued) {
            devices += 1;
            windows += data.windows.len();
            irqs += data.irqs.len();
            texts += data.compatibles().len();
            text += data
                .compatibles()
                .iter()
                .map(|&id| self.store.texts.text(id).len())
                .sum::<usize>();
        }
        let most = self.config.devices_per_pd;
        self.devices[parent].children.len as usize >= self.config.children_per_device
            || devices >= most
            || windows > most.saturating_mul(store::WINDOWS_PER_DEVICE)
            || irqs > most.saturating_mul(store::IRQS_PER_DEVICE)
            || texts > most
            || text > most.saturating_mul(store::TEXT_BYTES_PER_DEVICE)
    }

    /// Is `device` given to `pd` (the rules in the module docs)?
    pub(crate) fn given(&self, device: u32, pd: PdId) -> bool {
        let Some(grants) = &self.grants else {
            return true;
        };
        let Some(grant) = grants.of(pd) else {
            return false;
        };
        let entry = &self.devices[device];
        let resources = self.resources_of(device);
        if !grant.gives(resources) {
            return false;
        }
        if !entry.added_by_binding {
            return true;
        }
        // The PD that added it (its parent's driver, during that probe) relays its interrupts.
        let relay = entry.added_by.get().filter(|_| entry.added_by_binding);
        resources.irqs.iter().all(|&irq| {
            grants
                .other_owner(irq, pd)
                .is_none_or(|owner| Some(owner) == relay)
        })
    }

    /// May `pd` register a driver for `table` on bus `bus`? `Err` names the first entry it may
    /// not claim.
    pub(crate) fn may_register(&self, pd: PdId, bus: u32, table: Run) -> Result<(), Error> {
        let Some(grants) = &self.grants else {
            return Ok(());
        };
        if grants.of(pd).is_none_or(Grant::is_empty) {
            return Err(Error::NotGranted);
        }
        let devices = || self.buses[bus].devices.iter(&self.devices, BusDeviceLinks);
        // A bus the board describes has devices nobody's driver added.
        let described = devices().any(|device| !self.devices[device].added_by_binding);
        if !described {
            return Ok(());
        }
        for claim in self.store.claims(table) {
            let claimable = devices()
                .any(|device| claim.matches(&self.devices[device].data) && self.given(device, pd));
            if !claimable {
                return Err(Error::NotGranted);
            }
        }
        Ok(())
    }
}
