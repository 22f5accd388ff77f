//! A model of the ARM generic timer's EL1 physical timer, in the register window
//! `warden_microkit::system_timer` lays out (the count, the frequency, the compare value, the
//! control register), counting at QEMU virt's 62.5 MHz from a clock the launcher gives it. Its
//! interrupt (INTID 30) is level-triggered: asserted while the timer is enabled, unmasked and
//! the count has reached the compare value.

use std::time::Duration;

use warden_microkit::system_timer::{
    COMPARE_HIGH, COMPARE_LOW, CONTROL, COUNT_HIGH, COUNT_LOW, ENABLE, FREQUENCY, MASK, STATUS,
    WINDOW_BYTES,
};

use crate::{Device, DmaMemory, Width};

/// Counts per second (QEMU virt's `CNTFRQ_EL0`).
pub const GENERIC_TIMER_HZ: u64 = 62_500_000;

/// The generic timer over a clock of the time since start-up.
pub struct GenericTimer {
    clock: Box<dyn Fn() -> Duration + Send>,
    compare: u64,
    compare_low: u32,
    control: u32,
}

impl std::fmt::Debug for GenericTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenericTimer")
            .field("count", &self.count())
            .field("compare", &self.compare)
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}

impl GenericTimer {
    /// A timer at reset: disabled, compare value zero.
    #[must_use]
    pub fn new(clock: Box<dyn Fn() -> Duration + Send>) -> Self {
        Self {
            clock,
            compare: 0,
            compare_low: 0,
            control: 0,
        }
    }

    /// The count now.
    #[must_use]
    pub fn count(&self) -> u64 {
        let nanos = (self.clock)().as_nanos();
        u64::try_from(nanos * u128::from(GENERIC_TIMER_HZ) / 1_000_000_000).unwrap_or(u64::MAX)
    }

    fn condition(&self) -> bool {
        self.count() >= self.compare
    }
}

impl Device for GenericTimer {
    fn kind(&self) -> &'static str {
        "generic-timer"
    }

    fn size(&self) -> u64 {
        WINDOW_BYTES as u64
    }

    fn read(&mut self, offset: u64, width: Width, _dma: &mut dyn DmaMemory) -> u32 {
        if width != Width::U32 {
            return 0;
        }
        let count = self.count();
        match usize::try_from(offset) {
            Ok(COUNT_LOW) => count as u32,
            Ok(COUNT_HIGH) => (count >> 32) as u32,
            Ok(FREQUENCY) => GENERIC_TIMER_HZ as u32,
            Ok(COMPARE_LOW) => self.compare as u32,
            Ok(COMPARE_HIGH) => (self.compare >> 32) as u32,
            Ok(CONTROL) => self.control | if self.condition() { STATUS } else { 0 },
            _ => 0,
        }
    }

    fn write(&mut self, offset: u64, width: Width, value: u32, _dma: &mut dyn DmaMemory) {
        if width != Width::U32 {
            return;
        }
        match usize::try_from(offset) {
            Ok(COMPARE_LOW) => self.compare_low = value,
            Ok(COMPARE_HIGH) => {
                self.compare = u64::from(value) << 32 | u64::from(self.compare_low);
            }
            Ok(CONTROL) => self.control = value & (ENABLE | MASK),
            _ => log::debug!("generic-timer: write to read-only or unknown offset {offset:#x}"),
        }
    }

    fn irq_level(&self) -> bool {
        self.control & (ENABLE | MASK) == ENABLE && self.condition()
    }

    fn next_change(&self) -> Option<Duration> {
        if self.control & (ENABLE | MASK) != ENABLE || self.compare == u64::MAX {
            return None;
        }
        let nanos = u128::from(self.compare) * 1_000_000_000 / u128::from(GENERIC_TIMER_HZ);
        Some(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }
}
