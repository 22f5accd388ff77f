//! A virtio-mmio (version 2) transport slot and the split virtqueues behind it.
//!
//! The transport follows virtio 1.x §4.2.2 as drivers use it, and processes a queue's available
//! descriptor chains (§2.7, split virtqueues) synchronously when the driver writes its index to
//! `QueueNotify`. What a device *does* with a request is a [`VirtioBackend`]'s business: the
//! transport gathers the chain's readable bytes into one request buffer, hands the backend a
//! response buffer as long as the chain's writable part, and scatters the response back.
//!
//! The device offers no `VIRTIO_F_INDIRECT_DESC` and no `VIRTIO_F_EVENT_IDX`, so chains are
//! direct and notifications are only suppressed by the avail ring's `NO_INTERRUPT` flag.
//!
//! Everything read from DMA memory is untrusted: a malformed chain (a loop, a `next` out of
//! range, an indirect descriptor, readable after writable descriptors, memory that is not DMA
//! memory) stops processing, sets `DEVICE_NEEDS_RESET` and raises the configuration-change
//! interrupt, as §2.1.1 lets a device do, and is recorded as a [`QueueFault`].
//!
//! # Hot-plug (a Warden host-platform extension)
//! A slot starts empty (`DeviceID` 0) like an unused QEMU `virtio-mmio` transport. The launcher
//! may [`plug`](VirtioMmio::plug) a backend into it or [`unplug`](VirtioMmio::unplug) it at run
//! time. Either resets the transport (as if the driver had written 0 to `Status`), bumps
//! `ConfigGeneration` and sets `InterruptStatus` bit 1 (configuration change), so the slot's
//! interrupt asserts. Virtio itself has no hot-plug for MMIO; a bus driver that sees the
//! interrupt re-reads `DeviceID` to learn what the slot now holds.

use std::fmt;

use crate::{Device, DmaError, DmaMemory, Width};

// The register map is the transport driver's (warden-virtio), written once.
use warden_virtio::{register, MAGIC, MODERN_VERSION as VERSION};

mod queue;

pub use queue::QueueFault;
use queue::{Queue, QueueProcessor};

/// "QEMU", the vendor id QEMU's transports report; drivers do not look at it.
const VENDOR_ID: u32 = 0x554d_4551;

/// Size of the register window (header plus 0x100 bytes of device configuration).
const WINDOW: u64 = 0x200;

/// `VIRTIO_F_VERSION_1`: the device is modern; always offered and required.
const VERSION_1: u64 = 1 << 32;

/// Feature bits a backend may offer: the device-type-specific ranges (0–23 and 41 up). Bits
/// 24–40 are transport and ring features, which are the transport's to offer; it offers none
/// but `VERSION_1` (in particular not `INDIRECT_DESC` (28) or `EVENT_IDX` (29)).
const BACKEND_FEATURES: u64 = !((1 << 41) - (1 << 24));

/// Device status bits (§2.1).
const STATUS_FEATURES_OK: u32 = 8;

const STATUS_DRIVER_OK: u32 = 4;

const STATUS_NEEDS_RESET: u32 = 64;

/// `InterruptStatus` bits.
const INTERRUPT_USED_BUFFER: u32 = 1;

const INTERRUPT_CONFIG_CHANGE: u32 = 2;

/// What a virtio device does with requests: the device-type-specific half of a virtio device,
/// behind a [`VirtioMmio`] transport.
pub trait VirtioBackend: Send {
    /// The virtio device id (2 block, 4 entropy, ...).
    fn device_id(&self) -> u32;
    /// Device-type-specific feature bits offered (`VERSION_1` and ring features are the
    /// transport's and are ignored here).
    fn features(&self) -> u64;
    /// How many virtqueues the device has.
    fn queue_count(&self) -> u16;
    /// The largest size of each queue (a power of two, at most 32768).
    fn queue_max_size(&self) -> u16;
    /// Reads `width` bytes at `offset` in the device configuration space (little-endian).
    fn config_read(&self, offset: u64, width: Width) -> u32;
    /// Writes `width` bytes at `offset` in the device configuration space; ignored by default.
    fn config_write(&mut self, offset: u64, width: Width, value: u32) {
        log::debug!("virtio: ignored {width:?} config write of {value:#x} at {offset:#x}");
    }
    /// Handles one descriptor chain of `queue`: `request` is its readable bytes, `response`
    /// its writable bytes (zeroed). Returns how many bytes of `response`, from its start, were
    /// written (the used element's `len`).
    fn process(&mut self, queue: u16, request: &[u8], response: &mut [u8]) -> usize;
    /// One line for people: what this device is and what backs it.
    fn describe(&self) -> String;
}

/// One virtio-mmio version 2 transport slot, empty or holding a [`VirtioBackend`].
pub struct VirtioMmio {
    backend: Option<Box<dyn VirtioBackend>>,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    /// The driver set a feature bit above 63 (none of which is ever offered).
    driver_features_beyond_64: bool,
    queue_sel: u32,
    queues: Vec<Queue>,
    interrupt_status: u32,
    status: u32,
    config_generation: u32,
    last_fault: Option<QueueFault>,
}

impl fmt::Debug for VirtioMmio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtioMmio")
            .field("device", &self.describe())
            .field("status", &self.status)
            .field("interrupt_status", &self.interrupt_status)
            .field("driver_features", &self.driver_features)
            .field("queues", &self.queues)
            .field("last_fault", &self.last_fault)
            .finish_non_exhaustive()
    }
}

impl Default for VirtioMmio {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtioMmio {
    /// An empty slot: `DeviceID` reads 0.
    #[must_use]
    pub fn new() -> Self {
        Self {
            backend: None,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            driver_features_beyond_64: false,
            queue_sel: 0,
            queues: Vec::new(),
            interrupt_status: 0,
            status: 0,
            config_generation: 0,
            last_fault: None,
        }
    }

    /// Plugs `backend` into the slot (see the module documentation on hot-plug).
    ///
    /// # Errors
    /// The slot is occupied: `backend` is handed back.
    pub fn plug(&mut self, backend: Box<dyn VirtioBackend>) -> Result<(), Box<dyn VirtioBackend>> {
        if self.backend.is_some() {
            return Err(backend);
        }
        log::debug!("virtio-mmio: plugged {}", backend.describe());
        self.backend = Some(backend);
        self.hot_plugged();
        Ok(())
    }

    /// Takes the backend out of the slot, if there is one (see the module documentation on
    /// hot-plug).
    pub fn unplug(&mut self) -> Option<Box<dyn VirtioBackend>> {
        let backend = self.backend.take()?;
        log::debug!("virtio-mmio: unplugged {}", backend.describe());
        self.hot_plugged();
        Some(backend)
    }

    /// The virtio device id in the slot, 0 when empty.
    #[must_use]
    pub fn device_id(&self) -> u32 {
        self.backend
            .as_ref()
            .map_or(0, |backend| backend.device_id())
    }

    /// What the slot holds, for people.
    #[must_use]
    pub fn describe(&self) -> String {
        self.backend
            .as_ref()
            .map_or_else(|| "empty".to_string(), |backend| backend.describe())
    }

    /// How many virtqueues the device has (0 when empty).
    #[must_use]
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// The device status the driver has set (plus `DEVICE_NEEDS_RESET` if the device set it).
    #[must_use]
    pub fn status(&self) -> u32 {
        self.status
    }

    /// Why the device last asked for a reset, if it did since the last reset.
    #[must_use]
    pub fn last_fault(&self) -> Option<QueueFault> {
        self.last_fault
    }

    /// Feature bits the device offers: `VERSION_1` and the backend's device-specific bits.
    fn offered_features(&self) -> u64 {
        match &self.backend {
            Some(backend) => VERSION_1 | (backend.features() & BACKEND_FEATURES),
            None => 0,
        }
    }

    fn hot_plugged(&mut self) {
        self.reset();
        self.config_generation = self.config_generation.wrapping_add(1);
        self.interrupt_status |= INTERRUPT_CONFIG_CHANGE;
    }

    /// The device reset of §2.1 / §4.2.2: everything but the backend and `ConfigGeneration`.
    fn reset(&mut self) {
        let queue_count = self
            .backend
            .as_ref()
            .map_or(0, |backend| backend.queue_count());
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.driver_features_beyond_64 = false;
        self.queue_sel = 0;
        self.queues = vec![Queue::default(); usize::from(queue_count)];
        self.interrupt_status = 0;
        self.status = 0;
        self.last_fault = None;
    }

    fn selected_queue(&self) -> Option<&Queue> {
        self.queues.get(usize::try_from(self.queue_sel).ok()?)
    }

    fn selected_queue_mut(&mut self) -> Option<&mut Queue> {
        let index = usize::try_from(self.queue_sel).ok()?;
        self.queues.get_mut(index)
    }

    fn queue_max_size(&self) -> u32 {
        self.backend
            .as_ref()
            .map_or(0, |backend| u32::from(backend.queue_max_size()))
    }

    /// Writes one half of a queue address of the selected queue, unless it is live.
    fn set_queue_address(&mut self, value: u32, high: bool, field: fn(&mut Queue) -> &mut u64) {
        let Some(queue) = self.selected_queue_mut() else {
            log::debug!("virtio-mmio: queue address written for a queue that does not exist");
            return;
        };
        if queue.ready {
            log::debug!("virtio-mmio: queue address written while the queue is ready");
            return;
        }
        let address = field(queue);
        *address = if high {
            (*address & 0xffff_ffff) | u64::from(value) << 32
        } else {
            (*address & !0xffff_ffff) | u64::from(value)
        };
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        // DEVICE_NEEDS_RESET is the device's to set; the driver's write keeps whatever it is.
        let mut status = (value & !STATUS_NEEDS_RESET) | (self.status & STATUS_NEEDS_RESET);
        let new_features_ok =
            status & STATUS_FEATURES_OK != 0 && self.status & STATUS_FEATURES_OK == 0;
        if new_features_ok {
            let offered = self.offered_features();
            let acceptable = self.driver_features & !offered == 0
                && self.driver_features & VERSION_1 != 0
                && !self.driver_features_beyond_64;
            if !acceptable {
                // §3.1.1: the device refuses the features by not setting FEATURES_OK, which the
                // driver reads back.
                log::debug!(
                    "virtio-mmio: refused driver features {:#x} (offered {offered:#x})",
                    self.driver_features
                );
                status &= !STATUS_FEATURES_OK;
            }
        }
        self.status = status;
    }

    fn read_register(&self, register: usize) -> u32 {
        match register {
            register::MAGIC_VALUE => MAGIC,
            register::VERSION => VERSION,
            register::DEVICE_ID => self.device_id(),
            register::VENDOR_ID => VENDOR_ID,
            register::DEVICE_FEATURES => match self.device_features_sel {
                0 => self.offered_features() as u32,
                1 => (self.offered_features() >> 32) as u32,
                _ => 0,
            },
            register::QUEUE_NUM_MAX => self.selected_queue().map_or(0, |_| self.queue_max_size()),
            register::QUEUE_READY => self
                .selected_queue()
                .map_or(0, |queue| u32::from(queue.ready)),
            register::INTERRUPT_STATUS => self.interrupt_status,
            register::STATUS => self.status,
            register::CONFIG_GENERATION => self.config_generation,
            // The queue registers are write-only in the spec; reading them back what was written
            // costs nothing and helps debugging.
            register::QUEUE_NUM => self.selected_queue().map_or(0, |queue| queue.size),
            register::QUEUE_DESC_LOW => self
                .selected_queue()
                .map_or(0, |queue| queue.descriptors as u32),
            register::QUEUE_DESC_HIGH => self
                .selected_queue()
                .map_or(0, |queue| (queue.descriptors >> 32) as u32),
            register::QUEUE_DRIVER_LOW => self
                .selected_queue()
                .map_or(0, |queue| queue.driver_area as u32),
            register::QUEUE_DRIVER_HIGH => self
                .selected_queue()
                .map_or(0, |queue| (queue.driver_area >> 32) as u32),
            register::QUEUE_DEVICE_LOW => self
                .selected_queue()
                .map_or(0, |queue| queue.device_area as u32),
            register::QUEUE_DEVICE_HIGH => self
                .selected_queue()
                .map_or(0, |queue| (queue.device_area >> 32) as u32),
            _ => {
                log::debug!("virtio-mmio: read of write-only or unknown register {register:#x}");
                0
            }
        }
    }

    fn write_register(&mut self, register: usize, value: u32, dma: &mut dyn DmaMemory) {
        match register {
            register::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            register::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            register::DRIVER_FEATURES => {
                if self.status & STATUS_FEATURES_OK != 0 {
                    log::debug!("virtio-mmio: driver features written after FEATURES_OK");
                    return;
                }
                let value = u64::from(value);
                match self.driver_features_sel {
                    0 => self.driver_features = (self.driver_features & !0xffff_ffff) | value,
                    1 => self.driver_features = (self.driver_features & 0xffff_ffff) | value << 32,
                    // Bits above 63 exist in the spec but none are defined, so none is offered:
                    // a 1 there makes the features unacceptable at FEATURES_OK.
                    _ if value != 0 => self.driver_features_beyond_64 = true,
                    _ => {}
                }
            }
            register::QUEUE_SEL => self.queue_sel = value,
            register::QUEUE_NUM => match self.selected_queue_mut() {
                Some(queue) if !queue.ready => queue.size = value,
                _ => log::debug!("virtio-mmio: QueueNum written for a missing or ready queue"),
            },
            register::QUEUE_READY => {
                if let Some(queue) = self.selected_queue_mut() {
                    let ready = value & 1 != 0;
                    if ready && !queue.ready {
                        // A queue the driver (re)enables starts at the beginning of its rings.
                        queue.last_avail_idx = 0;
                        queue.used_idx = 0;
                    }
                    queue.ready = ready;
                }
            }
            register::QUEUE_NOTIFY => self.notify(value, dma),
            register::INTERRUPT_ACK => self.interrupt_status &= !value,
            register::STATUS => self.write_status(value),
            register::QUEUE_DESC_LOW => {
                self.set_queue_address(value, false, |q| &mut q.descriptors)
            }
            register::QUEUE_DESC_HIGH => {
                self.set_queue_address(value, true, |q| &mut q.descriptors)
            }
            register::QUEUE_DRIVER_LOW => {
                self.set_queue_address(value, false, |q| &mut q.driver_area)
            }
            register::QUEUE_DRIVER_HIGH => {
                self.set_queue_address(value, true, |q| &mut q.driver_area)
            }
            register::QUEUE_DEVICE_LOW => {
                self.set_queue_address(value, false, |q| &mut q.device_area)
            }
            register::QUEUE_DEVICE_HIGH => {
                self.set_queue_address(value, true, |q| &mut q.device_area)
            }
            _ => log::debug!(
                "virtio-mmio: write of {value:#x} to read-only or unknown register {register:#x}"
            ),
        }
    }

    /// `QueueNotify`: process the queue now, if the device is live and the queue ready.
    fn notify(&mut self, queue_index: u32, dma: &mut dyn DmaMemory) {
        if self.status & STATUS_DRIVER_OK == 0 || self.status & STATUS_NEEDS_RESET != 0 {
            log::debug!(
                "virtio-mmio: notify of queue {queue_index} before DRIVER_OK or after a fault"
            );
            return;
        }
        let Ok(index) = u16::try_from(queue_index) else {
            log::debug!("virtio-mmio: notify of queue {queue_index}, which does not exist");
            return;
        };
        let Some(queue) = self.queues.get(usize::from(index)).copied() else {
            log::debug!("virtio-mmio: notify of queue {index}, which does not exist");
            return;
        };
        if !queue.ready {
            log::debug!("virtio-mmio: notify of queue {index}, which is not ready");
            return;
        }
        let max_size = self.queue_max_size();
        let Some(backend) = self.backend.as_deref_mut() else {
            return;
        };
        let mut processor = QueueProcessor {
            index,
            queue,
            dma,
            backend,
            used_any: false,
        };
        let result = if queue.size == 0 || queue.size > max_size || !queue.size.is_power_of_two() {
            Err(QueueFault::BadQueueSize {
                queue: index,
                size: queue.size,
            })
        } else {
            processor.run()
        };
        let used_any = processor.used_any;
        let queue_after = processor.queue;
        if let Some(slot) = self.queues.get_mut(usize::from(index)) {
            *slot = queue_after;
        }
        match result {
            Ok(interrupt) => {
                if used_any && interrupt {
                    self.interrupt_status |= INTERRUPT_USED_BUFFER;
                }
            }
            Err(fault) => {
                log::debug!("virtio-mmio: {fault}; device needs reset");
                self.last_fault = Some(fault);
                self.status |= STATUS_NEEDS_RESET;
                self.interrupt_status |= INTERRUPT_CONFIG_CHANGE;
            }
        }
    }
}

impl Device for VirtioMmio {
    fn kind(&self) -> &'static str {
        "virtio-mmio"
    }

    fn size(&self) -> u64 {
        WINDOW
    }

    fn read(&mut self, offset: u64, width: Width, _dma: &mut dyn DmaMemory) -> u32 {
        match Access::classify(offset, width) {
            Some(Access::Register(register)) => self.read_register(register),
            Some(Access::Config(config_offset)) => self.backend.as_ref().map_or(0, |backend| {
                backend.config_read(config_offset, width) & width.all_ones()
            }),
            None => {
                log::debug!("virtio-mmio: invalid {width:?} read at {offset:#x}");
                0
            }
        }
    }

    fn write(&mut self, offset: u64, width: Width, value: u32, dma: &mut dyn DmaMemory) {
        match Access::classify(offset, width) {
            Some(Access::Register(register)) => self.write_register(register, value, dma),
            Some(Access::Config(config_offset)) => {
                if let Some(backend) = self.backend.as_mut() {
                    backend.config_write(config_offset, width, value & width.all_ones());
                }
            }
            None => log::debug!("virtio-mmio: invalid {width:?} write at {offset:#x}"),
        }
    }

    fn irq_level(&self) -> bool {
        self.interrupt_status != 0
    }
}

/// What an access in the window reaches.
enum Access {
    /// A control register (32-bit accesses only, §4.2.2.2).
    Register(usize),
    /// The device configuration space, at this offset in it (any aligned width).
    Config(u64),
}

impl Access {
    fn classify(offset: u64, width: Width) -> Option<Self> {
        let bytes = width.bytes() as u64;
        let end = offset.checked_add(bytes)?;
        if offset % bytes != 0 || end > WINDOW {
            return None;
        }
        match offset.checked_sub(register::CONFIG as u64) {
            Some(config_offset) => Some(Self::Config(config_offset)),
            // Below CONFIG (0x100): the offset fits any usize.
            None => (width == Width::U32).then_some(Self::Register(offset as usize)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DmaBuffer, NoDma};
    use queue::{AVAIL_NO_INTERRUPT, DESC_INDIRECT, DESC_NEXT, DESC_WRITE};

    /// A backend that answers each request with its bytes reversed.
    struct Echo {
        features: u64,
    }

    impl Echo {
        fn new() -> Self {
            Self { features: 1 << 3 }
        }
    }

    impl VirtioBackend for Echo {
        fn device_id(&self) -> u32 {
            0x2a
        }
        fn features(&self) -> u64 {
            self.features
        }
        fn queue_count(&self) -> u16 {
            2
        }
        fn queue_max_size(&self) -> u16 {
            8
        }
        fn config_read(&self, offset: u64, width: Width) -> u32 {
            let bytes = 0x1122_3344_5566_7788_u64
                .checked_shr(8 * offset as u32)
                .unwrap_or(0)
                .to_le_bytes();
            u32::from_le_bytes(bytes[..4].try_into().unwrap()) & width.all_ones()
        }
        fn process(&mut self, _queue: u16, request: &[u8], response: &mut [u8]) -> usize {
            let n = request.len().min(response.len());
            for (out, byte) in response.iter_mut().zip(request.iter().rev()) {
                *out = *byte;
            }
            n
        }
        fn describe(&self) -> String {
            "echo".into()
        }
    }

    const DESC: u64 = 0x1000;
    const AVAIL: u64 = 0x2000;
    const USED: u64 = 0x3000;
    const BUFFERS: u64 = 0x4000;

    struct Rig {
        device: VirtioMmio,
        memory: DmaBuffer,
        avail_idx: u16,
    }

    impl Rig {
        fn new() -> Self {
            let mut device = VirtioMmio::new();
            device.plug(Box::new(Echo::new())).map_err(|_| ()).unwrap();
            Self {
                device,
                memory: DmaBuffer::new(0, 0x8000),
                avail_idx: 0,
            }
        }
        fn read(&mut self, offset: usize) -> u32 {
            self.device
                .read(offset as u64, Width::U32, &mut self.memory)
        }
        fn write(&mut self, offset: usize, value: u32) {
            self.device
                .write(offset as u64, Width::U32, value, &mut self.memory);
        }
        /// Runs the initialisation of §3.1.1 with queue 0 of size 8.
        fn initialise(&mut self) {
            self.write(register::STATUS, 0);
            self.write(register::STATUS, 1 | 2);
            self.write(register::DRIVER_FEATURES_SEL, 1);
            self.write(register::DRIVER_FEATURES, 1);
            self.write(register::STATUS, 1 | 2 | 8);
            assert_eq!(self.read(register::STATUS), 1 | 2 | 8);
            self.write(register::QUEUE_SEL, 0);
            self.write(register::QUEUE_NUM, 8);
            self.write(register::QUEUE_DESC_LOW, DESC as u32);
            self.write(register::QUEUE_DRIVER_LOW, AVAIL as u32);
            self.write(register::QUEUE_DEVICE_LOW, USED as u32);
            self.write(register::QUEUE_READY, 1);
            self.write(register::STATUS, 1 | 2 | 8 | 4);
        }
        fn descriptor(&mut self, index: u16, address: u64, len: u32, flags: u16, next: u16) {
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&address.to_le_bytes());
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(&flags.to_le_bytes());
            bytes.extend_from_slice(&next.to_le_bytes());
            self.memory
                .write(DESC + 16 * u64::from(index), &bytes)
                .unwrap();
        }
        fn offer(&mut self, head: u16) {
            let slot = u64::from(self.avail_idx % 8);
            self.memory
                .write(AVAIL + 4 + 2 * slot, &head.to_le_bytes())
                .unwrap();
            self.avail_idx = self.avail_idx.wrapping_add(1);
            self.memory
                .write(AVAIL + 2, &self.avail_idx.to_le_bytes())
                .unwrap();
        }
        fn used_idx(&self) -> u16 {
            let mut bytes = [0; 2];
            self.memory.read(USED + 2, &mut bytes).unwrap();
            u16::from_le_bytes(bytes)
        }
        fn used_element(&self, slot: u64) -> (u32, u32) {
            let mut bytes = [0; 8];
            self.memory.read(USED + 4 + 8 * slot, &mut bytes).unwrap();
            (
                u32::from_le_bytes(bytes[..4].try_into().unwrap()),
                u32::from_le_bytes(bytes[4..].try_into().unwrap()),
            )
        }
        fn needs_reset(&mut self) -> bool {
            self.read(register::STATUS) & STATUS_NEEDS_RESET != 0
        }
    }

    #[test]
    fn empty_slot_has_a_header_but_no_device() {
        let mut device = VirtioMmio::new();
        let mut read = |offset: usize| device.read(offset as u64, Width::U32, &mut NoDma);
        assert_eq!(read(register::MAGIC_VALUE), 0x7472_6976);
        assert_eq!(read(register::VERSION), 2);
        assert_eq!(read(register::DEVICE_ID), 0);
        assert_eq!(read(register::VENDOR_ID), 0x554d_4551);
        assert_eq!(read(register::DEVICE_FEATURES), 0);
        assert_eq!(read(register::QUEUE_NUM_MAX), 0);
        assert_eq!(read(register::CONFIG), 0);
        assert_eq!(device.describe(), "empty");
        assert!(!device.irq_level());
        assert_eq!(
            (device.kind(), Device::size(&device)),
            ("virtio-mmio", 0x200)
        );
    }

    #[test]
    fn control_registers_need_aligned_32_bit_accesses_and_config_takes_any_width() {
        let mut rig = Rig::new();
        assert_eq!(
            rig.device
                .read(register::MAGIC_VALUE as u64, Width::U8, &mut NoDma),
            0
        );
        assert_eq!(
            rig.device
                .read(register::MAGIC_VALUE as u64, Width::U16, &mut NoDma),
            0
        );
        assert_eq!(rig.device.read(0x2, Width::U32, &mut NoDma), 0);
        assert_eq!(rig.device.read(0x200, Width::U32, &mut NoDma), 0);
        assert_eq!(rig.device.read(u64::MAX, Width::U8, &mut NoDma), 0);
        assert_eq!(rig.device.read(0x101, Width::U16, &mut NoDma), 0);
        assert_eq!(rig.device.read(0x100, Width::U32, &mut NoDma), 0x5566_7788);
        assert_eq!(rig.device.read(0x104, Width::U32, &mut NoDma), 0x1122_3344);
        assert_eq!(rig.device.read(0x102, Width::U16, &mut NoDma), 0x5566);
        assert_eq!(rig.device.read(0x101, Width::U8, &mut NoDma), 0x77);
        assert_eq!(rig.read(0x0b0), 0, "reserved");
        rig.write(register::MAGIC_VALUE, 0);
        assert_eq!(rig.read(register::MAGIC_VALUE), 0x7472_6976);
    }

    #[test]
    fn features_offer_version_1_and_backend_bits_through_the_selector() {
        let mut rig = Rig::new();
        let mut echo = Echo::new();
        // Ring features a backend claims are not the backend's to offer.
        echo.features = 1 << 3 | 1 << 28 | 1 << 29 | 1 << 34;
        rig.device.unplug();
        rig.device.plug(Box::new(echo)).map_err(|_| ()).unwrap();
        assert_eq!(rig.read(register::DEVICE_FEATURES), 1 << 3);
        rig.write(register::DEVICE_FEATURES_SEL, 1);
        assert_eq!(rig.read(register::DEVICE_FEATURES), 1);
        rig.write(register::DEVICE_FEATURES_SEL, 2);
        assert_eq!(rig.read(register::DEVICE_FEATURES), 0);
    }

    #[test]
    fn features_ok_is_refused_for_features_not_offered_or_without_version_1() {
        let mut rig = Rig::new();
        // Without VERSION_1.
        rig.write(register::STATUS, 1 | 2);
        rig.write(register::DRIVER_FEATURES_SEL, 0);
        rig.write(register::DRIVER_FEATURES, 1 << 3);
        rig.write(register::STATUS, 1 | 2 | 8);
        assert_eq!(rig.read(register::STATUS), 1 | 2);
        // With a bit not offered.
        rig.write(register::DRIVER_FEATURES, 1 << 3 | 1 << 4);
        rig.write(register::DRIVER_FEATURES_SEL, 1);
        rig.write(register::DRIVER_FEATURES, 1);
        rig.write(register::STATUS, 1 | 2 | 8);
        assert_eq!(rig.read(register::STATUS), 1 | 2);
        // A subset with VERSION_1.
        rig.write(register::DRIVER_FEATURES_SEL, 0);
        rig.write(register::DRIVER_FEATURES, 1 << 3);
        rig.write(register::STATUS, 1 | 2 | 8);
        assert_eq!(rig.read(register::STATUS), 1 | 2 | 8);
        // Features are frozen after FEATURES_OK.
        rig.write(register::DRIVER_FEATURES, 1 << 4);
        assert_eq!(rig.device.driver_features, VERSION_1 | 1 << 3);
        // A selector above 1 with a bit set is refused too.
        rig.write(register::STATUS, 0);
        rig.write(register::STATUS, 1 | 2);
        rig.write(register::DRIVER_FEATURES_SEL, 1);
        rig.write(register::DRIVER_FEATURES, 1);
        rig.write(register::DRIVER_FEATURES_SEL, 2);
        rig.write(register::DRIVER_FEATURES, 1);
        rig.write(register::STATUS, 1 | 2 | 8);
        assert_eq!(rig.read(register::STATUS), 1 | 2);
    }

    #[test]
    fn reset_clears_status_features_queues_and_interrupts() {
        let mut rig = Rig::new();
        assert_eq!(
            rig.read(register::INTERRUPT_STATUS),
            INTERRUPT_CONFIG_CHANGE
        );
        rig.initialise();
        rig.write(register::QUEUE_SEL, 1);
        rig.write(register::QUEUE_NUM, 4);
        rig.write(register::STATUS, 0);
        assert_eq!(rig.read(register::STATUS), 0);
        assert_eq!(rig.read(register::INTERRUPT_STATUS), 0);
        assert_eq!(rig.device.driver_features, 0);
        for queue in 0..2 {
            rig.write(register::QUEUE_SEL, queue);
            assert_eq!(rig.read(register::QUEUE_READY), 0);
            assert_eq!(rig.read(register::QUEUE_NUM), 0);
            assert_eq!(rig.read(register::QUEUE_DESC_LOW), 0);
        }
        assert!(!rig.device.irq_level());
    }

    #[test]
    fn queue_registers_apply_to_the_selected_queue() {
        let mut rig = Rig::new();
        rig.write(register::QUEUE_SEL, 1);
        assert_eq!(rig.read(register::QUEUE_NUM_MAX), 8);
        rig.write(register::QUEUE_NUM, 4);
        rig.write(register::QUEUE_DESC_LOW, 0x5000);
        rig.write(register::QUEUE_DESC_HIGH, 0x1);
        rig.write(register::QUEUE_READY, 1);
        // Live queue addresses cannot be changed.
        rig.write(register::QUEUE_DESC_LOW, 0x6000);
        assert_eq!(rig.read(register::QUEUE_DESC_LOW), 0x5000);
        rig.write(register::QUEUE_SEL, 0);
        assert_eq!(rig.read(register::QUEUE_READY), 0);
        assert_eq!(rig.read(register::QUEUE_NUM), 0);
        rig.write(register::QUEUE_SEL, 2);
        assert_eq!(rig.read(register::QUEUE_NUM_MAX), 0, "no third queue");
        rig.write(register::QUEUE_READY, 1);
        assert_eq!(rig.read(register::QUEUE_READY), 0);
        rig.write(register::QUEUE_SEL, 1);
        assert_eq!(rig.read(register::QUEUE_READY), 1);
        assert_eq!(rig.device.queues[1].descriptors, 0x1_0000_5000);
        rig.write(register::QUEUE_READY, 0);
        assert_eq!(rig.read(register::QUEUE_READY), 0);
    }

    #[test]
    fn notify_processes_chains_and_raises_the_used_buffer_interrupt() {
        let mut rig = Rig::new();
        rig.initialise();
        rig.write(register::INTERRUPT_ACK, INTERRUPT_CONFIG_CHANGE);
        rig.memory.write(BUFFERS, b"hello").unwrap();
        rig.memory.write(BUFFERS + 0x100, b" world").unwrap();
        // Two readable, two writable (3 + 8 bytes): "hello world" reversed scatters over both.
        rig.descriptor(0, BUFFERS, 5, DESC_NEXT, 3);
        rig.descriptor(3, BUFFERS + 0x100, 6, DESC_NEXT, 5);
        rig.descriptor(5, BUFFERS + 0x200, 3, DESC_NEXT | DESC_WRITE, 1);
        rig.descriptor(1, BUFFERS + 0x300, 8, DESC_WRITE, 0);
        rig.offer(0);
        // A second chain: write-only.
        rig.descriptor(2, BUFFERS + 0x400, 2, DESC_WRITE, 0);
        rig.offer(2);
        assert!(!rig.device.irq_level());
        rig.write(register::QUEUE_NOTIFY, 0);
        assert!(!rig.needs_reset(), "{:?}", rig.device.last_fault());
        assert_eq!(rig.used_idx(), 2);
        assert_eq!(rig.used_element(0), (0, 11));
        assert_eq!(rig.used_element(1), (2, 0));
        let mut out = [0; 11];
        rig.memory.read(BUFFERS + 0x200, &mut out[..3]).unwrap();
        rig.memory.read(BUFFERS + 0x300, &mut out[3..]).unwrap();
        assert_eq!(&out, b"dlrow olleh");
        assert_eq!(rig.read(register::INTERRUPT_STATUS), INTERRUPT_USED_BUFFER);
        assert!(rig.device.irq_level());
        rig.write(register::INTERRUPT_ACK, INTERRUPT_USED_BUFFER);
        assert!(!rig.device.irq_level());
        // Notifying again with nothing new does nothing.
        rig.write(register::QUEUE_NOTIFY, 0);
        assert_eq!(rig.used_idx(), 2);
        assert!(!rig.device.irq_level());
    }

    #[test]
    fn no_interrupt_flag_suppresses_the_used_buffer_interrupt() {
        let mut rig = Rig::new();
        rig.initialise();
        rig.write(register::INTERRUPT_ACK, 3);
        rig.memory
            .write(AVAIL, &AVAIL_NO_INTERRUPT.to_le_bytes())
            .unwrap();
        rig.descriptor(0, BUFFERS, 4, DESC_WRITE, 0);
        rig.offer(0);
        rig.write(register::QUEUE_NOTIFY, 0);
        assert_eq!(rig.used_idx(), 1);
        assert!(!rig.device.irq_level());
    }

    #[test]
    fn notify_is_ignored_before_driver_ok_for_unready_or_missing_queues() {
        let mut rig = Rig::new();
        rig.descriptor(0, BUFFERS, 4, DESC_WRITE, 0);
        rig.offer(0);
        rig.write(register::QUEUE_NOTIFY, 0);
        assert_eq!(rig.used_idx(), 0);
        rig.initialise();
        rig.write(register::QUEUE_NOTIFY, 1);
        rig.write(register::QUEUE_NOTIFY, 7);
        rig.write(register::QUEUE_NOTIFY, u32::MAX);
        assert_eq!(rig.used_idx(), 0);
        assert!(!rig.needs_reset());
        rig.write(register::QUEUE_NOTIFY, 0);
        assert_eq!(rig.used_idx(), 1);
    }

    /// Sets up one malformed chain and checks that the device asks for a reset.
    fn assert_fault(build: impl FnOnce(&mut Rig), expected: impl Fn(QueueFault) -> bool) {
        let mut rig = Rig::new();
        rig.initialise();
        rig.write(register::INTERRUPT_ACK, 3);
        build(&mut rig);
        rig.write(register::QUEUE_NOTIFY, 0);
        assert!(rig.needs_reset());
        let fault = rig.device.last_fault().unwrap();
        assert!(expected(fault), "{fault:?}");
        assert_eq!(
            rig.read(register::INTERRUPT_STATUS),
            INTERRUPT_CONFIG_CHANGE
        );
        assert!(rig.device.irq_level());
        // The driver cannot clear NEEDS_RESET, and the device processes nothing until reset.
        rig.write(register::STATUS, 1 | 2 | 8 | 4);
        assert!(rig.needs_reset());
        rig.write(register::STATUS, 0);
        assert_eq!(rig.read(register::STATUS), 0);
        assert_eq!(rig.device.last_fault(), None);
    }

    #[test]
    fn a_looping_chain_needs_reset() {
        assert_fault(
            |rig| {
                rig.descriptor(0, BUFFERS, 1, DESC_NEXT, 1);
                rig.descriptor(1, BUFFERS, 1, DESC_NEXT, 0);
                rig.offer(0);
            },
            |fault| matches!(fault, QueueFault::ChainLoop { queue: 0, head: 0 }),
        );
    }

    #[test]
    fn next_or_head_out_of_range_needs_reset() {
        assert_fault(
            |rig| {
                rig.descriptor(0, BUFFERS, 1, DESC_NEXT, 8);
                rig.offer(0);
            },
            |fault| matches!(fault, QueueFault::IndexOutOfRange { index: 8, .. }),
        );
        assert_fault(
            |rig| rig.offer(200),
            |fault| matches!(fault, QueueFault::IndexOutOfRange { index: 200, .. }),
        );
    }

    #[test]
    fn indirect_descriptors_need_reset() {
        assert_fault(
            |rig| {
                rig.descriptor(0, BUFFERS, 32, DESC_INDIRECT, 0);
                rig.offer(0);
            },
            |fault| matches!(fault, QueueFault::IndirectDescriptor { index: 0, .. }),
        );
    }

    #[test]
    fn readable_after_writable_needs_reset() {
        assert_fault(
            |rig| {
                rig.descriptor(0, BUFFERS, 4, DESC_WRITE | DESC_NEXT, 1);
                rig.descriptor(1, BUFFERS, 4, 0, 0);
                rig.offer(0);
            },
            |fault| matches!(fault, QueueFault::ReadableAfterWritable { index: 1, .. }),
        );
    }

    #[test]
    fn buffers_outside_dma_memory_need_reset() {
        assert_fault(
            |rig| {
                rig.descriptor(0, 0x7ff0, 0x20, 0, 0);
                rig.offer(0);
            },
            |fault| {
                matches!(
                    fault,
                    QueueFault::Dma {
                        error: DmaError {
                            paddr: 0x7ff0,
                            len: 0x20
                        },
                        ..
                    }
                )
            },
        );
        assert_fault(
            |rig| {
                rig.descriptor(0, u64::MAX, 2, 0, 0);
                rig.offer(0);
            },
            |fault| matches!(fault, QueueFault::Dma { .. }),
        );
        // The response is scattered to a writable buffer outside DMA memory.
        assert_fault(
            |rig| {
                rig.descriptor(0, BUFFERS, 4, DESC_NEXT, 1);
                rig.descriptor(1, 0x8000, 4, DESC_WRITE, 0);
                rig.offer(0);
            },
            |fault| matches!(fault, QueueFault::Dma { .. }),
        );
        assert_fault(
            |rig| {
                rig.descriptor(0, BUFFERS, u32::MAX, DESC_WRITE, 0);
                rig.offer(0);
            },
            |fault| matches!(fault, QueueFault::ChainTooLong { .. }),
        );
    }

    #[test]
    fn avail_index_far_ahead_or_bad_queue_size_needs_reset() {
        assert_fault(
            |rig| rig.memory.write(AVAIL + 2, &9u16.to_le_bytes()).unwrap(),
            |fault| {
                matches!(
                    fault,
                    QueueFault::AvailIndexTooFarAhead { avail_idx: 9, .. }
                )
            },
        );
        let mut rig = Rig::new();
        rig.write(register::STATUS, 1 | 2);
        rig.write(register::DRIVER_FEATURES_SEL, 1);
        rig.write(register::DRIVER_FEATURES, 1);
        rig.write(register::STATUS, 1 | 2 | 8);
        rig.write(register::QUEUE_NUM, 6);
        rig.write(register::QUEUE_READY, 1);
        rig.write(register::STATUS, 1 | 2 | 8 | 4);
        rig.write(register::QUEUE_NOTIFY, 0);
        assert_eq!(
            rig.device.last_fault(),
            Some(QueueFault::BadQueueSize { queue: 0, size: 6 })
        );
    }

    #[test]
    fn indices_wrap_around_the_ring() {
        let mut rig = Rig::new();
        rig.initialise();
        for round in 0..20u32 {
            rig.descriptor(0, BUFFERS, 4, DESC_WRITE, 0);
            rig.offer(0);
            rig.write(register::QUEUE_NOTIFY, 0);
            assert_eq!(u32::from(rig.used_idx()), round + 1);
        }
        assert!(!rig.needs_reset());
    }

    #[test]
    fn plug_and_unplug_reset_the_transport_and_raise_config_change() {
        let mut device = VirtioMmio::new();
        device.plug(Box::new(Echo::new())).map_err(|_| ()).unwrap();
        assert_eq!(device.device_id(), 0x2a);
        assert_eq!(device.describe(), "echo");
        assert!(device.irq_level());
        assert_eq!(
            device.read(register::CONFIG_GENERATION as u64, Width::U32, &mut NoDma),
            1
        );
        assert_eq!(
            device.read(register::INTERRUPT_STATUS as u64, Width::U32, &mut NoDma),
            2
        );
        let second = device.plug(Box::new(Echo::new()));
        assert_eq!(
            second.err().map(|backend| backend.describe()),
            Some("echo".into())
        );
        device.write(register::INTERRUPT_ACK as u64, Width::U32, 2, &mut NoDma);
        device.write(register::STATUS as u64, Width::U32, 3, &mut NoDma);
        assert!(!device.irq_level());

        let backend = device.unplug().unwrap();
        assert_eq!(backend.device_id(), 0x2a);
        assert!(device.irq_level());
        assert_eq!(
            device.read(register::STATUS as u64, Width::U32, &mut NoDma),
            0
        );
        assert_eq!(
            device.read(register::DEVICE_ID as u64, Width::U32, &mut NoDma),
            0
        );
        assert_eq!(
            device.read(register::CONFIG_GENERATION as u64, Width::U32, &mut NoDma),
            2
        );
        assert!(device.unplug().is_none());
    }

    #[test]
    fn fuzzed_rings_never_panic() {
        // A cheap deterministic fuzz: random descriptor tables and rings.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200 {
            let mut rig = Rig::new();
            rig.initialise();
            for chunk in rig.memory.bytes_mut()[DESC as usize..0x3000].chunks_mut(8) {
                let value = next();
                // Keep some addresses inside DMA memory and some lengths small.
                let value = if value % 3 == 0 {
                    value & 0x7fff
                } else {
                    value
                };
                chunk.copy_from_slice(&value.to_le_bytes());
            }
            rig.write(register::QUEUE_NOTIFY, 0);
        }
    }
}
