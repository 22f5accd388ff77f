//! A model of the ARM PrimeCell UART (PL011, TRM r1p5) as a console on a byte stream.
//!
//! Transmission is instantaneous: a byte written to `DR` goes to the output stream (flushed) at
//! that access, so the TX FIFO is always empty and never full. Received bytes wait in a backlog
//! of unlimited size and move into the RX FIFO (32 entries, 1 with the FIFOs disabled) while the
//! receiver is enabled, so no input is ever lost to an overrun: the host console is not a wire.
//! Baud rate, line control, modem lines and DMA are stored and read back but have no effect.

use std::collections::VecDeque;
use std::io::Write;

use crate::{arm_register, emit, primecell_id, truncate, Device, DmaMemory, Width};

/// Register offsets (TRM r1p5 table 3-1).
mod offset {
    pub const DR: u64 = 0x000;
    pub const RSR_ECR: u64 = 0x004;
    pub const FR: u64 = 0x018;
    pub const ILPR: u64 = 0x020;
    pub const IBRD: u64 = 0x024;
    pub const FBRD: u64 = 0x028;
    pub const LCR_H: u64 = 0x02c;
    pub const CR: u64 = 0x030;
    pub const IFLS: u64 = 0x034;
    pub const IMSC: u64 = 0x038;
    pub const RIS: u64 = 0x03c;
    pub const MIS: u64 = 0x040;
    pub const ICR: u64 = 0x044;
    pub const DMACR: u64 = 0x048;
}

/// Flag register bits.
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const FR_RXFF: u32 = 1 << 6;
const FR_TXFE: u32 = 1 << 7;
/// `LCR_H.FEN`: FIFOs enabled.
const LCR_H_FEN: u32 = 1 << 4;
/// Control register bits.
const CR_UARTEN: u32 = 1 << 0;
const CR_TXE: u32 = 1 << 8;
const CR_RXE: u32 = 1 << 9;
/// `CR` after reset: transmitter and receiver enabled, UART disabled.
const CR_RESET: u32 = CR_TXE | CR_RXE;
/// `IFLS` after reset: both FIFO levels at half.
const IFLS_RESET: u32 = 0x12;
/// Interrupt bits (RIS, MIS, IMSC, ICR).
const INT_RX: u32 = 1 << 4;
const INT_TX: u32 = 1 << 5;
const INT_RT: u32 = 1 << 6;
/// Interrupt bits that exist (`IMSC` is 11 bits wide).
const INT_ALL: u32 = 0x7ff;
/// RX FIFO depth with the FIFOs enabled.
const FIFO_DEPTH: usize = 32;
/// Size of the register window.
const WINDOW: u64 = 0x1000;
/// `UARTPeriphID0..3`.
const PERIPHERAL_ID: [u8; 4] = [0x11, 0x10, 0x34, 0x00];

/// A PL011 UART whose transmitter writes to a byte stream and whose receiver reads from bytes
/// pushed with [`Pl011::push_input`].
pub struct Pl011 {
    output: Box<dyn Write + Send>,
    /// Received bytes the driver can read from `DR`.
    rx_fifo: VecDeque<u8>,
    /// Pushed bytes that do not fit the RX FIFO yet, or arrived while reception is disabled.
    backlog: VecDeque<u8>,
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
    transmitted: u64,
    dropped_tx: u64,
}

impl std::fmt::Debug for Pl011 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pl011")
            .field("rx_fifo", &self.rx_fifo.len())
            .field("backlog", &self.backlog.len())
            .field("lcr_h", &self.lcr_h)
            .field("cr", &self.cr)
            .field("imsc", &self.imsc)
            .field("ris", &self.raw_interrupts())
            .field("transmitted", &self.transmitted)
            .field("dropped_tx", &self.dropped_tx)
            .finish_non_exhaustive()
    }
}

impl Pl011 {
    /// A UART in its reset state, transmitting to `output`.
    #[must_use]
    pub fn new(output: Box<dyn Write + Send>) -> Self {
        Self {
            output,
            rx_fifo: VecDeque::new(),
            backlog: VecDeque::new(),
            ilpr: 0,
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            cr: CR_RESET,
            ifls: IFLS_RESET,
            imsc: 0,
            dmacr: 0,
            tx_interrupt: false,
            transmitted: 0,
            dropped_tx: 0,
        }
    }

    /// Bytes arriving on the receive line, in order. They reach the RX FIFO while the UART and
    /// its receiver are enabled; until then, and beyond the FIFO's depth, they wait.
    pub fn push_input(&mut self, bytes: &[u8]) {
        self.backlog.extend(bytes);
        self.refill();
    }

    /// Bytes written to `DR` while the UART or its transmitter was disabled: real hardware
    /// would not have sent them.
    #[must_use]
    pub fn dropped_tx(&self) -> u64 {
        self.dropped_tx
    }

    /// Bytes transmitted to the output stream.
    #[must_use]
    pub fn transmitted(&self) -> u64 {
        self.transmitted
    }

    /// Received bytes not yet read by the driver (RX FIFO and backlog).
    #[must_use]
    pub fn pending_input(&self) -> usize {
        self.rx_fifo.len() + self.backlog.len()
    }

    fn fifo_depth(&self) -> usize {
        if self.lcr_h & LCR_H_FEN != 0 {
            FIFO_DEPTH
        } else {
            1
        }
    }

    fn enabled(&self, direction: u32) -> bool {
        self.cr & CR_UARTEN != 0 && self.cr & direction != 0
    }

    /// Moves waiting bytes into the RX FIFO while the receiver is enabled and there is room.
    fn refill(&mut self) {
        if !self.enabled(CR_RXE) {
            return;
        }
        while self.rx_fifo.len() < self.fifo_depth() {
            let Some(byte) = self.backlog.pop_front() else {
                break;
            };
            self.rx_fifo.push_back(byte);
        }
    }

    /// `RIS`. The receive and receive-timeout interrupts are modelled as levels that hold while
    /// the RX FIFO has data: with instantaneous input there is no trigger level or timeout to
    /// model, and a driver that drains the FIFO in its handler sees the real behaviour.
    fn raw_interrupts(&self) -> u32 {
        let mut ris = 0;
        if !self.rx_fifo.is_empty() {
            ris |= INT_RX | INT_RT;
        }
        if self.tx_interrupt {
            ris |= INT_TX;
        }
        ris
    }

    fn flags(&self) -> u32 {
        // The TX FIFO is always empty (transmission is instant), so TXFE is set, TXFF and BUSY
        // never are.
        let mut flags = FR_TXFE;
        if self.rx_fifo.is_empty() {
            flags |= FR_RXFE;
        }
        if self.rx_fifo.len() >= self.fifo_depth() {
            flags |= FR_RXFF;
        }
        debug_assert_eq!(flags & FR_TXFF, 0);
        flags
    }

    fn transmit(&mut self, byte: u8) {
        self.tx_interrupt = false;
        if !self.enabled(CR_TXE) {
            self.dropped_tx += 1;
            log::debug!("pl011: byte {byte:#04x} written while the transmitter is disabled");
            return;
        }
        emit(self.output.as_mut(), byte, "pl011");
        self.transmitted += 1;
        self.tx_interrupt = true;
    }

    fn read_register(&mut self, register: u64) -> u32 {
        match register {
            offset::DR => {
                let byte = self.rx_fifo.pop_front();
                self.refill();
                // Bits 8..11 are the receive error flags, never set here.
                byte.map_or(0, u32::from)
            }
            offset::RSR_ECR => 0,
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

    fn write_register(&mut self, register: u64, value: u32) {
        match register {
            offset::DR => self.transmit(value as u8),
            // A write to ECR clears the receive errors, of which there are none.
            offset::RSR_ECR => {}
            offset::ILPR => self.ilpr = value & 0xff,
            offset::IBRD => self.ibrd = value & 0xffff,
            offset::FBRD => self.fbrd = value & 0x3f,
            offset::LCR_H => {
                self.lcr_h = value & 0xff;
                // With the FIFOs disabled the receive side holds one byte: put the others back
                // at the head of the backlog rather than losing them.
                while self.rx_fifo.len() > self.fifo_depth() {
                    if let Some(byte) = self.rx_fifo.pop_back() {
                        self.backlog.push_front(byte);
                    }
                }
                self.refill();
            }
            offset::CR => {
                self.cr = value & 0xff87;
                self.refill();
            }
            offset::IFLS => self.ifls = value & 0x3f,
            offset::IMSC => self.imsc = value & INT_ALL,
            offset::ICR => {
                // RX and RT reassert at once while data remains (see `raw_interrupts`).
                if value & INT_TX != 0 {
                    self.tx_interrupt = false;
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

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;
    use crate::NoDma;
    use crate::SharedOutput;

    fn uart() -> (Pl011, SharedOutput) {
        let output = SharedOutput::default();
        (Pl011::new(Box::new(output.clone())), output)
    }

    fn read(uart: &mut Pl011, offset: u64) -> u32 {
        uart.read(offset, Width::U32, &mut NoDma)
    }

    fn write(uart: &mut Pl011, offset: u64, value: u32) {
        uart.write(offset, Width::U32, value, &mut NoDma);
    }

    fn enable(uart: &mut Pl011) {
        write(uart, offset::LCR_H, LCR_H_FEN | 0x60);
        write(uart, offset::CR, CR_UARTEN | CR_TXE | CR_RXE);
    }

    #[test]
    fn registers_have_their_reset_values_and_identify_the_pl011() {
        let (mut uart, _) = uart();
        assert_eq!(read(&mut uart, offset::CR), 0x300);
        assert_eq!(read(&mut uart, offset::FR), FR_TXFE | FR_RXFE);
        assert_eq!(read(&mut uart, offset::IFLS), 0x12);
        assert_eq!(read(&mut uart, offset::LCR_H), 0);
        assert_eq!(read(&mut uart, offset::IMSC), 0);
        assert_eq!(read(&mut uart, offset::RIS), 0);
        let ids: Vec<u32> = (0..8)
            .map(|index| read(&mut uart, 0xfe0 + 4 * index))
            .collect();
        assert_eq!(ids, [0x11, 0x10, 0x34, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
        assert_eq!(uart.kind(), "pl011");
        assert_eq!(uart.size(), 0x1000);
        assert!(!uart.irq_level());
    }

    #[test]
    fn invalid_accesses_read_zero_and_change_nothing() {
        let (mut uart, output) = uart();
        enable(&mut uart);
        assert_eq!(uart.read(0x1000, Width::U32, &mut NoDma), 0);
        assert_eq!(uart.read(0x19, Width::U8, &mut NoDma), 0);
        assert_eq!(uart.read(0x100, Width::U32, &mut NoDma), 0);
        uart.write(0x1, Width::U8, u32::from(b'x'), &mut NoDma);
        uart.write(0xffe, Width::U32, 1, &mut NoDma);
        write(&mut uart, offset::FR, 0);
        assert!(output.0.lock().unwrap().is_empty());
        // A byte-wide access at a register's address is fine.
        assert_eq!(uart.read(offset::CR, Width::U8, &mut NoDma), 0x01);
        assert_eq!(uart.read(offset::CR, Width::U16, &mut NoDma), 0x301);
    }

    #[test]
    fn transmits_only_while_uart_and_transmitter_are_enabled() {
        let (mut uart, output) = uart();
        write(&mut uart, offset::DR, u32::from(b'a'));
        assert_eq!(uart.dropped_tx(), 1);
        enable(&mut uart);
        uart.write(offset::DR, Width::U8, u32::from(b'h'), &mut NoDma);
        write(&mut uart, offset::DR, 0x100 | u32::from(b'i'));
        write(&mut uart, offset::CR, CR_UARTEN | CR_RXE);
        write(&mut uart, offset::DR, u32::from(b'!'));
        assert_eq!(output.0.lock().unwrap().as_slice(), b"hi");
        assert_eq!(uart.dropped_tx(), 2);
        assert_eq!(uart.transmitted(), 2);
        assert_eq!(read(&mut uart, offset::FR) & (FR_TXFF | FR_TXFE), FR_TXFE);
    }

    #[test]
    fn rx_fifo_holds_32_bytes_and_refills_from_the_backlog() {
        let (mut uart, _) = uart();
        let input: Vec<u8> = (0..40).collect();
        uart.push_input(&input);
        // Reception is disabled after reset: nothing reaches the FIFO.
        assert_eq!(read(&mut uart, offset::FR) & FR_RXFE, FR_RXFE);
        assert_eq!(read(&mut uart, offset::DR), 0);
        enable(&mut uart);
        assert_eq!(read(&mut uart, offset::FR) & (FR_RXFE | FR_RXFF), FR_RXFF);
        assert_eq!(uart.rx_fifo.len(), 32);
        let mut received = Vec::new();
        while read(&mut uart, offset::FR) & FR_RXFE == 0 {
            received.push(read(&mut uart, offset::DR) as u8);
        }
        assert_eq!(received, input);
        assert_eq!(uart.pending_input(), 0);
    }

    #[test]
    fn with_fifos_disabled_the_receiver_holds_one_byte() {
        let (mut uart, _) = uart();
        write(&mut uart, offset::CR, CR_UARTEN | CR_TXE | CR_RXE);
        uart.push_input(b"ab");
        assert_eq!(read(&mut uart, offset::FR) & FR_RXFF, FR_RXFF);
        write(&mut uart, offset::LCR_H, LCR_H_FEN);
        assert_eq!(uart.rx_fifo.len(), 2);
        write(&mut uart, offset::LCR_H, 0);
        assert_eq!(read(&mut uart, offset::DR), u32::from(b'a'));
        assert_eq!(read(&mut uart, offset::DR), u32::from(b'b'));
        assert_eq!(read(&mut uart, offset::DR), 0);
    }

    #[test]
    fn rx_interrupt_holds_while_data_remains() {
        let (mut uart, _) = uart();
        enable(&mut uart);
        write(&mut uart, offset::IMSC, INT_RX | INT_RT);
        assert!(!uart.irq_level());
        uart.push_input(b"xy");
        assert!(uart.irq_level());
        assert_eq!(read(&mut uart, offset::MIS), INT_RX | INT_RT);
        write(&mut uart, offset::ICR, INT_ALL);
        assert!(uart.irq_level(), "reasserts while the FIFO has data");
        read(&mut uart, offset::DR);
        read(&mut uart, offset::DR);
        assert!(!uart.irq_level());
        assert_eq!(read(&mut uart, offset::RIS), 0);
    }

    #[test]
    fn tx_interrupt_is_set_by_a_transmitted_byte_and_cleared_by_icr() {
        let (mut uart, _) = uart();
        enable(&mut uart);
        write(&mut uart, offset::IMSC, INT_TX);
        write(&mut uart, offset::DR, u32::from(b'z'));
        assert_eq!(read(&mut uart, offset::RIS), INT_TX);
        assert!(uart.irq_level());
        write(&mut uart, offset::ICR, INT_TX);
        assert!(!uart.irq_level());
        write(&mut uart, offset::DR, u32::from(b'z'));
        assert!(uart.irq_level());
        write(&mut uart, offset::IMSC, 0);
        assert!(!uart.irq_level());
        assert_eq!(read(&mut uart, offset::RIS), INT_TX);
        assert_eq!(read(&mut uart, offset::MIS), 0);
    }

    #[test]
    fn stored_registers_read_back_masked_to_their_width() {
        let (mut uart, _) = uart();
        write(&mut uart, offset::IBRD, 0xffff_ffff);
        write(&mut uart, offset::FBRD, 0xffff_ffff);
        write(&mut uart, offset::IFLS, 0xffff_ffff);
        write(&mut uart, offset::DMACR, 0xffff_ffff);
        assert_eq!(read(&mut uart, offset::IBRD), 0xffff);
        assert_eq!(read(&mut uart, offset::FBRD), 0x3f);
        assert_eq!(read(&mut uart, offset::IFLS), 0x3f);
        assert_eq!(read(&mut uart, offset::DMACR), 0x7);
    }
}
