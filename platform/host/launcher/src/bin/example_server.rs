//! Example PD (host tests): doubles the number in message register 0 of every call. A client's
//! notifications are ignored (its end may notify; the default handler would panic).

use warden_microkit::{get_mr, set_mr, Channel, ChannelSet, Handler, MessageInfo};

struct Server {
    calls: u64,
}

impl Handler for Server {
    type Error = &'static str;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Self::Error> {
        Ok(())
    }

    fn protected(
        &mut self,
        channel: Channel,
        message: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        if message.count() != 1 {
            return Ok(MessageInfo::new(1, 0));
        }
        self.calls += 1;
        println!("server: call {} on channel {}", self.calls, channel.index());
        set_mr(0, get_mr(0).wrapping_mul(2));
        Ok(MessageInfo::new(0, 1))
    }
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| Server { calls: 0 })
}
