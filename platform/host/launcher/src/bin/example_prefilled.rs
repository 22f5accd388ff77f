//! Example PD (host tests): prints the first line of the region it maps as `data`, prefilled
//! from a file (`prefill_path`), and the file's length, which the description patches into
//! `data_length` (`setvar_prefill_size`).

use std::sync::atomic::Ordering;
use warden_microkit::{memory_region, Handler};

struct Prefilled;

impl Handler for Prefilled {
    type Error = &'static str;
}

fn main() -> Result<(), warden_microkit::HostError> {
    warden_microkit::run(|| {
        let bytes: Vec<u8> = memory_region("data")
            .unwrap_or_default()
            .iter()
            .map(|byte| byte.load(Ordering::Relaxed))
            .take_while(|byte| *byte != b'\n')
            .collect();
        println!(
            "prefilled: '{}', {} bytes in the file, region of {} bytes",
            String::from_utf8_lossy(&bytes),
            warden_microkit::setvar("data_length").unwrap_or(0),
            memory_region("data").map_or(0, <[_]>::len)
        );
        Prefilled
    })
}
