//! A driver PD that registers for `arm,pl011` and accepts every probe without touching the
//! hardware: the smallest user of [`warden_driver`], kept for the restart demonstration
//! (`platform/qemu_virt_aarch64/restart_demo.xml`: `make qemu PD_FEATURES=demo-driver/crash-once`
//! or `PD_FEATURES=demo-driver/hang-once` on seL4, `make sim SYSTEM=restart-demo` on the host
//! platform).
//!
//! Channel 0 — the device manager; rings `from_manager` and `to_manager` (see
//! [`warden_driver`]'s conventions and [`interface`]).
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod hostile;

use log::info;
use warden_driver::{Answer, Callback, Driver, DriverPd, Probe};

/// What this PD expects of the system description.
pub mod interface {
    use warden_microkit::Channel;

    /// The channel to the device manager (this end calls it to register; both sides notify).
    pub const MANAGER: Channel = warden_interface::demo_driver::MANAGER;
    /// The setvar symbols of the maps this PD needs: (vaddr symbol, size symbol).
    pub const REGIONS: [(&str, &str); 2] = [
        warden_interface::demo_driver::FROM_MANAGER,
        warden_interface::demo_driver::TO_MANAGER,
    ];
}

/// The demo driver.
pub struct DemoDriver;

impl Driver for DemoDriver {
    fn name(&self) -> &str {
        "demo-uart"
    }

    fn compatible(&self) -> &[&str] {
        &["arm,pl011"]
    }

    fn probe(&mut self, probe: &Probe) -> Answer {
        #[cfg(feature = "crash-once")]
        crash_once();
        #[cfg(feature = "hang-once")]
        hang_once();
        info!(
            "driver: probe of device {} ({}): bound",
            probe.callback.device,
            probe.compatible()
        );
        Answer::Ok
    }

    fn remove(&mut self, _callback: &Callback) -> Answer {
        Answer::Ok
    }
}

/// Fault injection (feature `crash-once`): panics in the PD's first life, so that its parent,
/// the device manager, cleans up after it and restarts it; the next incarnation binds. The same
/// on both platforms ([`warden_microkit::incarnation`]: on seL4 a restart keeps memory, on the
/// host it is a new process).
#[cfg(feature = "crash-once")]
fn crash_once() {
    if warden_microkit::incarnation() == 1 {
        #[allow(clippy::panic, reason = "fault injection: the feature exists to panic")]
        {
            panic!("driver: crash-once: deliberate panic in the first probe")
        }
    }
}

/// Fault injection (feature `hang-once`): in the PD's first life the probe never returns (it
/// spins), so that the manager's deadline for it passes: the manager stops the PD, cleans up
/// after it and restarts it; the next incarnation binds.
#[cfg(feature = "hang-once")]
fn hang_once() {
    if warden_microkit::incarnation() == 1 {
        log::warn!("driver: hang-once: hanging in the first probe");
        loop {
            #[cfg(not(target_os = "none"))]
            std::thread::sleep(core::time::Duration::from_millis(100));
            #[cfg(target_os = "none")]
            core::hint::spin_loop();
        }
    }
}

/// The PD's `init`.
#[must_use]
pub fn init() -> DriverPd<DemoDriver> {
    DriverPd::start(DemoDriver)
}
