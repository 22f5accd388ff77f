//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same entry points
//! the fuzz targets call, so every `cargo test` re-checks every input the fuzzers kept.
#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::path::Path;
use warden_protocol::fuzzing;

fn replay(target: &str, entry: fn(&[u8])) {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for file in std::fs::read_dir(&directory).unwrap() {
        let path = file.unwrap().path();
        entry(&std::fs::read(&path).unwrap());
        count += 1;
    }
    assert!(
        count >= 10,
        "{target}: only {count} corpus inputs in {}",
        directory.display()
    );
}

#[test]
fn decode_message_corpus() {
    replay("decode_message", fuzzing::decode_message);
}

#[test]
fn decode_call_corpus() {
    replay("decode_call", fuzzing::decode_call_registers);
}

#[test]
fn hostile_producer_corpus() {
    replay("hostile_producer", fuzzing::hostile_producer);
}
