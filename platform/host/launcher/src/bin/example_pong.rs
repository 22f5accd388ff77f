//! Example PD (host tests): answers every notification on channel 0 with one back.

use warden_microkit::{Channel, ChannelSet, Handler};

const PING: Channel = Channel::new(0);

struct Pong;

impl Handler for Pong {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        for channel in channels.iter() {
            println!("pong: notified on channel {}", channel.index());
            PING.notify();
        }
        Ok(())
    }
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| Pong)
}
