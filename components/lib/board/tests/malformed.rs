//! Untrusted blobs: truncated, bit-flipped and made-up device trees give errors (or devices),
//! never a panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::sync::OnceLock;

use common::{board_dtb, compact, read_everything};
use proptest::prelude::*;
use warden_board::{Board, BoardError};

fn qemu_blob() -> &'static [u8] {
    static BLOB: OnceLock<Vec<u8>> = OnceLock::new();
    BLOB.get_or_init(|| compact(&board_dtb("qemu_virt_aarch64")))
}

fn odroid_blob() -> &'static [u8] {
    static BLOB: OnceLock<Vec<u8>> = OnceLock::new();
    BLOB.get_or_init(|| board_dtb("odroidc4"))
}

fn word(blob: &[u8], index: usize) -> u32 {
    u32::from_be_bytes(blob[index * 4..index * 4 + 4].try_into().unwrap())
}

fn set_word(blob: &mut [u8], index: usize, value: u32) {
    blob[index * 4..index * 4 + 4].copy_from_slice(&value.to_be_bytes());
}

/// A deterministic generator, so that a failure reproduces.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

#[test]
fn the_compact_qemu_blob_reads_like_the_whole_one() {
    let whole = board_dtb("qemu_virt_aarch64");
    let whole_board = Board::new(&whole).unwrap();
    let compact_board = Board::new(qemu_blob()).unwrap();
    let names = |board: &Board<'_>| -> Vec<String> {
        board
            .devices()
            .map(|item| item.unwrap().path_name.to_owned())
            .collect()
    };
    assert_eq!(names(&whole_board), names(&compact_board));
}

#[test]
fn every_prefix_of_the_qemu_blob_is_refused_as_truncated() {
    let blob = qemu_blob();
    for length in 0..blob.len() {
        match Board::new(&blob[..length]) {
            Err(BoardError::Truncated { available, .. }) => assert_eq!(available, length),
            other => panic!("prefix of {length} bytes: {other:?}"),
        }
    }
}

#[test]
fn every_cut_of_the_structure_block_is_refused_without_panicking() {
    // Keep the header consistent with the cut (sizes and offsets patched), so that the
    // structure walk itself meets the truncated token stream.
    let blob = qemu_blob();
    let (off_struct, off_strings) = (word(blob, 2) as usize, word(blob, 3) as usize);
    let (size_struct, size_strings) = (word(blob, 9) as usize, word(blob, 8) as usize);
    let structure = &blob[off_struct..off_struct + size_struct];
    let strings = &blob[off_strings..off_strings + size_strings];
    for cut in 0..size_struct {
        let mut cut_blob = blob[..off_struct].to_vec();
        cut_blob.extend_from_slice(&structure[..cut]);
        let new_strings = cut_blob.len();
        cut_blob.extend_from_slice(strings);
        let total = cut_blob.len();
        set_word(&mut cut_blob, 1, total as u32);
        set_word(&mut cut_blob, 3, new_strings as u32);
        set_word(&mut cut_blob, 8, size_strings as u32);
        set_word(&mut cut_blob, 9, cut as u32);
        let result = Board::new(&cut_blob);
        assert!(
            matches!(result, Err(BoardError::Malformed { .. })),
            "cut at {cut}: {result:?}"
        );
    }
}

/// Mutations that hit the structure block's grammar as well as its bytes.
fn mutate(blob: &mut [u8], random: &mut XorShift) {
    let words = blob.len() / 4;
    for _ in 0..=random.below(4) {
        match random.below(5) {
            0 => {
                let at = random.below(blob.len());
                blob[at] ^= 1 << random.below(8);
            }
            1 => {
                let at = random.below(blob.len());
                blob[at] = random.next() as u8;
            }
            // A token where data was, or data where a token was.
            2 => {
                let tokens = [1, 2, 3, 4, 9, 0, 0xffff_ffff];
                set_word(
                    blob,
                    random.below(words),
                    tokens[random.below(tokens.len())],
                );
            }
            // Lengths, cells counts and offsets: small, near a boundary, or huge.
            3 => {
                let values = [
                    0,
                    1,
                    2,
                    3,
                    4,
                    5,
                    8,
                    0x10,
                    0x7fff_ffff,
                    0xffff_fff0,
                    0xffff_ffff,
                ];
                set_word(
                    blob,
                    random.below(words),
                    values[random.below(values.len())],
                );
            }
            // The header.
            _ => {
                let value = match random.below(3) {
                    0 => random.next() as u32,
                    1 => word(blob, random.below(10)),
                    _ => (blob.len() as u32)
                        .wrapping_add(random.below(9) as u32)
                        .wrapping_sub(4),
                };
                set_word(blob, 1 + random.below(9), value);
            }
        }
    }
}

#[test]
fn thousands_of_mutated_blobs_give_errors_or_devices() {
    for (seed, blob) in [(0x5eed_0001_u64, qemu_blob()), (0x5eed_0002, odroid_blob())] {
        let mut random = XorShift(seed);
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..4000 {
            let mut mutated = blob.to_vec();
            mutate(&mut mutated, &mut random);
            match read_everything(&mutated) {
                Ok(_) => accepted += 1,
                Err(_) => refused += 1,
            }
        }
        println!("mutations: {accepted} blobs accepted, {refused} refused");
        assert!(
            accepted > 0 && refused > 0,
            "the mutations reach both outcomes"
        );
    }
}

#[test]
fn header_faults_have_their_own_errors() {
    let blob = odroid_blob();
    assert_eq!(
        Board::new(&[]).unwrap_err(),
        BoardError::Truncated {
            needed: 40,
            available: 0
        }
    );

    let mut bad = blob.to_vec();
    bad[0] = 0;
    assert!(matches!(
        Board::new(&bad),
        Err(BoardError::BadMagic { found: 0x000d_feed })
    ));

    let mut bad = blob.to_vec();
    set_word(&mut bad, 5, 16);
    assert!(matches!(
        Board::new(&bad),
        Err(BoardError::UnsupportedVersion { version: 16, .. })
    ));

    let mut bad = blob.to_vec();
    set_word(&mut bad, 2, word(blob, 1) - 4);
    assert!(matches!(
        Board::new(&bad),
        Err(BoardError::BadHeader {
            field: "off_dt_struct/size_dt_struct"
        })
    ));

    let mut bad = blob.to_vec();
    set_word(&mut bad, 8, 0xffff_ffff);
    assert!(matches!(
        Board::new(&bad),
        Err(BoardError::BadHeader {
            field: "off_dt_strings/size_dt_strings"
        })
    ));

    let mut bad = blob.to_vec();
    set_word(&mut bad, 1, word(blob, 1) + 1);
    let error = Board::new(&bad).unwrap_err();
    assert_eq!(
        error,
        BoardError::Truncated {
            needed: blob.len() + 1,
            available: blob.len()
        }
    );
    assert!(error.to_string().contains("truncated"));

    // A blob with trailing bytes past `totalsize` (a bootloader's buffer) is fine.
    let mut padded = blob.to_vec();
    padded.extend_from_slice(&[0xa5; 64]);
    assert!(Board::new(&padded).is_ok());
}

proptest! {
    // No regression file: proptest cannot place one for an integration test, and a failure
    // prints its minimal input.
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = read_everything(&bytes);
    }

    #[test]
    fn arbitrary_blocks_behind_a_plausible_header_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        struct_offset in 40_u32..80,
        struct_size in 0_u32..600,
        strings_offset in 0_u32..600,
        strings_size in 0_u32..64,
    ) {
        let mut blob = Vec::new();
        let total = 40 + body.len() as u32;
        for value in [0xd00d_feed, total, struct_offset, strings_offset, 40, 17, 16, 0,
                      strings_size, struct_size] {
            blob.extend_from_slice(&u32::to_be_bytes(value));
        }
        blob.extend_from_slice(&body);
        let _ = read_everything(&blob);
    }

    #[test]
    fn arbitrary_edits_of_the_odroid_blob_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let mut blob = odroid_blob().to_vec();
        for (index, value) in edits {
            let at = index.index(blob.len());
            blob[at] = value;
        }
        let _ = read_everything(&blob);
    }
}
