//! Amlogic Meson (Odroid C4) UART driver PD: the console.
//!
//! [`device`] holds the register block of the UART of the Amlogic Meson GX, G12 and SM1 SoCs
//! (the S905X3 of the Odroid C4 among them) and the driver logic generic over
//! [`warden_registers::Registers`]. Amlogic publishes no register manual for it beyond the SoC
//! datasheets, so the register layout follows Linux's `drivers/tty/serial/meson_uart.c`, which
//! is what the hardware is known to work with; where this driver goes beyond it, [`device`]
//! says so.
//!
//! The PD is the console of the shell, like the PL011's on QEMU virt
//! ([`warden_driver::console::UartConsole`]): it binds the Meson UART in its device map
//! (`uart_vaddr`/`uart_size`/`uart_paddr`; the Odroid C4's AO UART at 0xff803000), resets it
//! at 115200 baud in the probe, takes line input on its receive interrupt (channel 1; GIC
//! INTID 225) and writes the shell's output (channel 2). Channel 0 is the device manager.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod device;

use warden_driver::console::{Uart, UartConsole};
use warden_driver::DriverPd;
use warden_microkit::DeviceRegisters;

/// What this PD expects of the system description (every console driver's).
pub use warden_driver::console::interface;

impl Uart for device::MesonUart<DeviceRegisters> {
    const NAME: &'static str = "meson-uart-console";
    // The AO UARTs; the EE UARTs (`amlogic,meson-gx-uart` alone) are not this PD's: it maps
    // one UART only, and a probe of another is answered NotMine.
    const COMPATIBLE: &'static [&'static str] = &["amlogic,meson-ao-uart"];
    type ProbeError = device::ProbeError;
    type WriteError = device::TxStuck;

    fn probe(registers: DeviceRegisters) -> Result<Self, Self::ProbeError> {
        device::MesonUart::probe(registers)
    }

    fn read_byte(&mut self) -> Option<u8> {
        device::MesonUart::read_byte(self)
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), Self::WriteError> {
        device::MesonUart::write_bytes(self, bytes)
    }

    fn acknowledge_interrupt(&mut self) {
        let _ = self.handle_interrupt();
    }
}

/// The console driver.
pub type ConsoleDriver = UartConsole<device::MesonUart<DeviceRegisters>>;

/// The PD's `init`.
#[must_use]
pub fn init() -> DriverPd<ConsoleDriver> {
    UartConsole::start()
}
