//! The fast path on the host platform: a PD's own channel handles, used without the launcher.
//!
//! * **Notifications**: a pipe per direction of a channel whose end may notify. The sender
//!   writes a byte (a full pipe is a signal pending already); the receiver's event loop polls
//!   its incoming pipes and empties each that is readable: signals made before the read are one
//!   notification (Microkit's binary semaphore per channel).
//! * **Protected procedure calls**: a call slot per `pp` end, a page of shared memory (a sealed
//!   memfd: neither peer can shrink it under the other) and a doorbell pipe the caller rings.
//!   The caller waits until the slot is idle (its previous call, perhaps a previous start's, is
//!   answered or cancelled), writes its message, publishes the call's sequence number and rings;
//!   it then waits (a futex on the slot's reply word) until the reply carries that sequence
//!   number. The callee takes the call when its event loop reaches it (notifications first),
//!   claiming it with a compare-and-swap, runs `protected`, writes the reply and wakes the
//!   caller. When a caller is stopped or restarted, the launcher tells the callee, which cancels
//!   a call not yet taken (seL4 cancels such a thread's IPC), answering it with an empty
//!   message.
//!
//! Both peers write the slot, so each treats what it reads there as untrusted: counts are
//! clamped to [`MAX_REGISTERS`], and a sequence number that does not match is a call that is not
//! there (a doorbell rung for nothing) or a reply that is not ours (one for an earlier call).
//! A callee that faults with a call taken leaves its caller blocked, as on seL4; a call not yet
//! taken is served by the callee's next start.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::thread::futex;

use crate::host_protocol::{Handle, MAX_REGISTERS, SLOT_BYTES};

/// Channel ids: 0–61.
const CHANNELS: usize = crate::MAX_CHANNEL as usize + 1;

// Word offsets in a slot. A message is its label (two words), its count, and `MAX_REGISTERS`
// registers of two words each.
const CALL_SEQUENCE: usize = 0;
const TAKEN_SEQUENCE: usize = 1;
const REPLY_SEQUENCE: usize = 2;
/// The caller's start (incarnation) that made the call: a cancellation names the start it is for.
const CALLER_START: usize = 3;
const CALL: usize = 4;
const MESSAGE_WORDS: usize = 3 + 2 * MAX_REGISTERS;
const REPLY: usize = CALL + MESSAGE_WORDS;
const _: () = assert!((REPLY + MESSAGE_WORDS) * 4 <= SLOT_BYTES);

/// A message: label, count, registers.
pub(crate) struct Message {
    pub(crate) label: u64,
    pub(crate) count: usize,
    pub(crate) registers: [u64; MAX_REGISTERS],
}

impl Message {
    pub(crate) fn empty() -> Self {
        Self {
            label: 0,
            count: 0,
            registers: [0; MAX_REGISTERS],
        }
    }
}

/// A call slot, mapped in this process.
pub(crate) struct Slot {
    words: &'static [AtomicU32],
    doorbell: OwnedFd,
}

impl Slot {
    fn word(&self, index: usize) -> &AtomicU32 {
        // Every index used is below the slot's length (asserted above); the fallback is never
        // reached.
        static NOWHERE: AtomicU32 = AtomicU32::new(0);
        self.words.get(index).unwrap_or(&NOWHERE)
    }

    fn put(&self, at: usize, message: &Message) {
        let count = message.count.min(MAX_REGISTERS);
        self.word(at).store(message.label as u32, Ordering::Relaxed);
        self.word(at + 1)
            .store((message.label >> 32) as u32, Ordering::Relaxed);
        self.word(at + 2).store(count as u32, Ordering::Relaxed);
        for (index, value) in message.registers.iter().take(count).enumerate() {
            self.word(at + 3 + 2 * index)
                .store(*value as u32, Ordering::Relaxed);
            self.word(at + 4 + 2 * index)
                .store((*value >> 32) as u32, Ordering::Relaxed);
        }
    }

    fn get(&self, at: usize) -> Message {
        let mut message = Message::empty();
        let low = u64::from(self.word(at).load(Ordering::Relaxed));
        message.label = low | u64::from(self.word(at + 1).load(Ordering::Relaxed)) << 32;
        message.count = (self.word(at + 2).load(Ordering::Relaxed) as usize).min(MAX_REGISTERS);
        for index in 0..message.count {
            let low = u64::from(self.word(at + 3 + 2 * index).load(Ordering::Relaxed));
            let high = u64::from(self.word(at + 4 + 2 * index).load(Ordering::Relaxed));
            if let Some(register) = message.registers.get_mut(index) {
                *register = low | high << 32;
            }
        }
        message
    }

    fn has_call(&self) -> bool {
        self.word(CALL_SEQUENCE).load(Ordering::Acquire)
            != self.word(TAKEN_SEQUENCE).load(Ordering::Acquire)
    }
}

/// The handles of this PD's channel ends.
pub(crate) struct Channels {
    notify_out: Vec<Option<OwnedFd>>,
    notify_in: Vec<(u8, OwnedFd)>,
    call_out: Vec<Option<Slot>>,
    call_in: Vec<(u8, Slot)>,
}

fn ring(pipe: &OwnedFd) {
    // Full means rung already: nothing is lost by the error. (This end is non-blocking, and it
    // is an open file of this PD's alone: the peer cannot make it block.)
    let _ = rustix::io::write(pipe, &[1]);
}

/// Empties a pipe, as far as one read goes (a pipe holds 64 KiB, so a flooding peer cannot keep
/// the read going): was it signalled?
fn drain(pipe: &OwnedFd) -> bool {
    let mut bytes = [0u8; 65536];
    matches!(rustix::io::read(pipe, &mut bytes), Ok(count) if count > 0)
}

/// Waits (futex) until `word` is not `seen`.
fn wait_while(word: &AtomicU32, seen: u32) {
    // Shared (not private) futex: the word is in memory two processes map.
    let _ = futex::wait(word, futex::Flags::empty(), seen, None);
}

impl Channels {
    pub(crate) fn new() -> Self {
        Self {
            notify_out: (0..CHANNELS).map(|_| None).collect(),
            notify_in: Vec::new(),
            call_out: (0..CHANNELS).map(|_| None).collect(),
            call_in: Vec::new(),
        }
    }

    /// Takes a handle the launcher sent, with its descriptors.
    pub(crate) fn add(
        &mut self,
        channel: u8,
        handle: Handle,
        descriptors: Vec<OwnedFd>,
    ) -> Result<(), String> {
        let index = usize::from(channel);
        if index >= CHANNELS || descriptors.len() != handle.descriptors() {
            return Err(format!("a malformed handle for channel {channel}"));
        }
        let mut descriptors = descriptors.into_iter();
        let (Some(first), second) = (descriptors.next(), descriptors.next()) else {
            return Err(format!(
                "a handle without descriptors for channel {channel}"
            ));
        };
        let slot = |memory: OwnedFd, doorbell: Option<OwnedFd>| -> Result<Slot, String> {
            let doorbell = doorbell.ok_or("a call slot without its doorbell")?;
            let words = crate::mapping::map_shared_words(&memory, SLOT_BYTES)?;
            Ok(Slot { words, doorbell })
        };
        match handle {
            Handle::NotifyOut => {
                if let Some(end) = self.notify_out.get_mut(index) {
                    *end = Some(first);
                }
            }
            Handle::NotifyIn => self.notify_in.push((channel, first)),
            Handle::CallOut => {
                let slot = slot(first, second)?;
                if let Some(end) = self.call_out.get_mut(index) {
                    *end = Some(slot);
                }
            }
            Handle::CallIn => {
                let slot = slot(first, second)?;
                self.call_in.push((channel, slot));
            }
        }
        Ok(())
    }

    /// `microkit_notify`: `false` if this end may not notify on `channel`.
    pub(crate) fn notify(&self, channel: u8) -> bool {
        match self.notify_out.get(usize::from(channel)) {
            Some(Some(pipe)) => {
                ring(pipe);
                true
            }
            _ => false,
        }
    }

    /// `microkit_ppcall`: `None` if this end may not call on `channel`; otherwise blocks until
    /// the callee replies.
    pub(crate) fn call(&self, channel: u8, message: &Message) -> Option<Message> {
        let slot = self.call_out.get(usize::from(channel))?.as_ref()?;
        let reply = slot.word(REPLY_SEQUENCE);
        // Idle first: a previous start's call may still be in the callee's hands (its message
        // must not change under it) until the callee answers or cancels it.
        let last = loop {
            let (called, answered) = (
                slot.word(CALL_SEQUENCE).load(Ordering::Acquire),
                reply.load(Ordering::Acquire),
            );
            if called == answered {
                break called;
            }
            wait_while(reply, answered);
        };
        // A restarted caller goes on from the sequence number its last incarnation left.
        let sequence = last.wrapping_add(1);
        slot.put(CALL, message);
        slot.word(CALLER_START)
            .store(super::incarnation(), Ordering::Relaxed);
        slot.word(CALL_SEQUENCE).store(sequence, Ordering::Release);
        ring(&slot.doorbell);
        loop {
            let seen = reply.load(Ordering::Acquire);
            if seen == sequence {
                break;
            }
            wait_while(reply, seen);
        }
        Some(slot.get(REPLY))
    }

    /// The incoming descriptors to poll: notifications, then doorbells.
    pub(crate) fn incoming(&self) -> impl Iterator<Item = &OwnedFd> + '_ {
        self.notify_in
            .iter()
            .map(|(_, pipe)| pipe)
            .chain(self.call_in.iter().map(|(_, slot)| &slot.doorbell))
    }

    /// Incoming descriptor `index` (in [`Self::incoming`]'s order) was readable: reads it and
    /// tells the receiver what it meant.
    pub(crate) fn arrived(&self, index: usize, receiver: &mut super::receiver::Receiver) {
        if let Some((channel, pipe)) = self.notify_in.get(index) {
            if drain(pipe) {
                receiver.signal(*channel);
            }
        } else if let Some((channel, slot)) = self.call_in.get(index - self.notify_in.len()) {
            drain(&slot.doorbell);
            if slot.has_call() {
                receiver.call(*channel);
            }
        }
    }

    /// Calls made before this start and not yet taken (the callee's previous incarnation ended
    /// with them queued): each is served, as seL4 serves what waits on a restarted PD's endpoint.
    pub(crate) fn waiting_calls(&self, receiver: &mut super::receiver::Receiver) {
        for (channel, slot) in &self.call_in {
            if slot.has_call() {
                receiver.call(*channel);
            }
        }
    }

    /// Takes the call waiting on `channel`: its sequence number and message, or `None` if there
    /// is none (the doorbell was rung for nothing).
    pub(crate) fn take(&self, channel: u8) -> Option<(u32, Message)> {
        let slot = self.serving(channel)?;
        let sequence = slot.word(CALL_SEQUENCE).load(Ordering::Acquire);
        let taken = slot.word(TAKEN_SEQUENCE).load(Ordering::Acquire);
        if sequence == taken {
            return None;
        }
        slot.word(TAKEN_SEQUENCE)
            .compare_exchange(taken, sequence, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        Some((sequence, slot.get(CALL)))
    }

    /// Start `start` of the caller on `channel` was stopped or restarted: its call not yet taken
    /// is not served; it is answered with an empty message (which frees the slot for the
    /// caller's next start). A call of another start (the next one may have called already) is
    /// left alone.
    pub(crate) fn cancel(&self, channel: u8, start: u32) {
        let Some(slot) = self.serving(channel) else {
            return;
        };
        let sequence = slot.word(CALL_SEQUENCE).load(Ordering::Acquire);
        let taken = slot.word(TAKEN_SEQUENCE).load(Ordering::Acquire);
        let claimed = sequence != taken
            && slot.word(CALLER_START).load(Ordering::Relaxed) == start
            && slot
                .word(TAKEN_SEQUENCE)
                .compare_exchange(taken, sequence, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        if claimed {
            self.reply(channel, sequence, &Message::empty());
        }
    }

    /// Replies to call `sequence` on `channel` and wakes its caller.
    pub(crate) fn reply(&self, channel: u8, sequence: u32, message: &Message) {
        let Some(slot) = self.serving(channel) else {
            return;
        };
        slot.put(REPLY, message);
        let word = slot.word(REPLY_SEQUENCE);
        word.store(sequence, Ordering::Release);
        let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
    }

    fn serving(&self, channel: u8) -> Option<&Slot> {
        self.call_in
            .iter()
            .find(|(id, _)| *id == channel)
            .map(|(_, slot)| slot)
    }
}
