//! The CLI as a careless user meets it: bad numbers, a closed output, paths that cannot be
//! made, a board that is a device, an empty disk, and a control socket fed garbage. Each gets
//! a clear error (exit 2 for misuse), never a panic, and the run's directory goes on every way
//! out (each run gets a temporary directory of its own, which must be empty afterwards).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The systems share example programs: one run at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn system(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/systems")
        .join(name)
}

/// A fresh, empty temporary directory for one run (its `TMPDIR`).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warden-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Nothing of the run is left in its temporary directory.
#[track_caller]
fn left_nothing(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "left behind in {}: {left:?}",
        dir.display()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

fn warden(tmp: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warden-host"));
    command.env("TMPDIR", tmp);
    command
}

#[track_caller]
fn no_panic(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(output.status.code(), Some(101), "{stderr}");
    stderr
}

#[test]
fn a_timeout_that_is_not_a_positive_number_is_misuse() {
    let _guard = exclusive();
    for bad in ["-1", "NaN", "inf", "0", "1e-12", "1e30", "soon"] {
        let tmp = scratch("timeout");
        let output = warden(&tmp)
            .arg("run")
            .arg(system("ping_pong.xml"))
            .arg(format!("--timeout={bad}"))
            .output()
            .unwrap();
        let stderr = no_panic(&output);
        assert_eq!(output.status.code(), Some(2), "--timeout={bad}: {stderr}");
        assert!(stderr.contains("seconds"), "--timeout={bad}: {stderr}");
        left_nothing(&tmp);
    }
    // And the soak's.
    let output = Command::new(env!("CARGO_BIN_EXE_warden-host"))
        .args([
            "soak",
            "system.xml",
            "--board",
            "x.dtb",
            "--recovery-timeout",
            "-3",
        ])
        .output()
        .unwrap();
    no_panic(&output);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_closed_output_stops_the_run_cleanly() {
    let _guard = exclusive();
    let tmp = scratch("pipe");
    let mut launcher = warden(&tmp)
        .arg("run")
        .arg(system("ping_pong.xml"))
        .args(["--timeout", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -1`: one line read, then the reader goes away.
    let mut stdout = BufReader::new(launcher.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    drop(stdout);
    let started = Instant::now();
    let output = launcher.wait_with_output().unwrap();
    let stderr = no_panic(&output);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(
        stderr.contains("standard output closed, stopping every protection domain"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "it stopped because of the closed output, not the 30 s timeout"
    );
    left_nothing(&tmp);
}

#[test]
fn paths_that_cannot_be_made_are_errors_and_leave_nothing() {
    let _guard = exclusive();
    for (option, what) in [("--control", "binding"), ("--trace", "creating")] {
        let tmp = scratch("paths");
        let output = warden(&tmp)
            .arg("run")
            .arg(system("ping_pong.xml"))
            .args([option, "/nonexistent-dir/x", "--timeout", "5"])
            .output()
            .unwrap();
        let stderr = no_panic(&output);
        assert!(!output.status.success());
        assert!(
            stderr.contains(&format!("{what} /nonexistent-dir/x")),
            "{stderr}"
        );
        left_nothing(&tmp);
    }
}

#[test]
fn a_board_that_is_a_device_is_refused_before_it_fills_memory() {
    let _guard = exclusive();
    let tmp = scratch("board");
    let output = warden(&tmp)
        .arg("run")
        .arg(system("ping_pong.xml"))
        .args(["--board", "/dev/zero", "--timeout", "5"])
        .output()
        .unwrap();
    let stderr = no_panic(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("/dev/zero: larger than 16 MiB"), "{stderr}");
    let output = warden(&tmp).args(["board", "/dev/zero"]).output().unwrap();
    let stderr = no_panic(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("larger than 16 MiB"), "{stderr}");
    left_nothing(&tmp);
}

#[test]
fn an_empty_disk_image_is_refused_with_the_reason() {
    let _guard = exclusive();
    let tmp = scratch("disk");
    let image = std::env::temp_dir().join(format!("warden-cli-empty-{}.img", std::process::id()));
    std::fs::write(&image, b"").unwrap();
    let board = std::env::temp_dir().join(format!("warden-cli-{}.dtb", std::process::id()));
    let made = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../scripts/board-dtb.sh"))
        .arg("qemu_virt_aarch64")
        .arg(&board)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let output = warden(&tmp)
        .arg("run")
        .arg(system("ping_pong.xml"))
        .arg("--board")
        .arg(&board)
        .arg("--virtio")
        .arg(format!("blk={}", image.display()))
        .args(["--timeout", "5"])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&image);
    let _ = std::fs::remove_file(&board);
    let stderr = no_panic(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("a disk of no sectors"), "{stderr}");
    left_nothing(&tmp);
}

fn answer(stream: &mut UnixStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while stream.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_sockets_are_bounded_and_garbage_gets_an_answer() {
    let _guard = exclusive();
    let tmp = scratch("control");
    let socket = tmp.join("control.sock");
    let mut launcher = warden(&tmp)
        .arg("run")
        .arg(system("client_server.xml"))
        .arg("--control")
        .arg(&socket)
        .args(["--timeout", "20"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&socket);
    // Not UTF-8: an error, and the connection still serves.
    let mut stream = UnixStream::connect(&socket).unwrap();
    stream.write_all(b"\xff\xfe devices\n").unwrap();
    assert_eq!(answer(&mut stream), "error: the command is not UTF-8 text");
    stream.write_all(b"devices\n").unwrap();
    assert!(answer(&mut stream).starts_with("ok"));
    // What is not the launcher's goes to the shell through the console, which this board
    // lacks; a command with control characters in it (a typed Ctrl-C, an escape) is not one
    // line of text to type.
    stream.write_all(b"frobnicate now\n").unwrap();
    assert!(
        answer(&mut stream).starts_with(
            "error: unknown command 'frobnicate now': this board has no console for the shell's commands"
        )
    );
    stream.write_all(b"tree\x03\x1b[2J\n").unwrap();
    assert_eq!(
        answer(&mut stream),
        "error: a shell command is one line of text"
    );
    // A line longer than 4096 bytes: an error, and closed.
    let mut long = UnixStream::connect(&socket).unwrap();
    long.write_all(&vec![b'x'; 64 * 1024]).unwrap();
    assert_eq!(
        answer(&mut long),
        "error: a command is at most 4096 bytes; closing the connection"
    );
    // 16 idle connections at once (the first one included); the 17th is told so.
    let idle: Vec<UnixStream> = (0..15)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut one_more = UnixStream::connect(&socket).unwrap();
    assert_eq!(
        answer(&mut one_more),
        "error: 16 control connections are open already; try again"
    );
    drop(idle);
    drop(stream);
    // Room again once they are gone.
    std::thread::sleep(Duration::from_millis(200));
    let mut again = UnixStream::connect(&socket).unwrap();
    again.write_all(b"devices\n").unwrap();
    assert!(answer(&mut again).starts_with("ok"));
    drop(again);
    // A client that sends commands and never reads its answers blocks only itself: the
    // others are still answered.
    let mut greedy = UnixStream::connect(&socket).unwrap();
    greedy
        .set_write_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let writer = std::thread::spawn(move || {
        let commands = "devices\n".repeat(100_000);
        let _ = greedy.write_all(commands.as_bytes());
        greedy
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut polite = UnixStream::connect(&socket).unwrap();
    polite
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    polite.write_all(b"devices\n").unwrap();
    assert!(
        answer(&mut polite).starts_with("ok"),
        "answered beside a greedy client"
    );
    drop(polite);
    drop(writer.join().unwrap());
    // A first frame trickled in a byte a second is cut off at 5 s all the same.
    let kernel_socket = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("warden-host-")
        })
        .unwrap()
        .join("kernel.sock");
    let mut trickle = UnixStream::connect(&kernel_socket).unwrap();
    trickle
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(12) {
        if trickle.write_all(&[0x10]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(900));
    }
    assert!(
        closed,
        "a trickled first frame held its connection for 12 s"
    );
    // The kernel socket: silent connections are closed after their first-frame time, and
    // more than 64 waiting at once (or 4 from one process) are closed at once; the launcher
    // lives on.
    let mut silent: Vec<UnixStream> = (0..100)
        .map(|_| UnixStream::connect(&kernel_socket).unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    for stream in &mut silent {
        stream
            .set_read_timeout(Some(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            ))
            .unwrap();
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).unwrap(), 0, "closed by the launcher");
    }
    let mut alive = UnixStream::connect(&socket).unwrap();
    alive.write_all(b"devices\n").unwrap();
    assert!(answer(&mut alive).starts_with("ok"));
    drop(alive);
    Command::new("kill")
        .args(["-INT", &launcher.id().to_string()])
        .status()
        .unwrap();
    assert!(launcher.wait().unwrap().success());
    left_nothing(&tmp);
}
