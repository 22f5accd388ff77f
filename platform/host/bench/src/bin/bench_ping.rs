//! Benchmark PD: notifies its peer on channel 0 and waits for the answer, [`ROUNDS`] times.
use warden_host_bench::Samples;
use warden_microkit::{Channel, ChannelSet, Handler};

const PEER: Channel = Channel::new(0);

struct Ping(Samples, bool);

impl Handler for Ping {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if !channels.contains(PEER) || self.1 {
            return Ok(());
        }
        if self.0.stop() {
            println!("{}", self.0.line("notify"));
            self.1 = true;
            return Ok(());
        }
        self.0.start();
        PEER.notify();
        Ok(())
    }
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| {
        let mut samples = Samples::default();
        samples.start();
        PEER.notify();
        Ping(samples, false)
    })
}
