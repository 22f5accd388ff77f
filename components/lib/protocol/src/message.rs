//! Typed messages and their bounds-checked encoding: every decoder validates every field and
//! returns a typed error; the encoding is canonical (a byte string that decodes re-encodes to
//! itself), so a peer cannot smuggle meaning into reserved bytes or string padding.

use heapless::{String, Vec};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::wire::{
    AddChildWire, BindWire, CallbackDoneWire, CallbackWire, CompletionWire, DeviceCallbackWire,
    DeviceInfoWire, DeviceWire, DriverInfoWire, EventWire, HandleWire, Header, MatchEntryWire,
    MatchWire, MmioWire, PowerWire, ProbeWire, RegisterWire, RemoveChildWire, ResourcesWire,
    WordWire, COMPATIBLE_BYTES, MAGIC, MAX_COMPATIBLE, MAX_IRQS, MAX_MATCH_ENTRIES, MAX_MMIO,
    NAME_BYTES, VERSION,
};

/// Highest channel id a Microkit PD has (ids are 0–61; channels and IRQs share them).
pub const MAX_CHANNEL: u32 = 61;
/// Highest GIC interrupt id a device may have (1020–1023 are special).
pub const MAX_INTID: u32 = 1019;

/// A device or driver handle: (index, generation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handle {
    /// Slot index.
    pub index: u32,
    /// Slot generation.
    pub generation: u32,
}

/// A callback's id, quoted in the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallbackId {
    /// The manager operation.
    pub operation: u32,
    /// The sequence number.
    pub sequence: u64,
}

/// A device-tree compatible string.
pub type Compatible = String<COMPATIBLE_BYTES>;
/// A driver name.
pub type DriverName = String<NAME_BYTES>;

/// What a device is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MatchData {
    /// Compatible strings, most specific first.
    pub compatible: Vec<Compatible, MAX_COMPATIBLE>,
    /// Bus-specific id.
    pub bus_id: Option<u32>,
}

/// One entry of a driver's match table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatchEntry {
    /// A compatible string.
    Compatible(Compatible),
    /// A bus id.
    BusId(u32),
}

/// One MMIO window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioWindow {
    /// Base address.
    pub address: u64,
    /// Bytes (non-zero; the window does not wrap around the address space).
    pub size: u64,
}

/// A device's resources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// MMIO windows.
    pub mmio: Vec<MmioWindow, MAX_MMIO>,
    /// Interrupts as GIC INTIDs (SPI n is 32 + n), 0–1019.
    pub irqs: Vec<u32, MAX_IRQS>,
}

/// Status codes on the wire. 0 is success; every failure has its own non-zero code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Status {
    /// Done.
    Ok = 0,
    /// Probe: not my device.
    NotMine = 1,
    /// Probe: a resource is not ready; retry later.
    Defer = 2,
    /// The object is busy (already bound, locked…).
    Busy = 3,
    /// The handle names an object that no longer exists.
    StaleHandle = 4,
    /// No such object (never existed, or out of range).
    NoSuchObject = 5,
    /// The sender may not do this.
    NotPermitted = 6,
    /// The message failed validation.
    Malformed = 7,
    /// A table or queue is full.
    NoSpace = 8,
    /// Failed with a driver-specific detail code.
    Failed = 9,
    /// The driver's PD died.
    Died = 10,
    /// The system is shut down.
    ShutDown = 11,
    /// No matching driver, or the driver does not match.
    NoMatch = 12,
    /// The parent is suspended.
    ParentSuspended = 13,
}

impl Status {
    /// The status with this code.
    ///
    /// # Errors
    /// [`DecodeError::UnknownStatus`].
    pub fn from_code(code: u16) -> Result<Self, DecodeError> {
        Ok(match code {
            0 => Self::Ok,
            1 => Self::NotMine,
            2 => Self::Defer,
            3 => Self::Busy,
            4 => Self::StaleHandle,
            5 => Self::NoSuchObject,
            6 => Self::NotPermitted,
            7 => Self::Malformed,
            8 => Self::NoSpace,
            9 => Self::Failed,
            10 => Self::Died,
            11 => Self::ShutDown,
            12 => Self::NoMatch,
            13 => Self::ParentSuspended,
            _ => return Err(DecodeError::UnknownStatus(code)),
        })
    }
}

/// What a completed request produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to report.
    None,
    /// A device, with its driver if bound.
    Device {
        /// The device.
        device: Handle,
        /// Its driver.
        driver: Option<Handle>,
    },
    /// A driver and how many devices it was bound to.
    Driver {
        /// The driver.
        driver: Handle,
        /// Devices bound.
        bound: u32,
    },
}

/// Events a subscribed client receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum EventKind {
    /// A device was added.
    DeviceAdded = 1,
    /// A device was removed.
    DeviceRemoved = 2,
    /// A device was bound to a driver.
    Bound = 3,
    /// A device was unbound.
    Unbound = 4,
    /// A device was suspended.
    Suspended = 5,
    /// A device was resumed.
    Resumed = 6,
    /// A driver's PD died.
    DriverDied = 7,
}

/// The target of a suspend or resume request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerTarget {
    /// The whole system.
    All,
    /// A device and its subtree.
    Device(Handle),
}

/// A device's power state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceState {
    /// Running.
    Active,
    /// Suspended.
    Suspended,
    /// Shut down.
    ShutDown,
}

/// Every message of the protocol. See the crate documentation for the table of opcodes,
/// directions, replies and errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Manager → driver: bind this device.
    Probe {
        /// Quote in the reply.
        callback: CallbackId,
        /// The device.
        device: Handle,
        /// The driver (the receiving PD may host several).
        driver: Handle,
        /// What the device is.
        match_data: MatchData,
        /// MMIO windows at physical addresses and GIC INTIDs, as the device tree gives them:
        /// the driver finds them in the maps and IRQs its system description grants it.
        resources: Resources,
    },
    /// Manager → driver: let go of the device.
    Remove {
        /// Quote in the reply.
        callback: CallbackId,
        /// The device.
        device: Handle,
    },
    /// Manager → driver: suspend the device.
    Suspend {
        /// Quote in the reply.
        callback: CallbackId,
        /// The device.
        device: Handle,
    },
    /// Manager → driver: resume the device.
    Resume {
        /// Quote in the reply.
        callback: CallbackId,
        /// The device.
        device: Handle,
    },
    /// Manager → driver: quiesce the device for power-off.
    Shutdown {
        /// Quote in the reply.
        callback: CallbackId,
        /// The device.
        device: Handle,
    },
    /// Driver → manager: register a driver living in the sender's PD.
    Register {
        /// Its name.
        name: DriverName,
        /// The devices it claims (at least one entry).
        match_table: Vec<MatchEntry, MAX_MATCH_ENTRIES>,
    },
    /// Driver → manager: a callback finished.
    CallbackDone {
        /// The callback.
        callback: CallbackId,
        /// `Ok`, `NotMine`, `Defer` or `Failed`.
        status: Status,
        /// Driver-specific detail for `Failed`.
        detail: u16,
    },
    /// Driver → manager (`__device_add`): add a child under the device of the probe or resume
    /// callback in flight.
    AddChild {
        /// The callback that holds the parent's lock.
        callback: CallbackId,
        /// The parent.
        parent: Handle,
        /// The child's bus.
        bus: Handle,
        /// What the child is.
        match_data: MatchData,
        /// Its resources (physical addresses, GIC INTIDs).
        resources: Resources,
    },
    /// Driver → manager (`__device_del`): remove an idle child of the callback's device.
    RemoveChild {
        /// The callback in flight on the parent.
        callback: CallbackId,
        /// The child.
        child: Handle,
    },
    /// Driver → manager: heartbeat.
    Alive {
        /// Increases with every heartbeat.
        sequence: u64,
    },
    /// Client → manager: bind a device to a driver.
    Bind {
        /// The device.
        device: Handle,
        /// The driver.
        driver: Handle,
    },
    /// Client → manager: unbind a device.
    Unbind {
        /// The device.
        device: Handle,
    },
    /// Client → manager: remove a device and its subtree.
    RemoveDevice {
        /// The device.
        device: Handle,
    },
    /// Client → manager: probe every unbound device again.
    Rescan,
    /// Client → manager: suspend.
    SuspendDevice(PowerTarget),
    /// Client → manager: resume.
    ResumeDevice(PowerTarget),
    /// Client → manager: describe a device.
    QueryDevice {
        /// The device.
        device: Handle,
    },
    /// Client → manager: describe the tree, one device per reply, from `cursor`.
    QueryTree {
        /// Where to continue (0 to start).
        cursor: u64,
    },
    /// Client → manager: describe a driver.
    QueryDriver {
        /// The driver.
        driver: Handle,
    },
    /// Client → manager: send me events whose kind bit (1 << kind) is set in `mask`.
    Subscribe {
        /// The event mask.
        mask: u64,
    },
    /// Manager → client: a request completed.
    Completion {
        /// Its status.
        status: Status,
        /// Detail for `Failed`.
        detail: u16,
        /// What it produced.
        outcome: Outcome,
    },
    /// Manager → client: something happened.
    Event {
        /// What.
        kind: EventKind,
        /// The device concerned.
        device: Handle,
        /// The driver concerned.
        driver: Handle,
    },
    /// Manager → client: a device, in reply to `QueryDevice` or `QueryTree`.
    DeviceInfo {
        /// The device.
        device: Handle,
        /// Its parent.
        parent: Option<Handle>,
        /// Its driver.
        driver: Option<Handle>,
        /// Its power state.
        state: DeviceState,
        /// What it is.
        match_data: MatchData,
        /// Its MMIO windows (physical) and GIC INTIDs.
        resources: Resources,
    },
    /// Manager → client: a driver, in reply to `QueryDriver`.
    DriverInfo {
        /// The driver.
        driver: Handle,
        /// The PD it lives in.
        pd: u32,
        /// Devices bound to it.
        bound: u32,
        /// Its name.
        name: DriverName,
    },
}

/// Opcodes. The high byte is the direction: 0x00 manager → driver, 0x01 driver → manager,
/// 0x02 client → manager, 0x03 manager → client.
pub mod opcode {
    /// [`super::Message::Probe`].
    pub const PROBE: u16 = 0x0001;
    /// [`super::Message::Remove`].
    pub const REMOVE: u16 = 0x0002;
    /// [`super::Message::Suspend`].
    pub const SUSPEND: u16 = 0x0003;
    /// [`super::Message::Resume`].
    pub const RESUME: u16 = 0x0004;
    /// [`super::Message::Shutdown`].
    pub const SHUTDOWN: u16 = 0x0005;
    /// [`super::Message::Register`].
    pub const REGISTER: u16 = 0x0101;
    /// [`super::Message::CallbackDone`].
    pub const CALLBACK_DONE: u16 = 0x0102;
    /// [`super::Message::AddChild`].
    pub const ADD_CHILD: u16 = 0x0103;
    /// [`super::Message::RemoveChild`].
    pub const REMOVE_CHILD: u16 = 0x0104;
    /// [`super::Message::Alive`].
    pub const ALIVE: u16 = 0x0105;
    /// [`super::Message::Bind`].
    pub const BIND: u16 = 0x0201;
    /// [`super::Message::Unbind`].
    pub const UNBIND: u16 = 0x0202;
    /// [`super::Message::RemoveDevice`].
    pub const REMOVE_DEVICE: u16 = 0x0203;
    /// [`super::Message::Rescan`].
    pub const RESCAN: u16 = 0x0204;
    /// [`super::Message::SuspendDevice`].
    pub const SUSPEND_DEVICE: u16 = 0x0205;
    /// [`super::Message::ResumeDevice`].
    pub const RESUME_DEVICE: u16 = 0x0206;
    /// [`super::Message::QueryDevice`].
    pub const QUERY_DEVICE: u16 = 0x0207;
    /// [`super::Message::QueryTree`].
    pub const QUERY_TREE: u16 = 0x0208;
    /// [`super::Message::Subscribe`].
    pub const SUBSCRIBE: u16 = 0x0209;
    /// [`super::Message::QueryDriver`].
    pub const QUERY_DRIVER: u16 = 0x020a;
    /// [`super::Message::Completion`].
    pub const COMPLETION: u16 = 0x0301;
    /// [`super::Message::Event`].
    pub const EVENT: u16 = 0x0302;
    /// [`super::Message::DeviceInfo`].
    pub const DEVICE_INFO: u16 = 0x0303;
    /// [`super::Message::DriverInfo`].
    pub const DRIVER_INFO: u16 = 0x0304;
}

/// Who sends a message to whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the device manager to a driver PD.
    ManagerToDriver,
    /// From a driver PD to the device manager.
    DriverToManager,
    /// From a client or administrator PD to the device manager.
    ClientToManager,
    /// From the device manager to a client.
    ManagerToClient,
}

/// Why bytes did not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than a header.
    TooShort {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// Not [`MAGIC`](crate::wire::MAGIC).
    BadMagic(u32),
    /// A protocol version this crate does not speak.
    BadVersion(u16),
    /// An opcode this crate does not know.
    UnknownOpcode(u16),
    /// The body's length is not the opcode's.
    BadLength {
        /// The opcode.
        opcode: u16,
        /// Its body length.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// A reserved field, unused entry or padding is not zero.
    ReservedNotZero,
    /// A string is empty, not printable ASCII, or has bytes after its terminating NUL.
    BadString,
    /// A count exceeds its array.
    BadCount,
    /// A flag is neither 0 nor 1.
    BadFlag,
    /// An interrupt that is not a GIC INTID a device can have (0–1019).
    InterruptOutOfRange(u32),
    /// An MMIO window that is empty or wraps around.
    BadWindow,
    /// An unknown status code.
    UnknownStatus(u16),
    /// An unknown event kind.
    UnknownEventKind(u32),
    /// An unknown completion outcome.
    UnknownOutcome(u32),
    /// An unknown device state.
    UnknownState(u8),
    /// An unknown match-entry kind.
    UnknownMatchKind(u8),
    /// Not a message that may travel this way (e.g. a probe as a protected procedure call).
    WrongTransport(u16),
}

/// Why a message did not encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// Not a message that may travel this way.
    WrongTransport(u16),
}

const HEADER_BYTES: usize = core::mem::size_of::<Header>();

impl Message {
    /// The message's opcode.
    #[must_use]
    pub fn opcode(&self) -> u16 {
        match self {
            Self::Probe { .. } => opcode::PROBE,
            Self::Remove { .. } => opcode::REMOVE,
            Self::Suspend { .. } => opcode::SUSPEND,
            Self::Resume { .. } => opcode::RESUME,
            Self::Shutdown { .. } => opcode::SHUTDOWN,
            Self::Register { .. } => opcode::REGISTER,
            Self::CallbackDone { .. } => opcode::CALLBACK_DONE,
            Self::AddChild { .. } => opcode::ADD_CHILD,
            Self::RemoveChild { .. } => opcode::REMOVE_CHILD,
            Self::Alive { .. } => opcode::ALIVE,
            Self::Bind { .. } => opcode::BIND,
            Self::Unbind { .. } => opcode::UNBIND,
            Self::RemoveDevice { .. } => opcode::REMOVE_DEVICE,
            Self::Rescan => opcode::RESCAN,
            Self::SuspendDevice(_) => opcode::SUSPEND_DEVICE,
            Self::ResumeDevice(_) => opcode::RESUME_DEVICE,
            Self::QueryDevice { .. } => opcode::QUERY_DEVICE,
            Self::QueryTree { .. } => opcode::QUERY_TREE,
            Self::Subscribe { .. } => opcode::SUBSCRIBE,
            Self::QueryDriver { .. } => opcode::QUERY_DRIVER,
            Self::Completion { .. } => opcode::COMPLETION,
            Self::Event { .. } => opcode::EVENT,
            Self::DeviceInfo { .. } => opcode::DEVICE_INFO,
            Self::DriverInfo { .. } => opcode::DRIVER_INFO,
        }
    }

    /// Who sends it to whom.
    #[must_use]
    pub fn direction(&self) -> Direction {
        match self.opcode() >> 8 {
            0 => Direction::ManagerToDriver,
            1 => Direction::DriverToManager,
            2 => Direction::ClientToManager,
            _ => Direction::ManagerToClient,
        }
    }
}

/// Encodes `message` with its header into `out`; returns the bytes written.
///
/// # Errors
/// [`EncodeError::BufferTooSmall`].
pub fn encode(request_id: u32, message: &Message, out: &mut [u8]) -> Result<usize, EncodeError> {
    let (header_bytes, body) = match out.split_at_mut_checked(HEADER_BYTES) {
        Some(parts) => parts,
        None => {
            return Err(EncodeError::BufferTooSmall {
                needed: HEADER_BYTES,
            })
        }
    };
    let length = encode_body(message, body)?;
    let header = Header {
        magic: U32::new(MAGIC),
        version: U16::new(VERSION),
        opcode: U16::new(message.opcode()),
        request_id: U32::new(request_id),
        length: U32::new(length as u32),
    };
    header_bytes.copy_from_slice(header.as_bytes());
    Ok(HEADER_BYTES + length)
}

/// Decodes one message (header and body, nothing after it); returns its request id and the
/// message.
///
/// # Errors
/// Any [`DecodeError`]; no input makes it panic.
pub fn decode(bytes: &[u8]) -> Result<(u32, Message), DecodeError> {
    let Ok((header, body)) = Header::read_from_prefix(bytes) else {
        return Err(DecodeError::TooShort {
            needed: HEADER_BYTES,
            got: bytes.len(),
        });
    };
    if header.magic.get() != MAGIC {
        return Err(DecodeError::BadMagic(header.magic.get()));
    }
    if header.version.get() != VERSION {
        return Err(DecodeError::BadVersion(header.version.get()));
    }
    let opcode = header.opcode.get();
    if header.length.get() as usize != body.len() {
        return Err(DecodeError::BadLength {
            opcode,
            expected: header.length.get() as usize,
            got: body.len(),
        });
    }
    Ok((header.request_id.get(), decode_body(opcode, body)?))
}

fn write<T: IntoBytes + Immutable>(value: &T, out: &mut [u8]) -> Result<usize, EncodeError> {
    let bytes = value.as_bytes();
    match out.get_mut(..bytes.len()) {
        Some(target) => {
            target.copy_from_slice(bytes);
            Ok(bytes.len())
        }
        None => Err(EncodeError::BufferTooSmall {
            needed: bytes.len(),
        }),
    }
}

fn read<T: FromBytes + KnownLayout + Immutable>(
    opcode: u16,
    body: &[u8],
) -> Result<T, DecodeError> {
    T::read_from_bytes(body).map_err(|_| DecodeError::BadLength {
        opcode,
        expected: core::mem::size_of::<T>(),
        got: body.len(),
    })
}

/// The body length of an opcode, if it is known.
#[must_use]
pub fn body_length(opcode: u16) -> Option<usize> {
    use core::mem::size_of;
    Some(match opcode {
        opcode::PROBE => size_of::<ProbeWire>(),
        opcode::REMOVE | opcode::SUSPEND | opcode::RESUME | opcode::SHUTDOWN => {
            size_of::<DeviceCallbackWire>()
        }
        opcode::REGISTER => size_of::<RegisterWire>(),
        opcode::CALLBACK_DONE => size_of::<CallbackDoneWire>(),
        opcode::ADD_CHILD => size_of::<AddChildWire>(),
        opcode::REMOVE_CHILD => size_of::<RemoveChildWire>(),
        opcode::ALIVE | opcode::RESCAN | opcode::QUERY_TREE | opcode::SUBSCRIBE => {
            size_of::<WordWire>()
        }
        opcode::BIND => size_of::<BindWire>(),
        opcode::UNBIND | opcode::REMOVE_DEVICE | opcode::QUERY_DEVICE | opcode::QUERY_DRIVER => {
            size_of::<DeviceWire>()
        }
        opcode::SUSPEND_DEVICE | opcode::RESUME_DEVICE => size_of::<PowerWire>(),
        opcode::COMPLETION => size_of::<CompletionWire>(),
        opcode::EVENT => size_of::<EventWire>(),
        opcode::DEVICE_INFO => size_of::<DeviceInfoWire>(),
        opcode::DRIVER_INFO => size_of::<DriverInfoWire>(),
        _ => return None,
    })
}

/// Encodes the body only (the part a protected procedure call carries).
pub(crate) fn encode_body(message: &Message, out: &mut [u8]) -> Result<usize, EncodeError> {
    match message {
        Message::Probe {
            callback,
            device,
            driver,
            match_data,
            resources,
        } => write(
            &ProbeWire {
                callback: callback_wire(*callback),
                device: handle_wire(*device),
                driver: handle_wire(*driver),
                match_data: match_wire(match_data),
                resources: resources_wire(resources),
            },
            out,
        ),
        Message::Remove { callback, device }
        | Message::Suspend { callback, device }
        | Message::Resume { callback, device }
        | Message::Shutdown { callback, device } => write(
            &DeviceCallbackWire {
                callback: callback_wire(*callback),
                device: handle_wire(*device),
            },
            out,
        ),
        Message::Register { name, match_table } => {
            let mut wire = RegisterWire::new_zeroed();
            wire.name = fixed(name);
            wire.entry_count = match_table.len() as u8;
            for (slot, entry) in wire.entries.iter_mut().zip(match_table) {
                *slot = match entry {
                    MatchEntry::Compatible(name) => MatchEntryWire {
                        kind: 1,
                        reserved: [0; 3],
                        bus_id: U32::new(0),
                        compatible: fixed(name),
                    },
                    MatchEntry::BusId(id) => MatchEntryWire {
                        kind: 2,
                        reserved: [0; 3],
                        bus_id: U32::new(*id),
                        compatible: [0; COMPATIBLE_BYTES],
                    },
                };
            }
            write(&wire, out)
        }
        Message::CallbackDone {
            callback,
            status,
            detail,
        } => write(
            &CallbackDoneWire {
                callback: callback_wire(*callback),
                status: U16::new(*status as u16),
                detail: U16::new(*detail),
                reserved: U32::new(0),
            },
            out,
        ),
        Message::AddChild {
            callback,
            parent,
            bus,
            match_data,
            resources,
        } => write(
            &AddChildWire {
                callback: callback_wire(*callback),
                parent: handle_wire(*parent),
                bus: handle_wire(*bus),
                match_data: match_wire(match_data),
                resources: resources_wire(resources),
            },
            out,
        ),
        Message::RemoveChild { callback, child } => write(
            &RemoveChildWire {
                callback: callback_wire(*callback),
                child: handle_wire(*child),
            },
            out,
        ),
        Message::Alive { sequence: value }
        | Message::QueryTree { cursor: value }
        | Message::Subscribe { mask: value } => write(
            &WordWire {
                value: U64::new(*value),
            },
            out,
        ),
        Message::Rescan => write(&WordWire { value: U64::new(0) }, out),
        Message::Bind { device, driver } => write(
            &BindWire {
                device: handle_wire(*device),
                driver: handle_wire(*driver),
            },
            out,
        ),
        Message::Unbind { device }
        | Message::RemoveDevice { device }
        | Message::QueryDevice { device }
        // A driver handle travels in the same body.
        | Message::QueryDriver { driver: device } => write(
            &DeviceWire {
                device: handle_wire(*device),
            },
            out,
        ),
        Message::SuspendDevice(target) | Message::ResumeDevice(target) => {
            let (all, device) = match target {
                PowerTarget::All => (1, HandleWire::new_zeroed()),
                PowerTarget::Device(device) => (0, handle_wire(*device)),
            };
            write(
                &PowerWire {
                    all: U32::new(all),
                    reserved: U32::new(0),
                    device,
                },
                out,
            )
        }
        Message::Completion {
            status,
            detail,
            outcome,
        } => {
            let mut wire = CompletionWire::new_zeroed();
            wire.status = U16::new(*status as u16);
            wire.detail = U16::new(*detail);
            match outcome {
                Outcome::None => {}
                Outcome::Device { device, driver } => {
                    wire.outcome = U32::new(1);
                    wire.handle = handle_wire(*device);
                    if let Some(driver) = driver {
                        wire.has_driver = U32::new(1);
                        wire.driver = handle_wire(*driver);
                    }
                }
                Outcome::Driver { driver, bound } => {
                    wire.outcome = U32::new(2);
                    wire.handle = handle_wire(*driver);
                    wire.bound = U32::new(*bound);
                }
            }
            write(&wire, out)
        }
        Message::Event {
            kind,
            device,
            driver,
        } => write(
            &EventWire {
                kind: U32::new(*kind as u32),
                reserved: U32::new(0),
                device: handle_wire(*device),
                driver: handle_wire(*driver),
            },
            out,
        ),
        Message::DeviceInfo {
            device,
            parent,
            driver,
            state,
            match_data,
            resources,
        } => {
            let mut wire = DeviceInfoWire::new_zeroed();
            wire.device = handle_wire(*device);
            if let Some(parent) = parent {
                wire.has_parent = 1;
                wire.parent = handle_wire(*parent);
            }
            if let Some(driver) = driver {
                wire.has_driver = 1;
                wire.driver = handle_wire(*driver);
            }
            wire.state = match state {
                DeviceState::Active => 0,
                DeviceState::Suspended => 1,
                DeviceState::ShutDown => 2,
            };
            wire.match_data = match_wire(match_data);
            wire.resources = resources_wire(resources);
            write(&wire, out)
        }
        Message::DriverInfo {
            driver,
            pd,
            bound,
            name,
        } => write(
            &DriverInfoWire {
                driver: handle_wire(*driver),
                pd: U32::new(*pd),
                bound: U32::new(*bound),
                name: fixed(name),
            },
            out,
        ),
    }
}

/// Decodes the body of `opcode` (the part a protected procedure call carries).
pub(crate) fn decode_body(opcode: u16, body: &[u8]) -> Result<Message, DecodeError> {
    Ok(match opcode {
        opcode::PROBE => {
            let wire: ProbeWire = read(opcode, body)?;
            Message::Probe {
                callback: callback_from(&wire.callback)?,
                device: handle_from(&wire.device),
                driver: handle_from(&wire.driver),
                match_data: match_from(&wire.match_data)?,
                resources: resources_from(&wire.resources)?,
            }
        }
        opcode::REMOVE | opcode::SUSPEND | opcode::RESUME | opcode::SHUTDOWN => {
            let wire: DeviceCallbackWire = read(opcode, body)?;
            let (callback, device) = (callback_from(&wire.callback)?, handle_from(&wire.device));
            match opcode {
                opcode::REMOVE => Message::Remove { callback, device },
                opcode::SUSPEND => Message::Suspend { callback, device },
                opcode::RESUME => Message::Resume { callback, device },
                _ => Message::Shutdown { callback, device },
            }
        }
        opcode::REGISTER => {
            let wire: RegisterWire = read(opcode, body)?;
            let count = usize::from(wire.entry_count);
            if count == 0 || count > MAX_MATCH_ENTRIES {
                return Err(DecodeError::BadCount);
            }
            zero(&wire.reserved)?;
            let mut match_table = Vec::new();
            for (index, entry) in wire.entries.iter().enumerate() {
                if index >= count {
                    zero(entry.as_bytes())?;
                    continue;
                }
                zero(&entry.reserved)?;
                let decoded = match entry.kind {
                    1 => {
                        if entry.bus_id.get() != 0 {
                            return Err(DecodeError::ReservedNotZero);
                        }
                        MatchEntry::Compatible(string_from(&entry.compatible)?)
                    }
                    2 => {
                        zero(&entry.compatible)?;
                        MatchEntry::BusId(entry.bus_id.get())
                    }
                    kind => return Err(DecodeError::UnknownMatchKind(kind)),
                };
                match_table
                    .push(decoded)
                    .map_err(|_| DecodeError::BadCount)?;
            }
            Message::Register {
                name: string_from(&wire.name)?,
                match_table,
            }
        }
        opcode::CALLBACK_DONE => {
            let wire: CallbackDoneWire = read(opcode, body)?;
            if wire.reserved.get() != 0 {
                return Err(DecodeError::ReservedNotZero);
            }
            let status = Status::from_code(wire.status.get())?;
            if status != Status::Failed && wire.detail.get() != 0 {
                return Err(DecodeError::ReservedNotZero);
            }
            Message::CallbackDone {
                callback: callback_from(&wire.callback)?,
                status,
                detail: wire.detail.get(),
            }
        }
        opcode::ADD_CHILD => {
            let wire: AddChildWire = read(opcode, body)?;
            Message::AddChild {
                callback: callback_from(&wire.callback)?,
                parent: handle_from(&wire.parent),
                bus: handle_from(&wire.bus),
                match_data: match_from(&wire.match_data)?,
                resources: resources_from(&wire.resources)?,
            }
        }
        opcode::REMOVE_CHILD => {
            let wire: RemoveChildWire = read(opcode, body)?;
            Message::RemoveChild {
                callback: callback_from(&wire.callback)?,
                child: handle_from(&wire.child),
            }
        }
        opcode::ALIVE | opcode::RESCAN | opcode::QUERY_TREE | opcode::SUBSCRIBE => {
            let value = read::<WordWire>(opcode, body)?.value.get();
            match opcode {
                opcode::ALIVE => Message::Alive { sequence: value },
                opcode::QUERY_TREE => Message::QueryTree { cursor: value },
                opcode::SUBSCRIBE => Message::Subscribe { mask: value },
                _ if value == 0 => Message::Rescan,
                _ => return Err(DecodeError::ReservedNotZero),
            }
        }
        opcode::BIND => {
            let wire: BindWire = read(opcode, body)?;
            Message::Bind {
                device: handle_from(&wire.device),
                driver: handle_from(&wire.driver),
            }
        }
        opcode::UNBIND | opcode::REMOVE_DEVICE | opcode::QUERY_DEVICE | opcode::QUERY_DRIVER => {
            let device = handle_from(&read::<DeviceWire>(opcode, body)?.device);
            match opcode {
                opcode::UNBIND => Message::Unbind { device },
                opcode::REMOVE_DEVICE => Message::RemoveDevice { device },
                opcode::QUERY_DRIVER => Message::QueryDriver { driver: device },
                _ => Message::QueryDevice { device },
            }
        }
        opcode::SUSPEND_DEVICE | opcode::RESUME_DEVICE => {
            let wire: PowerWire = read(opcode, body)?;
            if wire.reserved.get() != 0 {
                return Err(DecodeError::ReservedNotZero);
            }
            let target = match wire.all.get() {
                0 => PowerTarget::Device(handle_from(&wire.device)),
                1 => {
                    zero(wire.device.as_bytes())?;
                    PowerTarget::All
                }
                _ => return Err(DecodeError::BadFlag),
            };
            if opcode == opcode::SUSPEND_DEVICE {
                Message::SuspendDevice(target)
            } else {
                Message::ResumeDevice(target)
            }
        }
        opcode::COMPLETION => {
            let wire: CompletionWire = read(opcode, body)?;
            let status = Status::from_code(wire.status.get())?;
            let outcome = match wire.outcome.get() {
                0 => {
                    zero(wire.handle.as_bytes())?;
                    zero(wire.driver.as_bytes())?;
                    if wire.has_driver.get() != 0 || wire.bound.get() != 0 {
                        return Err(DecodeError::ReservedNotZero);
                    }
                    Outcome::None
                }
                1 => {
                    if wire.bound.get() != 0 {
                        return Err(DecodeError::ReservedNotZero);
                    }
                    let driver = match wire.has_driver.get() {
                        0 => {
                            zero(wire.driver.as_bytes())?;
                            None
                        }
                        1 => Some(handle_from(&wire.driver)),
                        _ => return Err(DecodeError::BadFlag),
                    };
                    Outcome::Device {
                        device: handle_from(&wire.handle),
                        driver,
                    }
                }
                2 => {
                    zero(wire.driver.as_bytes())?;
                    if wire.has_driver.get() != 0 {
                        return Err(DecodeError::ReservedNotZero);
                    }
                    Outcome::Driver {
                        driver: handle_from(&wire.handle),
                        bound: wire.bound.get(),
                    }
                }
                other => return Err(DecodeError::UnknownOutcome(other)),
            };
            if status != Status::Failed && wire.detail.get() != 0 {
                return Err(DecodeError::ReservedNotZero);
            }
            Message::Completion {
                status,
                detail: wire.detail.get(),
                outcome,
            }
        }
        opcode::EVENT => {
            let wire: EventWire = read(opcode, body)?;
            if wire.reserved.get() != 0 {
                return Err(DecodeError::ReservedNotZero);
            }
            let kind = match wire.kind.get() {
                1 => EventKind::DeviceAdded,
                2 => EventKind::DeviceRemoved,
                3 => EventKind::Bound,
                4 => EventKind::Unbound,
                5 => EventKind::Suspended,
                6 => EventKind::Resumed,
                7 => EventKind::DriverDied,
                other => return Err(DecodeError::UnknownEventKind(other)),
            };
            Message::Event {
                kind,
                device: handle_from(&wire.device),
                driver: handle_from(&wire.driver),
            }
        }
        opcode::DEVICE_INFO => {
            let wire: DeviceInfoWire = read(opcode, body)?;
            if wire.reserved != 0 || wire.reserved2.get() != 0 {
                return Err(DecodeError::ReservedNotZero);
            }
            let optional = |flag: u8, handle: &HandleWire| match flag {
                0 => zero(handle.as_bytes()).map(|()| None),
                1 => Ok(Some(handle_from(handle))),
                _ => Err(DecodeError::BadFlag),
            };
            let state = match wire.state {
                0 => DeviceState::Active,
                1 => DeviceState::Suspended,
                2 => DeviceState::ShutDown,
                other => return Err(DecodeError::UnknownState(other)),
            };
            Message::DeviceInfo {
                device: handle_from(&wire.device),
                parent: optional(wire.has_parent, &wire.parent)?,
                driver: optional(wire.has_driver, &wire.driver)?,
                state,
                match_data: match_from(&wire.match_data)?,
                resources: resources_from(&wire.resources)?,
            }
        }
        opcode::DRIVER_INFO => {
            let wire: DriverInfoWire = read(opcode, body)?;
            Message::DriverInfo {
                driver: handle_from(&wire.driver),
                pd: wire.pd.get(),
                bound: wire.bound.get(),
                name: string_from(&wire.name)?,
            }
        }
        other => return Err(DecodeError::UnknownOpcode(other)),
    })
}

fn zero(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.iter().all(|byte| *byte == 0) {
        Ok(())
    } else {
        Err(DecodeError::ReservedNotZero)
    }
}

fn handle_wire(handle: Handle) -> HandleWire {
    HandleWire {
        index: U32::new(handle.index),
        generation: U32::new(handle.generation),
    }
}

fn handle_from(wire: &HandleWire) -> Handle {
    Handle {
        index: wire.index.get(),
        generation: wire.generation.get(),
    }
}

fn callback_wire(callback: CallbackId) -> CallbackWire {
    CallbackWire {
        operation: U32::new(callback.operation),
        reserved: U32::new(0),
        sequence: U64::new(callback.sequence),
    }
}

fn callback_from(wire: &CallbackWire) -> Result<CallbackId, DecodeError> {
    if wire.reserved.get() != 0 {
        return Err(DecodeError::ReservedNotZero);
    }
    Ok(CallbackId {
        operation: wire.operation.get(),
        sequence: wire.sequence.get(),
    })
}

/// A string as a NUL-padded fixed field (the typed string is never longer than the field).
fn fixed<const N: usize, const B: usize>(text: &String<N>) -> [u8; B] {
    let mut field = [0u8; B];
    for (to, from) in field.iter_mut().zip(text.as_bytes()) {
        *to = *from;
    }
    field
}

/// A NUL-padded fixed field as a string: non-empty printable ASCII, nothing after the NUL.
fn string_from<const N: usize, const B: usize>(field: &[u8; B]) -> Result<String<N>, DecodeError> {
    let length = field.iter().position(|byte| *byte == 0).unwrap_or(B);
    let (text, padding) = field.split_at(length);
    zero(padding).map_err(|_| DecodeError::BadString)?;
    if text.is_empty() || !text.iter().all(|byte| (0x20..0x7f).contains(byte)) {
        return Err(DecodeError::BadString);
    }
    let text = core::str::from_utf8(text).map_err(|_| DecodeError::BadString)?;
    String::try_from(text).map_err(|()| DecodeError::BadString)
}

fn match_wire(data: &MatchData) -> MatchWire {
    let mut wire = MatchWire::new_zeroed();
    wire.compatible_count = data.compatible.len() as u8;
    if let Some(id) = data.bus_id {
        wire.has_bus_id = 1;
        wire.bus_id = U32::new(id);
    }
    for (slot, name) in wire.compatible.iter_mut().zip(&data.compatible) {
        *slot = fixed(name);
    }
    wire
}

fn match_from(wire: &MatchWire) -> Result<MatchData, DecodeError> {
    let count = usize::from(wire.compatible_count);
    if count > MAX_COMPATIBLE {
        return Err(DecodeError::BadCount);
    }
    zero(&wire.reserved)?;
    let bus_id = match wire.has_bus_id {
        0 => {
            if wire.bus_id.get() != 0 {
                return Err(DecodeError::ReservedNotZero);
            }
            None
        }
        1 => Some(wire.bus_id.get()),
        _ => return Err(DecodeError::BadFlag),
    };
    let mut compatible = Vec::new();
    for (index, field) in wire.compatible.iter().enumerate() {
        if index < count {
            compatible
                .push(string_from(field)?)
                .map_err(|_| DecodeError::BadCount)?;
        } else {
            zero(field)?;
        }
    }
    Ok(MatchData { compatible, bus_id })
}

fn resources_wire(resources: &Resources) -> ResourcesWire {
    let mut wire = ResourcesWire::new_zeroed();
    wire.mmio_count = resources.mmio.len() as u8;
    wire.irq_count = resources.irqs.len() as u8;
    for (slot, window) in wire.mmio.iter_mut().zip(&resources.mmio) {
        *slot = MmioWire {
            address: U64::new(window.address),
            size: U64::new(window.size),
        };
    }
    for (slot, irq) in wire.irqs.iter_mut().zip(&resources.irqs) {
        *slot = U32::new(*irq);
    }
    wire
}

fn resources_from(wire: &ResourcesWire) -> Result<Resources, DecodeError> {
    let (mmio_count, irq_count) = (usize::from(wire.mmio_count), usize::from(wire.irq_count));
    if mmio_count > MAX_MMIO || irq_count > MAX_IRQS {
        return Err(DecodeError::BadCount);
    }
    zero(&wire.reserved)?;
    let mut resources = Resources::default();
    for (index, window) in wire.mmio.iter().enumerate() {
        if index >= mmio_count {
            zero(window.as_bytes())?;
            continue;
        }
        let (address, size) = (window.address.get(), window.size.get());
        if size == 0 || address.checked_add(size - 1).is_none() {
            return Err(DecodeError::BadWindow);
        }
        resources
            .mmio
            .push(MmioWindow { address, size })
            .map_err(|_| DecodeError::BadCount)?;
    }
    for (index, irq) in wire.irqs.iter().enumerate() {
        let irq = irq.get();
        if index >= irq_count {
            if irq != 0 {
                return Err(DecodeError::ReservedNotZero);
            }
            continue;
        }
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
