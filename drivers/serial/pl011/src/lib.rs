//! PL011 UART driver PD: the console.
//!
//! The register block and the driver logic are in [`device`] (generic over
//! `warden_registers::Registers`, tested against a model of the PL011). The `arm-pl011-uart`
//! crate was considered, but it is built on `safe-mmio` pointers to mapped registers, which the
//! host platform cannot serve (there, registers are reached through its device models).
//!
//! The PD binds `arm,pl011` (the device in its map `uart_vaddr`/`uart_size`/`uart_paddr`),
//! resets it in the probe, and is the console of the shell PD
//! ([`warden_driver::console`]): it takes line input on its receive interrupt (channel 1, GIC
//! INTID 33 on QEMU virt), echoing and editing, and passes each finished line to the shell on
//! channel 2; what the shell writes it sends to the UART. Channel 0 is the device manager.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod device;

use warden_driver::console::{Uart, UartConsole};
use warden_driver::DriverPd;
use warden_microkit::DeviceRegisters;

/// What this PD expects of the system description (every console driver's).
pub use warden_driver::console::interface;

impl Uart for device::Pl011<DeviceRegisters> {
    const NAME: &'static str = "pl011-console";
    const COMPATIBLE: &'static [&'static str] = &["arm,pl011"];
    type ProbeError = device::ProbeError;
    type WriteError = device::TxStuck;

    fn probe(registers: DeviceRegisters) -> Result<Self, Self::ProbeError> {
        device::Pl011::probe(registers)
    }

    fn read_byte(&mut self) -> Option<u8> {
        device::Pl011::read_byte(self)
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), Self::WriteError> {
        device::Pl011::write_bytes(self, bytes)
    }

    fn acknowledge_interrupt(&mut self) {
        let _ = self.handle_interrupt();
    }
}

/// The console driver.
pub type ConsoleDriver = UartConsole<device::Pl011<DeviceRegisters>>;

/// The PD's `init`.
#[must_use]
pub fn init() -> DriverPd<ConsoleDriver> {
    UartConsole::start()
}
