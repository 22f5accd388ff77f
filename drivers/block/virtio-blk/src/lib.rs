//! The virtio-blk driver PD: disks found by the virtio-mmio bus driver, driven by
//! `virtio-drivers`' `VirtIOBlk` over Warden's register transport (`warden-virtio`) and DMA pool
//! (`warden-dma`), served to a block client on a queue pair (`warden_protocol::services`).
//!
//! Channels: 0 — the device manager; 1 — the block client (notified when the first disk is
//! bound and when responses are queued; it notifies when it queues requests); 2 — the
//! interrupt of the boot disk's transport (GIC INTID 79, the transport QEMU gives the first
//! `-device virtio-blk-device`). Requests are served synchronously (virtio-drivers waits for
//! the used ring), so the interrupt is only acknowledged. Maps: the transports
//! (`virtio_vaddr`/`virtio_size`/`virtio_paddr`), DMA memory (`dma_vaddr`/`dma_size`/
//! `dma_paddr`), the request and response rings (`requests`, `responses`) and the data region
//! (`block_data`). The first disk bound serves the client; later ones (hot-plugged) are bound
//! and logged. The probe resets the device (`VirtIOBlk::new` starts with a reset), so a
//! re-probe after a crash starts clean.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use log::{info, warn};
use virtio_drivers::device::blk::VirtIOBlk;
use warden_driver::{Answer, Callback, Driver, DriverPd, Probe};
use warden_microkit::{ChannelSet, DeviceRegion, DeviceRegisters};
use warden_protocol::ring::SLOT_BYTES;
use warden_protocol::services::{
    BlockOperation, BlockRequest, BlockResponse, BlockStatus, SECTOR_BYTES,
};
use warden_protocol::{Consumer, Producer, RingMemory};
use warden_virtio::RegisterTransport;

/// What this PD expects of the system description.
pub mod interface {
    use warden_microkit::Channel;

    /// The device manager.
    pub const MANAGER: Channel = warden_driver::MANAGER;
    /// The block client.
    pub const CLIENT: Channel = Channel::new(1);
    /// The boot disk's transport interrupt.
    pub const DISK_IRQ: Channel = Channel::new(2);
    /// Ring and data maps: (vaddr symbol, size symbol).
    pub const REGIONS: [(&str, &str); 5] = [
        ("from_manager", "from_manager_size"),
        ("to_manager", "to_manager_size"),
        ("requests", "requests_size"),
        ("responses", "responses_size"),
        ("block_data", "block_data_size"),
    ];
    /// Device and DMA maps: (vaddr symbol, size symbol, paddr symbol).
    pub const DEVICE_REGIONS: [(&str, &str, &str); 2] = [
        ("virtio_vaddr", "virtio_size", "virtio_paddr"),
        ("dma_vaddr", "dma_size", "dma_paddr"),
    ];
}

type Blk = VirtIOBlk<warden_dma::VirtioHal, RegisterTransport<DeviceRegisters>>;

struct Disk {
    device: warden_protocol::Handle,
    blk: Blk,
}

/// The virtio-blk driver.
pub struct VirtioBlkDriver {
    region: Option<DeviceRegion>,
    disks: Vec<Disk>,
    requests: Option<Consumer<'static>>,
    responses: Option<Producer<'static>>,
    data: &'static [AtomicU32],
}

fn ring(words: Option<&'static [AtomicU32]>) -> Option<RingMemory<'static>> {
    RingMemory::over(words?).ok()
}

impl VirtioBlkDriver {
    fn serve(&mut self, request: &BlockRequest) -> BlockStatus {
        let Some(disk) = self.disks.first_mut() else {
            return BlockStatus::NotReady;
        };
        if request.operation == BlockOperation::Flush {
            return match disk.blk.flush() {
                Ok(()) => BlockStatus::Ok,
                Err(_) => BlockStatus::DeviceError,
            };
        }
        let Some(range) = request.data_range(self.data.len() * 4) else {
            return BlockStatus::Invalid;
        };
        let (Ok(sector), true) = (usize::try_from(request.sector), range.start % 4 == 0) else {
            return BlockStatus::Invalid;
        };
        if request.count == 0
            || request.sector.saturating_add(u64::from(request.count)) > disk.blk.capacity()
        {
            return BlockStatus::Invalid;
        }
        let words = self
            .data
            .get(range.start / 4..range.end / 4)
            .unwrap_or_default();
        let mut buffer = vec![0u8; range.len()];
        match request.operation {
            BlockOperation::Read => {
                if disk.blk.read_blocks(sector, &mut buffer).is_err() {
                    return BlockStatus::DeviceError;
                }
                for (word, bytes) in words.iter().zip(buffer.chunks_exact(4)) {
                    let mut value = [0u8; 4];
                    value.copy_from_slice(bytes);
                    word.store(u32::from_le_bytes(value), Ordering::Relaxed);
                }
                // The response's release (on the ring) orders these stores before it.
            }
            BlockOperation::Write => {
                for (word, bytes) in words.iter().zip(buffer.chunks_exact_mut(4)) {
                    bytes.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
                }
                if disk.blk.write_blocks(sector, &buffer).is_err() {
                    return BlockStatus::DeviceError;
                }
            }
            BlockOperation::Flush => {}
        }
        BlockStatus::Ok
    }

    fn serve_client(&mut self) {
        let mut buffer = [0u8; SLOT_BYTES];
        let mut answered = false;
        loop {
            let Some(requests) = self.requests.as_mut() else {
                return;
            };
            let length = match requests.pop_or_arm(&mut buffer) {
                Ok(Some(length)) => length,
                Ok(None) => break,
                Err(error) => {
                    warn!("blk: the client's request ring is corrupt ({error:?}); ignoring it");
                    break;
                }
            };
            let Some(request) = BlockRequest::decode(buffer.get(..length).unwrap_or_default())
            else {
                warn!("blk: malformed request from the client; dropped");
                continue;
            };
            let status = self.serve(&request);
            let response = BlockResponse {
                id: request.id,
                status,
            };
            if let Some(responses) = self.responses.as_mut() {
                // The client has at most as many requests in flight as the ring has slots.
                if responses.try_push(&response.encode()).is_err() {
                    warn!(
                        "blk: the client's response ring is full; response {} lost",
                        request.id
                    );
                }
                answered = true;
            }
        }
        if answered && self.responses.as_ref().is_some_and(Producer::signal_needed) {
            interface::CLIENT.notify();
        }
    }
}

impl Driver for VirtioBlkDriver {
    fn name(&self) -> &str {
        "virtio-blk"
    }

    fn compatible(&self) -> &[&str] {
        &["virtio,device2"]
    }

    fn probe(&mut self, probe: &Probe) -> Answer {
        let Some(registers) = probe.registers(&[self.region]) else {
            return Answer::NotMine;
        };
        let transport = match RegisterTransport::new(registers) {
            Ok(transport) => transport,
            Err(error) => {
                warn!("blk: {error}");
                return Answer::Failed(1);
            }
        };
        match Blk::new(transport) {
            Ok(blk) => {
                let window = probe
                    .resources
                    .mmio
                    .first()
                    .map_or(0, |window| window.address);
                info!(
                    "blk: disk {}:{} at 0x{window:x}: {} sectors of {SECTOR_BYTES} bytes ({} KiB), {} DMA pages in use{}",
                    probe.callback.device.index,
                    probe.callback.device.generation,
                    blk.capacity(),
                    blk.capacity() / 2,
                    warden_dma::pages_in_use(),
                    if self.disks.is_empty() { "; serving the block client" } else { "" }
                );
                let first = self.disks.is_empty();
                self.disks.push(Disk {
                    device: probe.callback.device,
                    blk,
                });
                if first {
                    interface::CLIENT.notify();
                }
                Answer::Ok
            }
            Err(error) => {
                warn!("blk: the device did not initialise: {error:?}");
                Answer::Failed(2)
            }
        }
    }

    fn remove(&mut self, callback: &Callback) -> Answer {
        if let Some(index) = self
            .disks
            .iter()
            .position(|disk| disk.device == callback.device)
        {
            // Dropping the VirtIOBlk resets the device and frees its queue.
            drop(self.disks.remove(index));
            info!(
                "blk: disk {}:{} removed ({} DMA pages in use)",
                callback.device.index,
                callback.device.generation,
                warden_dma::pages_in_use()
            );
        }
        Answer::Ok
    }

    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(interface::DISK_IRQ) {
            for disk in &mut self.disks {
                let _ = disk.blk.ack_interrupt();
            }
            interface::DISK_IRQ.irq_ack();
        }
        if channels.contains(interface::CLIENT) {
            self.serve_client();
        }
    }
}

/// The PD's `init`.
#[must_use]
pub fn init() -> DriverPd<VirtioBlkDriver> {
    match warden_microkit::device_region!(dma_vaddr, dma_size, dma_paddr) {
        Some(dma) => {
            if let Err(error) = warden_dma::init(dma.vaddr, dma.paddr, dma.size) {
                warden_microkit::fatal(format_args!("blk: DMA region: {error:?}"));
            }
        }
        None => warden_microkit::fatal(format_args!("blk: no DMA region (dma_vaddr)")),
    }
    let requests = ring(warden_microkit::memory_region_words!(
        requests,
        requests_size
    ));
    let responses = ring(warden_microkit::memory_region_words!(
        responses,
        responses_size
    ));
    let data = warden_microkit::memory_region_words!(block_data, block_data_size);
    if requests.is_none() || responses.is_none() || data.is_none() {
        warn!("blk: no client rings or data region mapped; serving no client");
    }
    let mut requests = requests.map(Consumer::new);
    if let Some(requests) = requests.as_mut() {
        let _ = requests.arm_signal();
    }
    DriverPd::start(VirtioBlkDriver {
        region: warden_microkit::device_region!(virtio_vaddr, virtio_size, virtio_paddr),
        disks: Vec::new(),
        requests,
        responses: responses.map(Producer::new),
        data: data.unwrap_or_default(),
    })
}
