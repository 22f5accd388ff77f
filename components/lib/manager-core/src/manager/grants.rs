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

    /// How many live devices `pd`'s drivers added ([`Config::devices_per_pd`]).
    pub(crate) fn added_by(&self, pd: PdId) -> usize {
        self.devices
            .iter()
            .filter(|(_, device)| device.added_by == Some(pd))
            .count()
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
        if !grant.gives(&entry.resources) {
            return false;
        }
        if !entry.added_by_binding {
            return true;
        }
        // The PD that added it (its parent's driver, during that probe) relays its interrupts.
        let relay = entry.added_by.filter(|_| entry.added_by_binding);
        entry.resources.irqs.iter().all(|&irq| {
            grants
                .other_owner(irq, pd)
                .is_none_or(|owner| Some(owner) == relay)
        })
    }

    /// May `pd` register a driver for `table` on bus `bus`? `Err` names the first entry it may
    /// not claim.
    pub(crate) fn may_register(&self, pd: PdId, bus: u32, table: &MatchTable) -> Result<(), Error> {
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
        for entry in &table.entries {
            let claimable = devices().any(|device| {
                entry.matches(&self.devices[device].match_data) && self.given(device, pd)
            });
            if !claimable {
                return Err(Error::NotGranted);
            }
        }
        Ok(())
    }
}
