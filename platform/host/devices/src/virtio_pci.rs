//! A modern virtio-pci device (virtio 1.x §4.1): the structures in its memory BAR, over the
//! same virtio device as [`VirtioMmio`] (its queues, features, status and backend), so the PCI
//! card and the MMIO transport behave alike and the drivers' two transports are tested against
//! one device.
//!
//! The BAR holds, as QEMU lays it out: the common configuration at 0x0000, the ISR status at
//! 0x1000, the device configuration at 0x2000 and the notifications at 0x3000 (a queue's at
//! `0x3000 + 4 × queue`). [`virtio_pci_capabilities`] gives the configuration-space capabilities
//! that point at them. Each field takes accesses of its own width only; anything else reads 0
//! and writes nothing, as for the other models.

use crate::{BarSpec, Device, DmaMemory, PciFunction, VirtioBackend, VirtioMmio, Width};
use warden_virtio::pci::common;
use warden_virtio::register;

/// Bytes of the BAR.
pub const BAR_BYTES: u64 = 0x4000;
/// Where the structures are in the BAR: (cfg_type, offset, length).
pub const STRUCTURES: [(u8, u32, u32); 4] = [
    (1, 0x0000, 0x1000),
    (3, 0x1000, 0x1000),
    (4, 0x2000, 0x1000),
    (2, 0x3000, 0x1000),
];
/// Bytes between two queues' notification addresses.
pub const NOTIFY_MULTIPLIER: u32 = 4;
/// `MSI-X` vector meaning none: the device has no MSI-X, only INTx.
const NO_VECTOR: u32 = 0xffff;

/// The vendor capabilities (id 9) that describe the structures, for BAR `bar`: each as the
/// bytes after the id and the next pointer.
#[must_use]
pub fn virtio_pci_capabilities(bar: u8) -> Vec<Vec<u8>> {
    STRUCTURES
        .iter()
        .map(|&(kind, offset, length)| {
            let notify = kind == 2;
            let cap_len: u8 = if notify { 20 } else { 16 };
            let mut body = vec![cap_len, kind, bar, 0, 0, 0];
            body.extend_from_slice(&offset.to_le_bytes());
            body.extend_from_slice(&length.to_le_bytes());
            if notify {
                body.extend_from_slice(&NOTIFY_MULTIPLIER.to_le_bytes());
            }
            body
        })
        .collect()
}

/// A virtio device behind its BAR.
#[derive(Debug, Default)]
pub struct VirtioPci {
    device: VirtioMmio,
    queue_select: u16,
}

impl VirtioPci {
    /// A modern virtio-pci card as QEMU makes one (`virtio-blk-pci`, `virtio-rng-pci`) with
    /// `backend` behind it: ids 1af4:(1040 + its device type), its class (mass storage for a
    /// disk, other devices "other"), BAR 1 as QEMU's MSI-X table (4 KiB, 32-bit, not decoded),
    /// BAR 4 (16 KiB, 64-bit, prefetchable) holding the virtio structures that the vendor
    /// capabilities point at, and INTA.
    #[must_use]
    pub fn card(backend: Box<dyn VirtioBackend>) -> PciFunction {
        let kind = backend.device_id();
        let class = if kind == 2 { 0x01_00_00 } else { 0xff_00_00 };
        let mut device = VirtioMmio::new();
        // A new slot is empty: the plug cannot be refused.
        let _ = device.plug(backend);
        let mut card = PciFunction::endpoint(0x1af4, 0x1040 + kind as u16, class)
            .with_bar(
                1,
                BarSpec::Memory32 {
                    size: 0x1000,
                    prefetchable: false,
                },
            )
            .with_bar(
                4,
                BarSpec::Memory64 {
                    size: BAR_BYTES,
                    prefetchable: true,
                },
            )
            .with_pin(1)
            .with_memory(4, Box::new(Self::new(device)));
        for body in virtio_pci_capabilities(4) {
            card = card.with_capability(0x09, &body);
        }
        card
    }

    /// The BAR of `device` (an occupied [`VirtioMmio`] slot).
    #[must_use]
    pub fn new(device: VirtioMmio) -> Self {
        Self {
            device,
            queue_select: 0,
        }
    }

    fn register(&mut self, register: usize, dma: &mut dyn DmaMemory) -> u32 {
        self.device.read(register as u64, Width::U32, dma)
    }

    fn set(&mut self, register: usize, value: u32, dma: &mut dyn DmaMemory) {
        self.device.write(register as u64, Width::U32, value, dma);
    }

    /// The MMIO register a common-configuration field is, with the width it takes.
    fn field(offset: u64) -> Option<(Width, Field)> {
        let mmio = |register| Field::Register(register);
        Some(match offset as usize {
            common::DEVICE_FEATURE_SELECT => (Width::U32, mmio(register::DEVICE_FEATURES_SEL)),
            common::DEVICE_FEATURE => (Width::U32, mmio(register::DEVICE_FEATURES)),
            common::DRIVER_FEATURE_SELECT => (Width::U32, mmio(register::DRIVER_FEATURES_SEL)),
            common::DRIVER_FEATURE => (Width::U32, mmio(register::DRIVER_FEATURES)),
            common::CONFIG_MSIX_VECTOR | common::QUEUE_MSIX_VECTOR => (Width::U16, Field::Vector),
            common::NUM_QUEUES => (Width::U16, Field::NumQueues),
            common::DEVICE_STATUS => (Width::U8, mmio(register::STATUS)),
            common::CONFIG_GENERATION => (Width::U8, mmio(register::CONFIG_GENERATION)),
            common::QUEUE_SELECT => (Width::U16, Field::QueueSelect),
            common::QUEUE_SIZE => (Width::U16, Field::QueueSize),
            common::QUEUE_ENABLE => (Width::U16, mmio(register::QUEUE_READY)),
            common::QUEUE_NOTIFY_OFF => (Width::U16, Field::NotifyOffset),
            0x20 => (Width::U32, mmio(register::QUEUE_DESC_LOW)),
            0x24 => (Width::U32, mmio(register::QUEUE_DESC_HIGH)),
            0x28 => (Width::U32, mmio(register::QUEUE_DRIVER_LOW)),
            0x2c => (Width::U32, mmio(register::QUEUE_DRIVER_HIGH)),
            0x30 => (Width::U32, mmio(register::QUEUE_DEVICE_LOW)),
            0x34 => (Width::U32, mmio(register::QUEUE_DEVICE_HIGH)),
            _ => return None,
        })
    }

    fn common_read(&mut self, offset: u64, width: Width, dma: &mut dyn DmaMemory) -> u32 {
        let Some((expected, field)) = Self::field(offset).filter(|(want, _)| *want == width) else {
            log::debug!(
                "virtio-pci: invalid {width:?} read of common configuration at {offset:#x}"
            );
            return 0;
        };
        let value = match field {
            Field::Register(register) => self.register(register, dma),
            Field::Vector => NO_VECTOR,
            Field::NumQueues => self.device.queue_count() as u32,
            Field::QueueSelect => u32::from(self.queue_select),
            Field::QueueSize => {
                // queue_size reads the maximum until the driver writes a size of its own.
                match self.register(register::QUEUE_NUM, dma) {
                    0 => self.register(register::QUEUE_NUM_MAX, dma),
                    size => size,
                }
            }
            Field::NotifyOffset => u32::from(self.queue_select),
        };
        value & expected.all_ones()
    }

    fn common_write(&mut self, offset: u64, width: Width, value: u32, dma: &mut dyn DmaMemory) {
        let Some((_, field)) = Self::field(offset).filter(|(want, _)| *want == width) else {
            log::debug!(
                "virtio-pci: invalid {width:?} write of common configuration at {offset:#x}"
            );
            return;
        };
        match field {
            // A driver may not disable a queue this way (§4.1.4.3.2: only a reset does).
            Field::Register(register::QUEUE_READY) if value == 0 => {
                log::debug!("virtio-pci: queue_enable written with 0; ignored");
            }
            Field::Register(register) => self.set(register, value, dma),
            Field::QueueSelect => {
                self.queue_select = value as u16;
                self.set(register::QUEUE_SEL, value, dma);
            }
            Field::QueueSize => self.set(register::QUEUE_NUM, value, dma),
            Field::Vector | Field::NumQueues | Field::NotifyOffset => {
                log::debug!("virtio-pci: write of {value:#x} to a read-only field at {offset:#x}");
            }
        }
    }
}

/// A common-configuration field.
enum Field {
    /// The MMIO transport's register of the same meaning.
    Register(usize),
    /// An MSI-X vector (none).
    Vector,
    /// `num_queues`.
    NumQueues,
    /// `queue_select`.
    QueueSelect,
    /// `queue_size`.
    QueueSize,
    /// `queue_notify_off`.
    NotifyOffset,
}

impl Device for VirtioPci {
    fn kind(&self) -> &'static str {
        "virtio-pci"
    }

    fn size(&self) -> u64 {
        BAR_BYTES
    }

    fn read(&mut self, offset: u64, width: Width, dma: &mut dyn DmaMemory) -> u32 {
        match offset {
            0x0000..0x1000 => self.common_read(offset, width, dma),
            // Reading the ISR status clears it (§4.1.4.5).
            0x1000 if width == Width::U8 => {
                let status = self.register(register::INTERRUPT_STATUS, dma);
                self.set(register::INTERRUPT_ACK, status, dma);
                status & 0x3
            }
            0x2000..0x3000 => {
                let at = register::CONFIG as u64 + (offset - 0x2000);
                self.device.read(at, width, dma)
            }
            _ => {
                log::debug!("virtio-pci: invalid {width:?} read at {offset:#x}");
                0
            }
        }
    }

    fn write(&mut self, offset: u64, width: Width, value: u32, dma: &mut dyn DmaMemory) {
        match offset {
            0x0000..0x1000 => self.common_write(offset, width, value, dma),
            0x2000..0x3000 => {
                let at = register::CONFIG as u64 + (offset - 0x2000);
                self.device.write(at, width, value, dma);
            }
            // A queue's notification: its index, at its own address.
            0x3000..0x4000 if width == Width::U16 && (offset - 0x3000) % 4 == 0 => {
                let queue = (offset - 0x3000) / u64::from(NOTIFY_MULTIPLIER);
                if u64::from(value & 0xffff) == queue {
                    self.set(register::QUEUE_NOTIFY, value & 0xffff, dma);
                } else {
                    log::debug!("virtio-pci: notify of queue {value} at queue {queue}'s address");
                }
            }
            _ => log::debug!("virtio-pci: invalid {width:?} write of {value:#x} at {offset:#x}"),
        }
    }

    fn irq_level(&self) -> bool {
        self.device.irq_level()
    }
}
