//! Example PD (host tests): writes into a shared region, then tells the reader.

use std::sync::atomic::Ordering;
use warden_microkit::{memory_region, setvar, Channel, Handler};

const READER: Channel = Channel::new(0);

struct Writer;

impl Handler for Writer {
    type Error = &'static str;
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| {
        if let Some(table) = memory_region("table") {
            if let Some(first) = table.first() {
                first.store(42, Ordering::Release);
            }
            println!(
                "writer: wrote 42 into {} bytes at 0x{:x}",
                table.len(),
                setvar("table").unwrap_or(0)
            );
        }
        READER.notify();
        Writer
    })
}
