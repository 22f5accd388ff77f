//! Timer driver PDs: the time since start-up and one timeout per client
//! (`warden_services::timer`, sDDF's timer protocol), from the ARM generic timer on QEMU virt
//! ([`generic`]) or the Meson timer on the Odroid C4 ([`meson`]). The device manager gets its
//! time from here: callback deadlines, heartbeats and restart backoffs all count on it.
//!
//! A timer PD is a trusted PD of the system (like the log printer), not one of the manager's
//! driver PDs: the manager calls it (so it has the higher priority), and a PD the manager calls
//! cannot be supervised by it. Both drivers are written once against
//! `warden_registers::Registers` and run on both platforms (on the host against the launcher's
//! models of the same timers).
//!
//! Channels: [`interface::IRQ`] is the timer's interrupt; every other channel is a client
//! (it calls; this end notifies it when its timeout is due).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod generic;
pub mod meson;

use log::warn;
use warden_microkit::{Channel, ChannelSet, Handler, MessageInfo};
use warden_services::timer::{self, Call, Timeouts};
use warden_vocabulary::Instant;

/// What these PDs expect of the system description.
pub mod interface {
    /// The timer's interrupt (INTID 30 for the generic timer, 42 for the Meson timer's A).
    pub use warden_interface::timer::IRQ;

    /// The Meson timer's device map: (vaddr symbol, size symbol, paddr symbol).
    pub const MESON_REGION: (&str, &str, &str) = warden_interface::timer::TIMER;
}

/// A timer device: a clock and one programmable interrupt.
pub trait Hardware {
    /// The time since the timer started.
    fn now(&self) -> Instant;
    /// Programs the interrupt for `at` (`None`: no interrupt wanted), `now` being now. The
    /// device may interrupt earlier than `at` (a timer with a short range): the PD then
    /// programs it again.
    fn arm(&mut self, at: Option<Instant>, now: Instant);
    /// The interrupt fired: quiet the device (before the interrupt is acknowledged).
    fn interrupted(&mut self);
}

/// A timer PD over its hardware (see the crate docs).
pub struct TimerPd<H: Hardware> {
    hardware: H,
    timeouts: Timeouts,
}

impl<H: Hardware> TimerPd<H> {
    /// The PD over `hardware`, with no timeout set.
    pub fn new(mut hardware: H) -> Self {
        let now = hardware.now();
        hardware.arm(None, now);
        Self {
            hardware,
            timeouts: Timeouts::new(),
        }
    }

    /// Notifies every client whose timeout is due, then programs the next interrupt.
    fn expire(&mut self) {
        let now = self.hardware.now();
        self.timeouts.expire(now, Channel::notify);
        self.hardware.arm(self.timeouts.next(), now);
    }

    /// The hardware.
    pub fn hardware(&self) -> &H {
        &self.hardware
    }
}

impl<H: Hardware> Handler for TimerPd<H> {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(interface::IRQ) {
            self.hardware.interrupted();
            interface::IRQ.irq_ack();
        }
        self.expire();
        Ok(())
    }

    fn protected(
        &mut self,
        channel: Channel,
        message: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        Ok(match timer::receive(message) {
            Call::Time => timer::reply_time(self.hardware.now()),
            Call::Timeout(after) => {
                let now = self.hardware.now();
                self.timeouts.set(channel, now, after);
                self.expire();
                timer::reply_empty()
            }
            Call::Unknown(label) => {
                warn!(
                    "timer: unknown call {label} on channel {}; refused",
                    channel.index()
                );
                timer::reply_empty()
            }
        })
    }
}

/// The generic timer's PD `init`.
#[must_use]
pub fn generic_init() -> TimerPd<generic::GenericTimer<warden_microkit::system_timer::SystemTimer>>
{
    let timer = generic::GenericTimer::new(warden_microkit::system_timer::SystemTimer::new());
    log::info!(
        "timer: ARM generic timer at {} Hz; serving the time and timeouts",
        timer.frequency()
    );
    TimerPd::new(timer)
}

/// The Meson timer's PD `init`.
#[must_use]
pub fn meson_init() -> TimerPd<meson::MesonTimer<warden_microkit::DeviceRegisters>> {
    let region = warden_microkit::device_region!(timer_vaddr, timer_size, timer_paddr);
    let registers = region.and_then(|region| {
        region.registers(warden_vocabulary::MmioWindow {
            base: region.window.base + meson::REGISTERS_OFFSET,
            size: meson::REGISTERS_BYTES,
        })
    });
    let Some(registers) = registers else {
        warden_microkit::fatal(format_args!(
            "timer: no Meson timer page mapped (timer_vaddr, timer_size, timer_paddr)"
        ));
    };
    log::info!("timer: Meson timer A and E (1 us); serving the time and timeouts");
    TimerPd::new(meson::MesonTimer::new(registers))
}
