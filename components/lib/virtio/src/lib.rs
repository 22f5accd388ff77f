//! Warden's virtio-mmio transport for virtio-drivers, over the register-access trait.
//!
//! virtio-drivers ships an MMIO transport of its own, but it dereferences the register window
//! directly. Warden's drivers must run unchanged on seL4, where the window is device memory, and
//! on the host platform, where every register access is a message to the launcher's device model
//! (`QueueNotify` must make the model process the queue *at that access*). So this crate
//! implements [`virtio_drivers::transport::Transport`] once, over
//! [`warden_registers::Registers`], and every register access goes through `R::read`/`R::write`,
//! one access each, in program order.
//!
//! Only the modern (version 2) virtio-mmio layout of virtio 1.x §4.2.2 is supported: Warden's
//! boards and the host models are modern, and the legacy layout needs page-number queue
//! addresses that the driver side cannot check. A legacy device is refused with
//! [`TransportError::Legacy`] rather than driven wrongly.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use core::fmt;
use core::mem::{align_of, size_of};

use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error as VirtioError, PhysAddr};
use warden_registers::{Registers, Width};
use zerocopy::{FromBytes, Immutable, IntoBytes};

pub mod pci;
pub use pci::{PciError, PciTransport};

/// Byte offsets of the virtio-mmio version 2 registers (virtio 1.x §4.2.2).
pub mod register {
    /// `MagicValue`: 0x74726976 ("virt").
    pub const MAGIC_VALUE: usize = 0x000;
    /// `Version`: 2 for the modern layout, 1 for legacy.
    pub const VERSION: usize = 0x004;
    /// `DeviceID`: the virtio device type, 0 for an empty slot.
    pub const DEVICE_ID: usize = 0x008;
    /// `VendorID`.
    pub const VENDOR_ID: usize = 0x00c;
    /// `DeviceFeatures`: 32 feature bits selected by `DeviceFeaturesSel`.
    pub const DEVICE_FEATURES: usize = 0x010;
    /// `DeviceFeaturesSel`.
    pub const DEVICE_FEATURES_SEL: usize = 0x014;
    /// `DriverFeatures`: 32 feature bits selected by `DriverFeaturesSel`.
    pub const DRIVER_FEATURES: usize = 0x020;
    /// `DriverFeaturesSel`.
    pub const DRIVER_FEATURES_SEL: usize = 0x024;
    /// `QueueSel`: the queue the following queue registers apply to.
    pub const QUEUE_SEL: usize = 0x030;
    /// `QueueNumMax`: largest size of the selected queue, 0 if it does not exist.
    pub const QUEUE_NUM_MAX: usize = 0x034;
    /// `QueueNum`: the size the driver uses for the selected queue.
    pub const QUEUE_NUM: usize = 0x038;
    /// `QueueReady`.
    pub const QUEUE_READY: usize = 0x044;
    /// `QueueNotify`: write a queue index to make the device process that queue.
    pub const QUEUE_NOTIFY: usize = 0x050;
    /// `InterruptStatus`: bit 0 used buffer, bit 1 configuration change.
    pub const INTERRUPT_STATUS: usize = 0x060;
    /// `InterruptACK`: write the bits handled.
    pub const INTERRUPT_ACK: usize = 0x064;
    /// `Status`: the device status; writing 0 resets the device.
    pub const STATUS: usize = 0x070;
    /// `QueueDescLow`.
    pub const QUEUE_DESC_LOW: usize = 0x080;
    /// `QueueDescHigh`.
    pub const QUEUE_DESC_HIGH: usize = 0x084;
    /// `QueueDriverLow` (the available ring).
    pub const QUEUE_DRIVER_LOW: usize = 0x090;
    /// `QueueDriverHigh`.
    pub const QUEUE_DRIVER_HIGH: usize = 0x094;
    /// `QueueDeviceLow` (the used ring).
    pub const QUEUE_DEVICE_LOW: usize = 0x0a0;
    /// `QueueDeviceHigh`.
    pub const QUEUE_DEVICE_HIGH: usize = 0x0a4;
    /// `ConfigGeneration`.
    pub const CONFIG_GENERATION: usize = 0x0fc;
    /// Start of the device-specific configuration space.
    pub const CONFIG: usize = 0x100;
}

/// `MagicValue` of every virtio-mmio device: "virt" in little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// `Version` of the legacy virtio-mmio layout.
pub const LEGACY_VERSION: u32 = 1;
/// `Version` of the modern virtio-mmio layout, the one this transport drives.
pub const MODERN_VERSION: u32 = 2;

/// How many times [`Transport::queue_unset`] reads `QueueReady` back waiting for 0 before it
/// gives up. The spec makes the driver wait; a device that never clears it must not hang the PD.
const QUEUE_READY_POLLS: u32 = 1 << 16;

/// Why a register window cannot be driven as a virtio-mmio transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The window is smaller than the register block (0x100 bytes).
    WindowTooSmall {
        /// The window's size in bytes.
        size: usize,
    },
    /// `MagicValue` is not 0x74726976: this is not a virtio-mmio device.
    BadMagic(u32),
    /// A legacy (version 1) virtio-mmio device, which this transport does not drive.
    Legacy,
    /// A `Version` that is neither 1 nor 2.
    UnsupportedVersion(u32),
    /// `DeviceID` is 0: the slot is empty.
    NoDevice,
    /// A `DeviceID` virtio-drivers does not know.
    UnknownDevice(u32),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WindowTooSmall { size } => {
                write!(
                    f,
                    "register window of {size:#x} bytes is smaller than a virtio-mmio header"
                )
            }
            Self::BadMagic(magic) => {
                write!(
                    f,
                    "virtio-mmio magic value {magic:#010x}, expected {MAGIC:#010x}"
                )
            }
            Self::Legacy => f.write_str("legacy (version 1) virtio-mmio device is not supported"),
            Self::UnsupportedVersion(version) => {
                write!(f, "unsupported virtio-mmio version {version}")
            }
            Self::NoDevice => f.write_str("virtio-mmio slot is empty (device id 0)"),
            Self::UnknownDevice(id) => write!(f, "unknown virtio device id {id}"),
        }
    }
}

impl core::error::Error for TransportError {}

/// Reads the header of a virtio-mmio window and returns its device id, 0 for an empty slot.
///
/// This is what a bus driver needs to learn what sits in a slot without taking it over: it
/// only reads `MagicValue`, `Version` and `DeviceID`, which have no side effects.
///
/// # Errors
/// [`TransportError::WindowTooSmall`], [`TransportError::BadMagic`], [`TransportError::Legacy`]
/// or [`TransportError::UnsupportedVersion`] when the window is not a modern virtio-mmio device.
pub fn probe_device_id<R: Registers>(regs: &R) -> Result<u32, TransportError> {
    let size = regs.size();
    if size < register::CONFIG {
        return Err(TransportError::WindowTooSmall { size });
    }
    let magic = regs.read32(register::MAGIC_VALUE);
    if magic != MAGIC {
        return Err(TransportError::BadMagic(magic));
    }
    match regs.read32(register::VERSION) {
        MODERN_VERSION => Ok(regs.read32(register::DEVICE_ID)),
        LEGACY_VERSION => Err(TransportError::Legacy),
        version => Err(TransportError::UnsupportedVersion(version)),
    }
}

/// A virtio-mmio (version 2) transport whose every register access goes through `R`.
///
/// Dropping it resets the device (writes 0 to `Status`), as virtio-drivers' own MMIO transport
/// does, so a device never keeps DMA addresses of memory the driver has let go of.
#[derive(Debug)]
pub struct RegisterTransport<R: Registers> {
    regs: R,
    device_type: DeviceType,
}

impl<R: Registers> RegisterTransport<R> {
    /// Checks the header of the window and takes it over as a virtio-mmio transport.
    ///
    /// # Errors
    /// Everything [`probe_device_id`] refuses, plus [`TransportError::NoDevice`] for an empty
    /// slot and [`TransportError::UnknownDevice`] for a device id virtio-drivers does not know.
    pub fn new(regs: R) -> Result<Self, TransportError> {
        let device_id = probe_device_id(&regs)?;
        if device_id == 0 {
            return Err(TransportError::NoDevice);
        }
        let device_type = DeviceType::try_from(device_id)
            .map_err(|_| TransportError::UnknownDevice(device_id))?;
        Ok(Self { regs, device_type })
    }

    /// The register window.
    pub fn registers(&self) -> &R {
        &self.regs
    }

    /// `VendorID` of the device.
    pub fn vendor_id(&self) -> u32 {
        self.regs.read32(register::VENDOR_ID)
    }

    /// Bytes of device-specific configuration space the window holds.
    fn config_space_size(&self) -> usize {
        self.regs.size().saturating_sub(register::CONFIG)
    }

    /// Writes a 64-bit address as the Low/High register pair starting at `low`.
    fn write_address(&self, low: usize, address: PhysAddr) {
        self.regs.write32(low, address as u32);
        self.regs.write32(low + 4, (address >> 32) as u32);
    }
}

/// The access width for a config field of type `T` at `offset`, per §4.2.2.2 and §4.1.3.1: a
/// field is accessed with its own width (at most 32 bits, so a 64-bit field becomes two 32-bit
/// accesses); arrays of bytes are read a byte at a time.
fn config_width<T>(offset: usize) -> Result<Width, VirtioError> {
    let align = align_of::<T>();
    if align > 4 || offset % align != 0 {
        // virtio only guarantees 4-byte alignment of config fields; virtio-drivers' own
        // transport asserts here, a Warden PD reports it instead.
        return Err(VirtioError::InvalidParam);
    }
    let size = size_of::<T>();
    let width = [Width::U32, Width::U16, Width::U8]
        .into_iter()
        .find(|width| {
            let bytes = width.bytes();
            bytes <= align && size % bytes == 0
        })
        .unwrap_or(Width::U8);
    Ok(width)
}

/// Checks that `size` bytes at `offset` lie inside a config space of `space` bytes.
fn check_config_range(space: usize, offset: usize, size: usize) -> Result<(), VirtioError> {
    if space == 0 {
        return Err(VirtioError::ConfigSpaceMissing);
    }
    match offset.checked_add(size) {
        Some(end) if end <= space => Ok(()),
        _ => Err(VirtioError::ConfigSpaceTooSmall),
    }
}

impl<R: Registers> Drop for RegisterTransport<R> {
    fn drop(&mut self) {
        self.set_status(DeviceStatus::empty());
    }
}

impl<R: Registers> Transport for RegisterTransport<R> {
    fn device_type(&self) -> DeviceType {
        self.device_type
    }

    fn read_device_features(&mut self) -> u64 {
        self.regs.write32(register::DEVICE_FEATURES_SEL, 0);
        let low = self.regs.read32(register::DEVICE_FEATURES);
        self.regs.write32(register::DEVICE_FEATURES_SEL, 1);
        let high = self.regs.read32(register::DEVICE_FEATURES);
        u64::from(high) << 32 | u64::from(low)
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        self.regs.write32(register::DRIVER_FEATURES_SEL, 0);
        self.regs
            .write32(register::DRIVER_FEATURES, driver_features as u32);
        self.regs.write32(register::DRIVER_FEATURES_SEL, 1);
        self.regs
            .write32(register::DRIVER_FEATURES, (driver_features >> 32) as u32);
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.regs.write32(register::QUEUE_SEL, queue.into());
        self.regs.read32(register::QUEUE_NUM_MAX)
    }

    fn notify(&mut self, queue: u16) {
        self.regs.write32(register::QUEUE_NOTIFY, queue.into());
    }

    fn get_status(&self) -> DeviceStatus {
        DeviceStatus::from_bits_retain(self.regs.read32(register::STATUS))
    }

    fn set_status(&mut self, status: DeviceStatus) {
        self.regs.write32(register::STATUS, status.bits());
    }

    fn set_guest_page_size(&mut self, _guest_page_size: u32) {
        // Only the legacy layout has `GuestPageSize`; a modern device takes full addresses.
    }

    fn requires_legacy_layout(&self) -> bool {
        false
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        // QueueSel first: every queue register below applies to the selected queue, and
        // QueueReady last, because the device may use the queue as soon as it reads 1.
        self.regs.write32(register::QUEUE_SEL, queue.into());
        self.regs.write32(register::QUEUE_NUM, size);
        self.write_address(register::QUEUE_DESC_LOW, descriptors);
        self.write_address(register::QUEUE_DRIVER_LOW, driver_area);
        self.write_address(register::QUEUE_DEVICE_LOW, device_area);
        self.regs.write32(register::QUEUE_READY, 1);
    }

    fn queue_unset(&mut self, queue: u16) {
        self.regs.write32(register::QUEUE_SEL, queue.into());
        self.regs.write32(register::QUEUE_READY, 0);
        // §4.2.2.2: the driver must read QueueReady back as 0 before it reuses the queue memory.
        let stopped = (0..QUEUE_READY_POLLS).any(|_| self.regs.read32(register::QUEUE_READY) == 0);
        if !stopped {
            log::warn!("virtio-mmio: queue {queue} still ready after QueueReady = 0");
        }
        self.regs.write32(register::QUEUE_NUM, 0);
        self.write_address(register::QUEUE_DESC_LOW, 0);
        self.write_address(register::QUEUE_DRIVER_LOW, 0);
        self.write_address(register::QUEUE_DEVICE_LOW, 0);
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        self.regs.write32(register::QUEUE_SEL, queue.into());
        self.regs.read32(register::QUEUE_READY) != 0
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        let interrupt = self.regs.read32(register::INTERRUPT_STATUS);
        if interrupt == 0 {
            return InterruptStatus::empty();
        }
        self.regs.write32(register::INTERRUPT_ACK, interrupt);
        InterruptStatus::from_bits_truncate(interrupt)
    }

    fn read_config_generation(&self) -> u32 {
        self.regs.read32(register::CONFIG_GENERATION)
    }

    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, VirtioError> {
        let width = config_width::<T>(offset)?;
        check_config_range(self.config_space_size(), offset, size_of::<T>())?;
        let mut value = T::new_zeroed();
        let base = register::CONFIG + offset;
        for (index, chunk) in value.as_mut_bytes().chunks_mut(width.bytes()).enumerate() {
            let word = self.regs.read(base + index * width.bytes(), width);
            for (byte, value) in chunk.iter_mut().zip(word.to_le_bytes()) {
                *byte = value;
            }
        }
        Ok(value)
    }

    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: T,
    ) -> Result<(), VirtioError> {
        let width = config_width::<T>(offset)?;
        check_config_range(self.config_space_size(), offset, size_of::<T>())?;
        let base = register::CONFIG + offset;
        for (index, chunk) in value.as_bytes().chunks(width.bytes()).enumerate() {
            let mut bytes = [0u8; 4];
            for (byte, value) in bytes.iter_mut().zip(chunk) {
                *byte = *value;
            }
            self.regs.write(
                base + index * width.bytes(),
                width,
                u32::from_le_bytes(bytes),
            );
        }
        Ok(())
    }
}

/// A virtio device behind either transport: a virtio-mmio window, or a virtio-pci function
/// (a driver binds devices found on both buses with one device type).
#[derive(Debug)]
pub enum AnyTransport<R: Registers> {
    /// virtio-mmio.
    Mmio(RegisterTransport<R>),
    /// virtio-pci.
    Pci(PciTransport<R>),
}

/// Where a virtio device's registers are: a virtio-mmio window, or a virtio-pci function's
/// configuration space and BARs (by index).
#[derive(Debug)]
pub enum Found<R: Registers> {
    /// A virtio-mmio window.
    Mmio(R),
    /// A virtio-pci function.
    Pci {
        /// Its configuration space.
        config: R,
        /// Its BARs by index.
        bars: [Option<R>; 6],
    },
}

/// Why a device could not be taken over: its transport's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// virtio-mmio.
    Mmio(TransportError),
    /// virtio-pci.
    Pci(PciError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mmio(error) => write!(f, "{error}"),
            Self::Pci(error) => write!(f, "{error}"),
        }
    }
}

impl<R: Registers> AnyTransport<R> {
    /// Takes over the device `found` describes. A PCI function is let master the bus (its
    /// virtqueues are DMA) and its INTx is turned off: Warden's virtio drivers serve requests
    /// synchronously, and the line is shared with its slot's hot-plug interrupt.
    ///
    /// # Errors
    /// What the transport refuses ([`RegisterTransport::new`], [`PciTransport::new`]).
    pub fn open(found: Found<R>) -> Result<Self, OpenError> {
        match found {
            Found::Mmio(registers) => RegisterTransport::new(registers)
                .map(Self::Mmio)
                .map_err(OpenError::Mmio),
            Found::Pci { config, bars } => {
                // Checked first: a function refused does not get to master the bus.
                let transport = PciTransport::new(&config, bars).map_err(OpenError::Pci)?;
                pci::enable_bus_master(&config);
                Ok(Self::Pci(transport))
            }
        }
    }
}

/// Calls `$call` on whichever transport `$self` holds.
macro_rules! either {
    ($self:ident, $transport:ident => $call:expr) => {
        match $self {
            AnyTransport::Mmio($transport) => $call,
            AnyTransport::Pci($transport) => $call,
        }
    };
}

impl<R: Registers> Transport for AnyTransport<R> {
    fn device_type(&self) -> DeviceType {
        either!(self, transport => transport.device_type())
    }

    fn read_device_features(&mut self) -> u64 {
        either!(self, transport => transport.read_device_features())
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        either!(self, transport => transport.write_driver_features(driver_features));
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        either!(self, transport => transport.max_queue_size(queue))
    }

    fn notify(&mut self, queue: u16) {
        either!(self, transport => transport.notify(queue));
    }

    fn get_status(&self) -> DeviceStatus {
        either!(self, transport => transport.get_status())
    }

    fn set_status(&mut self, status: DeviceStatus) {
        either!(self, transport => transport.set_status(status));
    }

    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        either!(self, transport => transport.set_guest_page_size(guest_page_size));
    }

    fn requires_legacy_layout(&self) -> bool {
        either!(self, transport => transport.requires_legacy_layout())
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        either!(self, transport => transport.queue_set(queue, size, descriptors, driver_area, device_area));
    }

    fn queue_unset(&mut self, queue: u16) {
        either!(self, transport => transport.queue_unset(queue));
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        either!(self, transport => transport.queue_used(queue))
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        either!(self, transport => transport.ack_interrupt())
    }

    fn read_config_generation(&self) -> u32 {
        either!(self, transport => transport.read_config_generation())
    }

    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, VirtioError> {
        either!(self, transport => transport.read_config_space(offset))
    }

    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: T,
    ) -> Result<(), VirtioError> {
        either!(self, transport => transport.write_config_space(offset, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::vec::Vec;

    /// One recorded register access.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Access {
        Read(usize, Width),
        Write(usize, Width, u32),
    }

    /// A register file that behaves like a virtio-mmio header where the spec needs it
    /// (selector registers) and otherwise reads back what was written, recording every access.
    struct FakeRegisters {
        bytes: RefCell<Vec<u8>>,
        device_features: u64,
        queue_num_max: [u32; 2],
        accesses: RefCell<Vec<Access>>,
    }

    impl FakeRegisters {
        fn new(version: u32, device_id: u32) -> Self {
            let fake = Self {
                bytes: RefCell::new(std::vec![0; 0x200]),
                device_features: 1 << 32 | 1 << 9,
                queue_num_max: [16, 0],
                accesses: RefCell::new(Vec::new()),
            };
            fake.poke(register::MAGIC_VALUE, MAGIC);
            fake.poke(register::VERSION, version);
            fake.poke(register::DEVICE_ID, device_id);
            fake.poke(register::VENDOR_ID, 0x554d_4551);
            fake
        }

        fn poke(&self, offset: usize, value: u32) {
            self.bytes.borrow_mut()[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
        }

        fn peek(&self, offset: usize) -> u32 {
            let bytes = self.bytes.borrow();
            u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap())
        }

        fn take_accesses(&self) -> Vec<Access> {
            core::mem::take(&mut *self.accesses.borrow_mut())
        }
    }

    impl Registers for FakeRegisters {
        fn size(&self) -> usize {
            0x200
        }

        fn read(&self, offset: usize, width: Width) -> u32 {
            self.accesses.borrow_mut().push(Access::Read(offset, width));
            assert!(
                warden_registers::access_ok(offset, width, 0x200),
                "bad read {offset:#x}"
            );
            match offset {
                register::DEVICE_FEATURES => {
                    (self.device_features >> (32 * self.peek(register::DEVICE_FEATURES_SEL))) as u32
                }
                register::QUEUE_NUM_MAX => {
                    self.queue_num_max[self.peek(register::QUEUE_SEL) as usize]
                }
                _ => {
                    let bytes = self.bytes.borrow();
                    let mut word = [0u8; 4];
                    word[..width.bytes()].copy_from_slice(&bytes[offset..offset + width.bytes()]);
                    u32::from_le_bytes(word)
                }
            }
        }

        fn write(&self, offset: usize, width: Width, value: u32) {
            self.accesses
                .borrow_mut()
                .push(Access::Write(offset, width, value));
            assert!(
                warden_registers::access_ok(offset, width, 0x200),
                "bad write {offset:#x}"
            );
            let mut bytes = self.bytes.borrow_mut();
            bytes[offset..offset + width.bytes()]
                .copy_from_slice(&value.to_le_bytes()[..width.bytes()]);
        }
    }

    fn transport() -> RegisterTransport<FakeRegisters> {
        RegisterTransport::new(FakeRegisters::new(2, 2)).unwrap()
    }

    #[test]
    fn new_checks_magic_version_and_device_id() {
        let fake = FakeRegisters::new(2, 2);
        fake.poke(register::MAGIC_VALUE, 0x1234);
        assert_eq!(
            RegisterTransport::new(fake).err(),
            Some(TransportError::BadMagic(0x1234))
        );
        assert_eq!(
            RegisterTransport::new(FakeRegisters::new(1, 2)).err(),
            Some(TransportError::Legacy)
        );
        assert_eq!(
            RegisterTransport::new(FakeRegisters::new(3, 2)).err(),
            Some(TransportError::UnsupportedVersion(3))
        );
        assert_eq!(
            RegisterTransport::new(FakeRegisters::new(2, 0)).err(),
            Some(TransportError::NoDevice)
        );
        assert_eq!(
            RegisterTransport::new(FakeRegisters::new(2, 99)).err(),
            Some(TransportError::UnknownDevice(99))
        );
        let transport = transport();
        assert_eq!(transport.device_type(), DeviceType::Block);
        assert_eq!(transport.vendor_id(), 0x554d_4551);
    }

    #[test]
    fn probe_reports_empty_slots_and_reads_only_the_header() {
        let fake = FakeRegisters::new(2, 0);
        assert_eq!(probe_device_id(&fake), Ok(0));
        assert!(fake
            .take_accesses()
            .iter()
            .all(|access| matches!(access, Access::Read(offset, Width::U32) if *offset < 0x10)));
        assert_eq!(probe_device_id(&FakeRegisters::new(2, 4)), Ok(4));
        assert_eq!(
            probe_device_id(&FakeRegisters::new(1, 4)),
            Err(TransportError::Legacy)
        );
    }

    #[test]
    fn probe_refuses_a_window_too_small_for_the_header() {
        struct Tiny;
        impl Registers for Tiny {
            fn size(&self) -> usize {
                0x10
            }
            fn read(&self, _offset: usize, _width: Width) -> u32 {
                panic!("must not be read");
            }
            fn write(&self, _offset: usize, _width: Width, _value: u32) {}
        }
        assert_eq!(
            probe_device_id(&Tiny),
            Err(TransportError::WindowTooSmall { size: 0x10 })
        );
    }

    #[test]
    fn features_are_read_and_written_through_the_select_registers() {
        let mut transport = transport();
        transport.registers().take_accesses();
        assert_eq!(transport.read_device_features(), 1 << 32 | 1 << 9);
        transport.write_driver_features(1 << 32 | 1 << 9);
        assert_eq!(
            transport.registers().take_accesses(),
            [
                Access::Write(register::DEVICE_FEATURES_SEL, Width::U32, 0),
                Access::Read(register::DEVICE_FEATURES, Width::U32),
                Access::Write(register::DEVICE_FEATURES_SEL, Width::U32, 1),
                Access::Read(register::DEVICE_FEATURES, Width::U32),
                Access::Write(register::DRIVER_FEATURES_SEL, Width::U32, 0),
                Access::Write(register::DRIVER_FEATURES, Width::U32, 1 << 9),
                Access::Write(register::DRIVER_FEATURES_SEL, Width::U32, 1),
                Access::Write(register::DRIVER_FEATURES, Width::U32, 1),
            ]
        );
    }

    #[test]
    fn queue_registers_are_written_after_queue_sel_and_ready_last() {
        let mut transport = transport();
        assert_eq!(transport.max_queue_size(1), 0);
        assert_eq!(transport.max_queue_size(0), 16);
        transport.registers().take_accesses();
        transport.queue_set(0, 16, 0x1_2345_6000, 0x1_2345_6100, 0x7000);
        let accesses = transport.registers().take_accesses();
        assert_eq!(
            accesses.first(),
            Some(&Access::Write(register::QUEUE_SEL, Width::U32, 0))
        );
        assert_eq!(
            accesses.last(),
            Some(&Access::Write(register::QUEUE_READY, Width::U32, 1))
        );
        let fake = transport.registers();
        assert_eq!(fake.peek(register::QUEUE_NUM), 16);
        assert_eq!(fake.peek(register::QUEUE_DESC_LOW), 0x2345_6000);
        assert_eq!(fake.peek(register::QUEUE_DESC_HIGH), 1);
        assert_eq!(fake.peek(register::QUEUE_DRIVER_LOW), 0x2345_6100);
        assert_eq!(fake.peek(register::QUEUE_DRIVER_HIGH), 1);
        assert_eq!(fake.peek(register::QUEUE_DEVICE_LOW), 0x7000);
        assert_eq!(fake.peek(register::QUEUE_DEVICE_HIGH), 0);
        assert!(transport.queue_used(0));
        transport.registers().take_accesses();

        transport.queue_unset(0);
        let accesses = transport.registers().take_accesses();
        assert_eq!(
            accesses[..3],
            [
                Access::Write(register::QUEUE_SEL, Width::U32, 0),
                Access::Write(register::QUEUE_READY, Width::U32, 0),
                Access::Read(register::QUEUE_READY, Width::U32),
            ]
        );
        assert!(!transport.queue_used(0));
        assert_eq!(transport.registers().peek(register::QUEUE_DESC_LOW), 0);
    }

    #[test]
    fn interrupts_are_acknowledged_with_the_bits_read() {
        let mut transport = transport();
        assert_eq!(transport.ack_interrupt().bits(), 0);
        transport.registers().poke(register::INTERRUPT_STATUS, 3);
        transport.registers().take_accesses();
        assert_eq!(
            transport.ack_interrupt().bits(),
            (InterruptStatus::QUEUE_INTERRUPT | InterruptStatus::DEVICE_CONFIGURATION_INTERRUPT)
                .bits()
        );
        assert_eq!(
            transport.registers().take_accesses(),
            [
                Access::Read(register::INTERRUPT_STATUS, Width::U32),
                Access::Write(register::INTERRUPT_ACK, Width::U32, 3),
            ]
        );
    }

    #[test]
    fn config_space_uses_field_width_accesses() {
        let mut transport = transport();
        transport.registers().poke(0x100, 0x89ab_cdef);
        transport.registers().poke(0x104, 0x0123_4567);
        transport.registers().poke(0x1fc, 0x1122_3344);
        transport.registers().take_accesses();
        // A 64-bit value is read as two 32-bit accesses (u64 is 8-aligned, so read as [u32; 2]).
        let words: [u32; 2] = transport.read_config_space(0).unwrap();
        assert_eq!(
            u64::from(words[1]) << 32 | u64::from(words[0]),
            0x0123_4567_89ab_cdef
        );
        let half: u16 = transport.read_config_space(2).unwrap();
        assert_eq!(half, 0x89ab);
        let bytes: [u8; 3] = transport.read_config_space(1).unwrap();
        assert_eq!(bytes, [0xcd, 0xab, 0x89]);
        let last: u32 = transport.read_config_space(0xfc).unwrap();
        assert_eq!(last, 0x1122_3344);
        assert_eq!(
            transport.registers().take_accesses(),
            [
                Access::Read(0x100, Width::U32),
                Access::Read(0x104, Width::U32),
                Access::Read(0x102, Width::U16),
                Access::Read(0x101, Width::U8),
                Access::Read(0x102, Width::U8),
                Access::Read(0x103, Width::U8),
                Access::Read(0x1fc, Width::U32),
            ]
        );
        transport.write_config_space(4, 0xaabb_u16).unwrap();
        assert_eq!(
            transport.registers().take_accesses(),
            [Access::Write(0x104, Width::U16, 0xaabb)]
        );
        assert_eq!(transport.registers().peek(0x104), 0x0123_aabb);
    }

    #[test]
    fn config_space_refuses_out_of_range_and_misaligned_fields() {
        let mut transport = transport();
        assert_eq!(
            transport.read_config_space::<u32>(0xfd).err(),
            Some(VirtioError::InvalidParam)
        );
        assert_eq!(
            transport.read_config_space::<[u32; 2]>(0xfc).err(),
            Some(VirtioError::ConfigSpaceTooSmall)
        );
        assert_eq!(
            transport.read_config_space::<u64>(0).err(),
            Some(VirtioError::InvalidParam)
        );
        assert_eq!(
            transport.write_config_space(0x100, 1u8).err(),
            Some(VirtioError::ConfigSpaceTooSmall)
        );
        assert_eq!(
            transport.read_config_space::<u8>(usize::MAX).err(),
            Some(VirtioError::ConfigSpaceTooSmall)
        );
    }

    #[test]
    fn generation_status_and_notify_go_to_their_registers() {
        let mut transport = transport();
        transport.registers().poke(register::CONFIG_GENERATION, 7);
        assert_eq!(transport.read_config_generation(), 7);
        transport.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
        assert_eq!(
            transport.get_status(),
            DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER
        );
        transport.registers().take_accesses();
        transport.notify(3);
        assert_eq!(
            transport.registers().take_accesses(),
            [Access::Write(register::QUEUE_NOTIFY, Width::U32, 3)]
        );
        assert!(!transport.requires_legacy_layout());
        transport.set_guest_page_size(4096);
        assert!(transport.registers().take_accesses().is_empty());
    }

    #[test]
    fn dropping_the_transport_resets_the_device() {
        let fake = FakeRegisters::new(2, 2);
        fake.poke(register::STATUS, 0xf);
        let transport = RegisterTransport::new(&fake).unwrap();
        drop(transport);
        assert_eq!(fake.peek(register::STATUS), 0);
    }
}
