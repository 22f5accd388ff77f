//! Example PD (host tests): starts a ping-pong over channel 0 and counts five round trips.

use warden_microkit::{Channel, ChannelSet, Handler};

const PONG: Channel = Channel::new(0);
const ROUNDS: u32 = 5;

struct Ping {
    rounds: u32,
}

impl Handler for Ping {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if !channels.contains(PONG) {
            return Err("notified on an unexpected channel");
        }
        self.rounds += 1;
        println!("ping: pong {} received", self.rounds);
        if self.rounds < ROUNDS {
            PONG.notify();
        } else {
            println!("ping: done after {ROUNDS} round trips");
        }
        Ok(())
    }
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| {
        println!("ping: init");
        PONG.notify();
        Ping { rounds: 0 }
    })
}
