//! Benchmark PD: the manager's side of a probe, and nothing else. It takes one driver PD's
//! registration (a call on channel 1), then sends it `Probe` and `Remove` in turn on the
//! manager → driver ring and waits for each `CallbackDone` on the driver → manager ring, as
//! the device manager does: [`ROUNDS`] callbacks, each a manager → driver → manager round trip
//! over the rings with a notification each way.
use warden_host_bench::Samples;
use warden_microkit::{Channel, ChannelSet, Handler, MessageInfo};
use warden_protocol::ring::SLOT_BYTES;
use warden_protocol::{ppc, Consumer, Message, Producer, RingMemory, Status};
use warden_vocabulary::{CallbackId, DeviceId, DriverId, MatchData, Outcome, Resources};

const DRIVER: Channel = Channel::new(1);
const DEVICE: DeviceId = DeviceId::from_parts(0, 1);
const DRIVER_ID: DriverId = DriverId::from_parts(0, 1);

struct Manager {
    to_driver: Producer<'static>,
    from_driver: Consumer<'static>,
    samples: Samples,
    sequence: u64,
    done: bool,
}

fn ring(symbol: &str) -> RingMemory<'static> {
    warden_microkit::memory_region_words(symbol)
        .and_then(|words| RingMemory::over(words).ok())
        .unwrap_or_else(|| warden_microkit::fatal(format_args!("bench: no ring '{symbol}'")))
}

impl Manager {
    /// The next callback: a probe, then a remove, and so on.
    fn send_next(&mut self) {
        self.sequence += 1;
        let callback = CallbackId::from_parts(1, self.sequence);
        let message = if self.sequence % 2 == 1 {
            Message::Probe {
                callback,
                device: DEVICE,
                driver: DRIVER_ID,
                match_data: MatchData::compatible("arm,pl011").unwrap_or_default(),
                resources: Resources::default(),
            }
        } else {
            Message::Remove {
                callback,
                device: DEVICE,
            }
        };
        let mut bytes = [0u8; SLOT_BYTES];
        let Ok(length) = warden_protocol::encode(0, &message, &mut bytes) else {
            warden_microkit::fatal(format_args!("bench: cannot encode {message:?}"));
        };
        self.samples.start();
        if self
            .to_driver
            .try_push(bytes.get(..length).unwrap_or_default())
            .is_err()
        {
            warden_microkit::fatal(format_args!("bench: the driver's ring is full"));
        }
        if self.to_driver.signal_needed() {
            DRIVER.notify();
        }
    }
}

impl Handler for Manager {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if !channels.contains(DRIVER) {
            return Ok(());
        }
        let mut bytes = [0u8; SLOT_BYTES];
        while let Ok(Some(length)) = self.from_driver.pop_or_arm(&mut bytes) {
            match warden_protocol::decode(bytes.get(..length).unwrap_or_default()) {
                Ok((_, Message::CallbackDone { .. })) if !self.done => {
                    if self.samples.stop() {
                        println!("{}", self.samples.line("probe"));
                        self.done = true;
                    } else {
                        self.send_next();
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn protected(
        &mut self,
        _channel: Channel,
        message: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        let registers: Vec<u64> = (0..usize::from(message.count()))
            .map(warden_microkit::get_mr)
            .collect();
        let info = ppc::MessageInfo {
            label: message.label(),
            count: u16::from(message.count()),
        };
        let registered = matches!(
            ppc::decode_call(info, &registers),
            Ok(Message::Register { .. })
        );
        let reply = Message::Completion {
            status: if registered {
                Status::Ok
            } else {
                Status::NotPermitted
            },
            detail: 0,
            outcome: if registered {
                Outcome::Driver {
                    driver: DRIVER_ID,
                    bound: 0,
                }
            } else {
                Outcome::Done
            },
        };
        let mut words = [0u64; ppc::MAX_REGISTERS];
        let Ok(reply_info) = ppc::encode_call(&reply, &mut words) else {
            return Err("cannot encode the completion");
        };
        for (index, word) in words.iter().take(usize::from(reply_info.count)).enumerate() {
            warden_microkit::set_mr(index, *word);
        }
        if registered {
            // The driver drains its ring once registered, in its `init`.
            self.send_next();
        }
        Ok(MessageInfo::new(reply_info.label, reply_info.count as u8))
    }
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| {
        let from_driver = Consumer::new(ring("from_driver"));
        // The driver notifies only when asked to (as the device manager asks at start).
        let _empty = from_driver.arm_signal();
        Manager {
            to_driver: Producer::new(ring("to_driver")),
            from_driver,
            samples: Samples::default(),
            sequence: 0,
            done: false,
        }
    })
}
