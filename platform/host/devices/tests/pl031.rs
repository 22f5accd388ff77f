//! The PL031: the driver's logic (`pl031_driver::device`) against the host platform's model of
//! the device, through the register trait, with a clock the test turns.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use common::Absent;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pl031_driver::device::{offset, Pl031 as Driver, ProbeError, MATCH_INTERRUPT};
use warden_host_devices::{ModelRegisters, Pl011, Pl031, SharedOutput};
use warden_registers::Registers;

type Window = ModelRegisters<Pl031>;

/// A clock the test turns, starting at `seconds`.
fn clock(seconds: u64) -> (Arc<AtomicU64>, Box<dyn Fn() -> u64 + Send>) {
    let now = Arc::new(AtomicU64::new(seconds));
    let reader = Arc::clone(&now);
    (now, Box::new(move || reader.load(Ordering::SeqCst)))
}

#[test]
fn probe_starts_a_stopped_clock_and_it_counts() {
    let (now, clock) = clock(1_000);
    let window: Window = ModelRegisters::new(Pl031::stopped(clock));
    let rtc = Driver::probe(&window).unwrap();
    assert_eq!(window.read32(offset::CR), 1, "started");
    now.fetch_add(3, Ordering::SeqCst);
    assert_eq!(rtc.seconds(), 3);
}

#[test]
fn probe_keeps_the_time_of_a_running_clock_and_disarms_a_pending_alarm() {
    let (now, clock) = clock(1_709_164_790);
    let window: Window = ModelRegisters::new(Pl031::new(clock));
    window.write32(offset::MR, 1_709_164_800);
    window.write32(offset::IMSC, MATCH_INTERRUPT);
    now.fetch_add(10, Ordering::SeqCst);
    window.model().poll();
    assert!(window.irq_level());
    let rtc = Driver::probe(&window).unwrap();
    assert!(!window.irq_level());
    assert_eq!(window.read32(offset::RIS), 0);
    assert_eq!(window.read32(offset::IMSC), 0);
    assert_eq!(rtc.seconds(), 1_709_164_800);
    assert_eq!(rtc.now().to_string(), "2024-02-29T00:00:00Z");
}

#[test]
fn probe_refuses_other_primecells() {
    let uart = ModelRegisters::new(Pl011::new(Box::new(SharedOutput::default())));
    let error = Driver::probe(&uart).unwrap_err();
    let ProbeError::NotPl031 { found } = error;
    assert_eq!(found.part_number(), 0x011);
}

#[test]
fn probe_refuses_a_window_that_reads_all_ones() {
    assert!(Driver::probe(Absent(0)).is_err());
}

#[test]
fn set_seconds_loads_the_counter_which_keeps_running() {
    let (now, clock) = clock(5);
    let window: Window = ModelRegisters::new(Pl031::new(clock));
    let mut rtc = Driver::probe(&window).unwrap();
    rtc.set_seconds(951_782_399);
    now.fetch_add(1, Ordering::SeqCst);
    assert_eq!(rtc.seconds(), 951_782_400);
    assert_eq!(rtc.now().to_string(), "2000-02-29T00:00:00Z");
}
