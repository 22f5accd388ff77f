//! The Meson UART register block and the driver logic over [`Registers`].
//!
//! Register offsets and bits are those of Linux's `meson_uart.c` (`AML_UART_*`), checked
//! against U-Boot's `serial_meson.c`, which agrees. Two fields come from elsewhere: the
//! receive FIFO count in STATUS bits 0-6 (used by other Meson drivers and the S905X3
//! datasheet, not by Linux) and RX_BUSY in STATUS bit 26 (datasheet only); this driver reads
//! neither, they are named for diagnostics. Linux counts TX_FIFO_WERR as an overrun; some
//! other drivers name STATUS bit 24 `RX_FIFO_OVERFLOW` instead — this driver clears whatever
//! error bits are set and does not rely on either reading.

use core::fmt;

use warden_registers::Registers;

/// Register offsets (4-byte registers).
pub mod offset {
    /// Write FIFO: a write queues one byte for transmission.
    pub const WFIFO: usize = 0x00;
    /// Read FIFO: a read pops one received byte.
    pub const RFIFO: usize = 0x04;
    /// Control register.
    pub const CONTROL: usize = 0x08;
    /// Status register.
    pub const STATUS: usize = 0x0C;
    /// Interrupt thresholds.
    pub const MISC: usize = 0x10;
    /// Baud rate generator ("new" baud register).
    pub const REG5: usize = 0x14;
}

/// The bytes of register window the driver uses.
pub const WINDOW_SIZE: usize = 0x18;

/// CONTROL bits (`AML_UART_*` in `meson_uart.c`).
pub mod control {
    /// Transmitter enable.
    pub const TX_EN: u32 = 1 << 12;
    /// Receiver enable.
    pub const RX_EN: u32 = 1 << 13;
    /// Two-wire mode: no RTS/CTS flow control.
    pub const TWO_WIRE_EN: u32 = 1 << 15;
    /// Stop bits field (bits 16-17); 0 is one stop bit.
    pub const STOP_BIT_LEN_MASK: u32 = 0b11 << 16;
    /// Odd parity (with PARITY_EN).
    pub const PARITY_TYPE: u32 = 1 << 18;
    /// Parity enable.
    pub const PARITY_EN: u32 = 1 << 19;
    /// Data length field (bits 20-21); 0 is eight bits.
    pub const DATA_LEN_MASK: u32 = 0b11 << 20;
    /// Holds the transmit FIFO in reset while set. It does not clear itself.
    pub const TX_RST: u32 = 1 << 22;
    /// Holds the receive FIFO in reset while set. It does not clear itself.
    pub const RX_RST: u32 = 1 << 23;
    /// Clears the STATUS error bits while set. It does not clear itself ("It doesn't clear
    /// to 0 automatically", `meson_uart.c`).
    pub const CLEAR_ERR: u32 = 1 << 24;
    /// Receive interrupt enable: raised while the receive FIFO holds at least MISC's count.
    pub const RX_INT_EN: u32 = 1 << 27;
    /// Transmit interrupt enable: raised while the transmit FIFO holds fewer than MISC's count.
    pub const TX_INT_EN: u32 = 1 << 28;
}

/// STATUS bits.
pub mod status {
    /// Bytes in the receive FIFO (bits 0-6; not used by `meson_uart.c`).
    pub const RX_COUNT_MASK: u32 = 0x7F;
    /// A byte was received with a parity error.
    pub const PARITY_ERR: u32 = 1 << 16;
    /// A byte was received with a framing error (or a break).
    pub const FRAME_ERR: u32 = 1 << 17;
    /// WFIFO was written while full.
    pub const TX_FIFO_WERR: u32 = 1 << 18;
    /// Receive FIFO empty.
    pub const RX_EMPTY: u32 = 1 << 20;
    /// Transmit FIFO full.
    pub const TX_FULL: u32 = 1 << 21;
    /// Transmit FIFO empty.
    pub const TX_EMPTY: u32 = 1 << 22;
    /// The transmitter is shifting a byte out (`AML_UART_XMIT_BUSY`).
    pub const TX_BUSY: u32 = 1 << 25;
    /// The receiver is shifting a byte in (datasheet; not used by `meson_uart.c`).
    pub const RX_BUSY: u32 = 1 << 26;
    /// The error bits CONTROL's CLEAR_ERR clears (`AML_UART_ERR`).
    pub const ERRORS: u32 = PARITY_ERR | FRAME_ERR | TX_FIFO_WERR;
}

/// MISC fields.
pub mod misc {
    /// The receive interrupt fires while the receive FIFO holds at least `count` bytes.
    #[must_use]
    pub const fn receive_interrupt_count(count: u8) -> u32 {
        count as u32
    }

    /// The transmit interrupt fires while the transmit FIFO holds fewer than `count` bytes.
    #[must_use]
    pub const fn transmit_interrupt_count(count: u8) -> u32 {
        (count as u32) << 8
    }
}

/// REG5 bits.
pub mod reg5 {
    /// The divisor field (bits 0-22): the source clock divided by the baud rate, minus one.
    pub const BAUD_MASK: u32 = 0x7F_FFFF;
    /// Use REG5's divisor rather than the legacy one in CONTROL (`AML_UART_BAUD_USE`).
    pub const USE_NEW: u32 = 1 << 23;
    /// Take the baud clock from the crystal, divided by 3 (`AML_UART_BAUD_XTAL`).
    pub const USE_XTAL_CLK: u32 = 1 << 24;
    /// Divide the crystal by 2 instead of 3 (only some SoCs; not used here).
    pub const XTAL_DIV2: u32 = 1 << 27;
}

/// The crystal of the GX/G12/SM1 SoCs, in Hz.
pub const XTAL_HZ: u32 = 24_000_000;

/// FIFO depth of the always-on UARTs (the Odroid C4's console); the EE UART_A has 128.
pub const FIFO_DEPTH: usize = 64;

/// How many polls before the driver gives up on the device, and what it reports then (the
/// same for every UART: `warden_driver::console`).
pub use warden_driver::console::{TxStuck, SPIN_LIMIT};

/// The REG5 value for `baud_rate` from the crystal divided by 3, as `meson_uart.c` programs it
/// (`DIV_ROUND_CLOSEST(24 MHz / 3, baud) - 1`), or `None` if the divisor would be zero or too
/// wide for the field.
#[must_use]
pub const fn baud_register(baud_rate: u32) -> Option<u32> {
    if baud_rate == 0 {
        return None;
    }
    let source = XTAL_HZ / 3;
    let divisor = (source + baud_rate / 2) / baud_rate;
    if divisor == 0 || divisor - 1 > reg5::BAUD_MASK {
        return None;
    }
    Some(reg5::USE_XTAL_CLK | reg5::USE_NEW | (divisor - 1))
}

/// Why a probe refused the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// The window does not cover the registers the driver uses.
    WindowTooSmall {
        /// The window's size, in bytes.
        size: usize,
    },
    /// STATUS reads as no UART can (transmit FIFO both full and empty, as all ones does):
    /// nothing answers at this address. The UART has no identification register, so this
    /// is the only check there is.
    NoDevice {
        /// What STATUS read.
        status: u32,
    },
    /// The baud rate cannot be derived from the crystal.
    InvalidBaudRate {
        /// The baud rate asked for.
        baud_rate: u32,
    },
}

impl fmt::Display for ProbeError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WindowTooSmall { size } => write!(
                formatter,
                "register window of {size} bytes, need {WINDOW_SIZE}"
            ),
            Self::NoDevice { status } => {
                write!(formatter, "no Meson UART: STATUS reads {status:#010x}")
            }
            Self::InvalidBaudRate { baud_rate } => write!(
                formatter,
                "{baud_rate} baud cannot be derived from the 24 MHz crystal"
            ),
        }
    }
}

/// What [`MesonUart::handle_interrupt`] found: the STATUS it read. The UART has no interrupt
/// status register; its interrupt is a level derived from the FIFO counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptCause {
    status: u32,
}

impl InterruptCause {
    /// The STATUS bits, as in [`status`].
    #[must_use]
    pub const fn bits(self) -> u32 {
        self.status
    }

    /// Received data waits: read it with [`MesonUart::read_byte`] until it returns `None`,
    /// which also lowers the interrupt.
    #[must_use]
    pub const fn data_received(self) -> bool {
        self.status & status::RX_EMPTY == 0
    }

    /// The error bits that were set (and have been cleared).
    #[must_use]
    pub const fn errors(self) -> u32 {
        self.status & status::ERRORS
    }

    /// Neither data nor errors: the interrupt was spurious or already handled.
    #[must_use]
    pub const fn is_spurious(self) -> bool {
        !self.data_received() && self.errors() == 0
    }
}

/// A Meson UART, reset and running 8N1 without flow control, receive interrupt enabled.
#[derive(Debug)]
pub struct MesonUart<R: Registers> {
    registers: R,
    receive_errors: u32,
}

impl<R: Registers> MesonUart<R> {
    /// Resets the UART and programs it for 115200 baud.
    ///
    /// # Errors
    /// As [`MesonUart::probe_with_baud_rate`].
    pub fn probe(registers: R) -> Result<Self, ProbeError> {
        Self::probe_with_baud_rate(registers, 115_200)
    }

    /// Resets the UART, whatever state a previous driver left it in, and programs it: both
    /// FIFOs reset (discarding stale data), errors cleared, 8N1 two-wire, `baud_rate` from the
    /// crystal, transmitter and receiver on, the receive interrupt at one byte. The transmit
    /// interrupt stays off: [`MesonUart::write_bytes`] polls.
    ///
    /// # Errors
    /// [`ProbeError::WindowTooSmall`], [`ProbeError::NoDevice`] or
    /// [`ProbeError::InvalidBaudRate`]; the device has not been written to.
    pub fn probe_with_baud_rate(registers: R, baud_rate: u32) -> Result<Self, ProbeError> {
        let size = registers.size();
        if size < WINDOW_SIZE {
            return Err(ProbeError::WindowTooSmall { size });
        }
        let found = registers.read32(offset::STATUS);
        if found & (status::TX_FULL | status::TX_EMPTY) == status::TX_FULL | status::TX_EMPTY {
            return Err(ProbeError::NoDevice { status: found });
        }
        let baud = baud_register(baud_rate).ok_or(ProbeError::InvalidBaudRate { baud_rate })?;

        // Read-modify-write, as Linux does: CONTROL's low bits hold the legacy divisor and
        // other fields this driver has no reason to touch.
        let mut value = registers.read32(offset::CONTROL);
        value &= !(control::TX_INT_EN | control::RX_INT_EN | control::TX_EN | control::RX_EN);
        registers.write32(offset::CONTROL, value);
        // The reset and clear bits act while set and stay set until written back to 0.
        let reset = control::TX_RST | control::RX_RST | control::CLEAR_ERR;
        registers.write32(offset::CONTROL, value | reset);
        value &= !reset;
        registers.write32(offset::CONTROL, value);

        value &= !(control::DATA_LEN_MASK
            | control::PARITY_EN
            | control::PARITY_TYPE
            | control::STOP_BIT_LEN_MASK);
        value |= control::TWO_WIRE_EN;
        registers.write32(offset::CONTROL, value);
        registers.write32(offset::REG5, baud);
        registers.write32(
            offset::MISC,
            misc::receive_interrupt_count(1)
                | misc::transmit_interrupt_count((FIFO_DEPTH / 2) as u8),
        );
        value |= control::TX_EN | control::RX_EN;
        registers.write32(offset::CONTROL, value);
        value |= control::RX_INT_EN;
        registers.write32(offset::CONTROL, value);
        Ok(Self {
            registers,
            receive_errors: 0,
        })
    }

    /// The register window (for the PD glue and tests).
    pub fn registers(&self) -> &R {
        &self.registers
    }

    /// Received bytes dropped because a parity or framing error was flagged when they were
    /// read.
    #[must_use]
    pub fn receive_errors(&self) -> u32 {
        self.receive_errors
    }

    fn status(&self) -> u32 {
        self.registers.read32(offset::STATUS)
    }

    fn clear_errors(&self) {
        let value = self.registers.read32(offset::CONTROL);
        self.registers
            .write32(offset::CONTROL, value | control::CLEAR_ERR);
        self.registers
            .write32(offset::CONTROL, value & !control::CLEAR_ERR);
    }

    /// Queues `bytes` for transmission, waiting for FIFO space as needed.
    ///
    /// # Errors
    /// [`TxStuck`] if the FIFO stays full for [`SPIN_LIMIT`] polls: the PD keeps running
    /// rather than hang on a wedged transmitter.
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), TxStuck> {
        for (written, &byte) in bytes.iter().enumerate() {
            if !(0..SPIN_LIMIT).any(|_| self.status() & status::TX_FULL == 0) {
                return Err(TxStuck { written });
            }
            self.registers.write32(offset::WFIFO, u32::from(byte));
        }
        Ok(())
    }

    /// The next received byte, or `None` if the receive FIFO is empty.
    ///
    /// The error bits are not tied to a byte in the FIFO; like Linux, the driver blames the
    /// byte it reads next. That byte is dropped and counted in [`MesonUart::receive_errors`],
    /// and the errors are cleared.
    pub fn read_byte(&mut self) -> Option<u8> {
        // Bounded so a line producing errors faster than we read cannot keep us here.
        for _ in 0..FIFO_DEPTH {
            let found = self.status();
            if found & status::RX_EMPTY != 0 {
                return None;
            }
            let byte = (self.registers.read32(offset::RFIFO) & 0xFF) as u8;
            if found & (status::PARITY_ERR | status::FRAME_ERR) == 0 {
                return Some(byte);
            }
            self.clear_errors();
            self.receive_errors = self.receive_errors.saturating_add(1);
        }
        None
    }

    /// Reads STATUS and clears any error bits. The interrupt stays raised while received data
    /// waits, so drain it with [`MesonUart::read_byte`] before acking the IRQ.
    pub fn handle_interrupt(&mut self) -> InterruptCause {
        let found = self.status();
        if found & status::ERRORS != 0 {
            self.clear_errors();
        }
        InterruptCause { status: found }
    }
}

impl<R: Registers> fmt::Write for MesonUart<R> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.write_bytes(text.as_bytes()).map_err(|_| fmt::Error)
    }
}
