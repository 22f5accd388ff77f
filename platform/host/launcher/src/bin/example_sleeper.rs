//! Example PD (host tests): sleeps half a second in `init` (busy, as a PD in a long entry point),
//! then reports each entry it runs, in order.

use warden_microkit::{Channel, ChannelSet, Handler, MessageInfo};

struct Sleeper;

impl Handler for Sleeper {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        println!("sleeper: notified, channels 0x{:x}", channels.bits());
        Ok(())
    }

    fn protected(
        &mut self,
        channel: Channel,
        _message: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        println!("sleeper: called on channel {}", channel.index());
        Ok(MessageInfo::new(0, 0))
    }
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| {
        std::thread::sleep(std::time::Duration::from_millis(500));
        Sleeper
    })
}
