//! Fuzz target: `warden_board::fuzzing::walk` on arbitrary blobs (seeded with real boards'
//! trees and hand-written ones, so the mutations reach deep into the structure block).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    warden_board::fuzzing::walk(data);
});
