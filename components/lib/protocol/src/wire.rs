//! The byte layouts of the fields messages are made of: `#[repr(C)]` structs of explicitly
//! little-endian fields, with no padding and alignment 1, so any byte string of the right length
//! reads as one (the field's decoder in [`crate::field`] then validates the values). A message's
//! body is its fields' layouts one after another, as the message table in [`crate::message`]
//! lists them.

use warden_vocabulary::{
    COMPATIBLE_BYTES, MAX_COMPATIBLE, MAX_IRQS, MAX_MATCH_ENTRIES, MAX_MMIO, MAX_PCI_APERTURES,
    PCI_DEVICES,
};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `"WRDN"` read as a little-endian word.
pub const MAGIC: u32 = u32::from_le_bytes(*b"WRDN");
/// The protocol version this crate speaks (3: heartbeats, a registration's deadline, driver
/// PDs' supervision for clients, a device's lost PD; 4: a device's address on a bus that is
/// not memory-mapped, 8 windows and 16 interrupts per device; 5: forwarded windows in a
/// device's resources, a PCI host bridge's description for its driver).
pub const VERSION: u16 = 5;

/// Every message on a ring starts with this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: U32,
    /// [`VERSION`].
    pub version: U16,
    /// What the body is.
    pub opcode: U16,
    /// Chosen by the sender; a completion quotes it.
    pub request_id: U32,
    /// Bytes of body that follow.
    pub length: U32,
}

/// A device, driver or bus handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct HandleWire {
    /// Slot index.
    pub index: U32,
    /// Slot generation.
    pub generation: U32,
}

/// A handle that may be absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct OptionalHandleWire {
    /// 1 if `handle` is meaningful, else 0 (and `handle` zero).
    pub present: U32,
    /// The handle.
    pub handle: HandleWire,
}

/// A PD id that may be absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct OptionalPdWire {
    /// 1 if `pd` is meaningful, else 0 (and `pd` zero).
    pub present: U32,
    /// The PD.
    pub pd: U32,
}

/// A callback's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct CallbackWire {
    /// The manager operation that sent it.
    pub operation: U32,
    /// Zero.
    pub reserved: U32,
    /// Its sequence number.
    pub sequence: U64,
}

/// A code with room beside it (event kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct TagWire {
    /// The code.
    pub code: U32,
    /// Zero.
    pub reserved: U32,
}

/// A driver's answer to a callback: a status code (0 Ok, 1 NotMine, 2 Defer, 9 Failed) and the
/// driver's detail for Failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct AnswerWire {
    /// A `Status` code.
    pub status: U16,
    /// Driver-specific detail for `Failed`, else zero.
    pub detail: U16,
    /// Zero.
    pub reserved: U32,
}

/// What a device is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct MatchWire {
    /// Compatible strings used (0..=4).
    pub compatible_count: u8,
    /// 1 if `bus_id` is meaningful, else 0.
    pub has_bus_id: u8,
    /// Zero.
    pub reserved: [u8; 2],
    /// Bus-specific id.
    pub bus_id: U32,
    /// NUL-padded strings; unused ones all zero.
    pub compatible: [[u8; COMPATIBLE_BYTES]; MAX_COMPATIBLE],
}

/// One match-table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct MatchEntryWire {
    /// 1: compatible string; 2: bus id.
    pub kind: u8,
    /// Zero.
    pub reserved: [u8; 3],
    /// The bus id (kind 2), else zero.
    pub bus_id: U32,
    /// The string (kind 1), else zero.
    pub compatible: [u8; COMPATIBLE_BYTES],
}

/// A driver's match table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct MatchTableWire {
    /// Entries used (1..=8).
    pub entry_count: u8,
    /// Zero.
    pub reserved: [u8; 7],
    /// The entries; unused ones zero.
    pub entries: [MatchEntryWire; MAX_MATCH_ENTRIES],
}

/// One MMIO window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct MmioWire {
    /// Physical base address.
    pub base: U64,
    /// Bytes.
    pub size: U64,
}

/// A device's resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ResourcesWire {
    /// MMIO windows used (0..=8).
    pub mmio_count: u8,
    /// Interrupts used (0..=16).
    pub irq_count: u8,
    /// 1 if `address` is meaningful (a device on a bus that is not memory-mapped), else 0.
    pub has_address: u8,
    /// How many of the last windows are address space the device forwards (a bridge's
    /// apertures), not its registers (0..=`mmio_count`).
    pub forwarded: u8,
    /// Zero.
    pub reserved: [u8; 4],
    /// The device's address on its bus (`has_address` 1), else zero.
    pub address: U64,
    /// Windows; unused ones zero.
    pub mmio: [MmioWire; MAX_MMIO],
    /// Interrupts: GIC INTIDs (0–1019); unused ones zero.
    pub irqs: [U32; MAX_IRQS],
}

/// One PCI aperture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct PciApertureWire {
    /// 1 I/O, 2 memory, 3 prefetchable memory.
    pub space: U32,
    /// Zero.
    pub reserved: U32,
    /// Its first bus address.
    pub pci_base: U64,
    /// Its first CPU-physical address.
    pub cpu_base: U64,
    /// Bytes.
    pub size: U64,
}

/// A PCI host bridge as its driver is told it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct PciHostWire {
    /// The first bus.
    pub first_bus: u8,
    /// The last bus.
    pub last_bus: u8,
    /// Apertures used (0..=6).
    pub aperture_count: u8,
    /// Zero.
    pub reserved: [u8; 5],
    /// Apertures; unused ones zero.
    pub apertures: [PciApertureWire; MAX_PCI_APERTURES],
    /// INTx routes of the root bus: device × pin (INTA–INTD), GIC INTIDs, 0 for none.
    pub intx: [[U16; 4]; PCI_DEVICES],
}

/// The target of a suspend or resume request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct PowerWire {
    /// 1: the whole system (`device` zero); 0: `device` and its subtree.
    pub all: U32,
    /// Zero.
    pub reserved: U32,
    /// The device.
    pub device: HandleWire,
}

/// What a completed request produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct OutcomeWire {
    /// 0: nothing; 1: a device (`handle`, `driver` if bound); 2: a driver (`handle`, `bound`).
    pub kind: U32,
    /// The device or driver.
    pub handle: HandleWire,
    /// The device's driver (kind 1, `has_driver` = 1).
    pub driver: HandleWire,
    /// 1 if `driver` is meaningful.
    pub has_driver: U32,
    /// Devices bound (kind 2).
    pub bound: U32,
}
