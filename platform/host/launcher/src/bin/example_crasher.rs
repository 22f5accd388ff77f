//! Example PD (host tests): panics in `init`, so its parent's `fault` entry runs.

use warden_microkit::Handler;

struct Crasher;

impl Handler for Crasher {
    type Error = &'static str;
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| -> Crasher {
        println!("crasher: starting");
        #[allow(clippy::panic, reason = "the example exists to fault")]
        {
            panic!("crasher: deliberate panic")
        }
    })
}
