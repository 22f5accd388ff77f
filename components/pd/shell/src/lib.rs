//! The shell PD: a command line on the console, for looking at and steering the device
//! manager and the drivers.
//!
//! It reads lines from the console driver (the UART's PD; the client half of
//! `warden_services::console`) and writes its output back through it; [`command`] parses a line
//! and runs it:
//!
//! * `tree`, `device DEV`: the device tree, walked one `QueryTree` call into the manager per
//!   device, with `QueryDriver` for the drivers' names;
//! * `unbind DEV`, `bind DEV DRIVER`, `rescan`, `suspend DEV|all`, `resume DEV|all`,
//!   `remove DEV`: requests into the manager's queue, as an administrative client;
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
use log::{info, warn};
use warden_microkit::{ChannelSet, Handler};
use warden_protocol::ring::SLOT_BYTES;
use warden_protocol::Message;
use warden_services::call::{CallError, Caller};
use warden_services::console;
use warden_services::{clock, entropy, ReplyError};

use command::Services;

/// What this PD expects of the system description.
pub mod interface {
    pub use warden_interface::shell::{CLOCK, CONSOLE, ENTROPY, MANAGER};
    use warden_interface::shell::{FROM_CONSOLE, TO_CONSOLE};

    /// The console's rings: (vaddr symbol, size symbol), lines in then output.
    pub const REGIONS: [(&str, &str); 2] = [FROM_CONSOLE, TO_CONSOLE];
}

/// The prompt.
pub const PROMPT: &str = "warden> ";
/// Pieces of output that may wait for room on the console's ring before the shell stops
/// taking lines (a `tree` of the core's 96 devices is about a dozen).
const MAX_WAITING: usize = 64;

/// The calls, made for real.
struct Calls;

impl Caller for Calls {
    fn call(&mut self, message: &Message) -> Result<Message, CallError> {
        warden_services::call::call(interface::MANAGER, message)
    }
}

impl Services for Calls {
    fn time(&mut self) -> Result<u64, ReplyError> {
        clock::Client(interface::CLOCK).now()
    }

    fn entropy(&mut self, bytes: usize) -> Result<entropy::Bytes, ReplyError> {
        entropy::Client(interface::ENTROPY).random(bytes)
    }
}

/// The shell.
pub struct Shell {
    console: Option<console::Client>,
    greeted: bool,
}

impl Shell {
    /// Writes `text` to the console, `\n` as CRLF, in slot-sized pieces.
    fn write(&mut self, text: &str) {
        let Some(console) = self.console.as_mut() else {
            return;
        };
        let mut piece = String::new();
        for character in text.chars() {
            if piece.len() + 2 + character.len_utf8() > SLOT_BYTES {
                console.write(piece.as_bytes());
                piece.clear();
            }
            if character == '\n' {
                piece.push('\r');
            }
            piece.push(character);
        }
        if !piece.is_empty() {
            console.write(piece.as_bytes());
        }
    }

    /// The answer to one line, prompt included.
    fn run_line(bytes: &[u8]) -> String {
        let mut out = String::new();
        match console::line(bytes) {
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
        out
    }

    /// Runs the lines the console sent: at most a ring's worth per notification, and none
    /// while much output waits for the console (a console that sends lines faster than it
    /// takes output cannot make the shell's memory grow). Lines left on the ring wait for the
    /// console's next notification, which comes when it takes output (every line is answered
    /// with a prompt at least).
    fn drain_lines(&mut self) {
        let mut answers = alloc::vec::Vec::new();
        if let Some(console) = self.console.as_mut() {
            console.take_lines(
                |_, line| answers.push(Self::run_line(line)),
                |console| console.waiting() > MAX_WAITING,
            );
        }
        for answer in answers {
            self.write(&answer);
        }
    }
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
            if self
                .console
                .as_mut()
                .is_some_and(|console| console.flush(true))
            {
                interface::CONSOLE.notify();
            }
        }
        Ok(())
    }
}

/// The PD's `init`.
#[must_use]
pub fn init() -> Shell {
    let console = console::Client::from_system();
    if console.is_none() {
        warn!("shell: the console's rings are not mapped; the shell has no console");
    }
    info!("shell: waiting for the console");
    Shell {
        console,
        greeted: false,
    }
}
