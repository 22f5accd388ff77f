//! The board walk's time against the tree's size: trees of 1k, 10k and 100k nodes shaped as the
//! quadratic-time report's (each device's interrupt parent a chain of 7 hops of its own), read
//! with the phandle index (what the device manager does) and, for the two smallest, without it.
//! Each figure is measured in this run; the ratios are what the target is stated in (time per
//! node flat from 1k to 100k nodes).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    reason = "benchmark harness"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use warden_board::{Board, PhandleSlot};

/// A flattened device tree written by hand (version 17): enough of the format for the bench.
struct Writer {
    structure: Vec<u8>,
    strings: Vec<u8>,
}

impl Writer {
    fn word(&mut self, word: u32) {
        self.structure.extend_from_slice(&word.to_be_bytes());
    }
    fn pad(&mut self) {
        while self.structure.len() % 4 != 0 {
            self.structure.push(0);
        }
    }
    fn begin(&mut self, name: &str) {
        self.word(1);
        self.structure.extend_from_slice(name.as_bytes());
        self.structure.push(0);
        self.pad();
    }
    fn end(&mut self) {
        self.word(2);
    }
    fn property(&mut self, name: &str, value: &[u8]) {
        let offset =
            match self.strings.windows(name.len() + 1).position(|window| {
                &window[..name.len()] == name.as_bytes() && window[name.len()] == 0
            }) {
                Some(offset) => offset,
                None => {
                    let offset = self.strings.len();
                    self.strings.extend_from_slice(name.as_bytes());
                    self.strings.push(0);
                    offset
                }
            };
        self.word(3);
        self.word(value.len() as u32);
        self.word(offset as u32);
        self.structure.extend_from_slice(value);
        self.pad();
    }
    fn cells(&mut self, name: &str, cells: &[u32]) {
        let value: Vec<u8> = cells.iter().flat_map(|cell| cell.to_be_bytes()).collect();
        self.property(name, &value);
    }
    fn finish(mut self) -> Vec<u8> {
        self.word(9);
        let header = 40;
        let rsvmap = 16;
        let off_struct = header + rsvmap;
        let off_strings = off_struct + self.structure.len();
        let total = off_strings + self.strings.len();
        let mut blob = Vec::with_capacity(total);
        for word in [
            0xd00d_feed,
            total as u32,
            off_struct as u32,
            off_strings as u32,
            header as u32,
            17,
            16,
            0,
            self.strings.len() as u32,
            self.structure.len() as u32,
        ] {
            blob.extend_from_slice(&u32::to_be_bytes(word));
        }
        blob.extend_from_slice(&[0; 16]);
        blob.extend_from_slice(&self.structure);
        blob.extend_from_slice(&self.strings);
        blob
    }
}

/// About `nodes` nodes: a GIC and devices each behind a chain of `hops` pass-through nodes.
fn chain_tree(nodes: usize, hops: usize) -> Vec<u8> {
    let mut writer = Writer {
        structure: Vec::new(),
        strings: Vec::new(),
    };
    writer.begin("");
    writer.cells("#address-cells", &[1]);
    writer.cells("#size-cells", &[1]);
    writer.begin("interrupt-controller@1000");
    writer.property("compatible", b"arm,gic-400\0");
    writer.property("interrupt-controller", b"");
    writer.cells("#interrupt-cells", &[3]);
    writer.cells("phandle", &[1]);
    writer.end();
    let users = nodes / (hops + 1);
    let mut next_phandle = 2;
    for user in 0..users {
        let first = next_phandle;
        for hop in 0..hops {
            let phandle = first + hop as u32;
            let parent = if hop + 1 == hops { 1 } else { phandle + 1 };
            writer.begin(&format!("hop-{user}-{hop}"));
            writer.cells("phandle", &[phandle]);
            writer.cells("interrupt-parent", &[parent]);
            writer.end();
        }
        next_phandle += hops as u32;
        writer.begin(&format!("user@{user:x}"));
        writer.property("compatible", b"test,user\0");
        writer.cells("reg", &[user as u32 * 0x1000, 0x1000]);
        writer.cells("interrupt-parent", &[first]);
        writer.cells("interrupts", &[0, 1, 4]);
        writer.end();
    }
    writer.end();
    writer.finish()
}

/// The fastest of `runs` walks of `blob` (index built inside, as the manager does).
fn time_walk(blob: &[u8], indexed: bool, runs: usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut devices = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let board = Board::new(blob).unwrap();
        devices = if indexed {
            let mut storage = vec![PhandleSlot::default(); board.phandle_count()];
            let index = board.index_phandles(&mut storage).unwrap();
            board.devices_indexed(&index).filter(Result::is_ok).count()
        } else {
            board.devices().filter(Result::is_ok).count()
        };
        best = best.min(start.elapsed());
        black_box(devices);
    }
    (best, devices)
}

fn per_node_ns(time: Duration, nodes: usize) -> f64 {
    time.as_nanos() as f64 / nodes as f64
}

fn main() {
    const HOPS: usize = 7;
    let mut indexed = Vec::new();
    for nodes in [1_000, 10_000, 100_000] {
        let blob = chain_tree(nodes, HOPS);
        let (time, devices) = time_walk(&blob, true, 5);
        assert_eq!(devices, nodes / (HOPS + 1) + 1, "every user and the GIC");
        println!(
            "board: {nodes} nodes ({} KB), indexed: {:.3} ms, {:.0} ns per node",
            blob.len() / 1024,
            time.as_secs_f64() * 1e3,
            per_node_ns(time, nodes)
        );
        indexed.push((nodes, time));
    }
    let mut plain = Vec::new();
    for nodes in [1_000, 4_000] {
        let blob = chain_tree(nodes, HOPS);
        let (time, _) = time_walk(&blob, false, 2);
        println!(
            "board: {nodes} nodes, walked for each phandle (no index): {:.3} ms, {:.0} ns per node",
            time.as_secs_f64() * 1e3,
            per_node_ns(time, nodes)
        );
        plain.push((nodes, time));
    }
    let ratio = |figures: &[(usize, Duration)], a: usize, b: usize| {
        per_node_ns(figures[b].1, figures[b].0) / per_node_ns(figures[a].1, figures[a].0)
    };
    println!(
        "board: time per node, 100k against 1k nodes: indexed {:.2}x (linear is 1x); \
         without the index, 4k against 1k: {:.2}x (quadratic is 4x)",
        ratio(&indexed, 0, 2),
        ratio(&plain, 0, 1)
    );
    real_trees();
}

/// Every `.dtb` under `$WARDEN_BOARD_DTBS` (`make bench BOARD_DTBS=DIR`, for instance the
/// `/usr/lib/linux-image-*` of Debian's arm64 kernel package): each read whole as the manager
/// reads it, the fastest of 5 runs; the largest tree and the slowest read against the target
/// (5 ms for the largest real trees).
fn real_trees() {
    const TARGET: Duration = Duration::from_millis(5);
    let Some(root) = std::env::var_os("WARDEN_BOARD_DTBS").filter(|dir| !dir.is_empty()) else {
        println!(
            "board: real trees not timed (make bench BOARD_DTBS=DIR times every .dtb under DIR)"
        );
        return;
    };
    let mut files = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(root)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            println!("board: cannot read {}", dir.display());
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "dtb") {
                files.push(path);
            }
        }
    }
    files.sort();
    // (time, size, devices, path) of the largest tree and of the slowest read.
    let mut largest: Option<(Duration, usize, usize, std::path::PathBuf)> = None;
    let mut slowest: Option<(Duration, usize, usize, std::path::PathBuf)> = None;
    let mut total = Duration::ZERO;
    let mut read = 0;
    for path in files {
        let Ok(blob) = std::fs::read(&path) else {
            continue;
        };
        if Board::new(&blob).is_err() {
            println!("board: {} is not a tree Warden reads", path.display());
            continue;
        }
        let (time, devices) = time_walk(&blob, true, 5);
        total += time;
        read += 1;
        let figure = (time, blob.len(), devices, path);
        if largest.as_ref().is_none_or(|best| figure.1 > best.1) {
            largest = Some(figure.clone());
        }
        if slowest.as_ref().is_none_or(|worst| figure.0 > worst.0) {
            slowest = Some(figure);
        }
    }
    let (Some(largest), Some(slowest)) = (largest, slowest) else {
        println!("board: no .dtb read under $WARDEN_BOARD_DTBS");
        return;
    };
    println!(
        "board: {read} real trees read in {:.1} ms in all",
        total.as_secs_f64() * 1e3
    );
    for (what, (time, size, devices, path)) in [("largest", largest), ("slowest", slowest)] {
        println!(
            "board: {what} real tree {} ({} KB, {devices} devices): {:.3} ms [{}]",
            path.display(),
            size / 1024,
            time.as_secs_f64() * 1e3,
            if time <= TARGET {
                "meets target"
            } else {
                "MISSES target"
            }
        );
    }
}
