//! PCI host bridges: a `device_type = "pci"` node on a memory-mapped bus. Beyond its ECAM
//! window the host-bridge driver needs the buses it owns (`bus-range`), its apertures
//! (`ranges`, read as Linux's `of_pci_range_parser` reads them) and its INTx routing
//! (`interrupt-map` with `interrupt-map-mask`, read as Linux's `of_irq_parse_raw` reads an entry
//! whose parent is a GIC).

use warden_pci::PciAperture;

use crate::blob::NodeProperties;
use crate::devices::{big_endian, specifier_intids, u32_value, Devices};
use crate::BoardError;

/// Most apertures (`ranges` entries of I/O or memory) of a host bridge (NXP's LS1028A has 7).
pub const MAX_APERTURES: usize = 8;
/// Most `interrupt-map` entries of a host bridge (QEMU virt has 16: 4 devices, 4 pins).
pub const MAX_INTX_ROUTES: usize = 32;

/// One `interrupt-map` entry whose parent is a GIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IntxRoute {
    /// The child unit address's first cell (bus, device, function bits), masked.
    pub unit: u32,
    /// The pin (1–4), masked.
    pub pin: u32,
    /// The GIC INTID it is routed to.
    pub intid: u32,
}

/// What a host-bridge driver needs of its node besides the ECAM window.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PciHost {
    /// `bus-range`: the first bus (the ECAM window's first) and the last.
    pub first_bus: u8,
    /// The last bus.
    pub last_bus: u8,
    /// The I/O and memory windows, at CPU addresses translated through every ancestor.
    pub apertures: heapless::Vec<PciAperture, MAX_APERTURES>,
    /// `interrupt-map-mask`: the unit address's first cell's and the pin's.
    pub intx_mask: [u32; 2],
    /// The `interrupt-map` entries that reach a GIC.
    pub intx: heapless::Vec<IntxRoute, MAX_INTX_ROUTES>,
    /// Some entries reach a controller that is not a GIC (and are not in `intx`).
    pub intx_not_gic: bool,
    /// The `interrupt-map` (or its mask) could not be read, or holds more than
    /// [`MAX_INTX_ROUTES`] entries: no INTx is routed. The node is kept: its functions may use
    /// MSI, and Linux 6.1's Qualcomm IPQ trees have maps that miss the GIC's address cell.
    pub intx_malformed: bool,
    /// `ranges` entries of I/O or memory whose parent address no ancestor translates to a CPU
    /// address: not apertures.
    pub ranges_not_translatable: u8,
}

impl PciHost {
    /// The INTID that pin `pin` (1–4) of `device`.`function` on the host bridge's root bus is
    /// routed to (a function behind bridges first swizzled up to the root bus: the bridge's
    /// own device and function then).
    #[must_use]
    pub fn intid(&self, device: u8, function: u8, pin: u8) -> Option<u32> {
        let devfn = (u32::from(device & 0x1F) << 3) | u32::from(function & 0x7);
        let unit = ((u32::from(self.first_bus) << 16) | (devfn << 8)) & self.intx_mask[0];
        let pin = u32::from(pin) & self.intx_mask[1];
        self.intx
            .iter()
            .find(|route| route.unit == unit && route.pin == pin)
            .map(|route| route.intid)
    }
}

impl<'a> Devices<'_, 'a> {
    /// The host bridge `name` (its node's properties `properties`), read whole.
    pub(crate) fn pci_host(
        &self,
        name: &'a str,
        properties: &NodeProperties<'a>,
    ) -> Result<PciHost, BoardError<'a>> {
        let bad = |property| BoardError::BadProperty {
            node: name,
            property,
        };
        let (first_bus, last_bus) = match properties.bus_range {
            None => (0, 255),
            Some(range) => {
                let (first, last) = range.split_at_checked(4).ok_or(bad("bus-range"))?;
                let first = u32_value(first).and_then(|bus| u8::try_from(bus).ok());
                let last = u32_value(last).and_then(|bus| u8::try_from(bus).ok());
                match (first, last) {
                    (Some(first), Some(last)) if first <= last => (first, last),
                    _ => return Err(bad("bus-range")),
                }
            }
        };
        if properties.address_cells.and_then(u32_value) != Some(3) {
            return Err(bad("#address-cells"));
        }
        let size_cells = match properties.size_cells.and_then(u32_value) {
            Some(cells @ 1..=2) => cells as usize,
            _ => return Err(bad("#size-cells")),
        };
        let parent_cells = self.parent_address_cells(name)?;
        let mut apertures = heapless::Vec::new();
        let mut ranges_not_translatable = 0u8;
        let ranges = properties.ranges.unwrap_or_default();
        let entry = (3 + parent_cells + size_cells) * 4;
        if ranges.len() % entry != 0 {
            return Err(bad("ranges"));
        }
        for range in ranges.chunks_exact(entry) {
            let (child, rest) = range.split_at(12);
            let (parent, size) = rest.split_at(parent_cells * 4);
            let (hi, pci) = child.split_at(4);
            let (hi, pci, parent, size) = (
                u32_value(hi).ok_or(bad("ranges"))?,
                big_endian(pci),
                big_endian(parent),
                big_endian(size),
            );
            if parent.checked_add(size).is_none() {
                return Err(bad("ranges"));
            }
            // The parent address is in the space the node's own `reg` is in.
            let Ok(cpu) = self.translate(name, parent, size) else {
                ranges_not_translatable = ranges_not_translatable.saturating_add(1);
                continue;
            };
            let Some(aperture) = PciAperture::from_range(hi, pci, cpu, size) else {
                continue;
            };
            apertures.push(aperture).map_err(|_| BoardError::TooMany {
                node: name,
                what: "PCI apertures",
                limit: MAX_APERTURES,
            })?;
        }
        // All four cells of the mask: the unit address's three and the pin's.
        let mask = match properties.interrupt_map_mask {
            None => Some([u32::MAX; 4]),
            Some(mask) if mask.len() == 16 => {
                let cell = |index: usize| mask.get(index * 4..index * 4 + 4).and_then(u32_value);
                match (cell(0), cell(1), cell(2), cell(3)) {
                    (Some(hi), Some(mid), Some(lo), Some(pin)) => Some([hi, mid, lo, pin]),
                    _ => None,
                }
            }
            Some(_) => None,
        };
        // A PCI interrupt specifier is one cell, the pin (Linux's `of_irq_parse_raw` wants it).
        let one_cell = properties.interrupt_cells.and_then(u32_value) == Some(1)
            || properties.interrupt_map.is_none();
        let routes = mask.filter(|_| one_cell).and_then(|mask| {
            self.interrupt_map(name, properties.interrupt_map.unwrap_or_default(), mask)
                .ok()
        });
        let intx_mask = mask.map(|[hi, _, _, pin]| [hi, pin]);
        let intx_malformed = routes.is_none();
        let (intx, intx_not_gic) = routes.unwrap_or_default();
        Ok(PciHost {
            first_bus,
            last_bus,
            apertures,
            intx_mask: intx_mask.unwrap_or([u32::MAX; 2]),
            intx,
            intx_not_gic,
            intx_malformed,
            ranges_not_translatable,
        })
    }

    /// `interrupt-map` entries: the child unit address (3 cells) and pin (1 cell), the parent's
    /// phandle, the parent's unit address (its `#address-cells`, 0 without) and specifier (its
    /// `#interrupt-cells`).
    fn interrupt_map(
        &self,
        name: &'a str,
        mut map: &'a [u8],
        mask: [u32; 4],
    ) -> Result<(heapless::Vec<IntxRoute, MAX_INTX_ROUTES>, bool), BoardError<'a>> {
        let bad = BoardError::BadProperty {
            node: name,
            property: "interrupt-map",
        };
        let mut routes = heapless::Vec::new();
        let mut not_gic = false;
        while !map.is_empty() {
            let (child, rest) = map.split_at_checked(20).ok_or(bad)?;
            let cell = |index: usize| child.get(index * 4..index * 4 + 4).and_then(u32_value);
            let (unit, middle, low, pin) = (
                cell(0).ok_or(bad)?,
                cell(1).ok_or(bad)?,
                cell(2).ok_or(bad)?,
                cell(3).ok_or(bad)?,
            );
            let phandle = child.get(16..20).and_then(u32_value).ok_or(bad)?;
            let (controller, properties) = self.node_of(phandle)?.ok_or(bad)?;
            let address_cells = match properties.address_cells {
                None => 0,
                Some(cells) => u32_value(cells).ok_or(bad)? as usize,
            };
            let interrupt_cells = properties.interrupt_cells.and_then(u32_value).ok_or(bad)?;
            let length = address_cells
                .checked_add(interrupt_cells as usize)
                .and_then(|cells| cells.checked_mul(4))
                .ok_or(bad)?;
            let (parent, rest) = rest.split_at_checked(length).ok_or(bad)?;
            map = rest;
            // A PCI function's unit address has 0 in its middle and low cells: an entry that
            // asks for others under the mask matches none.
            if middle & mask[1] != 0 || low & mask[2] != 0 {
                continue;
            }
            let specifier = parent.get(address_cells * 4..).ok_or(bad)?;
            let Some(intids) = specifier_intids(name, controller, &properties, specifier)? else {
                not_gic = true;
                continue;
            };
            let Some(&intid) = intids.first() else {
                return Err(bad);
            };
            routes
                .push(IntxRoute {
                    unit: unit & mask[0],
                    pin: pin & mask[3],
                    intid,
                })
                .map_err(|_| BoardError::TooMany {
                    node: name,
                    what: "interrupt-map entries",
                    limit: MAX_INTX_ROUTES,
                })?;
        }
        Ok((routes, not_gic))
    }
}
