//! Whole systems on the host platform: `warden-host run` starts one process per PD and plays
//! the Microkit kernel. Ping-pong over notifications, a protected procedure call, and a parent
//! that restarts a crashing child, a shared region whose read-only map faults on write; after
//! each run no PD process is left behind.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::Path;
use std::process::Command;

/// The systems share example programs, and the orphan check looks for them by name: run one
/// system at a time.
static ONE_SYSTEM_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    ONE_SYSTEM_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn run(system: &str, extra: &[&str]) -> (i32, String, String) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/systems")
        .join(system);
    let output = Command::new(env!("CARGO_BIN_EXE_warden-host"))
        .arg("run")
        .arg(file)
        .args(["--timeout", "2.5"])
        .args(extra)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// No process of these example programs is still running.
fn assert_no_orphans(programs: &[&str]) {
    let listing = Command::new("ps").args(["-eo", "comm="]).output().unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    for program in programs {
        assert!(
            !listing.lines().any(|line| line.trim() == *program),
            "{program} outlived the launcher"
        );
    }
}

/// `text` has `needle` in it; otherwise the test fails showing the whole text.
#[track_caller]
/// A JSON-lines trace without its timestamps, once they are checked: each line ends in
/// `"ts_ns":N`, rising from line to line.
fn untimed(trace: &str) -> String {
    let mut last = 0u64;
    let mut out = String::new();
    for line in trace.lines() {
        let (event, ts) = line
            .rsplit_once(",\"ts_ns\":")
            .unwrap_or_else(|| panic!("no timestamp: {line}"));
        let ts: u64 = ts.trim_end_matches('}').parse().unwrap();
        assert!(ts > last, "time went back: {trace}");
        last = ts;
        out.push_str(event);
        out.push_str("}\n");
    }
    out
}

fn contains(text: &str, needle: impl AsRef<str>) {
    assert!(
        text.contains(needle.as_ref()),
        "no '{}' in:\n{text}",
        needle.as_ref()
    );
}

#[test]
fn ping_pong_over_notifications() {
    let _guard = exclusive();
    let trace = std::env::temp_dir().join(format!("warden-ping-{}.jsonl", std::process::id()));
    let (code, stdout, stderr) = run("ping_pong.xml", &["--trace", trace.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let trace_text = untimed(&std::fs::read_to_string(&trace).unwrap());
    let _ = std::fs::remove_file(&trace);
    // Every notification each side made is in the trace: ping starts the first round.
    for (pd, count) in [("ping", 5), ("pong", 5)] {
        let line = format!(r#"{{"channel":0,"event":"notify","pd":"{pd}"}}"#);
        assert_eq!(
            trace_text.lines().filter(|event| *event == line).count(),
            count,
            "{trace_text}"
        );
    }
    for round in 1..=5 {
        contains(&stdout, format!("[ping] ping: pong {round} received"));
    }
    contains(&stdout, "[ping] ping: done after 5 round trips");
    assert_eq!(
        stdout.matches("[pong] pong: notified on channel 0").count(),
        5,
        "{stdout}"
    );
    assert_no_orphans(&["example_ping", "example_pong"]);
}

#[test]
fn protected_procedure_call_blocks_until_the_reply() {
    let _guard = exclusive();
    let (code, stdout, stderr) = run("client_server.xml", &[]);
    assert_eq!(code, 0, "{stderr}");
    contains(&stdout, "[client] client: 20 * 2 = 40 (label 0)");
    contains(&stdout, "[client] client: 21 * 2 = 42 (label 0)");
    // The results can only be right if each call returned the server's reply registers. (The
    // order of lines from different PDs is not checked: each PD's output has its own pipe.)
    assert_eq!(
        stdout.matches("[server] server: call").count(),
        2,
        "{stdout}"
    );
    assert_no_orphans(&["example_client", "example_server"]);
}

#[test]
fn a_parent_receives_its_childs_faults_and_restarts_it() {
    let _guard = exclusive();
    let trace = std::env::temp_dir().join(format!("warden-trace-{}.jsonl", std::process::id()));
    let (code, stdout, stderr) = run("restart_child.xml", &["--trace", trace.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout
            .matches("[parent] parent: child 4 faulted (label 3)")
            .count(),
        2,
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("[crasher] crasher: starting").count(),
        2,
        "{stdout}"
    );
    contains(&stdout, "warden-host: restarting 'crasher'");
    contains(&stdout, "warden-host: stopping 'crasher'");
    // A PD's standard output and error are one pipe: its lines keep their order, and a line
    // that is not UTF-8 is printed (with replacement characters), not the end of its output.
    let crasher: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("[crasher]"))
        .collect();
    let one_start = [
        "[crasher] crasher: starting",
        "[crasher] crasher: \u{fffd}\u{fffd} is not UTF-8",
    ];
    assert_eq!(crasher.len(), 6, "{stdout}");
    for start in crasher.chunks(3) {
        assert_eq!(start[..2], one_start, "{stdout}");
        assert!(start[2].starts_with("[crasher] panicked at"), "{stdout}");
    }
    let trace_text = untimed(&std::fs::read_to_string(&trace).unwrap());
    let _ = std::fs::remove_file(&trace);
    let events: Vec<&str> = trace_text.lines().collect();
    assert_eq!(
        events,
        [
            r#"{"event":"fault","kind":"UserException","label":3,"pd":"crasher"}"#,
            r#"{"event":"restart","pd":"crasher"}"#,
            r#"{"event":"fault","kind":"UserException","label":3,"pd":"crasher"}"#,
            r#"{"event":"stop","pd":"crasher"}"#,
        ]
    );
    assert_no_orphans(&["example_parent", "example_crasher"]);
}

#[test]
fn a_pd_cannot_speak_for_another_pd_nor_use_its_channels() {
    let _guard = exclusive();
    let (code, stdout, stderr) = run("impostor.xml", &[]);
    assert_eq!(code, 0, "{stderr}");
    contains(
        &stdout,
        "warden-host: refused a connection claiming to be 'victim'",
    );
    contains(
        &stdout,
        "[impostor] impostor: claimed to be 'victim'; the launcher sent 0 bytes",
    );
    contains(
        &stdout,
        "[impostor] refused by the kernel: InvalidChannel(0)",
    );
    contains(&stdout, "[impostor] impostor: holds 0 channel handles");
    assert!(
        !stdout.contains("pong: notified"),
        "the forged notification reached pong: {stdout}"
    );
    assert!(
        !stdout.contains("restarting"),
        "the forged restart was carried out: {stdout}"
    );
    assert_no_orphans(&["example_impostor", "example_pong"]);
}

#[test]
fn a_missing_program_is_a_clear_error() {
    let _guard = exclusive();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdf/valid/ping_pong.xml");
    let output = Command::new(env!("CARGO_BIN_EXE_warden-host"))
        .arg("run")
        .arg(file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    contains(
        &stderr,
        "protection domain 'ping': no host build of its program image",
    );
}

#[test]
fn a_write_to_a_read_only_map_faults() {
    let _guard = exclusive();
    let (code, stdout, stderr) = run("read_only_map.xml", &[]);
    // A root PD that faults has nobody to restart it: the run stops, loudly (exit 3).
    assert_eq!(code, 3, "{stderr}");
    contains(
        &stdout,
        "[writer] writer: wrote 42 into 4096 bytes at 0x3000000",
    );
    assert!(
        stdout.contains("[reader] reader: value 42"),
        "shared memory: {stdout}"
    );
    assert!(!stdout.contains("the write went through"), "{stdout}");
    // The reader's ways around its read-only map: no region has a name to open, no region's
    // descriptor is left open, and its own memory cannot be written through /proc.
    contains(
        &stdout,
        "[reader] reader: run directory holds: kernel.sock\n",
    );
    contains(&stdout, "[reader] reader: region descriptors held: 0");
    contains(&stdout, "[reader] reader: /proc/self/mem refused");
    assert!(stdout.contains("[writer] writer: wrote 42"), "{stdout}");
    contains(&stderr, "'reader' faulted: signal: 11 (SIGSEGV) (VmFault)");
    contains(
        &stderr,
        "'reader' faulted (VmFault) and has no parent: no PD can restart it, so the system stopped",
    );
    assert_no_orphans(&["example_writer", "example_reader"]);
}

#[test]
fn device_memory_without_a_model_is_an_error_naming_the_address() {
    let _guard = exclusive();
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdf/valid/parent_restarts_child.xml");
    let output = Command::new(env!("CARGO_BIN_EXE_warden-host"))
        .arg("run")
        .arg(file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    contains(
        &stderr,
        "memory region 'uart' is device memory at 0x9000000",
    );
}

#[test]
fn interrupting_the_launcher_stops_every_pd_and_cleans_up() {
    let _guard = exclusive();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/systems/client_server.xml");
    let launcher = Command::new(env!("CARGO_BIN_EXE_warden-host"))
        .arg("run")
        .arg(file)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let runtime = std::env::temp_dir().join(format!("warden-host-{}", launcher.id()));
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert!(runtime.exists(), "the run's directory exists while it runs");
    let killed = Command::new("kill")
        .args(["-INT", &launcher.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = launcher.wait_with_output().unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    let stdout = String::from_utf8(output.stdout).unwrap();
    contains(
        &stdout,
        "warden-host: interrupted, stopping every protection domain",
    );
    assert!(!runtime.exists(), "no shared memory or socket left behind");
    assert_no_orphans(&["example_client", "example_server"]);
}

#[test]
fn garbage_in_a_call_slot_and_rung_doorbells_do_not_hurt_the_server() {
    let _guard = exclusive();
    let (code, stdout, stderr) = run("vandal.xml", &[]);
    assert_eq!(code, 0, "{stderr}");
    contains(
        &stdout,
        "[vandal] vandal: wrote garbage over 1024 words of call slot",
    );
    contains(
        &stdout,
        "[vandal] vandal: after the garbage, 21 * 2 = 42 (label 0)",
    );
    assert!(!stdout.contains("faulted"), "{stdout}");
    assert_no_orphans(&["example_vandal", "example_server"]);
}

#[test]
fn a_second_connection_is_refused_and_a_malformed_frame_is_a_fault_for_the_parent() {
    let _guard = exclusive();
    let (code, stdout, stderr) = run("garbler.xml", &[]);
    assert_eq!(code, 0, "{stderr}");
    contains(
        &stdout,
        "warden-host: refused a second connection from 'garbler'",
    );
    contains(
        &stdout,
        "[garbler] garbler: a malformed frame sent on a second connection; still running",
    );
    contains(
        &stderr,
        "warden-host: 'garbler' sent a malformed frame: stopped as a fault (Cap)",
    );
    assert_eq!(
        stdout
            .matches("[parent] parent: child 4 faulted (label 1)")
            .count(),
        2,
        "{stdout}"
    );
    contains(&stdout, "warden-host: stopping 'garbler'");
    assert_no_orphans(&["example_parent", "example_garbler"]);
}

#[test]
fn notifications_to_a_busy_pd_coalesce_and_come_before_a_later_call() {
    let _guard = exclusive();
    let (code, stdout, stderr) = run("coalesce.xml", &[]);
    assert_eq!(code, 0, "{stderr}");
    let sleeper: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("[sleeper]"))
        .collect();
    assert_eq!(
        sleeper,
        [
            "[sleeper] sleeper: notified, channels 0x8",
            "[sleeper] sleeper: called on channel 4"
        ],
        "{stdout}"
    );
    contains(&stdout, "[burst] burst: the call returned");
    assert_no_orphans(&["example_sleeper", "example_burst"]);
}

#[test]
fn a_prefilled_region_starts_with_its_file() {
    let _guard = exclusive();
    let (code, stdout, stderr) = run("prefill.xml", &[]);
    assert_eq!(code, 0, "{stderr}");
    contains(
        &stdout,
        "[prefilled] prefilled: 'Warden prefill: the region starts with these bytes.', 52 bytes in the file, region of 4096 bytes",
    );
    assert_no_orphans(&["example_prefilled"]);
}

#[test]
fn boot_information_is_refused_at_run_by_name() {
    let _guard = exclusive();
    let (code, _stdout, stderr) = run("bootinfo.xml", &[]);
    assert_eq!(code, 1, "{stderr}");
    contains(
        &stderr,
        "not supported on the host platform yet: memory region 'fdt': prefill_bootinfo=\"fdt\" (boot information is the seL4 loader's)",
    );
}

/// Valid descriptions of what the host platform does not model: each is refused by name
/// before any PD starts, and no run directory is left.
#[test]
fn virtual_machines_domains_and_cspaces_are_refused_at_run_by_name() {
    let _guard = exclusive();
    for (system, expected) in [
        (
            "virtual_machine.xml",
            "not supported on the host platform yet: protection domain 'pong': virtual machine 'guest' (seL4's hypervisor mode has no host model)",
        ),
        (
            "domains.xml",
            "not supported on the host platform yet: <domains>: seL4's domain scheduler",
        ),
        (
            "cspace.xml",
            "not supported on the host platform yet: protection domain 'pong': <cspace> entry cap_tcb of 'ping' in slot 4",
        ),
    ] {
        let (code, stdout, stderr) = run(system, &[]);
        assert_eq!(code, 1, "{system}: {stderr}");
        contains(&stderr, expected);
        assert!(!stdout.contains("[pong]"), "{system}: a PD started: {stdout}");
    }
    assert_no_orphans(&["example_pong", "example_ping"]);
}

#[test]
fn a_dead_callers_call_not_yet_taken_is_cancelled() {
    let _guard = exclusive();
    let (code, stdout, stderr) = run("cancelled_call.xml", &[]);
    assert_eq!(code, 0, "{stderr}");
    contains(&stdout, "[parent] parent: child 4 faulted (label 3)");
    contains(&stdout, "[caller] caller: the call of start 2 returned");
    assert_eq!(
        stdout
            .matches("[sleeper] sleeper: called on channel 4")
            .count(),
        1,
        "the dead start's call was served: {stdout}"
    );
    assert_no_orphans(&["example_sleeper", "example_parent", "example_doomed_caller"]);
}
