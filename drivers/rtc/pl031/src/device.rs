//! The PL031 register block, the driver logic over [`Registers`] and calendar conversion.

use core::fmt;

use warden_registers::Registers;

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

/// A date and time of day in the proleptic Gregorian calendar, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime {
    /// The year (1970 or later).
    pub year: u64,
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=59 (Unix time has no leap seconds).
    pub second: u8,
}

const SECONDS_PER_DAY: u64 = 86_400;
/// Days from 0000-03-01, where Hinnant's eras start, to 1970-01-01.
const EPOCH_DAYS_FROM_ERA_START: u64 = 719_468;
const DAYS_PER_ERA: u64 = 146_097;

/// The date and time `seconds` after 1970-01-01T00:00:00Z.
///
/// Howard Hinnant's `civil_from_days` ("chrono-Compatible Low-Level Date Algorithms"): years
/// are counted from March so the leap day falls at the end, and 400-year eras repeat exactly.
/// Only non-negative day counts occur here, so the arithmetic is unsigned and cannot overflow
/// for any `u64`.
#[must_use]
pub const fn civil_time(seconds: u64) -> DateTime {
    let days = seconds / SECONDS_PER_DAY;
    let second_of_day = seconds % SECONDS_PER_DAY;

    let days_from_era_start = days + EPOCH_DAYS_FROM_ERA_START;
    let era = days_from_era_start / DAYS_PER_ERA;
    // Ranges: day_of_era 0..=146096, year_of_era 0..=399, day_of_year 0..=365 counted from
    // March 1, month_from_march 0..=11 (March is 0).
    let day_of_era = days_from_era_start - era * DAYS_PER_ERA;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + if month <= 2 { 1 } else { 0 };

    DateTime {
        year,
        month: month as u8,
        day: day as u8,
        hour: (second_of_day / 3600) as u8,
        minute: (second_of_day / 60 % 60) as u8,
        second: (second_of_day % 60) as u8,
    }
}

impl DateTime {
    /// Seconds since 1970-01-01T00:00:00Z (Hinnant's `days_from_civil`), or `None` if a field
    /// is out of range, the date does not exist or lies before the epoch, or the count
    /// overflows.
    #[must_use]
    pub fn unix_seconds(&self) -> Option<u64> {
        if !(1..=12).contains(&self.month)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 59
        {
            return None;
        }
        let month = u64::from(self.month);
        let year = if month <= 2 {
            self.year.checked_sub(1)?
        } else {
            self.year
        };
        let era = year / 400;
        let year_of_era = year - era * 400;
        let month_from_march = if month > 2 { month - 3 } else { month + 9 };
        let day_of_year = (153 * month_from_march + 2) / 5 + u64::from(self.day) - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        let days = era
            .checked_mul(DAYS_PER_ERA)?
            .checked_add(day_of_era)?
            .checked_sub(EPOCH_DAYS_FROM_ERA_START)?;
        let second_of_day =
            u64::from(self.hour) * 3600 + u64::from(self.minute) * 60 + u64::from(self.second);
        days.checked_mul(SECONDS_PER_DAY)?
            .checked_add(second_of_day)
    }
}

const fn is_leap_year(year: u64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

const fn days_in_month(year: u64, month: u8) -> u8 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// ISO 8601, `YYYY-MM-DDTHH:MM:SSZ` (years past 9999 take more digits).
impl fmt::Display for DateTime {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
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

    fn date(year: u64, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> DateTime {
        DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        }
    }

    #[test]
    fn civil_time_of_the_epoch() {
        assert_eq!(civil_time(0), date(1970, 1, 1, 0, 0, 0));
        assert_eq!(civil_time(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(civil_time(86_399), date(1970, 1, 1, 23, 59, 59));
    }

    #[test]
    fn civil_time_of_leap_days() {
        assert_eq!(civil_time(951_782_400), date(2000, 2, 29, 0, 0, 0));
        assert_eq!(civil_time(951_868_799), date(2000, 2, 29, 23, 59, 59));
        assert_eq!(civil_time(1_709_164_800), date(2024, 2, 29, 0, 0, 0));
    }

    #[test]
    fn civil_time_skips_the_leap_day_of_2100() {
        // 2100 is divisible by 100 and not by 400: February has 28 days.
        assert_eq!(civil_time(4_107_456_000), date(2100, 2, 28, 0, 0, 0));
        assert_eq!(civil_time(4_107_542_400), date(2100, 3, 1, 0, 0, 0));
    }

    #[test]
    fn civil_time_of_the_largest_counter_value() {
        assert_eq!(civil_time(u64::from(u32::MAX)), date(2106, 2, 7, 6, 28, 15));
        assert_eq!(
            civil_time(u64::from(u32::MAX)).to_string(),
            "2106-02-07T06:28:15Z"
        );
    }

    #[test]
    fn civil_time_does_not_overflow_at_u64_max() {
        let last = civil_time(u64::MAX);
        assert_eq!(last.unix_seconds(), Some(u64::MAX));
        assert!(last.year > 500_000_000_000);
    }

    #[test]
    fn display_is_iso_8601_with_padding() {
        assert_eq!(
            date(2009, 2, 13, 23, 31, 30).to_string(),
            "2009-02-13T23:31:30Z"
        );
        assert_eq!(
            date(12345, 1, 2, 3, 4, 5).to_string(),
            "12345-01-02T03:04:05Z"
        );
    }

    #[test]
    fn unix_seconds_inverts_civil_time() {
        let samples = [
            0,
            1,
            59,
            86_399,
            86_400,
            951_782_400,
            1_234_567_890,
            1_709_164_800,
            4_107_456_000,
            4_107_542_400,
            u64::from(u32::MAX),
            253_402_300_799,
        ];
        for seconds in samples {
            assert_eq!(
                civil_time(seconds).unix_seconds(),
                Some(seconds),
                "{seconds}"
            );
        }
        // Every day boundary across four centuries, including 2000 (leap) and 2100 (not).
        for day in (0..200_000u64).step_by(7) {
            let seconds = day * SECONDS_PER_DAY + day % SECONDS_PER_DAY;
            assert_eq!(civil_time(seconds).unix_seconds(), Some(seconds));
        }
    }

    #[test]
    fn unix_seconds_refuses_impossible_or_pre_epoch_dates() {
        assert_eq!(date(2100, 2, 29, 0, 0, 0).unix_seconds(), None);
        assert_eq!(date(2023, 2, 29, 0, 0, 0).unix_seconds(), None);
        assert_eq!(
            date(2024, 2, 29, 0, 0, 0).unix_seconds(),
            Some(1_709_164_800)
        );
        assert_eq!(date(2024, 4, 31, 0, 0, 0).unix_seconds(), None);
        assert_eq!(date(2024, 13, 1, 0, 0, 0).unix_seconds(), None);
        assert_eq!(date(2024, 0, 1, 0, 0, 0).unix_seconds(), None);
        assert_eq!(date(2024, 1, 0, 0, 0, 0).unix_seconds(), None);
        assert_eq!(date(2024, 1, 1, 24, 0, 0).unix_seconds(), None);
        assert_eq!(date(2024, 1, 1, 0, 60, 0).unix_seconds(), None);
        assert_eq!(date(2024, 1, 1, 0, 0, 60).unix_seconds(), None);
        assert_eq!(date(1969, 12, 31, 23, 59, 59).unix_seconds(), None);
        assert_eq!(date(0, 1, 1, 0, 0, 0).unix_seconds(), None);
        assert_eq!(date(u64::MAX, 12, 31, 0, 0, 0).unix_seconds(), None);
    }
}
