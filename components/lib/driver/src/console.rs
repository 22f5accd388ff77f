//! The console: what a UART driver PD offers the shell PD, written once for every UART.
//!
//! The driver feeds each received byte to [`Console::receive`], which edits the line
//! ([`LineEditor`]: printable ASCII, backspace/DEL, CR/LF/CRLF), hands back the echo for the
//! terminal and, when the user ends a line, puts it on the ring to the shell; the driver then
//! notifies the shell. When the shell notifies, the driver writes what it queued with
//! [`Console::drain_output`] and notifies it back (room was made). The rings and their
//! messages are `warden_services::console`'s (this is its server half); the regions are mapped
//! with the setvar symbols [`SHELL_REGIONS`].
//!
//! A driver whose system description maps no shell rings still echoes and edits; its lines
//! are logged (a console without a shell).
//!
//! Beside the shell, the console serves a client in sDDF's serial protocol
//! (`warden_services::sddf_serial`) when the description maps sDDF's four serial regions: what
//! the client queues is written to the UART, on channel [`SERIAL_CLIENT`]. What the UART
//! receives goes to the shell when the description gives one; otherwise, raw and unechoed as
//! sDDF's UART drivers hand it over, to the sDDF client (the description chooses who reads the
//! console).
//!
//! [`UartConsole`] is the whole console driver for any UART that implements [`Uart`] (the
//! PL011 and the Meson UART do): it binds the device in its one device map, resets it in the
//! probe, and serves the console on the channels [`UART_IRQ`] and [`SHELL`].

use core::fmt::Display;

use log::{info, warn};
use warden_microkit::{Channel, ChannelSet, DeviceRegion, DeviceRegisters};
use warden_services::console::{Server, MAX_LINE_BYTES};
use warden_services::sddf_serial;
use warden_vocabulary::DeviceId;

/// The setvar symbols of the console's rings: (vaddr symbol, size symbol), driver → shell
/// (input lines) then shell → driver (output).
pub const SHELL_REGIONS: [(&str, &str); 2] = [
    warden_interface::console::TO_SHELL,
    warden_interface::console::FROM_SHELL,
];

/// The UART's interrupt, in a console driver PD.
pub const UART_IRQ: Channel = warden_interface::console::UART_IRQ;
/// The shell (notifications both ways), in a console driver PD.
pub const SHELL: Channel = warden_interface::console::SHELL;
/// The sDDF serial client (notifications both ways), in a console driver PD.
pub const SERIAL_CLIENT: Channel = warden_interface::console::SERIAL_CLIENT;

/// What a console driver PD expects of the system description (every UART's the same).
pub mod interface {
    use warden_microkit::Channel;

    /// The device manager.
    pub const MANAGER: Channel = crate::MANAGER;
    /// The UART's interrupt.
    pub const UART_IRQ: Channel = super::UART_IRQ;
    /// The shell (notifications both ways).
    pub const SHELL: Channel = super::SHELL;
    /// The setvar symbols of the ring maps: (vaddr symbol, size symbol).
    pub const REGIONS: [(&str, &str); 2] = crate::MANAGER_REGIONS;
    /// The shell's rings.
    pub const SHELL_REGIONS: [(&str, &str); 2] = super::SHELL_REGIONS;
    /// The sDDF serial client (notifications both ways).
    pub const SERIAL_CLIENT: Channel = super::SERIAL_CLIENT;
    /// sDDF's serial regions (optional, like the shell's rings).
    pub const SDDF_REGIONS: [(&str, &str); 4] = [
        warden_interface::console::SERIAL_RX_QUEUE,
        warden_interface::console::SERIAL_RX_DATA,
        warden_interface::console::SERIAL_TX_QUEUE,
        warden_interface::console::SERIAL_TX_DATA,
    ];
    /// The device map: (vaddr symbol, size symbol, paddr symbol).
    pub const DEVICE_REGIONS: [(&str, &str, &str); 1] = [warden_interface::console::UART];
}

/// How many times a UART driver polls its device for a condition (room in the transmit FIFO)
/// before it gives up on the device.
///
/// One character at 9600 baud takes about a millisecond; this many register reads take far
/// longer on any hardware this runs on, so running out means the device is stuck rather than
/// slow (for instance a transmitter held by flow control or left disabled).
pub const SPIN_LIMIT: u32 = 100_000;

/// The transmitter did not take a byte within [`SPIN_LIMIT`] polls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxStuck {
    /// How many bytes of the request went into the FIFO before it stopped draining.
    pub written: usize,
}

impl core::fmt::Display for TxStuck {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            formatter,
            "transmit FIFO stuck full after {} bytes",
            self.written
        )
    }
}

/// A write that stopped: how much of it went out first.
pub trait Stopped {
    /// How many bytes were written before it stopped.
    fn written(&self) -> usize;
}

impl Stopped for TxStuck {
    fn written(&self) -> usize {
        self.written
    }
}

/// A UART a console driver can drive: what [`UartConsole`] needs of the device's logic.
pub trait Uart: Sized {
    /// The driver's name.
    const NAME: &'static str;
    /// The compatible strings it binds.
    const COMPATIBLE: &'static [&'static str];
    /// Why a probe failed.
    type ProbeError: Display;
    /// Why a write stopped.
    type WriteError: Display + Stopped;
    /// Resets the device in `registers` and sets it up for the console: receive interrupts
    /// on, everything received or queued before dropped.
    ///
    /// # Errors
    /// The registers are not this UART's, or it cannot be set up.
    fn probe(registers: DeviceRegisters) -> Result<Self, Self::ProbeError>;
    /// The next received byte, if any.
    fn read_byte(&mut self) -> Option<u8>;
    /// Transmits `bytes`.
    ///
    /// # Errors
    /// The transmitter is stuck.
    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), Self::WriteError>;
    /// Reads and clears the interrupt's cause (drain with [`Uart::read_byte`] afterwards).
    fn acknowledge_interrupt(&mut self);
}

/// The console driver of a [`Uart`].
pub struct UartConsole<U: Uart> {
    region: Option<DeviceRegion>,
    uart: Option<(DeviceId, U)>,
    console: Console,
    sddf: Option<sddf_serial::Server>,
    /// The sDDF client's receive queue was found full, and that was reported.
    sddf_full: bool,
    /// The sDDF client's transmit queue was found corrupt, and that was reported.
    sddf_corrupt: bool,
    /// The transmitter stuck while writing the sDDF client's output, and that was reported.
    sddf_stuck: bool,
}

impl<U: Uart> UartConsole<U> {
    /// A console driver for the device in `region` (the PD's device map) with the shell's
    /// rings of this PD's system description.
    #[must_use]
    pub fn new(region: Option<DeviceRegion>) -> Self {
        Self {
            region,
            uart: None,
            console: Console::from_system(),
            sddf: sddf_serial::Regions::from_system()
                .map(|regions| sddf_serial::Server::new(SERIAL_CLIENT, regions)),
            sddf_full: false,
            sddf_corrupt: false,
            sddf_stuck: false,
        }
    }

    /// The console driver PD of this system description: the UART in its device map
    /// ([`interface::DEVICE_REGIONS`]), registered with the manager.
    #[must_use]
    pub fn start() -> crate::DriverPd<Self> {
        crate::DriverPd::start(Self::new(warden_microkit::device_region!(
            uart_vaddr, uart_size, uart_paddr
        )))
    }

    fn receive(&mut self) {
        let Some((_, uart)) = self.uart.as_mut() else {
            return;
        };
        // Input is the shell's when there is one, else the sDDF client's (else it is logged).
        if let Some(sddf) = self.sddf.as_mut().filter(|_| !self.console.has_shell()) {
            let mut batch = [0u8; 64];
            let mut length = 0;
            let mut dropped = 0;
            let mut corrupt = false;
            // At most a queue's worth of reads per interrupt: a device that never reports its
            // FIFO empty does not keep this PD here.
            for reads in 0..=sddf_serial::MAX_CAPACITY {
                let byte = uart.read_byte();
                if let Some(byte) = byte {
                    if let Some(slot) = batch.get_mut(length) {
                        *slot = byte;
                        length += 1;
                    }
                }
                let last = byte.is_none() || reads == sddf_serial::MAX_CAPACITY;
                if length == batch.len() || (last && length > 0) {
                    let moved = sddf.receive(batch.get(..length).unwrap_or_default());
                    dropped += moved.refused;
                    corrupt |= moved.corrupt;
                    length = 0;
                }
                if last {
                    break;
                }
            }
            if dropped == 0 {
                self.sddf_full = false;
            } else if !self.sddf_full {
                // Once until the client reads again: a client that never reads is no flood.
                self.sddf_full = true;
                warn!(
                    "console: the sDDF serial client's receive queue is {}; {dropped} characters dropped",
                    if corrupt { "corrupt (its head is impossible)" } else { "full" }
                );
            }
            return;
        }
        let mut notify = false;
        while let Some(byte) = uart.read_byte() {
            notify |= self
                .console
                .receive(byte, &mut |bytes| transmit(uart, bytes));
        }
        if notify {
            SHELL.notify();
        }
    }

    /// Writes what the sDDF client queued; while no UART is bound it stays queued (the client
    /// waits for room, and nothing it wrote is lost across a rebind or a restart).
    fn send_sddf_output(&mut self) {
        let (Some((_, uart)), Some(sddf)) = (self.uart.as_mut(), self.sddf.as_mut()) else {
            return;
        };
        // A stuck transmitter stops the writing where it stuck; what it did not take stays
        // queued for the next notification, interrupt or bind (reported once until it moves).
        let mut stuck = None;
        let moved = sddf.transmit(&mut |bytes| match uart.write_bytes(bytes) {
            Ok(()) => bytes.len(),
            Err(error) => {
                let written = error.written();
                stuck = Some(error);
                written
            }
        });
        match stuck {
            Some(error) if !self.sddf_stuck => {
                self.sddf_stuck = true;
                warn!("console: {error}; the sDDF client's output waits");
            }
            Some(_) => {}
            None => self.sddf_stuck = false,
        }
        // Reported once until the client's queue has carried characters again: a client that
        // notifies in a loop over a scribbled queue (or one that flips it between scribbled
        // and empty) does not flood the log.
        if moved.characters > 0 {
            self.sddf_corrupt = false;
        }
        if moved.corrupt && !self.sddf_corrupt {
            self.sddf_corrupt = true;
            warn!("console: the sDDF serial client's transmit queue is corrupt (its tail is impossible); nothing written until it is sane again");
        }
    }

    /// Writes what the shell queued, or drops it while no UART is bound (so that the ring
    /// keeps moving and its signal stays armed); notifies the shell when anything was taken.
    fn send_output(&mut self) {
        let taken = match self.uart.as_mut() {
            Some((_, uart)) => self
                .console
                .drain_output(&mut |bytes| transmit(uart, bytes)),
            None => self.console.drain_output(&mut |_| {}),
        };
        if taken {
            SHELL.notify();
        }
    }
}

fn transmit<U: Uart>(uart: &mut U, bytes: &[u8]) {
    if let Err(error) = uart.write_bytes(bytes) {
        warn!("console: {error}");
    }
}

impl<U: Uart> crate::Driver for UartConsole<U> {
    fn name(&self) -> &str {
        U::NAME
    }

    fn compatible(&self) -> &[&str] {
        U::COMPATIBLE
    }

    fn probe(&mut self, probe: &crate::Probe) -> crate::Answer {
        if self.uart.is_some() {
            return crate::Answer::NotMine;
        }
        let Some(registers) = probe.registers(&[self.region]) else {
            return crate::Answer::NotMine;
        };
        match U::probe(registers) {
            Ok(uart) => {
                self.uart = Some((probe.callback.device, uart));
                self.console.reset();
                if self.console.has_shell() {
                    info!(
                        "console: {} bound; console output and line input for the shell",
                        U::NAME
                    );
                    if self.sddf.is_some() {
                        info!("console: serving an sDDF serial client's output beside the shell");
                    }
                    // The shell greets when it hears the console is up.
                    SHELL.notify();
                } else if self.sddf.is_some() {
                    info!(
                        "console: {} bound; output and input for an sDDF serial client",
                        U::NAME
                    );
                } else {
                    info!(
                        "console: {} bound; no shell is mapped, lines are logged",
                        U::NAME
                    );
                }
                // Output the shell queued before (a restart of this PD, a rebind) goes out now.
                self.send_output();
                self.send_sddf_output();
                crate::Answer::Ok
            }
            Err(error) => {
                warn!("console: {error}");
                crate::Answer::Failed(1)
            }
        }
    }

    fn remove(&mut self, callback: &crate::Callback) -> crate::Answer {
        if self
            .uart
            .as_ref()
            .is_some_and(|(device, _)| *device == callback.device)
        {
            self.uart = None;
        }
        crate::Answer::Ok
    }

    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(UART_IRQ) {
            if let Some((_, uart)) = self.uart.as_mut() {
                uart.acknowledge_interrupt();
            }
            self.receive();
            // Output left queued by a stuck transmitter goes on with any interrupt (a client
            // whose queue is full has nothing to notify about).
            self.send_sddf_output();
            UART_IRQ.irq_ack();
        }
        if channels.contains(SHELL) {
            self.send_output();
        }
        if channels.contains(SERIAL_CLIENT) {
            self.send_sddf_output();
        }
    }
}

/// What a UART driver keeps for its console: the line being edited and the rings to the shell.
#[derive(Debug)]
pub struct Console {
    editor: LineEditor,
    shell: Option<Server>,
}

impl Console {
    /// A console for this shell (`None`: a console with no shell, whose lines are logged).
    #[must_use]
    pub fn new(shell: Option<Server>) -> Self {
        Self {
            editor: LineEditor::new(),
            shell,
        }
    }

    /// The console of this PD's system description (maps [`SHELL_REGIONS`]).
    #[must_use]
    pub fn from_system() -> Self {
        Self::new(Server::from_system())
    }

    /// Whether a shell's rings are mapped.
    #[must_use]
    pub fn has_shell(&self) -> bool {
        self.shell.is_some()
    }

    /// Forgets the line being edited (the UART was reset).
    pub fn reset(&mut self) {
        self.editor = LineEditor::new();
    }

    /// One received byte: `write` gets what goes back to the terminal. Returns whether to
    /// notify the shell (a line went onto its ring and it asked for a signal).
    pub fn receive(&mut self, byte: u8, write: &mut dyn FnMut(&[u8])) -> bool {
        let outcome = self.editor.feed(byte);
        write(outcome.echo.as_bytes());
        let line = match outcome.event {
            None => return false,
            Some(LineEvent::Line(line)) => line,
            Some(LineEvent::Overlong { length }) => {
                warn!("console: a line of {length} characters is too long; dropped");
                write(b"(line too long; dropped)\r\n");
                // An empty line: the shell prompts again.
                ""
            }
        };
        let Some(shell) = self.shell.as_mut() else {
            info!("console: line '{line}' (no shell)");
            return false;
        };
        match shell.send_line(line) {
            Ok(notify) => notify,
            Err(error) => {
                warn!("console: the shell's ring refused a line ({error:?}); dropped");
                write(b"(the shell is busy; line dropped)\r\n");
                false
            }
        }
    }

    /// Writes what the shell queued (see `warden_services::console::Server::take_output`);
    /// returns whether anything was taken, and then the shell is to be notified.
    pub fn drain_output(&mut self, write: &mut dyn FnMut(&[u8])) -> bool {
        self.shell
            .as_mut()
            .is_some_and(|shell| shell.take_output(|bytes| write(bytes)))
    }
}

/// How many bytes a line may hold: as many as a console line may have on the way to the shell.
pub const LINE_CAPACITY: usize = MAX_LINE_BYTES;

/// What the terminal should be sent back for one received byte (at most three bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Echo {
    bytes: [u8; 3],
    length: usize,
}

impl Echo {
    const NOTHING: Self = Self {
        bytes: [0; 3],
        length: 0,
    };
    /// Moves the cursor back over the erased character, blanks it and moves back again.
    const ERASE: Self = Self {
        bytes: *b"\x08 \x08",
        length: 3,
    };
    const NEWLINE: Self = Self {
        bytes: *b"\r\n\0",
        length: 2,
    };

    const fn byte(byte: u8) -> Self {
        Self {
            bytes: [byte, 0, 0],
            length: 1,
        }
    }

    /// The bytes to transmit.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.length).unwrap_or_default()
    }
}

/// A line the user finished with CR or LF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEvent<'line> {
    /// The line, without its terminator.
    Line(&'line str),
    /// The line was longer than [`LINE_CAPACITY`]: it is rejected whole rather than cut.
    Overlong {
        /// How many characters it had.
        length: usize,
    },
}

/// The result of feeding one byte to the [`LineEditor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedOutcome<'line> {
    /// What to send back to the terminal.
    pub echo: Echo,
    /// A finished line, if this byte ended one.
    pub event: Option<LineEvent<'line>>,
}

/// Line editing for a serial console, without allocation: printable ASCII is stored and
/// echoed, backspace and DEL erase the last character, CR, LF or CRLF end the line. Other
/// bytes (control characters, anything outside ASCII) are ignored: the console speaks ASCII.
///
/// A line longer than [`LINE_CAPACITY`] keeps being echoed and counted, so erasing works as
/// the user sees it; if it is still too long when it ends it is reported as
/// [`LineEvent::Overlong`] instead of being cut short silently.
#[derive(Clone, Debug)]
pub struct LineEditor {
    buffer: [u8; LINE_CAPACITY],
    /// Characters in the line, including those past the buffer's end.
    length: usize,
    after_carriage_return: bool,
    line_finished: bool,
}

impl Default for LineEditor {
    fn default() -> Self {
        Self::new()
    }
}

impl LineEditor {
    /// An empty line.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            buffer: [0; LINE_CAPACITY],
            length: 0,
            after_carriage_return: false,
            line_finished: false,
        }
    }

    /// Characters typed into the current line so far.
    #[must_use]
    pub fn pending(&self) -> usize {
        if self.line_finished {
            0
        } else {
            self.length
        }
    }

    /// Takes one received byte.
    pub fn feed(&mut self, byte: u8) -> FeedOutcome<'_> {
        // The finished line was lent out by the previous call; only now may it be reused.
        if self.line_finished {
            self.line_finished = false;
            self.length = 0;
        }
        let after_carriage_return =
            core::mem::replace(&mut self.after_carriage_return, byte == b'\r');
        let mut outcome = FeedOutcome {
            echo: Echo::NOTHING,
            event: None,
        };
        match byte {
            // The LF of a CRLF: the CR already ended the line.
            b'\n' if after_carriage_return => {}
            b'\r' | b'\n' => {
                self.line_finished = true;
                outcome.echo = Echo::NEWLINE;
                outcome.event = Some(self.finished_line());
            }
            // Erasing on an empty line does nothing (and echoes nothing): falls to `_`.
            0x08 | 0x7F if self.length > 0 => {
                self.length -= 1;
                outcome.echo = Echo::ERASE;
            }
            0x20..=0x7E => {
                if let Some(slot) = self.buffer.get_mut(self.length) {
                    *slot = byte;
                }
                self.length = self.length.saturating_add(1);
                outcome.echo = Echo::byte(byte);
            }
            _ => {}
        }
        outcome
    }

    fn finished_line(&self) -> LineEvent<'_> {
        match self.buffer.get(..self.length) {
            // Only printable ASCII is ever stored, so the conversion cannot fail.
            Some(line) => LineEvent::Line(core::str::from_utf8(line).unwrap_or_default()),
            None => LineEvent::Overlong {
                length: self.length,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicU32;
    use warden_protocol::ring::SLOT_BYTES;

    #[test]
    fn the_generated_sddf_serial_symbols_are_those_the_server_reads() {
        // systems/interfaces.toml names them for the system description (the console's and
        // the serial client's); `sddf_serial::Regions::from_system` reads these.
        assert_eq!(interface::SDDF_REGIONS, sddf_serial::SYMBOLS);
        let client = [
            warden_interface::serial_client::SERIAL_RX_QUEUE,
            warden_interface::serial_client::SERIAL_RX_DATA,
            warden_interface::serial_client::SERIAL_TX_QUEUE,
            warden_interface::serial_client::SERIAL_TX_DATA,
        ];
        assert_eq!(client, sddf_serial::SYMBOLS);
    }
    use warden_protocol::{Consumer, Producer, RingMemory, RingStorage};

    /// A console over these rings, as [`Console::from_system`] makes one.
    fn console_over(
        to_shell: Option<&'static [AtomicU32]>,
        from_shell: Option<&'static [AtomicU32]>,
    ) -> Console {
        Console::new(Server::new(to_shell, from_shell))
    }

    /// Feeds `input`, collecting the echo and every event (lines owned for the test).
    fn edit(editor: &mut LineEditor, input: &[u8]) -> (Vec<u8>, Vec<Result<String, usize>>) {
        let mut echo = Vec::new();
        let mut events = Vec::new();
        for &byte in input {
            let outcome = editor.feed(byte);
            echo.extend_from_slice(outcome.echo.as_bytes());
            match outcome.event {
                Some(LineEvent::Line(line)) => events.push(Ok(line.to_owned())),
                Some(LineEvent::Overlong { length }) => events.push(Err(length)),
                None => {}
            }
        }
        (echo, events)
    }

    #[test]
    fn line_editor_echoes_and_returns_the_line_on_carriage_return() {
        let mut editor = LineEditor::new();
        let (echo, events) = edit(&mut editor, b"list\r");
        assert_eq!(echo, b"list\r\n");
        assert_eq!(events, [Ok("list".to_owned())]);
        assert_eq!(editor.pending(), 0);
    }

    #[test]
    fn line_editor_counts_crlf_once_but_lf_and_cr_alone_each_end_a_line() {
        let mut editor = LineEditor::new();
        let (echo, events) = edit(&mut editor, b"a\r\nb\nc\r\r");
        assert_eq!(
            events,
            [
                Ok("a".to_owned()),
                Ok("b".to_owned()),
                Ok("c".to_owned()),
                Ok(String::new())
            ]
        );
        assert_eq!(echo, b"a\r\nb\r\nc\r\n\r\n");
    }

    #[test]
    fn line_editor_backspace_and_delete_erase_with_echo() {
        let mut editor = LineEditor::new();
        let (echo, events) = edit(&mut editor, b"lsx\x08\x7fs\r");
        assert_eq!(echo, b"lsx\x08 \x08\x08 \x08s\r\n");
        assert_eq!(events, [Ok("ls".to_owned())]);
    }

    #[test]
    fn line_editor_backspace_on_an_empty_line_does_nothing() {
        let mut editor = LineEditor::new();
        let (echo, events) = edit(&mut editor, b"\x08\x7fok\r");
        assert_eq!(echo, b"ok\r\n");
        assert_eq!(events, [Ok("ok".to_owned())]);
    }

    #[test]
    fn line_editor_ignores_control_and_non_ascii_bytes() {
        let mut editor = LineEditor::new();
        let (echo, events) = edit(&mut editor, b"a\x1b\x00\xc3\xa9b\r");
        assert_eq!(echo, b"ab\r\n");
        assert_eq!(events, [Ok("ab".to_owned())]);
    }

    #[test]
    fn line_editor_reports_an_overlong_line_instead_of_truncating_it() {
        let mut editor = LineEditor::new();
        let mut input = vec![b'x'; LINE_CAPACITY + 5];
        input.push(b'\r');
        input.extend_from_slice(b"next\r");
        let (echo, events) = edit(&mut editor, &input);
        assert_eq!(events, [Err(LINE_CAPACITY + 5), Ok("next".to_owned())]);
        assert_eq!(echo.len(), LINE_CAPACITY + 5 + 2 + 4 + 2);
    }

    #[test]
    fn line_editor_accepts_a_line_erased_back_to_capacity() {
        let mut editor = LineEditor::new();
        let mut input = vec![b'y'; LINE_CAPACITY];
        input.extend_from_slice(b"zz\x08\x08\r");
        let (_, events) = edit(&mut editor, &input);
        assert_eq!(events, [Ok("y".repeat(LINE_CAPACITY))]);
    }

    fn leaked_ring() -> &'static [AtomicU32] {
        Box::leak(Box::new(
            RingStorage::<{ RingMemory::words_needed(15) }>::new(),
        ))
        .words()
    }

    #[test]
    fn console_sends_finished_lines_to_the_shell_and_writes_its_output() {
        let (to_shell, from_shell) = (leaked_ring(), leaked_ring());
        let mut console = console_over(Some(to_shell), Some(from_shell));
        assert!(console.has_shell());
        // The shell's side.
        let mut lines = Consumer::new(RingMemory::over(to_shell).unwrap());
        let mut output = Producer::new(RingMemory::over(from_shell).unwrap());
        assert!(lines.arm_signal());

        let mut terminal = Vec::new();
        let mut notify = Vec::new();
        for &byte in b"trx\x7fee\r" {
            notify.push(console.receive(byte, &mut |bytes| terminal.extend_from_slice(bytes)));
        }
        assert_eq!(terminal, b"trx\x08 \x08ee\r\n");
        assert_eq!(
            notify,
            [false, false, false, false, false, false, true],
            "once, at the end"
        );
        let mut buffer = [0u8; SLOT_BYTES];
        let length = lines.try_pop(&mut buffer).unwrap().unwrap();
        assert_eq!(&buffer[..length], b"tree");

        terminal.clear();
        output.try_push(b"> ").unwrap();
        output.try_push(b"device tree\r\n").unwrap();
        assert!(console.drain_output(&mut |bytes| terminal.extend_from_slice(bytes)));
        assert_eq!(terminal, b"> device tree\r\n");
        assert!(!console.drain_output(&mut |_| panic!("nothing queued")));
        // It armed its signal when it went empty: the shell's next push asks for a notification.
        output.try_push(b"x").unwrap();
        assert!(output.signal_needed());
    }

    #[test]
    fn console_takes_a_ring_of_output_per_call() {
        let (to_shell, from_shell) = (leaked_ring(), leaked_ring());
        let mut console = console_over(Some(to_shell), Some(from_shell));
        let mut output = Producer::new(RingMemory::over(from_shell).unwrap());
        let mut written = 0;
        for _ in 0..15 {
            output.try_push(b"x").unwrap();
        }
        assert!(output.signal_needed(), "armed when the console started");
        assert!(console.drain_output(&mut |_| written += 1));
        assert_eq!(written, 15);
        // A shell refilling behind it: the next call takes the rest, then arms its signal.
        for _ in 0..3 {
            output.try_push(b"y").unwrap();
        }
        assert!(!output.signal_needed(), "a full ring's drain did not arm");
        assert!(console.drain_output(&mut |_| written += 1));
        assert_eq!(written, 18);
        output.try_push(b"z").unwrap();
        assert!(output.signal_needed(), "armed once empty");
        assert!(console.drain_output(&mut |_| written += 1));
        // Long output is written a turn at a time: slots of 100 bytes, three per turn (the
        // third passes the 256-byte budget), and the ring stays unarmed while some is left.
        for _ in 0..7 {
            output.try_push(&[b'l'; 100]).unwrap();
        }
        assert!(output.signal_needed(), "armed when the ring was drained");
        let mut bytes = 0;
        assert!(console.drain_output(&mut |piece| bytes += piece.len()));
        assert_eq!(bytes, 300, "one turn's worth");
        assert!(!output.signal_needed(), "output left: not armed");
        assert!(console.drain_output(&mut |piece| bytes += piece.len()));
        assert!(console.drain_output(&mut |piece| bytes += piece.len()));
        assert_eq!(bytes, 700, "all of it, over three turns");
        // A turn that ends on its budget with the ring empty asks for a signal all the same
        // (a review found the shell's next output stranded: nobody notified for it).
        assert!(
            output.signal_needed(),
            "the last turn found the ring empty and armed it"
        );
        for _ in 0..6 {
            output.try_push(&[b'm'; 100]).unwrap();
        }
        let mut more = 0;
        assert!(console.drain_output(&mut |piece| more += piece.len()));
        assert!(console.drain_output(&mut |piece| more += piece.len()));
        assert_eq!(more, 600, "two turns, the second ending on its budget");
        output.try_push(b"next").unwrap();
        assert!(
            output.signal_needed(),
            "armed: the next output notifies the console"
        );
    }

    #[test]
    fn console_reports_lines_it_cannot_deliver() {
        let (to_shell, from_shell) = (leaked_ring(), leaked_ring());
        let mut console = console_over(Some(to_shell), Some(from_shell));
        let mut terminal = Vec::new();
        // The shell never reads: 15 lines fill its ring, the 16th is refused, and said so.
        for _ in 0..16 {
            console.receive(b'\r', &mut |bytes| terminal.extend_from_slice(bytes));
        }
        assert!(terminal.ends_with(b"(the shell is busy; line dropped)\r\n"));
        // An overlong line is refused whole; the shell gets an empty line to prompt again.
        let (to_shell, from_shell) = (leaked_ring(), leaked_ring());
        let mut console = console_over(Some(to_shell), Some(from_shell));
        let mut lines = Consumer::new(RingMemory::over(to_shell).unwrap());
        terminal.clear();
        for _ in 0..=LINE_CAPACITY {
            console.receive(b'a', &mut |_| {});
        }
        console.receive(b'\n', &mut |bytes| terminal.extend_from_slice(bytes));
        assert_eq!(terminal, b"\r\n(line too long; dropped)\r\n");
        let mut buffer = [0u8; SLOT_BYTES];
        assert_eq!(lines.try_pop(&mut buffer), Ok(Some(0)));
    }

    #[test]
    fn console_without_a_shell_still_edits_and_a_corrupt_shell_ring_is_survived() {
        let mut console = console_over(None, None);
        assert!(!console.has_shell());
        let mut terminal = Vec::new();
        for &byte in b"ok\r" {
            assert!(!console.receive(byte, &mut |bytes| terminal.extend_from_slice(bytes)));
        }
        assert_eq!(terminal, b"ok\r\n");
        assert!(
            !console_over(Some(leaked_ring()), None).has_shell(),
            "half a shell is none"
        );

        // A shell that writes an impossible head: the console writes nothing and goes on.
        let (to_shell, from_shell) = (leaked_ring(), leaked_ring());
        let mut console = console_over(Some(to_shell), Some(from_shell));
        from_shell[0].store(1000, core::sync::atomic::Ordering::Release);
        assert!(!console.drain_output(&mut |_| panic!("garbage written")));
    }
}
