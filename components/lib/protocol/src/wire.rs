//! The byte layouts: `#[repr(C)]` structs of explicitly little-endian fields, with no padding
//! and alignment 1, so any byte string of the right length reads as one (the decoder then
//! validates the values). These types are the protocol's definition; `message` gives them
//! meaning.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `"WRDN"` read as a little-endian word.
pub const MAGIC: u32 = u32::from_le_bytes(*b"WRDN");
/// The protocol version this crate speaks.
pub const VERSION: u16 = 1;
/// Bytes of a fixed-size string field (compatible strings, names use [`NAME_BYTES`]).
pub const COMPATIBLE_BYTES: usize = 40;
/// Bytes of a driver name field.
pub const NAME_BYTES: usize = 32;
/// Compatible strings per device.
pub const MAX_COMPATIBLE: usize = 4;
/// Entries per match table.
pub const MAX_MATCH_ENTRIES: usize = 8;
/// MMIO windows per device.
pub const MAX_MMIO: usize = 4;
/// Interrupts per device.
pub const MAX_IRQS: usize = 4;

/// Every message starts with this.
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

/// A device or driver handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct HandleWire {
    /// Slot index.
    pub index: U32,
    /// Slot generation.
    pub generation: U32,
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

/// One MMIO window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct MmioWire {
    /// Address (virtual, as the driver maps it, in a probe; physical in an add-child).
    pub address: U64,
    /// Bytes.
    pub size: U64,
}

/// A device's resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ResourcesWire {
    /// MMIO windows used (0..=4).
    pub mmio_count: u8,
    /// Interrupts used (0..=4).
    pub irq_count: u8,
    /// Zero.
    pub reserved: [u8; 6],
    /// Windows; unused ones zero.
    pub mmio: [MmioWire; MAX_MMIO],
    /// Interrupts: GIC INTIDs (0–1019).
    pub irqs: [U32; MAX_IRQS],
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

/// Body of `PROBE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ProbeWire {
    /// Quote in the reply.
    pub callback: CallbackWire,
    /// The device.
    pub device: HandleWire,
    /// The driver asked to bind it.
    pub driver: HandleWire,
    /// What it is.
    pub match_data: MatchWire,
    /// Its resources as the driver sees them.
    pub resources: ResourcesWire,
}

/// Body of `REMOVE`, `SUSPEND`, `RESUME`, `SHUTDOWN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct DeviceCallbackWire {
    /// Quote in the reply.
    pub callback: CallbackWire,
    /// The device.
    pub device: HandleWire,
}

/// Body of `REGISTER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct RegisterWire {
    /// NUL-padded driver name.
    pub name: [u8; NAME_BYTES],
    /// Entries used (1..=8).
    pub entry_count: u8,
    /// Zero.
    pub reserved: [u8; 7],
    /// The match table; unused entries zero.
    pub entries: [MatchEntryWire; MAX_MATCH_ENTRIES],
}

/// Body of `CALLBACK_DONE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct CallbackDoneWire {
    /// The callback answered.
    pub callback: CallbackWire,
    /// A `Status` code.
    pub status: U16,
    /// Driver-specific detail for `FAILED`, else zero.
    pub detail: U16,
    /// Zero.
    pub reserved: U32,
}

/// Body of `ADD_CHILD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct AddChildWire {
    /// The probe or resume callback in flight that holds the parent's lock.
    pub callback: CallbackWire,
    /// The parent (the callback's device).
    pub parent: HandleWire,
    /// The child's bus.
    pub bus: HandleWire,
    /// What the child is.
    pub match_data: MatchWire,
    /// Its resources (physical).
    pub resources: ResourcesWire,
}

/// Body of `REMOVE_CHILD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct RemoveChildWire {
    /// The callback in flight on the parent.
    pub callback: CallbackWire,
    /// The child.
    pub child: HandleWire,
}

/// Body of `ALIVE`, `RESCAN`, `QUERY_TREE`, `SUBSCRIBE`: one number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct WordWire {
    /// The number (heartbeat sequence, tree cursor, event mask; zero for rescan).
    pub value: U64,
}

/// Body of `UNBIND`, `REMOVE_DEVICE`, `QUERY_DEVICE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct DeviceWire {
    /// The device.
    pub device: HandleWire,
}

/// Body of `BIND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct BindWire {
    /// The device.
    pub device: HandleWire,
    /// The driver.
    pub driver: HandleWire,
}

/// Body of `SUSPEND_DEVICE`, `RESUME_DEVICE`.
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

/// Body of `COMPLETION`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct CompletionWire {
    /// A `Status` code.
    pub status: U16,
    /// Detail for `FAILED`.
    pub detail: U16,
    /// 0: nothing; 1: a device (`handle`, `driver` if bound); 2: a driver (`handle`).
    pub outcome: U32,
    /// The device or driver.
    pub handle: HandleWire,
    /// The device's driver (outcome 1, `has_driver` = 1).
    pub driver: HandleWire,
    /// 1 if `driver` is meaningful.
    pub has_driver: U32,
    /// Devices bound (outcome 2).
    pub bound: U32,
}

/// Body of `EVENT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct EventWire {
    /// An `EventKind` code.
    pub kind: U32,
    /// Zero.
    pub reserved: U32,
    /// The device concerned.
    pub device: HandleWire,
    /// The driver concerned.
    pub driver: HandleWire,
}

/// Body of `DRIVER_INFO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct DriverInfoWire {
    /// The driver.
    pub driver: HandleWire,
    /// The PD it lives in.
    pub pd: U32,
    /// Devices bound to it.
    pub bound: U32,
    /// Its name, NUL-padded.
    pub name: [u8; NAME_BYTES],
}

/// Body of `DEVICE_INFO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct DeviceInfoWire {
    /// The device.
    pub device: HandleWire,
    /// Its parent (`has_parent` = 1).
    pub parent: HandleWire,
    /// Its driver (`has_driver` = 1).
    pub driver: HandleWire,
    /// 1 if `parent` is meaningful.
    pub has_parent: u8,
    /// 1 if `driver` is meaningful.
    pub has_driver: u8,
    /// 0 active, 1 suspended, 2 shut down.
    pub state: u8,
    /// Zero.
    pub reserved: u8,
    /// Zero.
    pub reserved2: U32,
    /// What it is.
    pub match_data: MatchWire,
    /// Its MMIO windows (physical) and GIC INTIDs.
    pub resources: ResourcesWire,
}
