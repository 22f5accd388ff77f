//! The console in sDDF's serial protocol ([`warden_protocol::sddf::serial`]): what an sDDF
//! serial client (a serial virtualiser, a client printing with sDDF's queue library) shares with
//! Warden's UART drivers, two character queues each over a control region and a data region,
//! and both halves over them: [`Server`] (the UART driver's) and [`Client`].
//!
//! - **Receive** (`serial_rx_queue`, `serial_rx_data`): the driver produces the characters the
//!   UART received, the client consumes them.
//! - **Transmit** (`serial_tx_queue`, `serial_tx_data`): the client produces what is to be
//!   written, the driver consumes it and writes it to the UART.
//!
//! Both halves find the regions in their system description ([`Regions::from_system`], setvar
//! symbols [`SYMBOLS`] each with its `_size`). A queue's capacity is not in shared memory: each
//! side derives it from the size of its own map of the data region, the largest power of two
//! that fits it (4096 for the one-page data regions Warden's systems give).
//!
//! Signalling, as sDDF's serial design document gives it: a producer always notifies the
//! consumer after it queued characters. A consumer notifies the producer only if the producer
//! asked (it stored 0 in `producer_signalled` when it found the queue full, then looked again);
//! the consumer stores 1 and notifies once.
//!
//! Every index that comes from the other side is checked. Each side keeps its own index (the
//! head it consumes at, the tail it produces at) and never takes the peer's word for it after
//! it started. A peer index that would make the queue hold more than its capacity is refused
//! with a warning, and nothing is read or written past the regions.

use core::sync::atomic::{fence, AtomicU32, Ordering};

use log::warn;
use warden_microkit::Channel;

use crate::block::Data;

/// sDDF's serial queue control words, for the halves' users.
pub use warden_protocol::sddf::serial;

/// The setvar symbols of the four regions, as [`Regions::from_system`] reads them on either
/// side: (vaddr symbol, size symbol). Receive queue, receive data, transmit queue, transmit
/// data.
pub const SYMBOLS: [(&str, &str); 4] = [
    ("serial_rx_queue", "serial_rx_queue_size"),
    ("serial_rx_data", "serial_rx_data_size"),
    ("serial_tx_queue", "serial_tx_queue_size"),
    ("serial_tx_data", "serial_tx_data_size"),
];

/// The largest capacity Warden derives.
pub const MAX_CAPACITY: usize = 1 << 20;

/// The control words (`serial_queue_t`): tail, head, `producer_signalled`.
const TAIL: usize = 0;
const HEAD: usize = 1;
const SIGNALLED: usize = 2;

/// The capacity of a queue over a data region of `bytes`: the largest power of two that fits
/// (at most [`MAX_CAPACITY`]); `None` for an empty region.
#[must_use]
pub fn capacity_for(bytes: usize) -> Option<usize> {
    let bytes = bytes.min(MAX_CAPACITY);
    (bytes > 0).then(|| 1 << bytes.ilog2())
}

/// One character queue: its control words and its data region.
#[derive(Clone, Copy, Debug)]
pub struct Queue {
    control: &'static [AtomicU32],
    data: Data,
    capacity: u32,
}

impl Queue {
    /// The queue over these maps; `None` if the control region cannot hold `serial_queue_t`
    /// or the data region is empty.
    #[must_use]
    pub fn new(control: &'static [AtomicU32], data: &'static [AtomicU32]) -> Option<Self> {
        let capacity = capacity_for(data.len() * 4)?;
        (control.len() > SIGNALLED).then_some(Self {
            control,
            data: Data::over(data),
            capacity: u32::try_from(capacity).ok()?,
        })
    }

    /// How many characters it holds at most.
    #[must_use]
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The control words themselves (tail, head, `producer_signalled`), for a test that plays a
    /// peer scribbling them.
    #[must_use]
    pub fn control_words(&self) -> &'static [AtomicU32] {
        self.control
    }

    fn word(&self, index: usize) -> &AtomicU32 {
        // `new` checked that the control region holds all three words.
        static ZERO: AtomicU32 = AtomicU32::new(0);
        self.control.get(index).unwrap_or(&ZERO)
    }

    fn at(&self, index: u32) -> usize {
        (index % self.capacity) as usize
    }
}

/// The four regions of one serial client.
#[derive(Clone, Copy, Debug)]
pub struct Regions {
    /// Received characters (driver → client).
    pub receive: Queue,
    /// Characters to write (client → driver).
    pub transmit: Queue,
}

impl Regions {
    /// The regions over these maps; `None` unless all four are there (silently: the PD does not
    /// speak sDDF's serial protocol), or with a warning if one is too small.
    #[must_use]
    pub fn new(
        rx_queue: Option<&'static [AtomicU32]>,
        rx_data: Option<&'static [AtomicU32]>,
        tx_queue: Option<&'static [AtomicU32]>,
        tx_data: Option<&'static [AtomicU32]>,
    ) -> Option<Self> {
        let (Some(rx_queue), Some(rx_data), Some(tx_queue), Some(tx_data)) =
            (rx_queue, rx_data, tx_queue, tx_data)
        else {
            return None;
        };
        let regions = Queue::new(rx_queue, rx_data)
            .zip(Queue::new(tx_queue, tx_data))
            .map(|(receive, transmit)| Self { receive, transmit });
        if regions.is_none() {
            warn!("sddf-serial: a queue region is smaller than serial_queue_t, or a data region is empty");
        }
        regions
    }

    /// The regions this PD's system description maps, on either side; `None` if it maps none.
    #[must_use]
    pub fn from_system() -> Option<Self> {
        Self::new(
            warden_microkit::memory_region_words!(serial_rx_queue, serial_rx_queue_size),
            warden_microkit::memory_region_words!(serial_rx_data, serial_rx_data_size),
            warden_microkit::memory_region_words!(serial_tx_queue, serial_tx_queue_size),
            warden_microkit::memory_region_words!(serial_tx_data, serial_tx_data_size),
        )
    }
}

/// What one call moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Moved {
    /// Characters queued or taken.
    pub characters: usize,
    /// Characters that did not fit (the queue was full) and were dropped or left to the caller.
    pub refused: usize,
    /// The peer's index was impossible (the queue would hold more than its capacity).
    pub corrupt: bool,
}

/// The producing end of a queue (the driver's receive queue, the client's transmit queue).
#[derive(Debug)]
struct Producer {
    queue: Queue,
    tail: u32,
}

impl Producer {
    /// Takes up the tail in memory (a restarted PD goes on where its predecessor stopped).
    fn new(queue: Queue) -> Self {
        let tail = queue.word(TAIL).load(Ordering::Relaxed);
        Self { queue, tail }
    }

    /// Queues as much of `bytes` as fits now: how many, or `None` if the consumer's head is
    /// impossible.
    fn look(&mut self, bytes: &[u8]) -> Option<usize> {
        let queue = self.queue;
        let head = queue.word(HEAD).load(Ordering::Acquire);
        let held = self.tail.wrapping_sub(head);
        if held > queue.capacity {
            return None;
        }
        let count = ((queue.capacity - held) as usize).min(bytes.len());
        for (offset, byte) in bytes.iter().take(count).enumerate() {
            let index = self.tail.wrapping_add(offset as u32);
            queue.data.set_byte(queue.at(index), *byte);
        }
        self.tail = self.tail.wrapping_add(count as u32);
        queue.word(TAIL).store(self.tail, Ordering::Release);
        Some(count)
    }

    /// Asks the consumer to signal when it makes room (sDDF's `serial_request_consumer_signal`).
    fn request_signal(&self) {
        self.queue.word(SIGNALLED).store(0, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Queues as much of `bytes` as fits; the consumer is to be notified when any was. When
    /// the queue is full it asks to be signalled and looks again (sDDF's double check: a
    /// consumer that drained the queue in between saw no request and will not signal), and if
    /// the second look queued everything it withdraws the request.
    fn produce(&mut self, bytes: &[u8]) -> Moved {
        self.produce_with(bytes, &mut || {})
    }

    /// [`Producer::produce`], running `between` after the first look found the queue full and
    /// before the request to be signalled: where a consumer that drains the queue sees no
    /// request and does not signal (for the test of the race the second look closes).
    fn produce_with(&mut self, bytes: &[u8], between: &mut dyn FnMut()) -> Moved {
        let mut moved = Moved::default();
        match self.look(bytes) {
            None => moved.corrupt = true,
            Some(count) if count == bytes.len() => moved.characters = count,
            Some(count) => {
                moved.characters = count;
                between();
                self.request_signal();
                let rest = bytes.get(count..).unwrap_or_default();
                match self.look(rest) {
                    None => moved.corrupt = true,
                    Some(more) => {
                        moved.characters += more;
                        if more == rest.len() {
                            self.queue.word(SIGNALLED).store(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        moved.refused = bytes.len() - moved.characters;
        moved
    }
}

/// The consuming end of a queue (the driver's transmit queue, the client's receive queue).
#[derive(Debug)]
struct Consumer {
    queue: Queue,
    head: u32,
}

impl Consumer {
    fn new(queue: Queue) -> Self {
        let head = queue.word(HEAD).load(Ordering::Relaxed);
        Self { queue, head }
    }

    /// Hands what is queued to `take` in pieces of at most 64 characters, at most a queue's
    /// worth, until `take` takes less than a whole piece (it returns how many characters it
    /// took; the rest stay queued). The head is stored after each piece, so a consumer that
    /// dies midway leaves only what it had not taken. Returns what was taken and whether the producer is to be notified (it asked to
    /// be, and room may have been made: also when nothing was taken this time, so that a
    /// request its predecessor never answered, say, is not left waiting).
    fn consume(&mut self, take: &mut dyn FnMut(&[u8]) -> usize) -> (Moved, bool) {
        let queue = self.queue;
        let tail = queue.word(TAIL).load(Ordering::Acquire);
        let held = tail.wrapping_sub(self.head);
        if held > queue.capacity {
            return (
                Moved {
                    corrupt: true,
                    ..Moved::default()
                },
                false,
            );
        }
        let mut taken = 0usize;
        let mut chunk = [0u8; 64];
        while taken < held as usize {
            let count = chunk.len().min(held as usize - taken);
            for (offset, byte) in chunk.iter_mut().take(count).enumerate() {
                let index = self.head.wrapping_add(offset as u32);
                *byte = queue.data.byte(queue.at(index));
            }
            let took = take(chunk.get(..count).unwrap_or_default()).min(count);
            taken += took;
            self.head = self.head.wrapping_add(took as u32);
            queue.word(HEAD).store(self.head, Ordering::Release);
            if took < count {
                break;
            }
        }
        fence(Ordering::SeqCst);
        let signal = queue.word(SIGNALLED).load(Ordering::Relaxed) == 0;
        if signal {
            queue.word(SIGNALLED).store(1, Ordering::Relaxed);
        }
        (
            Moved {
                characters: taken,
                refused: held as usize - taken,
                ..Moved::default()
            },
            signal,
        )
    }
}

/// The UART driver's half: it produces the received characters and consumes the output.
#[derive(Debug)]
pub struct Server {
    channel: Channel,
    receive: Producer,
    transmit: Consumer,
}

impl Server {
    /// The server of the client on `channel`, over `regions`, going on from the indices in
    /// memory (a restarted driver loses nothing the client queued).
    #[must_use]
    pub fn new(channel: Channel, regions: Regions) -> Self {
        Self {
            channel,
            receive: Producer::new(regions.receive),
            transmit: Consumer::new(regions.transmit),
        }
    }

    /// Queues characters the UART received for the client and notifies it if any were.
    /// Characters that do not fit are dropped (a UART cannot wait) and counted in the result.
    pub fn receive(&mut self, bytes: &[u8]) -> Moved {
        let moved = self.receive.produce(bytes);
        if moved.characters > 0 {
            self.channel.notify();
        }
        moved
    }

    /// Hands the client's output to `write` (at most a queue's worth; `write` returns how many
    /// characters of a piece it wrote, and what it did not write stays queued with the rest)
    /// and notifies the client if it waits for room.
    pub fn transmit(&mut self, write: &mut dyn FnMut(&[u8]) -> usize) -> Moved {
        let (moved, signal) = self.transmit.consume(write);
        if signal {
            self.channel.notify();
        }
        moved
    }
}

/// The client's half: it produces output and consumes what was received.
#[derive(Debug)]
pub struct Client {
    channel: Channel,
    receive: Consumer,
    transmit: Producer,
}

impl Client {
    /// The client of the UART driver on `channel`, over `regions`.
    #[must_use]
    pub fn new(channel: Channel, regions: Regions) -> Self {
        Self {
            channel,
            receive: Consumer::new(regions.receive),
            transmit: Producer::new(regions.transmit),
        }
    }

    /// Queues `bytes` for the UART (as much as fits) and notifies the driver if any were.
    pub fn write(&mut self, bytes: &[u8]) -> Moved {
        let moved = self.transmit.produce(bytes);
        if moved.characters > 0 {
            self.channel.notify();
        }
        moved
    }

    /// Hands what was received to `take` (which returns how many characters of a piece it took;
    /// the rest stay queued) and notifies the driver if it waits for room.
    pub fn read(&mut self, take: &mut dyn FnMut(&[u8]) -> usize) -> Moved {
        let (moved, signal) = self.receive.consume(take);
        if signal {
            self.channel.notify();
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use super::*;
    use alloc::vec::Vec;

    fn leak(words: usize) -> &'static [AtomicU32] {
        let mut memory = Vec::new();
        memory.resize_with(words, || AtomicU32::new(0));
        memory.leak()
    }

    /// Both halves over one set of regions, with a data region of `data_bytes` each way.
    fn pair(data_bytes: usize) -> (Server, Client, Regions) {
        let regions = Regions::new(
            Some(leak(3)),
            Some(leak(data_bytes / 4)),
            Some(leak(3)),
            Some(leak(data_bytes / 4)),
        )
        .unwrap();
        (
            Server::new(Channel::new(3), regions),
            Client::new(Channel::new(1), regions),
            regions,
        )
    }

    /// A half's `read` or `transmit`.
    type Drain<'a> = &'a mut dyn FnMut(&mut dyn FnMut(&[u8]) -> usize) -> Moved;

    fn read_all(read: Drain<'_>) -> (Vec<u8>, Moved) {
        let mut out = Vec::new();
        let moved = read(&mut |bytes| {
            out.extend_from_slice(bytes);
            bytes.len()
        });
        (out, moved)
    }

    #[test]
    fn capacity_is_the_largest_power_of_two_that_fits() {
        assert_eq!(capacity_for(0), None);
        assert_eq!(capacity_for(1), Some(1));
        assert_eq!(capacity_for(4096), Some(4096));
        assert_eq!(capacity_for(0x3000), Some(0x2000));
        assert_eq!(capacity_for(usize::MAX), Some(MAX_CAPACITY));
        assert!(Regions::new(Some(leak(2)), Some(leak(4)), Some(leak(3)), Some(leak(4))).is_none());
        assert!(Regions::new(Some(leak(3)), Some(leak(0)), Some(leak(3)), Some(leak(4))).is_none());
        assert!(Regions::new(None, Some(leak(4)), Some(leak(3)), Some(leak(4))).is_none());
    }

    #[test]
    fn characters_go_both_ways_and_wrap() {
        let (mut server, mut client, _) = pair(16);
        for round in 0..10u8 {
            let text: Vec<u8> = (0..11).map(|index| b'a' + (index + round) % 26).collect();
            assert_eq!(client.write(&text).characters, 11);
            let (out, moved) = read_all(&mut |take| server.transmit(take));
            assert_eq!((out.as_slice(), moved.characters), (text.as_slice(), 11));
            assert_eq!(server.receive(&text).characters, 11);
            let (out, _) = read_all(&mut |take| client.read(take));
            assert_eq!(out, text);
        }
    }

    #[test]
    fn a_full_queue_refuses_the_rest_and_the_producer_is_told_when_room_is_made() {
        let (mut server, mut client, regions) = pair(8);
        // No request to be signalled yet (sDDF's queues start so).
        regions.receive.word(SIGNALLED).store(1, Ordering::Relaxed);
        let moved = server.receive(b"0123456789");
        assert_eq!((moved.characters, moved.refused), (8, 2));
        // The driver asked to be signalled.
        assert_eq!(regions.receive.word(SIGNALLED).load(Ordering::Relaxed), 0);
        let (out, moved) = read_all(&mut |take| client.read(take));
        assert_eq!((out.as_slice(), moved.characters), (&b"01234567"[..], 8));
        // The client signalled once and set the flag back.
        assert_eq!(regions.receive.word(SIGNALLED).load(Ordering::Relaxed), 1);
        assert_eq!(server.receive(b"89").characters, 2);
        // Signalled only once: reading again while nothing was asked does not notify.
        let (_, signal) = client.receive.consume(&mut |bytes| bytes.len());
        assert!(!signal);
    }

    /// The race sDDF's double check closes, step by step: the producer finds the queue full,
    /// the consumer drains it (no request is standing, so it does not signal), then the
    /// producer asks to be signalled. Only its second look finds the room; without it, it
    /// would wait for a signal that never comes.
    #[test]
    fn the_second_look_finds_room_made_before_the_request() {
        let (_, _, regions) = pair(8);
        regions.receive.word(SIGNALLED).store(1, Ordering::Relaxed);
        let mut producer = Producer::new(regions.receive);
        let mut consumer = Consumer::new(regions.receive);
        assert_eq!(producer.produce(b"01234567").characters, 8);
        // The consumer drains the queue after the producer found it full and before its request:
        // it sees no request and does not signal, and the producer queued nothing this time,
        // so it does not notify either. Only the second look, after the request, finds the
        // room; without it the producer would wait for a signal that never comes.
        let mut drained = 0;
        let moved = producer.produce_with(b"89abcdefgh", &mut || {
            drained = consumer.consume(&mut |bytes| bytes.len()).0.characters;
        });
        assert_eq!(drained, 8);
        assert_eq!(regions.receive.word(SIGNALLED).load(Ordering::Relaxed), 0);
        assert_eq!((moved.characters, moved.refused), (8, 2));
        // Full again with two refused: the request stands, and the consumer honours it once.
        assert_eq!(regions.receive.word(SIGNALLED).load(Ordering::Relaxed), 0);
        assert!(consumer.consume(&mut |bytes| bytes.len()).1);
        assert!(!consumer.consume(&mut |bytes| bytes.len()).1);
        // When the second look queues everything, the request is withdrawn.
        assert_eq!(producer.produce(b"qrstuvwx").characters, 8);
        let moved = producer.produce_with(b"ijklmnop", &mut || {
            consumer.consume(&mut |bytes| bytes.len());
        });
        assert_eq!((moved.characters, moved.refused), (8, 0));
        assert_eq!(regions.receive.word(SIGNALLED).load(Ordering::Relaxed), 1);
    }

    /// A producer that blocks when the queue is full and a consumer that sleeps until it is
    /// notified, each on its own thread, the notifications flags: 200,000 characters through a
    /// queue of 8 arrive whole and in order, and neither side waits for good (a consumer that
    /// did not honour a request, or a producer that asked for none, would leave both asleep).
    #[test]
    fn no_wake_up_is_lost_between_a_blocked_producer_and_a_sleeping_consumer() {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        use std::time::{Duration, Instant};
        const TOTAL: usize = 200_000;
        let (_, _, regions) = pair(8);
        regions.receive.word(SIGNALLED).store(1, Ordering::Relaxed);
        let to_consumer = Arc::new(AtomicBool::new(false));
        let to_producer = Arc::new(AtomicBool::new(false));
        let wait = |flag: &AtomicBool, who: &str| {
            let start = Instant::now();
            while !flag.swap(false, Ordering::AcqRel) {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "{who} was never woken"
                );
                std::thread::yield_now();
            }
        };
        let consumer = {
            let (to_consumer, to_producer) = (to_consumer.clone(), to_producer.clone());
            std::thread::spawn(move || {
                let mut consumer = Consumer::new(regions.receive);
                let mut received = 0usize;
                let mut expected = 0u8;
                while received < TOTAL {
                    wait(&to_consumer, "the consumer");
                    let (moved, signal) = consumer.consume(&mut |bytes| {
                        for byte in bytes {
                            assert_eq!(*byte, expected);
                            expected = expected.wrapping_add(1);
                        }
                        bytes.len()
                    });
                    received += moved.characters;
                    if signal {
                        to_producer.store(true, Ordering::Release);
                    }
                }
            })
        };
        let mut producer = Producer::new(regions.receive);
        let bytes: Vec<u8> = (0..TOTAL).map(|index| index as u8).collect();
        let mut sent = 0;
        while sent < TOTAL {
            let end = (sent + 5).min(TOTAL);
            let moved = producer.produce(&bytes[sent..end]);
            sent += moved.characters;
            if moved.characters > 0 {
                to_consumer.store(true, Ordering::Release);
            }
            if moved.refused > 0 {
                wait(&to_producer, "the producer");
            }
        }
        consumer.join().unwrap();
    }

    /// Indices near `u32::MAX` wrap as sDDF's do (free-running, used modulo the capacity).
    #[test]
    fn indices_wrap_past_u32_max() {
        let (_, _, regions) = pair(16);
        for word in [TAIL, HEAD] {
            regions
                .transmit
                .word(word)
                .store(u32::MAX - 5, Ordering::Relaxed);
        }
        let mut client = Client::new(Channel::new(1), regions);
        let mut server = Server::new(Channel::new(3), regions);
        for round in 0..4u8 {
            let text = [b'a' + round; 13];
            assert_eq!(client.write(&text).characters, 13);
            let (out, moved) = read_all(&mut |take| server.transmit(take));
            assert_eq!((out.as_slice(), moved.corrupt), (&text[..], false));
        }
        assert!(regions.transmit.word(TAIL).load(Ordering::Relaxed) < 100);
    }

    /// A writer that refuses a piece (a stuck transmitter) leaves it and the rest queued.
    #[test]
    fn what_the_writer_refuses_stays_queued() {
        let (mut server, mut client, _) = pair(256);
        let text: Vec<u8> = (0..200u8).collect();
        client.write(&text);
        let mut pieces = 0;
        let moved = server.transmit(&mut |bytes| {
            pieces += 1;
            // The second piece is written only in part (a transmitter that stuck midway).
            if pieces == 1 {
                bytes.len()
            } else {
                10
            }
        });
        assert_eq!((moved.characters, moved.refused), (74, 126));
        let (out, _) = read_all(&mut |take| server.transmit(take));
        assert_eq!(out, text[74..]);
    }

    #[test]
    fn a_restarted_driver_takes_up_the_queues_where_they_were() {
        let (mut server, mut client, regions) = pair(16);
        client.write(b"before");
        server.transmit(&mut |bytes| bytes.len());
        client.write(b"during");
        // The driver dies here; its successor writes what was queued since, once.
        server = Server::new(Channel::new(3), regions);
        let (out, _) = read_all(&mut |take| server.transmit(take));
        assert_eq!(out, b"during");
        assert_eq!(read_all(&mut |take| server.transmit(take)).0, b"");
    }

    /// A hostile client scribbles its indices and the flag: the driver refuses what would
    /// hold more than the capacity, reads nothing past the regions, and goes on once the
    /// client's indices make sense again.
    #[test]
    fn a_hostile_client_s_indices_are_refused() {
        let (mut server, _, regions) = pair(16);
        for tail in [17u32, u32::MAX, 0x8000_0000, 1000] {
            regions.transmit.word(TAIL).store(tail, Ordering::Relaxed);
            let (out, moved) = read_all(&mut |take| server.transmit(take));
            assert!(moved.corrupt && out.is_empty(), "tail {tail}");
        }
        // The client's head on the receive queue ahead of the driver's tail: refused, not a
        // wrap into "room".
        regions.receive.word(HEAD).store(5, Ordering::Relaxed);
        let moved = server.receive(b"abc");
        assert!(moved.corrupt);
        assert_eq!(moved.refused, 3);
        // The client puts sane indices back (its head where the driver's tail is; its tail 16
        // ahead of the driver's head, a full queue of whatever the data region holds).
        regions.receive.word(HEAD).store(0, Ordering::Relaxed);
        regions.transmit.word(TAIL).store(16, Ordering::Relaxed);
        let (out, moved) = read_all(&mut |take| server.transmit(take));
        assert_eq!((out.len(), moved.corrupt), (16, false));
        assert_eq!(server.receive(b"abc").characters, 3);
        // Writing the driver's own indices changes nothing it keeps.
        regions.receive.word(TAIL).store(12345, Ordering::Relaxed);
        assert_eq!(server.receive(b"d").characters, 1);
        assert_eq!(regions.receive.word(TAIL).load(Ordering::Relaxed), 4);
    }
}
