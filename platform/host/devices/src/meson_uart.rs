//! A model of the Amlogic Meson UART (the Odroid C4's AO UART) as a console on a byte stream,
//! with the register layout of Linux's `meson_uart.c` (which the driver follows too).
//!
//! Transmission is instantaneous: a byte written to `WFIFO` goes to the output stream at that
//! access, so STATUS always says the transmit FIFO is empty and never full. Received bytes
//! wait in a backlog of unlimited size and move into the 64-byte receive FIFO while the
//! receiver is enabled and not held in reset. Holding `RX_RST` empties the receive FIFO;
//! `CLEAR_ERR` clears the (never set) error bits. The receive interrupt is a level that holds
//! while `RX_INT_EN` is set and the FIFO holds at least MISC's receive count. Baud rate and
//! line settings are stored and read back but have no effect.

use std::collections::VecDeque;
use std::io::Write;

use crate::{arm_register, emit, truncate, Device, DmaMemory, Width};

mod offset {
    pub const WFIFO: u64 = 0x00;
    pub const RFIFO: u64 = 0x04;
    pub const CONTROL: u64 = 0x08;
    pub const STATUS: u64 = 0x0c;
    pub const MISC: u64 = 0x10;
    pub const REG5: u64 = 0x14;
}

const CONTROL_TX_EN: u32 = 1 << 12;
const CONTROL_RX_EN: u32 = 1 << 13;
const CONTROL_RX_RST: u32 = 1 << 23;
const CONTROL_RX_INT_EN: u32 = 1 << 27;
const CONTROL_TX_INT_EN: u32 = 1 << 28;
const STATUS_RX_EMPTY: u32 = 1 << 20;
const STATUS_TX_EMPTY: u32 = 1 << 22;
/// Receive FIFO depth.
const FIFO_DEPTH: usize = 64;
/// The register window (six registers).
const WINDOW: u64 = 0x18;

/// A Meson UART whose transmitter writes to a byte stream and whose receiver reads bytes
/// pushed with [`MesonUart::push_input`].
pub struct MesonUart {
    output: Box<dyn Write + Send>,
    rx_fifo: VecDeque<u8>,
    backlog: VecDeque<u8>,
    control: u32,
    misc: u32,
    reg5: u32,
    transmitted: u64,
}

impl std::fmt::Debug for MesonUart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MesonUart")
            .field("rx_fifo", &self.rx_fifo.len())
            .field("backlog", &self.backlog.len())
            .field("control", &self.control)
            .field("misc", &self.misc)
            .field("transmitted", &self.transmitted)
            .finish_non_exhaustive()
    }
}

impl MesonUart {
    /// A UART as the boot firmware leaves it (transmitter and receiver enabled, interrupts
    /// off), transmitting to `output`.
    #[must_use]
    pub fn new(output: Box<dyn Write + Send>) -> Self {
        Self {
            output,
            rx_fifo: VecDeque::new(),
            backlog: VecDeque::new(),
            control: CONTROL_TX_EN | CONTROL_RX_EN,
            misc: 0,
            reg5: 0,
            transmitted: 0,
        }
    }

    /// Bytes arriving on the receive line, in order.
    pub fn push_input(&mut self, bytes: &[u8]) {
        self.backlog.extend(bytes);
        self.refill();
    }

    /// Bytes transmitted to the output stream.
    #[must_use]
    pub fn transmitted(&self) -> u64 {
        self.transmitted
    }

    fn receiving(&self) -> bool {
        self.control & CONTROL_RX_EN != 0 && self.control & CONTROL_RX_RST == 0
    }

    fn refill(&mut self) {
        if !self.receiving() {
            return;
        }
        while self.rx_fifo.len() < FIFO_DEPTH {
            let Some(byte) = self.backlog.pop_front() else {
                break;
            };
            self.rx_fifo.push_back(byte);
        }
    }

    fn status(&self) -> u32 {
        // The receive count (bits 0-6) as the S905X3 datasheet has it.
        let mut status = STATUS_TX_EMPTY | (self.rx_fifo.len() as u32 & 0x7f);
        if self.rx_fifo.is_empty() {
            status |= STATUS_RX_EMPTY;
        }
        status
    }

    fn transmit(&mut self, byte: u8) {
        if self.control & CONTROL_TX_EN == 0 {
            log::debug!("meson-uart: byte {byte:#04x} written while the transmitter is disabled");
            return;
        }
        emit(self.output.as_mut(), byte, "meson-uart");
        self.transmitted += 1;
    }
}

impl Device for MesonUart {
    fn kind(&self) -> &'static str {
        "meson-uart"
    }

    fn size(&self) -> u64 {
        WINDOW
    }

    fn read(&mut self, offset: u64, width: Width, _dma: &mut dyn DmaMemory) -> u32 {
        let value = match arm_register(offset, width, WINDOW) {
            Some(offset::RFIFO) => {
                let byte = self.rx_fifo.pop_front();
                self.refill();
                byte.map_or(0, u32::from)
            }
            Some(offset::CONTROL) => self.control,
            Some(offset::STATUS) => self.status(),
            Some(offset::MISC) => self.misc,
            Some(offset::REG5) => self.reg5,
            // WFIFO reads as zero.
            Some(_) => 0,
            None => {
                log::debug!("meson-uart: invalid {width:?} read at {offset:#x}");
                0
            }
        };
        truncate(value, width)
    }

    fn write(&mut self, offset: u64, width: Width, value: u32, _dma: &mut dyn DmaMemory) {
        let value = truncate(value, width);
        match arm_register(offset, width, WINDOW) {
            Some(offset::WFIFO) => self.transmit(value as u8),
            Some(offset::CONTROL) => {
                self.control = value;
                if value & CONTROL_RX_RST != 0 {
                    self.rx_fifo.clear();
                }
                self.refill();
            }
            Some(offset::MISC) => self.misc = value,
            Some(offset::REG5) => self.reg5 = value,
            Some(_) => {}
            None => log::debug!("meson-uart: invalid {width:?} write at {offset:#x}"),
        }
    }

    fn irq_level(&self) -> bool {
        let count = (self.misc & 0xff).max(1) as usize;
        let receive = self.control & CONTROL_RX_INT_EN != 0 && self.rx_fifo.len() >= count;
        // The transmit FIFO is always empty, so below any threshold.
        let transmit = self.control & CONTROL_TX_INT_EN != 0;
        receive || transmit
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;
    use crate::{NoDma, SharedOutput};

    #[test]
    fn bytes_transmit_and_receive_and_the_interrupt_follows_the_fifo() {
        let wire = SharedOutput::default();
        let mut uart = MesonUart::new(Box::new(wire.clone()));
        let dma = &mut NoDma;
        for byte in b"ok" {
            uart.write(offset::WFIFO, Width::U32, u32::from(*byte), dma);
        }
        assert_eq!(*wire.0.lock().unwrap(), b"ok");
        uart.push_input(b"hi");
        assert!(!uart.irq_level(), "receive interrupt not enabled");
        uart.write(offset::MISC, Width::U32, 1, dma);
        let control = uart.read(offset::CONTROL, Width::U32, dma);
        uart.write(
            offset::CONTROL,
            Width::U32,
            control | CONTROL_RX_INT_EN,
            dma,
        );
        assert!(uart.irq_level());
        assert_eq!(uart.read(offset::STATUS, Width::U32, dma) & 0x7f, 2);
        assert_eq!(uart.read(offset::RFIFO, Width::U32, dma), u32::from(b'h'));
        assert_eq!(uart.read(offset::RFIFO, Width::U32, dma), u32::from(b'i'));
        assert_ne!(
            uart.read(offset::STATUS, Width::U32, dma) & STATUS_RX_EMPTY,
            0
        );
        assert!(!uart.irq_level());
    }

    #[test]
    fn receive_reset_empties_the_fifo_and_holds_input_back() {
        let mut uart = MesonUart::new(Box::new(SharedOutput::default()));
        let dma = &mut NoDma;
        uart.push_input(b"stale");
        let control = uart.read(offset::CONTROL, Width::U32, dma);
        uart.write(offset::CONTROL, Width::U32, control | CONTROL_RX_RST, dma);
        uart.push_input(b"new");
        assert_ne!(
            uart.read(offset::STATUS, Width::U32, dma) & STATUS_RX_EMPTY,
            0
        );
        uart.write(offset::CONTROL, Width::U32, control, dma);
        assert_eq!(uart.read(offset::RFIFO, Width::U32, dma), u32::from(b'n'));
        // Outside the window, or not at a register: nothing happens, zero reads.
        assert_eq!(uart.read(0x18, Width::U32, dma), 0);
        assert_eq!(uart.read(0x05, Width::U8, dma), 0);
    }
}
