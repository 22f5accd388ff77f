//! A model of the Meson (G12/SM1) timer block's page as the timer driver uses it: timer E
//! counting microseconds, timer A a one-shot (or periodic) 16-bit countdown in microseconds
//! whose interrupt (INTID 42) is raised when it reaches zero and stays raised until the driver
//! disables A or loads it again. The register map is the driver's (`timer_driver::meson`); the
//! registers sit [`REGISTERS_OFFSET`](timer_driver::meson::REGISTERS_OFFSET) into the page,
//! which the S905X3 shares with the watchdog. Only the 1 us timebases are modelled (the ones
//! the driver selects); the others count as 1 us too.

use std::time::Duration;

use timer_driver::meson::{
    MUX, REGISTERS_OFFSET, TIMER_A, TIMER_A_ENABLE, TIMER_A_PERIODIC, TIMER_E, TIMER_E_HI,
};

use crate::{Device, DmaMemory, Width};

/// The page's size.
const PAGE: u64 = 0x1000;

/// The Meson timer page over a clock of the time since start-up.
pub struct MesonTimer {
    clock: Box<dyn Fn() -> Duration + Send>,
    mux: u32,
    /// Timer E counts from here (microseconds on the clock).
    e_origin: u64,
    /// Timer A's load value, in microseconds.
    a_load: u32,
    /// When timer A reaches zero (microseconds on the clock), while it runs.
    a_due: Option<u64>,
    /// Timer A reached zero: the interrupt is raised.
    a_fired: bool,
}

impl std::fmt::Debug for MesonTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MesonTimer")
            .field("mux", &self.mux)
            .field("a_due", &self.a_due)
            .field("a_fired", &self.a_fired)
            .finish_non_exhaustive()
    }
}

impl MesonTimer {
    /// The timer page at reset: everything stopped and zero.
    #[must_use]
    pub fn new(clock: Box<dyn Fn() -> Duration + Send>) -> Self {
        let mut timer = Self {
            clock,
            mux: 0,
            e_origin: 0,
            a_load: 0,
            a_due: None,
            a_fired: false,
        };
        timer.e_origin = timer.micros();
        timer
    }

    fn micros(&self) -> u64 {
        u64::try_from((self.clock)().as_micros()).unwrap_or(u64::MAX)
    }

    /// Lets timer A's countdown run to now.
    fn advance(&mut self) {
        let now = self.micros();
        if let Some(due) = self.a_due {
            if now >= due {
                self.a_fired = true;
                self.a_due = (self.mux & TIMER_A_PERIODIC != 0 && self.a_load != 0)
                    .then(|| now + u64::from(self.a_load));
            }
        }
    }

    fn start_a(&mut self) {
        self.a_fired = false;
        self.a_due = (self.a_load != 0).then(|| self.micros() + u64::from(self.a_load));
    }

    fn register(offset: u64) -> Option<usize> {
        let register = offset.checked_sub(REGISTERS_OFFSET)?;
        usize::try_from(register).ok()
    }
}

impl Device for MesonTimer {
    fn kind(&self) -> &'static str {
        "meson-timer"
    }

    fn size(&self) -> u64 {
        PAGE
    }

    fn read(&mut self, offset: u64, width: Width, _dma: &mut dyn DmaMemory) -> u32 {
        self.advance();
        if width != Width::U32 {
            return 0;
        }
        let e = self.micros().saturating_sub(self.e_origin);
        match Self::register(offset) {
            Some(MUX) => self.mux,
            Some(TIMER_A) => {
                let left = self
                    .a_due
                    .map_or(0, |due| due.saturating_sub(self.micros()));
                u32::try_from(left).unwrap_or(0xffff) & 0xffff
            }
            Some(TIMER_E) => e as u32,
            Some(TIMER_E_HI) => (e >> 32) as u32,
            _ => 0,
        }
    }

    fn write(&mut self, offset: u64, width: Width, value: u32, _dma: &mut dyn DmaMemory) {
        self.advance();
        if width != Width::U32 {
            return;
        }
        match Self::register(offset) {
            Some(MUX) => {
                let was = self.mux & TIMER_A_ENABLE != 0;
                self.mux = value;
                match (was, value & TIMER_A_ENABLE != 0) {
                    (false, true) => self.start_a(),
                    (true, false) => {
                        self.a_due = None;
                        self.a_fired = false;
                    }
                    _ => {}
                }
            }
            Some(TIMER_A) => {
                self.a_load = value & 0xffff;
                if self.mux & TIMER_A_ENABLE != 0 {
                    self.start_a();
                }
            }
            Some(TIMER_E) => {
                self.e_origin = self.micros().saturating_sub(u64::from(value));
            }
            _ => log::debug!("meson-timer: write to unmodelled offset {offset:#x}"),
        }
    }

    fn irq_level(&self) -> bool {
        self.a_fired || self.a_due.is_some_and(|due| self.micros() >= due)
    }

    fn next_change(&self) -> Option<Duration> {
        self.a_due.map(Duration::from_micros)
    }
}
