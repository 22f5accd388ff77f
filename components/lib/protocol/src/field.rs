//! The fields messages are made of, each with its wire layout ([`crate::wire`]) and both halves
//! of its codec side by side: [`Field::to_wire`] and [`Field::from_wire`]. A decoder checks every
//! value it can check on its own (a string's characters and padding, a count against its array,
//! a window that wraps, an INTID out of range, an unknown code); what is left — a reserved byte
//! that is not zero — is caught by the message decoder, which re-encodes what it decoded and
//! refuses bytes that differ (the encoding is canonical).

use heapless::String;
use warden_vocabulary::{
    Answer, BusId, CallbackId, DeviceId, DeviceState, DriverId, MatchData, MatchEntry, MatchTable,
    MmioWindow, Outcome, PciAperture, PciHostInfo, PciSpace, PdId, Resources, MAX_INTID,
    MAX_MATCH_ENTRIES,
};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::message::{DecodeError, EventKind, PowerTarget, Status};
use crate::wire::{
    AnswerWire, CallbackWire, HandleWire, MatchEntryWire, MatchTableWire, MatchWire, MmioWire,
    OptionalHandleWire, OptionalPdWire, OutcomeWire, PciApertureWire, PciHostWire, PowerWire,
    ResourcesWire, TagWire,
};

/// A value that travels in a message, and its layout there.
pub trait Field: Sized {
    /// Its bytes on the wire.
    type Wire: FromBytes + IntoBytes + KnownLayout + Immutable + Copy;

    /// The value as it is sent.
    fn to_wire(&self) -> Self::Wire;

    /// The value the bytes hold.
    ///
    /// # Errors
    /// The first [`DecodeError`] found; no input makes it panic.
    fn from_wire(wire: &Self::Wire) -> Result<Self, DecodeError>;
}

macro_rules! number {
    ($value:ty, $wire:ty) => {
        impl Field for $value {
            type Wire = $wire;
            fn to_wire(&self) -> $wire {
                <$wire>::new(*self)
            }
            fn from_wire(wire: &$wire) -> Result<Self, DecodeError> {
                Ok(wire.get())
            }
        }
    };
}
number!(u16, U16);
number!(u32, U32);
number!(u64, U64);

impl Field for PdId {
    type Wire = U32;
    fn to_wire(&self) -> U32 {
        U32::new(self.0)
    }
    fn from_wire(wire: &U32) -> Result<Self, DecodeError> {
        Ok(Self(wire.get()))
    }
}

impl Field for Option<PdId> {
    type Wire = OptionalPdWire;
    fn to_wire(&self) -> OptionalPdWire {
        match self {
            Some(pd) => OptionalPdWire {
                present: U32::new(1),
                pd: U32::new(pd.0),
            },
            None => OptionalPdWire::new_zeroed(),
        }
    }
    fn from_wire(wire: &OptionalPdWire) -> Result<Self, DecodeError> {
        match wire.present.get() {
            0 => Ok(None),
            1 => Ok(Some(PdId(wire.pd.get()))),
            _ => Err(DecodeError::BadFlag),
        }
    }
}

macro_rules! handle {
    ($handle:ty) => {
        impl Field for $handle {
            type Wire = HandleWire;
            fn to_wire(&self) -> HandleWire {
                HandleWire {
                    index: U32::new(self.index()),
                    generation: U32::new(self.generation()),
                }
            }
            fn from_wire(wire: &HandleWire) -> Result<Self, DecodeError> {
                Ok(Self::from_parts(wire.index.get(), wire.generation.get()))
            }
        }

        impl Field for Option<$handle> {
            type Wire = OptionalHandleWire;
            fn to_wire(&self) -> OptionalHandleWire {
                match self {
                    Some(handle) => OptionalHandleWire {
                        present: U32::new(1),
                        handle: handle.to_wire(),
                    },
                    None => OptionalHandleWire::new_zeroed(),
                }
            }
            fn from_wire(wire: &OptionalHandleWire) -> Result<Self, DecodeError> {
                match wire.present.get() {
                    0 => Ok(None),
                    1 => <$handle>::from_wire(&wire.handle).map(Some),
                    _ => Err(DecodeError::BadFlag),
                }
            }
        }
    };
}
handle!(DeviceId);
handle!(DriverId);
handle!(BusId);

impl Field for CallbackId {
    type Wire = CallbackWire;
    fn to_wire(&self) -> CallbackWire {
        CallbackWire {
            operation: U32::new(self.operation()),
            reserved: U32::new(0),
            sequence: U64::new(self.sequence()),
        }
    }
    fn from_wire(wire: &CallbackWire) -> Result<Self, DecodeError> {
        Ok(Self::from_parts(wire.operation.get(), wire.sequence.get()))
    }
}

impl Field for Status {
    type Wire = U16;
    fn to_wire(&self) -> U16 {
        U16::new(*self as u16)
    }
    fn from_wire(wire: &U16) -> Result<Self, DecodeError> {
        Status::from_code(wire.get())
    }
}

/// A driver's answer as a status and its detail (the driver's code, for `Failed`).
#[must_use]
pub fn answer_status(answer: Answer) -> (Status, u16) {
    match answer {
        Answer::Ok => (Status::Ok, 0),
        Answer::NotMine => (Status::NotMine, 0),
        Answer::Defer => (Status::Defer, 0),
        Answer::Failed(detail) => (Status::Failed, detail),
    }
}

impl Field for Answer {
    type Wire = AnswerWire;
    fn to_wire(&self) -> AnswerWire {
        let (status, detail) = answer_status(*self);
        AnswerWire {
            status: status.to_wire(),
            detail: U16::new(detail),
            reserved: U32::new(0),
        }
    }
    fn from_wire(wire: &AnswerWire) -> Result<Self, DecodeError> {
        Ok(match Status::from_wire(&wire.status)? {
            Status::Ok => Self::Ok,
            Status::NotMine => Self::NotMine,
            Status::Defer => Self::Defer,
            Status::Failed => Self::Failed(wire.detail.get()),
            other => return Err(DecodeError::NotAnAnswer(other)),
        })
    }
}

impl Field for DeviceState {
    type Wire = U32;
    fn to_wire(&self) -> U32 {
        U32::new(match self {
            Self::Active => 0,
            Self::Suspended => 1,
            Self::ShutDown => 2,
        })
    }
    fn from_wire(wire: &U32) -> Result<Self, DecodeError> {
        match wire.get() {
            0 => Ok(Self::Active),
            1 => Ok(Self::Suspended),
            2 => Ok(Self::ShutDown),
            other => Err(DecodeError::UnknownState(other)),
        }
    }
}

impl Field for EventKind {
    type Wire = TagWire;
    fn to_wire(&self) -> TagWire {
        TagWire {
            code: U32::new(*self as u32),
            reserved: U32::new(0),
        }
    }
    fn from_wire(wire: &TagWire) -> Result<Self, DecodeError> {
        EventKind::from_code(wire.code.get())
    }
}

impl Field for PowerTarget {
    type Wire = PowerWire;
    fn to_wire(&self) -> PowerWire {
        let (all, device) = match self {
            Self::All => (1, HandleWire::new_zeroed()),
            Self::Device(device) => (0, device.to_wire()),
        };
        PowerWire {
            all: U32::new(all),
            reserved: U32::new(0),
            device,
        }
    }
    fn from_wire(wire: &PowerWire) -> Result<Self, DecodeError> {
        match wire.all.get() {
            0 => DeviceId::from_wire(&wire.device).map(Self::Device),
            1 => Ok(Self::All),
            _ => Err(DecodeError::BadFlag),
        }
    }
}

impl Field for Outcome {
    type Wire = OutcomeWire;
    fn to_wire(&self) -> OutcomeWire {
        let mut wire = OutcomeWire::new_zeroed();
        match self {
            Self::Done => {}
            Self::Device { device, driver } => {
                wire.kind = U32::new(1);
                wire.handle = device.to_wire();
                if let Some(driver) = driver {
                    wire.has_driver = U32::new(1);
                    wire.driver = driver.to_wire();
                }
            }
            Self::Driver { driver, bound } => {
                wire.kind = U32::new(2);
                wire.handle = driver.to_wire();
                wire.bound = U32::new(*bound);
            }
        }
        wire
    }
    fn from_wire(wire: &OutcomeWire) -> Result<Self, DecodeError> {
        Ok(match wire.kind.get() {
            0 => Self::Done,
            1 => Self::Device {
                device: DeviceId::from_wire(&wire.handle)?,
                driver: match wire.has_driver.get() {
                    0 => None,
                    1 => Some(DriverId::from_wire(&wire.driver)?),
                    _ => return Err(DecodeError::BadFlag),
                },
            },
            2 => Self::Driver {
                driver: DriverId::from_wire(&wire.handle)?,
                bound: wire.bound.get(),
            },
            other => return Err(DecodeError::UnknownOutcome(other)),
        })
    }
}

/// A string in a fixed NUL-padded field: non-empty printable ASCII, zero after its end.
impl<const N: usize> Field for String<N> {
    type Wire = [u8; N];
    fn to_wire(&self) -> [u8; N] {
        let mut field = [0u8; N];
        for (to, from) in field.iter_mut().zip(self.as_bytes()) {
            *to = *from;
        }
        field
    }
    fn from_wire(field: &[u8; N]) -> Result<Self, DecodeError> {
        let length = field.iter().position(|byte| *byte == 0).unwrap_or(N);
        let (text, padding) = field.split_at(length);
        if text.is_empty()
            || !text.iter().all(|byte| (0x20..0x7f).contains(byte))
            || padding.iter().any(|byte| *byte != 0)
        {
            return Err(DecodeError::BadString);
        }
        let text = core::str::from_utf8(text).map_err(|_| DecodeError::BadString)?;
        String::try_from(text).map_err(|()| DecodeError::BadString)
    }
}

impl Field for MatchData {
    type Wire = MatchWire;
    fn to_wire(&self) -> MatchWire {
        let mut wire = MatchWire::new_zeroed();
        wire.compatible_count = self.compatible.len() as u8;
        if let Some(id) = self.bus_id {
            wire.has_bus_id = 1;
            wire.bus_id = U32::new(id);
        }
        for (slot, name) in wire.compatible.iter_mut().zip(&self.compatible) {
            *slot = name.to_wire();
        }
        wire
    }
    fn from_wire(wire: &MatchWire) -> Result<Self, DecodeError> {
        let count = usize::from(wire.compatible_count);
        let bus_id = match wire.has_bus_id {
            0 => None,
            1 => Some(wire.bus_id.get()),
            _ => return Err(DecodeError::BadFlag),
        };
        let mut compatible = heapless::Vec::new();
        for field in wire.compatible.get(..count).ok_or(DecodeError::BadCount)? {
            compatible
                .push(String::from_wire(field)?)
                .map_err(|_| DecodeError::BadCount)?;
        }
        Ok(Self { compatible, bus_id })
    }
}

impl Field for MatchTable {
    type Wire = MatchTableWire;
    fn to_wire(&self) -> MatchTableWire {
        let mut wire = MatchTableWire::new_zeroed();
        wire.entry_count = self.entries.len() as u8;
        for (slot, entry) in wire.entries.iter_mut().zip(&self.entries) {
            *slot = match entry {
                MatchEntry::Compatible(name) => MatchEntryWire {
                    kind: 1,
                    reserved: [0; 3],
                    bus_id: U32::new(0),
                    compatible: name.to_wire(),
                },
                MatchEntry::BusId(id) => MatchEntryWire {
                    kind: 2,
                    bus_id: U32::new(*id),
                    ..MatchEntryWire::new_zeroed()
                },
            };
        }
        wire
    }
    fn from_wire(wire: &MatchTableWire) -> Result<Self, DecodeError> {
        let count = usize::from(wire.entry_count);
        if count == 0 || count > MAX_MATCH_ENTRIES {
            return Err(DecodeError::BadCount);
        }
        let mut table = Self::default();
        for entry in wire.entries.get(..count).ok_or(DecodeError::BadCount)? {
            let decoded = match entry.kind {
                1 => MatchEntry::Compatible(String::from_wire(&entry.compatible)?),
                2 => MatchEntry::BusId(entry.bus_id.get()),
                kind => return Err(DecodeError::UnknownMatchKind(kind)),
            };
            table
                .entries
                .push(decoded)
                .map_err(|_| DecodeError::BadCount)?;
        }
        Ok(table)
    }
}

impl Field for Resources {
    type Wire = ResourcesWire;
    fn to_wire(&self) -> ResourcesWire {
        let mut wire = ResourcesWire::new_zeroed();
        wire.mmio_count = self.mmio.len() as u8;
        wire.irq_count = self.irqs.len() as u8;
        wire.has_address = u8::from(self.address.is_some());
        wire.forwarded = self.forwarded;
        wire.address = U64::new(self.address.unwrap_or(0));
        for (slot, window) in wire.mmio.iter_mut().zip(&self.mmio) {
            *slot = MmioWire {
                base: U64::new(window.base),
                size: U64::new(window.size),
            };
        }
        for (slot, irq) in wire.irqs.iter_mut().zip(&self.irqs) {
            *slot = U32::new(*irq);
        }
        wire
    }
    fn from_wire(wire: &ResourcesWire) -> Result<Self, DecodeError> {
        let windows = wire
            .mmio
            .get(..usize::from(wire.mmio_count))
            .ok_or(DecodeError::BadCount)?;
        let irqs = wire
            .irqs
            .get(..usize::from(wire.irq_count))
            .ok_or(DecodeError::BadCount)?;
        if wire.forwarded > wire.mmio_count {
            return Err(DecodeError::BadCount);
        }
        let mut resources = Self {
            address: (wire.has_address != 0).then(|| wire.address.get()),
            forwarded: wire.forwarded,
            ..Self::default()
        };
        for window in windows {
            let window = MmioWindow {
                base: window.base.get(),
                size: window.size.get(),
            };
            if !window.is_valid() {
                return Err(DecodeError::BadWindow);
            }
            resources
                .mmio
                .push(window)
                .map_err(|_| DecodeError::BadCount)?;
        }
        for irq in irqs {
            let irq = irq.get();
            if irq > MAX_INTID {
                return Err(DecodeError::InterruptOutOfRange(irq));
            }
            resources
                .irqs
                .push(irq)
                .map_err(|_| DecodeError::BadCount)?;
        }
        Ok(resources)
    }
}

impl Field for PciHostInfo {
    type Wire = PciHostWire;
    fn to_wire(&self) -> PciHostWire {
        let mut wire = PciHostWire::new_zeroed();
        wire.first_bus = self.first_bus;
        wire.last_bus = self.last_bus;
        wire.aperture_count = self.apertures.len() as u8;
        for (slot, aperture) in wire.apertures.iter_mut().zip(&self.apertures) {
            *slot = PciApertureWire {
                space: U32::new(aperture.space as u32),
                reserved: U32::new(0),
                pci_base: U64::new(aperture.pci_base),
                cpu_base: U64::new(aperture.cpu_base),
                size: U64::new(aperture.size),
            };
        }
        for (slot, pins) in wire.intx.iter_mut().zip(&self.intx) {
            for (slot, &intid) in slot.iter_mut().zip(pins) {
                *slot = U16::new(intid);
            }
        }
        wire
    }
    fn from_wire(wire: &PciHostWire) -> Result<Self, DecodeError> {
        let apertures = wire
            .apertures
            .get(..usize::from(wire.aperture_count))
            .ok_or(DecodeError::BadCount)?;
        let mut host = Self {
            first_bus: wire.first_bus,
            last_bus: wire.last_bus,
            ..Self::default()
        };
        for aperture in apertures {
            let aperture = PciAperture {
                space: PciSpace::from_code(aperture.space.get()).ok_or(DecodeError::BadFlag)?,
                pci_base: aperture.pci_base.get(),
                cpu_base: aperture.cpu_base.get(),
                size: aperture.size.get(),
            };
            if !aperture.is_valid() {
                return Err(DecodeError::BadWindow);
            }
            host.apertures
                .push(aperture)
                .map_err(|_| DecodeError::BadCount)?;
        }
        for (pins, wire) in host.intx.iter_mut().zip(&wire.intx) {
            for (intid, wire) in pins.iter_mut().zip(wire) {
                *intid = wire.get();
                if u32::from(*intid) > MAX_INTID {
                    return Err(DecodeError::InterruptOutOfRange(u32::from(*intid)));
                }
            }
        }
        if host.first_bus > host.last_bus {
            return Err(DecodeError::BadCount);
        }
        Ok(host)
    }
}
