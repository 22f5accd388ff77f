//! What a PCI host bridge's driver is told of its bridge beyond its resources: the buses it
//! owns, its apertures with their bus addresses, and where its root bus's INTx lines are
//! routed. The board's device tree holds these (`bus-range`, `ranges`, `interrupt-map`); the
//! manager, which reads the board, answers them to the driver bound to the bridge.

use crate::MAX_INTID;

/// Most apertures described (QEMU virt has 3; a bridge with more is described by its first 6).
pub const MAX_PCI_APERTURES: usize = 6;
/// Device numbers on a PCI bus.
pub const PCI_DEVICES: usize = 32;

/// The space an aperture serves: the `ss` bits of a `ranges` entry's first cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PciSpace {
    /// I/O space.
    Io = 1,
    /// 32- or 64-bit memory space.
    Memory = 2,
    /// Prefetchable memory space.
    Prefetchable = 3,
}

impl PciSpace {
    /// All three.
    pub const ALL: [PciSpace; 3] = [PciSpace::Io, PciSpace::Memory, PciSpace::Prefetchable];

    /// The space of code `code` (1–3).
    #[must_use]
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Self::Io),
            2 => Some(Self::Memory),
            3 => Some(Self::Prefetchable),
            _ => None,
        }
    }
}

impl core::fmt::Display for PciSpace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            PciSpace::Io => "I/O",
            PciSpace::Memory => "memory",
            PciSpace::Prefetchable => "prefetchable memory",
        })
    }
}

/// One aperture of a host bridge (a `ranges` entry): `size` bytes of `space` at bus address
/// `pci_base`, reached by the CPU at `cpu_base`. A 64-bit memory range serves the
/// prefetchable BARs (Linux places them there on QEMU virt, whose high range is not marked
/// prefetchable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PciAperture {
    /// Its space.
    pub space: PciSpace,
    /// Its first bus address.
    pub pci_base: u64,
    /// The CPU-physical address of that byte.
    pub cpu_base: u64,
    /// Bytes (not 0; neither range wraps).
    pub size: u64,
}

impl PciAperture {
    /// The aperture a `ranges` entry describes: its first cell (`phys.hi`), its bus address,
    /// its CPU address and its size. `None` for configuration space and for sizes of 0.
    #[must_use]
    pub fn from_range(phys_hi: u32, pci_base: u64, cpu_base: u64, size: u64) -> Option<Self> {
        let space = match (phys_hi >> 24) & 0x3 {
            0b01 => PciSpace::Io,
            0b10 => PciSpace::Memory,
            0b11 => PciSpace::Prefetchable,
            _ => return None,
        };
        (size != 0 && pci_base.checked_add(size).is_some() && cpu_base.checked_add(size).is_some())
            .then_some(Self {
                space,
                pci_base,
                cpu_base,
                size,
            })
    }

    /// The bus address just past it (saturating).
    #[must_use]
    pub const fn end(&self) -> u64 {
        self.pci_base.saturating_add(self.size)
    }

    /// Is it an aperture at all: not empty, and neither its bus range nor its CPU range
    /// wraps?
    #[must_use]
    pub const fn is_valid(&self) -> bool {
        self.size != 0
            && self.pci_base.checked_add(self.size - 1).is_some()
            && self.cpu_base.checked_add(self.size - 1).is_some()
    }
}

/// A PCI host bridge, as its driver needs it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PciHostInfo {
    /// The first bus number it owns (its ECAM window's first bus).
    pub first_bus: u8,
    /// The last.
    pub last_bus: u8,
    /// Its apertures.
    pub apertures: heapless::Vec<PciAperture, MAX_PCI_APERTURES>,
    /// `intx[device][pin - 1]`: the GIC INTID that pin (INTA–INTD) of function 0 of `device` on
    /// the root bus is routed to; 0 for none. (A map whose mask keeps function bits, which no
    /// board Warden reads does, is described for function 0.)
    pub intx: [[u16; 4]; PCI_DEVICES],
}

impl Default for PciHostInfo {
    fn default() -> Self {
        Self {
            first_bus: 0,
            last_bus: 0,
            apertures: heapless::Vec::new(),
            intx: [[0; 4]; PCI_DEVICES],
        }
    }
}

impl PciHostInfo {
    /// Is it a description a driver can use: buses in order, every aperture valid, every
    /// route a GIC INTID?
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.first_bus <= self.last_bus
            && self.apertures.iter().all(PciAperture::is_valid)
            && self
                .intx
                .iter()
                .flatten()
                .all(|&intid| u32::from(intid) <= MAX_INTID)
    }

    /// The INTID pin `pin` (1–4) of root-bus device `device` is routed to.
    #[must_use]
    pub fn intid(&self, device: u8, pin: u8) -> Option<u32> {
        let routed = *self
            .intx
            .get(usize::from(device))?
            .get(usize::from(pin).checked_sub(1)?)?;
        (routed != 0).then_some(u32::from(routed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_bridge_description_is_checked_and_read() {
        let mut host = PciHostInfo {
            last_bus: 255,
            ..PciHostInfo::default()
        };
        host.intx[1] = [36, 37, 38, 35];
        let aperture = PciAperture {
            space: PciSpace::Memory,
            pci_base: 0x1000_0000,
            cpu_base: 0x1000_0000,
            size: 0x2eff_0000,
        };
        host.apertures.push(aperture).unwrap();
        assert!(host.is_valid());
        assert_eq!(host.intid(1, 1), Some(36));
        assert_eq!(host.intid(1, 4), Some(35));
        assert_eq!(host.intid(1, 0), None, "pin 0 is no pin");
        assert_eq!(host.intid(1, 5), None);
        assert_eq!(host.intid(2, 1), None, "not routed");
        assert_eq!(host.intid(32, 1), None);
        host.intx[3][0] = 1020;
        assert!(!host.is_valid(), "not a GIC INTID a device may have");
        host.intx[3][0] = 0;
        host.first_bus = 1;
        host.last_bus = 0;
        assert!(!host.is_valid(), "buses out of order");
        host.last_bus = 1;
        host.apertures[0].cpu_base = u64::MAX;
        assert!(!host.is_valid(), "an aperture that wraps");
        assert_eq!(PciSpace::from_code(0), None);
        assert_eq!(PciSpace::from_code(3), Some(PciSpace::Prefetchable));
    }
}
