//! Entry points shared by the `cargo fuzz` targets (`fuzz/`) and the corpus replay test, so
//! that the committed corpus is checked by every `cargo test`. Each one must not panic on any
//! input; where a decode succeeds it also checks that the encoding is canonical. Their
//! assertions are the fuzzers' oracles, so this module may panic by design.
#![allow(clippy::panic, reason = "a fuzz oracle reports a bug by panicking")]

use crate::message::{decode, encode};
use crate::ppc::{decode_call, encode_call, MessageInfo, MAX_REGISTERS};
use crate::ring::{Consumer, RingError, RingMemory, RingStorage, SLOT_BYTES};
use crate::sync::Ordering;

/// Decodes arbitrary bytes as a queued message; what decodes must re-encode to the same bytes.
///
/// # Panics
/// If a decoded message does not re-encode to its input (a bug the fuzzer reports).
pub fn decode_message(data: &[u8]) {
    if let Ok((request_id, message)) = decode(data) {
        let mut buffer = [0u8; 1024];
        let length = encode(request_id, &message, &mut buffer).unwrap_or(0);
        assert_eq!(
            buffer.get(..length),
            Some(data),
            "non-canonical encoding accepted"
        );
    }
}

/// Decodes arbitrary bytes as a protected procedure call: the first 10 bytes are the label
/// (8) and the count (2), the rest the registers.
///
/// # Panics
/// If a decoded call does not re-encode to its input.
pub fn decode_call_registers(data: &[u8]) {
    let mut head = [0u8; 10];
    for (to, from) in head.iter_mut().zip(data) {
        *to = *from;
    }
    let [l0, l1, l2, l3, l4, l5, l6, l7, c0, c1] = head;
    let info = MessageInfo {
        label: u64::from_le_bytes([l0, l1, l2, l3, l4, l5, l6, l7]),
        count: u16::from_le_bytes([c0, c1]),
    };
    let mut registers = [0u64; MAX_REGISTERS];
    let mut given = 0;
    for (register, chunk) in registers
        .iter_mut()
        .zip(data.get(10..).unwrap_or(&[]).chunks(8))
    {
        let mut word = [0u8; 8];
        for (to, from) in word.iter_mut().zip(chunk) {
            *to = *from;
        }
        *register = u64::from_le_bytes(word);
        given += 1;
    }
    if let Ok(message) = decode_call(info, registers.get(..given).unwrap_or(&[])) {
        let mut again = [0u64; MAX_REGISTERS];
        let encoded = encode_call(&message, &mut again).ok();
        assert_eq!(encoded, Some(info), "message info not canonical");
        let count = usize::from(info.count);
        assert_eq!(
            again.get(..count),
            registers.get(..count),
            "registers not canonical"
        );
    }
}

/// A hostile producer: the input is a script of writes of any value to any word of a 2-slot
/// ring (header included), interleaved with pops by an honest consumer. The consumer must never
/// panic, read out of bounds, return a length beyond a slot, or loop.
///
/// # Panics
/// If the consumer returns an impossible result.
pub fn hostile_producer(data: &[u8]) {
    // Two slots: 260 words, nearly all reachable by the script's one-byte word index.
    const CAPACITY: u32 = 2;
    const WORDS: usize = RingMemory::words_needed(CAPACITY);
    let storage = RingStorage::<WORDS>::new();
    let Ok(memory) = RingMemory::new(storage.words(), CAPACITY) else {
        return;
    };
    let mut consumer = Consumer::new(memory);
    let mut out = [0u8; SLOT_BYTES];
    for step in data.chunks(6) {
        let [selector, word, b0, b1, b2, b3] = match *step {
            [a, b, c, d, e, f] => [a, b, c, d, e, f],
            _ => return,
        };
        if selector % 4 == 0 {
            // Pop until empty or an error, at most one ring's worth plus one.
            for _ in 0..=CAPACITY {
                match consumer.try_pop(&mut out) {
                    Ok(Some(length)) => assert!(length <= SLOT_BYTES),
                    Ok(None) | Err(RingError::PeerIndexCorrupt { .. }) => break,
                    Err(RingError::PeerSlotCorrupt { length }) => {
                        assert!(length as usize > SLOT_BYTES);
                    }
                    Err(other) => panic!("unexpected ring error {other:?}"),
                }
            }
            let _ = consumer.arm_signal();
        } else if let Some(target) = storage.words().get(usize::from(word) % WORDS) {
            target.store(u32::from_le_bytes([b0, b1, b2, b3]), Ordering::Relaxed);
        }
    }
}
