//! The PL011 register block and the driver logic over [`Registers`] (the console's line
//! editor is `warden_driver::console`'s).

use core::fmt;

use warden_registers::Registers;

/// Register offsets (PrimeCell UART (PL011) Technical Reference Manual r1p5, table 3-1).
pub mod offset {
    /// Data register: a read pops the receive FIFO, a write pushes the transmit FIFO.
    pub const DR: usize = 0x000;
    /// Receive status (read) / error clear (write).
    pub const RSR_ECR: usize = 0x004;
    /// Flag register.
    pub const FR: usize = 0x018;
    /// IrDA low-power counter.
    pub const ILPR: usize = 0x020;
    /// Integer baud rate divisor.
    pub const IBRD: usize = 0x024;
    /// Fractional baud rate divisor.
    pub const FBRD: usize = 0x028;
    /// Line control; writing it latches IBRD and FBRD.
    pub const LCR_H: usize = 0x02C;
    /// Control register.
    pub const CR: usize = 0x030;
    /// Interrupt FIFO level select.
    pub const IFLS: usize = 0x034;
    /// Interrupt mask set/clear (1 = the interrupt is enabled).
    pub const IMSC: usize = 0x038;
    /// Raw interrupt status.
    pub const RIS: usize = 0x03C;
    /// Masked interrupt status (RIS & IMSC).
    pub const MIS: usize = 0x040;
    /// Interrupt clear (write 1 to clear).
    pub const ICR: usize = 0x044;
    /// DMA control.
    pub const DMACR: usize = 0x048;
    /// Peripheral identification registers 0..3, one byte each.
    pub const PERIPH_ID0: usize = 0xFE0;
    /// PrimeCell identification registers 0..3, one byte each.
    pub const PCELL_ID0: usize = 0xFF0;
}

/// Flag register (FR) bits.
pub mod flag {
    /// The UART is transmitting (set while the transmit FIFO is not empty).
    pub const BUSY: u32 = 1 << 3;
    /// Receive FIFO empty.
    pub const RXFE: u32 = 1 << 4;
    /// Transmit FIFO full.
    pub const TXFF: u32 = 1 << 5;
    /// Receive FIFO full.
    pub const RXFF: u32 = 1 << 6;
    /// Transmit FIFO empty.
    pub const TXFE: u32 = 1 << 7;
}

/// Line control register (LCR_H) bits.
pub mod line_control {
    /// FIFOs enabled; clearing it flushes the transmit FIFO.
    pub const FEN: u32 = 1 << 4;
    /// Word length field (bits 5-6).
    pub const WLEN_MASK: u32 = 0b11 << 5;
    /// Eight data bits.
    pub const WLEN_8: u32 = 0b11 << 5;
}

/// Control register (CR) bits.
pub mod control {
    /// UART enable.
    pub const UARTEN: u32 = 1 << 0;
    /// Transmit enable.
    pub const TXE: u32 = 1 << 8;
    /// Receive enable.
    pub const RXE: u32 = 1 << 9;
}

/// Interrupt bits, the same in IMSC, RIS, MIS and ICR.
pub mod interrupt {
    /// Receive: the receive FIFO reached its trigger level.
    pub const RX: u32 = 1 << 4;
    /// Transmit: the transmit FIFO drained to its trigger level.
    pub const TX: u32 = 1 << 5;
    /// Receive timeout: data waits in the receive FIFO below the trigger level.
    pub const RT: u32 = 1 << 6;
    /// Framing error.
    pub const FE: u32 = 1 << 7;
    /// Parity error.
    pub const PE: u32 = 1 << 8;
    /// Break error.
    pub const BE: u32 = 1 << 9;
    /// Overrun error.
    pub const OE: u32 = 1 << 10;
    /// Every interrupt, including the modem-status ones (bits 0-3).
    pub const ALL: u32 = 0x7FF;
}

/// Error flags a read of DR carries above the data byte.
pub mod data {
    /// The byte's bits: the rest of a DR read is error flags.
    pub const BYTE: u32 = 0xFF;
    /// Framing, parity, break and overrun error of the character read.
    pub const ERRORS: u32 = 0xF00;
}

/// IFLS value: receive and transmit interrupts at half-full FIFOs (the reset value). The
/// receive timeout interrupt covers the bytes that stay below the trigger level.
pub const FIFO_LEVELS_HALF: u32 = (0b010 << 3) | 0b010;

/// Receive FIFO depth of r1p5.
pub const FIFO_DEPTH: usize = 32;

/// How many polls before the driver gives up on the device, and what it reports then (the
/// same for every UART: `warden_driver::console`).
pub use warden_driver::console::{TxStuck, SPIN_LIMIT};

pub use warden_registers::PrimeCellIdentification;

/// The PL011's PrimeCell part number.
pub const PART_PL011: u16 = 0x011;

/// Why a probe refused the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// The identification registers do not describe a PL011 (or the window does not reach
    /// them: reads outside it return all ones).
    NotPl011 {
        /// What the identification registers hold.
        found: PrimeCellIdentification,
    },
    /// The baud rate cannot be reached from this reference clock (the divisor is zero or
    /// does not fit IBRD).
    InvalidBaudRate {
        /// The reference clock, in Hz.
        reference_clock_hz: u32,
        /// The baud rate asked for.
        baud_rate: u32,
    },
}

impl fmt::Display for ProbeError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPl011 { found } => write!(
                formatter,
                "not a PL011: PeriphID {:#010x}, PCellID {:#010x}",
                found.peripheral, found.primecell
            ),
            Self::InvalidBaudRate {
                reference_clock_hz,
                baud_rate,
            } => write!(
                formatter,
                "{baud_rate} baud cannot be derived from a {reference_clock_hz} Hz clock"
            ),
        }
    }
}

/// The line settings a probe programs (always 8 data bits, no parity, one stop bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineSettings {
    /// UARTCLK, in Hz.
    pub reference_clock_hz: u32,
    /// The baud rate.
    pub baud_rate: u32,
}

impl LineSettings {
    /// QEMU's `virt` machine: a 24 MHz `apb-pclk`, 115200 baud.
    pub const QEMU_VIRT: Self = Self {
        reference_clock_hz: 24_000_000,
        baud_rate: 115_200,
    };

    /// IBRD and FBRD: the divisor `clock / (16 * baud)` in 16.6 fixed point, rounded to
    /// nearest as the TRM's example (section 3.3.6) does.
    #[must_use]
    pub const fn divisors(self) -> Option<(u32, u32)> {
        if self.baud_rate == 0 {
            return None;
        }
        // 64 * clock / (16 * baud) = 4 * clock / baud; one more bit of precision to round.
        let doubled = (self.reference_clock_hz as u64 * 8) / self.baud_rate as u64;
        let divisor = doubled.div_ceil(2);
        let integer = divisor >> 6;
        let fraction = divisor & 0x3F;
        if integer == 0 || integer > 0xFFFF || (integer == 0xFFFF && fraction != 0) {
            return None;
        }
        Some((integer as u32, fraction as u32))
    }
}

impl Default for LineSettings {
    fn default() -> Self {
        Self::QEMU_VIRT
    }
}

/// What [`Pl011::handle_interrupt`] found pending (and cleared): the MIS bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptCause {
    masked_status: u32,
}

impl InterruptCause {
    /// The MIS bits, as in [`interrupt`].
    #[must_use]
    pub const fn bits(self) -> u32 {
        self.masked_status
    }

    /// Nothing was pending: the interrupt was spurious or already handled.
    #[must_use]
    pub const fn is_spurious(self) -> bool {
        self.masked_status == 0
    }

    /// Received data waits: read it with [`Pl011::read_byte`] until it returns `None`.
    #[must_use]
    pub const fn data_received(self) -> bool {
        self.masked_status & (interrupt::RX | interrupt::RT) != 0
    }

    /// The transmit FIFO drained to its trigger level.
    #[must_use]
    pub const fn transmit_space(self) -> bool {
        self.masked_status & interrupt::TX != 0
    }

    /// A framing, parity, break or overrun error.
    #[must_use]
    pub const fn receive_error(self) -> bool {
        self.masked_status & (interrupt::FE | interrupt::PE | interrupt::BE | interrupt::OE) != 0
    }
}

/// A PL011 UART, reset and running at its [`LineSettings`] (8N1, FIFOs on).
#[derive(Debug)]
pub struct Pl011<R: Registers> {
    registers: R,
    receive_errors: u32,
}

impl<R: Registers> Pl011<R> {
    /// Identifies the device and resets it at [`LineSettings::QEMU_VIRT`].
    ///
    /// # Errors
    /// [`ProbeError::NotPl011`] if the identification registers describe another device.
    pub fn probe(registers: R) -> Result<Self, ProbeError> {
        Self::probe_with_settings(registers, LineSettings::QEMU_VIRT)
    }

    /// Identifies the device and resets it, whatever state a previous driver left it in:
    /// disable, let the character on the wire finish, flush the transmit FIFO, drain stale
    /// received data, clear errors and every interrupt, mask all, program the line, unmask
    /// receive and receive timeout, enable.
    ///
    /// # Errors
    /// [`ProbeError::NotPl011`] if the identification registers describe another device;
    /// [`ProbeError::InvalidBaudRate`] if `settings` cannot be programmed. Either way the
    /// device has not been written to.
    pub fn probe_with_settings(registers: R, settings: LineSettings) -> Result<Self, ProbeError> {
        let found = PrimeCellIdentification::read(&registers);
        if !found.is_arm_part(PART_PL011) {
            return Err(ProbeError::NotPl011 { found });
        }
        let (integer, fraction) = settings.divisors().ok_or(ProbeError::InvalidBaudRate {
            reference_clock_hz: settings.reference_clock_hz,
            baud_rate: settings.baud_rate,
        })?;

        // Masked first, so nothing the reset itself raises reaches the interrupt controller.
        registers.write32(offset::IMSC, 0);
        registers.write32(offset::CR, 0);
        // The TRM's reprogramming sequence waits for the current character; a transmitter
        // that never finishes (stale data behind a disabled UART) is flushed regardless.
        let uart = Self {
            registers,
            receive_errors: 0,
        };
        uart.wait_for(|flags| flags & flag::BUSY == 0);
        uart.registers.write32(offset::LCR_H, 0);
        // Clearing FEN flushes only the transmit side; stale received bytes are read out,
        // bounded as Linux's pl011 does (twice the FIFO depth) in case the line keeps talking.
        for _ in 0..2 * FIFO_DEPTH {
            if uart.flags() & flag::RXFE != 0 {
                break;
            }
            uart.registers.read32(offset::DR);
        }
        uart.registers.write32(offset::RSR_ECR, 0);
        uart.registers.write32(offset::ICR, interrupt::ALL);

        uart.registers.write32(offset::IBRD, integer);
        uart.registers.write32(offset::FBRD, fraction);
        // The divisors only take effect with this LCR_H write, so it comes after them.
        uart.registers
            .write32(offset::LCR_H, line_control::WLEN_8 | line_control::FEN);
        uart.registers.write32(offset::IFLS, FIFO_LEVELS_HALF);
        uart.registers
            .write32(offset::IMSC, interrupt::RX | interrupt::RT);
        uart.registers
            .write32(offset::CR, control::UARTEN | control::TXE | control::RXE);
        Ok(uart)
    }

    /// The register window (for the PD glue and tests).
    pub fn registers(&self) -> &R {
        &self.registers
    }

    /// Received characters dropped because they arrived with a framing, parity, break or
    /// overrun error.
    #[must_use]
    pub fn receive_errors(&self) -> u32 {
        self.receive_errors
    }

    fn flags(&self) -> u32 {
        self.registers.read32(offset::FR)
    }

    /// Polls FR until `done` holds, at most [`SPIN_LIMIT`] times; whether it did.
    fn wait_for(&self, done: impl Fn(u32) -> bool) -> bool {
        (0..SPIN_LIMIT).any(|_| done(self.flags()))
    }

    /// Queues `bytes` for transmission, waiting for FIFO space as needed.
    ///
    /// # Errors
    /// [`TxStuck`] if the FIFO stays full for [`SPIN_LIMIT`] polls: the PD keeps running
    /// rather than hang on a wedged transmitter.
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), TxStuck> {
        for (written, &byte) in bytes.iter().enumerate() {
            if !self.wait_for(|flags| flags & flag::TXFF == 0) {
                return Err(TxStuck { written });
            }
            self.registers.write32(offset::DR, u32::from(byte));
        }
        Ok(())
    }

    /// The next received byte, or `None` if the receive FIFO is empty. Characters received
    /// with an error are dropped and counted in [`Pl011::receive_errors`].
    pub fn read_byte(&mut self) -> Option<u8> {
        // Bounded so a line producing errors faster than we read cannot keep us here.
        for _ in 0..FIFO_DEPTH {
            if self.flags() & flag::RXFE != 0 {
                return None;
            }
            let word = self.registers.read32(offset::DR);
            if word & data::ERRORS == 0 {
                return Some((word & data::BYTE) as u8);
            }
            self.receive_errors = self.receive_errors.saturating_add(1);
        }
        None
    }

    /// Reads what is pending (MIS) and clears it (ICR). Receive interrupts come back while
    /// data stays in the FIFO, so drain it with [`Pl011::read_byte`] before acking the IRQ.
    pub fn handle_interrupt(&mut self) -> InterruptCause {
        let masked_status = self.registers.read32(offset::MIS) & interrupt::ALL;
        if masked_status != 0 {
            self.registers.write32(offset::ICR, masked_status);
        }
        InterruptCause { masked_status }
    }
}

impl<R: Registers> fmt::Write for Pl011<R> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.write_bytes(text.as_bytes()).map_err(|_| fmt::Error)
    }
}
