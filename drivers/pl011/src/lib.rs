//! PL011 UART driver PD: the console.
//!
//! The register block and the driver logic are in [`device`] (generic over
//! `warden_registers::Registers`, tested against a model of the PL011). The `arm-pl011-uart`
//! crate was considered, but it is built on `safe-mmio` pointers to mapped registers, which the
//! host platform cannot serve (there, registers are reached through its device models).
//!
//! The PD binds `arm,pl011` (the device in its map `uart_vaddr`/`uart_size`/`uart_paddr`),
//! resets it in the probe, writes a banner, and takes line input on its receive interrupt
//! (channel 1, GIC INTID 33 on QEMU virt): characters are echoed and edited, and each complete
//! line is acknowledged on the console and logged. Channel 0 is the device manager.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod device;

use log::{info, warn};
use warden_driver::{Answer, Callback, Driver, DriverPd, Probe};
use warden_microkit::{ChannelSet, DeviceRegion, DeviceRegisters};

/// What this PD expects of the system description.
pub mod interface {
    use warden_microkit::Channel;

    /// The device manager.
    pub const MANAGER: Channel = warden_driver::MANAGER;
    /// The UART's interrupt.
    pub const UART_IRQ: Channel = Channel::new(1);
    /// The setvar symbols of the ring maps: (vaddr symbol, size symbol).
    pub const REGIONS: [(&str, &str); 2] = warden_driver::MANAGER_REGIONS;
    /// The device map: (vaddr symbol, size symbol, paddr symbol).
    pub const DEVICE_REGIONS: [(&str, &str, &str); 1] = [("uart_vaddr", "uart_size", "uart_paddr")];
}

/// The console driver.
pub struct ConsoleDriver {
    region: Option<DeviceRegion>,
    uart: Option<(warden_protocol::Handle, device::Pl011<DeviceRegisters>)>,
    editor: device::LineEditor,
}

impl ConsoleDriver {
    fn write(&mut self, bytes: &[u8]) {
        if let Some((_, uart)) = self.uart.as_mut() {
            if let Err(error) = uart.write_bytes(bytes) {
                warn!("console: {error}");
            }
        }
    }

    fn receive(&mut self) {
        loop {
            let Some(byte) = self.uart.as_mut().and_then(|(_, uart)| uart.read_byte()) else {
                return;
            };
            let outcome = self.editor.feed(byte);
            let echo = outcome.echo;
            let mut line = heapless::String::<128>::new();
            let mut overlong = None;
            let mut complete = false;
            match outcome.event {
                Some(device::LineEvent::Line(text)) => {
                    let _ = line.push_str(text);
                    complete = true;
                }
                Some(device::LineEvent::Overlong { length }) => overlong = Some(length),
                None => {}
            }
            self.write(echo.as_bytes());
            if let Some(length) = overlong {
                warn!("console: a line of {length} characters is too long; dropped");
                self.write(b"\r\nline too long\r\n> ");
            } else if complete {
                info!("console: line '{line}'");
                self.write(b"\r\nwarden: got '");
                self.write(line.as_bytes());
                self.write(b"'\r\n> ");
            }
        }
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
                self.editor = device::LineEditor::new();
                info!("console: PL011 bound; console output and line input on it");
                self.write(b"\r\nWarden console (PL011): type a line\r\n> ");
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
    }
}

/// The PD's `init`.
#[must_use]
pub fn init() -> DriverPd<ConsoleDriver> {
    DriverPd::start(ConsoleDriver {
        region: warden_microkit::device_region!(uart_vaddr, uart_size, uart_paddr),
        uart: None,
        editor: device::LineEditor::new(),
    })
}
