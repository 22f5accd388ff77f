//! A driver PD that registers for `arm,pl011` and accepts every probe without touching the
//! hardware: it exercises registration (a protected procedure call into the manager) and the
//! probe/reply path over the rings, until the real drivers arrive.
//!
//! Channel 0 — the device manager (this end may call it). Memory: `from_manager` (ring,
//! manager → driver), `to_manager` (ring, driver → manager).

use warden_microkit::{get_mr, set_mr, Channel, ChannelSet, Handler, MessageInfo};
use warden_protocol::ppc::{decode_call, encode_call, MAX_REGISTERS};
use warden_protocol::ring::SLOT_BYTES;
use warden_protocol::{
    CallbackId, Compatible, Consumer, MatchEntry, Message, Producer, RingMemory, Status,
};

const MANAGER: Channel = Channel::new(0);
const RING_CAPACITY: u32 = 15;

fn ring(symbol: &str) -> RingMemory<'static> {
    let words = warden_microkit::memory_region_words(symbol).unwrap_or_else(|| {
        eprintln!("driver: no memory region mapped as '{symbol}'");
        std::process::exit(1)
    });
    RingMemory::new(words, RING_CAPACITY).unwrap_or_else(|error| {
        eprintln!("driver: ring '{symbol}': {error:?}");
        std::process::exit(1)
    })
}

struct DemoDriver {
    from_manager: Consumer<'static>,
    to_manager: Producer<'static>,
}

impl DemoDriver {
    fn reply(&mut self, callback: CallbackId) {
        let message = Message::CallbackDone {
            callback,
            status: Status::Ok,
            detail: 0,
        };
        let mut buffer = [0u8; SLOT_BYTES];
        let Ok(length) = warden_protocol::encode(0, &message, &mut buffer) else {
            return;
        };
        if let Err(error) = self
            .to_manager
            .try_push(buffer.get(..length).unwrap_or_default())
        {
            println!("driver: cannot reply ({error:?})");
        }
        if self.to_manager.signal_needed() {
            MANAGER.notify();
        }
    }
}

impl Handler for DemoDriver {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(MANAGER) {
            self.drain()?;
        }
        Ok(())
    }
}

impl DemoDriver {
    /// Handles every message on the manager's ring, then asks for a notification for the next.
    fn drain(&mut self) -> Result<(), &'static str> {
        let mut buffer = [0u8; SLOT_BYTES];
        loop {
            match self.from_manager.try_pop(&mut buffer) {
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
                            println!(
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
                        Ok((_, other)) => println!("driver: unexpected message {other:?}"),
                        Err(error) => println!("driver: malformed message {error:?}"),
                    }
                }
                Ok(None) => {
                    if self.from_manager.arm_signal() {
                        return Ok(());
                    }
                }
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
    println!("driver: registering 'demo-uart' for arm,pl011");
    let reply = MANAGER.pp_call(MessageInfo::new(info.label, info.count as u8));
    let count = usize::from(reply.count()).min(MAX_REGISTERS);
    let words: Vec<u64> = (0..count).map(get_mr).collect();
    let info = warden_protocol::ppc::MessageInfo {
        label: reply.label(),
        count: count as u16,
    };
    match decode_call(info, &words) {
        Ok(Message::Completion { status, .. }) => {
            println!("driver: registration answered {status:?}")
        }
        other => println!("driver: unexpected registration reply {other:?}"),
    }
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| {
        let mut driver = DemoDriver {
            from_manager: Consumer::new(ring("from_manager")),
            to_manager: Producer::new(ring("to_manager")),
        };
        register();
        // Probes may have been queued during the registration call.
        if let Err(error) = driver.drain() {
            eprintln!("driver: {error}");
        }
        driver
    })
}
