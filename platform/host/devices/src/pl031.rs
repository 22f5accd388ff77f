//! A model of the ARM PrimeCell real-time clock (PL031) counting the host's seconds: the one
//! model of the PL031, served by the launcher to the RTC driver PD and driven by the driver's
//! tests (`tests/pl031.rs`). The register map is the driver's (`pl031_driver::device`).
//!
//! The counter is the host clock plus an offset that `LR` sets, so it keeps time without a
//! timer of its own. The match interrupt is evaluated on every register access (and on
//! [`Pl031::poll`], for a launcher that wants alarms to fire without the driver looking): it is
//! raised when the counter has reached `MR` since the last evaluation, once, as the hardware
//! raises it on the tick that makes the counter equal `MR`. Like QEMU's model, the RTC made
//! with [`Pl031::new`] is running from reset (`CR` reads 1); one made with [`Pl031::stopped`]
//! is as the TRM resets it, holding its count until `CR`'s start bit is written. Writing `MR`
//! or `LR` so that the counter already equals `MR` raises the interrupt at once.

use pl031_driver::device::{control, offset, MATCH_INTERRUPT as INT_MATCH};

use crate::{arm_register, primecell_id, truncate, Device, DmaMemory, Width};
/// Size of the register window.
const WINDOW: u64 = 0x1000;
/// `RTCPeriphID0..3`.
const PERIPHERAL_ID: [u8; 4] = [0x31, 0x10, 0x04, 0x00];

/// A PL031 RTC over a clock giving seconds since the Unix epoch.
pub struct Pl031 {
    clock: Box<dyn Fn() -> u64 + Send>,
    /// Added to the clock's (truncated) seconds to give the counter; set by `LR`.
    offset: u32,
    match_value: u32,
    /// The value last loaded into `LR`, which `LR` reads back.
    load_value: u32,
    imsc: u32,
    /// `RIS` bit 0, latched until `ICR`.
    matched: bool,
    /// The counter at the last evaluation of the match.
    last_counter: u32,
    /// `RTCStart`: the counter runs (once set, only a reset clears it).
    running: bool,
}

impl std::fmt::Debug for Pl031 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pl031")
            .field("counter", &self.counter())
            .field("match_value", &self.match_value)
            .field("imsc", &self.imsc)
            .field("matched", &self.matched)
            .finish_non_exhaustive()
    }
}

impl Pl031 {
    /// An RTC in its reset state (running, counting `clock`'s seconds, no interrupt).
    #[must_use]
    pub fn new(clock: Box<dyn Fn() -> u64 + Send>) -> Self {
        let mut rtc = Self {
            clock,
            offset: 0,
            match_value: 0,
            load_value: 0,
            imsc: 0,
            matched: false,
            last_counter: 0,
            running: true,
        };
        rtc.last_counter = rtc.counter();
        rtc
    }

    /// An RTC as the TRM resets it: stopped at 0 until the start bit is written (a board whose
    /// firmware never started it).
    #[must_use]
    pub fn stopped(clock: Box<dyn Fn() -> u64 + Send>) -> Self {
        let mut rtc = Self::new(clock);
        rtc.running = false;
        rtc.last_counter = 0;
        rtc
    }

    /// The counter (`DR`): while running, the clock's seconds, truncated to 32 bits as the
    /// PL031 counter is, plus the offset `LR` chose; while stopped, what `LR` last loaded.
    fn counter(&self) -> u32 {
        if self.running {
            ((self.clock)() as u32).wrapping_add(self.offset)
        } else {
            self.load_value
        }
    }

    /// Raises the match interrupt if the counter has reached `MR` since the last evaluation.
    pub fn poll(&mut self) {
        let counter = self.counter();
        // Did the counter pass MR on its way from `last_counter` (exclusive) to `counter`
        // (inclusive)? Wrapping arithmetic, as the 32-bit counter wraps.
        let advanced = counter.wrapping_sub(self.last_counter);
        let to_match = self.match_value.wrapping_sub(self.last_counter);
        if to_match != 0 && to_match <= advanced {
            self.matched = true;
        }
        self.last_counter = counter;
    }

    /// Seconds until the counter next equals `MR` (0 if it does now), for a launcher that
    /// wants to wake up for the alarm.
    #[must_use]
    pub fn seconds_until_match(&self) -> u32 {
        self.match_value.wrapping_sub(self.counter())
    }

    /// After `MR` or `LR` changed: a counter that equals `MR` now matches now.
    fn rearm(&mut self) {
        self.last_counter = self.counter();
        if self.last_counter == self.match_value {
            self.matched = true;
        }
    }

    fn raw_interrupts(&self) -> u32 {
        u32::from(self.matched)
    }

    fn read_register(&mut self, register: usize) -> u32 {
        match register {
            offset::DR => self.counter(),
            offset::MR => self.match_value,
            offset::LR => self.load_value,
            // Once started the RTC cannot be stopped but by a reset.
            offset::CR => u32::from(self.running),
            offset::IMSC => self.imsc,
            offset::RIS => self.raw_interrupts(),
            offset::MIS => self.raw_interrupts() & self.imsc,
            _ => primecell_id(register, PERIPHERAL_ID).unwrap_or_else(|| {
                log::debug!("pl031: read of unknown register {register:#x}");
                0
            }),
        }
    }

    fn write_register(&mut self, register: usize, value: u32) {
        match register {
            offset::MR => {
                self.match_value = value;
                self.rearm();
            }
            offset::LR => {
                self.load_value = value;
                self.offset = value.wrapping_sub((self.clock)() as u32);
                self.rearm();
            }
            // Writing 1 starts a stopped RTC from its count; writing 0 has no effect once
            // started (TRM 3.3.4).
            offset::CR => {
                if value & control::START != 0 && !self.running {
                    self.offset = self.load_value.wrapping_sub((self.clock)() as u32);
                    self.running = true;
                    self.rearm();
                }
            }
            offset::IMSC => self.imsc = value & INT_MATCH,
            offset::ICR => {
                if value & INT_MATCH != 0 {
                    self.matched = false;
                }
            }
            _ => log::debug!(
                "pl031: write of {value:#x} to read-only or unknown register {register:#x}"
            ),
        }
    }
}

impl Device for Pl031 {
    fn kind(&self) -> &'static str {
        "pl031"
    }

    fn size(&self) -> u64 {
        WINDOW
    }

    fn read(&mut self, offset: u64, width: Width, _dma: &mut dyn DmaMemory) -> u32 {
        self.poll();
        match arm_register(offset, width, WINDOW) {
            Some(register) => truncate(self.read_register(register), width),
            None => {
                log::debug!("pl031: invalid {width:?} read at {offset:#x}");
                0
            }
        }
    }

    fn write(&mut self, offset: u64, width: Width, value: u32, _dma: &mut dyn DmaMemory) {
        self.poll();
        match arm_register(offset, width, WINDOW) {
            Some(register) => self.write_register(register, truncate(value, width)),
            None => log::debug!("pl031: invalid {width:?} write at {offset:#x}"),
        }
    }

    fn irq_level(&self) -> bool {
        self.raw_interrupts() & self.imsc != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoDma;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    fn rtc(start: u64) -> (Pl031, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(start));
        let clock = Arc::clone(&now);
        (
            Pl031::new(Box::new(move || clock.load(Ordering::SeqCst))),
            now,
        )
    }

    fn read(rtc: &mut Pl031, offset: usize) -> u32 {
        rtc.read(offset as u64, Width::U32, &mut NoDma)
    }

    fn write(rtc: &mut Pl031, offset: usize, value: u32) {
        rtc.write(offset as u64, Width::U32, value, &mut NoDma);
    }

    #[test]
    fn reset_state_counts_the_clock_and_identifies_the_pl031() {
        let (mut rtc, now) = rtc(1_700_000_000);
        assert_eq!(read(&mut rtc, offset::DR), 1_700_000_000);
        now.fetch_add(5, Ordering::SeqCst);
        assert_eq!(read(&mut rtc, offset::DR), 1_700_000_005);
        assert_eq!(read(&mut rtc, offset::CR), 1);
        assert_eq!(read(&mut rtc, offset::IMSC), 0);
        assert_eq!(read(&mut rtc, offset::RIS), 0);
        let ids: Vec<u32> = (0..8)
            .map(|index| read(&mut rtc, 0xfe0 + 4 * index))
            .collect();
        assert_eq!(ids, [0x31, 0x10, 0x04, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
        assert_eq!(read(&mut rtc, 0x020), 0);
        assert_eq!(rtc.read(0x2, Width::U16, &mut NoDma), 0);
        assert_eq!(rtc.read(0x1000, Width::U8, &mut NoDma), 0);
        assert_eq!((rtc.kind(), rtc.size()), ("pl031", 0x1000));
    }

    #[test]
    fn load_sets_the_counter_which_keeps_counting() {
        let (mut rtc, now) = rtc(1_000);
        write(&mut rtc, offset::LR, 42);
        assert_eq!(read(&mut rtc, offset::DR), 42);
        assert_eq!(read(&mut rtc, offset::LR), 42);
        now.fetch_add(3, Ordering::SeqCst);
        assert_eq!(read(&mut rtc, offset::DR), 45);
        // Counting across the 32-bit wrap.
        write(&mut rtc, offset::LR, u32::MAX);
        now.fetch_add(2, Ordering::SeqCst);
        assert_eq!(read(&mut rtc, offset::DR), 1);
        // Stopping is not possible once started.
        write(&mut rtc, offset::CR, 0);
        assert_eq!(read(&mut rtc, offset::CR), 1);
    }

    #[test]
    fn match_interrupt_fires_once_when_the_counter_reaches_mr() {
        let (mut rtc, now) = rtc(100);
        write(&mut rtc, offset::IMSC, 1);
        write(&mut rtc, offset::MR, 103);
        assert_eq!(rtc.seconds_until_match(), 3);
        assert!(!rtc.irq_level());
        now.store(102, Ordering::SeqCst);
        assert_eq!(read(&mut rtc, offset::RIS), 0);
        // Skipping past MR between accesses still matches.
        now.store(110, Ordering::SeqCst);
        assert_eq!(read(&mut rtc, offset::RIS), 1);
        assert_eq!(read(&mut rtc, offset::MIS), 1);
        assert!(rtc.irq_level());
        write(&mut rtc, offset::ICR, 1);
        assert!(!rtc.irq_level());
        now.store(111, Ordering::SeqCst);
        assert_eq!(
            read(&mut rtc, offset::RIS),
            0,
            "fires once, not while the counter is past MR"
        );
    }

    #[test]
    fn match_register_equal_to_the_counter_fires_at_once() {
        let (mut rtc, _) = rtc(500);
        write(&mut rtc, offset::MR, 500);
        assert_eq!(read(&mut rtc, offset::RIS), 1);
        assert!(!rtc.irq_level(), "masked");
        write(&mut rtc, offset::IMSC, 1);
        assert!(rtc.irq_level());
        write(&mut rtc, offset::ICR, 1);
        write(&mut rtc, offset::LR, 499);
        assert_eq!(read(&mut rtc, offset::RIS), 0);
        write(&mut rtc, offset::LR, 500);
        assert_eq!(read(&mut rtc, offset::RIS), 1);
    }

    #[test]
    fn a_stopped_rtc_holds_its_count_until_started() {
        let (_, now) = rtc(1_000);
        let clock = Arc::clone(&now);
        let mut rtc = Pl031::stopped(Box::new(move || clock.load(Ordering::SeqCst)));
        assert_eq!(read(&mut rtc, offset::CR), 0);
        now.fetch_add(5, Ordering::SeqCst);
        assert_eq!(read(&mut rtc, offset::DR), 0, "stopped");
        write(&mut rtc, offset::LR, 7);
        assert_eq!(read(&mut rtc, offset::DR), 7, "loaded, still stopped");
        write(&mut rtc, offset::CR, control::START);
        now.fetch_add(2, Ordering::SeqCst);
        assert_eq!(read(&mut rtc, offset::DR), 9);
        assert_eq!(read(&mut rtc, offset::CR), 1);
    }

    #[test]
    fn poll_raises_the_alarm_without_an_access() {
        let (mut rtc, now) = rtc(0);
        write(&mut rtc, offset::IMSC, 1);
        write(&mut rtc, offset::MR, 10);
        now.store(10, Ordering::SeqCst);
        assert!(!rtc.irq_level());
        rtc.poll();
        assert!(rtc.irq_level());
    }
}
