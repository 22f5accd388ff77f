//! The Meson (G12/SM1) timer block: timer E, a 64-bit count of microseconds, is the clock;
//! timer A, a 16-bit one-shot countdown in microseconds, is the interrupt (GIC INTID 42, SPI
//! 10). Its registers start [`REGISTERS_OFFSET`] into the 4 KiB page the system description
//! maps (physical 0xffd0f000 on the S905X3). Timer A reaches at most 65.535 ms ahead: a
//! timeout further away is reached in steps (each interrupt programs the next).

use warden_registers::Registers;
use warden_vocabulary::Instant;

use crate::Hardware;

/// Where the timer registers (`TIMER_MUX`) start in their page.
pub const REGISTERS_OFFSET: u64 = 0x140;
/// Bytes of registers used, from `TIMER_MUX`.
pub const REGISTERS_BYTES: u64 = 0x54;
/// `TIMER_MUX`: clock sources and enables.
pub const MUX: usize = 0x00;
/// `TIMER_A`: start a countdown (low 16 bits).
pub const TIMER_A: usize = 0x04;
/// `TIMER_E`: the count, low half.
pub const TIMER_E: usize = 0x48;
/// `TIMER_E_HI`: the count, high half.
pub const TIMER_E_HI: usize = 0x4c;
/// MUX: timer A counts.
pub const TIMER_A_ENABLE: u32 = 1 << 16;
/// MUX: timer A restarts by itself (periodic); clear for one-shot.
pub const TIMER_A_PERIODIC: u32 = 1 << 12;
/// MUX: timer A's timebase (bits 1:0): 0 = 1 us.
pub const TIMER_A_TIMEBASE_1US: u32 = 0;
/// MUX: timer E's timebase (bits 10:8): 1 = 1 us.
pub const TIMER_E_TIMEBASE_1US: u32 = 1 << 8;
/// The longest countdown timer A can run, in microseconds.
pub const TIMER_A_MAX: u64 = 0xffff;
/// Timer A's interrupt (SPI 10).
pub const INTID: u32 = 42;

/// The Meson timer over its registers `R`.
#[derive(Debug)]
pub struct MesonTimer<R: Registers> {
    registers: R,
}

impl<R: Registers> MesonTimer<R> {
    /// The timer: E counting microseconds from zero, A stopped.
    pub fn new(registers: R) -> Self {
        registers.write32(MUX, TIMER_E_TIMEBASE_1US | TIMER_A_TIMEBASE_1US);
        registers.write32(TIMER_E, 0);
        Self { registers }
    }

    /// Microseconds counted: high half, low half, high again.
    #[must_use]
    pub fn micros(&self) -> u64 {
        loop {
            let high = self.registers.read32(TIMER_E_HI);
            let low = self.registers.read32(TIMER_E);
            if self.registers.read32(TIMER_E_HI) == high {
                return u64::from(high) << 32 | u64::from(low);
            }
        }
    }
}

impl<R: Registers> Hardware for MesonTimer<R> {
    fn now(&self) -> Instant {
        Instant(self.micros().saturating_mul(1000))
    }

    fn arm(&mut self, at: Option<Instant>, now: Instant) {
        let mux = self.registers.read32(MUX) & !(TIMER_A_ENABLE | TIMER_A_PERIODIC);
        self.registers.write32(MUX, mux);
        let Some(at) = at else {
            return;
        };
        // At least 1 us (a countdown of 0 would never fire), at most A's range.
        let micros = at.nanos().saturating_sub(now.nanos()).div_ceil(1000);
        let countdown = micros.clamp(1, TIMER_A_MAX);
        self.registers.write32(TIMER_A, countdown as u32);
        self.registers.write32(MUX, mux | TIMER_A_ENABLE);
    }

    fn interrupted(&mut self) {
        let mux = self.registers.read32(MUX) & !TIMER_A_ENABLE;
        self.registers.write32(MUX, mux);
    }
}
