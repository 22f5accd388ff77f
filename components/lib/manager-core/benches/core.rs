//! Benchmarks of the device-manager core alone (no IPC): a bind storm, a churn run with
//! drivers registering while probes are in flight, and slow probes under per-device locking
//! versus the single-callback configuration. Criterion times the storm and the churn; the
//! figures the targets are stated in (events/s, attempts per bind, speed-up) are printed at the
//! end, each measured in this run.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark harness"
)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use warden_manager_core::{
    Answer, BusId, Callback, Config, DeviceDescriptor, DriverDescriptor, Effect, Manager,
    MatchData, MatchTable, Name, PdId, Request, Requester, Resources,
};

const STORM_DEVICES: usize = 4096;
const STORM_DRIVERS: usize = 64;
type StormFeeder = Feeder<STORM_DEVICES, STORM_DRIVERS, 256>;

/// The requests come from the manager itself, as the board's devices do at start-up: a client
/// may have only `requests_per_requester` requests in progress, and the storms are bulk work.
const CLIENT: Requester = Requester::Manager;
const DECLINING_PD: u32 = 1000;
const CHURN_DRIVERS: usize = 128;
type ChurnFeeder = Feeder<STORM_DEVICES, CHURN_DRIVERS, 256>;

fn device(bus: BusId, class: usize) -> DeviceDescriptor {
    DeviceDescriptor {
        bus,
        match_data: MatchData::compatible(&format!("vendor,device-{class}")).unwrap(),
        resources: Resources::default(),
    }
}

fn driver(bus: BusId, class: usize, pd: u32) -> DriverDescriptor {
    DriverDescriptor {
        bus,
        pd: PdId(pd),
        name: Name::try_from(format!("driver-{class}").as_str()).unwrap(),
        match_table: MatchTable::compatible(&format!("vendor,device-{class}")).unwrap(),
        deadline: None,
    }
}

/// A queue of requests fed to the manager as fast as it accepts them, with every callback
/// answered `Ok` in the order given by `pick` (an index into the pending callbacks).
struct Feeder<const D: usize, const R: usize, const O: usize> {
    manager: Box<Manager<D, R, 1, O>>,
    pending: VecDeque<Callback>,
    completions: usize,
}

impl<const D: usize, const R: usize, const O: usize> Feeder<D, R, O> {
    fn new(config: Config) -> (Self, BusId) {
        let mut manager = Box::new(Manager::new(config));
        let bus = manager.add_bus("platform").unwrap();
        let feeder = Self {
            manager,
            pending: VecDeque::new(),
            completions: 0,
        };
        (feeder, bus)
    }

    fn absorb(pending: &mut VecDeque<Callback>, completions: &mut usize, effect: Effect) {
        match effect {
            Effect::Callback(callback) => pending.push_back(callback),
            Effect::Complete(_) => *completions += 1,
            Effect::Changed(_) => {}
        }
    }

    fn submit(&mut self, request: Request) {
        loop {
            let (pending, completions) = (&mut self.pending, &mut self.completions);
            let result = self.manager.submit(CLIENT, request.clone(), &mut |effect| {
                Self::absorb(pending, completions, effect);
            });
            match result {
                Ok(_) => return,
                // Backpressure: answer a callback, then try again.
                Err(warden_manager_core::Error::NoSpace) => self.answer_one(0),
                Err(error) => panic!("refused: {error:?}"),
            }
        }
    }

    fn answer_one(&mut self, index: usize) {
        let Some(callback) = self.pending.remove(index) else {
            panic!("backpressure with no callback pending");
        };
        // Drivers in PDs numbered from `DECLINING_PD` up answer "not mine".
        let status = if callback.pd.0 >= DECLINING_PD {
            Answer::NotMine
        } else {
            Answer::Ok
        };
        let (pending, completions) = (&mut self.pending, &mut self.completions);
        self.manager
            .callback_done(callback.pd, callback.id, status, &mut |effect| {
                Self::absorb(pending, completions, effect);
            })
            .unwrap();
    }

    fn drain(&mut self) {
        while !self.pending.is_empty() {
            self.answer_one(0);
        }
    }
}

/// 64 drivers registered, then 4096 devices added: each device walks the driver list.
fn storm_devices_after_drivers() -> Feeder<STORM_DEVICES, STORM_DRIVERS, 256> {
    let (mut feeder, bus) = Feeder::new(Config::PER_DEVICE);
    for class in 0..STORM_DRIVERS {
        feeder.submit(Request::RegisterDriver(driver(
            bus,
            class,
            class as u32 + 1,
        )));
    }
    for index in 0..STORM_DEVICES {
        feeder.submit(Request::AddDevice {
            parent: None,
            descriptor: device(bus, index % STORM_DRIVERS),
        });
    }
    feeder.drain();
    feeder
}

/// 4096 devices added, then 64 drivers registered: each driver walks the device list.
fn storm_drivers_after_devices() -> Feeder<STORM_DEVICES, STORM_DRIVERS, 256> {
    let (mut feeder, bus) = Feeder::new(Config::PER_DEVICE);
    for index in 0..STORM_DEVICES {
        feeder.submit(Request::AddDevice {
            parent: None,
            descriptor: device(bus, index % STORM_DRIVERS),
        });
    }
    for class in 0..STORM_DRIVERS {
        feeder.submit(Request::RegisterDriver(driver(
            bus,
            class,
            class as u32 + 1,
        )));
    }
    feeder.drain();
    feeder
}

/// Devices and drivers arrive interleaved while probes are in flight, callbacks answered in a
/// scrambled order (a fixed linear-congruential sequence). Besides the 64 drivers that accept
/// their class, 32 generic drivers claim classes 0–31 too and decline every device, so failed
/// probes meet changed driver lists: walks restart, and must not retry the pairs they tried.
fn churn() -> ChurnFeeder {
    let (mut feeder, bus) = Feeder::new(Config::PER_DEVICE);
    let mut random: u64 = 0x2545_f491_4f6c_dd1d;
    let mut drivers = (0..STORM_DRIVERS)
        .flat_map(|class| {
            let generic = (class < 32).then(|| driver(bus, class, DECLINING_PD + class as u32));
            [generic, Some(driver(bus, class, class as u32 + 1))]
        })
        .flatten();
    for index in 0..STORM_DEVICES {
        feeder.submit(Request::AddDevice {
            parent: None,
            descriptor: device(bus, index % STORM_DRIVERS),
        });
        // A driver registers every 40 devices, while the probes of the last ones are pending.
        if index % 40 == 7 {
            if let Some(descriptor) = drivers.next() {
                feeder.submit(Request::RegisterDriver(descriptor));
            }
        }
        random = random
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        if feeder.pending.len() > 16 {
            let pick = (random >> 33) as usize % feeder.pending.len();
            feeder.answer_one(pick);
        }
    }
    for descriptor in drivers {
        feeder.submit(Request::RegisterDriver(descriptor));
    }
    feeder.drain();
    feeder
}

/// 64 devices, 8 drivers; each device matches two drivers and the first one it meets answers
/// "not mine", so every device needs two probes. Each reply arrives `delay` after its probe was
/// sent (simulated time). Returns the simulated time until every device is bound.
fn slow_probe(config: Config, delay: u64) -> (u64, u64) {
    let (mut feeder, bus) = Feeder::<64, 8, 128>::new(config);
    // Driver 2k and 2k+1 both match class k (k = 0..4); the even one declines.
    for slot in 0..8 {
        let mut descriptor = driver(bus, slot / 2, slot as u32 + 1);
        descriptor.name = Name::try_from(format!("driver-{slot}").as_str()).unwrap();
        feeder.submit(Request::RegisterDriver(descriptor));
    }
    let mut clock: u64 = 0;
    let mut in_flight: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let mut by_sequence = std::collections::HashMap::new();
    let schedule = |feeder: &mut Feeder<64, 8, 128>,
                    clock: u64,
                    in_flight: &mut BinaryHeap<Reverse<(u64, u64)>>,
                    by_sequence: &mut std::collections::HashMap<u64, Callback>| {
        while let Some(callback) = feeder.pending.pop_front() {
            in_flight.push(Reverse((clock + delay, callback.id.sequence())));
            by_sequence.insert(callback.id.sequence(), callback);
        }
    };
    for index in 0..64 {
        feeder.submit(Request::AddDevice {
            parent: None,
            descriptor: device(bus, index % 4),
        });
        schedule(&mut feeder, clock, &mut in_flight, &mut by_sequence);
    }
    let mut probes = 0;
    while let Some(Reverse((at, sequence))) = in_flight.pop() {
        clock = at;
        let callback = by_sequence.remove(&sequence).unwrap();
        let status = if callback.pd.0 % 2 == 1 {
            Answer::NotMine
        } else {
            Answer::Ok
        };
        probes += 1;
        let (pending, completions) = (&mut feeder.pending, &mut feeder.completions);
        feeder
            .manager
            .callback_done(callback.pd, callback.id, status, &mut |effect| {
                Feeder::<64, 8, 128>::absorb(pending, completions, effect);
            })
            .unwrap();
        schedule(&mut feeder, clock, &mut in_flight, &mut by_sequence);
    }
    let bound = feeder
        .manager
        .devices()
        .filter(|d| feeder.manager.device(*d).unwrap().driver.is_some())
        .count();
    assert_eq!(bound, 64, "every device bound");
    (clock, probes)
}

fn timed<T>(run: impl Fn() -> T) -> (T, Duration) {
    // Best of five, to keep scheduling noise out of the printed figure.
    let mut best = Duration::MAX;
    let mut result = None;
    for _ in 0..5 {
        let started = Instant::now();
        let value = run();
        best = best.min(started.elapsed());
        result = Some(value);
    }
    (result.unwrap(), best)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "meets target"
    } else {
        "MISSES TARGET"
    }
}

fn print_figures() {
    println!("\n== warden-manager-core figures (this run) ==");
    for (name, run) in [
        (
            "storm (devices after drivers)",
            storm_devices_after_drivers as fn() -> StormFeeder,
        ),
        (
            "storm (drivers after devices)",
            storm_drivers_after_devices as fn() -> StormFeeder,
        ),
    ] {
        let (feeder, elapsed) = timed(run);
        let stats = feeder.manager.stats();
        let events_per_second = stats.events as f64 / elapsed.as_secs_f64();
        println!(
            "{name}: {STORM_DEVICES} devices x {STORM_DRIVERS} drivers bound in {:.2} ms; \
             {} events, {:.2} M events/s [{} / {}]; {} binds, {} probe attempts",
            elapsed.as_secs_f64() * 1e3,
            stats.events,
            events_per_second / 1e6,
            verdict(elapsed <= Duration::from_millis(50)),
            verdict(events_per_second >= 1e6),
            stats.binds,
            stats.probe_attempts,
        );
    }
    let (feeder, elapsed) = timed(churn);
    let stats = feeder.manager.stats();
    let attempts_per_bind = stats.probe_attempts as f64 / stats.binds as f64;
    println!(
        "churn (4096 devices, 64 accepting + 32 declining drivers registering during probes): \
         {} binds, {} probe attempts, {:.3} attempts per bind [{}]; {} walk restarts, \
         {} tried pairs skipped; {:.2} M events/s",
        stats.binds,
        stats.probe_attempts,
        attempts_per_bind,
        verdict(attempts_per_bind <= 2.0),
        stats.walk_restarts,
        stats.pairs_skipped,
        stats.events as f64 / elapsed.as_secs_f64() / 1e6,
    );
    let delay = 10; // simulated milliseconds per probe reply
    let (per_device, probes_parallel) = slow_probe(Config::PER_DEVICE, delay);
    let (single, probes_single) = slow_probe(Config::SINGLE_CALLBACK, delay);
    let speedup = single as f64 / per_device as f64;
    println!(
        "slow probe (64 devices, 8 drivers, {delay} ms per probe reply, 2 probes per device): \
         per-device locking {per_device} ms ({probes_parallel} probes), single callback \
         {single} ms ({probes_single} probes), {speedup:.1}x faster [{}]",
        verdict(speedup >= 6.0),
    );
    // The footprint line (the boards issue): the whole core state for 256 devices
    // and 64 drivers, against its 64 KiB target, with 4 buses and 32 operations in progress at
    // once (as many as the device manager PD allows); the same with 64 operations; and the
    // size Warden's manager PD uses.
    let footprint = core::mem::size_of::<Manager<256, 64, 4, 32>>();
    let wide = core::mem::size_of::<Manager<256, 64, 4, 64>>();
    let warden = core::mem::size_of::<Manager<128, 16, 16, 32>>();
    println!(
        "manager state as the device manager PD sizes it (128 devices, 16 drivers, 16 buses, 32 operations): {warden} bytes"
    );
    println!(
        "manager state for 256 devices, 64 drivers and 64 operations in progress: {wide} bytes \
         (an operation slot is {} bytes)",
        (wide - footprint) / 32
    );
    println!(
        "footprint: manager state for 256 devices, 64 drivers: {footprint} bytes [{}]",
        verdict(footprint <= 64 * 1024)
    );
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    criterion.bench_function("storm_devices_after_drivers", |b| {
        b.iter_batched(
            || (),
            |()| black_box(storm_devices_after_drivers()),
            BatchSize::PerIteration,
        );
    });
    criterion.bench_function("storm_drivers_after_devices", |b| {
        b.iter_batched(
            || (),
            |()| black_box(storm_drivers_after_devices()),
            BatchSize::PerIteration,
        );
    });
    criterion.bench_function("churn", |b| {
        b.iter_batched(|| (), |()| black_box(churn()), BatchSize::PerIteration);
    });
    criterion.bench_function("slow_probe_per_device", |b| {
        b.iter(|| black_box(slow_probe(Config::PER_DEVICE, 10)));
    });
    criterion.bench_function("slow_probe_single_callback", |b| {
        b.iter(|| black_box(slow_probe(Config::SINGLE_CALLBACK, 10)));
    });
    criterion.final_summary();
    print_figures();
}
