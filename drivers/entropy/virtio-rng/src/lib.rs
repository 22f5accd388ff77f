//! The virtio-rng driver PD: an entropy source found by the virtio-mmio bus driver, driven by
//! `virtio-drivers`' `VirtIORng` over Warden's register transport and DMA pool, answering its
//! client's `ENTROPY` calls (`warden_protocol::services`).
//!
//! Channels: 0 — the device manager; 1 — the client (it calls; this end notifies it when the
//! device is bound); 2 — the interrupt of the transport QEMU gives the second virtio device
//! (GIC INTID 78), only acknowledged since requests are served synchronously. Maps: the
//! transports (`virtio_vaddr`/`virtio_size`/`virtio_paddr`) and DMA memory (`dma_vaddr`/
//! `dma_size`/`dma_paddr`). The probe resets the device (`VirtIORng::new` starts with a reset).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use log::{info, warn};
use virtio_drivers::device::rng::VirtIORng;
use warden_driver::{Answer, Callback, Driver, DriverPd, Probe};
use warden_microkit::{set_mr, Channel, ChannelSet, DeviceRegion, DeviceRegisters, MessageInfo};
use warden_protocol::services::{ENTROPY, MAX_ENTROPY_BYTES, NOT_READY};
use warden_virtio::RegisterTransport;

/// What this PD expects of the system description.
pub mod interface {
    use warden_microkit::Channel;

    /// The device manager.
    pub const MANAGER: Channel = warden_driver::MANAGER;
    /// The client.
    pub const CLIENT: Channel = Channel::new(1);
    /// The entropy device's transport interrupt.
    pub const DEVICE_IRQ: Channel = Channel::new(2);
    /// The shell (it calls for entropy on demand; it is not notified).
    pub const SHELL: Channel = Channel::new(3);
    /// The setvar symbols of the ring maps: (vaddr symbol, size symbol).
    pub const REGIONS: [(&str, &str); 2] = warden_driver::MANAGER_REGIONS;
    /// Device and DMA maps: (vaddr symbol, size symbol, paddr symbol).
    pub const DEVICE_REGIONS: [(&str, &str, &str); 2] = [
        ("virtio_vaddr", "virtio_size", "virtio_paddr"),
        ("dma_vaddr", "dma_size", "dma_paddr"),
    ];
}

type Rng = VirtIORng<warden_dma::VirtioHal, RegisterTransport<DeviceRegisters>>;

/// The virtio-rng driver.
pub struct VirtioRngDriver {
    region: Option<DeviceRegion>,
    rng: Option<(warden_protocol::Handle, Rng)>,
}

impl Driver for VirtioRngDriver {
    fn name(&self) -> &str {
        "virtio-rng"
    }

    fn compatible(&self) -> &[&str] {
        &["virtio,device4"]
    }

    fn probe(&mut self, probe: &Probe) -> Answer {
        if self.rng.is_some() {
            // One entropy source is enough for the client; leave others to another driver.
            return Answer::NotMine;
        }
        let Some(registers) = probe.registers(&[self.region]) else {
            return Answer::NotMine;
        };
        let transport = match RegisterTransport::new(registers) {
            Ok(transport) => transport,
            Err(error) => {
                warn!("rng: {error}");
                return Answer::Failed(1);
            }
        };
        match Rng::new(transport) {
            Ok(rng) => {
                info!(
                    "rng: entropy source {}:{} bound",
                    probe.callback.device.index, probe.callback.device.generation
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
        let wanted = usize::try_from(warden_microkit::get_mr(0)).unwrap_or(0);
        let caller = [interface::CLIENT, interface::SHELL].contains(&channel);
        if !caller || message.label() != ENTROPY || message.count() < 1 {
            return MessageInfo::new(NOT_READY, 0);
        }
        let Some((_, rng)) = self.rng.as_mut() else {
            return MessageInfo::new(NOT_READY, 0);
        };
        let mut bytes = [0u8; MAX_ENTROPY_BYTES];
        let wanted = wanted.clamp(1, MAX_ENTROPY_BYTES);
        let Some(buffer) = bytes.get_mut(..wanted) else {
            return MessageInfo::new(NOT_READY, 0);
        };
        let got = match rng.request_entropy(buffer) {
            Ok(got) => got.min(wanted),
            Err(error) => {
                warn!("rng: {error:?}");
                return MessageInfo::new(NOT_READY, 0);
            }
        };
        let words = got.div_ceil(8);
        for (index, chunk) in bytes.chunks(8).take(words).enumerate() {
            let mut word = [0u8; 8];
            word.get_mut(..chunk.len())
                .unwrap_or_default()
                .copy_from_slice(chunk);
            set_mr(index, u64::from_le_bytes(word));
        }
        // Label 0 (ok); the count says how many registers hold the `got` bytes.
        set_mr(words, got as u64);
        MessageInfo::new(0, (words + 1) as u8)
    }
}

/// The PD's `init`.
#[must_use]
pub fn init() -> DriverPd<VirtioRngDriver> {
    match warden_microkit::device_region!(dma_vaddr, dma_size, dma_paddr) {
        Some(dma) => {
            if let Err(error) = warden_dma::init(dma.vaddr, dma.paddr, dma.size) {
                warden_microkit::fatal(format_args!("rng: DMA region: {error:?}"));
            }
        }
        None => warden_microkit::fatal(format_args!("rng: no DMA region (dma_vaddr)")),
    }
    DriverPd::start(VirtioRngDriver {
        region: warden_microkit::device_region!(virtio_vaddr, virtio_size, virtio_paddr),
        rng: None,
    })
}
