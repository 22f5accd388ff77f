//! Warden's host platform: a Microkit system description on Linux. For now it parses and checks
//! the description as the `microkit` tool does (`warden-host check FILE`); running it, one
//! process per PD, arrives with the rest of issue 4 (see `platform/host-kernel` for the model
//! of event delivery the launcher will drive).

pub mod sdf;
