//! The PL031 register block, the driver logic over [`Registers`] and calendar conversion.

use core::fmt;

use warden_registers::Registers;
use warden_services::clock::{civil_time, DateTime};

/// Register offsets (PrimeCell Real Time Clock (PL031) Technical Reference Manual, table 3-1).
pub mod offset {
    /// Data register: the current counter value, in seconds.
    pub const DR: usize = 0x000;
    /// Match register: the match interrupt fires when the counter equals it.
    pub const MR: usize = 0x004;
    /// Load register: writing it sets the counter.
    pub const LR: usize = 0x008;
    /// Control register.
    pub const CR: usize = 0x00C;
    /// Interrupt mask set/clear (1 = the match interrupt is enabled).
    pub const IMSC: usize = 0x010;
    /// Raw interrupt status.
    pub const RIS: usize = 0x014;
    /// Masked interrupt status.
    pub const MIS: usize = 0x018;
    /// Interrupt clear (write 1 to clear).
    pub const ICR: usize = 0x01C;
    /// Peripheral identification registers 0..3, one byte each.
    pub const PERIPH_ID0: usize = 0xFE0;
    /// PrimeCell identification registers 0..3, one byte each.
    pub const PCELL_ID0: usize = 0xFF0;
}

/// Control register (CR) bits.
pub mod control {
    /// RTCStart: the counter runs. Once set, writing 0 has no effect until a system reset.
    pub const START: u32 = 1 << 0;
}

/// The one interrupt bit, the same in IMSC, RIS, MIS and ICR.
pub const MATCH_INTERRUPT: u32 = 1 << 0;

pub use warden_registers::PrimeCellIdentification;

/// The PL031's PrimeCell part number.
pub const PART_PL031: u16 = 0x031;

/// Why a probe refused the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// The identification registers do not describe a PL031 (or the window does not reach
    /// them: reads outside it return all ones).
    NotPl031 {
        /// What the identification registers hold.
        found: PrimeCellIdentification,
    },
}

impl fmt::Display for ProbeError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPl031 { found } => write!(
                formatter,
                "not a PL031: PeriphID {:#010x}, PCellID {:#010x}",
                found.peripheral, found.primecell
            ),
        }
    }
}

/// A PL031 real-time clock: a free-running seconds counter, read as Unix time (UTC).
#[derive(Debug)]
pub struct Pl031<R: Registers> {
    registers: R,
}

impl<R: Registers> Pl031<R> {
    /// Identifies the device, masks and clears the match interrupt (a previous driver may
    /// have left an alarm armed) and starts the counter if it is stopped. The time is kept:
    /// the counter is the one thing a driver restart must not lose.
    ///
    /// # Errors
    /// [`ProbeError::NotPl031`] if the identification registers describe another device; the
    /// device has not been written to.
    pub fn probe(registers: R) -> Result<Self, ProbeError> {
        let found = PrimeCellIdentification::read(&registers);
        if !found.is_arm_part(PART_PL031) {
            return Err(ProbeError::NotPl031 { found });
        }
        registers.write32(offset::IMSC, 0);
        registers.write32(offset::ICR, MATCH_INTERRUPT);
        if registers.read32(offset::CR) & control::START == 0 {
            registers.write32(offset::CR, control::START);
        }
        Ok(Self { registers })
    }

    /// The register window (for the PD glue and tests).
    pub fn registers(&self) -> &R {
        &self.registers
    }

    /// The counter: seconds since the Unix epoch, if whoever set it used Unix time.
    #[must_use]
    pub fn seconds(&self) -> u32 {
        self.registers.read32(offset::DR)
    }

    /// Sets the counter; it keeps counting from `seconds`.
    pub fn set_seconds(&mut self, seconds: u32) {
        self.registers.write32(offset::LR, seconds);
    }

    /// The current date and time (UTC).
    #[must_use]
    pub fn now(&self) -> DateTime {
        civil_time(u64::from(self.seconds()))
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
    use warden_registers::Width;

    /// PeriphID0..3 as in the TRM, then PCellID0..3.
    const PL031_ID: [u32; 8] = [0x31, 0x10, 0x04, 0x00, 0x0D, 0xF0, 0x05, 0xB1];

    #[derive(Debug, Default)]
    struct State {
        identification: [u32; 8],
        counter: u32,
        started: bool,
        match_value: u32,
        mask: u32,
        raw_status: u32,
    }

    /// A model of a PL031: a counter that advances only when started, a start bit that cannot
    /// be cleared once set, a load register that sets the counter, and a match interrupt
    /// raised when the counter passes MR, masked by IMSC and cleared by ICR.
    #[derive(Debug)]
    struct ModelPl031 {
        state: RefCell<State>,
    }

    impl ModelPl031 {
        fn new() -> Self {
            Self {
                state: RefCell::new(State {
                    identification: PL031_ID,
                    ..State::default()
                }),
            }
        }

        /// Seconds pass on the 1 Hz clock.
        fn tick(&self, seconds: u32) {
            let mut state = self.state.borrow_mut();
            for _ in 0..seconds {
                if !state.started {
                    return;
                }
                state.counter = state.counter.wrapping_add(1);
                if state.counter == state.match_value {
                    state.raw_status |= MATCH_INTERRUPT;
                }
            }
        }

        fn interrupt_line(&self) -> bool {
            let state = self.state.borrow();
            state.raw_status & state.mask != 0
        }
    }

    impl Registers for ModelPl031 {
        fn size(&self) -> usize {
            0x1000
        }

        fn read(&self, offset: usize, width: Width) -> u32 {
            if width != Width::U32 || !warden_registers::access_ok(offset, width, self.size()) {
                return width.all_ones();
            }
            let state = self.state.borrow();
            match offset {
                offset::DR => state.counter,
                offset::MR => state.match_value,
                offset::CR => u32::from(state.started),
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
                offset::MR => state.match_value = value,
                offset::LR => state.counter = value,
                offset::CR => state.started |= value & control::START != 0,
                offset::IMSC => state.mask = value & MATCH_INTERRUPT,
                offset::ICR => state.raw_status &= !value,
                _ => {}
            }
        }
    }

    #[test]
    fn probe_starts_a_stopped_clock_and_it_counts() {
        let model = ModelPl031::new();
        let rtc = Pl031::probe(&model).unwrap();
        assert!(model.state.borrow().started);
        model.tick(3);
        assert_eq!(rtc.seconds(), 3);
    }

    #[test]
    fn probe_keeps_the_time_of_a_running_clock_and_disarms_a_pending_alarm() {
        let model = ModelPl031::new();
        {
            let mut state = model.state.borrow_mut();
            state.started = true;
            state.counter = 1_709_164_790;
            state.match_value = 1_709_164_800;
            state.mask = MATCH_INTERRUPT;
        }
        model.tick(10);
        assert!(model.interrupt_line());
        let rtc = Pl031::probe(&model).unwrap();
        assert!(!model.interrupt_line());
        assert_eq!(model.state.borrow().raw_status, 0);
        assert_eq!(model.state.borrow().mask, 0);
        assert_eq!(rtc.seconds(), 1_709_164_800);
        assert_eq!(rtc.now().to_string(), "2024-02-29T00:00:00Z");
    }

    #[test]
    fn probe_accepts_qemus_revision_and_refuses_other_primecells() {
        let model = ModelPl031::new();
        model.state.borrow_mut().identification[2] = 0x14;
        assert!(Pl031::probe(&model).is_ok());

        let uart = ModelPl031::new();
        uart.state.borrow_mut().identification[0] = 0x11;
        let error = Pl031::probe(&uart).unwrap_err();
        let ProbeError::NotPl031 { found } = error;
        assert_eq!(found.part_number(), 0x011);
        assert!(!uart.state.borrow().started);
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
        assert!(Pl031::probe(Absent).is_err());
    }

    #[test]
    fn set_seconds_loads_the_counter_which_keeps_running() {
        let model = ModelPl031::new();
        let mut rtc = Pl031::probe(&model).unwrap();
        rtc.set_seconds(951_782_399);
        model.tick(1);
        assert_eq!(rtc.seconds(), 951_782_400);
        assert_eq!(rtc.now().to_string(), "2000-02-29T00:00:00Z");
    }
}
