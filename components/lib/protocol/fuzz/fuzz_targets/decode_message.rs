//! Fuzz target: `warden_protocol::fuzzing::decode_message` on arbitrary input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    warden_protocol::fuzzing::decode_message(data);
});
