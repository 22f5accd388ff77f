//! The PDs of the host platform's IPC benchmark (`make bench-host`, `benches/ipc.rs`): each
//! measures its own round trips with the monotonic clock and prints one line,
//! `bench: KIND ROUNDS rounds, MEAN ns mean, P50 ns p50, P99 ns p99`, which the benchmark reads.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

/// Round trips each PD pair measures (after [`WARM_UP`] that are not counted).
pub const ROUNDS: usize = 20_000;
/// Round trips run first, to settle caches and the scheduler.
pub const WARM_UP: usize = 2_000;

/// Round-trip times, collected and summarised.
#[derive(Debug, Default)]
pub struct Samples {
    times: Vec<Duration>,
    started: Option<Instant>,
    seen: usize,
}

impl Samples {
    /// A round trip begins.
    pub fn start(&mut self) {
        self.started = Some(Instant::now());
    }

    /// The round trip begun last ended; `true` once [`ROUNDS`] were counted.
    pub fn stop(&mut self) -> bool {
        if let Some(started) = self.started.take() {
            self.seen += 1;
            if self.seen > WARM_UP {
                self.times.push(started.elapsed());
            }
        }
        self.times.len() >= ROUNDS
    }

    /// The line the benchmark reads.
    #[must_use]
    pub fn line(&mut self, kind: &str) -> String {
        self.times.sort_unstable();
        let at = |fraction: f64| {
            let index = ((self.times.len() as f64 - 1.0) * fraction) as usize;
            self.times.get(index).map_or(0, Duration::as_nanos)
        };
        let total: u128 = self.times.iter().map(Duration::as_nanos).sum();
        let mean = total / self.times.len().max(1) as u128;
        format!(
            "bench: {kind} {} rounds, {mean} ns mean, {} ns p50, {} ns p99",
            self.times.len(),
            at(0.5),
            at(0.99)
        )
    }
}
