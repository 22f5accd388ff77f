//! Example PD (host tests): doubles the number in message register 0 of every call.

use warden_microkit::{get_mr, set_mr, Channel, Handler, MessageInfo};

struct Server {
    calls: u64,
}

impl Handler for Server {
    type Error = &'static str;

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
        set_mr(0, get_mr(0) * 2);
        Ok(MessageInfo::new(0, 1))
    }
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| Server { calls: 0 })
}
