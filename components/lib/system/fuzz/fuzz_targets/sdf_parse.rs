//! Fuzz target: `warden_system::fuzzing::parse` on arbitrary text (seeded with every fixture of
//! `platform/host/launcher/tests/sdf` and Warden's own system descriptions): no panic, no stack
//! overflow, and no input slower than the fuzzer's timeout (`run.sh` sets 2 s).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    warden_system::fuzzing::parse(data);
});
