//! The ARM generic timer's EL1 physical timer as a register window, so that a timer driver is
//! written once against [`warden_registers::Registers`] and runs on both platforms.
//!
//! The timer is not memory-mapped: its registers are system registers, which the Microkit SDK
//! lets user level reach on qemu_virt_aarch64 (the kernel's `KernelArmExportPCNTUser` and
//! `KernelArmExportPTMRUser`: `CNTPCT_EL0`, `CNTFRQ_EL0`, `CNTP_CVAL_EL0`, `CNTP_CTL_EL0`; the
//! kernel keeps the hypervisor timer for itself). Their interrupt is PPI 14, GIC INTID 30.
//! Warden lays them out as a window of 32-bit registers:
//!
//! | offset | register | access |
//! |---|---|---|
//! | [`COUNT_LOW`], [`COUNT_HIGH`] | `CNTPCT_EL0`, the count (read the high half, the low, the high again) | read |
//! | [`FREQUENCY`] | `CNTFRQ_EL0`, counts per second | read |
//! | [`COMPARE_LOW`], [`COMPARE_HIGH`] | `CNTP_CVAL_EL0`: the interrupt fires when the count reaches it (write the low half, then the high: the high write sets both) | read, write |
//! | [`CONTROL`] | `CNTP_CTL_EL0`: [`ENABLE`], [`MASK`], [`STATUS`] (read-only: the condition is met) | read, write |
//!
//! On seL4 each access is an `mrs`/`msr`; on the host platform it goes to the launcher's model
//! of the timer, like any device register (the model serves it to every PD, as seL4's export
//! does: the timer is shared by all PDs, so it is only as trustworthy as each of them; the
//! Odroid C4's Meson timer is device memory the system description gives one PD).

use core::cell::Cell;

use warden_registers::{access_ok, Registers, Width};

/// The count, low half.
pub const COUNT_LOW: usize = 0x00;
/// The count, high half.
pub const COUNT_HIGH: usize = 0x04;
/// Counts per second.
pub const FREQUENCY: usize = 0x08;
/// The compare value, low half.
pub const COMPARE_LOW: usize = 0x10;
/// The compare value, high half.
pub const COMPARE_HIGH: usize = 0x14;
/// The control register.
pub const CONTROL: usize = 0x18;
/// Bytes in the window.
pub const WINDOW_BYTES: usize = 0x20;
/// Control: the timer is on.
pub const ENABLE: u32 = 1 << 0;
/// Control: its interrupt is masked.
pub const MASK: u32 = 1 << 1;
/// Control (read-only): the count has reached the compare value.
pub const STATUS: u32 = 1 << 2;
/// The timer's interrupt: PPI 14, GIC INTID 30 (the non-secure EL1 physical timer).
pub const INTID: u32 = 30;
/// Where the host platform's launcher serves the window (no map names it: every PD reaches
/// it, as on seL4).
pub const HOST_ADDRESS: u64 = 0xffff_fff0_0000_0000;

/// The EL1 physical timer's registers (see the module docs). Not `Sync`: it keeps the low half
/// of a compare value until the high half is written.
#[derive(Debug, Default)]
pub struct SystemTimer {
    compare_low: Cell<u32>,
}

impl SystemTimer {
    /// The timer's registers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl Registers for SystemTimer {
    fn size(&self) -> usize {
        WINDOW_BYTES
    }

    fn read(&self, offset: usize, width: Width) -> u32 {
        if width != Width::U32 || !access_ok(offset, width, WINDOW_BYTES) {
            return width.all_ones();
        }
        #[cfg(target_os = "none")]
        {
            let (register, high) = match offset {
                COUNT_LOW => (sysreg::read_count(), false),
                COUNT_HIGH => (sysreg::read_count(), true),
                FREQUENCY => (sysreg::read_frequency(), false),
                COMPARE_LOW => (sysreg::read_compare(), false),
                COMPARE_HIGH => (sysreg::read_compare(), true),
                CONTROL => (sysreg::read_control(), false),
                _ => return Width::U32.all_ones(),
            };
            let half = if high { register >> 32 } else { register };
            half as u32
        }
        #[cfg(not(target_os = "none"))]
        {
            crate::host::register_read(HOST_ADDRESS + offset as u64, width)
        }
    }

    fn write(&self, offset: usize, width: Width, value: u32) {
        if width != Width::U32 || !access_ok(offset, width, WINDOW_BYTES) {
            return;
        }
        if offset == COMPARE_LOW {
            self.compare_low.set(value);
            return;
        }
        #[cfg(target_os = "none")]
        match offset {
            COMPARE_HIGH => {
                sysreg::write_compare(u64::from(value) << 32 | u64::from(self.compare_low.get()));
            }
            CONTROL => sysreg::write_control(u64::from(value & (ENABLE | MASK))),
            _ => {}
        }
        #[cfg(not(target_os = "none"))]
        match offset {
            COMPARE_HIGH => {
                let low = self.compare_low.get();
                crate::host::register_write(HOST_ADDRESS + COMPARE_LOW as u64, width, low);
                crate::host::register_write(HOST_ADDRESS + COMPARE_HIGH as u64, width, value);
            }
            _ => crate::host::register_write(HOST_ADDRESS + offset as u64, width, value),
        }
    }
}

/// The system registers themselves (seL4 only).
#[cfg(target_os = "none")]
mod sysreg {
    #![allow(unsafe_code)]

    macro_rules! reader {
        ($name:ident, $register:literal) => {
            pub(super) fn $name() -> u64 {
                let value: u64;
                // SAFETY: reading this register at EL0 is allowed by the kernel configuration
                // the Microkit SDK builds for qemu_virt_aarch64 (KernelArmExportPCNTUser,
                // KernelArmExportPTMRUser); it has no side effect and touches no memory.
                unsafe {
                    core::arch::asm!(concat!("mrs {}, ", $register), out(reg) value, options(nomem, nostack, preserves_flags));
                }
                value
            }
        };
    }

    macro_rules! writer {
        ($name:ident, $register:literal) => {
            pub(super) fn $name(value: u64) {
                // SAFETY: writing this register at EL0 is allowed by KernelArmExportPTMRUser; it
                // programs the EL1 physical timer, which the kernel does not use (it keeps the
                // hypervisor timer), and touches no memory.
                unsafe {
                    core::arch::asm!(concat!("msr ", $register, ", {}"), "isb", in(reg) value, options(nomem, nostack, preserves_flags));
                }
            }
        };
    }

    reader!(read_count, "cntpct_el0");
    reader!(read_frequency, "cntfrq_el0");
    reader!(read_compare, "cntp_cval_el0");
    reader!(read_control, "cntp_ctl_el0");
    writer!(write_compare, "cntp_cval_el0");
    writer!(write_control, "cntp_ctl_el0");
}
