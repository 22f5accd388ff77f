//! Example PD (host tests): reads the shared region it maps read-only, then tries to write it,
//! which faults as it would on seL4.

use std::sync::atomic::Ordering;
use warden_microkit::{memory_region, ChannelSet, Handler};

struct Reader;

impl Handler for Reader {
    type Error = &'static str;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Self::Error> {
        let first = memory_region("table")
            .and_then(|table| table.first())
            .ok_or("no table")?;
        println!("reader: value {}", first.load(Ordering::Acquire));
        println!("reader: now writing to a read-only map");
        first.store(7, Ordering::Relaxed);
        println!("reader: the write went through (it must not)");
        Ok(())
    }
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| Reader)
}
