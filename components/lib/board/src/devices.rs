//! The walk over the tree that turns nodes into [`BoardDevice`]s: CPU-physical windows through
//! every bus's `ranges`, GIC interrupt ids through the interrupt-parent chain.

use crate::blob::{Blob, Cursor, NodeProperties, Token};
use crate::error::BoardError;
use crate::index::{self, PhandleSlot};
use crate::{Board, PciHost, MAX_COMPATIBLE, MAX_DEPTH, MAX_IRQS, MAX_MMIO};
use warden_vocabulary::MmioWindow;

/// The bus a board device sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardBus<'a> {
    /// A memory-mapped bus: the device's `reg` entries are windows, translated to CPU-physical
    /// addresses.
    Platform,
    /// A bus that is not memory-mapped: the device's parent has `#size-cells = <0>`, so its
    /// `reg` is an address on its controller's bus (an I2C address, an SPI chip select, an
    /// MDIO PHY address), as Linux's I2C, SPI and MDIO cores read it. Linux's platform code
    /// makes no device of such a node; the controller's driver does.
    Local {
        /// The bus's kind: the controller's generic node name (`i2c`, `spi`, `mdio`…), its
        /// name before `@`.
        kind: &'a str,
        /// The device's address on that bus (`None`: the node has no `reg`).
        address: Option<u64>,
    },
}

/// One device of the board: a node with a `compatible` property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardDevice<'a> {
    /// Where it sits: a memory-mapped bus, or its controller's bus.
    pub bus: BoardBus<'a>,
    /// The node's name, e.g. `pl011@9000000`.
    pub path_name: &'a str,
    /// The node's depth in the tree (the root's children are at depth 1).
    pub depth: usize,
    /// Index, in the [`Board::devices`] sequence, of the nearest ancestor that is itself a
    /// device. The sequence counts every item, errors included, so enumerate it before
    /// filtering out errors.
    pub parent: Option<usize>,
    /// The `compatible` strings, most specific first.
    pub compatible: heapless::Vec<&'a str, MAX_COMPATIBLE>,
    /// The `reg` windows, translated to CPU-physical addresses through every ancestor's
    /// `ranges`.
    pub mmio: heapless::Vec<MmioWindow, MAX_MMIO>,
    /// The interrupts routed to an Arm GIC, as GIC interrupt ids (INTIDs), read as Linux's GIC
    /// drivers read them: SPI n is 32 + n, PPI n is 16 + n (a "PPI" above 15 is the INTID
    /// 16 + n all the same, as Linux maps it), each at most 1019; GICv3's extended ranges: ESPI
    /// n is 4096 + n, EPPI n is 1056 + n. From `interrupts-extended` if the node has it (each
    /// entry names its own controller), else from `interrupts` and the interrupt parent.
    pub irqs: heapless::Vec<u32, MAX_IRQS>,
    /// Some of the node's `reg` entries, from the first that fails on, name no CPU-physical
    /// address (the node sits under a bus without `ranges`, as a syscon's children do, or its
    /// address lies outside them): as Linux's `of_device_alloc` does, the device has the windows
    /// before that one, and none of the rest.
    pub reg_not_translatable: bool,
    /// Some of the node's interrupts belong to a controller that is not an Arm GIC (a GPIO
    /// interrupt controller, an `interrupt-map` nexus, or none found): they are not INTIDs and
    /// are not in `irqs`.
    pub interrupt_parent_not_gic: bool,
    /// `status` is absent, `"okay"` or `"ok"`. Disabled devices are still listed, so that the
    /// device manager can show them unbound.
    pub enabled: bool,
    /// A PCI host bridge's buses, apertures and INTx routing (a `device_type = "pci"` node on
    /// a memory-mapped bus).
    pub pci: Option<PciHost>,
}

/// Top-level nodes whose subtrees describe no devices, though they may carry `compatible`.
const NOT_DEVICES: [&str; 4] = ["cpus", "chosen", "aliases", "reserved-memory"];

/// `compatible` strings of the Arm GICs whose interrupt specifiers [`gic_intid`] reads: those
/// of the GIC binding (Linux's `arm,gic.yaml` and the compatibles its `irq-gic` driver
/// declares), Qualcomm's among them.
const GIC_V2: [&str; 12] = [
    "arm,arm11mp-gic",
    "arm,arm1176jzf-devchip-gic",
    "arm,cortex-a15-gic",
    "arm,cortex-a5-gic",
    "arm,cortex-a7-gic",
    "arm,cortex-a9-gic",
    "arm,eb11mp-gic",
    "arm,gic-400",
    "arm,pl390",
    "arm,tc11mp-gic",
    "qcom,msm-8660-qgic",
    "qcom,msm-qgic2",
];
const GIC_V3: [&str; 1] = ["arm,gic-v3"];

/// How many `interrupt-parent` hops to follow before giving up (a loop in a corrupt tree must
/// not hang the manager).
const MAX_INTERRUPT_PARENT_HOPS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GicVersion {
    V2,
    V3,
}

/// The interrupt controller a node's `interrupts` belong to.
#[derive(Debug, Clone, Copy)]
enum Controller<'a> {
    Gic {
        name: &'a str,
        version: GicVersion,
        cells: Option<&'a [u8]>,
    },
    NotGic,
}

/// An ancestor of the node being read: what its descendants need from it.
#[derive(Debug, Clone, Copy)]
struct Frame<'a> {
    name: &'a str,
    properties: NodeProperties<'a>,
    gic: Option<GicVersion>,
    /// This node and everything under it are not devices (see [`NOT_DEVICES`]).
    not_devices: bool,
    /// Its index in the devices sequence, if it is a device.
    device_index: Option<usize>,
}

/// The board's devices in tree order (parents before children); see [`Board::devices`].
#[derive(Debug)]
pub struct Devices<'b, 'a> {
    blob: Blob<'a>,
    cursor: Cursor<'a>,
    /// The root and the ancestors below it: up to [`MAX_DEPTH`] + 1 frames.
    ancestors: heapless::Vec<Frame<'a>, { MAX_DEPTH + 1 }>,
    /// The board's phandle index, if the caller made one ([`Board::devices_indexed`]).
    index: Option<&'b [PhandleSlot]>,
    yielded: usize,
    finished: bool,
    /// The last `interrupt-parent` phandle resolved and its controller: nearly every node
    /// inherits the root's, and resolving means walking the whole tree.
    last_controller: Option<(u32, Controller<'a>)>,
    _board: core::marker::PhantomData<&'b Board<'a>>,
}

impl<'b, 'a> Devices<'b, 'a> {
    pub(crate) fn new(blob: Blob<'a>, index: Option<&'b [PhandleSlot]>) -> Self {
        Self {
            blob,
            cursor: Cursor::new(blob),
            ancestors: heapless::Vec::new(),
            index,
            yielded: 0,
            finished: false,
            last_controller: None,
            _board: core::marker::PhantomData,
        }
    }

    /// The names on the path from the root down to the node the last item came from (its
    /// own name last; the root's, empty, left out): `/` joins them into the node's full path.
    /// For an item that ended the walk (a malformed blob) it is where the walk stopped.
    pub fn path(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.ancestors.iter().skip(1).map(|frame| frame.name)
    }

    fn fail(&mut self, error: BoardError<'a>) -> Option<Result<BoardDevice<'a>, BoardError<'a>>> {
        self.finished = true;
        Some(Err(error))
    }

    /// Reads the node `name`, whose properties are `properties`; `self.ancestors` holds its
    /// ancestors (not the node itself).
    fn describe(
        &mut self,
        name: &'a str,
        properties: &NodeProperties<'a>,
    ) -> Result<BoardDevice<'a>, BoardError<'a>> {
        let compatible = string_list(name, properties.compatible.unwrap_or_default())?;
        let (bus, (mmio, reg_not_translatable)) = match self.local_bus(name, properties.reg)? {
            Some(bus) => (bus, (heapless::Vec::new(), false)),
            None => (BoardBus::Platform, self.windows(name, properties.reg)?),
        };
        let (irqs, interrupt_parent_not_gic) =
            match (properties.interrupts_extended, properties.interrupts) {
                // Linux reads `interrupts-extended` first, and `interrupts` only without it.
                (Some(extended), _) => self.extended_interrupts(name, extended)?,
                (None, None | Some([])) => (heapless::Vec::new(), false),
                (None, Some(interrupts)) => match self.interrupt_controller(name, properties)? {
                    Controller::Gic {
                        name: controller,
                        version,
                        cells,
                    } => (
                        gic_intids(name, controller, version, cells, interrupts)?,
                        false,
                    ),
                    Controller::NotGic => (heapless::Vec::new(), true),
                },
            };
        let host = bus == BoardBus::Platform && is_pci(properties.device_type);
        let pci = if host {
            Some(self.pci_host(name, properties)?)
        } else {
            None
        };
        Ok(BoardDevice {
            pci,
            bus,
            path_name: name,
            depth: self.ancestors.len(),
            parent: self
                .ancestors
                .iter()
                .rev()
                .find_map(|frame| frame.device_index),
            compatible,
            mmio,
            reg_not_translatable,
            irqs,
            interrupt_parent_not_gic,
            enabled: matches!(
                properties.status,
                None | Some(b"okay\0" | b"ok\0" | b"okay" | b"ok")
            ),
        })
    }

    /// The node's bus, if its parent's is not memory-mapped (`#size-cells = <0>`), and its
    /// address there: the first `reg` entry of `#address-cells` cells, as Linux's I2C, SPI and
    /// MDIO cores read it (`of_property_read_u32(node, "reg", …)`: a device at a second I2C
    /// address has it as a dummy device of its driver's making).
    fn local_bus(
        &self,
        name: &'a str,
        reg: Option<&'a [u8]>,
    ) -> Result<Option<BoardBus<'a>>, BoardError<'a>> {
        let Some(bus) = self.ancestors.last() else {
            return Ok(None);
        };
        if is_pci(bus.properties.device_type) && self.ancestors.len() >= 2 {
            return pci_function(name, reg).map(Some);
        }
        let zero = bus
            .properties
            .size_cells
            .is_some_and(|cells| u32_value(cells) == Some(0));
        // A node with no `reg` is nobody's at an address: a platform device, as it always was;
        // so is a child of a `simple-bus` (a container of regulators, say), whose children
        // Linux's platform code makes devices of, with no resources.
        let Some(reg) = reg.filter(|reg| !reg.is_empty()) else {
            return Ok(None);
        };
        if !zero || self.ancestors.len() < 2 || is_simple_bus(bus) {
            return Ok(None);
        }
        let kind = bus.name.split('@').next().unwrap_or(bus.name);
        let entry = bus_cells(name, bus, CellKind::Address)? * 4;
        if reg.len() % entry != 0 {
            return Err(BoardError::BadProperty {
                node: name,
                property: "reg",
            });
        }
        Ok(Some(BoardBus::Local {
            kind,
            address: reg.get(..entry).map(big_endian),
        }))
    }

    /// The node's `reg` windows, translated to CPU-physical addresses, up to the first that
    /// does not translate (then `true`: see [`BoardDevice::reg_not_translatable`]).
    fn windows(
        &self,
        name: &'a str,
        reg: Option<&'a [u8]>,
    ) -> Result<(heapless::Vec<MmioWindow, MAX_MMIO>, bool), BoardError<'a>> {
        let mut windows = heapless::Vec::new();
        let Some(reg) = reg.filter(|reg| !reg.is_empty()) else {
            return Ok((windows, false));
        };
        let bus = self.ancestors.last().ok_or(BoardError::BadProperty {
            node: name,
            property: "reg",
        })?;
        if is_simple_bus(bus)
            && bus
                .properties
                .size_cells
                .is_some_and(|cells| u32_value(cells) == Some(0))
        {
            // Addresses with no size on a memory-mapped bus name no window.
            return Ok((windows, true));
        }
        let address_cells = bus_cells(name, bus, CellKind::Address)?;
        let size_cells = bus_cells(name, bus, CellKind::Size)?;
        let entry = (address_cells + size_cells) * 4;
        if reg.len() % entry != 0 {
            return Err(BoardError::BadProperty {
                node: name,
                property: "reg",
            });
        }
        if reg.len() / entry > MAX_MMIO {
            return Err(BoardError::TooMany {
                node: name,
                what: "reg windows",
                limit: MAX_MMIO,
            });
        }
        for chunk in reg.chunks_exact(entry) {
            let (address, size) = chunk.split_at(address_cells * 4);
            let (address, size) = (big_endian(address), big_endian(size));
            if address.checked_add(size).is_none() {
                return Err(BoardError::BadProperty {
                    node: name,
                    property: "reg",
                });
            }
            let base = match self.translate(name, address, size) {
                Ok(base) => base,
                Err(BoardError::NotTranslatable { .. }) => return Ok((windows, true)),
                Err(error) => return Err(error),
            };
            windows
                .push(MmioWindow { base, size })
                .map_err(|_| BoardError::TooMany {
                    node: name,
                    what: "reg windows",
                    limit: MAX_MMIO,
                })?;
        }
        Ok((windows, false))
    }

    /// Translates `[address, address + size)` of the node's parent bus up through each
    /// ancestor's `ranges` to the root's (CPU-physical) address space.
    pub(crate) fn translate(
        &self,
        name: &'a str,
        mut address: u64,
        size: u64,
    ) -> Result<u64, BoardError<'a>> {
        // Each bus below the root maps its children's space into its own parent's space.
        for level in (1..self.ancestors.len()).rev() {
            let (Some(bus), Some(above)) =
                (self.ancestors.get(level), self.ancestors.get(level - 1))
            else {
                break;
            };
            let not_translatable = BoardError::NotTranslatable {
                node: name,
                bus: bus.name,
                address,
            };
            let ranges = bus.properties.ranges.ok_or(not_translatable)?;
            if ranges.is_empty() {
                // An empty `ranges` is the identity mapping. Linux truncates an address that
                // does not fit the parent's cells (`of_bus_default_translate`); here a window
                // a one-cell parent space cannot name, end included, has no CPU address.
                let narrow =
                    bus_cells(name, above, CellKind::Address).is_ok_and(|cells| cells == 1);
                if narrow && address.saturating_add(size) > 1 << 32 {
                    return Err(not_translatable);
                }
                continue;
            }
            let child_cells = bus_cells(name, bus, CellKind::Address)?;
            let parent_cells = bus_cells(name, above, CellKind::Address)?;
            let length_cells = bus_cells(name, bus, CellKind::Size)?;
            let entry = (child_cells + parent_cells + length_cells) * 4;
            if ranges.len() % entry != 0 {
                return Err(BoardError::BadParentProperty {
                    node: name,
                    parent: bus.name,
                    property: "ranges",
                });
            }
            address = ranges
                .chunks_exact(entry)
                .find_map(|range| {
                    let (child, rest) = range.split_at(child_cells * 4);
                    let (parent, length) = rest.split_at(parent_cells * 4);
                    let offset = address.checked_sub(big_endian(child))?;
                    // Linux's rule (`of_bus_default_map`): the range must hold the window's
                    // first byte; the window may run past it.
                    if offset >= big_endian(length) {
                        return None;
                    }
                    let base = big_endian(parent).checked_add(offset)?;
                    // It must still be an address a CPU can name, end included.
                    base.checked_add(size).map(|_| base)
                })
                .ok_or(not_translatable)?;
        }
        Ok(address)
    }

    /// Finds the controller the node's `interrupts` belong to as Linux's `of_irq_find_parent`
    /// does: follow `interrupt-parent` if the node has one, else go up the tree, until a node
    /// with `#interrupt-cells`.
    fn interrupt_controller(
        &mut self,
        name: &'a str,
        properties: &NodeProperties<'a>,
    ) -> Result<Controller<'a>, BoardError<'a>> {
        let mut reference = properties.interrupt_parent;
        if reference.is_none() {
            for frame in self.ancestors.iter().rev() {
                if frame.properties.interrupt_cells.is_some() {
                    return Ok(controller_of(frame.name, frame.gic, &frame.properties));
                }
                if let Some(parent) = frame.properties.interrupt_parent {
                    reference = Some(parent);
                    break;
                }
            }
        }
        let Some(reference) = reference else {
            return Ok(Controller::NotGic);
        };
        let bad_reference = BoardError::BadProperty {
            node: name,
            property: "interrupt-parent",
        };
        let first = u32_value(reference).ok_or(bad_reference)?;
        if let Some((phandle, controller)) = self.last_controller {
            if phandle == first {
                return Ok(controller);
            }
        }
        let mut phandle = first;
        for _ in 0..MAX_INTERRUPT_PARENT_HOPS {
            let (target, target_properties) = self.node_of(phandle)?.ok_or(bad_reference)?;
            if target_properties.interrupt_cells.is_some() {
                let gic = gic_version(target_properties.compatible);
                let controller = controller_of(target, gic, &target_properties);
                self.last_controller = Some((first, controller));
                return Ok(controller);
            }
            // A node without `#interrupt-cells` passes its children's interrupts on: through
            // its own `interrupt-parent`, or else its tree parent, which a phandle lookup does
            // not know; such trees are not GIC-direct, so treat them as not GIC.
            match target_properties.interrupt_parent.and_then(u32_value) {
                Some(next) => phandle = next,
                None => break,
            }
        }
        Ok(Controller::NotGic)
    }

    /// The node with `phandle`: from the index if there is one, else by a walk.
    pub(crate) fn node_of(
        &self,
        phandle: u32,
    ) -> Result<Option<(&'a str, NodeProperties<'a>)>, BoardError<'a>> {
        let Some(slots) = self.index else {
            return find_phandle(self.blob, phandle);
        };
        let Some(offset) = index::find(slots, phandle) else {
            return Ok(None);
        };
        let mut cursor = Cursor::at(self.blob, offset);
        match cursor.next_token()? {
            Token::BeginNode(name) => Ok(Some((name, cursor.node_properties()?))),
            Token::EndNode | Token::Property { .. } | Token::End => Ok(None),
        }
    }

    /// The `#address-cells` of the node's parent (the space its `reg` is in).
    pub(crate) fn parent_address_cells(&self, name: &'a str) -> Result<usize, BoardError<'a>> {
        match self.ancestors.last() {
            Some(parent) => bus_cells(name, parent, CellKind::Address),
            None => Ok(2),
        }
    }

    /// `interrupts-extended`: entries of a controller's phandle and a specifier of that
    /// controller's `#interrupt-cells`. Entries of GICs become INTIDs; any other controller's
    /// are counted out (`interrupt_parent_not_gic`).
    fn extended_interrupts(
        &self,
        name: &'a str,
        mut extended: &'a [u8],
    ) -> Result<(heapless::Vec<u32, MAX_IRQS>, bool), BoardError<'a>> {
        let bad = BoardError::BadProperty {
            node: name,
            property: "interrupts-extended",
        };
        let mut intids = heapless::Vec::new();
        let mut not_gic = false;
        while !extended.is_empty() {
            let (reference, rest) = extended.split_at_checked(4).ok_or(bad)?;
            let phandle = u32_value(reference).ok_or(bad)?;
            let (controller, properties) = self.node_of(phandle)?.ok_or(bad)?;
            let cells = properties.interrupt_cells.and_then(u32_value).ok_or(
                BoardError::BadParentProperty {
                    node: name,
                    parent: controller,
                    property: "#interrupt-cells",
                },
            )?;
            let length = usize::try_from(cells)
                .ok()
                .and_then(|cells| cells.checked_mul(4))
                .ok_or(bad)?;
            let (specifier, rest) = rest.split_at_checked(length).ok_or(bad)?;
            extended = rest;
            let Some(one) = specifier_intids(name, controller, &properties, specifier)? else {
                not_gic = true;
                continue;
            };
            for intid in one {
                intids.push(intid).map_err(|_| BoardError::TooMany {
                    node: name,
                    what: "interrupts",
                    limit: MAX_IRQS,
                })?;
            }
        }
        Ok((intids, not_gic))
    }
}

impl<'a> Iterator for Devices<'_, 'a> {
    type Item = Result<BoardDevice<'a>, BoardError<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.finished {
            let at = self.cursor.offset();
            let token = match self.cursor.next_token() {
                Ok(token) => token,
                Err(error) => return self.fail(error),
            };
            match token {
                Token::BeginNode(name) => {
                    let properties = match self.cursor.node_properties() {
                        Ok(properties) => properties,
                        Err(error) => return self.fail(error),
                    };
                    let depth = self.ancestors.len();
                    let not_devices = match (depth, self.ancestors.last()) {
                        (1, _) => NOT_DEVICES.contains(&base_name(name)),
                        (_, Some(parent)) => parent.not_devices,
                        (_, None) => false,
                    };
                    let is_device = depth > 0 && !not_devices && properties.compatible.is_some();
                    let described = is_device.then(|| self.describe(name, &properties));
                    let frame = Frame {
                        name,
                        properties,
                        gic: gic_version(properties.compatible),
                        not_devices,
                        device_index: is_device.then_some(self.yielded),
                    };
                    if self.ancestors.push(frame).is_err() {
                        return self.fail(BoardError::TooDeep { offset: at });
                    }
                    if let Some(result) = described {
                        self.yielded += 1;
                        return Some(result);
                    }
                }
                Token::EndNode => {
                    if self.ancestors.pop().is_none() {
                        return self.fail(BoardError::Malformed {
                            offset: at,
                            reason: "end of a node never begun",
                        });
                    }
                }
                Token::Property { .. } => {
                    return self.fail(BoardError::Malformed {
                        offset: at,
                        reason: "a property after a child node",
                    });
                }
                Token::End => self.finished = true,
            }
        }
        None
    }
}

impl core::iter::FusedIterator for Devices<'_, '_> {}

/// The node name without its unit address.
fn base_name(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

/// Is the node a `simple-bus` (or `simple-mfd`): a container whose children are platform
/// devices (Linux's `of_default_bus_match_table`)?
fn is_simple_bus(bus: &Frame<'_>) -> bool {
    bus.properties
        .compatible
        .unwrap_or_default()
        .split(|&byte| byte == 0)
        .any(|name| name == b"simple-bus" || name == b"simple-mfd")
}

/// Whether a node's `device_type` makes it a PCI bus (`"pci"`, or `"pciex"` as Linux also
/// reads it).
fn is_pci(device_type: Option<&[u8]>) -> bool {
    matches!(device_type, Some(b"pci\0" | b"pci" | b"pciex\0" | b"pciex"))
}

/// A node under a PCI bus (`device_type = "pci"`): a function that enumeration finds, which the
/// node describes further. Its `reg` entries are PCI addresses (three cells, the first
/// `phys.hi` naming the configuration space: bus, device and function) with two size cells; the
/// function's address on its bus is its device and function (`devfn`), as Linux's
/// `of_pci_get_devfn` reads it from the first entry. Its windows are the BARs its bridge's
/// driver assigns, not in the tree.
fn pci_function<'a>(name: &'a str, reg: Option<&'a [u8]>) -> Result<BoardBus<'a>, BoardError<'a>> {
    const ENTRY: usize = (3 + 2) * 4;
    let Some(reg) = reg.filter(|reg| !reg.is_empty()) else {
        return Ok(BoardBus::Local {
            kind: "pci",
            address: None,
        });
    };
    let bad = BoardError::BadProperty {
        node: name,
        property: "reg",
    };
    if reg.len() % ENTRY != 0 {
        return Err(bad);
    }
    let phys_hi = reg.get(..4).and_then(u32_value).ok_or(bad)?;
    Ok(BoardBus::Local {
        kind: "pci",
        address: Some(u64::from((phys_hi >> 8) & 0xff)),
    })
}

/// A big-endian number of one or two cells (callers pass 4 or 8 bytes).
pub(crate) fn big_endian(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0, |value, &byte| (value << 8) | u64::from(byte))
}

pub(crate) fn u32_value(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

#[derive(Clone, Copy)]
enum CellKind {
    Address,
    Size,
}

/// The bus's `#address-cells` or `#size-cells` (devicetree defaults 2 and 1), as a number of
/// cells Warden reads: 1 or 2.
fn bus_cells<'a>(node: &'a str, bus: &Frame<'a>, kind: CellKind) -> Result<usize, BoardError<'a>> {
    let (raw, default, property) = match kind {
        CellKind::Address => (bus.properties.address_cells, 2, "#address-cells"),
        CellKind::Size => (bus.properties.size_cells, 1, "#size-cells"),
    };
    let cells = match raw {
        None => default,
        Some(bytes) => u32_value(bytes).unwrap_or(0),
    };
    match cells {
        1 | 2 => Ok(cells as usize),
        _ => Err(BoardError::BadParentProperty {
            node,
            parent: display_name(bus.name),
            property,
        }),
    }
}

/// The root's name is empty in the blob; errors call it `/`.
fn display_name(name: &str) -> &str {
    if name.is_empty() {
        "/"
    } else {
        name
    }
}

/// The strings of a string-list property (`compatible`), each NUL-terminated and non-empty.
fn string_list<'a>(
    node: &'a str,
    bytes: &'a [u8],
) -> Result<heapless::Vec<&'a str, MAX_COMPATIBLE>, BoardError<'a>> {
    let bad = BoardError::BadProperty {
        node,
        property: "compatible",
    };
    let Some((&0, body)) = bytes.split_last() else {
        return Err(bad);
    };
    let mut strings = heapless::Vec::new();
    for piece in body.split(|&byte| byte == 0) {
        let string = core::str::from_utf8(piece).map_err(|_| bad)?;
        if string.is_empty() {
            return Err(bad);
        }
        strings.push(string).map_err(|_| BoardError::TooMany {
            node,
            what: "compatible strings",
            limit: MAX_COMPATIBLE,
        })?;
    }
    Ok(strings)
}

fn gic_version(compatible: Option<&[u8]>) -> Option<GicVersion> {
    compatible?.split(|&byte| byte == 0).find_map(|piece| {
        let string = core::str::from_utf8(piece).ok()?;
        if GIC_V2.contains(&string) {
            Some(GicVersion::V2)
        } else if GIC_V3.contains(&string) {
            Some(GicVersion::V3)
        } else {
            None
        }
    })
}

fn controller_of<'a>(
    name: &'a str,
    gic: Option<GicVersion>,
    properties: &NodeProperties<'a>,
) -> Controller<'a> {
    match gic {
        Some(version) => Controller::Gic {
            name,
            version,
            cells: properties.interrupt_cells,
        },
        None => Controller::NotGic,
    }
}

/// The node with `phandle` (or `linux,phandle`), by walking the whole (validated) tree.
fn find_phandle<'a>(
    blob: Blob<'a>,
    phandle: u32,
) -> Result<Option<(&'a str, NodeProperties<'a>)>, BoardError<'a>> {
    let mut cursor = Cursor::new(blob);
    loop {
        match cursor.next_token()? {
            Token::BeginNode(name) => {
                let properties = cursor.node_properties()?;
                if properties.phandle.and_then(u32_value) == Some(phandle) {
                    return Ok(Some((name, properties)));
                }
            }
            Token::End => return Ok(None),
            Token::EndNode | Token::Property { .. } => {}
        }
    }
}

/// Specifiers of `controller` (its properties `properties`) as INTIDs; `None` if it is not a
/// GIC.
pub(crate) fn specifier_intids<'a>(
    node: &'a str,
    controller: &'a str,
    properties: &NodeProperties<'a>,
    specifiers: &'a [u8],
) -> Result<Option<heapless::Vec<u32, MAX_IRQS>>, BoardError<'a>> {
    let Some(version) = gic_version(properties.compatible) else {
        return Ok(None);
    };
    gic_intids(
        node,
        controller,
        version,
        properties.interrupt_cells,
        specifiers,
    )
    .map(Some)
}

/// The node's `interrupts`, specifiers of the GIC `controller`, as INTIDs.
fn gic_intids<'a>(
    node: &'a str,
    controller: &'a str,
    version: GicVersion,
    cells: Option<&'a [u8]>,
    interrupts: &'a [u8],
) -> Result<heapless::Vec<u32, MAX_IRQS>, BoardError<'a>> {
    let bad_cells = BoardError::BadParentProperty {
        node,
        parent: controller,
        property: "#interrupt-cells",
    };
    // GICv2 specifiers are <type number flags>; GICv3 may add a fourth cell (the PPI partition).
    let cells = match (cells.and_then(u32_value).ok_or(bad_cells)?, version) {
        (3, _) => 3,
        (4, GicVersion::V3) => 4,
        _ => return Err(bad_cells),
    };
    let entry = cells * 4;
    if interrupts.len() % entry != 0 {
        return Err(BoardError::BadProperty {
            node,
            property: "interrupts",
        });
    }
    if interrupts.len() / entry > MAX_IRQS {
        return Err(BoardError::TooMany {
            node,
            what: "interrupts",
            limit: MAX_IRQS,
        });
    }
    let mut intids = heapless::Vec::new();
    for specifier in interrupts.chunks_exact(entry) {
        let word = |index: usize| specifier.get(index * 4..index * 4 + 4).and_then(u32_value);
        // Linux adds 32 to an SPI's number and 16 to a PPI's and checks only the INTID that
        // makes (so a "PPI" 0x15 is INTID 37, as ThunderX's UARTs declare it).
        let intid = match (word(0), word(1), version) {
            (Some(0), Some(spi @ 0..=987), _) => 32 + spi,
            (Some(1), Some(ppi @ 0..=1003), _) => 16 + ppi,
            (Some(2), Some(espi @ 0..=1023), GicVersion::V3) => 4096 + espi,
            (Some(3), Some(eppi @ 0..=63), GicVersion::V3) => 1056 + eppi,
            _ => {
                return Err(BoardError::BadProperty {
                    node,
                    property: "interrupts",
                })
            }
        };
        intids.push(intid).map_err(|_| BoardError::TooMany {
            node,
            what: "interrupts",
            limit: MAX_IRQS,
        })?;
    }
    Ok(intids)
}
