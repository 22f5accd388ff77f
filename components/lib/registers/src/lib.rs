//! How Warden's drivers reach device registers.
//!
//! A driver never dereferences a device address itself: it is generic over [`Registers`], one
//! device window seen as a sequence of register accesses. On seL4 the implementation is
//! [`Mmio`], volatile loads and stores to the window the system description maps into the PD.
//! On the host platform it is `warden_microkit::DeviceRegisters`, which hands every access, in
//! order, to the launcher's model of the device. Registers cannot be plain shared memory there:
//! selector registers (virtio's `QueueSel`) and write side effects (`QueueNotify`, a UART's data
//! register) need the model to act on each access as it happens. Unit tests use fakes.
//!
//! # What every implementation must guarantee
//! - Accesses reach the device one at a time, in program order, each exactly once, with the
//!   width asked for (no merging, splitting or caching), as device memory (nGnRE) does.
//! - An access outside the window (`offset + width > size()`) or misaligned for its width does
//!   not reach any device: reads return all ones (`!0` truncated to the width), writes are
//!   dropped. It never panics: a driver bug must not take the PD down.
//! - Reads and writes take `&self`: a register block is shared by the code that uses it, and
//!   the device, not Rust, owns the state behind it.
#![no_std]
#![deny(unsafe_code)]

/// The width of one register access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Width {
    /// 8 bits.
    U8 = 1,
    /// 16 bits.
    U16 = 2,
    /// 32 bits.
    U32 = 4,
}

impl Width {
    /// Bytes the access covers.
    #[must_use]
    pub const fn bytes(self) -> usize {
        self as usize
    }

    /// The value read when an access cannot reach a device: all ones in this width.
    #[must_use]
    pub const fn all_ones(self) -> u32 {
        match self {
            Width::U8 => 0xff,
            Width::U16 => 0xffff,
            Width::U32 => 0xffff_ffff,
        }
    }

    /// The width with this many bytes, if it is one.
    #[must_use]
    pub const fn from_bytes(bytes: usize) -> Option<Self> {
        match bytes {
            1 => Some(Width::U8),
            2 => Some(Width::U16),
            4 => Some(Width::U32),
            _ => None,
        }
    }
}

/// Whether an access of `width` at `offset` lies inside a window of `size` bytes and is
/// naturally aligned.
#[must_use]
pub const fn access_ok(offset: usize, width: Width, size: usize) -> bool {
    let bytes = width.bytes();
    offset % bytes == 0 && offset <= size && size - offset >= bytes
}

/// One device window: the registers of one device (or one part of it), by byte offset.
pub trait Registers {
    /// The window's size in bytes.
    fn size(&self) -> usize;
    /// Reads `width` bytes at `offset` (little-endian, zero-extended).
    fn read(&self, offset: usize, width: Width) -> u32;
    /// Writes the low `width` bytes of `value` at `offset`.
    fn write(&self, offset: usize, width: Width, value: u32);

    /// A 32-bit read.
    fn read32(&self, offset: usize) -> u32 {
        self.read(offset, Width::U32)
    }
    /// A 32-bit write.
    fn write32(&self, offset: usize, value: u32) {
        self.write(offset, Width::U32, value);
    }
}

impl<R: Registers + ?Sized> Registers for &R {
    fn size(&self) -> usize {
        (**self).size()
    }
    fn read(&self, offset: usize, width: Width) -> u32 {
        (**self).read(offset, width)
    }
    fn write(&self, offset: usize, width: Width, value: u32) {
        (**self).write(offset, width, value);
    }
}

/// The identification registers every ARM PrimeCell peripheral (PL011, PL031, PL061, …) has
/// at the end of its 4 KiB window, each register's low byte packed little-endian
/// (`PeriphID0` in bits 0-7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrimeCellIdentification {
    /// `PeriphID0..3` (offsets 0xFE0-0xFEC).
    pub peripheral: u32,
    /// `PCellID0..3` (offsets 0xFF0-0xFFC).
    pub primecell: u32,
}

impl PrimeCellIdentification {
    /// Offset of `PeriphID0`.
    pub const PERIPH_ID0: usize = 0xFE0;
    /// Offset of `PCellID0`.
    pub const PCELL_ID0: usize = 0xFF0;
    /// The PrimeCell component identification every PrimeCell carries (0x0D, 0xF0, 0x05, 0xB1).
    pub const PRIMECELL: u32 = 0xB105_F00D;
    /// The designer code of ARM ('A').
    pub const DESIGNER_ARM: u8 = 0x41;

    /// Reads the eight identification registers.
    pub fn read<R: Registers>(registers: &R) -> Self {
        let packed = |base: usize| {
            (0..4).fold(0u32, |word, index| {
                let byte = registers.read32(base + 4 * index) & 0xFF;
                word | (byte << (8 * index))
            })
        };
        Self {
            peripheral: packed(Self::PERIPH_ID0),
            primecell: packed(Self::PCELL_ID0),
        }
    }

    /// The part number: `PeriphID0` and the low nibble of `PeriphID1`.
    #[must_use]
    pub const fn part_number(self) -> u16 {
        (self.peripheral & 0xFFF) as u16
    }

    /// The designer: the high nibble of `PeriphID1` and the low nibble of `PeriphID2`.
    #[must_use]
    pub const fn designer(self) -> u8 {
        ((self.peripheral >> 12) & 0xFF) as u8
    }

    /// The revision: the high nibble of `PeriphID2`.
    #[must_use]
    pub const fn revision(self) -> u8 {
        ((self.peripheral >> 20) & 0xF) as u8
    }

    /// Whether this identifies ARM's PrimeCell `part` (any revision).
    #[must_use]
    pub const fn is_arm_part(self, part: u16) -> bool {
        self.primecell == Self::PRIMECELL
            && self.part_number() == part
            && self.designer() == Self::DESIGNER_ARM
    }
}

/// A window of memory-mapped device registers (the seL4 implementation).
#[derive(Debug)]
pub struct Mmio {
    base: usize,
    size: usize,
}

impl Mmio {
    /// The window of `size` bytes at virtual address `base`.
    ///
    /// # Safety
    /// `base..base + size` must be mapped device memory (uncached) for as long as the value
    /// lives, holding registers that tolerate volatile accesses of the widths the driver uses,
    /// and no Rust reference may point into it.
    #[allow(unsafe_code)]
    #[must_use]
    pub const unsafe fn new(base: usize, size: usize) -> Self {
        Self { base, size }
    }

    /// The window's base address.
    #[must_use]
    pub fn base(&self) -> usize {
        self.base
    }
}

#[allow(unsafe_code)]
impl Registers for Mmio {
    fn size(&self) -> usize {
        self.size
    }

    fn read(&self, offset: usize, width: Width) -> u32 {
        if !access_ok(offset, width, self.size) {
            return width.all_ones();
        }
        let address = self.base + offset;
        // SAFETY: `Mmio::new`'s contract makes base..base+size mapped device memory; the access
        // is inside it and naturally aligned (checked above), and volatile keeps it one access
        // of exactly this width, in program order.
        unsafe {
            match width {
                Width::U8 => u32::from(core::ptr::read_volatile(address as *const u8)),
                Width::U16 => u32::from(core::ptr::read_volatile(address as *const u16)),
                Width::U32 => core::ptr::read_volatile(address as *const u32),
            }
        }
    }

    fn write(&self, offset: usize, width: Width, value: u32) {
        if !access_ok(offset, width, self.size) {
            return;
        }
        let address = self.base + offset;
        // SAFETY: as in `read`: inside the mapped window, aligned, one volatile access.
        unsafe {
            match width {
                Width::U8 => core::ptr::write_volatile(address as *mut u8, value as u8),
                Width::U16 => core::ptr::write_volatile(address as *mut u16, value as u16),
                Width::U32 => core::ptr::write_volatile(address as *mut u32, value),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_outside_the_window_or_misaligned_are_refused() {
        assert!(access_ok(0, Width::U32, 4));
        assert!(access_ok(0xffc, Width::U32, 0x1000));
        assert!(!access_ok(0x1000, Width::U8, 0x1000));
        assert!(!access_ok(0xffe, Width::U32, 0x1000));
        assert!(!access_ok(2, Width::U32, 0x1000));
        assert!(!access_ok(1, Width::U16, 0x1000));
        assert!(access_ok(3, Width::U8, 4));
        assert!(!access_ok(usize::MAX, Width::U8, 0x1000));
    }

    #[test]
    fn mmio_over_ordinary_memory_reads_back_and_refuses_out_of_range() {
        let mut words = [0u32; 4];
        // SAFETY: the array outlives `mmio`, nothing else references it while `mmio` is used.
        #[allow(unsafe_code)]
        let mmio = unsafe { Mmio::new(words.as_mut_ptr() as usize, 16) };
        mmio.write32(4, 0x1234_5678);
        assert_eq!(mmio.read32(4), 0x1234_5678);
        assert_eq!(mmio.read(4, Width::U8), 0x78);
        assert_eq!(mmio.read(6, Width::U16), 0x1234);
        mmio.write(5, Width::U8, 0xab);
        assert_eq!(mmio.read32(4), 0x1234_ab78);
        assert_eq!(mmio.read32(16), 0xffff_ffff);
        assert_eq!(mmio.read(2, Width::U32), 0xffff_ffff);
        mmio.write32(16, 1);
        mmio.write32(14, 1);
        assert_eq!(mmio.read32(12), 0);
        assert_eq!(words[1], 0x1234_ab78);
    }
}
