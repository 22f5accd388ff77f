//! The virtio-rng driver PD: an entropy source found by the virtio-mmio bus driver, driven by
//! `virtio-drivers`' `VirtIORng` over Warden's register transport and DMA pool, serving entropy
//! (`warden_services::entropy`) to its client and the shell.
//!
//! Channels: 0 — the device manager; 1 — the client (it calls; this end notifies it when the
//! device is bound); 2 — the interrupt of the transport QEMU gives the second virtio device
//! (GIC INTID 78), only acknowledged since requests are served synchronously. Maps: the
//! transports (`virtio_vaddr`/`virtio_size`/`virtio_paddr`) and DMA memory (`dma_vaddr`/
//! `dma_size`/`dma_paddr`), and for an entropy source on PCI (`virtio-rng-pci`, the companion
//! driver on the `pci` bus) the host bridge's ECAM (`pci_ecam_*`) and the BAR window of the
//! slot it serves (`pci_bars_*`). The probe resets the device (`VirtIORng::new` starts with a
//! reset).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use log::{info, warn};
use virtio_drivers::device::rng::VirtIORng;
use virtio_drivers::transport::{DeviceType, Transport};
use warden_driver::{Answer, Callback, Companion, Driver, DriverPd, Probe};
use warden_microkit::{Channel, ChannelSet, DeviceRegion, DeviceRegisters, MessageInfo};
use warden_services::entropy;
use warden_virtio::{AnyTransport, Found};
use warden_vocabulary::DeviceId;

/// What this PD expects of the system description.
pub mod interface {
    pub use warden_interface::virtio_rng::{CLIENT, DEVICE_IRQ, SHELL};
    use warden_microkit::Channel;

    /// The device manager.
    pub const MANAGER: Channel = warden_driver::MANAGER;
    /// The setvar symbols of the ring maps: (vaddr symbol, size symbol).
    pub const REGIONS: [(&str, &str); 2] = warden_driver::MANAGER_REGIONS;
    /// Device and DMA maps: (vaddr symbol, size symbol, paddr symbol).
    pub const DEVICE_REGIONS: [(&str, &str, &str); 5] = [
        warden_interface::virtio_rng::VIRTIO,
        warden_interface::virtio_rng::PCI_ECAM,
        warden_interface::virtio_rng::PCI_BARS,
        warden_interface::virtio_rng::PCI_MEM,
        warden_interface::virtio_rng::DMA,
    ];
}

type Rng = VirtIORng<warden_dma::VirtioHal, AnyTransport<DeviceRegisters>>;

/// The compatible of virtio-rng functions on PCI (modern: 1af4:1044).
const PCI_RNG: &str = "pci1af4,1044";

/// The virtio-rng driver.
pub struct VirtioRngDriver {
    region: Option<DeviceRegion>,
    /// The PCIe host bridge's ECAM and the BAR windows of the slot this PD serves.
    pci_regions: [Option<DeviceRegion>; 3],
    rng: Option<(DeviceId, Rng)>,
}

impl Driver for VirtioRngDriver {
    fn name(&self) -> &str {
        "virtio-rng"
    }

    fn compatible(&self) -> &[&str] {
        &["virtio,device4"]
    }

    fn bus(&self) -> warden_vocabulary::BusId {
        warden_driver::bus::VIRTIO
    }

    fn companion(&self) -> Option<Companion> {
        Some(Companion {
            name: "virtio-rng-pci",
            bus: warden_driver::bus::PCI,
            compatible: &[PCI_RNG],
        })
    }

    fn probe(&mut self, probe: &Probe) -> Answer {
        if self.rng.is_some() {
            // One entropy source is enough for the client; leave others to another driver.
            info!(
                "rng: device {} not taken: entropy source {} serves already",
                probe.callback.device,
                self.rng
                    .as_ref()
                    .map_or(probe.callback.device, |(device, _)| *device)
            );
            return Answer::NotMine;
        }
        let on_pci = probe
            .match_data
            .compatible
            .iter()
            .any(|name| name.as_str() == PCI_RNG);
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
                warn!("rng: device {}: {error}", probe.callback.device);
                return Answer::Failed(1);
            }
        };
        // What the device says it is, not what the one who added it claims (a hostile PD may
        // add a "disk" over any transport it drives).
        let found = transport.device_type();
        if found != DeviceType::EntropySource {
            warn!(
                "rng: device {} is said to be an entropy source, but its transport holds a {found:?}; not mine",
                probe.callback.device
            );
            return Answer::NotMine;
        }
        match Rng::new(transport) {
            Ok(rng) => {
                info!(
                    "rng: entropy source {} bound{}",
                    probe.callback.device,
                    if on_pci { " (virtio-pci)" } else { "" }
                );
                self.rng = Some((probe.callback.device, rng));
                interface::CLIENT.notify();
                Answer::Ok
            }
            Err(error) => {
                warn!("rng: the device did not initialise: {error:?}");
                Answer::Failed(2)
            }
        }
    }

    fn remove(&mut self, callback: &Callback) -> Answer {
        if self
            .rng
            .as_ref()
            .is_some_and(|(device, _)| *device == callback.device)
        {
            self.rng = None;
            info!("rng: entropy source removed");
        }
        Answer::Ok
    }

    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(interface::DEVICE_IRQ) {
            if let Some((_, rng)) = self.rng.as_mut() {
                let _ = rng.ack_interrupt();
            }
            interface::DEVICE_IRQ.irq_ack();
        }
    }

    fn protected(&mut self, channel: Channel, message: MessageInfo) -> MessageInfo {
        let rng = [interface::CLIENT, interface::SHELL]
            .contains(&channel)
            .then_some(self.rng.as_mut())
            .flatten();
        entropy::serve(message, |buffer| {
            let (_, rng) = rng?;
            rng.request_entropy(buffer)
                .map_err(|error| warn!("rng: {error:?}"))
                .ok()
        })
    }
}

/// The PD's `init`.
#[must_use]
pub fn init() -> DriverPd<VirtioRngDriver> {
    match warden_microkit::device_region!(dma_vaddr, dma_size, dma_paddr) {
        Some(dma) => {
            if let Err(error) = warden_dma::init(dma.vaddr, dma.window.base, dma.window.size) {
                warden_microkit::fatal(format_args!("rng: DMA region: {error:?}"));
            }
        }
        None => warden_microkit::fatal(format_args!("rng: no DMA region (dma_vaddr)")),
    }
    DriverPd::start(VirtioRngDriver {
        region: warden_microkit::device_region!(virtio_vaddr, virtio_size, virtio_paddr),
        pci_regions: [
            warden_microkit::device_region!(pci_ecam_vaddr, pci_ecam_size, pci_ecam_paddr),
            warden_microkit::device_region!(pci_bars_vaddr, pci_bars_size, pci_bars_paddr),
            warden_microkit::device_region!(pci_mem_vaddr, pci_mem_size, pci_mem_paddr),
        ],
        rng: None,
    })
}
