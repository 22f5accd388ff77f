//! The shell PD: a command line on the console, for looking at and steering the device
//! manager and the drivers.
//!
//! It reads lines from the console driver (the UART's PD; `warden_driver::console`) and writes
//! its output back through it; [`command`] parses a line and runs it:
//!
//! * `tree`, `device DEV`: the device tree, walked one `QueryTree` call into the manager per
//!   device, with `QueryDriver` for the drivers' names;
//! * `unbind DEV`, `bind DEV DRIVER`, `rescan`: requests into the manager's queue, as an
//!   administrative client;
//! * `time`, `random [N]`: calls into the clock and entropy drivers.
//!
//! Channels: 1 — the console driver (notifications both ways; rings `from_console` and
//! `to_console`); 2 — the clock driver, 3 — the entropy driver, 4 — the device manager (this
//! end calls them; they have higher priorities, as calls require). The manager takes calls
//! from clients on its channels 16–23 only, and answers queries and the requests above.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod command;

use alloc::string::String;
use core::sync::atomic::AtomicU32;
use log::{info, warn};
use warden_microkit::{get_mr, set_mr, ChannelSet, Handler, MessageInfo};
use warden_protocol::ring::SLOT_BYTES;
use warden_protocol::services::{
    console_line, entropy_reply, time_reply, ReplyError, ENTROPY, MAX_ENTROPY_BYTES, TIME,
};
use warden_protocol::{Consumer, Message, Outbox, Producer, RingError, RingMemory};

use command::{CallError, Services};

/// What this PD expects of the system description.
pub mod interface {
    use warden_microkit::Channel;

    /// The console driver.
    pub const CONSOLE: Channel = Channel::new(1);
    /// The clock driver (this end calls).
    pub const CLOCK: Channel = Channel::new(2);
    /// The entropy driver (this end calls).
    pub const ENTROPY: Channel = Channel::new(3);
    /// The device manager (this end calls).
    pub const MANAGER: Channel = Channel::new(4);
    /// The console's rings: (vaddr symbol, size symbol), lines in then output.
    pub const REGIONS: [(&str, &str); 2] = [
        ("from_console", "from_console_size"),
        ("to_console", "to_console_size"),
    ];
}

/// The prompt.
pub const PROMPT: &str = "warden> ";
/// Pieces of output that may wait for room on the console's ring before the shell stops
/// taking lines (a `tree` of the core's 96 devices is about a dozen).
const MAX_WAITING: usize = 64;

/// The calls, made for real.
struct Calls;

impl Services for Calls {
    fn manager(&mut self, call: &Message) -> Result<Message, CallError> {
        warden_driver::call(interface::MANAGER, call)
    }

    fn time(&mut self) -> Result<u64, ReplyError> {
        let reply = interface::CLOCK.pp_call(MessageInfo::new(TIME, 0));
        time_reply(reply.label(), usize::from(reply.count()), get_mr)
    }

    fn entropy(&mut self, bytes: usize) -> Result<([u8; MAX_ENTROPY_BYTES], usize), ReplyError> {
        set_mr(0, bytes as u64);
        let reply = interface::ENTROPY.pp_call(MessageInfo::new(ENTROPY, 1));
        entropy_reply(reply.label(), usize::from(reply.count()), get_mr)
    }
}

/// The shell.
pub struct Shell {
    lines: Option<Consumer<'static>>,
    output: Option<Outbox<'static>>,
    greeted: bool,
    /// Output went onto the ring and the console asked for a signal.
    signal: bool,
}

impl Shell {
    /// Writes `text` to the console, `\n` as CRLF, in slot-sized pieces.
    fn write(&mut self, text: &str) {
        let Some(output) = self.output.as_mut() else {
            return;
        };
        let mut piece = String::new();
        for character in text.chars() {
            if piece.len() + 2 + character.len_utf8() > SLOT_BYTES {
                self.signal |= send(output, &piece);
                piece.clear();
            }
            if character == '\n' {
                piece.push('\r');
            }
            piece.push(character);
        }
        if !piece.is_empty() {
            self.signal |= send(output, &piece);
        }
    }

    /// Puts waiting output on the ring and notifies the console if it asked, or if output is
    /// still on the ring when the console has just notified (it takes a ring's worth at a
    /// time and then says so).
    fn flush(&mut self, console_notified: bool) {
        let asked = self.output.as_mut().is_some_and(Outbox::flush);
        let left = console_notified && self.output.as_ref().is_some_and(Outbox::unconsumed);
        if core::mem::take(&mut self.signal) || asked || left {
            interface::CONSOLE.notify();
        }
    }

    fn run_line(&mut self, bytes: &[u8]) {
        let mut out = String::new();
        match console_line(bytes) {
            None => {
                warn!("shell: the console sent a malformed line; ignored");
                out.push_str("error: malformed line\n");
            }
            Some(line) => {
                if !line.trim().is_empty() {
                    info!("shell: {PROMPT}{line}");
                }
                match command::parse(line) {
                    Ok(command) => command::run(command, &mut Calls, &mut out),
                    Err(error) => {
                        use core::fmt::Write;
                        let _ = writeln!(out, "{error}");
                    }
                }
            }
        }
        out.push_str(PROMPT);
        self.write(&out);
    }

    /// Runs the lines the console sent: at most a ring's worth per notification, and none
    /// while much output waits for the console (a console that sends lines faster than it
    /// takes output cannot make the shell's memory grow). Lines left on the ring wait for the
    /// console's next notification, which comes when it takes output (every line is answered
    /// with a prompt at least).
    fn drain_lines(&mut self) {
        let mut buffer = [0u8; SLOT_BYTES];
        let batch = self.lines.as_ref().map_or(0, Consumer::capacity);
        for _ in 0..batch {
            if self
                .output
                .as_ref()
                .is_some_and(|output| output.waiting() > MAX_WAITING)
            {
                return;
            }
            let Some(lines) = self.lines.as_mut() else {
                return;
            };
            match lines.pop_or_arm(&mut buffer) {
                Ok(Some(length)) => {
                    let line = buffer.get(..length).unwrap_or_default().to_vec();
                    self.run_line(&line);
                }
                Ok(None) => return,
                Err(RingError::PeerSlotCorrupt { length }) => {
                    warn!("shell: the console wrote a slot of {length} bytes; skipped");
                }
                Err(error) => {
                    warn!("shell: the console's ring is corrupt ({error:?})");
                    return;
                }
            }
        }
    }
}

/// Queues one piece of output; returns whether to notify the console.
fn send(output: &mut Outbox<'static>, piece: &str) -> bool {
    output.send_bytes(piece.as_bytes()).unwrap_or_else(|_| {
        warn!(
            "shell: {} bytes of output do not fit a slot; dropped",
            piece.len()
        );
        false
    })
}

impl Handler for Shell {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(interface::CONSOLE) {
            if !self.greeted {
                self.greeted = true;
                info!("shell: the console is up");
                self.write("\nWarden shell: 'help' lists the commands.\n");
                self.write(PROMPT);
            }
            self.drain_lines();
            self.flush(true);
        }
        Ok(())
    }
}

/// The PD's `init`.
#[must_use]
pub fn init() -> Shell {
    let ring = |words: Option<&'static [AtomicU32]>| RingMemory::over(words?).ok();
    let lines = ring(warden_microkit::memory_region_words!(
        from_console,
        from_console_size
    ))
    .map(Consumer::new);
    let output = ring(warden_microkit::memory_region_words!(
        to_console,
        to_console_size
    ))
    .map(|memory| Outbox::new(Producer::new(memory)));
    if let Some(lines) = lines.as_ref() {
        let _ = lines.arm_signal();
    }
    if lines.is_none() || output.is_none() {
        warn!("shell: the console's rings are not mapped; the shell has no console");
    }
    info!("shell: waiting for the console");
    Shell {
        lines,
        output,
        greeted: false,
        signal: false,
    }
}
