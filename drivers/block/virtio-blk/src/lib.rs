//! The virtio-blk driver PD: disks found by the virtio-mmio bus driver, and virtio-blk-pci
//! functions the PCI host bridge's driver finds (its companion driver `virtio-blk-pci`, on the
//! `pci` bus), driven by `virtio-drivers`' `VirtIOBlk` over Warden's transports
//! (`warden-virtio`: virtio-mmio or virtio-pci) and DMA pool (`warden-dma`), served to a block
//! client on a queue pair (`warden_services::block`, whose server half this PD is).
//!
//! Channels: 0 — the device manager; 1 — the block client (notified when the first disk is
//! bound and when responses are queued; it notifies when it queues requests); 2 — the
//! interrupt of the boot disk's transport (GIC INTID 79, the transport QEMU gives the first
//! `-device virtio-blk-device`). Requests are served synchronously (virtio-drivers waits for
//! the used ring), so the interrupt is only acknowledged; a PCI function's INTx is turned off.
//! Maps: the transports (`virtio_vaddr`/`virtio_size`/`virtio_paddr`); for PCI, the
//! configuration space of the bus it serves (`pci_ecam_*`) and its slot's BAR windows
//! (`pci_bars_*`, `pci_mem_*`); DMA memory (`dma_vaddr`/`dma_size`/
//! `dma_paddr`), the request and response rings (`requests`, `responses`) and the data region
//! (`block_data`). Beside Warden's own protocol it serves sDDF's block protocol
//! (`warden_services::sddf_block`) when its description maps sDDF's regions
//! (`blk_storage_info`, `blk_request_queue`, `blk_response_queue`, `blk_client_data`): the
//! client on channel 1 speaks whichever its program speaks, and a description may give a
//! driver either set or both. The first disk bound serves the client; later ones
//! (hot-plugged) are bound and logged, and when the first is removed the next serves (the
//! client is told, as of the first). The probe resets the device (`VirtIOBlk::new` starts with a reset), so a
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
use warden_driver::{Answer, Callback, Companion, Driver, DriverPd, Probe};
use warden_microkit::{ChannelSet, DeviceRegion, DeviceRegisters};
use warden_services::block::{self, Data, Operation, Request, Status, SECTOR_BYTES};
use warden_services::sddf_block::{self, blk as sddf};
use warden_virtio::{AnyTransport, Found};
use warden_vocabulary::DeviceId;

/// What this PD expects of the system description.
pub mod interface {
    use warden_interface::virtio_blk::{
        BLK_CLIENT_DATA, BLK_REQUEST_QUEUE, BLK_RESPONSE_QUEUE, BLK_STORAGE_INFO, BLOCK_DATA, DMA,
        FROM_MANAGER, PCI_BARS, PCI_ECAM, PCI_MEM, REQUESTS, RESPONSES, TO_MANAGER, VIRTIO,
    };
    pub use warden_interface::virtio_blk::{CLIENT, DISK_IRQ};
    use warden_microkit::Channel;

    /// The device manager.
    pub const MANAGER: Channel = warden_driver::MANAGER;
    /// Ring and data maps: (vaddr symbol, size symbol).
    pub const REGIONS: [(&str, &str); 5] =
        [FROM_MANAGER, TO_MANAGER, REQUESTS, RESPONSES, BLOCK_DATA];
    /// sDDF's block regions (optional, like Warden's rings): (vaddr symbol, size symbol), the
    /// symbols `warden_services::sddf_block` reads.
    pub const SDDF_REGIONS: [(&str, &str); 4] = [
        BLK_STORAGE_INFO,
        BLK_REQUEST_QUEUE,
        BLK_RESPONSE_QUEUE,
        BLK_CLIENT_DATA,
    ];
    /// Device and DMA maps: (vaddr symbol, size symbol, paddr symbol).
    pub const DEVICE_REGIONS: [(&str, &str, &str); 5] = [VIRTIO, PCI_ECAM, PCI_BARS, PCI_MEM, DMA];
}

type Blk = VirtIOBlk<warden_dma::VirtioHal, AnyTransport<DeviceRegisters>>;

/// The compatible of virtio-blk functions on PCI (modern: 1af4:1042).
const PCI_DISK: &str = "pci1af4,1042";

struct Disk {
    device: DeviceId,
    blk: Blk,
}

/// The virtio-blk driver.
pub struct VirtioBlkDriver {
    region: Option<DeviceRegion>,
    /// The PCIe host bridge's ECAM and the BAR windows of the slot this PD serves.
    pci_regions: [Option<DeviceRegion>; 3],
    disks: Vec<Disk>,
    client: Option<block::Server>,
    sddf: Option<sddf_block::Server>,
    /// A disk has been bound since this PD started (once it is gone, sDDF requests are
    /// answered "no device"; before, they wait for it).
    bound_once: bool,
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

    /// Serves the sDDF client's queued requests from the first disk; with no disk they wait
    /// for one, unless one was bound and is gone (then: "no device").
    fn serve_sddf_client(&mut self) {
        let Some(client) = self.sddf.as_mut() else {
            return;
        };
        match self.disks.first_mut() {
            Some(Disk { blk, .. }) => client.serve(|request, data| serve_sddf(blk, request, data)),
            None if self.bound_once => client.serve(|_, _| sddf::ResponseStatus::NoDevice),
            None => {}
        }
    }

    /// Tells the sDDF client about the first disk: its storage information, `ready` last.
    fn publish(&mut self) {
        let (Some(client), Some(Disk { blk, .. })) = (self.sddf.as_ref(), self.disks.first_mut())
        else {
            return;
        };
        let mut id = [0u8; 20];
        let serial = blk
            .device_id(&mut id)
            .map_or(0, |length| length.min(id.len()));
        let mut serial_number = [0u8; 64];
        for (to, from) in serial_number
            .iter_mut()
            .zip(id.iter().take(serial).take_while(|byte| **byte != 0))
        {
            *to = *from;
        }
        let info = sddf::StorageInfo {
            serial_number,
            read_only: u8::from(blk.readonly()),
            ready: 1,
            sector_size: SECTOR_BYTES as u16,
            block_size: 1,
            queue_depth: u16::try_from(client.capacity()).unwrap_or(u16::MAX),
            cylinders: 0,
            heads: 0,
            blocks: 0,
            _padding: [0; 2],
            capacity: blk.capacity() / SECTORS_PER_BLOCK,
        };
        client.publish(&info);
    }
}

/// Warden's request for the sectors an sDDF request names, or the status to answer at once:
/// a barrier is done (requests are served one at a time, in order), a code sDDF does not define
/// or a block number or buffer offset beyond Warden's ranges is invalid.
fn in_sectors(request: &sddf::Request) -> Result<Request, sddf::ResponseStatus> {
    let operation = match sddf::RequestCode::from_raw(request.code) {
        Some(sddf::RequestCode::Read) => Operation::Read,
        Some(sddf::RequestCode::Write) => Operation::Write,
        Some(sddf::RequestCode::Flush) => Operation::Flush,
        Some(sddf::RequestCode::Barrier) => return Err(sddf::ResponseStatus::Ok),
        None => return Err(sddf::ResponseStatus::InvalidParameter),
    };
    let (Some(sector), Ok(offset)) = (
        request.block_number.checked_mul(SECTORS_PER_BLOCK),
        u32::try_from(request.io_or_offset),
    ) else {
        return Err(sddf::ResponseStatus::InvalidParameter);
    };
    Ok(Request {
        id: request.id,
        operation,
        sector,
        // At most 65,535 × 8 sectors: no overflow.
        count: u32::from(request.count) * SECTORS_PER_BLOCK as u32,
        offset,
    })
}

/// Sectors in one of sDDF's blocks.
const SECTORS_PER_BLOCK: u64 = sddf::TRANSFER_SIZE / SECTOR_BYTES as u64;

/// One sDDF request on `blk`, the data in `data`: Warden's request for the same sectors, its
/// status in sDDF's terms. Everything in `request` is the client's and checked here or by
/// [`serve`]: the code, the block range against the disk, the buffer against the data region.
fn serve_sddf(blk: &mut Blk, request: &sddf::Request, data: Data) -> sddf::ResponseStatus {
    let warden = match in_sectors(request) {
        Ok(warden) => warden,
        Err(status) => return status,
    };
    match serve(blk, &warden, data) {
        Status::Ok => sddf::ResponseStatus::Ok,
        Status::Invalid => sddf::ResponseStatus::InvalidParameter,
        Status::DeviceError => sddf::ResponseStatus::Io,
        Status::NotReady => sddf::ResponseStatus::NoDevice,
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

    fn companion(&self) -> Option<Companion> {
        Some(Companion {
            name: "virtio-blk-pci",
            bus: warden_driver::bus::PCI,
            compatible: &[PCI_DISK],
        })
    }

    fn probe(&mut self, probe: &Probe) -> Answer {
        let on_pci = probe
            .match_data
            .compatible
            .iter()
            .any(|name| name.as_str() == PCI_DISK);
        let found = if on_pci {
            probe
                .pci_function(&self.pci_regions)
                .map(|function| Found::Pci {
                    config: function.config,
                    bars: function.bars,
                })
        } else {
            probe.registers(&[self.region]).map(Found::Mmio)
        };
        let Some(found) = found else {
            return Answer::NotMine;
        };
        let transport = match AnyTransport::open(found) {
            Ok(transport) => transport,
            Err(error) => {
                warn!("blk: device {}: {error}", probe.callback.device);
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
                // Where it is: its transport, or a function's configuration space (as the
                // tree shows it).
                let window = probe.window().map_or(0, |window| window.base);
                info!(
                    "blk: disk {} at 0x{window:x}{}: {} sectors of {SECTOR_BYTES} bytes ({} KiB), {} DMA pages in use{}",
                    probe.callback.device,
                    if on_pci { " (virtio-pci)" } else { "" },
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
                    self.bound_once = true;
                    self.serve_client();
                    if let Some(client) = self.client.as_mut() {
                        client.announce();
                    }
                    self.serve_sddf_client();
                    self.publish();
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
            if index == 0 {
                // The sDDF client's disk is gone (or replaced by the next one bound).
                if let Some(client) = self.sddf.as_ref() {
                    client.withdraw();
                }
                self.publish();
                self.serve_sddf_client();
                // Another disk serves the client now: it hears so, as of the first one.
                if !self.disks.is_empty() {
                    if let Some(client) = self.client.as_mut() {
                        client.announce();
                    }
                }
            }
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
            self.serve_sddf_client();
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
    let sddf = sddf_block::Regions::from_system().and_then(|regions| {
        sddf_block::Server::new(interface::CLIENT, regions)
            .map_err(|error| warn!("blk: the sDDF client's queues: {error:?}; not served"))
            .ok()
    });
    match (&client, &sddf) {
        (None, None) => warn!("blk: no client's regions mapped; serving no client"),
        (_, Some(sddf)) => info!(
            "blk: serving an sDDF block client ({} requests at once) {}",
            sddf.capacity(),
            if client.is_some() {
                "beside Warden's protocol"
            } else {
                "only"
            }
        ),
        (Some(_), None) => {}
    }
    DriverPd::start(VirtioBlkDriver {
        region: warden_microkit::device_region!(virtio_vaddr, virtio_size, virtio_paddr),
        pci_regions: [
            warden_microkit::device_region!(pci_ecam_vaddr, pci_ecam_size, pci_ecam_paddr),
            warden_microkit::device_region!(pci_bars_vaddr, pci_bars_size, pci_bars_paddr),
            warden_microkit::device_region!(pci_mem_vaddr, pci_mem_size, pci_mem_paddr),
        ],
        disks: Vec::new(),
        client,
        sddf,
        bound_once: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_sddf_symbols_are_those_the_sddf_block_server_reads() {
        // systems/interfaces.toml names them for the system description; the server reads
        // them by the names sDDF's components use.
        assert_eq!(
            interface::SDDF_REGIONS,
            warden_services::sddf_block::SYMBOLS
        );
    }

    fn request(code: u32, block_number: u64, count: u16, io_or_offset: u64) -> sddf::Request {
        sddf::Request {
            code,
            io_or_offset,
            block_number,
            count,
            id: 9,
            ..sddf::Request::default()
        }
    }

    /// What a hostile sDDF client can put in a request: whatever it is, it becomes a request
    /// in sectors that `serve` bounds by the disk and the data region, or an answer at once.
    #[test]
    fn sddf_requests_become_sector_requests_or_are_refused() {
        let read = in_sectors(&request(0, 3, 2, 0x2000)).unwrap();
        assert_eq!(
            (
                read.operation,
                read.sector,
                read.count,
                read.offset,
                read.id
            ),
            (Operation::Read, 24, 16, 0x2000, 9)
        );
        assert_eq!(
            in_sectors(&request(1, 0, 1, 0)).unwrap().operation,
            Operation::Write
        );
        assert_eq!(
            in_sectors(&request(2, 0, 0, 0)).unwrap().operation,
            Operation::Flush
        );
        assert_eq!(
            in_sectors(&request(3, 0, 0, 0)),
            Err(sddf::ResponseStatus::Ok)
        );
        for code in [4, 0xff, u32::MAX] {
            assert_eq!(
                in_sectors(&request(code, 0, 1, 0)),
                Err(sddf::ResponseStatus::InvalidParameter)
            );
        }
        assert_eq!(
            in_sectors(&request(0, u64::MAX / 4, 1, 0)),
            Err(sddf::ResponseStatus::InvalidParameter),
            "a block number whose sector overflows"
        );
        assert_eq!(
            in_sectors(&request(0, 0, 1, 1 << 32)),
            Err(sddf::ResponseStatus::InvalidParameter),
            "a buffer offset past 4 GiB"
        );
        // The largest count: its bytes lie outside any data region a PD maps.
        let huge = in_sectors(&request(0, 0, u16::MAX, 0)).unwrap();
        assert_eq!(huge.count, 65_535 * 8);
        assert_eq!(huge.data_range(0x3000), None);
    }
}
