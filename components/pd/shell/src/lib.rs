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
//!   `remove DEV`, `shutdown`: requests into the manager's queue, as an administrative client;
//!   the manager accepts one with a number and later queues its completion for the shell,
//!   which prints the outcome before its next prompt (lines typed meanwhile wait on the ring);
//! * `events [N]`: subscribes to every kind of the manager's events and prints them as they
//!   come, until a line is typed or N have come;
//! * `stats`, `trace [N]`: the manager's counters, and the last records of its trace ring;
//! * `time`, `random [N]`: calls into the clock and entropy drivers.
//!
//! Channels: 1 — the console driver (notifications both ways; rings `from_console` and
//! `to_console`); 2 — the clock driver, 3 — the entropy driver, 4 — the device manager (this
//! end calls them; they have higher priorities, as calls require). The manager takes calls
//! from clients on its channels 16–23 only, and answers queries and the requests above; it
//! notifies channel 4 when events are queued for the shell, which takes them with `NextEvent`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod command;

use alloc::string::String;
use core::cell::Cell;
use core::fmt::Write;
use log::{info, warn};
use warden_microkit::{ChannelSet, Handler};
use warden_protocol::ring::SLOT_BYTES;
use warden_protocol::EventKind;
use warden_protocol::Message;
use warden_services::admin;
use warden_services::call::{CallError, Caller};
use warden_services::console;
use warden_services::{clock, entropy, ReplyError};

use command::{Services, Wait};

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
/// Events taken per notification from the manager: more than its queues for the shell hold
/// (32 events and 8 completions), so one notification drains them; a manager that sends more
/// is reported.
const MAX_EVENTS: usize = 256;

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
    /// What the last command waits for: the prompt comes once it is over.
    wait: Option<Wait>,
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

    /// The answer to one line, and what it leaves the shell waiting for.
    fn run_line(bytes: &[u8]) -> (String, Option<Wait>) {
        let mut out = String::new();
        let mut wait = None;
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
                    Ok(command) => wait = command::run(command, &mut Calls, &mut out),
                    Err(error) => {
                        let _ = writeln!(out, "{error}");
                    }
                }
            }
        }
        if wait.is_none() {
            out.push_str(PROMPT);
        }
        (out, wait)
    }

    /// Runs the lines the console sent: at most a ring's worth per notification, none while
    /// much output waits for the console (a console that sends lines faster than it takes
    /// output cannot make the shell's memory grow), and none while a request's outcome is
    /// awaited. Lines left on the ring wait for the console's next notification, which comes
    /// when it takes output (every line is answered with a prompt at least), or for the
    /// outcome. A line typed while events are printed stops them.
    fn drain_lines(&mut self) {
        let mut answers = alloc::vec::Vec::new();
        let awaiting = Cell::new(matches!(self.wait, Some(Wait::Completion { .. })));
        let mut wait = self.wait.take();
        if let Some(console) = self.console.as_mut() {
            console.take_lines(
                |_, line| {
                    if let Some(Wait::Events { .. }) = wait {
                        wait = None;
                        answers.push(Self::stop_events());
                        return;
                    }
                    let (answer, next) = Self::run_line(line);
                    answers.push(answer);
                    awaiting.set(matches!(next, Some(Wait::Completion { .. })));
                    wait = next;
                },
                |console| awaiting.get() || console.waiting() > MAX_WAITING,
            );
        }
        self.wait = wait;
        for answer in answers {
            self.write(&answer);
        }
    }

    /// Stops printing events: the subscription is dropped (events already queued are taken
    /// and not printed).
    fn stop_events() -> String {
        let mut out = String::new();
        if let Err(error) = admin::Client(Calls).subscribe(0) {
            warn!("shell: the manager did not take the unsubscription: {error:?}");
        }
        out.push_str("events: stopped\n");
        out.push_str(PROMPT);
        out
    }

    /// Takes the events the manager queued for the shell: the outcome of the request it waits
    /// for ends the wait; events are printed while `events` runs, and dropped otherwise.
    fn drain_events(&mut self) {
        let mut out = String::new();
        let mut taken = 0;
        loop {
            if taken == MAX_EVENTS {
                warn!(
                    "shell: the manager sent more than {MAX_EVENTS} events at once; the rest wait"
                );
                break;
            }
            let event = match admin::Client(Calls).next_event() {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(error) => {
                    warn!("shell: the manager's event did not make sense: {error:?}");
                    break;
                }
            };
            taken += 1;
            match (&mut self.wait, event.kind) {
                (Some(Wait::Completion { request, what }), EventKind::Completed)
                    if *request == event.request =>
                {
                    command::describe_lost(&event, &mut out);
                    let _ = write!(out, "{what}: ");
                    command::outcome(&event, &mut out);
                    out.push_str(PROMPT);
                    self.wait = None;
                }
                (Some(Wait::Events { left }), _) => {
                    command::describe_event(&event, &mut out);
                    *left = left.saturating_sub(1);
                    if *left == 0 {
                        if let Err(error) = admin::Client(Calls).subscribe(0) {
                            warn!("shell: the manager did not take the unsubscription: {error:?}");
                        }
                        out.push_str(PROMPT);
                        self.wait = None;
                    }
                }
                // The outcome of a request the shell no longer waits for.
                (_, EventKind::Completed) => command::describe_event(&event, &mut out),
                // Left over from an `events` that was stopped: only what was lost is said.
                _ => command::describe_lost(&event, &mut out),
            }
        }
        self.write(&out);
    }
}

impl Handler for Shell {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(interface::MANAGER) {
            self.drain_events();
        }
        if channels.contains(interface::CONSOLE) && !self.greeted {
            self.greeted = true;
            info!("shell: the console is up");
            self.write("\nWarden shell: 'help' lists the commands.\n");
            self.write(PROMPT);
        }
        if self.greeted {
            // Lines held back while an outcome was awaited run once it is in.
            self.drain_lines();
            if self
                .console
                .as_mut()
                .is_some_and(|console| console.flush(channels.contains(interface::CONSOLE)))
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
        wait: None,
    }
}
