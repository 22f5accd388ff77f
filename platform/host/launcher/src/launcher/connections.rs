//! The sockets: each PD's connection to the launcher (believed only from its own process), the
//! control socket and the console on standard input, each feeding the launcher's one queue of
//! events.

use super::*;
use std::collections::HashMap;
use std::sync::Mutex;

/// What the connection threads tell the launcher: which PD and incarnation a connection claims
/// to be, and the process id the kernel says is at the other end (`SO_PEERCRED`), which is what
/// makes the claim believable: a PD process cannot speak for another PD.
pub(crate) enum Event {
    Connected(Claim, UnixStream),
    /// A frame, and the credit of its connection, given back once the frame is handled.
    Frame(Claim, FromPd, Arc<Credit>),
    /// The connection broke the socket's rules (a malformed frame): the PD is stopped as a
    /// fault, with this reason.
    Abuse(Claim, String),
    /// Bytes typed at the launcher's standard input: the console UART's receive line.
    Input(Vec<u8>),
    /// A command on the control socket, and where its answer goes (the connection's thread
    /// writes it, so a client that never reads blocks only its own connection).
    Control(String, Sender<String>),
}

/// A connection's claimed PD and incarnation, and its peer's process id.
#[derive(Clone, Copy)]
pub(crate) struct Claim {
    pub(crate) pd: usize,
    pub(crate) incarnation: u32,
    pub(crate) peer: Option<u32>,
    /// Which connection (numbered as accepted): a PD's frames count only on the connection the
    /// launcher took for it.
    pub(crate) connection: u64,
}

/// Sends one command to a running launcher's control socket; returns its answer: the status
/// line (`ok …` or `error: …`), then the lines the shell printed for it, if it was one of the
/// shell's commands.
///
/// # Errors
/// The socket's.
pub fn control(socket: &Path, command: &str) -> std::io::Result<String> {
    let mut stream = UnixStream::connect(socket)?;
    writeln!(stream, "{command}")?;
    let mut reader = BufReader::new(stream);
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches(['\r', '\n']);
        match line.strip_prefix(SHELL_LINE) {
            Some(printed) => lines.push(printed.to_string()),
            None => {
                lines.insert(0, line.to_string());
                return Ok(lines.join("\n"));
            }
        }
    }
}

/// How a line the shell printed starts in a control answer (the status line comes last).
pub const SHELL_LINE: &str = "| ";
/// How long a shell command from the control socket may take to give the prompt back.
pub const SHELL_DEADLINE: Duration = Duration::from_secs(10);
/// The shell's prompt, which ends its answer.
pub const SHELL_PROMPT: &str = "warden> ";

/// The longest control command, and the longest stretch of console input sent as one event.
pub const MAX_LINE: usize = 4096;
/// Control connections served at once; more are answered with an error and closed.
pub const MAX_CONTROL_CONNECTIONS: usize = 16;
/// A control connection that sends nothing for this long is closed.
pub const CONTROL_IDLE: Duration = Duration::from_secs(30);
/// Connections to the kernel socket that have not yet said which PD they are, at once; more
/// are closed at once (a PD process says it in its first frame, within microseconds).
pub const MAX_UNIDENTIFIED: usize = 64;
/// How long a connection to the kernel socket has to send its whole first frame (a PD sends
/// it right after it connects; the margin is for a loaded machine).
pub const FIRST_FRAME: Duration = Duration::from_secs(5);
/// Unidentified connections one process may hold at once (a PD needs one).
pub const MAX_UNIDENTIFIED_PER_PROCESS: usize = 4;

/// Frames of one connection that may wait in the launcher's queue at once: a PD that sends
/// faster than the launcher handles is slowed down at its own socket, and cannot fill the queue
/// every PD shares.
pub const FRAMES_IN_FLIGHT: u32 = 16;

/// A connection's credit of frames in flight.
pub(crate) struct Credit {
    left: Mutex<u32>,
    given_back: std::sync::Condvar,
}

impl Credit {
    fn new() -> Self {
        Self {
            left: Mutex::new(FRAMES_IN_FLIGHT),
            given_back: std::sync::Condvar::new(),
        }
    }

    /// Waits for a credit (the connection's thread, before it queues a frame).
    fn take(&self) {
        let Ok(mut left) = self.left.lock() else {
            return;
        };
        while *left == 0 {
            left = match self.given_back.wait(left) {
                Ok(left) => left,
                Err(_) => return,
            };
        }
        *left -= 1;
    }

    /// Gives a credit back (the launcher, once it handled the frame).
    pub(crate) fn give(&self) {
        if let Ok(mut left) = self.left.lock() {
            *left = (*left + 1).min(FRAMES_IN_FLIGHT);
            self.given_back.notify_one();
        }
    }
}

/// A stream read against one deadline for all its reads, however the bytes trickle in.
struct Deadline<'a> {
    stream: &'a mut UnixStream,
    until: Instant,
}

impl std::io::Read for Deadline<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buffer)
    }
}

/// Reads up to `limit` bytes of a line (its newline included, if it came): `None` at the end.
/// A line longer than `limit` comes in pieces, each without its newline.
fn bounded_line(reader: &mut impl BufRead, limit: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    std::io::Read::take(reader, limit as u64).read_until(b'\n', &mut line)?;
    Ok((!line.is_empty()).then_some(line))
}

/// The console: the launcher's standard input, line by line (at most [`MAX_LINE`] bytes an
/// event), to the board's UART.
pub(crate) fn read_console(events: &Sender<Event>) {
    let stdin = std::io::stdin();
    let mut stdin = stdin.lock();
    while let Ok(Some(bytes)) = bounded_line(&mut stdin, MAX_LINE) {
        if events.send(Event::Input(bytes)).is_err() {
            return;
        }
    }
}

/// Counts a connection of a kind while it lives.
struct Counted(Arc<std::sync::atomic::AtomicUsize>);

impl Counted {
    /// One more of the kind, unless `limit` are open already.
    fn admit(count: &Arc<std::sync::atomic::AtomicUsize>, limit: usize) -> Option<Self> {
        let admitted = count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |open| {
                (open < limit).then_some(open + 1)
            })
            .is_ok();
        admitted.then(|| Self(Arc::clone(count)))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves the control socket: a command a line, each answered with one line. Bounded: at most
/// [`MAX_CONTROL_CONNECTIONS`] at once, [`MAX_LINE`] bytes a command, [`CONTROL_IDLE`] of
/// silence; a line that is not UTF-8 is answered with an error, not a silent close.
pub(crate) fn accept_control(listener: &UnixListener, events: &Sender<Event>) {
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let Some(counted) = Counted::admit(&open, MAX_CONTROL_CONNECTIONS) else {
            let _ = writeln!(
                stream,
                "error: {MAX_CONTROL_CONNECTIONS} control connections are open already; try again"
            );
            continue;
        };
        let events = events.clone();
        std::thread::spawn(move || {
            let _counted = counted;
            let _ = stream.set_read_timeout(Some(CONTROL_IDLE));
            let Ok(reader) = stream.try_clone() else {
                return;
            };
            let mut reader = BufReader::new(reader);
            while let Ok(Some(mut line)) = bounded_line(&mut reader, MAX_LINE + 1) {
                if line.last() == Some(&b'\n') {
                    line.pop();
                } else if line.len() > MAX_LINE {
                    let _ = writeln!(
                        stream,
                        "error: a command is at most {MAX_LINE} bytes; closing the connection"
                    );
                    return;
                }
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                let Ok(command) = String::from_utf8(line) else {
                    let _ = writeln!(stream, "error: the command is not UTF-8 text");
                    continue;
                };
                // One command at a time: the next is read once this one is answered.
                let (reply, answer) = channel();
                if events.send(Event::Control(command, reply)).is_err() {
                    return;
                }
                let Ok(answer) = answer.recv() else {
                    return;
                };
                if writeln!(stream, "{answer}").is_err() {
                    return;
                }
            }
        });
    }
}

/// Serves the kernel socket: each connection's first frame says which PD it is, within
/// [`FIRST_FRAME`], and at most [`MAX_UNIDENTIFIED`] may be waiting to say it, so silent
/// connections cannot pile up threads until the launcher dies.
pub(crate) fn accept(listener: &UnixListener, events: &Sender<Event>) {
    let unidentified = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let per_process: Arc<Mutex<HashMap<u32, usize>>> = Arc::default();
    let mut accepted: u64 = 0;
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        accepted += 1;
        let connection = accepted;
        let peer = rustix::net::sockopt::socket_peercred(&stream)
            .ok()
            .and_then(|credentials| u32::try_from(credentials.pid.as_raw_nonzero().get()).ok())
            .unwrap_or(0);
        let Some(counted) = Counted::admit(&unidentified, MAX_UNIDENTIFIED) else {
            continue; // dropped: closed at once
        };
        {
            let Ok(mut held) = per_process.lock() else {
                continue;
            };
            let count = held.entry(peer).or_insert(0);
            if *count >= MAX_UNIDENTIFIED_PER_PROCESS {
                continue;
            }
            *count += 1;
        }
        let events = events.clone();
        let per_process_held = Arc::clone(&per_process);
        // A thread the system cannot give is a connection refused, not a launcher that dies.
        let spawned = std::thread::Builder::new().spawn(move || {
            let per_process = per_process_held;
            let hello = read_frame(&mut Deadline {
                stream: &mut stream,
                until: Instant::now() + FIRST_FRAME,
            })
            .ok()
            .and_then(|frame| FromPd::decode(&frame));
            drop(counted);
            if let Ok(mut held) = per_process.lock() {
                if let Some(count) = held.get_mut(&peer) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        held.remove(&peer);
                    }
                }
            }
            let _ = stream.set_read_timeout(None);
            let Some(FromPd::Hello { pd, incarnation }) = hello else {
                return;
            };
            let claim = Claim {
                connection,
                pd: pd as usize,
                incarnation,
                peer: rustix::net::sockopt::socket_peercred(&stream)
                    .ok()
                    .and_then(|credentials| {
                        u32::try_from(credentials.pid.as_raw_nonzero().get()).ok()
                    }),
            };
            let Ok(writer) = stream.try_clone() else {
                return;
            };
            if events.send(Event::Connected(claim, writer)).is_err() {
                return;
            }
            let credit = Arc::new(Credit::new());
            loop {
                let frame = match read_frame(&mut stream) {
                    Ok(frame) => frame,
                    Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                        let _ = events.send(Event::Abuse(claim, "sent an oversized frame".into()));
                        return;
                    }
                    Err(_) => return,
                };
                let Some(frame) = FromPd::decode(&frame) else {
                    let _ = events.send(Event::Abuse(claim, "sent a malformed frame".into()));
                    return;
                };
                credit.take();
                if events
                    .send(Event::Frame(claim, frame, Arc::clone(&credit)))
                    .is_err()
                {
                    return;
                }
            }
        });
        if spawned.is_err() {
            // The closure (and the connection, and its count of unidentified ones) is dropped;
            // the per-process count is given back here.
            if let Ok(mut held) = per_process.lock() {
                if let Some(count) = held.get_mut(&peer) {
                    *count = count.saturating_sub(1);
                }
            }
        }
    }
}

impl Launcher {
    /// A load or store to device memory: the model answers, or the PD takes a VM fault.
    pub(super) fn register_access(
        &mut self,
        kernel: &mut Kernel,
        pd: usize,
        address: u64,
        width: u8,
        write: Option<u32>,
    ) {
        match self.board.access(pd, address, width, write) {
            Some(value) => self.send(pd, ToPd::RegisterValue(value)),
            None => {
                let what = if write.is_some() {
                    "store to"
                } else {
                    "load from"
                };
                eprintln!(
                    "warden-host: '{}' faulted: {what} 0x{address:x} ({width} bytes), which is not in its device maps (VmFault)",
                    self.name(pd)
                );
                self.kill(pd);
                self.faulted(kernel, pd, FaultKind::VmFault);
            }
        }
    }

    /// Raises or lowers every routed interrupt line as the models drive it.
    pub(super) fn update_lines(&mut self, kernel: &mut Kernel) {
        for line in self.board.lines() {
            if line.asserted {
                if let Ok(actions) = kernel.raise_irq(line.pd, line.channel) {
                    self.perform(kernel, actions);
                }
            } else {
                let _ = kernel.lower_irq(line.pd, line.channel);
            }
        }
    }

    /// A control command: the launcher's own, answered at once, or one of the shell's, typed
    /// on the console and answered (`None` here) when the shell's prompt is back.
    pub(super) fn control(
        &mut self,
        kernel: &mut Kernel,
        command: &str,
        reply: &Sender<String>,
    ) -> Option<String> {
        let launchers = ["inject", "plug", "unplug", "pull", "devices"];
        let first = command.split_whitespace().next().unwrap_or("");
        if launchers.contains(&first) {
            return Some(self.launcher_command(kernel, command));
        }
        if command.chars().any(char::is_control) {
            return Some("error: a shell command is one line of text".into());
        }
        if self.shell_command.is_some() {
            return Some("error: another shell command is running; try again".into());
        }
        if !self.board.has_console() {
            return Some(format!(
                "error: unknown command '{command}': this board has no console for the shell's commands; use plug blk=IMAGE, plug rng, unplug ADDRESS, devices or inject kill|hang|panic|corrupt|flood PD"
            ));
        }
        if !self.board.console_at(SHELL_PROMPT) {
            return Some(
                "error: the console is busy (the shell is not at its prompt, or a line is being typed); try again"
                    .into(),
            );
        }
        // Through the console, as if typed: the shell (a client PD) asks the manager, and its
        // answer is what the console prints up to the next prompt.
        self.board.start_capture();
        self.board.console_input(format!("{command}\n").as_bytes());
        self.shell_command = Some(ShellCommand {
            reply: reply.clone(),
            command: command.to_string(),
            until: Instant::now() + SHELL_DEADLINE,
        });
        None
    }

    /// Answers the shell command in progress once the prompt is back (or its time is up).
    pub(super) fn shell_answer(&mut self) {
        let Some(pending) = &self.shell_command else {
            return;
        };
        let done = self.board.capture_ends_with(SHELL_PROMPT);
        let late = Instant::now() >= pending.until;
        if !done && !late {
            return;
        }
        let Some(pending) = self.shell_command.take() else {
            return;
        };
        let capture = self.board.take_capture();
        let mut lines = capture.lines.into_iter().peekable();
        // The console echoes what was typed, after the prompt that was waiting.
        if lines
            .peek()
            .is_some_and(|line| line.trim_end().ends_with(pending.command.trim()))
        {
            lines.next();
        }
        let mut answer: String = lines.map(|line| format!("{SHELL_LINE}{line}\n")).collect();
        if capture.more > 0 {
            answer.push_str(&format!("{SHELL_LINE}({} more lines)\n", capture.more));
        }
        if done {
            answer.push_str("ok");
        } else {
            // `events` without a count, say: a line typed stops it.
            self.board.console_input(b"\n");
            answer.push_str(&format!(
                "error: the shell gave no prompt within {} s",
                SHELL_DEADLINE.as_secs()
            ));
        }
        let _ = pending.reply.send(answer);
    }

    fn launcher_command(&mut self, kernel: &mut Kernel, command: &str) -> String {
        let mut words = command.split_whitespace();
        let result = match (words.next(), words.next(), words.next()) {
            (Some("inject"), Some(fault), Some(pd)) if words.next().is_none() => {
                self.inject(kernel, fault, pd)
            }
            (Some("plug"), Some("pci"), Some(spec)) if words.next().is_none() => spec
                .parse::<VirtioSpec>()
                .and_then(|spec| self.board.plug_pci(&spec)),
            (Some("unplug" | "pull"), Some("pci"), Some(slot)) if words.next().is_none() => self
                .board
                .unplug_pci(slot, command.starts_with("unplug")),
            (Some("plug"), Some(spec), None) => spec
                .parse::<VirtioSpec>()
                .and_then(|spec| self.board.plug(&spec, false)),
            (Some("unplug"), Some(address), None) => {
                u64::from_str_radix(address.trim_start_matches("0x"), 16)
                    .map_err(|_| format!("'{address}' is not a hexadecimal address"))
                    .and_then(|base| self.board.unplug(base))
            }
            (Some("devices"), None, None) => Ok(self.board.summary().join("; ")),
            _ => Err(format!(
                "unknown command '{command}': use plug blk=IMAGE, plug rng, unplug ADDRESS, plug pci blk=IMAGE, unplug pci SLOT, pull pci SLOT, devices or inject kill|hang|panic|corrupt|flood PD"
            )),
        };
        match result {
            Ok(text) => {
                crate::output::say(&format!("warden-host: {command}: {text}"));
                format!("ok {text}")
            }
            Err(error) => format!("error: {error}"),
        }
    }

    /// `inject FAULT PD`: kills the PD's process, or delivers the fault to it.
    fn inject(&mut self, kernel: &mut Kernel, fault: &str, name: &str) -> Result<String, String> {
        let pd = self
            .processes
            .iter()
            .position(|process| process.name == name)
            .ok_or_else(|| format!("no protection domain '{name}'"))?;
        let code = match fault {
            "kill" => {
                let Some(child) = self
                    .processes
                    .get_mut(pd)
                    .and_then(|process| process.child.as_mut())
                else {
                    return Err(format!("'{name}' is not running"));
                };
                child
                    .kill()
                    .map_err(|error| format!("killing '{name}': {error}"))?;
                // The exit is seen as a fault (SIGKILL) by the reaper, as any crash.
                return Ok(format!("'{name}' killed"));
            }
            "hang" => warden_microkit::InjectedFault::Hang,
            "panic" => warden_microkit::InjectedFault::Panic,
            "corrupt" => warden_microkit::InjectedFault::Corrupt,
            "flood" => warden_microkit::InjectedFault::Flood,
            other => {
                return Err(format!(
                    "'{other}' is not a fault: use kill, hang, panic, corrupt or flood"
                ))
            }
        };
        let actions = kernel
            .inject(pd, code.code())
            .map_err(|_| format!("'{name}' is not running"))?;
        self.perform(kernel, actions);
        Ok(format!("{fault} injected into '{name}'"))
    }
}
