//! The virtio-mmio bus driver PD: the bridge of the seed's story.
//!
//! It binds every `virtio,mmio` transport of the board. In its probe, which holds the
//! transport's lock, it reads the transport's magic, version and device id and, when a device is
//! present, adds it as a child device on the virtio bus (`virtio,device<id>`, with the
//! transport's window and interrupt) through the `__device_add` path, so the device's own driver
//! is probed next. An empty transport is bound too: it is where a device may appear later. When
//! a transport is removed, the manager removes its child first (the child was added by this
//! driver's binding), then calls this driver's `remove`.
//!
//! Hot-plug: the transports of the hot-plug slots raise their interrupt when a device is
//! plugged in or out (a configuration change; see `warden-host-devices`). The driver then reads the
//! device id again and, if it changed, lets go of the transport (`Unbind`: the old child is
//! removed first) and binds it again (`Bind`, which waits for the transport's lock), whose
//! probe adds the new child: the same locked path as at boot. Channel 0 is the device manager; channels 1–4 are the interrupts of the hot-plug slots
//! (the transports at GIC INTIDs 48–51); the transports' registers are in the map
//! `virtio_vaddr`/`virtio_size`/`virtio_paddr`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::vec::Vec;
use log::{info, warn};
use warden_driver::{bus, Answer, Callback, Driver, DriverPd, Probe};
use warden_microkit::{ChannelSet, DeviceRegion, DeviceRegisters, Registers};
use warden_virtio::register;
use warden_vocabulary::{Compatible, DeviceId, DriverId, MatchData};

/// What this PD expects of the system description.
pub mod interface {
    use warden_interface::virtio_mmio::{SLOT1, SLOT2, SLOT3, SLOT4, VIRTIO};
    use warden_microkit::Channel;

    /// The device manager.
    pub const MANAGER: Channel = warden_driver::MANAGER;
    /// The setvar symbols of the ring maps: (vaddr symbol, size symbol).
    pub const REGIONS: [(&str, &str); 2] = warden_driver::MANAGER_REGIONS;
    /// The transports' map: (vaddr symbol, size symbol, paddr symbol).
    pub const DEVICE_REGIONS: [(&str, &str, &str); 1] = [VIRTIO];
    /// The hot-plug slots' interrupts: (GIC INTID, channel). QEMU virt's four lowest
    /// transports; systems/qemu_virt_aarch64.toml gives the same INTIDs to these channels.
    pub const HOTPLUG_IRQS: [(u32, Channel); 4] =
        [(48, SLOT1), (49, SLOT2), (50, SLOT3), (51, SLOT4)];
}

/// A bound transport.
struct Transport {
    device: DeviceId,
    /// The driver handle it was probed with (to bind it again).
    driver: DriverId,
    registers: DeviceRegisters,
    irq: Option<u32>,
    /// The device id seen by the probe (0: empty).
    device_id: u32,
}

/// The bus driver.
pub struct VirtioMmioBus {
    region: Option<DeviceRegion>,
    transports: Vec<Transport>,
}

/// What a virtio device id names, with its article.
fn device_name(id: u32) -> &'static str {
    match id {
        1 => "a network card",
        2 => "a block device",
        3 => "a console",
        4 => "an entropy source",
        16 => "a GPU",
        18 => "an input device",
        _ => "a device",
    }
}

impl Driver for VirtioMmioBus {
    fn name(&self) -> &str {
        "virtio-mmio"
    }

    fn compatible(&self) -> &[&str] {
        &["virtio,mmio"]
    }

    fn probe(&mut self, probe: &Probe) -> Answer {
        let Some(registers) = probe.registers(&[self.region]) else {
            return Answer::NotMine;
        };
        let window = probe.window().map_or(0, |window| window.base);
        let device_id = match warden_virtio::probe_device_id(&registers) {
            Ok(id) => id,
            Err(error) => {
                warn!("virtio-mmio: transport at 0x{window:x}: {error}");
                return Answer::Failed(1);
            }
        };
        // Reset the transport: whatever a crashed driver left running stops.
        registers.write32(register::STATUS, 0);
        if device_id != 0 {
            let mut match_data = MatchData::default();
            if let Ok(name) = Compatible::try_from(format!("virtio,device{device_id}").as_str()) {
                let _ = match_data.compatible.push(name);
            }
            match_data.bus_id = Some(device_id);
            match probe
                .callback
                .add_child(bus::VIRTIO, match_data, probe.resources.clone())
            {
                Ok(child) => info!(
                    "virtio-mmio: transport at 0x{window:x} holds {} (virtio device id {device_id}); added child {child}",
                    device_name(device_id),
                ),
                Err(status) => {
                    warn!("virtio-mmio: the manager refused the child at 0x{window:x}: {status:?}");
                    return Answer::Failed(2);
                }
            }
        }
        self.transports.push(Transport {
            device: probe.callback.device,
            driver: probe.driver,
            registers,
            irq: probe.resources.irqs.first().copied(),
            device_id,
        });
        Answer::Ok
    }

    fn remove(&mut self, callback: &Callback) -> Answer {
        if let Some(index) = self
            .transports
            .iter()
            .position(|transport| transport.device == callback.device)
        {
            let transport = self.transports.swap_remove(index);
            transport.registers.write32(register::STATUS, 0);
            if transport.device_id != 0 {
                info!(
                    "virtio-mmio: transport {} let go (its child was removed first)",
                    callback.device
                );
            }
        }
        Answer::Ok
    }

    fn notified(&mut self, channels: ChannelSet) {
        for (intid, channel) in interface::HOTPLUG_IRQS {
            if !channels.contains(channel) {
                continue;
            }
            let mut changed = None;
            if let Some(transport) = self
                .transports
                .iter()
                .find(|transport| transport.irq == Some(intid))
            {
                let status = transport.registers.read32(register::INTERRUPT_STATUS);
                transport.registers.write32(register::INTERRUPT_ACK, status);
                let now = warden_virtio::probe_device_id(&transport.registers).unwrap_or(0);
                if now != transport.device_id {
                    changed = Some((transport.device, transport.driver, transport.device_id, now));
                }
            }
            channel.irq_ack();
            if let Some((device, driver, before, now)) = changed {
                info!(
                    "virtio-mmio: hot-plug at the transport with irq {intid}: device id {before} -> {now}; rebinding it"
                );
                if let Err(status) = warden_driver::unbind(device) {
                    warn!("virtio-mmio: unbind refused: {status:?}");
                }
                if let Err(status) = warden_driver::bind(device, driver) {
                    warn!("virtio-mmio: bind refused: {status:?}");
                }
            }
        }
    }
}

/// The PD's `init`.
#[must_use]
pub fn init() -> DriverPd<VirtioMmioBus> {
    DriverPd::start(VirtioMmioBus {
        region: warden_microkit::device_region!(virtio_vaddr, virtio_size, virtio_paddr),
        transports: Vec::new(),
    })
}
