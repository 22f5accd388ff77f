//! Configuration space: a function's address, the header's registers, and ECAM access to them.

use core::fmt;

use warden_registers::{Registers, Width};

/// A function's place in configuration space: bus, device (0–31), function (0–7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    /// Bus number.
    pub bus: u8,
    /// Device number on the bus, below 32.
    pub device: u8,
    /// Function number in the device, below 8.
    pub function: u8,
}

impl Address {
    /// The function `function` of device `device` on bus `bus`; `None` if a number is out of
    /// range.
    #[must_use]
    pub const fn new(bus: u8, device: u8, function: u8) -> Option<Self> {
        if device < 32 && function < 8 {
            Some(Self {
                bus,
                device,
                function,
            })
        } else {
            None
        }
    }

    /// Device and function in one byte, as the device tree's `reg` and Linux's `devfn` hold
    /// them.
    #[must_use]
    pub const fn devfn(self) -> u8 {
        (self.device << 3) | self.function
    }

    /// The offset of the function's 4 KiB in an ECAM window that starts at bus `first_bus`.
    #[must_use]
    pub const fn ecam_offset(self, first_bus: u8) -> usize {
        ((self.bus.wrapping_sub(first_bus) as usize) << 20)
            | ((self.device as usize) << 15)
            | ((self.function as usize) << 12)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// Byte offsets of the configuration header's registers (PCI Local Bus 3.0 §6.1; PCI-to-PCI
/// Bridge 1.2 §3.2 for the type 1 header).
pub mod register {
    /// Vendor ID (16 bits): 0xFFFF where no function answers.
    pub const VENDOR_ID: u16 = 0x00;
    /// Device ID (16 bits).
    pub const DEVICE_ID: u16 = 0x02;
    /// Command (16 bits).
    pub const COMMAND: u16 = 0x04;
    /// Status (16 bits).
    pub const STATUS: u16 = 0x06;
    /// Revision ID (8 bits), then the class code's programming interface, subclass and class.
    pub const REVISION: u16 = 0x08;
    /// Header type (8 bits): layout in bits 0–6, multi-function in bit 7.
    pub const HEADER_TYPE: u16 = 0x0E;
    /// The first base address register.
    pub const BAR0: u16 = 0x10;
    /// Capabilities pointer (8 bits), in both header types.
    pub const CAPABILITIES: u16 = 0x34;
    /// Type 0: expansion ROM base address (bit 0 enables it).
    pub const ROM: u16 = 0x30;
    /// Type 1: expansion ROM base address.
    pub const BRIDGE_ROM: u16 = 0x38;
    /// Interrupt pin (8 bits): 0 none, 1–4 INTA–INTD.
    pub const INTERRUPT_PIN: u16 = 0x3D;
    /// Type 1: primary bus number (8 bits).
    pub const PRIMARY_BUS: u16 = 0x18;
    /// Type 1: secondary bus number (8 bits).
    pub const SECONDARY_BUS: u16 = 0x19;
    /// Type 1: subordinate bus number (8 bits).
    pub const SUBORDINATE_BUS: u16 = 0x1A;
    /// Type 1: I/O base (8 bits; address bits 15:12 in its high nibble).
    pub const IO_BASE: u16 = 0x1C;
    /// Type 1: I/O limit (8 bits).
    pub const IO_LIMIT: u16 = 0x1D;
    /// Type 1: memory base (16 bits; address bits 31:20 in bits 15:4).
    pub const MEMORY_BASE: u16 = 0x20;
    /// Type 1: memory limit (16 bits).
    pub const MEMORY_LIMIT: u16 = 0x22;
    /// Type 1: prefetchable memory base (16 bits, as the memory base; bit 0: 64-bit).
    pub const PREFETCHABLE_BASE: u16 = 0x24;
    /// Type 1: prefetchable memory limit (16 bits).
    pub const PREFETCHABLE_LIMIT: u16 = 0x26;
    /// Type 1: prefetchable base, bits 63:32.
    pub const PREFETCHABLE_BASE_UPPER: u16 = 0x28;
    /// Type 1: prefetchable limit, bits 63:32.
    pub const PREFETCHABLE_LIMIT_UPPER: u16 = 0x2C;
    /// Type 1: I/O base, bits 31:16.
    pub const IO_BASE_UPPER: u16 = 0x30;
    /// Type 1: I/O limit, bits 31:16.
    pub const IO_LIMIT_UPPER: u16 = 0x32;
}

/// Command register bits.
pub mod command {
    /// Responds to I/O space accesses.
    pub const IO: u16 = 1 << 0;
    /// Responds to memory space accesses.
    pub const MEMORY: u16 = 1 << 1;
    /// May master the bus (DMA; a bridge forwards upstream).
    pub const BUS_MASTER: u16 = 1 << 2;
    /// INTx disabled.
    pub const INTX_DISABLE: u16 = 1 << 10;
}

/// Status register: a capability list is present.
pub const STATUS_CAPABILITIES: u16 = 1 << 4;
/// Header type: the device has functions 1–7 as well.
pub const MULTIFUNCTION: u8 = 0x80;
/// Header type layout: an endpoint (type 0).
pub const HEADER_ENDPOINT: u8 = 0;
/// Header type layout: a PCI-to-PCI bridge (type 1).
pub const HEADER_BRIDGE: u8 = 1;
/// Bytes of one function's configuration space (PCI Express; conventional PCI has 256).
pub const FUNCTION_SPACE: u16 = 4096;

/// Access to configuration space.
///
/// # What every implementation must guarantee
/// - An access to a function that is not there, to a bus outside the space, beyond the
///   function's 4 KiB or misaligned for its width reads all ones in its width and writes
///   nothing. It never panics: configuration space is input from hardware.
/// - Accesses reach the function one at a time, in order, each exactly once, with the width
///   asked for (a BAR's sizing write must be seen before the read that follows it).
pub trait ConfigSpace {
    /// Reads `width` bytes at `offset` of `address`'s configuration space.
    fn read(&self, address: Address, offset: u16, width: Width) -> u32;
    /// Writes the low `width` bytes of `value` at `offset` of `address`'s space.
    fn write(&self, address: Address, offset: u16, width: Width, value: u32);

    /// An 8-bit read.
    fn read8(&self, address: Address, offset: u16) -> u8 {
        (self.read(address, offset, Width::U8) & 0xFF) as u8
    }
    /// A 16-bit read.
    fn read16(&self, address: Address, offset: u16) -> u16 {
        (self.read(address, offset, Width::U16) & 0xFFFF) as u16
    }
    /// A 32-bit read.
    fn read32(&self, address: Address, offset: u16) -> u32 {
        self.read(address, offset, Width::U32)
    }
    /// An 8-bit write.
    fn write8(&self, address: Address, offset: u16, value: u8) {
        self.write(address, offset, Width::U8, u32::from(value));
    }
    /// A 16-bit write.
    fn write16(&self, address: Address, offset: u16, value: u16) {
        self.write(address, offset, Width::U16, u32::from(value));
    }
    /// A 32-bit write.
    fn write32(&self, address: Address, offset: u16, value: u32) {
        self.write(address, offset, Width::U32, value);
    }
}

impl<C: ConfigSpace + ?Sized> ConfigSpace for &C {
    fn read(&self, address: Address, offset: u16, width: Width) -> u32 {
        (**self).read(address, offset, width)
    }
    fn write(&self, address: Address, offset: u16, width: Width, value: u32) {
        (**self).write(address, offset, width, value);
    }
}

/// The Enhanced Configuration Access Mechanism (PCI Express 5.0 §7.2.2): every function's 4 KiB
/// at `bus << 20 | device << 15 | function << 12` in one memory window, which starts at the
/// first bus of the host bridge's `bus-range`.
#[derive(Debug)]
pub struct Ecam<R> {
    registers: R,
    buses: Option<(u8, u8)>,
}

impl<R: Registers> Ecam<R> {
    /// The window `registers` for buses `first_bus..=last_bus` (the `bus-range`); buses the
    /// window is too small for are outside the space.
    pub fn new(registers: R, first_bus: u8, last_bus: u8) -> Self {
        let held = registers.size() >> 20;
        let buses = (held != 0 && last_bus >= first_bus).then(|| {
            let last_held = usize::from(first_bus) + (held - 1);
            let last = usize::from(last_bus).min(last_held);
            (first_bus, u8::try_from(last).unwrap_or(u8::MAX))
        });
        Self { registers, buses }
    }

    /// The buses the window holds (first, last), if any.
    #[must_use]
    pub fn buses(&self) -> Option<(u8, u8)> {
        self.buses
    }

    /// The register window.
    pub fn registers(&self) -> &R {
        &self.registers
    }

    fn offset(&self, address: Address, offset: u16, width: Width) -> Option<usize> {
        let (first, last) = self.buses?;
        let inside = (first..=last).contains(&address.bus)
            && address.device < 32
            && address.function < 8
            && usize::from(offset) + width.bytes() <= usize::from(FUNCTION_SPACE)
            && usize::from(offset) % width.bytes() == 0;
        inside.then(|| address.ecam_offset(first) | usize::from(offset))
    }
}

impl<R: Registers> ConfigSpace for Ecam<R> {
    fn read(&self, address: Address, offset: u16, width: Width) -> u32 {
        match self.offset(address, offset, width) {
            Some(at) => self.registers.read(at, width),
            None => width.all_ones(),
        }
    }

    fn write(&self, address: Address, offset: u16, width: Width, value: u32) {
        if let Some(at) = self.offset(address, offset, width) {
            self.registers.write(at, width, value);
        }
    }
}
