//! The virtio-blk driver PD: disks found by the virtio-mmio bus driver, driven by
//! `virtio-drivers`' `VirtIOBlk` over Warden's register transport (`warden-virtio`) and DMA pool
//! (`warden-dma`), served to a block client on a queue pair (`warden_services::block`, whose
//! server half this PD is).
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
//! re-probe after a crash starts clean; requests the client queued before then (while this PD
//! was restarting) are served as soon as the disk is bound.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use log::{info, warn};
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::transport::{DeviceType, Transport};
use warden_driver::{Answer, Callback, Driver, DriverPd, Probe};
use warden_microkit::{ChannelSet, DeviceRegion, DeviceRegisters};
use warden_services::block::{self, Data, Operation, Request, Status, SECTOR_BYTES};
use warden_virtio::RegisterTransport;
use warden_vocabulary::DeviceId;

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
    device: DeviceId,
    blk: Blk,
}

/// The virtio-blk driver.
pub struct VirtioBlkDriver {
    region: Option<DeviceRegion>,
    disks: Vec<Disk>,
    client: Option<block::Server>,
}

impl VirtioBlkDriver {
    /// Serves the client's queued requests from the first disk.
    fn serve_client(&mut self) {
        let Some(client) = self.client.as_mut() else {
            return;
        };
        let disk = self.disks.first_mut();
        client.serve(|request, data| match disk {
            Some(Disk { blk, .. }) => serve(blk, request, data),
            None => Status::NotReady,
        });
    }
}

/// One request on `blk`, the data in `data`.
fn serve(blk: &mut Blk, request: &Request, data: Data) -> Status {
    if request.operation == Operation::Flush {
        return match blk.flush() {
            Ok(()) => Status::Ok,
            Err(_) => Status::DeviceError,
        };
    }
    let Some(range) = request.data_range(data.len()) else {
        return Status::Invalid;
    };
    let (Ok(sector), true) = (usize::try_from(request.sector), range.start % 4 == 0) else {
        return Status::Invalid;
    };
    if request.count == 0
        || request.sector.saturating_add(u64::from(request.count)) > blk.capacity()
    {
        return Status::Invalid;
    }
    let mut buffer = vec![0u8; range.len()];
    match request.operation {
        Operation::Read => {
            if blk.read_blocks(sector, &mut buffer).is_err() {
                return Status::DeviceError;
            }
            // The response's release (on the ring) orders these stores before it.
            data.write(range.start, &buffer);
        }
        Operation::Write => {
            data.read(range.start, &mut buffer);
            if blk.write_blocks(sector, &buffer).is_err() {
                return Status::DeviceError;
            }
        }
        Operation::Flush => {}
    }
    Status::Ok
}

impl Driver for VirtioBlkDriver {
    fn name(&self) -> &str {
        "virtio-blk"
    }

    fn compatible(&self) -> &[&str] {
        &["virtio,device2"]
    }

    fn bus(&self) -> warden_vocabulary::BusId {
        warden_driver::bus::VIRTIO
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
        // What the device says it is, not what the one who added it claims (a hostile PD may
        // add a "disk" over any transport it drives).
        let found = transport.device_type();
        if found != DeviceType::Block {
            warn!(
                "blk: device {} is said to be a block device, but its transport holds a {found:?}; not mine",
                probe.callback.device
            );
            return Answer::NotMine;
        }
        match Blk::new(transport) {
            Ok(blk) => {
                let window = probe.window().map_or(0, |window| window.base);
                info!(
                    "blk: disk {} at 0x{window:x}: {} sectors of {SECTOR_BYTES} bytes ({} KiB), {} DMA pages in use{}",
                    probe.callback.device,
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
                    // Requests queued while no disk was bound (before a restart of this PD,
                    // say) are served now; then the client hears the disk is there.
                    self.serve_client();
                    if let Some(client) = self.client.as_mut() {
                        client.announce();
                    }
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
                "blk: disk {} removed ({} DMA pages in use)",
                callback.device,
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
            if let Err(error) = warden_dma::init(dma.vaddr, dma.window.base, dma.window.size) {
                warden_microkit::fatal(format_args!("blk: DMA region: {error:?}"));
            }
        }
        None => warden_microkit::fatal(format_args!("blk: no DMA region (dma_vaddr)")),
    }
    let client =
        block::Regions::from_system().map(|regions| block::Server::new(interface::CLIENT, regions));
    if client.is_none() {
        warn!("blk: no client rings or data region mapped; serving no client");
    }
    DriverPd::start(VirtioBlkDriver {
        region: warden_microkit::device_region!(virtio_vaddr, virtio_size, virtio_paddr),
        disks: Vec::new(),
        client,
    })
}
