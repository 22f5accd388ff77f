//! A device's hardware resources: its MMIO windows at physical addresses and its interrupts as
//! GIC interrupt ids (SPI n is INTID 32 + n), as the board's device tree describes them and as a
//! driver is given them in a probe.

use crate::{MAX_INTID, MAX_IRQS, MAX_MMIO};

/// One MMIO window: a physical base address and a size in bytes (the default, base and size
/// zero, is no window: [`MmioWindow::is_valid`] says so).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MmioWindow {
    /// Physical base address.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
}

impl MmioWindow {
    /// The window's last byte; `None` for an empty window or one that wraps around.
    #[must_use]
    pub const fn last(&self) -> Option<u64> {
        match self.size {
            0 => None,
            size => self.base.checked_add(size - 1),
        }
    }

    /// Is it a window a driver can be given (not empty, not wrapping around)?
    #[must_use]
    pub const fn is_valid(&self) -> bool {
        self.last().is_some()
    }

    /// Does `inner` lie wholly inside this window?
    #[must_use]
    pub fn contains(&self, inner: &Self) -> bool {
        match (self.last(), inner.last()) {
            (Some(last), Some(inner_last)) => inner.base >= self.base && inner_last <= last,
            _ => false,
        }
    }
}

/// The hardware resources of a device, opaque to the manager: it hands them to the driver it
/// binds (the driver PD reaches them through the maps and IRQ channels its system description
/// grants it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Resources {
    /// MMIO windows: first the device's own registers, then the [`forwarded`](Self::forwarded)
    /// ones.
    pub mmio: heapless::Vec<MmioWindow, MAX_MMIO>,
    /// How many of the last windows are not the device's registers but address space it
    /// forwards to the devices behind it: a PCI host bridge's apertures (its `ranges`), a PCI
    /// bridge's windows and the configuration space of its buses. Its driver maps none of
    /// them (no grant need hold them), and its children's windows may lie in them.
    pub forwarded: u8,
    /// Interrupts (GIC INTIDs, 0–[`MAX_INTID`]).
    pub irqs: heapless::Vec<u32, MAX_IRQS>,
    /// For a device on a bus that is not memory-mapped, its address there (an I2C address, an
    /// SPI chip select, an MDIO PHY address): the controller's driver reaches it, not the
    /// CPU, so it is no window and no grant gives it.
    pub address: Option<u64>,
}

/// Resources borrowed from wherever they are kept (a [`Resources`], or the manager's store,
/// which keeps every device's windows in one table and its interrupts in another).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResourcesRef<'a> {
    /// MMIO windows: registers, then forwarded address space.
    pub mmio: &'a [MmioWindow],
    /// How many of the last windows are forwarded ([`Resources::forwarded`]).
    pub forwarded: u8,
    /// Interrupts (GIC INTIDs).
    pub irqs: &'a [u32],
}

impl<'a> From<&'a Resources> for ResourcesRef<'a> {
    fn from(resources: &'a Resources) -> Self {
        Self {
            mmio: &resources.mmio,
            forwarded: resources.forwarded,
            irqs: &resources.irqs,
        }
    }
}

impl ResourcesRef<'_> {
    /// Are these resources a driver can be given: every window valid, no more forwarded
    /// windows than windows, every interrupt a GIC INTID a device may have?
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.mmio.iter().all(MmioWindow::is_valid)
            && usize::from(self.forwarded) <= self.mmio.len()
            && self.irqs.iter().all(|&irq| irq <= MAX_INTID)
    }

    /// The device's own register windows (all but the forwarded ones).
    #[must_use]
    pub fn registers(&self) -> &[MmioWindow] {
        let own = self.mmio.len().saturating_sub(usize::from(self.forwarded));
        self.mmio.get(..own).unwrap_or_default()
    }

    /// The address space the device forwards to the devices behind it.
    #[must_use]
    pub fn forwarded(&self) -> &[MmioWindow] {
        let own = self.mmio.len().saturating_sub(usize::from(self.forwarded));
        self.mmio.get(own..).unwrap_or_default()
    }

    /// Does every window of `self` lie inside one of `parent`'s windows (its registers or the
    /// address space it forwards), and is every interrupt one of `parent`'s? A driver adding a
    /// child may hand it only what its own device has (a virtio device gets its transport's
    /// window and interrupt; a PCI function its configuration page and BARs, which lie in
    /// the host bridge's configuration space and apertures): the child's driver is another
    /// PD, and the manager must not let one driver point another at a device it was never
    /// given. Resources that are not [valid](Self::is_valid) are within nothing.
    #[must_use]
    pub fn within(&self, parent: ResourcesRef<'_>) -> bool {
        self.is_valid()
            && self
                .mmio
                .iter()
                .all(|window| parent.mmio.iter().any(|outer| outer.contains(window)))
            && self.irqs.iter().all(|irq| parent.irqs.contains(irq))
    }
}

impl Resources {
    /// Borrowed.
    #[must_use]
    pub fn as_ref(&self) -> ResourcesRef<'_> {
        self.into()
    }

    /// See [`ResourcesRef::is_valid`].
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.as_ref().is_valid()
    }

    /// See [`ResourcesRef::within`].
    #[must_use]
    pub fn within(&self, parent: &Self) -> bool {
        self.as_ref().within(parent.as_ref())
    }
}

/// Most device-memory windows one [`Grant`] holds: a driver PD maps few device regions (the
/// most, a PCIe host bridge's, its ECAM and a handful of BAR windows); a system description
/// that gives one more is refused when it is read, naming the PD.
pub const MAX_GRANT_WINDOWS: usize = 8;
/// Most interrupts one [`Grant`] holds.
pub const MAX_GRANT_IRQS: usize = 16;

/// What a system description gives one driver PD: the device memory it maps (physical windows:
/// the `phys_addr` regions of its maps) and the interrupts it receives (its `<irq>` elements).
/// It is the PD's authority over devices: the manager binds a device only to a PD whose grant
/// gives it that device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Grant {
    /// Device memory, physical.
    pub windows: heapless::Vec<MmioWindow, MAX_GRANT_WINDOWS>,
    /// Interrupts (GIC INTIDs).
    pub irqs: heapless::Vec<u32, MAX_GRANT_IRQS>,
}

impl Grant {
    /// Does the grant give the PD these resources' device memory? A device with register
    /// windows is given when every one lies inside granted memory (the address space it
    /// forwards is its children's, mapped by their drivers); one without any windows (a
    /// device known only by its interrupts) when every interrupt is granted. A device with
    /// neither, or with forwarded windows only, is given to nobody.
    #[must_use]
    pub fn gives<'a>(&self, resources: impl Into<ResourcesRef<'a>>) -> bool {
        let resources = resources.into();
        if resources.registers().is_empty() {
            if !resources.mmio.is_empty() {
                return false;
            }
            return !resources.irqs.is_empty()
                && resources.irqs.iter().all(|irq| self.irqs.contains(irq));
        }
        resources
            .registers()
            .iter()
            .all(|window| self.covers(window))
    }

    /// Does granted memory cover all of `window`: one granted window, or several that follow
    /// one another (a host bridge's ECAM mapped as a region per bus, say)?
    #[must_use]
    pub fn covers(&self, window: &MmioWindow) -> bool {
        let Some(last) = window.last() else {
            return false;
        };
        let mut at = window.base;
        // Each step moves past one granted window; there are at most that many steps.
        for _ in 0..=self.windows.len() {
            let Some(reach) = self
                .windows
                .iter()
                .filter(|granted| granted.base <= at)
                .filter_map(MmioWindow::last)
                .filter(|granted_last| *granted_last >= at)
                .max()
            else {
                return false;
            };
            if reach >= last {
                return true;
            }
            at = reach + 1;
        }
        false
    }

    /// Does the grant hold this interrupt?
    #[must_use]
    pub fn has_irq(&self, irq: u32) -> bool {
        self.irqs.contains(&irq)
    }

    /// Is anything granted at all?
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.irqs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(base: u64, size: u64) -> MmioWindow {
        MmioWindow { base, size }
    }

    #[test]
    fn windows_know_their_extent() {
        assert_eq!(window(0x1000, 0x100).last(), Some(0x10ff));
        assert!(!window(0x1000, 0).is_valid(), "empty");
        assert!(!window(u64::MAX, 2).is_valid(), "wraps");
        assert!(
            window(u64::MAX, 1).is_valid(),
            "the last byte of the address space"
        );
        let outer = window(0xa00_0000, 0x4000);
        assert!(outer.contains(&window(0xa00_3e00, 0x200)));
        assert!(
            !outer.contains(&window(0xa00_3e00, 0x201)),
            "runs past the end"
        );
        assert!(!outer.contains(&window(0x9ff_ffff, 2)), "starts before");
        assert!(!outer.contains(&window(0xa00_0000, 0)), "empty");
    }

    #[test]
    fn a_child_gets_only_its_parents_resources() {
        let mut parent = Resources::default();
        parent.mmio.push(window(0xa00_3e00, 0x200)).unwrap();
        parent.irqs.push(79).unwrap();
        let mut child = parent.clone();
        assert!(child.within(&parent));
        child.irqs[0] = 33;
        assert!(!child.within(&parent), "another device's interrupt");
        let mut child = parent.clone();
        child.mmio[0] = window(0x900_0000, 0x1000);
        assert!(!child.within(&parent), "another device's window");
        assert!(Resources::default().within(&parent), "nothing at all");
    }

    #[test]
    fn a_grant_gives_the_devices_whose_memory_it_maps() {
        let mut grant = Grant::default();
        grant.windows.push(window(0xa00_0000, 0x4000)).unwrap();
        grant.irqs.push(79).unwrap();
        let mut disk = Resources::default();
        disk.mmio.push(window(0xa00_3e00, 0x200)).unwrap();
        disk.irqs.push(79).unwrap();
        assert!(grant.gives(&disk));
        disk.mmio.push(window(0x900_0000, 0x1000)).unwrap();
        assert!(!grant.gives(&disk), "one window outside the grant");
        let mut timer = Resources::default();
        timer.irqs.push(30).unwrap();
        assert!(
            !grant.gives(&timer),
            "an interrupt-only device, not granted"
        );
        grant.irqs.push(30).unwrap();
        assert!(grant.gives(&timer));
        assert!(!grant.gives(&Resources::default()), "nothing to give");
    }

    #[test]
    fn windows_that_follow_one_another_cover_what_spans_them() {
        let mut grant = Grant::default();
        // QEMU virt's ECAM as three regions: bus 0, bus 1, buses 2-255.
        grant
            .windows
            .push(window(0x40_1010_0000, 0x10_0000))
            .unwrap();
        grant
            .windows
            .push(window(0x40_1000_0000, 0x10_0000))
            .unwrap();
        grant
            .windows
            .push(window(0x40_1020_0000, 0xfe0_0000))
            .unwrap();
        assert!(
            grant.covers(&window(0x40_1000_0000, 0x1000_0000)),
            "the whole ECAM"
        );
        assert!(
            grant.covers(&window(0x40_100f_f000, 0x2000)),
            "across two of them"
        );
        assert!(
            !grant.covers(&window(0x40_1000_0000, 0x1000_1000)),
            "one page past the end"
        );
        let mut holed = Grant::default();
        holed
            .windows
            .push(window(0x40_1000_0000, 0x10_0000))
            .unwrap();
        holed
            .windows
            .push(window(0x40_1020_0000, 0x10_0000))
            .unwrap();
        assert!(
            !holed.covers(&window(0x40_1000_0000, 0x30_0000)),
            "bus 1 is not granted"
        );
        let mut top = Grant::default();
        top.windows.push(window(u64::MAX - 0xfff, 0x1000)).unwrap();
        assert!(
            top.covers(&window(u64::MAX - 0xff, 0x100)),
            "the last page, no overflow"
        );
        assert!(!Grant::default().covers(&window(0x1000, 0x1000)));
    }

    #[test]
    fn forwarded_space_is_the_childrens_not_the_devices() {
        // QEMU virt's PCIe host bridge: its ECAM, and its 32-bit memory aperture forwarded.
        let mut bridge = Resources::default();
        bridge
            .mmio
            .push(window(0x40_1000_0000, 0x1000_0000))
            .unwrap();
        bridge.mmio.push(window(0x1000_0000, 0x2eff_0000)).unwrap();
        bridge.forwarded = 1;
        bridge.irqs.push(35).unwrap();
        assert!(bridge.is_valid());
        assert_eq!(bridge.as_ref().registers(), &bridge.mmio[..1]);
        assert_eq!(bridge.as_ref().forwarded(), &bridge.mmio[1..]);
        let mut grant = Grant::default();
        grant
            .windows
            .push(window(0x40_1000_0000, 0x1000_0000))
            .unwrap();
        assert!(
            grant.gives(&bridge),
            "the ECAM is granted; the aperture is not needed"
        );
        let mut ecam_only = Grant::default();
        ecam_only
            .windows
            .push(window(0x1000_0000, 0x2eff_0000))
            .unwrap();
        assert!(
            !ecam_only.gives(&bridge),
            "the aperture alone gives nothing"
        );
        // A function: its configuration page and a BAR in the aperture.
        let mut function = Resources::default();
        function.mmio.push(window(0x40_1000_8000, 0x1000)).unwrap();
        function.mmio.push(window(0x1000_4000, 0x4000)).unwrap();
        function.irqs.push(35).unwrap();
        assert!(function.within(&bridge));
        function.mmio[1] = window(0x3eff_0000, 0x1_0000);
        assert!(!function.within(&bridge), "a BAR outside every aperture");
        let mut only_forwarded = Resources::default();
        only_forwarded
            .mmio
            .push(window(0x1000_0000, 0x1000))
            .unwrap();
        only_forwarded.forwarded = 1;
        assert!(
            !grant.gives(&only_forwarded),
            "nothing of its own, no interrupt: nobody's"
        );
        let mut irq_only = only_forwarded.clone();
        irq_only.irqs.push(35).unwrap();
        grant.irqs.push(35).unwrap();
        assert!(
            !grant.gives(&irq_only),
            "windows all forwarded: not given by its interrupt either"
        );
        bridge.forwarded = 3;
        assert!(!bridge.is_valid(), "more forwarded windows than windows");
        let child = Resources {
            forwarded: 1,
            ..Resources::default()
        };
        assert!(
            !child.within(&bridge.clone()),
            "a child with more forwarded windows than windows is within nothing"
        );
    }
}
