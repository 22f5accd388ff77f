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

use log::{info, warn};
use warden_driver::console::Console;
use warden_driver::{Answer, Callback, Driver, DriverPd, Probe};
use warden_microkit::{ChannelSet, DeviceRegion, DeviceRegisters};

/// What this PD expects of the system description.
pub mod interface {
    use warden_microkit::Channel;

    /// The device manager.
    pub const MANAGER: Channel = warden_driver::MANAGER;
    /// The UART's interrupt.
    pub const UART_IRQ: Channel = Channel::new(1);
    /// The shell (notifications both ways).
    pub const SHELL: Channel = Channel::new(2);
    /// The setvar symbols of the ring maps: (vaddr symbol, size symbol).
    pub const REGIONS: [(&str, &str); 2] = warden_driver::MANAGER_REGIONS;
    /// The shell's rings.
    pub const SHELL_REGIONS: [(&str, &str); 2] = warden_driver::console::SHELL_REGIONS;
    /// The device map: (vaddr symbol, size symbol, paddr symbol).
    pub const DEVICE_REGIONS: [(&str, &str, &str); 1] = [("uart_vaddr", "uart_size", "uart_paddr")];
}

/// The console driver.
pub struct ConsoleDriver {
    region: Option<DeviceRegion>,
    uart: Option<(warden_protocol::Handle, device::Pl011<DeviceRegisters>)>,
    console: Console,
}

impl ConsoleDriver {
    fn receive(&mut self) {
        let Some((_, uart)) = self.uart.as_mut() else {
            return;
        };
        let mut notify = false;
        while let Some(byte) = uart.read_byte() {
            notify |= self.console.receive(byte, &mut |bytes| write(uart, bytes));
        }
        if notify {
            interface::SHELL.notify();
        }
    }

    fn send_output(&mut self) {
        let Some((_, uart)) = self.uart.as_mut() else {
            return;
        };
        if self.console.drain_output(&mut |bytes| write(uart, bytes)) {
            interface::SHELL.notify();
        }
    }
}

fn write(uart: &mut device::Pl011<DeviceRegisters>, bytes: &[u8]) {
    if let Err(error) = uart.write_bytes(bytes) {
        warn!("console: {error}");
    }
}

impl Driver for ConsoleDriver {
    fn name(&self) -> &str {
        "pl011-console"
    }

    fn compatible(&self) -> &[&str] {
        &["arm,pl011"]
    }

    fn probe(&mut self, probe: &Probe) -> Answer {
        if self.uart.is_some() {
            return Answer::NotMine;
        }
        let Some(registers) = probe.registers(&[self.region]) else {
            return Answer::NotMine;
        };
        match device::Pl011::probe(registers) {
            Ok(uart) => {
                self.uart = Some((probe.callback.device, uart));
                self.console.reset();
                if self.console.has_shell() {
                    info!("console: PL011 bound; console output and line input for the shell");
                    // The shell greets when it hears the console is up.
                    interface::SHELL.notify();
                } else {
                    info!("console: PL011 bound; no shell is mapped, lines are logged");
                }
                Answer::Ok
            }
            Err(error) => {
                warn!("console: {error}");
                Answer::Failed(1)
            }
        }
    }

    fn remove(&mut self, callback: &Callback) -> Answer {
        if self
            .uart
            .as_ref()
            .is_some_and(|(device, _)| *device == callback.device)
        {
            self.uart = None;
        }
        Answer::Ok
    }

    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(interface::UART_IRQ) {
            if let Some((_, uart)) = self.uart.as_mut() {
                let _ = uart.handle_interrupt();
            }
            self.receive();
            interface::UART_IRQ.irq_ack();
        }
        if channels.contains(interface::SHELL) {
            self.send_output();
        }
    }
}

/// The PD's `init`.
#[must_use]
pub fn init() -> DriverPd<ConsoleDriver> {
    DriverPd::start(ConsoleDriver {
        region: warden_microkit::device_region!(uart_vaddr, uart_size, uart_paddr),
        uart: None,
        console: Console::from_system(),
    })
}
