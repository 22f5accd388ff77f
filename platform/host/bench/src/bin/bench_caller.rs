//! Benchmark PD: calls its (higher-priority) peer on channel 0, [`ROUNDS`] times, in `init`.
use warden_host_bench::Samples;
use warden_microkit::{Channel, Handler, MessageInfo};

const PEER: Channel = Channel::new(0);

struct Caller;

impl Handler for Caller {
    type Error = &'static str;
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| {
        let mut samples = Samples::default();
        let mut value = 0u64;
        loop {
            samples.start();
            warden_microkit::set_mr(0, value);
            let reply = PEER.pp_call(MessageInfo::new(7, 1));
            let answer = warden_microkit::get_mr(0);
            if reply.label() != 7 || answer != value.wrapping_add(1) {
                println!(
                    "bench: ppc wrong reply: label {} value {answer}",
                    reply.label()
                );
                break;
            }
            value = answer;
            if samples.stop() {
                println!("{}", samples.line("ppc"));
                break;
            }
        }
        Caller
    })
}
