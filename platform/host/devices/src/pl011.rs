//! A model of the ARM PrimeCell UART (PL011, TRM r1p5) as a console on a byte stream: the one
//! model of the PL011, which the launcher serves to the UART driver PD and the driver's tests
//! drive through the register trait (`tests/pl011.rs`). The register map is the driver's own
//! (`pl011_driver::device`), written once.
//!
//! Reception: received characters (a data byte and DR's error flags) wait in a backlog of
//! unlimited size and move into the RX FIFO (32 entries, 1 with the FIFOs disabled) while the
//! receiver is enabled, so no console input is lost to an overrun: the host console is not a
//! wire. The receive interrupt follows the FIFO level against `IFLS`'s trigger; the receive
//! timeout is raised when the line goes idle with data below it. Console input
//! ([`Pl011::push_input`]) arrives and the line goes idle at once; a test can let characters
//! arrive ([`Pl011::receive`], [`Pl011::receive_with_errors`]) and the line idle later
//! ([`Pl011::line_idle`]).
//!
//! Transmission is instantaneous: a byte written to `DR` goes to the output stream (flushed) at
//! that access, so the TX FIFO stays empty — unless the transmitter is held
//! ([`Pl011::hold_transmitter`], flow control in effect): then written bytes fill the TX FIFO,
//! `TXFF` rises at 32 and further writes are lost, as on the device, until it is released.
//! Baud rate, line control, modem lines and DMA are stored and read back but have no effect.

use std::io::Write;

use pl011_driver::device::{control, data, flag, interrupt, line_control, offset, FIFO_DEPTH};

use crate::serial::{Receiver, Transmitter};
use crate::{arm_register, primecell_id, truncate, Device, DmaMemory, Width};

/// `CR` after reset: transmitter and receiver enabled, UART disabled.
const CR_RESET: u32 = control::TXE | control::RXE;
/// `IFLS` after reset: both FIFO levels at half.
const IFLS_RESET: u32 = pl011_driver::device::FIFO_LEVELS_HALF;
/// Size of the register window.
const WINDOW: u64 = 0x1000;
/// `UARTPeriphID0..3`.
const PERIPHERAL_ID: [u8; 4] = [0x11, 0x10, 0x34, 0x00];

/// A PL011 UART whose transmitter writes to a byte stream and whose receiver reads the
/// characters it is given.
pub struct Pl011 {
    /// Received characters (data byte | error flags).
    receiver: Receiver<u32>,
    transmitter: Transmitter,
    /// `RSR`: the error flags of the last character read.
    receive_status: u32,
    ilpr: u32,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
    dmacr: u32,
    /// `TXRIS`: a transmitted byte has left since the last clear.
    tx_interrupt: bool,
    /// `RTRIS`: the line went idle with data below the trigger level.
    timeout_interrupt: bool,
    dropped_tx: u64,
    register_reads: u64,
}

impl std::fmt::Debug for Pl011 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pl011")
            .field("receiver", &self.receiver)
            .field("tx_fifo", &self.transmitter.queued())
            .field("lcr_h", &self.lcr_h)
            .field("cr", &self.cr)
            .field("imsc", &self.imsc)
            .field("ris", &self.raw_interrupts())
            .field("transmitted", &self.transmitter.transmitted())
            .field("dropped_tx", &self.dropped_tx)
            .finish_non_exhaustive()
    }
}

impl Pl011 {
    /// A UART in its reset state, transmitting to `output`.
    #[must_use]
    pub fn new(output: Box<dyn Write + Send>) -> Self {
        Self {
            receiver: Receiver::new(),
            transmitter: Transmitter::new(output, "pl011"),
            receive_status: 0,
            ilpr: 0,
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            cr: CR_RESET,
            ifls: IFLS_RESET,
            imsc: 0,
            dmacr: 0,
            tx_interrupt: false,
            timeout_interrupt: false,
            dropped_tx: 0,
            register_reads: 0,
        }
    }

    /// Console input: the bytes arrive, then the line goes idle (a host console has no bit
    /// times: the last byte is in when the push returns).
    pub fn push_input(&mut self, bytes: &[u8]) {
        self.receive(bytes);
        self.line_idle();
    }

    /// Characters arriving on the receive line, in order. They reach the RX FIFO while the UART
    /// and its receiver are enabled; until then, and beyond the FIFO's depth, they wait.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.receiver
            .arrive(bytes.iter().map(|&byte| u32::from(byte)));
        self.refill();
    }

    /// One character received with error flags (`DR` bits 8–11: framing, parity, break,
    /// overrun).
    pub fn receive_with_errors(&mut self, byte: u8, errors: u32) {
        self.receiver
            .arrive([u32::from(byte) | (errors & data::ERRORS)]);
        self.refill();
    }

    /// The line stays idle for 32 bit periods: data below the trigger level raises the
    /// receive timeout.
    pub fn line_idle(&mut self) {
        if self.receiver.level() > 0 {
            self.timeout_interrupt = true;
        }
    }

    /// Holds the transmitter (flow control in effect) or releases it: what it held goes out.
    pub fn hold_transmitter(&mut self, held: bool) {
        let queued = self.transmitter.queued();
        self.transmitter.hold(held);
        if !held && queued > 0 {
            self.tx_interrupt = true;
        }
    }

    /// Bytes written to `DR` while the UART or its transmitter was disabled, or into a full
    /// TX FIFO: real hardware would not have sent them.
    #[must_use]
    pub fn dropped_tx(&self) -> u64 {
        self.dropped_tx
    }

    /// Bytes transmitted to the output stream.
    #[must_use]
    pub fn transmitted(&self) -> u64 {
        self.transmitter.transmitted()
    }

    /// Received characters not yet read by the driver (RX FIFO and backlog).
    #[must_use]
    pub fn pending_input(&self) -> usize {
        self.receiver.pending()
    }

    /// Register reads since reset (a driver that polls a stuck device must give up).
    #[must_use]
    pub fn register_reads(&self) -> u64 {
        self.register_reads
    }

    fn fifo_depth(&self) -> usize {
        if self.lcr_h & line_control::FEN != 0 {
            FIFO_DEPTH
        } else {
            1
        }
    }

    /// The receive FIFO level that raises the receive interrupt (`IFLS` bits 3–5).
    fn receive_trigger(&self) -> usize {
        if self.lcr_h & line_control::FEN == 0 {
            return 1;
        }
        match (self.ifls >> 3) & 0b111 {
            0b000 => FIFO_DEPTH / 8,
            0b001 => FIFO_DEPTH / 4,
            0b010 => FIFO_DEPTH / 2,
            0b011 => FIFO_DEPTH * 3 / 4,
            _ => FIFO_DEPTH * 7 / 8,
        }
    }

    fn enabled(&self, direction: u32) -> bool {
        self.cr & control::UARTEN != 0 && self.cr & direction != 0
    }

    /// Moves waiting characters into the RX FIFO while the receiver is enabled and there is
    /// room.
    fn refill(&mut self) {
        if self.enabled(control::RXE) {
            self.receiver.refill(self.fifo_depth());
        }
    }

    /// `RIS`.
    fn raw_interrupts(&self) -> u32 {
        let mut ris = 0;
        let level = self.receiver.level();
        if level > 0 && level >= self.receive_trigger() {
            ris |= interrupt::RX;
        }
        if self.timeout_interrupt {
            ris |= interrupt::RT;
        }
        if self.tx_interrupt {
            ris |= interrupt::TX;
        }
        ris
    }

    fn flags(&self) -> u32 {
        let mut flags = 0;
        if self.transmitter.queued() == 0 {
            flags |= flag::TXFE;
        } else {
            flags |= flag::BUSY;
        }
        if self.transmitter.queued() >= self.fifo_depth() {
            flags |= flag::TXFF;
        }
        if self.receiver.level() == 0 {
            flags |= flag::RXFE;
        }
        if self.receiver.level() >= self.fifo_depth() {
            flags |= flag::RXFF;
        }
        flags
    }

    fn transmit(&mut self, byte: u8) {
        self.tx_interrupt = false;
        if !self.enabled(control::TXE) {
            self.dropped_tx += 1;
            log::debug!("pl011: byte {byte:#04x} written while the transmitter is disabled");
            return;
        }
        if !self.transmitter.write(byte, self.fifo_depth()) {
            self.dropped_tx += 1;
        } else if self.transmitter.queued() == 0 {
            // Sent: the byte left, which raises TX.
            self.tx_interrupt = true;
        }
    }

    fn read_register(&mut self, register: usize) -> u32 {
        self.register_reads += 1;
        match register {
            offset::DR => {
                let character = self.receiver.pop().unwrap_or(0);
                self.receive_status = (character & data::ERRORS) >> 8;
                self.refill();
                if self.receiver.level() == 0 {
                    self.timeout_interrupt = false;
                }
                character
            }
            offset::RSR_ECR => self.receive_status,
            offset::FR => self.flags(),
            offset::ILPR => self.ilpr,
            offset::IBRD => self.ibrd,
            offset::FBRD => self.fbrd,
            offset::LCR_H => self.lcr_h,
            offset::CR => self.cr,
            offset::IFLS => self.ifls,
            offset::IMSC => self.imsc,
            offset::RIS => self.raw_interrupts(),
            offset::MIS => self.raw_interrupts() & self.imsc,
            offset::DMACR => self.dmacr,
            _ => primecell_id(register, PERIPHERAL_ID).unwrap_or_else(|| {
                log::debug!("pl011: read of unknown register {register:#x}");
                0
            }),
        }
    }

    fn write_register(&mut self, register: usize, value: u32) {
        match register {
            offset::DR => self.transmit(value as u8),
            offset::RSR_ECR => self.receive_status = 0,
            offset::ILPR => self.ilpr = value & 0xff,
            offset::IBRD => self.ibrd = value & 0xffff,
            offset::FBRD => self.fbrd = value & 0x3f,
            offset::LCR_H => {
                self.lcr_h = value & 0xff;
                // Disabling the FIFOs flushes the transmit FIFO only: what the receive FIFO
                // holds stays there until read (new characters then arrive one at a time).
                if self.lcr_h & line_control::FEN == 0 {
                    self.transmitter.clear();
                }
                self.refill();
            }
            offset::CR => {
                self.cr = value & 0xff87;
                self.refill();
            }
            offset::IFLS => self.ifls = value & 0x3f,
            offset::IMSC => self.imsc = value & interrupt::ALL,
            offset::ICR => {
                // RX follows the FIFO level and reasserts at once while it holds.
                if value & interrupt::TX != 0 {
                    self.tx_interrupt = false;
                }
                if value & interrupt::RT != 0 {
                    self.timeout_interrupt = false;
                }
            }
            offset::DMACR => self.dmacr = value & 0x7,
            _ => log::debug!(
                "pl011: write of {value:#x} to read-only or unknown register {register:#x}"
            ),
        }
    }
}

impl Device for Pl011 {
    fn kind(&self) -> &'static str {
        "pl011"
    }

    fn size(&self) -> u64 {
        WINDOW
    }

    fn read(&mut self, offset: u64, width: Width, _dma: &mut dyn DmaMemory) -> u32 {
        match arm_register(offset, width, WINDOW) {
            Some(register) => truncate(self.read_register(register), width),
            None => {
                log::debug!("pl011: invalid {width:?} read at {offset:#x}");
                0
            }
        }
    }

    fn write(&mut self, offset: u64, width: Width, value: u32, _dma: &mut dyn DmaMemory) {
        match arm_register(offset, width, WINDOW) {
            Some(register) => self.write_register(register, truncate(value, width)),
            None => log::debug!("pl011: invalid {width:?} write at {offset:#x}"),
        }
    }

    fn irq_level(&self) -> bool {
        self.raw_interrupts() & self.imsc != 0
    }
}
