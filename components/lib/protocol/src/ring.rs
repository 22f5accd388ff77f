//! A single-producer/single-consumer ring of fixed-size slots in a shared memory region, with
//! sDDF's signalling discipline: the consumer asks for a notification only before it goes to
//! sleep, and the producer notifies only when asked.
//!
//! # Layout (all fields 32-bit little-endian words, accessed only atomically)
//!
//! | word | field | written by |
//! |---|---|---|
//! | 0 | `head`: messages ever published | producer (store-release) |
//! | 1 | `tail`: messages ever consumed | consumer (store-release) |
//! | 2 | `consumer_wants_signal` | consumer sets, producer clears |
//! | 3 | reserved (zero) | nobody |
//! | 4 + s·128 | slot s: payload length in bytes | producer |
//! | 5 + s·128 … | slot s: payload, up to 508 bytes | producer |
//!
//! The capacity is not in shared memory: each side takes it from its own configuration (the
//! system description), so a peer cannot change it. Each side keeps its own index privately and
//! only *reads* the peer's, validating it before use: a hostile peer can make the ring report
//! an error, never make this side index out of bounds, panic or loop.
//!
//! # Orderings
//!
//! * The producer's store-release of `head` ([`Producer::try_push`]) pairs with the consumer's
//!   load-acquire of `head` ([`Consumer::try_pop`]): the slot's contents are visible before the
//!   consumer reads them.
//! * The consumer's store-release of `tail` ([`Consumer::try_pop`]) pairs with the producer's
//!   load-acquire of `tail` ([`Producer::try_push`]): the consumer has finished reading a slot
//!   before the producer reuses it.
//! * The sequentially consistent fence in [`Consumer::arm_signal`] (after setting the flag,
//!   before re-reading `head`) pairs with the one in [`Producer::signal_needed`] (after
//!   publishing `head`, before reading the flag): at least one side sees the other's write, so
//!   either the consumer finds the new message or the producer finds the flag — no lost wakeup.
//!
//! Slot contents are copied word by word with relaxed atomic accesses, so even a peer that
//! scribbles over a slot while it is read causes no data race, only garbage that the decoder
//! rejects.

use crate::sync::{fence, AtomicU32, Ordering};

/// Words in the ring header.
pub const HEADER_WORDS: usize = 4;
/// Words per slot (one length word and the payload): 512 bytes, so that the largest message of
/// the protocol (a `PciHost`, 480 bytes with its header) fits one slot.
pub const SLOT_WORDS: usize = 128;
/// Largest payload of one slot, in bytes.
pub const SLOT_BYTES: usize = (SLOT_WORDS - 1) * 4;

const HEAD: usize = 0;
const TAIL: usize = 1;
const WANTS_SIGNAL: usize = 2;

/// What can go wrong with a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The ring is full: backpressure; the message was not sent, try again later.
    Full,
    /// The payload does not fit in a slot.
    TooLarge,
    /// The caller's buffer is smaller than the message; nothing was consumed.
    BufferTooSmall,
    /// The region is too small for the capacity, or the capacity is zero or too large.
    BadGeometry,
    /// The peer's index is impossible (more messages outstanding than the ring holds): the
    /// peer is misbehaving. Nothing was read or written.
    PeerIndexCorrupt {
        /// The peer's index as read.
        peer: u32,
        /// This side's own index.
        own: u32,
    },
    /// A slot's length word exceeds the slot: the peer is misbehaving. The slot was skipped.
    PeerSlotCorrupt {
        /// The length the peer wrote.
        length: u32,
    },
}

/// The memory of one ring: the words of a shared region and the capacity in slots.
#[derive(Clone, Copy, Debug)]
pub struct RingMemory<'a> {
    words: &'a [AtomicU32],
    capacity: u32,
}

impl<'a> RingMemory<'a> {
    /// Words a ring of `capacity` slots needs.
    #[must_use]
    pub const fn words_needed(capacity: u32) -> usize {
        HEADER_WORDS + capacity as usize * SLOT_WORDS
    }

    /// A ring of `capacity` slots over `words` (which may be longer than needed).
    ///
    /// # Errors
    /// [`RingError::BadGeometry`] if `capacity` is 0, above 2³⁰, or does not fit in `words`.
    pub fn new(words: &'a [AtomicU32], capacity: u32) -> Result<Self, RingError> {
        if capacity == 0 || capacity > 1 << 30 || words.len() < Self::words_needed(capacity) {
            return Err(RingError::BadGeometry);
        }
        Ok(Self { words, capacity })
    }

    /// A ring of as many slots as `words` holds: what each PD uses for a region the system
    /// description gives it. Both ends map the same memory region, and a Microkit map is always
    /// the whole region, so they agree on the capacity, each from its own configuration
    /// (`setvar_size`), without reading anything the peer wrote.
    ///
    /// # Errors
    /// [`RingError::BadGeometry`] if `words` cannot hold a header and one slot.
    pub fn over(words: &'a [AtomicU32]) -> Result<Self, RingError> {
        let slots = words.len().saturating_sub(HEADER_WORDS) / SLOT_WORDS;
        Self::new(words, u32::try_from(slots).unwrap_or(u32::MAX).min(1 << 30))
    }

    /// Capacity in slots.
    #[must_use]
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    fn word(&self, index: usize) -> &AtomicU32 {
        // `new` checked the length for every index this module computes: header words and
        // `slot_base(..) + k` with `slot < capacity`, `k < SLOT_WORDS`.
        match self.words.get(index) {
            Some(word) => word,
            None => unreachable!("ring word {index} outside the region checked by new()"),
        }
    }

    /// First word of the slot that holds message number `sequence`.
    fn slot_base(&self, sequence: u32) -> usize {
        HEADER_WORDS + (sequence % self.capacity) as usize * SLOT_WORDS
    }

    /// Sets every header word to zero: an empty ring. Only while neither side is running
    /// (system start-up, or after both ends were restarted).
    pub fn reset(&self) {
        for index in 0..HEADER_WORDS {
            self.word(index).store(0, Ordering::Relaxed);
        }
        fence(Ordering::Release);
    }
}

/// The producing end. Only the producer PD may hold it, and only one.
#[derive(Debug)]
pub struct Producer<'a> {
    memory: RingMemory<'a>,
    head: u32,
}

impl<'a> Producer<'a> {
    /// Takes the producing end, continuing from the `head` in shared memory (zero after
    /// [`RingMemory::reset`]).
    #[must_use]
    pub fn new(memory: RingMemory<'a>) -> Self {
        let head = memory.word(HEAD).load(Ordering::Relaxed);
        Self { memory, head }
    }

    /// Publishes one message.
    ///
    /// Producer side only. Loads `tail` with acquire (pairs with the consumer's release store
    /// in [`Consumer::try_pop`]), writes the slot, then stores `head` with release (pairs with
    /// the consumer's acquire load in [`Consumer::try_pop`]).
    ///
    /// # Errors
    /// [`RingError::Full`] (backpressure: nothing was written), [`RingError::TooLarge`],
    /// [`RingError::PeerIndexCorrupt`].
    pub fn try_push(&mut self, payload: &[u8]) -> Result<(), RingError> {
        if payload.len() > SLOT_BYTES {
            return Err(RingError::TooLarge);
        }
        let base = self.free_slot()?;
        self.memory
            .word(base)
            .store(payload.len() as u32, Ordering::Relaxed);
        for (index, chunk) in payload.chunks(4).enumerate() {
            let mut bytes = [0u8; 4];
            for (to, from) in bytes.iter_mut().zip(chunk) {
                *to = *from;
            }
            self.memory
                .word(base + 1 + index)
                .store(u32::from_le_bytes(bytes), Ordering::Relaxed);
        }
        self.publish();
        Ok(())
    }

    /// The base word of the next free slot, if the consumer's index is sane and there is room.
    fn free_slot(&self) -> Result<usize, RingError> {
        let tail = self.memory.word(TAIL).load(Ordering::Acquire);
        let used = self.head.wrapping_sub(tail);
        if used > self.memory.capacity {
            return Err(RingError::PeerIndexCorrupt {
                peer: tail,
                own: self.head,
            });
        }
        if used == self.memory.capacity {
            return Err(RingError::Full);
        }
        Ok(self.memory.slot_base(self.head))
    }

    /// Hands the slot at the head to the consumer.
    fn publish(&mut self) {
        self.head = self.head.wrapping_add(1);
        self.memory.word(HEAD).store(self.head, Ordering::Release);
    }

    /// Publishes a slot whose length word is `length` and whose payload is empty, whatever
    /// `length` says: what a broken or hostile producer does. Warden's fault injection uses it
    /// to show that consumers skip such a slot and go on.
    ///
    /// # Errors
    /// As [`Producer::try_push`] (backpressure, a corrupt peer index).
    pub fn try_push_malformed(&mut self, length: u32) -> Result<(), RingError> {
        let base = self.free_slot()?;
        self.memory.word(base).store(length, Ordering::Relaxed);
        self.publish();
        Ok(())
    }

    /// After publishing: does the consumer want a notification? If so the flag is cleared and
    /// the caller must notify the consumer's channel once.
    ///
    /// Producer side only. The sequentially consistent fence pairs with the one in
    /// [`Consumer::arm_signal`].
    #[must_use]
    pub fn signal_needed(&self) -> bool {
        fence(Ordering::SeqCst);
        self.memory.word(WANTS_SIGNAL).swap(0, Ordering::Relaxed) != 0
    }

    /// The ring's capacity in slots.
    #[must_use]
    pub fn capacity(&self) -> u32 {
        self.memory.capacity
    }

    /// Free slots, as far as the producer can tell (the consumer may free more meanwhile).
    #[must_use]
    pub fn free(&self) -> u32 {
        let tail = self.memory.word(TAIL).load(Ordering::Acquire);
        self.memory
            .capacity
            .saturating_sub(self.head.wrapping_sub(tail))
    }
}

/// The consuming end. Only the consumer PD may hold it, and only one.
#[derive(Debug)]
pub struct Consumer<'a> {
    memory: RingMemory<'a>,
    tail: u32,
}

impl<'a> Consumer<'a> {
    /// Takes the consuming end, continuing from the `tail` in shared memory.
    #[must_use]
    pub fn new(memory: RingMemory<'a>) -> Self {
        let tail = memory.word(TAIL).load(Ordering::Relaxed);
        Self { memory, tail }
    }

    /// Takes the next message, copying its payload into `out`; `Ok(None)` when empty.
    ///
    /// Consumer side only. Loads `head` with acquire (pairs with the producer's release store
    /// in [`Producer::try_push`]), copies the slot, then stores `tail` with release (pairs with
    /// the producer's acquire load in [`Producer::try_push`]). `head` is validated before any
    /// use and never used for indexing; slots are addressed from the consumer's own `tail`.
    ///
    /// # Errors
    /// [`RingError::BufferTooSmall`] (nothing consumed), [`RingError::PeerIndexCorrupt`]
    /// (nothing consumed; the producer is broken), [`RingError::PeerSlotCorrupt`] (that slot
    /// was skipped; the next call goes on with the next one).
    pub fn try_pop(&mut self, out: &mut [u8]) -> Result<Option<usize>, RingError> {
        let head = self.memory.word(HEAD).load(Ordering::Acquire);
        let pending = head.wrapping_sub(self.tail);
        if pending == 0 {
            return Ok(None);
        }
        if pending > self.memory.capacity {
            return Err(RingError::PeerIndexCorrupt {
                peer: head,
                own: self.tail,
            });
        }
        let base = self.memory.slot_base(self.tail);
        let length = self.memory.word(base).load(Ordering::Relaxed);
        let result = if length as usize > SLOT_BYTES {
            Err(RingError::PeerSlotCorrupt { length })
        } else {
            let length = length as usize;
            let Some(out) = out.get_mut(..length) else {
                return Err(RingError::BufferTooSmall);
            };
            for (index, chunk) in out.chunks_mut(4).enumerate() {
                let word = self.memory.word(base + 1 + index).load(Ordering::Relaxed);
                for (to, from) in chunk.iter_mut().zip(word.to_le_bytes()) {
                    *to = from;
                }
            }
            Ok(Some(length))
        };
        self.tail = self.tail.wrapping_add(1);
        self.memory.word(TAIL).store(self.tail, Ordering::Release);
        result
    }

    /// Before waiting for a notification: asks the producer for one, then checks once more.
    /// Returns `true` if the ring is still empty (wait for the notification), `false` if a
    /// message arrived meanwhile (the request is withdrawn; keep consuming).
    ///
    /// Consumer side only. The sequentially consistent fence pairs with the one in
    /// [`Producer::signal_needed`].
    #[must_use]
    pub fn arm_signal(&self) -> bool {
        let wants = self.memory.word(WANTS_SIGNAL);
        wants.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.memory.word(HEAD).load(Ordering::Acquire) != self.tail {
            wants.store(0, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Takes the next message like [`Consumer::try_pop`]; when the ring is empty, arms the
    /// signal ([`Consumer::arm_signal`]) and looks once more, so `Ok(None)` means "empty, and
    /// the producer will notify for the next message": the loop every consumer PD runs when
    /// notified is `while let Some(length) = consumer.pop_or_arm(&mut buffer)? { … }`.
    ///
    /// Consumer side only; the orderings are those of `try_pop` and `arm_signal`. Each
    /// iteration either returns or finds a message, so a hostile producer cannot make it spin.
    ///
    /// # Errors
    /// As [`Consumer::try_pop`].
    pub fn pop_or_arm(&mut self, out: &mut [u8]) -> Result<Option<usize>, RingError> {
        if let Some(length) = self.try_pop(out)? {
            return Ok(Some(length));
        }
        if self.arm_signal() {
            return Ok(None);
        }
        self.try_pop(out)
    }

    /// The ring's capacity in slots.
    #[must_use]
    pub fn capacity(&self) -> u32 {
        self.memory.capacity
    }

    /// No message waiting.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.memory.word(HEAD).load(Ordering::Acquire) == self.tail
    }
}

/// Ring memory owned by this process (tests, and rings inside one PD).
#[derive(Debug)]
pub struct RingStorage<const WORDS: usize> {
    words: [AtomicU32; WORDS],
}

impl<const WORDS: usize> RingStorage<WORDS> {
    /// Zeroed storage: an empty ring.
    #[must_use]
    pub fn new() -> Self {
        Self {
            words: core::array::from_fn(|_| AtomicU32::new(0)),
        }
    }

    /// The words, to build a [`RingMemory`] over.
    #[must_use]
    pub fn words(&self) -> &[AtomicU32] {
        &self.words
    }
}

impl<const WORDS: usize> Default for RingStorage<WORDS> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const WORDS: usize = RingMemory::words_needed(4);

    #[test]
    fn a_ring_over_a_region_takes_every_whole_slot_it_holds() {
        let storage = RingStorage::<{ RingMemory::words_needed(15) + SLOT_WORDS - 1 }>::new();
        assert_eq!(RingMemory::over(storage.words()).unwrap().capacity(), 15);
        // An 8 KiB region, as the system descriptions map them.
        let region = RingStorage::<2048>::new();
        assert_eq!(RingMemory::over(region.words()).unwrap().capacity(), 15);
        let tiny = RingStorage::<{ RingMemory::words_needed(1) - 1 }>::new();
        assert_eq!(
            RingMemory::over(tiny.words()).map(|ring| ring.capacity()),
            Err(RingError::BadGeometry)
        );
    }

    #[test]
    fn messages_come_out_in_order_across_wrap_around() {
        let storage = RingStorage::<WORDS>::new();
        let memory = RingMemory::new(storage.words(), 4).unwrap();
        let (mut producer, mut consumer) = (Producer::new(memory), Consumer::new(memory));
        let mut out = [0u8; SLOT_BYTES];
        for round in 0u8..10 {
            for index in 0..3u8 {
                let payload = [round, index, 0xA5, round ^ index, 7];
                producer
                    .try_push(&payload[..usize::from(index) + 2])
                    .unwrap();
            }
            for index in 0..3u8 {
                let length = consumer.try_pop(&mut out).unwrap().unwrap();
                assert_eq!(length, usize::from(index) + 2);
                assert_eq!(out[..2], [round, index]);
            }
            assert_eq!(consumer.try_pop(&mut out), Ok(None));
        }
    }

    #[test]
    fn full_ring_is_backpressure_not_loss() {
        let storage = RingStorage::<WORDS>::new();
        let memory = RingMemory::new(storage.words(), 4).unwrap();
        let (mut producer, mut consumer) = (Producer::new(memory), Consumer::new(memory));
        for value in 0..4u8 {
            producer.try_push(&[value]).unwrap();
        }
        assert_eq!(producer.try_push(&[9]), Err(RingError::Full));
        assert_eq!(producer.free(), 0);
        let mut out = [0u8; 4];
        for value in 0..4u8 {
            assert_eq!(consumer.try_pop(&mut out), Ok(Some(1)));
            assert_eq!(out[0], value);
        }
        producer.try_push(&[9]).unwrap();
    }

    #[test]
    fn hostile_head_is_an_error_not_an_out_of_bounds_read() {
        let storage = RingStorage::<WORDS>::new();
        let memory = RingMemory::new(storage.words(), 4).unwrap();
        let mut consumer = Consumer::new(memory);
        storage.words()[HEAD].store(1000, Ordering::Relaxed);
        let mut out = [0u8; SLOT_BYTES];
        assert_eq!(
            consumer.try_pop(&mut out),
            Err(RingError::PeerIndexCorrupt { peer: 1000, own: 0 })
        );
        // A bogus slot length is skipped, and the ring goes on.
        storage.words()[HEAD].store(2, Ordering::Relaxed);
        storage.words()[HEADER_WORDS].store(u32::MAX, Ordering::Relaxed);
        storage.words()[HEADER_WORDS + SLOT_WORDS].store(3, Ordering::Relaxed);
        assert_eq!(
            consumer.try_pop(&mut out),
            Err(RingError::PeerSlotCorrupt { length: u32::MAX })
        );
        assert_eq!(consumer.try_pop(&mut out), Ok(Some(3)));
        assert_eq!(consumer.try_pop(&mut out), Ok(None));
    }

    #[test]
    fn hostile_tail_is_an_error_for_the_producer() {
        let storage = RingStorage::<WORDS>::new();
        let memory = RingMemory::new(storage.words(), 4).unwrap();
        let mut producer = Producer::new(memory);
        storage.words()[TAIL].store(77, Ordering::Relaxed);
        assert!(matches!(
            producer.try_push(&[1]),
            Err(RingError::PeerIndexCorrupt { .. })
        ));
    }

    #[test]
    fn signal_only_when_the_consumer_asked() {
        let storage = RingStorage::<WORDS>::new();
        let memory = RingMemory::new(storage.words(), 4).unwrap();
        let (mut producer, mut consumer) = (Producer::new(memory), Consumer::new(memory));
        producer.try_push(&[1]).unwrap();
        assert!(!producer.signal_needed(), "nobody asked");
        assert!(!consumer.arm_signal(), "a message is waiting: do not sleep");
        let mut out = [0u8; 4];
        consumer.try_pop(&mut out).unwrap();
        assert!(consumer.arm_signal(), "empty: sleep");
        producer.try_push(&[2]).unwrap();
        assert!(producer.signal_needed());
        assert!(!producer.signal_needed(), "one signal per request");
    }

    #[test]
    fn geometry_is_checked() {
        let storage = RingStorage::<WORDS>::new();
        assert_eq!(
            RingMemory::new(storage.words(), 5).err(),
            Some(RingError::BadGeometry)
        );
        assert_eq!(
            RingMemory::new(storage.words(), 0).err(),
            Some(RingError::BadGeometry)
        );
    }
}
