//! Replays the committed fuzz corpus (`fuzz/corpus/sdf_parse/`) through the entry point the
//! fuzz target calls, so every `cargo test` re-checks every input the fuzzer kept.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::Path;

#[test]
fn sdf_parse_corpus() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/sdf_parse");
    let mut count = 0;
    for file in std::fs::read_dir(&directory).unwrap() {
        warden_system::fuzzing::parse(&std::fs::read(file.unwrap().path()).unwrap());
        count += 1;
    }
    assert!(
        count >= 50,
        "only {count} corpus inputs in {}",
        directory.display()
    );
}
