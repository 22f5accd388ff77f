//! The sending side every PD puts in front of a [`Producer`]: encoded messages wait in a queue
//! while the ring is full (backpressure, never loss: a lost probe or reply would leave a device
//! locked by its callback) and go onto the ring in order as it drains. Needs the `alloc`
//! feature; the rest of the crate allocates nothing.

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::message::{encode, EncodeError, Message};
use crate::ring::{Producer, RingError, SLOT_BYTES};

/// A producer with a queue in front of it. The caller owns the notification: [`Outbox::send`]
/// and [`Outbox::flush`] return `true` when the consumer asked to be signalled.
#[derive(Debug)]
pub struct Outbox<'a> {
    producer: Producer<'a>,
    waiting: VecDeque<Vec<u8>>,
}

impl<'a> Outbox<'a> {
    /// An empty queue in front of `producer`.
    #[must_use]
    pub fn new(producer: Producer<'a>) -> Self {
        Self {
            producer,
            waiting: VecDeque::new(),
        }
    }

    /// Encodes `message` (request id `request_id`), queues it behind any waiting ones and puts
    /// what fits on the ring. Returns whether to notify the consumer.
    ///
    /// # Errors
    /// The message cannot be encoded in a slot; nothing was queued.
    pub fn send(&mut self, request_id: u32, message: &Message) -> Result<bool, EncodeError> {
        let mut buffer = [0u8; SLOT_BYTES];
        let length = encode(request_id, message, &mut buffer)?;
        self.waiting
            .push_back(buffer.get(..length).unwrap_or_default().to_vec());
        Ok(self.flush())
    }

    /// Puts waiting messages on the ring, oldest first, while it has room. Returns whether to
    /// notify the consumer (something was put on the ring and the consumer asked for a signal).
    /// Call it again when the consumer signals that it made room.
    #[must_use]
    pub fn flush(&mut self) -> bool {
        let mut sent = false;
        while let Some(bytes) = self.waiting.front() {
            if self.producer.try_push(bytes).is_err() {
                break;
            }
            self.waiting.pop_front();
            sent = true;
        }
        sent && self.producer.signal_needed()
    }

    /// Queues `bytes` as one message as they are (a service's own message, such as console
    /// output), behind any waiting ones, and puts what fits on the ring. Returns whether to
    /// notify the consumer.
    ///
    /// # Errors
    /// [`RingError::TooLarge`] if they do not fit in a slot; nothing was queued.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<bool, RingError> {
        if bytes.len() > SLOT_BYTES {
            return Err(RingError::TooLarge);
        }
        self.waiting.push_back(bytes.to_vec());
        Ok(self.flush())
    }

    /// Puts a malformed slot (its length word `length`, past what a slot holds) on the ring
    /// now, ahead of any waiting messages: fault injection ([`Producer::try_push_malformed`]).
    /// Returns whether to notify the consumer.
    ///
    /// # Errors
    /// The ring's ([`RingError::Full`]).
    pub fn send_malformed(&mut self, length: u32) -> Result<bool, RingError> {
        self.producer.try_push_malformed(length)?;
        Ok(self.producer.signal_needed())
    }

    /// Whether messages put on the ring have not all been taken by the consumer yet.
    #[must_use]
    pub fn unconsumed(&self) -> bool {
        self.producer.free() < self.producer.capacity()
    }

    /// Messages still waiting for room on the ring.
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ring::{Consumer, RingMemory, RingStorage};
    use warden_vocabulary::{Answer, CallbackId};

    const WORDS: usize = RingMemory::words_needed(2);

    fn reply(sequence: u64) -> Message {
        Message::CallbackDone {
            callback: CallbackId::from_parts(1, sequence),
            answer: Answer::Ok,
        }
    }

    #[test]
    fn a_full_ring_queues_and_nothing_is_lost_or_reordered() {
        let storage = RingStorage::<WORDS>::new();
        let memory = RingMemory::new(storage.words(), 2).unwrap();
        let mut consumer = Consumer::new(memory);
        let mut outbox = Outbox::new(Producer::new(memory));
        for sequence in 0..5 {
            outbox.send(0, &reply(sequence)).unwrap();
        }
        assert_eq!(outbox.waiting(), 3, "two fit on the ring, three wait");
        let mut received = Vec::new();
        let mut buffer = [0u8; SLOT_BYTES];
        // Each round the consumer empties the ring (and arms its signal), then the outbox
        // moves what waits: the armed consumer is signalled whenever something moved.
        for _round in 0..3 {
            while let Some(length) = consumer.pop_or_arm(&mut buffer).unwrap() {
                received.push(crate::decode(&buffer[..length]).unwrap().1);
            }
            let moved = outbox.waiting() > 0;
            assert_eq!(outbox.flush(), moved);
        }
        let expected: Vec<Message> = (0..5).map(reply).collect();
        assert_eq!(received, expected);
        assert_eq!(outbox.waiting(), 0);
    }

    #[test]
    fn raw_bytes_queue_in_order_and_an_oversized_message_is_refused() {
        let storage = RingStorage::<WORDS>::new();
        let memory = RingMemory::new(storage.words(), 2).unwrap();
        let mut consumer = Consumer::new(memory);
        let mut outbox = Outbox::new(Producer::new(memory));
        assert_eq!(
            outbox.send_bytes(&[0; SLOT_BYTES + 1]),
            Err(RingError::TooLarge)
        );
        assert_eq!(outbox.waiting(), 0);
        for text in [&b"one"[..], b"two", b"three"] {
            outbox.send_bytes(text).unwrap();
        }
        assert_eq!(outbox.waiting(), 1);
        let mut buffer = [0u8; SLOT_BYTES];
        let mut received = Vec::new();
        for _round in 0..2 {
            while let Some(length) = consumer.pop_or_arm(&mut buffer).unwrap() {
                received.push(buffer[..length].to_vec());
            }
            let _ = outbox.flush();
        }
        assert_eq!(received, [&b"one"[..], b"two", b"three"]);
    }

    #[test]
    fn the_consumer_is_signalled_only_when_it_asked() {
        let storage = RingStorage::<WORDS>::new();
        let memory = RingMemory::new(storage.words(), 2).unwrap();
        let mut consumer = Consumer::new(memory);
        let mut outbox = Outbox::new(Producer::new(memory));
        assert!(!outbox.send(0, &reply(0)).unwrap(), "nobody asked yet");
        let mut buffer = [0u8; SLOT_BYTES];
        assert!(consumer.pop_or_arm(&mut buffer).unwrap().is_some());
        assert!(
            consumer.pop_or_arm(&mut buffer).unwrap().is_none(),
            "now armed"
        );
        assert!(
            outbox.send(0, &reply(1)).unwrap(),
            "the armed consumer is signalled"
        );
        assert!(!outbox.send(0, &reply(2)).unwrap(), "once");
    }
}
