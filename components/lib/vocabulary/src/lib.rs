//! The words every part of Warden shares, each defined once: the manager's core keeps its state
//! in them, the protocol carries them between PDs, the board crate describes the board's devices
//! with them, and the drivers and clients receive them. There is one name per concept and no
//! function whose only work is converting one spelling of it into another.
//!
//! | concept | type |
//! |---|---|
//! | a device, a driver, a bus (slot index and generation) | [`DeviceId`], [`DriverId`], [`BusId`] |
//! | a protection domain, a request, a driver callback | [`PdId`], [`RequestId`], [`CallbackId`] |
//! | what a device is; what a driver claims | [`MatchData`]; [`MatchEntry`], [`MatchTable`] |
//! | a device's physical MMIO window; its resources: windows, interrupts (GIC INTIDs), an address on a bus that is not memory-mapped | [`MmioWindow`]; [`Resources`], borrowed [`ResourcesRef`] |
//! | a driver's answer to a callback; what a request produced | [`Answer`]; [`Outcome`] |
//! | a device's power state | [`DeviceState`] |
//! | a PCI host bridge as its driver is told it: buses, apertures, INTx routes | [`PciHostInfo`], [`PciAperture`], [`PciSpace`] |
//! | what a system description gives a driver PD (device memory, interrupts) | [`Grant`] |
//! | a point in time (the system timer's nanoseconds) | [`Instant`] |
//! | capacities | [`COMPATIBLE_BYTES`], [`NAME_BYTES`], [`MAX_COMPATIBLE`], [`MAX_MATCH_ENTRIES`], [`MAX_MMIO`], [`MAX_IRQS`], [`MAX_INTID`] |
//!
//! Everything is plain data with bounded sizes: `no_std`, no allocation, no `unsafe`.
#![no_std]
#![forbid(unsafe_code)]

mod handle;
mod matching;
mod pci;
mod resources;
mod time;

pub use handle::{BusId, CallbackId, DeviceId, DriverId, PdId, RequestId};
pub use matching::{MatchData, MatchEntry, MatchTable};
pub use pci::{PciAperture, PciHostInfo, PciSpace, MAX_PCI_APERTURES, PCI_DEVICES};
pub use resources::{
    Grant, MmioWindow, Resources, ResourcesRef, MAX_GRANT_IRQS, MAX_GRANT_WINDOWS,
};
pub use time::Instant;

/// Longest device-tree `compatible` string, in bytes.
pub const COMPATIBLE_BYTES: usize = 40;
/// Longest driver or bus name, in bytes.
pub const NAME_BYTES: usize = 32;
/// Most `compatible` strings one device carries.
pub const MAX_COMPATIBLE: usize = 4;
/// Most entries in one driver's match table.
pub const MAX_MATCH_ENTRIES: usize = 8;
/// Most MMIO windows one device carries: a GICv3 has up to six `reg` entries (distributor,
/// redistributor regions, the CPU, hypervisor and virtual CPU interfaces); hardly any other
/// device tree node has more than four. What lies past it is reported for that node by the
/// board reader, never cut silently.
pub const MAX_MMIO: usize = 8;
/// Most interrupts one device carries (a DMA controller or an Ethernet MAC with per-queue
/// interrupts has up to 16; the board reader reports a node with more).
pub const MAX_IRQS: usize = 16;
/// Highest GIC interrupt id a device may have (1020–1023 are special).
pub const MAX_INTID: u32 = 1019;

/// One device-tree `compatible` string, e.g. `arm,pl011`.
pub type Compatible = heapless::String<COMPATIBLE_BYTES>;
/// A driver or bus name.
pub type Name = heapless::String<NAME_BYTES>;

/// A driver's answer to a callback (Linux's probe return values, as values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Answer {
    /// Done: for a probe, the driver is now bound.
    Ok,
    /// Probe only: not my device after all (Linux `-ENODEV`); try the next driver.
    NotMine,
    /// Probe only: a resource is not ready yet (Linux `-EPROBE_DEFER`); park the device and
    /// retry after the next successful bind.
    Defer,
    /// Failed with a driver-specific code.
    Failed(u16),
}

/// What a successful request produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Done, nothing to report.
    Done,
    /// The device exists; `driver` is the driver bound to it, if any.
    Device {
        /// The device.
        device: DeviceId,
        /// Its driver.
        driver: Option<DriverId>,
    },
    /// The driver is registered and was probed against its bus; `bound` devices accepted it.
    Driver {
        /// The driver.
        driver: DriverId,
        /// How many devices the registration bound it to.
        bound: u32,
    },
}

/// A device's power state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceState {
    /// Running.
    Active,
    /// Suspended (by a device or system suspend).
    Suspended,
    /// Shut down; stays so.
    ShutDown,
}
