//! `make bench-host`: the host platform's IPC, measured in one run and compared with the raw
//! primitives it is built on.
//!
//! 1. raw eventfd: two plain processes, each blocking in `read` on its own eventfd while the
//!    other writes it: a round trip is two writes and two wake-ups;
//! 2. raw futex: the same over one shared word (FUTEX_WAIT / FUTEX_WAKE);
//! 3. notify RT: two PDs under `warden-host run` notifying each other (`systems/notify.xml`);
//! 4. ppc RT: a PD calling a higher-priority PD (`systems/ppc.xml`);
//! 5. probe RT: a manager sending `Probe` and `Remove` to Warden's demo driver PD over the
//!    rings, each answered by `CallbackDone` (`systems/probe.xml`).
//!
//! Each prints its mean, p50 and p99; the last line gives the p50s and their ratios to the raw
//! eventfd round trip:
//! `host-ipc: raw eventfd X us, raw futex Y us, notify RT Z us (A x eventfd), ppc RT W us (B x
//! eventfd), probe RT V us (C x eventfd)`.
#![allow(
    unsafe_code,
    reason = "the raw futex round trip maps a shared page (mmap), as the PDs' runtime does"
)]
#![allow(
    clippy::print_stdout,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark: it prints its figures, and stops at the first failure"
)]

use std::io::{BufRead, BufReader, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{eventfd, EventfdFlags};
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use rustix::thread::futex;
use warden_host_bench::{Samples, ROUNDS, WARM_UP};

const CHILD: &str = "WARDEN_BENCH_CHILD";

fn signal(eventfd: &OwnedFd) {
    let _ = rustix::io::write(eventfd, &1u64.to_ne_bytes());
}

fn wait(eventfd: &OwnedFd) {
    let mut count = [0u8; 8];
    let _ = rustix::io::read(eventfd, &mut count);
}

/// Maps one shared page of `memory` as a word.
fn word(memory: &OwnedFd) -> &'static AtomicU32 {
    // SAFETY: a null address lets the kernel choose, so nothing of this process is replaced;
    // the page is never unmapped (the 'static reference stays valid), it is shared with the
    // other process of the benchmark only, and is accessed through atomics only.
    let address = unsafe {
        rustix::mm::mmap(
            core::ptr::null_mut(),
            4096,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            memory,
            0,
        )
    }
    .expect("mapping the shared page");
    // SAFETY: the page is live and 4-aligned, and AtomicU32 accepts every bit pattern.
    unsafe { &*address.cast::<AtomicU32>() }
}

/// Waits until `word` is `until` (futex).
fn futex_until(word: &AtomicU32, until: u32) {
    loop {
        let seen = word.load(Ordering::Acquire);
        if seen == until {
            return;
        }
        let _ = futex::wait(word, futex::Flags::empty(), seen, None);
    }
}

fn set_and_wake(word: &AtomicU32, value: u32) {
    word.store(value, Ordering::Release);
    let _ = futex::wake(word, futex::Flags::empty(), 1);
}

/// The other process of a raw round trip: takes its descriptors from standard input.
fn child(kind: &str) {
    let stdin = std::io::stdin();
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    recvmsg(
        stdin.as_fd(),
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::empty(),
    )
    .expect("receiving the descriptors");
    let mut descriptors = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            descriptors.extend(fds);
        }
    }
    let rounds = ROUNDS + WARM_UP;
    match (kind, descriptors.as_slice()) {
        ("eventfd", [ping, pong]) => {
            for _ in 0..rounds {
                wait(ping);
                signal(pong);
            }
        }
        ("futex", [memory]) => {
            let shared = word(memory);
            for round in 0..rounds as u32 {
                futex_until(shared, 2 * round + 1);
                set_and_wake(shared, 2 * round + 2);
            }
        }
        _ => panic!(
            "bench child: unexpected {kind} with {} descriptors",
            descriptors.len()
        ),
    }
}

/// Starts the other process and hands it `descriptors`.
fn start_child(kind: &str, descriptors: &[&OwnedFd]) -> std::process::Child {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let child = Command::new(std::env::current_exe().expect("the benchmark's path"))
        .env(CHILD, kind)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .spawn()
        .expect("starting the other process");
    let borrowed: Vec<_> = descriptors.iter().map(|fd| fd.as_fd()).collect();
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    assert!(control.push(SendAncillaryMessage::ScmRights(&borrowed)));
    sendmsg(
        &ours,
        &[IoSlice::new(&[0])],
        &mut control,
        SendFlags::empty(),
    )
    .expect("sending the descriptors");
    child
}

fn raw_eventfd() -> Samples {
    let ping = eventfd(0, EventfdFlags::CLOEXEC).expect("eventfd");
    let pong = eventfd(0, EventfdFlags::CLOEXEC).expect("eventfd");
    let mut child = start_child("eventfd", &[&ping, &pong]);
    let mut samples = Samples::default();
    loop {
        samples.start();
        signal(&ping);
        wait(&pong);
        if samples.stop() {
            break;
        }
    }
    let _ = child.wait();
    samples
}

fn raw_futex() -> Samples {
    let memory = rustix::fs::memfd_create("bench", rustix::fs::MemfdFlags::CLOEXEC).expect("memfd");
    rustix::fs::ftruncate(&memory, 4096).expect("ftruncate");
    let shared = word(&memory);
    let mut child = start_child("futex", &[&memory]);
    let mut samples = Samples::default();
    let mut round = 0u32;
    loop {
        samples.start();
        set_and_wake(shared, 2 * round + 1);
        futex_until(shared, 2 * round + 2);
        round += 1;
        if samples.stop() {
            break;
        }
    }
    let _ = child.wait();
    samples
}

/// Runs a benchmark system under `warden-host run` until its PD prints its `bench:` line.
fn system(host: &Path, name: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("systems")
        .join(format!("{name}.xml"));
    let mut run = Command::new(host)
        .arg("run")
        .arg(&file)
        .args(["--timeout", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting warden-host");
    let stdout = run.stdout.take().expect("piped");
    let mut found = None;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(at) = line.find("bench: ") {
            found = line.get(at..).map(str::to_string);
            break;
        }
    }
    // SIGTERM: the launcher stops every PD and removes its run directory.
    if let Some(pid) = rustix::process::Pid::from_raw(run.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let _ = run.wait();
    found.unwrap_or_else(|| panic!("{name}: the system printed no bench line"))
}

/// The p50 of a `bench:` line, in microseconds.
fn p50(line: &str) -> f64 {
    let nanoseconds: f64 = line
        .split(", ")
        .find_map(|part| part.strip_suffix(" ns p50"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no p50 in '{line}'"));
    nanoseconds / 1000.0
}

fn warden_host() -> PathBuf {
    // target/<profile>/deps/ipc-HASH → target/<profile>/warden-host
    let exe = std::env::current_exe().expect("the benchmark's path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let host = profile.join("warden-host");
    assert!(
        host.is_file(),
        "{} is missing: build it first (make bench-host does)",
        host.display()
    );
    host
}

fn main() {
    if let Ok(kind) = std::env::var(CHILD) {
        child(&kind);
        return;
    }
    if std::env::args().any(|argument| argument == "--list") {
        return;
    }
    let host = warden_host();
    let started = Instant::now();
    let eventfd_line = raw_eventfd().line("raw eventfd");
    println!("{eventfd_line}");
    let futex_line = raw_futex().line("raw futex");
    println!("{futex_line}");
    let mut lines = Vec::new();
    for name in ["notify", "ppc", "probe"] {
        let line = system(&host, name);
        println!("{line}");
        lines.push(line);
    }
    let base = p50(&eventfd_line);
    let [notify, ppc, probe] = [&lines[0], &lines[1], &lines[2]].map(|line| p50(line));
    println!(
        "bench-host: {ROUNDS} rounds each after {WARM_UP} warm-up, {:.1} s",
        Duration::as_secs_f64(&started.elapsed())
    );
    println!(
        "host-ipc: raw eventfd {base:.1} us, raw futex {:.1} us, notify RT {notify:.1} us ({:.2}x eventfd), ppc RT {ppc:.1} us ({:.2}x eventfd), probe RT {probe:.1} us ({:.2}x eventfd)",
        p50(&futex_line),
        notify / base,
        ppc / base,
        probe / base
    );
}
