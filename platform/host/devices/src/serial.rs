//! What the UART models share: a transmitter that sends each byte to the output stream at once
//! unless it is held (then bytes wait in its FIFO), and a receiver whose characters wait in a
//! backlog of unlimited size until the receive FIFO has room (the host console is not a wire:
//! no input is lost to an overrun).

use std::collections::VecDeque;
use std::io::Write;

use crate::emit;

/// A UART's transmit side.
pub(crate) struct Transmitter {
    output: Box<dyn Write + Send>,
    /// Bytes written while held.
    fifo: VecDeque<u8>,
    held: bool,
    transmitted: u64,
    /// The model's name, for the log.
    model: &'static str,
}

impl Transmitter {
    pub(crate) fn new(output: Box<dyn Write + Send>, model: &'static str) -> Self {
        Self {
            output,
            fifo: VecDeque::new(),
            held: false,
            transmitted: 0,
            model,
        }
    }

    /// A byte written to the data register of an enabled transmitter: sent, or queued while
    /// held. `false` when the FIFO (of `depth`) is full and the byte is lost.
    pub(crate) fn write(&mut self, byte: u8, depth: usize) -> bool {
        if !self.held {
            self.send(byte);
            return true;
        }
        if self.fifo.len() >= depth {
            return false;
        }
        self.fifo.push_back(byte);
        true
    }

    /// Holds the transmitter (flow control in effect) or releases it: what it held goes out.
    pub(crate) fn hold(&mut self, held: bool) {
        self.held = held;
        if !held {
            while let Some(byte) = self.fifo.pop_front() {
                self.send(byte);
            }
        }
    }

    fn send(&mut self, byte: u8) {
        emit(self.output.as_mut(), byte, self.model);
        self.transmitted += 1;
    }

    /// Bytes waiting in the FIFO.
    pub(crate) fn queued(&self) -> usize {
        self.fifo.len()
    }

    /// Flushes the FIFO (a reset): its bytes are never sent.
    pub(crate) fn clear(&mut self) {
        self.fifo.clear();
    }

    /// Bytes sent to the output stream.
    pub(crate) fn transmitted(&self) -> u64 {
        self.transmitted
    }
}

/// A UART's receive side: characters of type `T` (a byte, or a byte with error flags).
#[derive(Debug)]
pub(crate) struct Receiver<T> {
    fifo: VecDeque<T>,
    backlog: VecDeque<T>,
}

impl<T> Receiver<T> {
    pub(crate) fn new() -> Self {
        Self {
            fifo: VecDeque::new(),
            backlog: VecDeque::new(),
        }
    }

    /// Characters arriving on the line.
    pub(crate) fn arrive(&mut self, characters: impl IntoIterator<Item = T>) {
        self.backlog.extend(characters);
    }

    /// Moves waiting characters into the FIFO while it holds fewer than `depth`.
    pub(crate) fn refill(&mut self, depth: usize) {
        while self.fifo.len() < depth {
            let Some(character) = self.backlog.pop_front() else {
                break;
            };
            self.fifo.push_back(character);
        }
    }

    /// The next character of the FIFO.
    pub(crate) fn pop(&mut self) -> Option<T> {
        self.fifo.pop_front()
    }

    /// Characters in the FIFO.
    pub(crate) fn level(&self) -> usize {
        self.fifo.len()
    }

    /// Empties the FIFO (a reset); the backlog is the line's, not the device's.
    pub(crate) fn clear(&mut self) {
        self.fifo.clear();
    }

    /// Characters not yet read: FIFO and backlog.
    pub(crate) fn pending(&self) -> usize {
        self.fifo.len() + self.backlog.len()
    }
}
