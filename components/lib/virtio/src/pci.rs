//! Warden's virtio-pci transport (virtio 1.x §4.1, the modern layout) over the register trait.
//!
//! virtio-drivers' own PCI transport reaches the BARs through raw pointers; this one, like the
//! MMIO transport beside it, makes every access through [`Registers`]: the function's 4 KiB of
//! configuration space (from the host bridge's ECAM) to find the virtio structures, and the
//! BARs that hold them ([`PciTransport::new`]).
//!
//! Configuration space and BAR contents are input from hardware: a capability list that loops
//! or points into the header ends the walk, a structure outside its BAR or in a BAR the
//! function was not given is refused ([`PciError`]), and no access leaves the structure it is
//! for.

use core::fmt;

use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{Error as VirtioError, PhysAddr};
use warden_registers::{Registers, Width};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// The vendor id of every virtio function.
pub const VENDOR: u16 = 0x1af4;
/// Modern virtio-pci device ids are this plus the virtio device type.
pub const MODERN_DEVICE_BASE: u16 = 0x1040;

/// Offsets in the common configuration structure (virtio 1.x §4.1.4.3).
pub mod common {
    /// `device_feature_select` (32 bits).
    pub const DEVICE_FEATURE_SELECT: usize = 0x00;
    /// `device_feature` (32 bits, read-only).
    pub const DEVICE_FEATURE: usize = 0x04;
    /// `driver_feature_select` (32 bits).
    pub const DRIVER_FEATURE_SELECT: usize = 0x08;
    /// `driver_feature` (32 bits).
    pub const DRIVER_FEATURE: usize = 0x0c;
    /// `config_msix_vector` (16 bits).
    pub const CONFIG_MSIX_VECTOR: usize = 0x10;
    /// `num_queues` (16 bits, read-only).
    pub const NUM_QUEUES: usize = 0x12;
    /// `device_status` (8 bits).
    pub const DEVICE_STATUS: usize = 0x14;
    /// `config_generation` (8 bits, read-only).
    pub const CONFIG_GENERATION: usize = 0x15;
    /// `queue_select` (16 bits).
    pub const QUEUE_SELECT: usize = 0x16;
    /// `queue_size` (16 bits): the maximum after reset; the driver may write a smaller one.
    pub const QUEUE_SIZE: usize = 0x18;
    /// `queue_msix_vector` (16 bits).
    pub const QUEUE_MSIX_VECTOR: usize = 0x1a;
    /// `queue_enable` (16 bits).
    pub const QUEUE_ENABLE: usize = 0x1c;
    /// `queue_notify_off` (16 bits, read-only).
    pub const QUEUE_NOTIFY_OFF: usize = 0x1e;
    /// `queue_desc` (64 bits, as two 32-bit halves).
    pub const QUEUE_DESC: usize = 0x20;
    /// `queue_driver` (64 bits).
    pub const QUEUE_DRIVER: usize = 0x28;
    /// `queue_device` (64 bits).
    pub const QUEUE_DEVICE: usize = 0x30;
    /// Bytes of the structure this transport uses.
    pub const LENGTH: usize = 0x38;
}

/// `cfg_type` of a virtio vendor capability.
pub mod cfg_type {
    /// Common configuration.
    pub const COMMON: u8 = 1;
    /// Notifications.
    pub const NOTIFY: u8 = 2;
    /// ISR status.
    pub const ISR: u8 = 3;
    /// Device-specific configuration.
    pub const DEVICE: u8 = 4;
}

/// A 16-bit read of configuration space.
fn read16<R: Registers>(config: &R, offset: usize) -> u16 {
    (config.read(offset, Width::U16) & 0xffff) as u16
}

/// An 8-bit read of configuration space.
fn read8<R: Registers>(config: &R, offset: usize) -> u8 {
    (config.read(offset, Width::U8) & 0xff) as u8
}

/// The vendor-specific capability id.
const CAPABILITY_VENDOR: u8 = 0x09;
/// Capability list present (Status register, bit 4).
const STATUS_CAPABILITIES: u16 = 1 << 4;
/// Most capabilities a list can hold (48 dwords after the header).
const MAX_CAPABILITIES: usize = 48;
/// How many times a reset reads `device_status` back waiting for 0 (each read is a round trip
/// to the device; QEMU's and the host platform's models are done at once).
const RESET_POLLS: u32 = 1 << 10;
/// `MSI-X` vector meaning none.
const NO_VECTOR: u16 = 0xffff;

/// Why a function cannot be driven as a modern virtio-pci device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciError {
    /// Not a virtio function (its vendor is not 0x1af4), or a transitional/legacy id.
    NotModernVirtio {
        /// Vendor ID.
        vendor: u16,
        /// Device ID.
        device: u16,
    },
    /// A device type virtio-drivers does not know.
    UnknownDevice(u16),
    /// The capability list loops, points into the header, or has no room for a capability.
    BadCapabilityList,
    /// One of the four structures (common, notify, ISR, device) is missing.
    Missing(u8),
    /// A structure names a BAR the function was not given, or lies outside it.
    OutsideBar {
        /// The structure's `cfg_type`.
        cfg_type: u8,
    },
}

impl fmt::Display for PciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotModernVirtio { vendor, device } => write!(
                f,
                "function {vendor:04x}:{device:04x} is not a modern virtio-pci device"
            ),
            Self::UnknownDevice(id) => write!(f, "unknown virtio device type {id}"),
            Self::BadCapabilityList => f.write_str("the capability list is malformed"),
            Self::Missing(kind) => write!(f, "no virtio structure of type {kind}"),
            Self::OutsideBar { cfg_type } => write!(
                f,
                "virtio structure of type {cfg_type} lies outside the BARs the function was given"
            ),
        }
    }
}

impl core::error::Error for PciError {}

/// One virtio structure: `length` bytes at `offset` of the BAR at `bar` (an index into the
/// transport's BAR windows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Structure {
    bar: usize,
    offset: usize,
    length: usize,
}

/// A modern virtio-pci transport: the configuration page `config` and the BAR windows `bars`
/// (by BAR index; `None` where the function has no BAR or was not given it).
#[derive(Debug)]
pub struct PciTransport<R: Registers> {
    bars: [Option<R>; 6],
    device_type: DeviceType,
    common: Structure,
    notify: Structure,
    notify_multiplier: usize,
    isr: Structure,
    device: Structure,
}

/// Lets the function master the bus (Command bit 2: its virtqueues are DMA) and turns its
/// INTx off (bit 10), for a driver that polls; memory decoding stays as enumeration set it.
pub fn enable_bus_master<C: Registers>(config: &C) {
    let command = read16(config, 0x04);
    config.write(0x04, Width::U16, u32::from(command | 0x0004 | 0x0400));
}

impl<R: Registers> PciTransport<R> {
    /// Takes over the function whose configuration space is `config` and whose BAR windows
    /// are `bars` (by BAR index).
    ///
    /// # Errors
    /// A function that is not a modern virtio device, a malformed capability list, or a
    /// structure missing or outside the BARs given.
    pub fn new<C: Registers>(config: &C, bars: [Option<R>; 6]) -> Result<Self, PciError> {
        let vendor = read16(config, 0x00);
        let device = read16(config, 0x02);
        if vendor != VENDOR || device < MODERN_DEVICE_BASE {
            return Err(PciError::NotModernVirtio { vendor, device });
        }
        let kind = device - MODERN_DEVICE_BASE;
        let device_type =
            DeviceType::try_from(u32::from(kind)).map_err(|_| PciError::UnknownDevice(kind))?;
        let mut found: [Option<(Structure, usize)>; 4] = [None; 4];
        if read16(config, 0x06) & STATUS_CAPABILITIES != 0 {
            let mut at = usize::from(read8(config, 0x34) & 0xfc);
            let mut steps = 0;
            while at != 0 {
                steps += 1;
                if steps > MAX_CAPABILITIES || !(0x40..=0x100 - 2).contains(&at) {
                    return Err(PciError::BadCapabilityList);
                }
                let id = read8(config, at);
                let next = usize::from(read8(config, at + 1) & 0xfc);
                if id == CAPABILITY_VENDOR {
                    let kind = read8(config, at + 3);
                    // A virtio capability is 16 bytes (20 for notifications), all of them in
                    // configuration space and all of them counted in its length.
                    let least = if kind == cfg_type::NOTIFY { 20 } else { 16 };
                    let length = usize::from(read8(config, at + 2));
                    if at + least > 0x100 || length < least {
                        return Err(PciError::BadCapabilityList);
                    }
                    let structure = Structure {
                        bar: usize::from(read8(config, at + 4)),
                        offset: config.read32(at + 8) as usize,
                        length: config.read32(at + 12) as usize,
                    };
                    let multiplier = if kind == cfg_type::NOTIFY {
                        config.read32(at + 16) as usize
                    } else {
                        0
                    };
                    // The first structure of each type is the one to use (§4.1.4).
                    if let Some(slot @ None) = usize::from(kind)
                        .checked_sub(1)
                        .and_then(|index| found.get_mut(index))
                    {
                        *slot = Some((structure, multiplier));
                    }
                }
                at = next;
            }
        }
        let take = |kind: u8, least: usize| -> Result<(Structure, usize), PciError> {
            let (structure, multiplier) = found
                .get(usize::from(kind) - 1)
                .copied()
                .flatten()
                .ok_or(PciError::Missing(kind))?;
            let size = bars
                .get(structure.bar)
                .and_then(Option::as_ref)
                .map(Registers::size)
                .ok_or(PciError::OutsideBar { cfg_type: kind })?;
            let inside = structure.length >= least
                && structure
                    .offset
                    .checked_add(structure.length)
                    .is_some_and(|end| end <= size);
            if inside {
                Ok((structure, multiplier))
            } else {
                Err(PciError::OutsideBar { cfg_type: kind })
            }
        };
        let (common, _) = take(cfg_type::COMMON, common::LENGTH)?;
        let (notify, notify_multiplier) = take(cfg_type::NOTIFY, 2)?;
        let (isr, _) = take(cfg_type::ISR, 1)?;
        let (device, _) = take(cfg_type::DEVICE, 0)?;
        Ok(Self {
            bars,
            device_type,
            common,
            notify,
            notify_multiplier,
            isr,
            device,
        })
    }

    /// The `at`-th byte of `structure` as `width`, if it lies inside the structure.
    fn reach(&self, structure: Structure, at: usize, width: Width) -> Option<(&R, usize)> {
        let end = at.checked_add(width.bytes())?;
        if end > structure.length {
            return None;
        }
        let bar = self.bars.get(structure.bar)?.as_ref()?;
        Some((bar, structure.offset.checked_add(at)?))
    }

    fn read(&self, structure: Structure, at: usize, width: Width) -> u32 {
        self.reach(structure, at, width)
            .map_or(width.all_ones(), |(bar, offset)| bar.read(offset, width))
    }

    fn write(&self, structure: Structure, at: usize, width: Width, value: u32) {
        if let Some((bar, offset)) = self.reach(structure, at, width) {
            bar.write(offset, width, value);
        }
    }

    fn common_read(&self, at: usize, width: Width) -> u32 {
        self.read(self.common, at, width)
    }

    fn common_write(&self, at: usize, width: Width, value: u32) {
        self.write(self.common, at, width, value);
    }

    fn write_address(&self, at: usize, address: PhysAddr) {
        self.common_write(at, Width::U32, address as u32);
        self.common_write(at + 4, Width::U32, (address >> 32) as u32);
    }

    fn select(&self, queue: u16) {
        self.common_write(common::QUEUE_SELECT, Width::U16, queue.into());
    }
}

impl<R: Registers> Drop for PciTransport<R> {
    fn drop(&mut self) {
        self.set_status(DeviceStatus::empty());
    }
}

impl<R: Registers> Transport for PciTransport<R> {
    fn device_type(&self) -> DeviceType {
        self.device_type
    }

    fn read_device_features(&mut self) -> u64 {
        self.common_write(common::DEVICE_FEATURE_SELECT, Width::U32, 0);
        let low = self.common_read(common::DEVICE_FEATURE, Width::U32);
        self.common_write(common::DEVICE_FEATURE_SELECT, Width::U32, 1);
        let high = self.common_read(common::DEVICE_FEATURE, Width::U32);
        u64::from(high) << 32 | u64::from(low)
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        self.common_write(common::DRIVER_FEATURE_SELECT, Width::U32, 0);
        self.common_write(common::DRIVER_FEATURE, Width::U32, driver_features as u32);
        self.common_write(common::DRIVER_FEATURE_SELECT, Width::U32, 1);
        self.common_write(
            common::DRIVER_FEATURE,
            Width::U32,
            (driver_features >> 32) as u32,
        );
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.select(queue);
        self.common_read(common::QUEUE_SIZE, Width::U16)
    }

    fn notify(&mut self, queue: u16) {
        self.select(queue);
        let offset = self.common_read(common::QUEUE_NOTIFY_OFF, Width::U16) as usize;
        if let Some(at) = offset.checked_mul(self.notify_multiplier) {
            self.write(self.notify, at, Width::U16, queue.into());
        }
    }

    fn get_status(&self) -> DeviceStatus {
        DeviceStatus::from_bits_retain(self.common_read(common::DEVICE_STATUS, Width::U8))
    }

    fn set_status(&mut self, status: DeviceStatus) {
        self.common_write(common::DEVICE_STATUS, Width::U8, status.bits() & 0xff);
        if status.is_empty() {
            // A reset is done when device_status reads 0 again (§4.1.4.3.2). A card that is
            // gone (pulled out) reads all ones: nothing to wait for. One that never gets there
            // must not hang the PD.
            let done = (0..RESET_POLLS)
                .map(|_| self.common_read(common::DEVICE_STATUS, Width::U8))
                .find(|status| *status == 0 || *status == 0xff);
            match done {
                Some(0) => {}
                Some(_) => log::warn!("virtio-pci: the device is gone (its status reads all ones)"),
                None => log::warn!("virtio-pci: device_status still not 0 after a reset"),
            }
        }
    }

    fn set_guest_page_size(&mut self, _guest_page_size: u32) {
        // Only legacy devices have a page size; a modern device takes full addresses.
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
        // queue_select first: every queue field below applies to the selected queue; no MSI-X
        // vector (INTx); queue_enable last, because the device may use the queue from then on.
        self.select(queue);
        self.common_write(common::QUEUE_SIZE, Width::U16, size);
        self.common_write(common::QUEUE_MSIX_VECTOR, Width::U16, NO_VECTOR.into());
        self.write_address(common::QUEUE_DESC, descriptors);
        self.write_address(common::QUEUE_DRIVER, driver_area);
        self.write_address(common::QUEUE_DEVICE, device_area);
        self.common_write(common::QUEUE_ENABLE, Width::U16, 1);
    }

    fn queue_unset(&mut self, queue: u16) {
        // A modern device's queue is only disabled by a reset (writing 0 to queue_enable is
        // not allowed without VIRTIO_F_RING_RESET); virtio-drivers unsets queues as it drops
        // the device, whose reset (status 0, in Drop) follows. The addresses are cleared so
        // nothing points at memory the driver is letting go of.
        self.select(queue);
        self.write_address(common::QUEUE_DESC, 0);
        self.write_address(common::QUEUE_DRIVER, 0);
        self.write_address(common::QUEUE_DEVICE, 0);
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        self.select(queue);
        self.common_read(common::QUEUE_ENABLE, Width::U16) & 1 != 0
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        // Reading the ISR status clears it (§4.1.4.5).
        let isr = self.read(self.isr, 0, Width::U8);
        InterruptStatus::from_bits_truncate(isr & 0x3)
    }

    fn read_config_generation(&self) -> u32 {
        self.common_read(common::CONFIG_GENERATION, Width::U8)
    }

    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T, VirtioError> {
        let width = crate::config_width::<T>(offset)?;
        crate::check_config_range(self.device.length, offset, core::mem::size_of::<T>())?;
        let mut value = T::new_zeroed();
        for (index, chunk) in value.as_mut_bytes().chunks_mut(width.bytes()).enumerate() {
            let word = self.read(self.device, offset + index * width.bytes(), width);
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
        let width = crate::config_width::<T>(offset)?;
        crate::check_config_range(self.device.length, offset, core::mem::size_of::<T>())?;
        for (index, chunk) in value.as_bytes().chunks(width.bytes()).enumerate() {
            let mut bytes = [0u8; 4];
            for (byte, value) in bytes.iter_mut().zip(chunk) {
                *byte = *value;
            }
            self.write(
                self.device,
                offset + index * width.bytes(),
                width,
                u32::from_le_bytes(bytes),
            );
        }
        Ok(())
    }
}
