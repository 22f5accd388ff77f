//! Warden's services, each with both halves — its types, the server's side (`serve` or a
//! server type) and the client's (`Client`) — so that no client hand-rolls a call or a ring, and
//! none depends on a driver crate (the shape of rust-sel4's driver adapters and Hubris's `-api`
//! crates).
//!
//! | service | server | clients | transport |
//! |---|---|---|---|
//! | [`call`]: a protocol message as a protected procedure call | the device manager | drivers, the shell | label = opcode, registers = body |
//! | [`admin`]: the manager's client calls (queries, bind, unbind, rescan) | the device manager | the shell | [`call`] |
//! | [`clock`]: seconds since the epoch | the PL031 driver | the demo client, the shell | a call |
//! | [`entropy`]: random bytes | the virtio-rng driver | the demo client, the shell | a call |
//! | [`block`]: sectors of a disk, Warden's protocol | the virtio-blk driver | the soak client | a queue pair, a data region, notifications |
//! | [`sddf_block`]: blocks of a disk, sDDF's protocol | the virtio-blk driver | the demo client, any sDDF block client | sDDF's queues, storage information and data region, notifications |
//! | [`console`]: lines typed, output written | a UART driver | the shell | two rings, notifications |
//! | [`sddf_serial`]: characters received and written, sDDF's protocol | a UART driver | any sDDF serial client (the serial demo client) | sDDF's character queues and data regions, notifications |
//! | [`timer`]: the time since start-up, a timeout (sDDF's timer protocol) | a timer driver | the device manager, the demo client | a call, a notification |
//!
//! Everything that comes from the other side is untrusted and checked: a reply of the wrong
//! shape is an error, never trusted; a server answers a malformed call with a refusal.
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod admin;
pub mod block;
pub mod call;
pub mod clock;
pub mod console;
pub mod entropy;
pub mod sddf_block;
pub mod sddf_serial;
pub mod timer;

/// Why a server's reply to a call was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// The server has no device bound (label [`NOT_READY`]).
    NotReady,
    /// An empty reply (label 0, no registers): what libmicrokit (and the host platform)
    /// return when the PD may not call that channel, so there is no such server.
    Refused,
    /// The reply does not have the shape the call's reply has.
    Malformed,
}

/// Reply label of a device service (clock, entropy) whose device is not bound yet.
pub const NOT_READY: u64 = 0xff;
