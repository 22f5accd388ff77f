//! Warden's host platform: a Microkit system description on Linux. `warden-host check FILE`
//! checks a description as the `microkit` tool does; `warden-host run FILE` runs it with one
//! process per protection domain, the launcher playing the kernel (`platform/host-kernel` holds
//! the rules of event delivery). Memory regions are not mapped on the host yet.

pub mod launcher;
pub mod sdf;
