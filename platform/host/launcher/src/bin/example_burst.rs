//! Example PD (host tests): while its peer is busy, notifies it three times on channel 0, then
//! calls it on channel 1 (which blocks until the peer has served the call).

use warden_microkit::{Channel, Handler, MessageInfo};

struct Burst;

impl Handler for Burst {
    type Error = &'static str;
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| {
        for _ in 0..3 {
            Channel::new(0).notify();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let _ = Channel::new(1).pp_call(MessageInfo::new(0, 0));
        println!("burst: the call returned");
        Burst
    })
}
