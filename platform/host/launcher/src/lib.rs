//! Warden's host platform: a Microkit system description on Linux. `warden-host check FILE`
//! checks a description as the `microkit` tool does; `warden-host run FILE` runs it with one
//! process per protection domain, the launcher playing the kernel (`platform/host/kernel` holds
//! the rules of event delivery) and the board's devices played by models (`devices`,
//! `platform/host/devices`).

pub mod board;
pub mod devices;
pub mod launcher;
pub mod output;
pub mod qmp;
pub mod soak;
pub mod trace;
/// The system description parser (`warden-system`), under the name the launcher uses.
pub use warden_system as sdf;
