//! Loom model checks of the ring: every interleaving and every reordering the memory model
//! allows, for wrap-around and for the signal flag. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p warden-protocol --release --test loom`.
#![cfg(loom)]
#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use warden_protocol::ring::{Consumer, Producer, RingMemory, RingStorage};

const CAPACITY: u32 = 2;
const WORDS: usize = RingMemory::words_needed(CAPACITY);

/// Three messages through a two-slot ring: the producer wraps around and meets backpressure;
/// the consumer sees every message once, in order, with its contents intact.
#[test]
fn wrap_around_delivers_in_order_without_tearing() {
    loom::model(|| {
        let storage = Arc::new(RingStorage::<WORDS>::new());
        let producer_storage = Arc::clone(&storage);
        let producer = thread::spawn(move || {
            let memory = RingMemory::new(producer_storage.words(), CAPACITY).unwrap();
            let mut producer = Producer::new(memory);
            for value in 1..=3u8 {
                // Full is backpressure: retry after the consumer made room.
                while producer
                    .try_push(&[value, value, value, value, value])
                    .is_err()
                {
                    thread::yield_now();
                }
            }
        });
        let memory = RingMemory::new(storage.words(), CAPACITY).unwrap();
        let mut consumer = Consumer::new(memory);
        let mut out = [0u8; 8];
        let mut expected = 1u8;
        while expected <= 3 {
            match consumer.try_pop(&mut out).unwrap() {
                Some(length) => {
                    assert_eq!(length, 5);
                    assert_eq!(out[..5], [expected; 5], "torn or reordered message");
                    expected += 1;
                }
                None => thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(consumer.try_pop(&mut out).unwrap(), None);
    });
}

/// No lost wakeup: if the consumer decides to sleep (armed the flag and saw an empty ring),
/// the producer's publish is followed by a signal.
#[test]
fn a_sleeping_consumer_is_always_signalled() {
    loom::model(|| {
        let storage = Arc::new(RingStorage::<WORDS>::new());
        let signalled = Arc::new(AtomicBool::new(false));
        let (producer_storage, producer_signalled) = (Arc::clone(&storage), Arc::clone(&signalled));
        let producer = thread::spawn(move || {
            let memory = RingMemory::new(producer_storage.words(), CAPACITY).unwrap();
            let mut producer = Producer::new(memory);
            producer.try_push(&[42]).unwrap();
            if producer.signal_needed() {
                producer_signalled.store(true, Ordering::Relaxed);
            }
        });
        let memory = RingMemory::new(storage.words(), CAPACITY).unwrap();
        let mut consumer = Consumer::new(memory);
        let mut out = [0u8; 4];
        let mut got = consumer.try_pop(&mut out).unwrap().is_some();
        let sleeps = !got && consumer.arm_signal();
        producer.join().unwrap();
        if sleeps {
            assert!(signalled.load(Ordering::Relaxed), "lost wakeup");
        }
        got |= consumer.try_pop(&mut out).unwrap().is_some();
        assert!(got);
    });
}
