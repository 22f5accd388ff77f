//! Warden's wire protocol: everything that crosses a protection-domain boundary, defined once
//! and treated as untrusted on arrival.
//!
//! Each message is described once, in the message table of [`message`]: its opcode, whether it
//! may travel as a call, and its fields, from which its layout and both halves of its codec
//! come; [`field`] holds each field type's encoding beside its decoding. The words the messages
//! are made of (handles, match data, resources, answers) are `warden-vocabulary`'s.
//!
//! Messages travel two ways: on single-producer/single-consumer rings in shared memory
//! ([`ring`]) with a notification when the consumer asked for one, each as a 16-byte
//! [`wire::Header`] (magic `"WRDN"`, version, opcode, request id, body length) and a fixed-size
//! body; or, for the small synchronous calls into the manager, as Microkit protected procedure
//! calls ([`ppc`]): label = opcode, message registers = body. Every field is little-endian;
//! every wire type is `#[repr(C)]`, alignment 1, without padding, and derives zerocopy's
//! `FromBytes`/`IntoBytes`/`KnownLayout`/`Immutable`. Decoding ([`decode`],
//! [`ppc::decode_call`]) checks everything and returns a [`DecodeError`]; the encoding is
//! canonical, so reserved bytes, string padding and unused array entries must be zero.
//!
//! # Protocol table
//!
//! | opcode | message | direction | body fields | reply | errors; manager's authority check |
//! |---|---|---|---|---|---|
//! | 0x0001 | `Probe` | manager → driver | callback, device, driver, match data, resources (physical MMIO windows, the last `forwarded` of them address space a bridge forwards rather than its registers, GIC INTIDs 0–1019; the driver finds them in its own maps and IRQs) | `CallbackDone` Ok / NotMine / Defer / Failed | — |
//! | 0x0002 | `Remove` | manager → driver | callback, device | `CallbackDone` | — |
//! | 0x0003 | `Suspend` | manager → driver | callback, device | `CallbackDone` | — |
//! | 0x0004 | `Resume` | manager → driver | callback, device | `CallbackDone` | — |
//! | 0x0005 | `Shutdown` | manager → driver | callback, device | `CallbackDone` | — |
//! | 0x0006 | `Ping` | manager → driver | sequence | `Alive` on the ring | — |
//! | 0x0101 | `Register` | driver → manager (PPC) | name, bus, match table (1–8 entries), callback deadline (ms, 0: the manager's) | `Completion` (the driver handle, decided at once) | StaleHandle (no such bus), NoSpace (driver table full: retry), NotPermitted (detail NOT_GRANTED: the system gives the PD no such device; or the PD is stopped); the driver is registered for the calling PD only |
//! | 0x0102 | `CallbackDone` | driver → manager (ring or PPC) | callback, answer (Ok / NotMine / Defer / Failed with a detail) | — | NoSuchObject (not in flight), NotPermitted (callback sent to another PD) |
//! | 0x0103 | `AddChild` | driver → manager (PPC) | callback, parent, bus, match data, resources (physical) | `Completion` (child handle) | NotPermitted unless the caller's probe/resume callback is in flight on `parent` |
//! | 0x0104 | `RemoveChild` | driver → manager (PPC) | callback, child | `Completion` | NotPermitted unless `child` is a child of the callback's device; Busy if it is bound or locked |
//! | 0x0105 | `Alive` | driver → manager (ring) | the `Ping`'s sequence | — | an answer to no outstanding ping is ignored |
//! | 0x0106 | `QueryPciHost` | driver → manager (PPC) | device (a PCI host bridge) | `PciHost` | StaleHandle; NoSuchObject (not a host bridge); NotPermitted unless the caller's system description gives it the bridge's registers or its driver is bound to it |
//! | 0x0201 | `Bind` | client → manager (PPC; or a driver, naming its own driver) | device, driver | `Accepted` (the request's number; its `Completed` event follows), or a `Completion` with the refusal the manager could decide at once | StaleHandle, Busy, NoMatch |
//! | 0x0202 | `Unbind` | client → manager (PPC; or a driver) | device | `Accepted` (as `Bind`) | StaleHandle; a driver may unbind only a device bound to it |
//! | 0x0203 | `RemoveDevice` | client → manager (PPC) | device | `Accepted` (as `Bind`) | StaleHandle; a driver may remove only children of devices bound to it |
//! | 0x0204 | `Rescan` | client → manager (PPC) | (none) | `Accepted` (as `Bind`) | — |
//! | 0x0205 | `SuspendDevice` | client → manager (PPC) | all flag, device | `Accepted` (as `Bind`) | StaleHandle, Failed |
//! | 0x0206 | `ResumeDevice` | client → manager (PPC) | all flag, device | `Accepted` (as `Bind`) | StaleHandle, ParentSuspended, Failed |
//! | 0x0207 | `QueryDevice` | client → manager (PPC) | device | `DeviceInfo` | StaleHandle |
//! | 0x0208 | `QueryTree` | client → manager (PPC) | cursor | `DeviceInfo` of the first device whose index ≥ cursor | NoSuchObject past the last |
//! | 0x0209 | `Subscribe` | client → manager (PPC) | event mask (bit `1 << kind`; 0: none) | `Completion` Ok; from then on the manager queues the events of those kinds for the client and notifies it | Malformed (a bit that names no kind) |
//! | 0x020a | `QueryDriver` | client → manager (PPC) | driver | `DriverInfo` | StaleHandle |
//! | 0x020b | `RetryPd` | client → manager (PPC) | PD | `Completion` | NoSuchObject (not a supervised PD), Busy (it is running) |
//! | 0x020c | `QueryPd` | client → manager (PPC) | PD | `PdInfo` | NoSuchObject |
//! | 0x020d | `NextEvent` | client → manager (PPC) | (none) | `Event`: the oldest queued for the client, its completions first | NoSuchObject (none queued) |
//! | 0x020e | `ShutdownSystem` | client → manager (PPC) | (none) | `Accepted` | ShutDown (already) |
//! | 0x020f | `QueryStats` | client → manager (PPC) | (none) | `Stats` | — |
//! | 0x0210 | `QueryTrace` | client → manager (PPC) | cursor | `TraceRecord` of the first record of the manager's trace ring whose sequence ≥ cursor | NoSuchObject past the last |
//! | 0x0301 | `Completion` | manager → client | status, detail, outcome (device + driver, or driver + bound count) | — | — |
//! | 0x0302 | `Event` | manager → client | kind (device added, removed, bound, unbound, suspended, resumed, shut down; driver PD faulted, quarantined; request completed), device, driver, PD, request number and status and detail (completions only), events lost before this one | — | — |
//! | 0x0303 | `DeviceInfo` | manager → client | device, parent, driver, state, match data, resources (physical), the PD it lost to a failure | — | — |
//! | 0x0304 | `DriverInfo` | manager → client | driver, PD, devices bound, name | — | — |
//! | 0x0305 | `PdInfo` | manager → client | PD, phase, restart in (ms), failures in a row, failures, restarts, last failure and its detail | — | — |
//! | 0x0306 | `Accepted` | manager → client | request number | — | — |
//! | 0x0309 | `PciHost` | manager → driver | device, buses, apertures (space, bus and CPU addresses, size; up to 6), INTx routes of the root bus (device × pin → GIC INTID) | — | — |
//! | 0x0308 | `TraceRecord` | manager → client | sequence, time (ns), begin or end, name, id, PD, device, driver, request, status | — | — |
//! | 0x0307 | `Stats` | manager → client | the core's counters (events, probes, binds, walk restarts, pairs skipped, callbacks, in flight now and at most, deferred devices, completions), the supervisor's (restarts, quarantined PDs), the events queued for clients and lost | — | — |
//!
//! Requests a client queues (`Bind`, `Unbind`, `RemoveDevice`, `Rescan`, `SuspendDevice`,
//! `ResumeDevice`, `ShutdownSystem`) are answered `Accepted` with the request's number, or a
//! `Completion` when the manager decided at once; the outcome of an accepted request comes later
//! as a `Completed` event with that number, queued for its client whether or not it subscribed
//! (each client's completions have room of their own: a client has at most the core's
//! per-requester limit of requests in flight). Other events are queued only for the kinds a
//! client subscribed to, in a bounded queue per client; when it is full the manager drops the
//! event and counts it, and the next event the client takes says how many it lost. The manager
//! notifies the client's channel when its queue goes from empty to not empty; the client takes
//! events with `NextEvent` until `NoSuchObject`.
//!
//! Status codes ([`Status`]): 0 Ok, 1 NotMine, 2 Defer, 3 Busy, 4 StaleHandle, 5 NoSuchObject,
//! 6 NotPermitted, 7 Malformed, 8 NoSpace, 9 Failed, 10 Died, 11 ShutDown, 12 NoMatch,
//! 13 ParentSuspended. A `Completion`'s detail is non-zero only for `Failed` (the driver's code)
//! and `NotPermitted` (why: [`not_permitted`]). A message that fails to decode is answered `Malformed` (when it had a
//! readable request id) and otherwise dropped; the authority checks are made by the device
//! manager's core (`warden_manager_core::Manager::callback_done`, `child_add`, `child_remove`,
//! `submit` with `Requester::Driver`).
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod field;
#[cfg(not(loom))]
pub mod fuzzing;
pub mod message;
#[cfg(feature = "alloc")]
pub mod outbox;
pub mod ppc;
pub mod ring;
pub mod sddf;
mod sync;
pub mod wire;

pub use message::{
    decode, encode, not_permitted, DecodeError, Direction, EncodeError, EventKind, FailureKind,
    Message, PdPhase, PowerTarget, Status,
};
#[cfg(feature = "alloc")]
pub use outbox::Outbox;
pub use ring::{Consumer, Producer, RingError, RingMemory, RingStorage};

/// The buses the device manager creates at start, in this order, so that their handles are
/// fixed and a driver names its bus without asking.
pub mod bus {
    use warden_vocabulary::BusId;

    /// The platform bus: the board's devices from its device tree.
    pub const PLATFORM: BusId = BusId::from_parts(0, 0);
    /// The virtio bus: the devices found behind virtio-mmio transports.
    pub const VIRTIO: BusId = BusId::from_parts(1, 0);
    /// The I2C bus: the board's devices on I2C controllers, at their I2C addresses.
    pub const I2C: BusId = BusId::from_parts(2, 0);
    /// The SPI bus: the board's devices on SPI controllers, at their chip selects.
    pub const SPI: BusId = BusId::from_parts(3, 0);
    /// The MDIO bus: the board's PHYs on MDIO controllers, at their PHY addresses.
    pub const MDIO: BusId = BusId::from_parts(4, 0);
    /// The PCI bus: the functions PCI host bridges' drivers find (and the board's devices on
    /// PCI, at their configuration addresses).
    pub const PCI: BusId = BusId::from_parts(5, 0);
    /// The buses the manager creates at start, in this order: their handles are fixed. Buses
    /// of other kinds that are not memory-mapped are created as the board names them.
    pub const FIXED: [(&str, BusId); 6] = [
        ("platform", PLATFORM),
        ("virtio", VIRTIO),
        ("i2c", I2C),
        ("spi", SPI),
        ("mdio", MDIO),
        ("pci", PCI),
    ];
}
