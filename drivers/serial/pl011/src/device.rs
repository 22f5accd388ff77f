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
const FIFO_LEVELS_HALF: u32 = (0b010 << 3) | 0b010;

/// Receive FIFO depth of r1p5.
pub const FIFO_DEPTH: usize = 32;

/// How many times the driver polls FR for a condition before it gives up on the device.
///
/// One character at 9600 baud takes about a millisecond; this many register reads take far
/// longer on any hardware this runs on, so running out means the device is stuck rather than
/// slow (for instance a transmitter held by flow control or left disabled).
pub const SPIN_LIMIT: u32 = 100_000;

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

/// The transmitter did not take a byte within [`SPIN_LIMIT`] polls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxStuck {
    /// How many bytes of the request went into the FIFO before it stopped draining.
    pub written: usize,
}

impl fmt::Display for TxStuck {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "transmit FIFO stuck full after {} bytes",
            self.written
        )
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

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;
    use core::cell::RefCell;
    use std::collections::VecDeque;
    use warden_registers::Width;

    /// QEMU's PL011 identification (PeriphID0..3, PCellID0..3).
    const PL011_ID: [u32; 8] = [0x11, 0x10, 0x14, 0x00, 0x0D, 0xF0, 0x05, 0xB1];

    #[derive(Debug, Default)]
    struct State {
        identification: [u32; 8],
        control: u32,
        line_control: u32,
        integer_divisor: u32,
        fraction_divisor: u32,
        /// The divisors as of the last LCR_H write: what the baud generator uses.
        latched_divisors: (u32, u32),
        fifo_levels: u32,
        mask: u32,
        raw_status: u32,
        receive_status: u32,
        /// Received characters: data byte plus DR error flags.
        receive_fifo: VecDeque<u32>,
        transmit_fifo: VecDeque<u8>,
        /// What has left the transmitter.
        wire: Vec<u8>,
        /// The transmitter never drains (flow control held, clock stopped).
        transmitter_stuck: bool,
        register_reads: usize,
    }

    /// A model of a PL011: FIFOs that fill and drain, flags derived from them, interrupt
    /// status raised by the receive FIFO level and cleared by ICR or by draining, DR error
    /// flags mirrored into RSR, LCR_H latching the divisors and FEN=0 flushing transmit.
    /// Each FR read stands for a character time: the transmitter sends one byte.
    #[derive(Debug)]
    struct ModelPl011 {
        state: RefCell<State>,
    }

    impl ModelPl011 {
        fn new() -> Self {
            Self {
                state: RefCell::new(State {
                    identification: PL011_ID,
                    fifo_levels: FIFO_LEVELS_HALF,
                    ..State::default()
                }),
            }
        }

        fn enabled(state: &State, bit: u32) -> bool {
            state.control & control::UARTEN != 0 && state.control & bit != 0
        }

        fn fifo_capacity(state: &State) -> usize {
            if state.line_control & line_control::FEN != 0 {
                FIFO_DEPTH
            } else {
                1
            }
        }

        fn receive_trigger(state: &State) -> usize {
            match (state.fifo_levels >> 3) & 0b111 {
                0b000 => 4,
                0b001 => 8,
                0b010 => 16,
                0b011 => 24,
                _ => 28,
            }
        }

        fn update_receive_interrupt(state: &mut State) {
            if state.receive_fifo.len() >= Self::receive_trigger(state) {
                state.raw_status |= interrupt::RX;
            } else {
                state.raw_status &= !interrupt::RX;
            }
            if state.receive_fifo.is_empty() {
                state.raw_status &= !interrupt::RT;
            }
        }

        /// Characters arriving on the line, as a receiver that is enabled takes them.
        fn receive(&self, bytes: &[u8]) {
            let mut state = self.state.borrow_mut();
            if !Self::enabled(&state, control::RXE) {
                return;
            }
            for &byte in bytes {
                if state.receive_fifo.len() < Self::fifo_capacity(&state) {
                    state.receive_fifo.push_back(u32::from(byte));
                } else {
                    state.raw_status |= interrupt::OE;
                }
            }
            Self::update_receive_interrupt(&mut state);
        }

        /// The line stays idle for 32 bit periods with data below the trigger level.
        fn line_idle(&self) {
            let mut state = self.state.borrow_mut();
            if !state.receive_fifo.is_empty() {
                state.raw_status |= interrupt::RT;
            }
        }

        fn interrupt_line(&self) -> bool {
            let state = self.state.borrow();
            state.raw_status & state.mask != 0
        }

        fn flags(state: &State) -> u32 {
            let mut flags = 0;
            if !state.transmit_fifo.is_empty() {
                flags |= flag::BUSY;
            } else {
                flags |= flag::TXFE;
            }
            if state.transmit_fifo.len() >= Self::fifo_capacity(state) {
                flags |= flag::TXFF;
            }
            if state.receive_fifo.is_empty() {
                flags |= flag::RXFE;
            }
            if state.receive_fifo.len() >= Self::fifo_capacity(state) {
                flags |= flag::RXFF;
            }
            flags
        }

        /// Lets character times pass, as the driver's own FR polls do.
        fn character_time(&self) -> u32 {
            self.read32(offset::FR)
        }

        fn wire(&self) -> Vec<u8> {
            self.state.borrow().wire.clone()
        }
    }

    impl Registers for ModelPl011 {
        fn size(&self) -> usize {
            0x1000
        }

        fn read(&self, offset: usize, width: Width) -> u32 {
            if width != Width::U32 || !warden_registers::access_ok(offset, width, self.size()) {
                return width.all_ones();
            }
            let mut state = self.state.borrow_mut();
            state.register_reads += 1;
            match offset {
                offset::DR => {
                    let word = state.receive_fifo.pop_front().unwrap_or(0);
                    state.receive_status = (word & data::ERRORS) >> 8;
                    Self::update_receive_interrupt(&mut state);
                    word
                }
                offset::RSR_ECR => state.receive_status,
                offset::FR => {
                    if Self::enabled(&state, control::TXE) && !state.transmitter_stuck {
                        if let Some(byte) = state.transmit_fifo.pop_front() {
                            state.wire.push(byte);
                        }
                    }
                    Self::flags(&state)
                }
                offset::IBRD => state.integer_divisor,
                offset::FBRD => state.fraction_divisor,
                offset::LCR_H => state.line_control,
                offset::CR => state.control,
                offset::IFLS => state.fifo_levels,
                offset::IMSC => state.mask,
                offset::RIS => state.raw_status,
                offset::MIS => state.raw_status & state.mask,
                0xFE0..=0xFFC => state.identification[(offset - 0xFE0) / 4],
                _ => 0,
            }
        }

        fn write(&self, offset: usize, width: Width, value: u32) {
            if width != Width::U32 || !warden_registers::access_ok(offset, width, self.size()) {
                return;
            }
            let mut state = self.state.borrow_mut();
            match offset {
                // A write to a full FIFO is lost, as on the device.
                offset::DR if state.transmit_fifo.len() < Self::fifo_capacity(&state) => {
                    state.transmit_fifo.push_back((value & 0xFF) as u8);
                }
                offset::RSR_ECR => state.receive_status = 0,
                offset::IBRD => state.integer_divisor = value & 0xFFFF,
                offset::FBRD => state.fraction_divisor = value & 0x3F,
                offset::LCR_H => {
                    state.line_control = value & 0xFF;
                    state.latched_divisors = (state.integer_divisor, state.fraction_divisor);
                    if value & line_control::FEN == 0 {
                        state.transmit_fifo.clear();
                    }
                }
                offset::CR => state.control = value & 0xFFFF,
                offset::IFLS => state.fifo_levels = value & 0x3F,
                offset::IMSC => state.mask = value & interrupt::ALL,
                offset::ICR => state.raw_status &= !value,
                _ => {}
            }
        }
    }

    fn probed(model: &ModelPl011) -> Pl011<&ModelPl011> {
        Pl011::probe(model).unwrap()
    }

    #[test]
    fn probe_programs_8n1_at_115200_with_fifos_and_receive_interrupts() {
        let model = ModelPl011::new();
        let _uart = probed(&model);
        let state = model.state.borrow();
        assert_eq!(state.control, control::UARTEN | control::TXE | control::RXE);
        assert_eq!(state.line_control, line_control::WLEN_8 | line_control::FEN);
        // 24 MHz / (16 * 115200) = 13.02: IBRD 13, FBRD round(0.02 * 64) = 1.
        assert_eq!(state.latched_divisors, (13, 1));
        assert_eq!(state.mask, interrupt::RX | interrupt::RT);
        assert_eq!(state.raw_status, 0);
    }

    #[test]
    fn probe_refuses_a_device_that_is_not_a_pl011_without_touching_it() {
        let model = ModelPl011::new();
        // A PL031's identification.
        model.state.borrow_mut().identification = [0x31, 0x10, 0x14, 0x00, 0x0D, 0xF0, 0x05, 0xB1];
        model.state.borrow_mut().control = 0x1234;
        let error = Pl011::probe(&model).unwrap_err();
        let ProbeError::NotPl011 { found } = error else {
            panic!("unexpected {error:?}");
        };
        assert_eq!(found.part_number(), 0x031);
        assert_eq!(found.designer(), b'A');
        assert_eq!(model.state.borrow().control, 0x1234);
    }

    #[test]
    fn probe_refuses_a_window_that_reads_all_ones() {
        #[derive(Debug)]
        struct Absent;
        impl Registers for Absent {
            fn size(&self) -> usize {
                0
            }
            fn read(&self, _offset: usize, width: Width) -> u32 {
                width.all_ones()
            }
            fn write(&self, _offset: usize, _width: Width, _value: u32) {}
        }
        assert!(matches!(
            Pl011::probe(Absent),
            Err(ProbeError::NotPl011 { .. })
        ));
    }

    #[test]
    fn probe_refuses_unreachable_baud_rates() {
        let model = ModelPl011::new();
        model.state.borrow_mut().control = control::RXE;
        for baud_rate in [0, 24_000_000] {
            let settings = LineSettings {
                reference_clock_hz: 24_000_000,
                baud_rate,
            };
            assert_eq!(
                Pl011::probe_with_settings(&model, settings).unwrap_err(),
                ProbeError::InvalidBaudRate {
                    reference_clock_hz: 24_000_000,
                    baud_rate
                }
            );
        }
        assert_eq!(model.state.borrow().control, control::RXE);
    }

    #[test]
    fn divisors_match_the_trm_example() {
        // TRM 3.3.6: 4 MHz at 230400 baud gives IBRD 1, FBRD 5.
        let settings = LineSettings {
            reference_clock_hz: 4_000_000,
            baud_rate: 230_400,
        };
        assert_eq!(settings.divisors(), Some((1, 5)));
    }

    #[test]
    fn probe_recovers_a_device_left_in_a_bad_state() {
        let model = ModelPl011::new();
        {
            let mut state = model.state.borrow_mut();
            // A crashed driver left it disabled, 7-bit without FIFOs, odd masks, every
            // interrupt pending, stale received data (one with a framing error) and
            // untransmitted bytes that the disabled transmitter holds forever.
            state.control = control::RXE;
            state.line_control = 0b10 << 5;
            state.mask = interrupt::TX | interrupt::OE | 0b1111;
            state.raw_status = interrupt::ALL;
            state.receive_status = 0b0001;
            state.receive_fifo = [u32::from(b'x'), 0x100 | u32::from(b'y'), u32::from(b'z')]
                .into_iter()
                .collect();
            state.transmit_fifo = b"stale".iter().copied().collect();
        }
        let mut uart = probed(&model);
        {
            let state = model.state.borrow();
            assert_eq!(state.control, control::UARTEN | control::TXE | control::RXE);
            assert_eq!(state.line_control, line_control::WLEN_8 | line_control::FEN);
            assert_eq!(state.mask, interrupt::RX | interrupt::RT);
            assert_eq!(state.raw_status, 0);
            assert_eq!(state.receive_status, 0);
            assert!(state.receive_fifo.is_empty());
            assert!(state.transmit_fifo.is_empty());
        }
        assert!(!model.interrupt_line());
        assert_eq!(uart.read_byte(), None);
        uart.write_bytes(b"ok").unwrap();
        for _ in 0..4 {
            model.character_time();
        }
        assert_eq!(model.wire(), b"ok");
    }

    #[test]
    fn write_bytes_waits_for_fifo_space_and_everything_reaches_the_wire() {
        let model = ModelPl011::new();
        let mut uart = probed(&model);
        let text: Vec<u8> = (0..100u8).map(|index| b'a' + index % 26).collect();
        uart.write_bytes(&text).unwrap();
        while model.character_time() & flag::TXFE == 0 {}
        assert_eq!(model.wire(), text);
    }

    #[test]
    fn write_bytes_reports_a_stuck_transmitter_instead_of_hanging() {
        let model = ModelPl011::new();
        let mut uart = probed(&model);
        model.state.borrow_mut().transmitter_stuck = true;
        let text = [b'#'; 40];
        assert_eq!(
            uart.write_bytes(&text),
            Err(TxStuck {
                written: FIFO_DEPTH
            })
        );
        let reads = model.state.borrow().register_reads;
        assert!(reads <= SPIN_LIMIT as usize + 2 * FIFO_DEPTH + 100);
    }

    #[test]
    fn formatted_output_goes_through_write_bytes() {
        use core::fmt::Write as _;
        let model = ModelPl011::new();
        let mut uart = probed(&model);
        write!(uart, "{}+{}", 2, 3).unwrap();
        while model.character_time() & flag::TXFE == 0 {}
        assert_eq!(model.wire(), b"2+3");
    }

    #[test]
    fn read_byte_returns_received_bytes_in_order_then_none() {
        let model = ModelPl011::new();
        let mut uart = probed(&model);
        model.receive(b"hi");
        assert_eq!(uart.read_byte(), Some(b'h'));
        assert_eq!(uart.read_byte(), Some(b'i'));
        assert_eq!(uart.read_byte(), None);
    }

    #[test]
    fn read_byte_drops_and_counts_characters_received_with_errors() {
        let model = ModelPl011::new();
        let mut uart = probed(&model);
        model.receive(b"a");
        model
            .state
            .borrow_mut()
            .receive_fifo
            .push_back(0x200 | 0x55);
        model.receive(b"b");
        assert_eq!(uart.read_byte(), Some(b'a'));
        assert_eq!(uart.read_byte(), Some(b'b'));
        assert_eq!(uart.receive_errors(), 1);
    }

    #[test]
    fn receive_timeout_interrupt_is_reported_and_cleared() {
        let model = ModelPl011::new();
        let mut uart = probed(&model);
        model.receive(b"ls");
        // Two bytes stay below the half-full trigger: only the timeout raises the line.
        assert!(!model.interrupt_line());
        model.line_idle();
        assert!(model.interrupt_line());
        let cause = uart.handle_interrupt();
        assert!(cause.data_received());
        assert!(!cause.receive_error());
        assert_eq!(cause.bits(), interrupt::RT);
        assert!(!model.interrupt_line());
        assert_eq!(uart.read_byte(), Some(b'l'));
        assert_eq!(uart.read_byte(), Some(b's'));
    }

    #[test]
    fn receive_interrupt_at_the_trigger_level_stays_until_the_fifo_is_drained() {
        let model = ModelPl011::new();
        let mut uart = probed(&model);
        model.receive(&[b'q'; 20]);
        assert!(model.interrupt_line());
        let cause = uart.handle_interrupt();
        assert_eq!(cause.bits(), interrupt::RX);
        // The level is still above the trigger, so the device raises it again at once.
        model.receive(b"");
        assert!(model.interrupt_line());
        while uart.read_byte().is_some() {}
        assert!(!model.interrupt_line());
    }

    #[test]
    fn masked_interrupts_are_not_reported() {
        let model = ModelPl011::new();
        let mut uart = probed(&model);
        model.state.borrow_mut().raw_status = interrupt::TX | interrupt::FE;
        let cause = uart.handle_interrupt();
        assert!(cause.is_spurious());
        assert!(!cause.transmit_space());
        // Left pending in RIS for whoever unmasks them.
        assert_eq!(
            model.state.borrow().raw_status,
            interrupt::TX | interrupt::FE
        );
    }

    #[test]
    fn uart_and_line_editor_together_echo_input_and_yield_a_line() {
        use warden_driver::console::{LineEditor, LineEvent};
        let model = ModelPl011::new();
        let mut uart = probed(&model);
        let mut editor = LineEditor::new();
        model.receive(b"hep\x7flp\r\n");
        model.line_idle();
        assert!(uart.handle_interrupt().data_received());
        let mut lines = Vec::new();
        while let Some(byte) = uart.read_byte() {
            let outcome = editor.feed(byte);
            let echo = outcome.echo;
            if let Some(LineEvent::Line(line)) = outcome.event {
                lines.push(line.to_owned());
            }
            uart.write_bytes(echo.as_bytes()).unwrap();
        }
        while model.character_time() & flag::TXFE == 0 {}
        assert_eq!(lines, ["help"]);
        assert_eq!(model.wire(), b"hep\x08 \x08lp\r\n");
    }
}
