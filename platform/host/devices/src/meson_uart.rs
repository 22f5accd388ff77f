//! A model of the Amlogic Meson UART (the Odroid C4's AO UART) as a console on a byte stream,
//! with the register layout of Linux's `meson_uart.c`: the one model of the Meson UART, which
//! the launcher serves to the Meson UART driver PD and the driver's tests drive through the
//! register trait (`tests/meson_uart.rs`). The register map is the driver's
//! (`meson_uart_driver::device`).
//!
//! Reception: received bytes wait in a backlog of unlimited size and move into the 64-byte
//! receive FIFO while the receiver is enabled and not held in reset. Transmission is
//! instantaneous — a byte written to `WFIFO` goes to the output stream at that access, so the
//! transmit FIFO stays empty — unless the transmitter is held ([`MesonUart::hold_transmitter`]):
//! then written bytes fill the FIFO, `TX_FULL` rises at 64 and a write to a full FIFO latches
//! `TX_FIFO_WERR`. The reset bits (`TX_RST`, `RX_RST`) and `CLEAR_ERR` act while they are set and
//! never clear themselves, as `meson_uart.c` says of the device, so a driver that forgets to
//! write them back leaves the FIFOs held in reset. The receive interrupt is a level that holds
//! while `RX_INT_EN` is set and the FIFO holds at least MISC's receive count (a count of 0
//! never fires); the transmit interrupt while `TX_INT_EN` is set and the FIFO holds fewer than
//! MISC's transmit count. Baud rate and line settings are stored and read back but have no
//! effect.

use std::io::Write;

use meson_uart_driver::device::{control, offset, status, FIFO_DEPTH, WINDOW_SIZE};

use crate::serial::{Receiver, Transmitter};
use crate::{arm_register, truncate, Device, DmaMemory, Width};

/// The register window (six registers).
const WINDOW: u64 = WINDOW_SIZE as u64;

/// A Meson UART whose transmitter writes to a byte stream and whose receiver reads the bytes
/// it is given.
pub struct MesonUart {
    receiver: Receiver<u8>,
    transmitter: Transmitter,
    control: u32,
    misc: u32,
    reg5: u32,
    /// PARITY_ERR, FRAME_ERR, TX_FIFO_WERR as latched.
    errors: u32,
    register_reads: u64,
}

impl std::fmt::Debug for MesonUart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MesonUart")
            .field("receiver", &self.receiver)
            .field("tx_fifo", &self.transmitter.queued())
            .field("control", &self.control)
            .field("misc", &self.misc)
            .field("errors", &self.errors)
            .field("transmitted", &self.transmitter.transmitted())
            .finish_non_exhaustive()
    }
}

impl MesonUart {
    /// A UART as the boot firmware leaves it (transmitter and receiver enabled, interrupts
    /// off), transmitting to `output`.
    #[must_use]
    pub fn new(output: Box<dyn Write + Send>) -> Self {
        Self {
            receiver: Receiver::new(),
            transmitter: Transmitter::new(output, "meson-uart"),
            control: control::TX_EN | control::RX_EN,
            misc: 0,
            reg5: 0,
            errors: 0,
            register_reads: 0,
        }
    }

    /// Bytes arriving on the receive line, in order (console input).
    pub fn push_input(&mut self, bytes: &[u8]) {
        self.receiver.arrive(bytes.iter().copied());
        self.refill();
    }

    /// A byte arriving with errors (`PARITY_ERR`, `FRAME_ERR`), which STATUS latches.
    pub fn receive_with_errors(&mut self, byte: u8, errors: u32) {
        if !self.held(control::CLEAR_ERR) {
            self.errors |= errors & (status::PARITY_ERR | status::FRAME_ERR);
        }
        self.push_input(&[byte]);
    }

    /// Sets error bits in STATUS, as the device latches them (a test's hook).
    pub fn latch_errors(&mut self, errors: u32) {
        if !self.held(control::CLEAR_ERR) {
            self.errors |= errors & status::ERRORS;
        }
    }

    /// Holds the transmitter (flow control in effect) or releases it: what it held goes out.
    pub fn hold_transmitter(&mut self, held: bool) {
        self.transmitter.hold(held);
    }

    /// Bytes transmitted to the output stream.
    #[must_use]
    pub fn transmitted(&self) -> u64 {
        self.transmitter.transmitted()
    }

    /// Received bytes not yet read by the driver (receive FIFO and backlog).
    #[must_use]
    pub fn pending_input(&self) -> usize {
        self.receiver.pending()
    }

    /// Register reads since reset (a driver that polls a stuck device must give up).
    #[must_use]
    pub fn register_reads(&self) -> u64 {
        self.register_reads
    }

    fn held(&self, bit: u32) -> bool {
        self.control & bit != 0
    }

    fn receiving(&self) -> bool {
        self.held(control::RX_EN) && !self.held(control::RX_RST)
    }

    fn refill(&mut self) {
        if self.receiving() {
            self.receiver.refill(FIFO_DEPTH);
        }
    }

    fn status(&self) -> u32 {
        // The receive count (bits 0-6) as the S905X3 datasheet has it.
        let mut value = (self.receiver.level() as u32 & status::RX_COUNT_MASK) | self.errors;
        if self.receiver.level() == 0 {
            value |= status::RX_EMPTY;
        }
        if self.transmitter.queued() >= FIFO_DEPTH {
            value |= status::TX_FULL;
        }
        if self.transmitter.queued() == 0 {
            value |= status::TX_EMPTY;
        } else {
            value |= status::TX_BUSY;
        }
        value
    }

    fn transmit(&mut self, byte: u8) {
        if self.held(control::TX_RST) {
            return;
        }
        if !self.held(control::TX_EN) {
            log::debug!("meson-uart: byte {byte:#04x} written while the transmitter is disabled");
            return;
        }
        if !self.transmitter.write(byte, FIFO_DEPTH) && !self.held(control::CLEAR_ERR) {
            self.errors |= status::TX_FIFO_WERR;
        }
    }

    fn write_control(&mut self, value: u32) {
        self.control = value;
        if value & control::TX_RST != 0 {
            self.transmitter.clear();
        }
        if value & control::RX_RST != 0 {
            self.receiver.clear();
        }
        if value & control::CLEAR_ERR != 0 {
            self.errors = 0;
        }
        self.refill();
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
        self.register_reads += 1;
        let value = match arm_register(offset, width, WINDOW) {
            Some(offset::RFIFO) => {
                let byte = self.receiver.pop();
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
            Some(offset::CONTROL) => self.write_control(value),
            Some(offset::MISC) => self.misc = value,
            Some(offset::REG5) => self.reg5 = value,
            Some(_) => {}
            None => log::debug!("meson-uart: invalid {width:?} write at {offset:#x}"),
        }
    }

    fn irq_level(&self) -> bool {
        let receive_count = (self.misc & 0xff) as usize;
        let transmit_count = ((self.misc >> 8) & 0xff) as usize;
        let receive = self.held(control::RX_INT_EN)
            && receive_count > 0
            && self.receiver.level() >= receive_count;
        let transmit = self.held(control::TX_INT_EN) && self.transmitter.queued() < transmit_count;
        receive || transmit
    }
}
