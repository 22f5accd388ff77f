//! PL031 real-time clock driver PD: reads the clock for its client.
//!
//! The register block and the driver logic are in [`device`] (generic over
//! `warden_registers::Registers`, tested against a model of the PL031). This file is the PD:
//! a [`warden_driver::Driver`] that binds `arm,pl031`, finds the device in its map
//! `rtc_vaddr`/`rtc_size`/`rtc_paddr`, and answers the client's `TIME` calls
//! (`warden_protocol::services`) on channel 1, notifying it once the clock is bound. Channel 0
//! is the device manager.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod device;

use log::{info, warn};
use warden_driver::{Answer, Callback, Driver, DriverPd, Probe};
use warden_microkit::{set_mr, Channel, DeviceRegisters, MessageInfo};
use warden_protocol::services::{NOT_READY, TIME};

/// What this PD expects of the system description.
pub mod interface {
    use warden_microkit::Channel;

    /// The device manager.
    pub const MANAGER: Channel = warden_driver::MANAGER;
    /// The clock's client (it calls `TIME`; this end notifies it when the clock is bound).
    pub const CLIENT: Channel = Channel::new(1);
    /// The shell (it calls for the time on demand; it is not notified).
    pub const SHELL: Channel = Channel::new(2);
    /// The setvar symbols of the ring maps: (vaddr symbol, size symbol).
    pub const REGIONS: [(&str, &str); 2] = warden_driver::MANAGER_REGIONS;
    /// The device map: (vaddr symbol, size symbol, paddr symbol).
    pub const DEVICE_REGIONS: [(&str, &str, &str); 1] = [("rtc_vaddr", "rtc_size", "rtc_paddr")];
}

/// The PL031 driver.
pub struct Pl031Driver {
    region: Option<warden_microkit::DeviceRegion>,
    clock: Option<(warden_protocol::Handle, device::Pl031<DeviceRegisters>)>,
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
        if ![interface::CLIENT, interface::SHELL].contains(&channel) || message.label() != TIME {
            return MessageInfo::new(NOT_READY, 0);
        }
        match &self.clock {
            Some((_, clock)) => {
                set_mr(0, u64::from(clock.seconds()));
                MessageInfo::new(0, 1)
            }
            None => MessageInfo::new(NOT_READY, 0),
        }
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
