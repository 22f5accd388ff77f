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
