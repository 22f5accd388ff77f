//! A driver PD that registers for `arm,pl011` and accepts every probe without touching the
//! hardware: it exercises registration (a protected procedure call into the manager) and the
//! probe/reply path over the rings, until the real drivers arrive.
//!
//! Channel 0 — the device manager (this end may call it). Memory: `from_manager` (ring,
//! manager → driver), `to_manager` (ring, driver → manager). See [`interface`].
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use log::info;

use warden_microkit::{fatal, get_mr, set_mr, ChannelSet, Handler, MessageInfo};
use warden_protocol::ppc::{decode_call, encode_call, MAX_REGISTERS};
use warden_protocol::ring::SLOT_BYTES;
use warden_protocol::{
    CallbackId, Compatible, Consumer, MatchEntry, Message, Outbox, Producer, RingMemory, Status,
};

/// What this PD expects of the system description.
pub mod interface {
    use warden_microkit::Channel;

    /// The channel to the device manager (this end calls it to register; both sides notify).
    pub const MANAGER: Channel = Channel::new(0);
    /// The setvar symbols of the maps this PD needs: (vaddr symbol, size symbol).
    pub const REGIONS: [(&str, &str); 2] = [
        ("from_manager", "from_manager_size"),
        ("to_manager", "to_manager_size"),
    ];
}

use interface::MANAGER;
const RING_CAPACITY: u32 = 15;

/// The ring in the region mapped as `symbol`; a PD without it cannot run.
fn ring(
    symbol: &str,
    words: Option<&'static [core::sync::atomic::AtomicU32]>,
) -> RingMemory<'static> {
    let words = words.unwrap_or_else(|| {
        fatal(format_args!(
            "driver: no memory region mapped as '{symbol}'"
        ))
    });
    RingMemory::new(words, RING_CAPACITY)
        .unwrap_or_else(|error| fatal(format_args!("driver: ring '{symbol}': {error:?}")))
}

/// The demo driver PD's handler.
pub struct DemoDriver {
    from_manager: Consumer<'static>,
    /// Replies, queued while the ring is full: a lost reply would leave the device locked by
    /// its callback.
    to_manager: Outbox<'static>,
}

impl DemoDriver {
    fn reply(&mut self, callback: CallbackId) {
        let message = Message::CallbackDone {
            callback,
            status: Status::Ok,
            detail: 0,
        };
        match self.to_manager.send(0, &message) {
            Ok(true) => MANAGER.notify(),
            Ok(false) => {}
            Err(error) => log::error!("driver: cannot encode a reply: {error:?}"),
        }
    }
}

impl Handler for DemoDriver {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(MANAGER) {
            self.drain()?;
            // The manager also signals when it has made room on our ring.
            if self.to_manager.flush() {
                MANAGER.notify();
            }
        }
        Ok(())
    }
}

impl DemoDriver {
    /// Handles every message on the manager's ring, then asks for a notification for the next.
    fn drain(&mut self) -> Result<(), &'static str> {
        let mut buffer = [0u8; SLOT_BYTES];
        loop {
            match self.from_manager.pop_or_arm(&mut buffer) {
                Ok(Some(length)) => {
                    match warden_protocol::decode(buffer.get(..length).unwrap_or_default()) {
                        Ok((
                            _,
                            Message::Probe {
                                callback,
                                device,
                                match_data,
                                ..
                            },
                        )) => {
                            let name = match_data
                                .compatible
                                .first()
                                .map(|name| name.as_str())
                                .unwrap_or("?");
                            #[cfg(feature = "crash-once")]
                            crash_once();
                            info!(
                                "driver: probe of device {}:{} ({name}): bound",
                                device.index, device.generation
                            );
                            self.reply(callback);
                        }
                        Ok((
                            _,
                            Message::Remove { callback, .. }
                            | Message::Suspend { callback, .. }
                            | Message::Resume { callback, .. }
                            | Message::Shutdown { callback, .. },
                        )) => self.reply(callback),
                        Ok((_, other)) => info!("driver: unexpected message {other:?}"),
                        Err(error) => info!("driver: malformed message {error:?}"),
                    }
                }
                Ok(None) => return Ok(()),
                Err(_) => return Err("the manager's ring is corrupt"),
            }
        }
    }
}

fn register() {
    let mut match_table = heapless::Vec::new();
    if let Ok(name) = Compatible::try_from("arm,pl011") {
        let _ = match_table.push(MatchEntry::Compatible(name));
    }
    let message = Message::Register {
        name: "demo-uart".try_into().unwrap_or_default(),
        match_table,
    };
    let mut registers = [0u64; MAX_REGISTERS];
    let Ok(info) = encode_call(&message, &mut registers) else {
        return;
    };
    for (index, value) in registers.iter().take(usize::from(info.count)).enumerate() {
        set_mr(index, *value);
    }
    info!("driver: registering 'demo-uart' for arm,pl011");
    let reply = MANAGER.pp_call(MessageInfo::new(info.label, info.count as u8));
    let count = usize::from(reply.count()).min(MAX_REGISTERS);
    let words: Vec<u64> = (0..count).map(get_mr).collect();
    let info = warden_protocol::ppc::MessageInfo {
        label: reply.label(),
        count: count as u16,
    };
    match decode_call(info, &words) {
        Ok(Message::Completion { status, .. }) => {
            info!("driver: registration answered {status:?}")
        }
        other => info!("driver: unexpected registration reply {other:?}"),
    }
}

/// Fault injection (feature `crash-once`): panics the first time it runs in this PD's memory.
/// On seL4 a restart does not restore memory, so the flag survives and the restarted driver
/// goes on; that is the point of the demonstration (and the reason it is seL4-only).
#[cfg(feature = "crash-once")]
fn crash_once() {
    use core::sync::atomic::{AtomicBool, Ordering};
    static CRASHED: AtomicBool = AtomicBool::new(false);
    if !CRASHED.swap(true, Ordering::Relaxed) {
        #[allow(clippy::panic, reason = "fault injection: the feature exists to panic")]
        {
            panic!("driver: crash-once: deliberate panic in the first probe")
        }
    }
}

/// The PD's `init`: maps the rings, registers with the manager, and serves the probes that
/// the registration queued.
#[must_use]
pub fn init() -> DemoDriver {
    let from_manager = warden_microkit::memory_region_words!(from_manager, from_manager_size);
    let to_manager = warden_microkit::memory_region_words!(to_manager, to_manager_size);
    let mut driver = DemoDriver {
        from_manager: Consumer::new(ring("from_manager", from_manager)),
        to_manager: Outbox::new(Producer::new(ring("to_manager", to_manager))),
    };
    register();
    // Probes may have been queued during the registration call.
    if let Err(error) = driver.drain() {
        log::error!("driver: {error}");
    }
    driver
}
