//! Example PD (host tests): calls the server on channel 1 with a number and prints the reply.

use warden_microkit::{get_mr, set_mr, Channel, Handler, MessageInfo};

const SERVER: Channel = Channel::new(1);

struct Client;

impl Handler for Client {
    type Error = &'static str;
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| {
        for value in [20, 21] {
            set_mr(0, value);
            let reply = SERVER.pp_call(MessageInfo::new(1, 1));
            println!(
                "client: {value} * 2 = {} (label {})",
                get_mr(0),
                reply.label()
            );
        }
        Client
    })
}
