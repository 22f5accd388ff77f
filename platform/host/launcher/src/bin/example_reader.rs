//! Example PD (host tests): reads the shared region it maps read-only, then, as an attacker,
//! looks for a way to write it: the run directory (where the regions were once files it could
//! open read-write), a region descriptor left open, its own memory through `/proc/self/mem`;
//! at last it writes the map, which faults as it would on seL4.

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
        attack(first.as_ptr() as u64);
        println!("reader: now writing to a read-only map");
        first.store(7, Ordering::Relaxed);
        println!("reader: the write went through (it must not)");
        Ok(())
    }
}

/// Every way around the read-only map that needs no `unsafe`, each outcome printed.
fn attack(address: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let socket = std::env::var_os("WARDEN_HOST_SOCKET").unwrap_or_default();
    let directory = std::path::Path::new(&socket)
        .parent()
        .map(std::path::Path::to_path_buf);
    let mut names: Vec<String> = directory
        .and_then(|directory| std::fs::read_dir(directory).ok())
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    println!("reader: run directory holds: {}", names.join(" "));
    let regions = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter(|target| target.to_string_lossy().contains("warden-region"))
        .count();
    println!("reader: region descriptors held: {regions}");
    let written = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/mem")
        .and_then(|mut memory| {
            memory.seek(SeekFrom::Start(address))?;
            memory.write_all(&[7])
        });
    match written {
        Ok(()) => println!("reader: /proc/self/mem wrote the read-only map (it must not)"),
        Err(error) => println!("reader: /proc/self/mem refused: {}", error.kind()),
    }
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| Reader)
}
