//! PCI for Warden's host-bridge driver: configuration space over the register-access trait.
//!
//! - [`config`]: function addresses, the header's registers, [`Ecam`] access.
//! - [`capabilities`]: the capability list, walked with every pointer checked.
//! - [`bars`]: BAR sizing and programming.
//! - [`express`]: the PCI Express capability: port types and hot-plug slots.
//! - [`hotplug`]: native hot-plug at a port's slot: events, what they mean, power control.
//! - [`enumerate`](mod@enumerate): the scan below a host bridge, bus numbers, window
//!   assignment from the bridge's apertures, and programming.
//! - [`interrupts`]: the INTx swizzle.
//!
//! Configuration space is input from hardware: nothing here panics on what it reads, every
//! walk is bounded, and whatever cannot be used is reported with the function it is about.
#![no_std]
#![forbid(unsafe_code)]

pub mod bars;
pub mod capabilities;
pub mod config;
pub mod enumerate;
pub mod express;
pub mod hotplug;
pub mod interrupts;

pub use bars::{BarError, BarKind, BarRequest};
pub use config::{Address, ConfigSpace, Ecam};
pub use enumerate::{
    enumerate, enumerate_behind, route_intx, Bar, Bridge, Found, Function, PciAperture, PciSpace,
    Problem, Table,
};
pub use interrupts::{swizzle, Intx};
