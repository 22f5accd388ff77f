//! Warden's device-manager core: the driver model of Alan Stern's 2005 locking proposal, run
//! by the single queue-fed daemon of the reply to it, as a sans-IO state machine.
//!
//! The manager PD feeds this crate events — outside requests ([`Manager::submit`]), driver
//! replies ([`Manager::callback_done`]), children added from a callback
//! ([`Manager::child_add`], the `__device_add` path), PD deaths ([`Manager::pd_died`]) and the
//! passing of time ([`Manager::advance_to`]) — and carries out the [`Effect`]s it emits: driver
//! callbacks to send and completions to deliver. Beside it the [`Supervisor`] decides what
//! happens to a driver PD that faults, hangs past a deadline or stops answering heartbeats
//! (stop, restart with backoff, quarantine), and [`Manager::grant`] gives each driver PD the
//! devices its system description gives it. There is no I/O, no clock and no allocation;
//! capacities are const generics and running out of room is an [`Error`], never a panic.
//! Because it is deterministic, it is checked exhaustively by a model checker and by property
//! tests on the host.
//!
//! | Seed (2005)                                  | Warden                                                        |
//! |----------------------------------------------|---------------------------------------------------------------|
//! | `bus->devices`, `bus->drivers`               | a bus's device and driver lists ([`BusInfo`])                 |
//! | `bus->devices_version`, `drivers_version`    | [`BusInfo::devices_version`], [`BusInfo::drivers_version`]    |
//! | `device->mutex`                              | a lock per device with an owner ([`LockOwner`]) and a FIFO    |
//! | restart the traversal if the version changed | probe walks; tried pairs are skipped ([`Stats::walk_restarts`]) |
//! | parent's mutex before the child's            | every operation locks parents first                           |
//! | `device_add` / `__device_add`                | [`Request::AddDevice`] / [`Manager::child_add`]               |
//! | `device_del` / `__device_del`                | [`Request::DeleteDevice`] / [`Manager::child_remove`]         |
//! | the daemon fed by a queue                    | [`Manager`]: one queue of operations, one at a time           |
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

mod arena;
mod handle;
mod invariants;
mod manager;
mod model;
pub mod supervisor;

pub use handle::Requester;
pub use invariants::Violation;
pub use manager::{
    BusInfo, DeviceInfo, DriverInfo, DriverState, LockOwner, Manager, CLAIMS_PER_DRIVER,
    IRQS_PER_DEVICE, MAX_GRANTED_PDS, TEXT_BYTES_PER_DEVICE, WINDOWS_PER_DEVICE,
};
pub use model::{
    Callback, CallbackKind, Change, ChangeKind, Completion, Config, DeviceDescriptor,
    DriverDescriptor, Effect, Error, Overdue, Request, Stats,
};
pub use supervisor::{Action, Failure, PdStatus, Phase, Policy, RetryError, Supervisor};
// The vocabulary the core's API speaks (the same types, not copies).
pub use warden_vocabulary::{
    Answer, BusId, CallbackId, Compatible, DeviceId, DeviceState, DriverId, Grant, Instant,
    MatchData, MatchEntry, MatchTable, MmioWindow, Name, Outcome, PdId, RequestId, Resources,
};
