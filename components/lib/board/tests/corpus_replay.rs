//! Replays the committed fuzz corpus (`fuzz/corpus/board_walk/`) through the entry point the
//! fuzz target calls, so every `cargo test` re-checks every blob the fuzzer kept.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::path::Path;

#[test]
fn board_walk_corpus() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/board_walk");
    let mut count = 0;
    for file in std::fs::read_dir(&directory).unwrap() {
        warden_board::fuzzing::walk(&std::fs::read(file.unwrap().path()).unwrap());
        count += 1;
    }
    assert!(
        count >= 10,
        "only {count} corpus inputs in {}",
        directory.display()
    );
}
