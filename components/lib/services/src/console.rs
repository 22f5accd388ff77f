//! The console service: a UART driver (the server) passes the shell (the client) each line the
//! user typed, and writes what the shell prints. Two rings and a notification on the channel
//! between them, both ways.
//!
//! On the driver → shell ring each message is one input line the driver edited and the user
//! ended with Enter (its bytes, no terminator, at most [`MAX_LINE_BYTES`] of UTF-8 without
//! control characters: [`line()`]); on the shell → driver ring each message is output bytes for
//! the UART, written as they are (up to a slot). The driver notifies the shell when its UART is
//! bound (the shell greets), when it puts a line on the ring and the shell asked for a signal,
//! and after it took output (room was made); the shell notifies the driver when it puts output
//! on the ring and the driver asked, or when the driver notified and output is still there (the
//! driver takes about [`OUTPUT_BYTES_PER_TURN`] at a time).
//!
//! The driver maps the rings as `to_shell` / `from_shell` ([`Server::from_system`]), the shell
//! as `from_console` / `to_console` ([`Client::from_system`]).

use core::sync::atomic::AtomicU32;

use log::warn;
use warden_protocol::ring::SLOT_BYTES;
use warden_protocol::{Consumer, Outbox, Producer, RingError, RingMemory};

/// Longest console input line, in bytes.
pub const MAX_LINE_BYTES: usize = 128;

/// A console input line from the driver, if it is one: at most [`MAX_LINE_BYTES`] of UTF-8
/// without control characters.
#[must_use]
pub fn line(bytes: &[u8]) -> Option<&str> {
    if bytes.len() > MAX_LINE_BYTES {
        return None;
    }
    let text = core::str::from_utf8(bytes).ok()?;
    (!text.chars().any(char::is_control)).then_some(text)
}

/// A ring pair over two maps: `None` (with a word why) unless both are there and fit a ring.
fn rings(
    outgoing: Option<&'static [AtomicU32]>,
    incoming: Option<&'static [AtomicU32]>,
) -> Option<(Producer<'static>, Consumer<'static>)> {
    let ring = |words: Option<&'static [AtomicU32]>| RingMemory::over(words?).ok();
    match (ring(outgoing), ring(incoming)) {
        (Some(outgoing), Some(incoming)) => {
            let incoming = Consumer::new(incoming);
            let _ = incoming.arm_signal();
            Some((Producer::new(outgoing), incoming))
        }
        (None, None) => None,
        _ => {
            warn!("console: only one of the two rings is mapped (or it is too small)");
            None
        }
    }
}

/// How many bytes of the shell's output the console driver writes per turn of its event loop
/// (the slot that reaches it is written whole). A UART is slow — on the host platform every
/// register access is a round trip to the device model — and a driver writing a ring's worth
/// (8 KiB) in one handler answers no heartbeat meanwhile: on a loaded machine the supervisor
/// stopped the console driver in the middle of a long `tree --dot`. Between turns the shell,
/// notified that room was made, sees output left and notifies back.
pub const OUTPUT_BYTES_PER_TURN: usize = 256;

/// Takes messages from `ring` until `budget` bytes were taken (at least one message, at most a
/// ring's worth), each handed to `each`; returns whether any was taken. A corrupt slot is
/// skipped, not the end of the ring. Stopping on the budget, it arms the ring's signal if the
/// ring is empty after all: otherwise a last message that used up the budget would leave
/// nobody to notify for the next one (the shell notifies back only while output is left).
fn take_batch(ring: &mut Consumer<'static>, budget: usize, mut each: impl FnMut(&[u8])) -> bool {
    let mut buffer = [0u8; SLOT_BYTES];
    let mut taken = false;
    let mut bytes = 0usize;
    for _ in 0..ring.capacity() {
        if bytes >= budget {
            // Armed only if empty (then the shell's next output notifies); if not, withdrawn,
            // and the shell, notified that room was made, notifies back for the rest.
            let _ = ring.arm_signal();
            return taken;
        }
        match ring.pop_or_arm(&mut buffer) {
            Ok(Some(length)) => {
                each(buffer.get(..length).unwrap_or_default());
                taken = true;
                bytes = bytes.saturating_add(length.max(1));
            }
            Ok(None) => return taken,
            Err(RingError::PeerSlotCorrupt { length }) => {
                warn!("console: the peer wrote a slot of {length} bytes; skipped");
            }
            Err(error) => {
                warn!("console: the peer's ring is corrupt ({error:?})");
                return taken;
            }
        }
    }
    taken
}

/// The driver's half.
#[derive(Debug)]
pub struct Server {
    to_shell: Producer<'static>,
    from_shell: Consumer<'static>,
}

impl Server {
    /// The console over the given maps (driver → shell, shell → driver); `None` without both.
    #[must_use]
    pub fn new(
        to_shell: Option<&'static [AtomicU32]>,
        from_shell: Option<&'static [AtomicU32]>,
    ) -> Option<Self> {
        let (to_shell, from_shell) = rings(to_shell, from_shell)?;
        Some(Self {
            to_shell,
            from_shell,
        })
    }

    /// The console of this PD's system description (`to_shell`, `from_shell`).
    #[must_use]
    pub fn from_system() -> Option<Self> {
        Self::new(
            warden_microkit::memory_region_words!(to_shell, to_shell_size),
            warden_microkit::memory_region_words!(from_shell, from_shell_size),
        )
    }

    /// Puts a finished line on the ring; returns whether to notify the shell.
    ///
    /// # Errors
    /// The ring's, when it is full (or corrupt).
    pub fn send_line(&mut self, line: &str) -> Result<bool, RingError> {
        self.to_shell.try_push(line.as_bytes())?;
        Ok(self.to_shell.signal_needed())
    }

    /// Hands what the shell queued to `write`, in order, about [`OUTPUT_BYTES_PER_TURN`] per
    /// call (a shell that refills the ring as fast as it drains, or one long output, cannot
    /// keep the driver from its other work: its heartbeats above all). Returns whether anything
    /// was taken; then notify the shell, which may be waiting for room and, if output is left,
    /// notifies back.
    pub fn take_output(&mut self, write: impl FnMut(&[u8])) -> bool {
        take_batch(&mut self.from_shell, OUTPUT_BYTES_PER_TURN, write)
    }
}

/// The shell's half.
#[derive(Debug)]
pub struct Client {
    lines: Consumer<'static>,
    output: Outbox<'static>,
    /// Output went onto the ring and the console asked for a signal.
    signal: bool,
}

impl Client {
    /// The console over the given maps (driver → shell, shell → driver); `None` without both.
    #[must_use]
    pub fn new(
        from_console: Option<&'static [AtomicU32]>,
        to_console: Option<&'static [AtomicU32]>,
    ) -> Option<Self> {
        let (to_console, from_console) = rings(to_console, from_console)?;
        Some(Self {
            lines: from_console,
            output: Outbox::new(to_console),
            signal: false,
        })
    }

    /// The console of this PD's system description (`from_console`, `to_console`).
    #[must_use]
    pub fn from_system() -> Option<Self> {
        Self::new(
            warden_microkit::memory_region_words!(from_console, from_console_size),
            warden_microkit::memory_region_words!(to_console, to_console_size),
        )
    }

    /// Pieces of output waiting for room on the ring.
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.output.waiting()
    }

    /// Queues `piece` (at most a slot) for the console.
    pub fn write(&mut self, piece: &[u8]) {
        match self.output.send_bytes(piece) {
            Ok(signal) => self.signal |= signal,
            Err(_) => warn!(
                "console: {} bytes of output do not fit a slot; dropped",
                piece.len()
            ),
        }
    }

    /// Takes the lines typed, at most a ring's worth, each handed to `each` as it came (the
    /// shell checks it with [`line()`]); stops early when `stop` says so (too much output is
    /// waiting). Returns whether any was taken.
    pub fn take_lines(
        &mut self,
        mut each: impl FnMut(&mut Self, &[u8]),
        stop: impl Fn(&Self) -> bool,
    ) -> bool {
        let mut buffer = [0u8; SLOT_BYTES];
        let mut taken = false;
        for _ in 0..self.lines.capacity() {
            if stop(self) {
                return taken;
            }
            match self.lines.pop_or_arm(&mut buffer) {
                Ok(Some(length)) => {
                    let line = buffer.get(..length).unwrap_or_default().to_vec();
                    each(self, &line);
                    taken = true;
                }
                Ok(None) => return taken,
                Err(RingError::PeerSlotCorrupt { length }) => {
                    warn!("console: the console wrote a slot of {length} bytes; skipped");
                }
                Err(error) => {
                    warn!("console: the console's ring is corrupt ({error:?})");
                    return taken;
                }
            }
        }
        taken
    }

    /// Puts waiting output on the ring; returns whether to notify the console: it asked, or
    /// output is still on the ring when it has just notified (it takes about
    /// [`OUTPUT_BYTES_PER_TURN`] at a time and then says so).
    pub fn flush(&mut self, console_notified: bool) -> bool {
        let asked = self.output.flush();
        let left = console_notified && self.output.unconsumed();
        core::mem::take(&mut self.signal) || asked || left
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn lines_are_checked() {
        assert_eq!(line(b"tree"), Some("tree"));
        assert_eq!(
            line("r\u{e9}sum\u{e9}".as_bytes()),
            Some("r\u{e9}sum\u{e9}")
        );
        assert_eq!(line(b""), Some(""));
        assert_eq!(line(b"\xff\xfe"), None, "not UTF-8");
        assert_eq!(line(b"a\x1b[2Jb"), None, "a control character");
        let longest = String::from("a").repeat(MAX_LINE_BYTES);
        assert_eq!(line(longest.as_bytes()), Some(longest.as_str()));
        assert_eq!(line(&[b'a'; MAX_LINE_BYTES + 1]), None, "too long");
    }
}
