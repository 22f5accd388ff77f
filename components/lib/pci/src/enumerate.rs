//! Enumeration: every function below a host bridge found, bus numbers given to the bridges on
//! the way, BARs sized, and windows assigned from the host bridge's apertures (its `ranges`),
//! bridges' windows included. Nothing assigns them before seL4 starts.
//!
//! It runs in three passes over a table the caller owns (no allocation):
//! 1. **Scan**, depth first: each function's ids, BAR requests, PCI Express port and interrupt
//!    pin; each bridge given the next bus number and scanned behind before its subordinate
//!    number is set. Functions appear in the table parents first.
//! 2. **Size**, children before parents: each bridge's window in each space packs what lies
//!    behind it, largest alignment first (BAR sizes are powers of two, so nothing is wasted
//!    between them).
//! 3. **Place and program**, parents first: the root bus's BARs and windows in the apertures,
//!    each bridge's in its own windows; then the registers are written and decoding is turned
//!    on for each space whose every BAR was placed.
//!
//! Configuration space is input from hardware. Every count is bounded: bus numbers by the
//! `bus-range`, nesting by [`MAX_DEPTH`], functions by the table, capability lists by their
//! 48 possible places. Whatever does not fit is left out with a [`Problem`] naming it, and the
//! rest goes on.

use core::fmt;

use crate::bars::{read_bar, size_bars, write_bar, BarError, BarKind, BarRequest};
use crate::capabilities::{self, CapabilityError};
use crate::config::MULTIFUNCTION;
use crate::config::{command, register, Address, ConfigSpace, HEADER_BRIDGE, HEADER_ENDPOINT};
use crate::express::{self, Express, PortType};
use crate::interrupts::{swizzle, Intx};
pub use warden_vocabulary::{PciAperture, PciSpace};

/// Bridges nested deeper than this are not scanned behind.
pub const MAX_DEPTH: u8 = 8;
/// Problems kept per enumeration (more are counted).
pub const MAX_PROBLEMS: usize = 32;
/// A bridge's I/O window granularity.
const IO_GRANULE: u64 = 0x1000;
/// A bridge's memory windows' granularity.
const MEMORY_GRANULE: u64 = 0x10_0000;
/// What a hot-plug slot's port is given in each space (I/O, memory, prefetchable) even when
/// empty, so that a card plugged in later has room without moving anything: Linux's defaults
/// (`pci=hpiosize`, `hpmmiosize`, `hpmmioprefsize`) rounded to the windows' granularity.
pub const HOTPLUG_RESERVE: [u64; 3] = [IO_GRANULE, 2 * MEMORY_GRANULE, 2 * MEMORY_GRANULE];

/// The granule of a bridge's window for `space`.
const fn granule(space: PciSpace) -> u64 {
    match space {
        PciSpace::Io => IO_GRANULE,
        PciSpace::Memory | PciSpace::Prefetchable => MEMORY_GRANULE,
    }
}

/// The index of `space` in a bridge's windows and in [`HOTPLUG_RESERVE`].
const fn slot(space: PciSpace) -> usize {
    match space {
        PciSpace::Io => 0,
        PciSpace::Memory => 1,
        PciSpace::Prefetchable => 2,
    }
}

/// A BAR and where it was placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bar {
    /// What it asked for.
    pub request: BarRequest,
    /// (bus address, CPU address), once placed.
    pub placed: Option<(u64, u64)>,
    /// Larger than the whole aperture its space goes to: never placed.
    pub refused: bool,
}

/// One of a bridge's windows: what lies behind it needs `size` bytes aligned to `align`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Window {
    /// Bytes (0: the window is closed).
    pub size: u64,
    /// Alignment of its base.
    pub align: u64,
    /// Its first bus address, once placed.
    pub base: Option<u64>,
}

/// A bridge's part: its buses and windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bridge {
    /// The bus behind it (0: not scanned behind).
    pub secondary: u8,
    /// The last bus behind it.
    pub subordinate: u8,
    /// Its I/O, memory and prefetchable windows, by [`PciSpace`].
    pub windows: [Window; 3],
    /// Which windows it has (probed as Linux's `pci_read_bridge_windows` does: a window
    /// whose registers keep nothing written is not there), by [`PciSpace`].
    pub has: [bool; 3],
    /// Its prefetchable window takes 64-bit addresses. Without that, or without the window,
    /// prefetchable BARs behind it go through its memory window (Linux's fallback).
    pub prefetchable_64: bool,
    /// Its I/O window takes 32-bit addresses (else 16).
    pub io_32: bool,
}

impl Bridge {
    /// Its window for `space`.
    #[must_use]
    pub fn window(&self, space: PciSpace) -> &Window {
        let [io, memory, prefetchable] = &self.windows;
        match space {
            PciSpace::Io => io,
            PciSpace::Memory => memory,
            PciSpace::Prefetchable => prefetchable,
        }
    }

    /// Whether it forwards `space` through a window of its own.
    #[must_use]
    pub fn forwards(&self, space: PciSpace) -> bool {
        let [io, memory, prefetchable] = self.has;
        match space {
            PciSpace::Io => io,
            PciSpace::Memory => memory,
            PciSpace::Prefetchable => prefetchable && self.prefetchable_64,
        }
    }

    /// The spaces of BARs that go through its window for `space` (none if it has no such
    /// window; memory takes prefetchable too when the prefetchable window cannot).
    fn spaces_through(&self, space: PciSpace) -> &'static [PciSpace] {
        match space {
            _ if !self.forwards(space) => &[],
            PciSpace::Memory if !self.forwards(PciSpace::Prefetchable) => {
                &[PciSpace::Memory, PciSpace::Prefetchable]
            }
            PciSpace::Io => &[PciSpace::Io],
            PciSpace::Memory => &[PciSpace::Memory],
            PciSpace::Prefetchable => &[PciSpace::Prefetchable],
        }
    }

    fn window_mut(&mut self, space: PciSpace) -> &mut Window {
        let [io, memory, prefetchable] = &mut self.windows;
        match space {
            PciSpace::Io => io,
            PciSpace::Memory => memory,
            PciSpace::Prefetchable => prefetchable,
        }
    }
}

/// One function found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Function {
    /// Where it is.
    pub address: Address,
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Class code: class, subclass, programming interface (24 bits).
    pub class: u32,
    /// Revision ID.
    pub revision: u8,
    /// The bridge above it (its index in the table), none on the root bus.
    pub parent: Option<u16>,
    /// Its BARs, by index.
    pub bars: [Option<Bar>; 6],
    /// A memory BAR that reads wrong ([`Problem::Bar`]): it holds an address nobody placed,
    /// so the function's memory decoding stays off.
    pub broken_bar: bool,
    /// Its interrupt pin (1–4 INTA–INTD), 0 for none.
    pub pin: u8,
    /// Its INTx as the host bridge sees it (after the swizzle of every bridge above).
    pub intx: Option<Intx>,
    /// Its PCI Express capability, if it has one.
    pub express: Option<Express>,
    /// The bridge part of a type 1 function.
    pub bridge: Option<Bridge>,
}

/// What went wrong with one function; it or part of it is left out, the rest goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Problem {
    /// A BAR that reads wrong.
    Bar(BarError),
    /// A BAR with no room in any window (too large, or the window is full).
    BarNoRoom {
        /// The BAR.
        index: u8,
        /// Its size.
        size: u64,
    },
    /// A bridge's window with no room above it: what lies behind it in that space gets none.
    WindowNoRoom {
        /// The space.
        space: PciSpace,
        /// The window's size.
        size: u64,
    },
    /// A bridge with no window of its own for a space its functions need (I/O, say): they get
    /// none.
    NoWindow {
        /// The space.
        space: PciSpace,
    },
    /// A bridge that did not keep the window written to it: that space is not forwarded
    /// (decoding stays off), and what lies behind it in that space is unreachable.
    WindowNotKept {
        /// The space.
        space: PciSpace,
    },
    /// A capability list that stops early.
    Capabilities(CapabilityError),
    /// The function answered, then read as absent before its scan ended.
    Vanished,
    /// A header layout Warden does not scan (CardBus bridges and reserved values).
    UnsupportedHeader {
        /// The header type's layout.
        header: u8,
    },
    /// A bridge found when every bus number of the `bus-range` is given.
    BusNumbersExhausted,
    /// A bridge that did not keep the secondary bus number written to it.
    BusNumberNotTaken {
        /// Written.
        wrote: u8,
        /// Read back.
        read: u8,
    },
    /// A bridge nested more than [`MAX_DEPTH`] deep.
    TooDeep,
    /// More functions than the table holds.
    TableFull,
    /// A BAR that read back another address than the one written: it is not used, and its
    /// space's decoding stays off.
    BarNotKept {
        /// The BAR.
        index: u8,
        /// Written.
        wrote: u64,
        /// Read back.
        read: u64,
    },
    /// An interrupt pin above 4.
    BadInterruptPin {
        /// The value read.
        pin: u8,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Bar(error) => write!(f, "{error}"),
            Problem::BarNoRoom { index, size } => {
                write!(f, "BAR {index} ({size:#x} bytes) fits no window: left unassigned")
            }
            Problem::WindowNoRoom { space, size } => write!(
                f,
                "its {space} window ({size:#x} bytes) fits nowhere above it: nothing behind it gets {space}"
            ),
            Problem::NoWindow { space } => write!(
                f,
                "a bridge with no {space} window: nothing behind it gets {space}"
            ),
            Problem::WindowNotKept { space } => write!(
                f,
                "a bridge that did not keep its {space} window: {space} behind it is off"
            ),
            Problem::Capabilities(error) => write!(f, "{error}: the rest of the list is ignored"),
            Problem::Vanished => f.write_str("answered, then vanished during its scan"),
            Problem::UnsupportedHeader { header } => {
                write!(f, "header type {header} is not scanned")
            }
            Problem::BusNumbersExhausted => {
                f.write_str("a bridge with no bus number left in the bus-range: not scanned behind")
            }
            Problem::BusNumberNotTaken { wrote, read } => write!(
                f,
                "a bridge that reads secondary bus {read} after {wrote} was written: not scanned behind"
            ),
            Problem::TooDeep => write!(
                f,
                "a bridge nested more than {MAX_DEPTH} deep: not scanned behind"
            ),
            Problem::TableFull => f.write_str("more functions than the table holds: left out"),
            Problem::BarNotKept { index, wrote, read } => write!(
                f,
                "BAR {index} reads {read:#x} after {wrote:#x} was written: not used"
            ),
            Problem::BadInterruptPin { pin } => {
                write!(f, "interrupt pin {pin} is not INTA-INTD: no INTx")
            }
        }
    }
}

/// A problem and the function it is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Found {
    /// The function.
    pub address: Address,
    /// What is wrong.
    pub problem: Problem,
}

/// What an enumeration found: up to `N` functions, parents before children.
#[derive(Debug, Default)]
pub struct Table<const N: usize> {
    /// The functions, in scan order.
    pub functions: heapless::Vec<Function, N>,
    /// What went wrong, in order.
    pub problems: heapless::Vec<Found, MAX_PROBLEMS>,
    /// Problems beyond [`MAX_PROBLEMS`].
    pub problems_dropped: u32,
    /// The last bus number given (the first bus when no bridge was found).
    pub last_bus: u8,
    /// Apertures not used: overlapping an earlier one, or with an end no address can name.
    pub apertures_ignored: u8,
}

impl<const N: usize> Table<N> {
    /// An empty table.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            functions: heapless::Vec::new(),
            problems: heapless::Vec::new(),
            problems_dropped: 0,
            last_bus: 0,
            apertures_ignored: 0,
        }
    }

    /// Empties the table in place (a table is large: it is not rebuilt on the stack).
    fn clear(&mut self) {
        self.functions.clear();
        self.problems.clear();
        self.problems_dropped = 0;
        self.last_bus = 0;
        self.apertures_ignored = 0;
    }

    fn problem(&mut self, address: Address, problem: Problem) {
        if self.problems.push(Found { address, problem }).is_err() {
            self.problems_dropped = self.problems_dropped.saturating_add(1);
        }
    }

    fn bridge_mut(&mut self, index: usize) -> Option<&mut Bridge> {
        self.functions.get_mut(index)?.bridge.as_mut()
    }
}

/// Enumerates the hierarchy below a host bridge whose `bus-range` is `first_bus..=last_bus`,
/// assigns BARs and bridge windows from `apertures`, and programs them. `table` is cleared
/// first. `last_bus` should be no more than the ECAM window holds ([`Ecam::buses`]): buses
/// beyond it read as empty. Apertures that overlap an earlier one, or whose end overflows,
/// are not used ([`Table::apertures_ignored`]).
///
/// [`Ecam::buses`]: crate::Ecam::buses
pub fn enumerate<C: ConfigSpace, const N: usize>(
    config: &C,
    first_bus: u8,
    last_bus: u8,
    apertures: &[PciAperture],
    table: &mut Table<N>,
) {
    run(config, first_bus, last_bus, false, 0, apertures, table);
}

/// Enumerates what is behind the port at `port` of `boot` (a card just plugged into its slot)
/// into `table`, with the port's bus numbers and inside the windows it was given at boot
/// (a hot-plug port's are reserved, [`HOTPLUG_RESERVE`]). In `table` the card's functions
/// have no parent: they are on the port's secondary bus; [`route_intx`] gives their INTx at
/// the host bridge. Nothing if `port` is no bridge that was scanned behind.
pub fn enumerate_behind<C: ConfigSpace, const N: usize, const M: usize>(
    config: &C,
    boot: &Table<N>,
    port: usize,
    apertures: &[PciAperture],
    table: &mut Table<M>,
) {
    table.clear();
    let Some(function) = boot.functions.get(port) else {
        return;
    };
    let Some(bridge) = function.bridge.filter(|bridge| bridge.secondary != 0) else {
        return;
    };
    let link = function.express.is_some_and(|express| {
        matches!(
            express.port_type,
            PortType::RootPort | PortType::DownstreamPort
        )
    });
    // The port's open windows, as apertures at the CPU addresses the host bridge maps.
    let mut windows: heapless::Vec<PciAperture, 3> = heapless::Vec::new();
    for space in PciSpace::ALL {
        let window = bridge.window(space);
        let Some(base) = window.base else {
            continue;
        };
        // The aperture this window was placed in: its space's at the root.
        let Some(outer) = root_aperture(apertures, space)
            .filter(|outer| outer.pci_base <= base && base < outer.end())
        else {
            continue;
        };
        let _ = windows.push(PciAperture {
            space,
            pci_base: base,
            cpu_base: outer.cpu_base + (base - outer.pci_base),
            size: window.size,
        });
    }
    let depth = depth_of(boot, port);
    run(
        config,
        bridge.secondary,
        bridge.subordinate,
        link,
        depth,
        &windows,
        table,
    );
}

/// How many bridges deep the function at `index` is (0 on the root bus).
fn depth_of<const N: usize>(table: &Table<N>, index: usize) -> u8 {
    let mut depth = 0;
    let mut parent = table
        .functions
        .get(index)
        .and_then(|function| function.parent);
    while let Some(above) = parent.and_then(|parent| table.functions.get(usize::from(parent))) {
        depth += 1;
        parent = above.parent;
    }
    depth
}

/// The INTx at the host bridge of `intx`, an interrupt on the secondary bus of the port at
/// `port` of `boot` (a plugged card's, from [`enumerate_behind`]): swizzled by the port and
/// every bridge above it.
#[must_use]
pub fn route_intx<const N: usize>(boot: &Table<N>, port: usize, intx: Intx) -> Intx {
    let mut intx = intx;
    let mut at = boot.functions.get(port);
    while let Some(bridge) = at {
        intx = Intx {
            device: bridge.address.device,
            function: bridge.address.function,
            pin: swizzle(intx.pin, intx.device),
        };
        at = bridge
            .parent
            .and_then(|parent| boot.functions.get(usize::from(parent)));
    }
    intx
}

/// The three passes over the bus `bus` (its devices all of them, or device 0 on a `link`),
/// giving bus numbers up to `last_bus`, placing in `apertures`.
fn run<C: ConfigSpace, const N: usize>(
    config: &C,
    bus: u8,
    last_bus: u8,
    link: bool,
    depth: u8,
    apertures: &[PciAperture],
    table: &mut Table<N>,
) {
    table.clear();
    table.last_bus = bus;
    // Apertures that overlap an earlier one (in bus addresses) would give overlapping
    // placements; ones whose end overflows name no address.
    let mut usable: heapless::Vec<PciAperture, 8> = heapless::Vec::new();
    for aperture in apertures {
        let sound = aperture.pci_base.checked_add(aperture.size).is_some()
            && aperture.cpu_base.checked_add(aperture.size).is_some()
            && aperture.size != 0;
        let overlaps = usable
            .iter()
            .any(|earlier| aperture.pci_base < earlier.end() && earlier.pci_base < aperture.end());
        if !sound || overlaps || usable.push(*aperture).is_err() {
            table.apertures_ignored = table.apertures_ignored.saturating_add(1);
        }
    }
    let apertures = usable.as_slice();
    let mut scan = Scan {
        config,
        table,
        next_bus: u16::from(bus) + 1,
        last_bus,
    };
    scan.bus(bus, None, depth, link);
    compute_intx(table);
    size_windows(table, apertures);
    place_root(table, apertures);
    program(config, table);
}

/// One function's problems while it is scanned (a function has at most 6 BAR problems, one
/// capability problem and one pin problem).
#[derive(Default)]
struct Problems {
    list: heapless::Vec<Problem, 8>,
}

impl Problems {
    fn push(&mut self, problem: Problem) {
        let _ = self.list.push(problem);
    }
}

struct Scan<'a, C, const N: usize> {
    config: &'a C,
    table: &'a mut Table<N>,
    next_bus: u16,
    last_bus: u8,
}

fn present<C: ConfigSpace>(config: &C, address: Address) -> bool {
    !matches!(config.read16(address, register::VENDOR_ID), 0xFFFF | 0)
}

/// The functions that answer on `bus` among its first `devices` device numbers, with their
/// header types: function 0 of each device, and functions 1–7 of a multi-function one. It is
/// 1 KiB, held for the scan of each bus level ([`MAX_DEPTH`] + 1 at most).
fn functions_on<C: ConfigSpace>(
    config: &C,
    bus: u8,
    devices: u8,
) -> heapless::Vec<(Address, u8), 256> {
    let mut found = heapless::Vec::new();
    for device in 0..devices {
        for function in 0..8 {
            let Some(address) = Address::new(bus, device, function) else {
                continue;
            };
            if !present(config, address) {
                if function == 0 {
                    break;
                }
                continue;
            }
            let header = config.read8(address, register::HEADER_TYPE);
            // 32 devices of 8 functions: the vector holds every one.
            let _ = found.push((address, header));
            if function == 0 && header & MULTIFUNCTION == 0 {
                break;
            }
        }
    }
    found
}

impl<C: ConfigSpace, const N: usize> Scan<'_, C, N> {
    fn bus(&mut self, bus: u8, parent: Option<u16>, depth: u8, only_device_zero: bool) {
        let found = functions_on(self.config, bus, if only_device_zero { 1 } else { 32 });
        // Every bridge on the bus forwards nothing before any is given numbers: bus numbers
        // left by firmware (or an earlier run) on a sibling not yet scanned could claim the
        // buses being numbered now (Linux's pass 0 does the same).
        for (address, header) in &found {
            if header & !MULTIFUNCTION == HEADER_BRIDGE {
                self.config.write8(*address, register::SECONDARY_BUS, 0);
                self.config.write8(*address, register::SUBORDINATE_BUS, 0);
            }
        }
        for (address, _) in found {
            self.function(address, parent, depth);
        }
    }

    fn function(&mut self, address: Address, parent: Option<u16>, depth: u8) {
        let config = self.config;
        let vendor = config.read16(address, register::VENDOR_ID);
        let device = config.read16(address, register::DEVICE_ID);
        let class_revision = config.read32(address, register::REVISION);
        let header = config.read8(address, register::HEADER_TYPE) & !MULTIFUNCTION;
        // Decoding off while the BARs are sized and until they hold their new addresses; and
        // for good on a function that is not kept.
        let old_command = config.read16(address, register::COMMAND);
        config.write16(
            address,
            register::COMMAND,
            old_command & !(command::IO | command::MEMORY | command::BUS_MASTER),
        );
        let (bar_count, rom) = match header {
            HEADER_ENDPOINT => (6, register::ROM),
            HEADER_BRIDGE => (2, register::BRIDGE_ROM),
            _ => {
                self.table
                    .problem(address, Problem::UnsupportedHeader { header });
                return;
            }
        };
        // An expansion ROM that firmware left enabled would decode where it points.
        config.write32(address, rom, 0);
        // Kept until the function is known to be still there: one that vanished has only that.
        let mut problems = Problems::default();
        let mut bars = [None; 6];
        let mut broken_bar = false;
        for (slot, request) in bars.iter_mut().zip(size_bars(config, address, bar_count)) {
            match request {
                Some(Ok(request)) => {
                    *slot = Some(Bar {
                        request,
                        placed: None,
                        refused: false,
                    });
                }
                Some(Err(error)) => {
                    broken_bar = true;
                    problems.push(Problem::Bar(error));
                }
                None => {}
            }
        }
        let mut express = None;
        for capability in capabilities::capabilities(config, address) {
            match capability {
                Ok(capability) if capability.id == capabilities::id::EXPRESS => {
                    express = Some(express::read(config, address, capability.offset));
                }
                Ok(_) => {}
                Err(error) => problems.push(Problem::Capabilities(error)),
            }
        }
        let mut pin = config.read8(address, register::INTERRUPT_PIN);
        if pin > 4 {
            problems.push(Problem::BadInterruptPin { pin });
            pin = 0;
        }
        // A function that went away while it was read is not kept half-read.
        if !present(config, address) {
            self.table.problem(address, Problem::Vanished);
            return;
        }
        for problem in problems.list {
            self.table.problem(address, problem);
        }
        let bridge = (header == HEADER_BRIDGE).then(|| probe_windows(config, address));
        let index = self.table.functions.len();
        let entry = Function {
            address,
            vendor,
            device,
            class: class_revision >> 8,
            revision: (class_revision & 0xFF) as u8,
            parent,
            bars,
            broken_bar,
            pin,
            intx: None,
            express,
            bridge,
        };
        if self.table.functions.push(entry).is_err() {
            self.table.problem(address, Problem::TableFull);
            return;
        }
        if bridge.is_some() {
            let links = express.is_some_and(|express| {
                matches!(
                    express.port_type,
                    PortType::RootPort | PortType::DownstreamPort
                )
            });
            self.bridge(address, index, depth, links);
        }
    }

    /// Gives the bridge at `index` its bus numbers and scans behind it.
    fn bridge(&mut self, address: Address, index: usize, depth: u8, link: bool) {
        let config = self.config;
        // Closed until scanned: forwards nothing.
        config.write8(address, register::SECONDARY_BUS, 0);
        config.write8(address, register::SUBORDINATE_BUS, 0);
        if depth >= MAX_DEPTH {
            self.table.problem(address, Problem::TooDeep);
            return;
        }
        let Some(secondary) = u8::try_from(self.next_bus)
            .ok()
            .filter(|bus| *bus <= self.last_bus)
        else {
            self.table.problem(address, Problem::BusNumbersExhausted);
            return;
        };
        config.write8(address, register::PRIMARY_BUS, address.bus);
        config.write8(address, register::SECONDARY_BUS, secondary);
        // Everything up to the last bus forwarded while the buses behind are numbered.
        config.write8(address, register::SUBORDINATE_BUS, self.last_bus);
        let read = config.read8(address, register::SECONDARY_BUS);
        if read != secondary {
            config.write8(address, register::SECONDARY_BUS, 0);
            config.write8(address, register::SUBORDINATE_BUS, 0);
            self.table.problem(
                address,
                Problem::BusNumberNotTaken {
                    wrote: secondary,
                    read,
                },
            );
            return;
        }
        self.next_bus += 1;
        self.table.last_bus = self.table.last_bus.max(secondary);
        let parent = u16::try_from(index).ok();
        // A PCI Express link has one device on it (device 0); others would be aliases.
        self.bus(secondary, parent, depth + 1, link);
        let subordinate = self.table.last_bus.max(secondary);
        config.write8(address, register::SUBORDINATE_BUS, subordinate);
        if let Some(bridge) = self.table.bridge_mut(index) {
            bridge.secondary = secondary;
            bridge.subordinate = subordinate;
        }
    }
}

/// Which windows the bridge at `address` has: each base/limit pair written with all its
/// address bits and read back (then closed again).
fn probe_windows<C: ConfigSpace>(config: &C, address: Address) -> Bridge {
    config.write16(address, register::IO_BASE, 0xF0F0);
    let io = config.read16(address, register::IO_BASE);
    config.write16(address, register::IO_BASE, 0x00F0);
    config.write32(address, register::MEMORY_BASE, 0xFFF0_FFF0);
    let memory = config.read32(address, register::MEMORY_BASE);
    config.write32(address, register::MEMORY_BASE, 0x0000_FFF0);
    config.write32(address, register::PREFETCHABLE_BASE, 0xFFF0_FFF0);
    let prefetchable = config.read32(address, register::PREFETCHABLE_BASE);
    config.write32(address, register::PREFETCHABLE_BASE, 0x0000_FFF0);
    Bridge {
        secondary: 0,
        subordinate: 0,
        windows: [Window::default(); 3],
        has: [
            io & 0xF0F0 != 0,
            memory & 0xFFF0_FFF0 != 0,
            prefetchable & 0xFFF0_FFF0 != 0,
        ],
        prefetchable_64: prefetchable & 0xF == 1,
        io_32: io & 0xF == 1,
    }
}

/// Each function's INTx at the host bridge: swizzled at every bridge on the way up.
fn compute_intx<const N: usize>(table: &mut Table<N>) {
    for index in 0..table.functions.len() {
        let Some(function) = table.functions.get(index) else {
            continue;
        };
        if function.pin == 0 {
            continue;
        }
        let mut intx = Intx {
            device: function.address.device,
            function: function.address.function,
            pin: function.pin,
        };
        let mut parent = function.parent;
        // Parents come before children in the table, so this walk ends.
        while let Some(above) = parent.and_then(|parent| table.functions.get(usize::from(parent))) {
            intx = Intx {
                device: above.address.device,
                function: above.address.function,
                pin: swizzle(intx.pin, intx.device),
            };
            parent = above.parent;
        }
        if let Some(function) = table.functions.get_mut(index) {
            function.intx = Some(intx);
        }
    }
}

/// The aperture a space's root-bus items go to: its own, else (prefetchable) the memory one.
/// The aperture that serves `space` at the root: the one enumeration places that space's
/// BARs and windows in.
#[must_use]
pub fn root_aperture(apertures: &[PciAperture], space: PciSpace) -> Option<&PciAperture> {
    let find = |wanted: PciSpace| apertures.iter().find(|aperture| aperture.space == wanted);
    match space {
        PciSpace::Prefetchable => find(PciSpace::Prefetchable).or_else(|| find(PciSpace::Memory)),
        // A 64-bit range wholly below 4 GiB serves 32-bit BARs too (some boards have only
        // that, as Linux places them).
        PciSpace::Memory => find(PciSpace::Memory)
            .or_else(|| find(PciSpace::Prefetchable).filter(|aperture| aperture.end() <= FOUR_GIB)),
        PciSpace::Io => find(PciSpace::Io),
    }
}

/// The CPU address of `size` bytes at bus address `pci` of `space`, as enumeration placed
/// them: through the aperture that serves that space ([`root_aperture`]); `None` if they do
/// not lie in it.
#[must_use]
pub fn cpu_address(apertures: &[PciAperture], space: PciSpace, pci: u64, size: u64) -> Option<u64> {
    let aperture = root_aperture(apertures, space)?;
    let end = pci.checked_add(size)?;
    (pci >= aperture.pci_base && end <= aperture.end())
        .then(|| aperture.cpu_base + (pci - aperture.pci_base))
}

/// Where 32-bit windows end.
const FOUR_GIB: u64 = 1 << 32;
/// The lowest I/O address given out (Linux's `PCIBIOS_MIN_IO`): legacy ports live below.
const MIN_IO: u64 = 0x1000;

/// One thing to place on a bus: a BAR or a bridge's window.
#[derive(Clone, Copy)]
enum Item {
    Bar { function: usize, bar: usize },
    Window { function: usize, space: PciSpace },
}

/// Places per function: its six BARs, then its three windows.
const SLOTS: usize = 9;

/// The item in `slot` of function `index` if it is in one of `spaces` and aligned to `align`,
/// with its size.
fn item_at<const N: usize>(
    table: &Table<N>,
    index: usize,
    slot: usize,
    spaces: &[PciSpace],
    align: u64,
) -> Option<(Item, u64)> {
    let function = table.functions.get(index)?;
    if let Some(bar) = function.bars.get(slot) {
        let bar = bar.as_ref().filter(|bar| !bar.refused)?;
        let request = bar.request;
        return (request.size == align && spaces.contains(&request.space())).then_some((
            Item::Bar {
                function: index,
                bar: slot,
            },
            request.size,
        ));
    }
    let space = *PciSpace::ALL.get(slot.checked_sub(function.bars.len())?)?;
    let window = function.bridge.as_ref()?.window(space);
    (window.size != 0 && window.align == align && spaces.contains(&space)).then_some((
        Item::Window {
            function: index,
            space,
        },
        window.size,
    ))
}

/// Calls `each` with every item in `spaces` on the bus behind `parent`, largest alignment
/// first (in table order within one alignment), with its size and alignment. `each` may change
/// the table, but not which items there are.
fn for_each_item<const N: usize>(
    table: &mut Table<N>,
    parent: Option<u16>,
    spaces: &[PciSpace],
    mut each: impl FnMut(&mut Table<N>, Item, u64, u64),
) {
    for shift in (0..64).rev() {
        let align = 1u64 << shift;
        for index in 0..table.functions.len() {
            if table.functions.get(index).map(|function| function.parent) != Some(parent) {
                continue;
            }
            for slot in 0..SLOTS {
                if let Some((item, size)) = item_at(table, index, slot, spaces, align) {
                    each(table, item, size, align);
                }
            }
        }
    }
}

fn align_up(value: u64, align: u64) -> Option<u64> {
    let mask = align.checked_sub(1)?;
    value.checked_add(mask).map(|value| value & !mask)
}

/// Pass 2: each bridge's windows from what lies behind it, deepest bridges first.
fn size_windows<const N: usize>(table: &mut Table<N>, apertures: &[PciAperture]) {
    // A BAR larger than its whole aperture can never be placed: refused now, so that it does
    // not make its bridge's window too large for its siblings too.
    for index in 0..table.functions.len() {
        for bar in 0..6 {
            let Some(function) = table.functions.get_mut(index) else {
                continue;
            };
            let address = function.address;
            let Some(slot) = function.bars.get_mut(bar) else {
                continue;
            };
            let Some(bar) = slot.as_mut() else {
                continue;
            };
            let request = bar.request;
            let room = root_aperture(apertures, request.space()).map_or(0, |a| a.size);
            if request.size > room {
                bar.refused = true;
                table.problem(
                    address,
                    Problem::BarNoRoom {
                        index: request.index,
                        size: request.size,
                    },
                );
            }
        }
    }
    for index in (0..table.functions.len()).rev() {
        if table
            .functions
            .get(index)
            .is_none_or(|function| function.bridge.is_none())
        {
            continue;
        }
        let parent = u16::try_from(index).ok();
        let Some(bridge) = table
            .functions
            .get(index)
            .and_then(|function| function.bridge)
        else {
            continue;
        };
        // A space its functions need that no window of the bridge takes: named, once.
        for space in PciSpace::ALL {
            let taken = PciSpace::ALL
                .iter()
                .any(|window| bridge.spaces_through(*window).contains(&space));
            let mut needed = false;
            for_each_item(table, parent, &[space], |_, _, _, _| needed = true);
            if needed && !taken {
                if let Some(address) = table.functions.get(index).map(|function| function.address) {
                    table.problem(address, Problem::NoWindow { space });
                }
            }
        }
        for space in PciSpace::ALL {
            let through = bridge.spaces_through(space);
            if through.is_empty() {
                continue;
            }
            let mut end = Some(0u64);
            let mut largest = granule(space);
            for_each_item(table, parent, through, |_, _, size, align| {
                end = end
                    .and_then(|end| align_up(end, align))
                    .and_then(|start| start.checked_add(size));
                largest = largest.max(align);
            });
            let size = end.and_then(|end| align_up(end, granule(space)));
            // An empty hot-plug slot's port keeps room for the card to come (in the windows
            // it has).
            let hot_plug = table
                .functions
                .get(index)
                .and_then(|function| function.express)
                .and_then(|express| express.slot)
                .is_some_and(|slot| slot.hot_plug());
            let reserve = if hot_plug {
                HOTPLUG_RESERVE.get(slot(space)).copied().unwrap_or(0)
            } else {
                0
            };
            let size = size.map(|size| size.max(reserve));
            if let Some(bridge) = table.bridge_mut(index) {
                *bridge.window_mut(space) = Window {
                    size: size.unwrap_or(u64::MAX),
                    align: largest,
                    base: None,
                };
            }
        }
    }
}

/// Pass 3: the root bus's items in the apertures, then each bridge's behind it.
fn place_root<const N: usize>(table: &mut Table<N>, apertures: &[PciAperture]) {
    for aperture in apertures {
        let spaces: heapless::Vec<PciSpace, 3> = PciSpace::ALL
            .into_iter()
            .filter(|space| root_aperture(apertures, *space) == Some(aperture))
            .collect();
        let start = if aperture.space == PciSpace::Io {
            aperture.pci_base.max(MIN_IO)
        } else {
            aperture.pci_base
        };
        place_bus(table, None, &spaces, aperture, start, aperture.end());
    }
}

/// Places the items of `spaces` on the bus behind `parent` in `start..end` (bus addresses) of
/// `aperture`, and recursively behind each bridge placed (at most [`MAX_DEPTH`] deep).
fn place_bus<const N: usize>(
    table: &mut Table<N>,
    parent: Option<u16>,
    spaces: &[PciSpace],
    aperture: &PciAperture,
    start: u64,
    end: u64,
) {
    let mut cursor = start;
    for_each_item(table, parent, spaces, |table, item, size, align| {
        let placed = align_up(cursor, align)
            .and_then(|base| base.checked_add(size).map(|limit| (base, limit)))
            .filter(|(_, limit)| *limit <= end && window_fits(table, item, *limit));
        let Some((base, limit)) = placed else {
            let (function, problem) = match item {
                Item::Bar { function, bar } => {
                    let index = u8::try_from(bar).unwrap_or(u8::MAX);
                    (function, Problem::BarNoRoom { index, size })
                }
                Item::Window { function, space } => {
                    (function, Problem::WindowNoRoom { space, size })
                }
            };
            if let Some(address) = table.functions.get(function).map(|f| f.address) {
                table.problem(address, problem);
            }
            return;
        };
        cursor = limit;
        match item {
            Item::Bar { function, bar } => {
                let cpu = aperture.cpu_base + (base - aperture.pci_base);
                if let Some(Some(bar)) = table
                    .functions
                    .get_mut(function)
                    .and_then(|function| function.bars.get_mut(bar))
                {
                    bar.placed = Some((base, cpu));
                }
            }
            Item::Window { function, space } => {
                let mut through: &[PciSpace] = &[];
                if let Some(bridge) = table.bridge_mut(function) {
                    bridge.window_mut(space).base = Some(base);
                    through = bridge.spaces_through(space);
                }
                place_bus(
                    table,
                    u16::try_from(function).ok(),
                    through,
                    aperture,
                    base,
                    limit,
                );
            }
        }
    });
}

/// Whether a window may take `base..limit`: a memory window has 32-bit registers, a
/// prefetchable one too unless it says it takes 64 bits, an I/O one 16 unless it says 32.
fn window_fits<const N: usize>(table: &Table<N>, item: Item, limit: u64) -> bool {
    match item {
        Item::Bar { .. } => true,
        Item::Window { function, space } => {
            let Some(bridge) = table.functions.get(function).and_then(|f| f.bridge) else {
                return false;
            };
            match space {
                PciSpace::Io => limit <= if bridge.io_32 { FOUR_GIB } else { 0x1_0000 },
                PciSpace::Memory => limit <= FOUR_GIB,
                PciSpace::Prefetchable => bridge.prefetchable_64 || limit <= FOUR_GIB,
            }
        }
    }
}

/// Writes every placement into the registers and turns decoding on for each space whose
/// every BAR holds its placement (a BAR that does not keep what was written is unplaced).
fn program<C: ConfigSpace, const N: usize>(config: &C, table: &mut Table<N>) {
    for index in 0..table.functions.len() {
        let Some(function) = table.functions.get(index).copied() else {
            continue;
        };
        let address = function.address;
        let mut io_ok = true;
        let mut memory_ok = !function.broken_bar;
        let mut io_any = false;
        let mut memory_any = false;
        for (slot, bar) in function.bars.iter().enumerate() {
            let Some(bar) = bar else {
                continue;
            };
            let io = bar.request.kind == BarKind::Io;
            if bar.placed.is_none() {
                // Unplaced (no room, or too large): cleared, so that it names no address its
                // driver could take for a placement (its space's decoding stays off).
                write_bar(config, address, &bar.request, 0);
            }
            let kept = bar.placed.and_then(|(bus_address, _)| {
                write_bar(config, address, &bar.request, bus_address);
                let read = read_bar(config, address, &bar.request);
                if read == bus_address {
                    return Some(());
                }
                table.problem(
                    address,
                    Problem::BarNotKept {
                        index: bar.request.index,
                        wrote: bus_address,
                        read,
                    },
                );
                if let Some(Some(bar)) = table
                    .functions
                    .get_mut(index)
                    .map(|function| function.bars.get_mut(slot).map(|bar| bar.as_mut()))
                    .and_then(|bar| bar)
                {
                    bar.placed = None;
                }
                None
            });
            match (kept, io) {
                (Some(()), true) => io_any = true,
                (Some(()), false) => memory_any = true,
                (None, true) => io_ok = false,
                (None, false) => memory_ok = false,
            }
        }
        let mut enable = 0;
        if let Some(bridge) = &function.bridge {
            program_windows(config, address, bridge);
            // A window the bridge did not keep forwards elsewhere: that space stays off.
            let held = read_windows(config, address);
            for (space, held) in PciSpace::ALL.into_iter().zip(held) {
                let window = bridge.window(space);
                let Some(base) = window.base.filter(|_| window.size != 0) else {
                    continue;
                };
                if held != (base, base + (window.size - 1)) {
                    table.problem(address, Problem::WindowNotKept { space });
                    match space {
                        PciSpace::Io => io_ok = false,
                        PciSpace::Memory | PciSpace::Prefetchable => memory_ok = false,
                    }
                }
            }
            let open = |space: PciSpace| bridge.window(space).base.is_some();
            io_any |= open(PciSpace::Io);
            memory_any |= open(PciSpace::Memory) || open(PciSpace::Prefetchable);
            enable |= command::BUS_MASTER;
        }
        if io_any && io_ok {
            enable |= command::IO;
        }
        if memory_any && memory_ok {
            enable |= command::MEMORY;
        }
        let old = config.read16(address, register::COMMAND);
        config.write16(address, register::COMMAND, old | enable);
    }
}

fn program_windows<C: ConfigSpace>(config: &C, address: Address, bridge: &Bridge) {
    let window = |space: PciSpace| {
        let window = *bridge.window(space);
        window
            .base
            .filter(|_| window.size != 0)
            .map(|base| (base, base + (window.size - 1)))
    };
    match window(PciSpace::Io) {
        Some((base, limit)) => {
            config.write8(address, register::IO_BASE, ((base >> 8) & 0xF0) as u8);
            config.write8(address, register::IO_LIMIT, ((limit >> 8) & 0xF0) as u8);
            config.write16(address, register::IO_BASE_UPPER, (base >> 16) as u16);
            config.write16(address, register::IO_LIMIT_UPPER, (limit >> 16) as u16);
        }
        None => {
            config.write8(address, register::IO_BASE, 0xF0);
            config.write8(address, register::IO_LIMIT, 0);
            config.write16(address, register::IO_BASE_UPPER, 0);
            config.write16(address, register::IO_LIMIT_UPPER, 0);
        }
    }
    // A closed memory window has its base above its limit.
    let closed = (0xFFF0_0000, 0);
    let (base, limit) = window(PciSpace::Memory).unwrap_or(closed);
    memory_window(config, address, register::MEMORY_BASE, base, limit);
    let (base, limit) = window(PciSpace::Prefetchable).unwrap_or(closed);
    memory_window(config, address, register::PREFETCHABLE_BASE, base, limit);
    config.write32(
        address,
        register::PREFETCHABLE_BASE_UPPER,
        (base >> 32) as u32,
    );
    config.write32(
        address,
        register::PREFETCHABLE_LIMIT_UPPER,
        (limit >> 32) as u32,
    );
}

/// The bridge's windows as its registers hold them: (base, last byte) for I/O, memory and
/// prefetchable memory.
fn read_windows<C: ConfigSpace>(config: &C, address: Address) -> [(u64, u64); 3] {
    let upper16 = |at| u64::from(config.read16(address, at)) << 16;
    let upper32 = |at| u64::from(config.read32(address, at)) << 32;
    let io_base = upper16(register::IO_BASE_UPPER)
        | (u64::from(config.read8(address, register::IO_BASE) & 0xF0) << 8);
    let io_limit = upper16(register::IO_LIMIT_UPPER)
        | (u64::from(config.read8(address, register::IO_LIMIT) & 0xF0) << 8)
        | 0xFFF;
    let memory = |at| u64::from(config.read16(address, at) & 0xFFF0) << 16;
    [
        (io_base, io_limit),
        (
            memory(register::MEMORY_BASE),
            memory(register::MEMORY_LIMIT) | 0xF_FFFF,
        ),
        (
            upper32(register::PREFETCHABLE_BASE_UPPER) | memory(register::PREFETCHABLE_BASE),
            upper32(register::PREFETCHABLE_LIMIT_UPPER)
                | memory(register::PREFETCHABLE_LIMIT)
                | 0xF_FFFF,
        ),
    ]
}

/// A memory window's base and limit registers (the limit's 16 bits follow the base's): address
/// bits 31:20 in bits 15:4.
fn memory_window<C: ConfigSpace>(config: &C, address: Address, at: u16, base: u64, limit: u64) {
    config.write16(address, at, ((base >> 16) & 0xFFF0) as u16);
    config.write16(address, at + 2, ((limit >> 16) & 0xFFF0) as u16);
}
