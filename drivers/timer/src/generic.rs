//! The ARM generic timer's EL1 physical timer, through the register window
//! `warden_microkit::system_timer` lays out: the count (`CNTPCT`) is the clock, the compare
//! value (`CNTP_CVAL`) the one interrupt. The interrupt is level-triggered while the count is at
//! or past the compare value: it is quieted by moving the compare value to the end of time.

use warden_microkit::system_timer::{
    COMPARE_HIGH, COMPARE_LOW, CONTROL, COUNT_HIGH, COUNT_LOW, ENABLE, FREQUENCY,
};
use warden_registers::Registers;
use warden_vocabulary::Instant;

use crate::Hardware;

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// The generic timer over its registers `R`.
#[derive(Debug)]
pub struct GenericTimer<R: Registers> {
    registers: R,
    frequency: u64,
}

impl<R: Registers> GenericTimer<R> {
    /// The timer, enabled with no interrupt due. A frequency of zero (a broken or absent
    /// timer) is taken as 1 Hz so that nothing divides by zero; the clock is then useless but
    /// harmless.
    pub fn new(registers: R) -> Self {
        let frequency = u64::from(registers.read32(FREQUENCY)).max(1);
        let timer = Self {
            registers,
            frequency,
        };
        timer.set_compare(u64::MAX);
        timer.registers.write32(CONTROL, ENABLE);
        timer
    }

    /// Counts per second.
    #[must_use]
    pub fn frequency(&self) -> u64 {
        self.frequency
    }

    /// The count: high half, low half, high again (a carry between the two reads is seen).
    #[must_use]
    pub fn count(&self) -> u64 {
        loop {
            let high = self.registers.read32(COUNT_HIGH);
            let low = self.registers.read32(COUNT_LOW);
            if self.registers.read32(COUNT_HIGH) == high {
                return u64::from(high) << 32 | u64::from(low);
            }
        }
    }

    fn set_compare(&self, count: u64) {
        self.registers.write32(COMPARE_LOW, count as u32);
        self.registers.write32(COMPARE_HIGH, (count >> 32) as u32);
    }

    /// The count at `at`, rounded up (the interrupt never comes early).
    fn count_at(&self, at: Instant) -> u64 {
        let counts =
            (u128::from(at.nanos()) * u128::from(self.frequency)).div_ceil(NANOS_PER_SECOND);
        u64::try_from(counts).unwrap_or(u64::MAX)
    }
}

impl<R: Registers> Hardware for GenericTimer<R> {
    fn now(&self) -> Instant {
        let nanos = u128::from(self.count()) * NANOS_PER_SECOND / u128::from(self.frequency);
        Instant(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn arm(&mut self, at: Option<Instant>, _now: Instant) {
        self.set_compare(at.map_or(u64::MAX, |at| self.count_at(at)));
    }

    fn interrupted(&mut self) {
        self.set_compare(u64::MAX);
    }
}
