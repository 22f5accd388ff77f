//! Example PD (host tests): calls its server on channel 1 in `init`. In its first start a thread
//! of its aborts the process 100 ms into the call, while the (busy) server has not taken it yet;
//! its parent restarts it, and the second start calls again. The first start's call must be
//! cancelled, not served for a process that is gone.

use warden_microkit::{Channel, Handler, MessageInfo};

struct Caller;

impl Handler for Caller {
    type Error = &'static str;
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| {
        let start = warden_microkit::incarnation();
        if start == 1 {
            std::thread::spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(100));
                std::process::abort();
            });
        }
        let _ = Channel::new(1).pp_call(MessageInfo::new(0, 0));
        println!("caller: the call of start {start} returned");
        Caller
    })
}
