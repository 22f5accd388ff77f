//! Benchmark PD: answers every notification on channel 0 with one, and every call with its
//! first register plus one.
use warden_microkit::{Channel, ChannelSet, Handler, MessageInfo};

const PEER: Channel = Channel::new(0);

struct Echo;

impl Handler for Echo {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(PEER) {
            PEER.notify();
        }
        Ok(())
    }

    fn protected(
        &mut self,
        _channel: Channel,
        message: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        warden_microkit::set_mr(0, warden_microkit::get_mr(0).wrapping_add(1));
        Ok(MessageInfo::new(message.label(), 1))
    }
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| Echo)
}
