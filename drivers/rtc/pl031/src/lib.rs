//! PL031 real-time clock driver PD: reads the clock for its client.
//!
//! The register block and the driver logic are in [`device`] (generic over
//! `warden_registers::Registers`, tested against a model of the PL031). This file is the PD:
//! a [`warden_driver::Driver`] that binds `arm,pl031`, finds the device in its map
//! `rtc_vaddr`/`rtc_size`/`rtc_paddr`, and serves the clock (`warden_services::clock`) to the
//! client on channel 1 (notified once the clock is bound) and the shell on channel 2. Channel 0
//! is the device manager.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod device;

use log::{info, warn};
use warden_driver::{Answer, Callback, Driver, DriverPd, Probe};
use warden_microkit::{Channel, DeviceRegisters, MessageInfo};
use warden_services::clock;
use warden_vocabulary::DeviceId;

/// What this PD expects of the system description.
pub mod interface {
    pub use warden_interface::rtc::{CLIENT, SHELL};
    use warden_microkit::Channel;

    /// The device manager.
    pub const MANAGER: Channel = warden_driver::MANAGER;
    /// The setvar symbols of the ring maps: (vaddr symbol, size symbol).
    pub const REGIONS: [(&str, &str); 2] = warden_driver::MANAGER_REGIONS;
    /// The device map: (vaddr symbol, size symbol, paddr symbol).
    pub const DEVICE_REGIONS: [(&str, &str, &str); 1] = [warden_interface::rtc::RTC];
}

/// The PL031 driver.
pub struct Pl031Driver {
    region: Option<warden_microkit::DeviceRegion>,
    clock: Option<(DeviceId, device::Pl031<DeviceRegisters>)>,
}

impl Driver for Pl031Driver {
    fn name(&self) -> &str {
        "pl031-rtc"
    }

    fn compatible(&self) -> &[&str] {
        &["arm,pl031"]
    }

    fn probe(&mut self, probe: &Probe) -> Answer {
        let Some(registers) = probe.registers(&[self.region]) else {
            warn!("rtc: device {} is not in my maps", probe.compatible());
            return Answer::NotMine;
        };
        match device::Pl031::probe(registers) {
            Ok(clock) => {
                info!("rtc: PL031 bound; the time is {}", clock.now());
                self.clock = Some((probe.callback.device, clock));
                interface::CLIENT.notify();
                Answer::Ok
            }
            Err(error) => {
                warn!("rtc: {error}");
                Answer::Failed(1)
            }
        }
    }

    fn remove(&mut self, callback: &Callback) -> Answer {
        if self
            .clock
            .as_ref()
            .is_some_and(|(device, _)| *device == callback.device)
        {
            self.clock = None;
            info!("rtc: PL031 removed");
        }
        Answer::Ok
    }

    fn protected(&mut self, channel: Channel, message: MessageInfo) -> MessageInfo {
        let seconds = [interface::CLIENT, interface::SHELL]
            .contains(&channel)
            .then_some(self.clock.as_ref())
            .flatten()
            .map(|(_, clock)| u64::from(clock.seconds()));
        clock::serve(message, seconds)
    }
}

/// The PD's `init`.
#[must_use]
pub fn init() -> DriverPd<Pl031Driver> {
    DriverPd::start(Pl031Driver {
        region: warden_microkit::device_region!(rtc_vaddr, rtc_size, rtc_paddr),
        clock: None,
    })
}
