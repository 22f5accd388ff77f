//! Example PD (host tests): panics in `init`, so its parent's `fault` entry runs. Before that it
//! prints a line, and a line that is not UTF-8 (the launcher must print both, in order, and the
//! panic after them).

use std::io::Write;
use warden_microkit::Handler;

struct Crasher;

impl Handler for Crasher {
    type Error = &'static str;
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| -> Crasher {
        println!("crasher: starting");
        let _ = std::io::stdout().write_all(b"crasher: \xff\xfe is not UTF-8\n");
        let _ = std::io::stdout().flush();
        #[allow(clippy::panic, reason = "the example exists to fault")]
        {
            panic!("crasher: deliberate panic")
        }
    })
}
