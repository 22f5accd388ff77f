//! Every message of Warden's protocol, each described once: the table below gives its opcode,
//! whether it may travel as a protected procedure call, and its fields; from it come the
//! [`Message`] enum, the [`opcode`] constants, each body's layout (its fields' layouts in order,
//! [`body`]) and both halves of the codec. A field type's encoding and decoding sit side by side
//! in [`crate::field`].
//!
//! Decoding checks everything and returns a typed [`DecodeError`]; the encoding is canonical (a
//! byte string that decodes re-encodes to itself: the decoder re-encodes and compares), so a peer
//! cannot smuggle meaning into reserved bytes, string padding or unused entries.

use warden_vocabulary::{
    Answer, BusId, CallbackId, DeviceId, DeviceState, DriverId, MatchData, MatchTable, Name,
    Outcome, PciHostInfo, PdId, Resources,
};
use zerocopy::little_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::field::Field;
use crate::wire::{Header, MAGIC, VERSION};

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

/// What a client is told: changes to the tree and to the driver PDs (for the kinds it
/// subscribed to), and the completion of each of its own requests (always).
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
    /// A driver PD failed (faulted, missed a deadline, fell silent, broke its ring) and was
    /// stopped; its devices are unbound.
    Faulted = 7,
    /// A device was shut down.
    ShutDown = 8,
    /// A driver PD failed too often and stays stopped until an administrator retries it.
    Quarantined = 9,
    /// One of the client's own requests completed (sent whether or not it subscribed).
    Completed = 10,
}

impl EventKind {
    /// Every kind, in code order.
    pub const ALL: [Self; 10] = [
        Self::DeviceAdded,
        Self::DeviceRemoved,
        Self::Bound,
        Self::Unbound,
        Self::Suspended,
        Self::Resumed,
        Self::Faulted,
        Self::ShutDown,
        Self::Quarantined,
        Self::Completed,
    ];
    /// The bits of a `Subscribe` mask that name kinds (bit `1 << code`).
    pub const MASK: u64 = 0x7fe;

    /// This kind's bit in a `Subscribe` mask.
    #[must_use]
    pub const fn bit(self) -> u64 {
        1 << self as u32
    }

    /// The kind with this code.
    ///
    /// # Errors
    /// [`DecodeError::UnknownEventKind`].
    pub fn from_code(code: u32) -> Result<Self, DecodeError> {
        Self::ALL
            .into_iter()
            .find(|kind| *kind as u32 == code)
            .ok_or(DecodeError::UnknownEventKind(code))
    }
}

/// The target of a suspend or resume request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerTarget {
    /// The whole system.
    All,
    /// A device and its subtree.
    Device(DeviceId),
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
    /// Not [`MAGIC`].
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
    /// A reserved field, unused entry or padding is not zero (the bytes are not the canonical
    /// encoding of what they decode to).
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
    UnknownState(u32),
    /// A status that is not a driver's answer to a callback (`Ok`, `NotMine`, `Defer`,
    /// `Failed`).
    NotAnAnswer(Status),
    /// An unknown match-entry kind.
    UnknownMatchKind(u8),
    /// An unknown supervision phase.
    UnknownPhase(u32),
    /// An unknown failure kind.
    UnknownFailure(u32),
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

/// Defines the messages from their table (see the module docs).
macro_rules! messages {
    ($(
        $(#[$doc:meta])*
        $code:literal $OPCODE:ident $transport:ident $Name:ident {
            $( $(#[$field_doc:meta])* $field:ident : $type:ty ),* $(,)?
        }
    )*) => {
        /// Every message of the protocol. See the crate documentation for the table of opcodes,
        /// directions, replies and errors.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Message {
            $( $(#[$doc])* $Name { $( $(#[$field_doc])* $field: $type ),* }, )*
        }

        /// Opcodes. The high byte is the direction: 0x00 manager → driver, 0x01 driver →
        /// manager, 0x02 client → manager, 0x03 manager → client.
        pub mod opcode {
            $(
                #[doc = concat!("[`super::Message::", stringify!($Name), "`].")]
                pub const $OPCODE: u16 = $code;
            )*
        }

        /// Each message's body: its fields' wire layouts, in the order of the table.
        pub mod body {
            #[allow(clippy::wildcard_imports, reason = "the table's field types")]
            use super::*;
            $(
                #[doc = concat!("The body of [`super::Message::", stringify!($Name), "`].")]
                #[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
                #[repr(C)]
                pub struct $Name {
                    $(
                        #[doc = concat!("`", stringify!($field), "`.")]
                        pub $field: <$type as Field>::Wire,
                    )*
                }
            )*
        }

        impl Message {
            /// The message's opcode.
            #[must_use]
            pub fn opcode(&self) -> u16 {
                match self {
                    $( Self::$Name { .. } => opcode::$OPCODE, )*
                }
            }
        }

        /// The body length of an opcode, if it is known.
        #[must_use]
        pub fn body_length(code: u16) -> Option<usize> {
            match code {
                $( opcode::$OPCODE => Some(core::mem::size_of::<body::$Name>()), )*
                _ => None,
            }
        }

        /// May this opcode travel as a protected procedure call (or its reply)? Every message
        /// may travel on a ring.
        #[must_use]
        pub fn is_call(code: u16) -> bool {
            match code {
                $( opcode::$OPCODE => messages!(@call $transport), )*
                _ => false,
            }
        }

        fn encode_fields(message: &Message, out: &mut [u8]) -> Result<usize, EncodeError> {
            match message {
                $(
                    Message::$Name { $($field),* } => write(
                        &body::$Name { $( $field: Field::to_wire($field), )* },
                        out,
                    ),
                )*
            }
        }

        fn decode_fields(code: u16, bytes: &[u8]) -> Result<Message, DecodeError> {
            match code {
                $(
                    opcode::$OPCODE => {
                        let wire: body::$Name = read(code, bytes)?;
                        let _ = &wire;
                        Ok(Message::$Name { $( $field: Field::from_wire(&wire.$field)?, )* })
                    }
                )*
                other => Err(DecodeError::UnknownOpcode(other)),
            }
        }
    };
    (@call call) => { true };
    (@call ring) => { false };
}

messages! {
    /// Manager → driver: bind this device.
    0x0001 PROBE ring Probe {
        /// Quote in the reply.
        callback: CallbackId,
        /// The device.
        device: DeviceId,
        /// The driver (the receiving PD may host several).
        driver: DriverId,
        /// What the device is.
        match_data: MatchData,
        /// MMIO windows at physical addresses and GIC INTIDs, as the device tree gives them:
        /// the driver finds them in the maps and IRQs its system description grants it.
        resources: Resources,
    }
    /// Manager → driver: let go of the device.
    0x0002 REMOVE ring Remove {
        /// Quote in the reply.
        callback: CallbackId,
        /// The device.
        device: DeviceId,
    }
    /// Manager → driver: suspend the device.
    0x0003 SUSPEND ring Suspend {
        /// Quote in the reply.
        callback: CallbackId,
        /// The device.
        device: DeviceId,
    }
    /// Manager → driver: resume the device.
    0x0004 RESUME ring Resume {
        /// Quote in the reply.
        callback: CallbackId,
        /// The device.
        device: DeviceId,
    }
    /// Manager → driver: quiesce the device for power-off.
    0x0005 SHUTDOWN ring Shutdown {
        /// Quote in the reply.
        callback: CallbackId,
        /// The device.
        device: DeviceId,
    }
    /// Manager → driver: heartbeat; answer `Alive` with the same sequence number.
    0x0006 PING ring Ping {
        /// Quote in the answer.
        sequence: u64,
    }
    /// Driver → manager: register a driver living in the sender's PD.
    0x0101 REGISTER call Register {
        /// Its name.
        name: Name,
        /// The bus whose devices it serves.
        bus: BusId,
        /// The devices it claims (1–8 entries).
        match_table: MatchTable,
        /// How long its callbacks may take, in milliseconds (0: the manager's default).
        deadline_ms: u32,
    }
    /// Driver → manager: a callback finished.
    0x0102 CALLBACK_DONE call CallbackDone {
        /// The callback.
        callback: CallbackId,
        /// The driver's answer.
        answer: Answer,
    }
    /// Driver → manager (`__device_add`): add a child under the device of the probe or resume
    /// callback in flight.
    0x0103 ADD_CHILD call AddChild {
        /// The callback that holds the parent's lock.
        callback: CallbackId,
        /// The parent.
        parent: DeviceId,
        /// The child's bus.
        bus: BusId,
        /// What the child is.
        match_data: MatchData,
        /// Its resources (physical addresses, GIC INTIDs).
        resources: Resources,
    }
    /// Driver → manager (`__device_del`): remove an idle child of the callback's device.
    0x0104 REMOVE_CHILD call RemoveChild {
        /// The callback in flight on the parent.
        callback: CallbackId,
        /// The child.
        child: DeviceId,
    }
    /// Driver → manager: the answer to `Ping`.
    0x0105 ALIVE ring Alive {
        /// The `Ping`'s.
        sequence: u64,
    }
    /// Driver → manager: describe the PCI host bridge `device`, which is bound to one of the
    /// sender's drivers or being probed by one (its buses, apertures and INTx routes, from the
    /// board). The reply is `PciHost`, or a `Completion` with the refusal.
    0x0106 QUERY_PCI_HOST call QueryPciHost {
        /// The host bridge.
        device: DeviceId,
    }
    /// Client → manager: bind a device to a driver.
    0x0201 BIND call Bind {
        /// The device.
        device: DeviceId,
        /// The driver.
        driver: DriverId,
    }
    /// Client → manager: unbind a device.
    0x0202 UNBIND call Unbind {
        /// The device.
        device: DeviceId,
    }
    /// Client → manager: remove a device and its subtree.
    0x0203 REMOVE_DEVICE call RemoveDevice {
        /// The device.
        device: DeviceId,
    }
    /// Client → manager: probe every unbound device again.
    0x0204 RESCAN call Rescan {}
    /// Client → manager: suspend.
    0x0205 SUSPEND_DEVICE call SuspendDevice {
        /// A device and its subtree, or the whole system.
        target: PowerTarget,
    }
    /// Client → manager: resume.
    0x0206 RESUME_DEVICE call ResumeDevice {
        /// A device and its subtree, or the whole system.
        target: PowerTarget,
    }
    /// Client → manager: describe a device.
    0x0207 QUERY_DEVICE call QueryDevice {
        /// The device.
        device: DeviceId,
    }
    /// Client → manager: describe the tree, one device per reply, from `cursor`.
    0x0208 QUERY_TREE call QueryTree {
        /// Where to continue (0 to start).
        cursor: u64,
    }
    /// Client → manager: queue for me the events whose kind bit (`1 << kind`) is set in
    /// `mask` (0: none; the completions of my own requests are queued whatever the mask).
    0x0209 SUBSCRIBE call Subscribe {
        /// The event mask ([`EventKind::MASK`] holds every kind).
        mask: u64,
    }
    /// Client → manager: describe a driver.
    0x020a QUERY_DRIVER call QueryDriver {
        /// The driver.
        driver: DriverId,
    }
    /// Client → manager: restart a driver PD that is quarantined (or waiting for its
    /// backoff) now.
    0x020b RETRY_PD call RetryPd {
        /// The PD.
        pd: PdId,
    }
    /// Client → manager: describe a driver PD's supervision.
    0x020c QUERY_PD call QueryPd {
        /// The PD.
        pd: PdId,
    }
    /// Client → manager: the oldest event queued for me.
    0x020d NEXT_EVENT call NextEvent {}
    /// Client → manager: shut the whole system down (children first).
    0x020e SHUTDOWN_SYSTEM call ShutdownSystem {}
    /// Client → manager: the manager's counters.
    0x020f QUERY_STATS call QueryStats {}
    /// Client → manager: the manager's trace ring, the first record whose sequence number is
    /// at least `cursor`.
    0x0210 QUERY_TRACE call QueryTrace {
        /// Where to continue (0 to start).
        cursor: u64,
    }
    /// Manager → client: a request completed.
    0x0301 COMPLETION call Completion {
        /// Its status.
        status: Status,
        /// Detail for `Failed` (the driver's code) and `NotPermitted` (why:
        /// [`not_permitted`]); zero otherwise.
        detail: u16,
        /// What it produced.
        outcome: Outcome,
    }
    /// Manager → client: something happened, in reply to `NextEvent`.
    0x0302 EVENT call Event {
        /// What.
        kind: EventKind,
        /// The device concerned (device events; a completion's device, if it named one).
        device: Option<DeviceId>,
        /// The driver concerned (bound, unbound; a completion's driver).
        driver: Option<DriverId>,
        /// The driver PD concerned (`Faulted`, `Quarantined`).
        pd: Option<PdId>,
        /// `Completed`: the number the request was accepted as ([`Message::Accepted`]).
        request: u32,
        /// `Completed`: how it ended; `Ok` for every other kind.
        status: Status,
        /// `Completed` with `Failed` (the driver's code) or `NotPermitted` (why); else zero.
        detail: u16,
        /// Events for this client the manager dropped, its queue full, since the last one
        /// it delivered (never a completion: those have room of their own).
        lost: u32,
    }
    /// Manager → client: a device, in reply to `QueryDevice` or `QueryTree`.
    0x0303 DEVICE_INFO call DeviceInfo {
        /// The device.
        device: DeviceId,
        /// Its parent.
        parent: Option<DeviceId>,
        /// Its driver.
        driver: Option<DriverId>,
        /// Its power state.
        state: DeviceState,
        /// What it is.
        match_data: MatchData,
        /// Its MMIO windows (physical) and GIC INTIDs.
        resources: Resources,
        /// The PD whose driver it lost when that PD failed, until it is bound again.
        last_pd: Option<PdId>,
    }
    /// Manager → client: a driver, in reply to `QueryDriver`.
    0x0304 DRIVER_INFO call DriverInfo {
        /// The driver.
        driver: DriverId,
        /// The PD it lives in.
        pd: PdId,
        /// Devices bound to it.
        bound: u32,
        /// Its name.
        name: Name,
    }
    /// Manager → client: a driver PD's supervision, in reply to `QueryPd`.
    0x0305 PD_INFO call PdInfo {
        /// The PD.
        pd: PdId,
        /// Where it is in its life.
        phase: PdPhase,
        /// Milliseconds until its restart (phase `Waiting`), else zero.
        restart_in_ms: u32,
        /// Failures in a row (zero once healthy again).
        consecutive_failures: u32,
        /// Failures since start-up.
        failures: u32,
        /// Restarts since start-up.
        restarts: u32,
        /// Its latest failure.
        last_failure: FailureKind,
        /// For `Fault`: the fault's label; for `Overdue`: the callback's opcode; else zero.
        failure_detail: u32,
    }
    /// Manager → client: a record of the manager's trace ring, in reply to `QueryTrace`.
    0x0308 TRACE_RECORD call TraceRecord {
        /// Its number (every record the manager made has one; the ring keeps the last).
        sequence: u64,
        /// When: nanoseconds on the manager's clock (the system timer's).
        at_ns: u64,
        /// 1 at a span's start, 0 at its end.
        begin: u32,
        /// What (`warden_microkit::trace::Name`'s code).
        name: u32,
        /// A request's number or a callback's sequence number.
        id: u64,
        /// For a callback: the driver PD it runs in (0: the manager).
        pd: u32,
        /// The device concerned.
        device: Option<DeviceId>,
        /// The driver concerned.
        driver: Option<DriverId>,
        /// For a callback: the request it serves, +1 (0: none).
        request: u64,
        /// At an end: the outcome's status code.
        status: u32,
    }
    /// Manager → driver: a PCI host bridge, in reply to `QueryPciHost`.
    0x0309 PCI_HOST call PciHost {
        /// The host bridge.
        device: DeviceId,
        /// What its driver needs of it beyond its resources.
        host: PciHostInfo,
    }
    /// Manager → client: the manager's counters since start-up, in reply to `QueryStats`
    /// (each saturates at `u32::MAX`).
    0x0307 STATS call Stats {
        /// Events the core handled (requests, replies, child additions, deaths).
        events: u32,
        /// Probe callbacks issued.
        probes: u32,
        /// Successful binds.
        binds: u32,
        /// Probe walks restarted because a bus's version counter changed.
        walk_restarts: u32,
        /// (device, driver) pairs skipped on a restarted walk, already tried.
        pairs_skipped: u32,
        /// Callbacks issued, every kind.
        callbacks: u32,
        /// Callbacks in flight now.
        in_flight: u32,
        /// The most callbacks in flight at once.
        max_in_flight: u32,
        /// Devices parked after a Defer, now.
        deferred: u32,
        /// Requests completed.
        completions: u32,
        /// Driver PD restarts.
        restarts: u32,
        /// Driver PDs quarantined now.
        quarantined: u32,
        /// Events queued for clients.
        events_queued: u32,
        /// Events dropped, a client's queue full.
        events_lost: u32,
    }
    /// Manager → client: the request is queued as number `request` of this client; its
    /// outcome comes as a `Completed` event carrying that number.
    0x0306 ACCEPTED call Accepted {
        /// The request's number.
        request: u32,
    }
}

/// Defines a field type that is a code from a closed set, carried as a 32-bit word.
macro_rules! codes {
    ($(#[$doc:meta])* $Name:ident, $error:ident { $( $(#[$variant_doc:meta])* $Variant:ident = $code:literal, )* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum $Name {
            $( $(#[$variant_doc])* $Variant = $code, )*
        }

        impl Field for $Name {
            type Wire = U32;
            fn to_wire(&self) -> U32 {
                U32::new(*self as u32)
            }
            fn from_wire(wire: &U32) -> Result<Self, DecodeError> {
                match wire.get() {
                    $( $code => Ok(Self::$Variant), )*
                    other => Err(DecodeError::$error(other)),
                }
            }
        }
    };
}

codes! {
    /// Where a supervised driver PD is in its life.
    PdPhase, UnknownPhase {
        /// Started or restarted, not registered yet.
        Starting = 1,
        /// Registered.
        Running = 2,
        /// Stopped after a failure; restarted after its backoff.
        Waiting = 3,
        /// Stopped until an administrator retries it.
        Quarantined = 4,
    }
}

codes! {
    /// Why a supervised driver PD last failed.
    FailureKind, UnknownFailure {
        /// It has not failed.
        None = 0,
        /// It faulted.
        Fault = 1,
        /// A callback it was sent went past its deadline.
        Overdue = 2,
        /// It did not answer a heartbeat.
        Silent = 3,
        /// It did not register after a (re)start.
        NeverRegistered = 4,
        /// The manager stopped it (an unusable ring).
        Stopped = 5,
    }
}

/// The rules that tie one field to another (the rest is each field's own).
fn check(message: &Message) -> Result<(), DecodeError> {
    match message {
        Message::Completion { status, detail, .. } | Message::Event { status, detail, .. }
            if !matches!(status, Status::Failed | Status::NotPermitted) && *detail != 0 =>
        {
            Err(DecodeError::ReservedNotZero)
        }
        Message::Event {
            kind,
            status,
            request,
            ..
        } if *kind != EventKind::Completed && (*status != Status::Ok || *request != 0) => {
            Err(DecodeError::ReservedNotZero)
        }
        Message::TraceRecord { begin, .. } if *begin > 1 => Err(DecodeError::ReservedNotZero),
        Message::Subscribe { mask } if mask & !EventKind::MASK != 0 => Err(
            DecodeError::UnknownEventKind((mask & !EventKind::MASK).trailing_zeros()),
        ),
        _ => Ok(()),
    }
}

/// The `detail` of a `NotPermitted` completion: why.
pub mod not_permitted {
    /// No reason given.
    pub const UNSPECIFIED: u16 = 0;
    /// The system description does not give the PD that device (or any device the compatible
    /// matches).
    pub const NOT_GRANTED: u16 = 1;
    /// The device already has as many children as the manager allows.
    pub const OVER_QUOTA: u16 = 2;
}

const HEADER_BYTES: usize = core::mem::size_of::<Header>();
/// The largest body of any message (every body fits one ring slot with its header).
const MAX_BODY_BYTES: usize = crate::ring::SLOT_BYTES - HEADER_BYTES;

impl Message {
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

/// Encodes the body only (the part a protected procedure call carries).
pub(crate) fn encode_body(message: &Message, out: &mut [u8]) -> Result<usize, EncodeError> {
    encode_fields(message, out)
}

/// Decodes the body of `code` (the part a protected procedure call carries), canonical only.
pub(crate) fn decode_body(code: u16, bytes: &[u8]) -> Result<Message, DecodeError> {
    let message = decode_fields(code, bytes)?;
    check(&message)?;
    let mut again = [0u8; MAX_BODY_BYTES];
    match encode_fields(&message, &mut again) {
        Ok(length) if again.get(..length) == Some(bytes) => Ok(message),
        _ => Err(DecodeError::ReservedNotZero),
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

fn read<T: FromBytes + KnownLayout + Immutable>(code: u16, body: &[u8]) -> Result<T, DecodeError> {
    T::read_from_bytes(body).map_err(|_| DecodeError::BadLength {
        opcode: code,
        expected: core::mem::size_of::<T>(),
        got: body.len(),
    })
}
