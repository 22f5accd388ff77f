//! sDDF's client interfaces, as shared memory lays them out: the block protocol (request and
//! response queues, the storage-information region) and the serial protocol (a character
//! queue's control word block; the characters live in a data region of their own). Written from
//! the layouts sDDF 0.7 documents (`include/sddf/blk/queue.h`, `blk/storage_info.h`,
//! `serial/queue.h`, the design document), not from its code, so that a Warden driver can serve
//! an sDDF client (a block virtualiser, a file system, a serial virtualiser) composed with it by
//! the system description alone.
//!
//! Unlike Warden's own wire types (alignment 1, little-endian fields), these are C structures
//! in the native layout of a 64-bit little-endian target (aarch64, and x86-64 for the host
//! platform): `#[repr(C)]` with every padding byte an explicit field, so that zerocopy's
//! `IntoBytes` derive proves at compile time that no other padding exists, and the tests pin
//! every offset and size. A C `enum` is 4 bytes and `bool` 1.
//!
//! Queues are single-producer, single-consumer rings of `capacity` entries indexed by
//! free-running 32-bit `head` and `tail` counters (an entry is `index % capacity`; the queue is
//! empty when they are equal and full when they differ by `capacity`); the producer writes an
//! entry, then publishes the new `tail` with release ordering (the Rust half; sDDF's C half
//! uses a release fence and plain accesses). Indexing by `% capacity` of free-running counters
//! stays consistent across their wrap at 2³² only for a capacity that is a power of two, as in
//! sDDF. Everything in these regions is written by the other PD:
//! [`blk::RequestCode::from_raw`] and [`blk::ResponseStatus::from_raw`] refuse codes sDDF does
//! not define, and a queue's counters are checked against its capacity by whoever reads them.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The block protocol.
pub mod blk {
    use super::{FromBytes, Immutable, IntoBytes, KnownLayout};

    /// Bytes of one block in sDDF's block protocol (`BLK_TRANSFER_SIZE`): counts, block numbers
    /// and the capacity are in these units, whatever the device's sector size.
    pub const TRANSFER_SIZE: u64 = 4096;

    /// The storage-information region's size (`BLK_STORAGE_INFO_REGION_SIZE`).
    pub const STORAGE_INFO_REGION_SIZE: usize = 0x1000;

    /// Bytes of a request queue's header (`head`, `tail`, `plugged`, padding) before its entries.
    pub const REQUEST_QUEUE_HEADER: usize = 16;

    /// Bytes of a response queue's header (`head`, `tail`) before its entries.
    pub const RESPONSE_QUEUE_HEADER: usize = 8;

    /// Offsets of a request queue's header words.
    pub const QUEUE_HEAD: usize = 0;
    /// See [`QUEUE_HEAD`].
    pub const QUEUE_TAIL: usize = 4;
    /// The request queue's `plugged` flag (one byte). sDDF's own components neither set nor
    /// read it; a Warden server honours it (dequeues nothing while it is set).
    pub const REQUEST_QUEUE_PLUGGED: usize = 8;

    /// A request's operation (`blk_req_code_t`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum RequestCode {
        /// Read `count` blocks into the buffer.
        Read = 0,
        /// Write `count` blocks from the buffer.
        Write = 1,
        /// Make every completed write durable.
        Flush = 2,
        /// Complete every earlier request before any later one.
        Barrier = 3,
    }

    impl RequestCode {
        /// The code a request carries; `None` for one sDDF does not define.
        #[must_use]
        pub const fn from_raw(raw: u32) -> Option<Self> {
            match raw {
                0 => Some(Self::Read),
                1 => Some(Self::Write),
                2 => Some(Self::Flush),
                3 => Some(Self::Barrier),
                _ => None,
            }
        }
    }

    /// A response's status (`blk_resp_status_t`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum ResponseStatus {
        /// Done.
        Ok = 0,
        /// An unspecified error.
        Unspecified = 1,
        /// Invalid parameters (a block range past the end, a buffer outside the data region…).
        InvalidParameter = 2,
        /// The device failed the request.
        Io = 3,
        /// No device is inserted.
        NoDevice = 4,
    }

    impl ResponseStatus {
        /// The status a response carries; `None` for one sDDF does not define.
        #[must_use]
        pub const fn from_raw(raw: u32) -> Option<Self> {
            match raw {
                0 => Some(Self::Ok),
                1 => Some(Self::Unspecified),
                2 => Some(Self::InvalidParameter),
                3 => Some(Self::Io),
                4 => Some(Self::NoDevice),
                _ => None,
            }
        }
    }

    /// An entry of the request queue (`blk_req_t`): 32 bytes, 8-aligned.
    #[derive(
        Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
    )]
    #[repr(C)]
    pub struct Request {
        /// A [`RequestCode`], as its raw value.
        pub code: u32,
        /// Padding before the 8-aligned field.
        pub _padding0: [u8; 4],
        /// The buffer: its offset in the client's data region (or its I/O address).
        pub io_or_offset: u64,
        /// The first block, in [`TRANSFER_SIZE`] units.
        pub block_number: u64,
        /// Blocks to transfer.
        pub count: u16,
        /// Padding before `id`.
        pub _padding1: [u8; 2],
        /// The client's id for the request, echoed by its response.
        pub id: u32,
    }

    /// An entry of the response queue (`blk_resp_t`): 12 bytes, 4-aligned.
    #[derive(
        Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
    )]
    #[repr(C)]
    pub struct Response {
        /// A [`ResponseStatus`], as its raw value.
        pub status: u32,
        /// Blocks transferred.
        pub success_count: u16,
        /// Padding before `id`.
        pub _padding: [u8; 2],
        /// The request's id.
        pub id: u32,
    }

    /// The storage-information region's contents (`blk_storage_info_t`): 88 bytes, 8-aligned,
    /// at the start of a region of [`STORAGE_INFO_REGION_SIZE`] bytes; the server fills it and
    /// sets `ready` (the byte at [`STORAGE_INFO_READY`]) last with release ordering, the client
    /// reads `ready` first with acquire ordering ([`storage_ready`]).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
    #[repr(C)]
    pub struct StorageInfo {
        /// The device's serial number, NUL-terminated (at most 63 characters).
        pub serial_number: [u8; 64],
        /// The device takes no writes (0 or 1).
        pub read_only: u8,
        /// The rest is filled in (0 or 1).
        pub ready: u8,
        /// The device's sector size, in bytes.
        pub sector_size: u16,
        /// The optimal block size, in [`TRANSFER_SIZE`] units.
        pub block_size: u16,
        /// How many requests the server takes at once.
        pub queue_depth: u16,
        /// Geometry, to guide a file system's layout.
        pub cylinders: u16,
        /// See `cylinders`.
        pub heads: u16,
        /// See `cylinders`.
        pub blocks: u16,
        /// Padding before the 8-aligned field.
        pub _padding: [u8; 2],
        /// The device's capacity, in [`TRANSFER_SIZE`] units.
        pub capacity: u64,
    }

    /// The byte of [`StorageInfo`] that is `ready`.
    pub const STORAGE_INFO_READY: usize = 65;

    /// Whether the storage information in `words` (the region, as 32-bit little-endian words)
    /// is filled in: an acquire load of the word that holds `ready`.
    #[must_use]
    pub fn storage_ready(words: &[crate::sync::AtomicU32]) -> bool {
        words.get(STORAGE_INFO_READY / 4).is_some_and(|word| {
            (word.load(crate::sync::Ordering::Acquire) >> (8 * (STORAGE_INFO_READY % 4))) & 0xff
                != 0
        })
    }

    /// Bytes a request queue of `capacity` entries takes; `None` if that overflows.
    #[must_use]
    pub fn request_queue_bytes(capacity: u32) -> Option<usize> {
        usize::try_from(capacity)
            .ok()?
            .checked_mul(core::mem::size_of::<Request>())?
            .checked_add(REQUEST_QUEUE_HEADER)
    }

    /// Bytes a response queue of `capacity` entries takes; `None` if that overflows.
    #[must_use]
    pub fn response_queue_bytes(capacity: u32) -> Option<usize> {
        usize::try_from(capacity)
            .ok()?
            .checked_mul(core::mem::size_of::<Response>())?
            .checked_add(RESPONSE_QUEUE_HEADER)
    }
}

/// The block protocol's queues over shared memory: a client (producer of requests, consumer of
/// responses) or a server (the other way round). Each side keeps the counters it writes in
/// private copies and only validates the peer's, as [`crate::ring`] does, so a peer that
/// scribbles over the queues gets errors, never an out-of-bounds index, a panic or a loop. The
/// capacity comes from each side's own configuration (the system description), never from the
/// shared memory.
pub mod blk_queue {
    use super::blk::{Request, Response, REQUEST_QUEUE_HEADER, RESPONSE_QUEUE_HEADER};
    use crate::sync::{AtomicU32, Ordering};
    use zerocopy::{FromBytes, Immutable, IntoBytes};
    const HEAD: usize = super::blk::QUEUE_HEAD / 4;
    const TAIL: usize = super::blk::QUEUE_TAIL / 4;
    const PLUGGED: usize = super::blk::REQUEST_QUEUE_PLUGGED / 4;

    /// What can go wrong: the ring's errors, of which these queues give three:
    /// [`RingError::Full`] (nothing written), [`RingError::BadGeometry`] (a region too small
    /// for the capacity, or a capacity of 0 or above 2³⁰) and [`RingError::PeerIndexCorrupt`]
    /// (the peer's counter is impossible: nothing read or written).
    pub use crate::ring::RingError as QueueError;

    /// The two queues' memory, as 32-bit words (little-endian, the layout of [`super::blk`]).
    #[derive(Clone, Copy, Debug)]
    pub struct Queues<'a> {
        requests: &'a [AtomicU32],
        responses: &'a [AtomicU32],
        capacity: u32,
    }

    impl<'a> Queues<'a> {
        /// Queues of `capacity` entries each over `requests` and `responses`.
        ///
        /// # Errors
        /// [`QueueError::BadGeometry`].
        pub fn new(
            requests: &'a [AtomicU32],
            responses: &'a [AtomicU32],
            capacity: u32,
        ) -> Result<Self, QueueError> {
            let fits = |words: &[AtomicU32], bytes: Option<usize>| {
                bytes.is_some_and(|bytes| words.len().saturating_mul(4) >= bytes)
            };
            if capacity == 0
                || capacity > 1 << 30
                || !fits(requests, super::blk::request_queue_bytes(capacity))
                || !fits(responses, super::blk::response_queue_bytes(capacity))
            {
                return Err(QueueError::BadGeometry);
            }
            Ok(Self {
                requests,
                responses,
                capacity,
            })
        }

        /// Entries each queue holds.
        #[must_use]
        pub fn capacity(&self) -> u32 {
            self.capacity
        }

        fn word(words: &[AtomicU32], index: usize) -> &AtomicU32 {
            // `new` checked the length for every index this module computes: header words and
            // entry `i % capacity`'s words.
            match words.get(index) {
                Some(word) => word,
                None => unreachable!("queue word {index} outside the region checked by new()"),
            }
        }

        /// Writes `entry` as the producer of the queue in `words` (entries after `header`
        /// bytes), its counter `own`: the entry's bytes, word by little-endian word, then the
        /// new `tail` (release).
        fn produce<T: IntoBytes + Immutable>(
            &self,
            words: &[AtomicU32],
            header: usize,
            own: &mut u32,
            entry: &T,
        ) -> Result<(), QueueError> {
            let head = Self::word(words, HEAD).load(Ordering::Acquire);
            if self.outstanding(*own, head, false)? == self.capacity {
                return Err(QueueError::Full);
            }
            let base = Self::entry_base::<T>(header, *own % self.capacity);
            for (index, chunk) in entry.as_bytes().chunks_exact(4).enumerate() {
                let value = u32::from_le_bytes(<[u8; 4]>::try_from(chunk).unwrap_or_default());
                Self::word(words, base + index).store(value, Ordering::Relaxed);
            }
            *own = own.wrapping_add(1);
            Self::word(words, TAIL).store(*own, Ordering::Release);
            Ok(())
        }

        /// Takes the next entry as the consumer of the queue in `words`, its counter `own`:
        /// `tail` (acquire), the entry's words, then the new `head` (release). Padding bytes are
        /// as the peer wrote them.
        fn consume<T: FromBytes + IntoBytes>(
            &self,
            words: &[AtomicU32],
            header: usize,
            own: &mut u32,
        ) -> Result<Option<T>, QueueError> {
            let entry = self.peek(words, header, *own)?;
            if entry.is_some() {
                Self::commit(words, own);
            }
            Ok(entry)
        }

        /// The entry at `own` in the queue in `words`, if the producer has published it:
        /// `tail` (acquire), then the entry's words; nothing is given back to the producer.
        fn peek<T: FromBytes + IntoBytes>(
            &self,
            words: &[AtomicU32],
            header: usize,
            own: u32,
        ) -> Result<Option<T>, QueueError> {
            let tail = Self::word(words, TAIL).load(Ordering::Acquire);
            if self.outstanding(tail, own, true)? == 0 {
                return Ok(None);
            }
            let base = Self::entry_base::<T>(header, own % self.capacity);
            let mut entry = T::new_zeroed();
            for (index, chunk) in entry.as_mut_bytes().chunks_exact_mut(4).enumerate() {
                let value = Self::word(words, base + index).load(Ordering::Relaxed);
                chunk.copy_from_slice(&value.to_le_bytes());
            }
            Ok(Some(entry))
        }

        /// Gives the entry at `own` back to the producer: the new `head` (release).
        fn commit(words: &[AtomicU32], own: &mut u32) {
            *own = own.wrapping_add(1);
            Self::word(words, HEAD).store(*own, Ordering::Release);
        }

        /// The first word of entry `slot` (below the capacity) of `T`s after `header` bytes.
        fn entry_base<T>(header: usize, slot: u32) -> usize {
            header / 4 + slot as usize * (core::mem::size_of::<T>() / 4)
        }

        /// A queue's `head` and `tail` as the memory holds them, if `tail - head` is possible.
        fn counters(&self, words: &[AtomicU32]) -> Result<(u32, u32), QueueError> {
            let head = Self::word(words, HEAD).load(Ordering::Acquire);
            let tail = Self::word(words, TAIL).load(Ordering::Acquire);
            self.outstanding(tail, head, true)?;
            Ok((head, tail))
        }

        /// Checks that `producer - consumer` is at most the capacity: one of the two is the
        /// peer's.
        fn outstanding(
            &self,
            producer: u32,
            consumer: u32,
            peer_is_producer: bool,
        ) -> Result<u32, QueueError> {
            let outstanding = producer.wrapping_sub(consumer);
            if outstanding > self.capacity {
                let (peer, own) = if peer_is_producer {
                    (producer, consumer)
                } else {
                    (consumer, producer)
                };
                return Err(QueueError::PeerIndexCorrupt { peer, own });
            }
            Ok(outstanding)
        }
    }

    /// The client's side.
    #[derive(Debug)]
    pub struct Client<'a> {
        queues: Queues<'a>,
        request_tail: u32,
        response_head: u32,
    }

    impl<'a> Client<'a> {
        /// The client of `queues`, taking up the counters it writes from the memory (zero on a
        /// fresh system, the last values after a restart of the client).
        ///
        /// # Errors
        /// [`QueueError::PeerIndexCorrupt`] if the memory's counters are already impossible
        /// (the peer wrote them): nothing to take up.
        pub fn new(queues: Queues<'a>) -> Result<Self, QueueError> {
            let requests = queues.counters(queues.requests)?;
            let responses = queues.counters(queues.responses)?;
            Ok(Self {
                request_tail: requests.1,
                response_head: responses.0,
                queues,
            })
        }

        /// Enqueues `request`.
        ///
        /// # Errors
        /// [`QueueError::Full`], or [`QueueError::PeerIndexCorrupt`] if the server's `head` is
        /// impossible.
        pub fn enqueue_request(&mut self, request: &Request) -> Result<(), QueueError> {
            let q = self.queues;
            q.produce(
                q.requests,
                REQUEST_QUEUE_HEADER,
                &mut self.request_tail,
                request,
            )
        }

        /// The next response, if any.
        ///
        /// # Errors
        /// [`QueueError::PeerIndexCorrupt`] if the server's `tail` is impossible.
        pub fn dequeue_response(&mut self) -> Result<Option<Response>, QueueError> {
            let q = self.queues;
            q.consume(q.responses, RESPONSE_QUEUE_HEADER, &mut self.response_head)
        }

        /// Plugs (`true`) or unplugs the request queue: while it is plugged the server takes no
        /// request.
        pub fn plug(&self, plugged: bool) {
            Queues::word(self.queues.requests, PLUGGED)
                .store(u32::from(plugged), Ordering::Release);
        }
    }

    /// The server's side.
    #[derive(Debug)]
    pub struct Server<'a> {
        queues: Queues<'a>,
        request_head: u32,
        response_tail: u32,
    }

    impl<'a> Server<'a> {
        /// The server of `queues`, taking up the counters it writes from the memory.
        ///
        /// A server answers one request with one response, so the two counters it writes,
        /// the request queue's `head` and the response queue's `tail`, are equal between
        /// answers. One ahead of `head`, `tail` says the last incarnation died after it queued
        /// a response and before it gave the request's slot back ([`Server::answer_next`]):
        /// the slot is given back now, so that request is not served a second time (a client
        /// that has taken the response may already have reused its id and its buffer).
        ///
        /// # Errors
        /// [`QueueError::PeerIndexCorrupt`] if the memory's counters are already impossible.
        pub fn new(queues: Queues<'a>) -> Result<Self, QueueError> {
            let requests = queues.counters(queues.requests)?;
            let responses = queues.counters(queues.responses)?;
            let mut request_head = requests.0;
            if responses.1.wrapping_sub(request_head) == 1 && requests.1 != request_head {
                Queues::commit(queues.requests, &mut request_head);
            }
            Ok(Self {
                request_head,
                response_tail: responses.1,
                queues,
            })
        }

        /// The next request, if any and the queue is not plugged. Its fields are the client's:
        /// the code is checked with [`super::blk::RequestCode::from_raw`], the range and the
        /// buffer against the device and the data region, by the caller.
        ///
        /// # Errors
        /// [`QueueError::PeerIndexCorrupt`] if the client's `tail` is impossible.
        pub fn dequeue_request(&mut self) -> Result<Option<Request>, QueueError> {
            let q = self.queues;
            // `plugged` is a C `bool` in the word's first byte.
            if Queues::word(q.requests, PLUGGED).load(Ordering::Acquire) & 0xff != 0 {
                return Ok(None);
            }
            q.consume(q.requests, REQUEST_QUEUE_HEADER, &mut self.request_head)
        }

        /// Answers the next request (if any, and the queue is not plugged) with what `answer`
        /// makes of it, once across the server's death: the response is queued before the
        /// request's slot is given back to the client, so a server that dies in `answer` leaves
        /// the request in the queue and its next incarnation answers it, and one that dies
        /// between the two leaves counters from which its next incarnation ([`Server::new`])
        /// gives the slot back without answering again. Whether a request was answered, or
        /// `Ok(false)` when there was none.
        ///
        /// # Errors
        /// [`QueueError::Full`] when the response queue has no room (the request stays queued
        /// and `answer` is not called), or [`QueueError::PeerIndexCorrupt`] for an impossible
        /// counter of the client's.
        pub fn answer_next(
            &mut self,
            answer: impl FnOnce(&Request) -> Response,
        ) -> Result<bool, QueueError> {
            let q = self.queues;
            if Queues::word(q.requests, PLUGGED).load(Ordering::Acquire) & 0xff != 0 {
                return Ok(false);
            }
            let Some(request) =
                q.peek::<Request>(q.requests, REQUEST_QUEUE_HEADER, self.request_head)?
            else {
                return Ok(false);
            };
            let head = Queues::word(q.responses, HEAD).load(Ordering::Acquire);
            if q.outstanding(self.response_tail, head, false)? == q.capacity {
                return Err(QueueError::Full);
            }
            let response = answer(&request);
            self.enqueue_response(&response)?;
            Queues::commit(q.requests, &mut self.request_head);
            Ok(true)
        }

        /// Enqueues `response`.
        ///
        /// # Errors
        /// [`QueueError::Full`], or [`QueueError::PeerIndexCorrupt`] if the client's `head` is
        /// impossible.
        pub fn enqueue_response(&mut self, response: &Response) -> Result<(), QueueError> {
            let q = self.queues;
            q.produce(
                q.responses,
                RESPONSE_QUEUE_HEADER,
                &mut self.response_tail,
                response,
            )
        }
    }
}

/// The serial protocol.
pub mod serial {
    use super::{FromBytes, Immutable, IntoBytes, KnownLayout};

    /// A character queue's control words (`serial_queue_t`): 12 bytes, 4-aligned, in a region
    /// of their own; the characters are in a data region of `capacity` bytes, character `i` at
    /// `i % capacity`. The producer stores a character, then `tail` (release); the consumer
    /// reads `tail` (acquire), the characters, then stores `head` (release).
    #[derive(
        Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
    )]
    #[repr(C)]
    pub struct Queue {
        /// The index the producer writes next.
        pub tail: u32,
        /// The index the consumer reads next.
        pub head: u32,
        /// Zero: the producer asks to be signalled when there is room again (it stores 0, then
        /// re-checks); the consumer, once it has signalled (or the producer, cancelling), stores
        /// 1. The consumer signals only if it reads 0.
        pub producer_signalled: u32,
    }
}

#[cfg(test)]
mod tests {
    use super::{blk, serial};
    use core::mem::{align_of, offset_of, size_of};

    /// Every offset and size, as a C compiler lays the structures out on a 64-bit target.
    #[test]
    fn the_block_structures_are_laid_out_as_sddf_s() {
        assert_eq!(
            (size_of::<blk::Request>(), align_of::<blk::Request>()),
            (32, 8)
        );
        assert_eq!(offset_of!(blk::Request, code), 0);
        assert_eq!(offset_of!(blk::Request, io_or_offset), 8);
        assert_eq!(offset_of!(blk::Request, block_number), 16);
        assert_eq!(offset_of!(blk::Request, count), 24);
        assert_eq!(offset_of!(blk::Request, id), 28);

        assert_eq!(
            (size_of::<blk::Response>(), align_of::<blk::Response>()),
            (12, 4)
        );
        assert_eq!(offset_of!(blk::Response, status), 0);
        assert_eq!(offset_of!(blk::Response, success_count), 4);
        assert_eq!(offset_of!(blk::Response, id), 8);

        assert_eq!(
            (
                size_of::<blk::StorageInfo>(),
                align_of::<blk::StorageInfo>()
            ),
            (88, 8)
        );
        assert_eq!(offset_of!(blk::StorageInfo, serial_number), 0);
        assert_eq!(offset_of!(blk::StorageInfo, read_only), 64);
        assert_eq!(offset_of!(blk::StorageInfo, ready), 65);
        assert_eq!(offset_of!(blk::StorageInfo, sector_size), 66);
        assert_eq!(offset_of!(blk::StorageInfo, block_size), 68);
        assert_eq!(offset_of!(blk::StorageInfo, queue_depth), 70);
        assert_eq!(offset_of!(blk::StorageInfo, cylinders), 72);
        assert_eq!(offset_of!(blk::StorageInfo, heads), 74);
        assert_eq!(offset_of!(blk::StorageInfo, blocks), 76);
        assert_eq!(offset_of!(blk::StorageInfo, capacity), 80);
        assert!(size_of::<blk::StorageInfo>() <= blk::STORAGE_INFO_REGION_SIZE);

        // A queue's entries follow its header at the entry's alignment: the request queue's
        // `bool plugged` at 8 pads to 16 for the 8-aligned requests.
        assert_eq!(blk::REQUEST_QUEUE_HEADER % align_of::<blk::Request>(), 0);
        assert_eq!(blk::RESPONSE_QUEUE_HEADER % align_of::<blk::Response>(), 0);
        assert_eq!(
            (blk::QUEUE_HEAD, blk::QUEUE_TAIL, blk::REQUEST_QUEUE_PLUGGED),
            (0, 4, 8)
        );
        assert_eq!(blk::request_queue_bytes(128), Some(16 + 128 * 32));
        assert_eq!(blk::response_queue_bytes(128), Some(8 + 128 * 12));
        assert_eq!(blk::TRANSFER_SIZE, 4096);
    }

    #[test]
    fn the_serial_queue_is_laid_out_as_sddf_s() {
        assert_eq!(
            (size_of::<serial::Queue>(), align_of::<serial::Queue>()),
            (12, 4)
        );
        assert_eq!(offset_of!(serial::Queue, tail), 0);
        assert_eq!(offset_of!(serial::Queue, head), 4);
        assert_eq!(offset_of!(serial::Queue, producer_signalled), 8);
    }

    /// Codes sDDF defines map both ways; every other value a peer could write is refused.
    #[test]
    fn codes_outside_sddf_s_are_refused() {
        for code in [
            blk::RequestCode::Read,
            blk::RequestCode::Write,
            blk::RequestCode::Flush,
            blk::RequestCode::Barrier,
        ] {
            assert_eq!(blk::RequestCode::from_raw(code as u32), Some(code));
        }
        for status in [
            blk::ResponseStatus::Ok,
            blk::ResponseStatus::Unspecified,
            blk::ResponseStatus::InvalidParameter,
            blk::ResponseStatus::Io,
            blk::ResponseStatus::NoDevice,
        ] {
            assert_eq!(blk::ResponseStatus::from_raw(status as u32), Some(status));
        }
        for raw in [4, 5, 0x8000_0000, u32::MAX] {
            assert_eq!(blk::RequestCode::from_raw(raw), None, "{raw}");
        }
        for raw in [5, 6, u32::MAX] {
            assert_eq!(blk::ResponseStatus::from_raw(raw), None, "{raw}");
        }
    }

    /// A request written as bytes by a peer reads back field by field (little-endian, native
    /// layout), padding included.
    #[test]
    fn a_request_round_trips_through_its_bytes() {
        use zerocopy::{FromBytes, IntoBytes};
        let request = blk::Request {
            code: blk::RequestCode::Write as u32,
            io_or_offset: 0x2000,
            block_number: 7,
            count: 3,
            id: 0xdead_beef,
            ..blk::Request::default()
        };
        let bytes = request.as_bytes();
        assert_eq!(bytes.get(8..16), Some(&0x2000_u64.to_le_bytes()[..]));
        assert_eq!(bytes.get(28..32), Some(&0xdead_beef_u32.to_le_bytes()[..]));
        assert_eq!(blk::Request::read_from_bytes(bytes).ok(), Some(request));
        assert!(
            blk::Request::read_from_bytes(&bytes[..31]).is_err(),
            "short"
        );
    }

    #[cfg(not(loom))]
    mod queues {
        use super::super::blk::{self, Request, Response};
        use super::super::blk_queue::{Client, QueueError, Queues, Server};
        use core::sync::atomic::{AtomicU32, Ordering};

        const CAPACITY: u32 = 4;

        /// Words of the two queues of [`CAPACITY`] entries: 16 + 4 × 32 and 8 + 4 × 12 bytes.
        const REQUEST_WORDS: usize = 36;
        const RESPONSE_WORDS: usize = 14;

        fn memory() -> ([AtomicU32; REQUEST_WORDS], [AtomicU32; RESPONSE_WORDS]) {
            assert_eq!(blk::request_queue_bytes(CAPACITY), Some(REQUEST_WORDS * 4));
            assert_eq!(
                blk::response_queue_bytes(CAPACITY),
                Some(RESPONSE_WORDS * 4)
            );
            (
                core::array::from_fn(|_| AtomicU32::new(0)),
                core::array::from_fn(|_| AtomicU32::new(0)),
            )
        }

        fn request(id: u32) -> Request {
            Request {
                code: blk::RequestCode::Read as u32,
                io_or_offset: 0x1_0000_2000 + u64::from(id),
                block_number: 0x2_0000_0000 + u64::from(id),
                count: 2,
                id,
                ..Request::default()
            }
        }

        #[test]
        fn requests_and_responses_travel_in_order_and_wrap() {
            let (requests, responses) = memory();
            let queues = Queues::new(&requests, &responses, CAPACITY).unwrap();
            let (mut client, mut server) =
                (Client::new(queues).unwrap(), Server::new(queues).unwrap());
            for round in 0..3 {
                for id in 0..CAPACITY {
                    client.enqueue_request(&request(round * 10 + id)).unwrap();
                }
                assert_eq!(client.enqueue_request(&request(99)), Err(QueueError::Full));
                for id in 0..CAPACITY {
                    let got = server.dequeue_request().unwrap().unwrap();
                    assert_eq!(got, request(round * 10 + id));
                    let response = Response {
                        status: blk::ResponseStatus::Ok as u32,
                        success_count: got.count,
                        id: got.id,
                        ..Response::default()
                    };
                    server.enqueue_response(&response).unwrap();
                }
                assert_eq!(server.dequeue_request(), Ok(None));
                for id in 0..CAPACITY {
                    let response = client.dequeue_response().unwrap().unwrap();
                    assert_eq!((response.id, response.success_count), (round * 10 + id, 2));
                }
                assert_eq!(client.dequeue_response(), Ok(None));
            }
            // The counters are sDDF's: free-running, in the header words.
            assert_eq!(requests[0].load(Ordering::Relaxed), 12, "head");
            assert_eq!(requests[1].load(Ordering::Relaxed), 12, "tail");
            // An entry is where sDDF's C code puts it: header 16 bytes, 32 bytes each.
            let entry = 11 % CAPACITY as usize; // request number 11, the last one
            assert_eq!(
                requests[4 + entry * 8 + 7].load(Ordering::Relaxed),
                23,
                "id of the last"
            );
        }

        /// A server that dies while it answers (here: panics inside `answer`, before the slot
        /// is given back) leaves the request queued; its successor answers it. A full
        /// response queue leaves the request queued too, and `answer` is not called.
        #[test]
        fn a_request_is_answered_at_least_once_across_a_server_s_death() {
            let (requests, responses) = memory();
            let queues = Queues::new(&requests, &responses, CAPACITY).unwrap();
            let mut client = Client::new(queues).unwrap();
            client.enqueue_request(&request(1)).unwrap();
            let ok = |request: &Request| Response {
                status: blk::ResponseStatus::Ok as u32,
                success_count: request.count,
                id: request.id,
                ..Response::default()
            };
            // The first incarnation reads the request, then dies while it answers.
            let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut server = Server::new(queues).unwrap();
                let _ = server.answer_next(|got| panic!("the server dies serving {}", got.id));
            }));
            assert!(died.is_err());
            assert_eq!(
                requests[0].load(Ordering::Acquire),
                0,
                "head not yet given back"
            );
            let mut server = Server::new(queues).unwrap();
            let mut seen = 0;
            assert_eq!(
                server.answer_next(|got| {
                    seen = got.id;
                    ok(got)
                }),
                Ok(true)
            );
            assert_eq!(seen, 1);
            assert_eq!(client.dequeue_response().unwrap().map(|r| r.id), Some(1));
            assert_eq!(server.answer_next(ok), Ok(false), "nothing left");

            // Fill the response queue: the next request stays queued, unanswered.
            for id in 10..10 + CAPACITY {
                client.enqueue_request(&request(id)).unwrap();
                assert_eq!(server.answer_next(ok), Ok(true));
            }
            client.enqueue_request(&request(20)).unwrap();
            let mut called = false;
            assert_eq!(
                server.answer_next(|got| {
                    called = true;
                    ok(got)
                }),
                Err(QueueError::Full)
            );
            assert!(!called, "no answer without room for it");
            // A successor after the client drained one response answers request 20.
            assert_eq!(client.dequeue_response().unwrap().map(|r| r.id), Some(10));
            let mut successor = Server::new(queues).unwrap();
            let mut answered = 0;
            assert_eq!(
                successor.answer_next(|got| {
                    answered = got.id;
                    ok(got)
                }),
                Ok(true)
            );
            assert_eq!(answered, 20);

            // Death between the response and the slot's return: the successor gives the slot
            // back and does not answer that request again.
            while client.dequeue_response().unwrap().is_some() {}
            client.enqueue_request(&request(30)).unwrap();
            client.enqueue_request(&request(31)).unwrap();
            successor.enqueue_response(&ok(&request(30))).unwrap();
            let mut third = Server::new(queues).unwrap();
            let mut next = 0;
            assert_eq!(
                third.answer_next(|got| {
                    next = got.id;
                    ok(got)
                }),
                Ok(true)
            );
            assert_eq!(next, 31, "request 30 was answered once");
            let ids: std::vec::Vec<u32> =
                core::iter::from_fn(|| client.dequeue_response().unwrap())
                    .map(|response| response.id)
                    .collect();
            assert_eq!(ids, [30, 31]);
        }

        #[test]
        fn a_plugged_queue_yields_nothing_until_unplugged() {
            let (requests, responses) = memory();
            let queues = Queues::new(&requests, &responses, CAPACITY).unwrap();
            let (mut client, mut server) =
                (Client::new(queues).unwrap(), Server::new(queues).unwrap());
            client.enqueue_request(&request(1)).unwrap();
            client.plug(true);
            assert_eq!(
                requests[2].load(Ordering::Relaxed) & 0xff,
                1,
                "the bool at byte 8"
            );
            assert_eq!(server.dequeue_request(), Ok(None));
            client.plug(false);
            assert_eq!(server.dequeue_request().unwrap().map(|r| r.id), Some(1));
        }

        /// A hostile client scribbles over every word: the server reports the impossible
        /// counter and reads nothing, then serves again once the counters are sane.
        #[test]
        fn a_hostile_peer_s_counters_are_refused_not_followed() {
            let (requests, responses) = memory();
            let queues = Queues::new(&requests, &responses, CAPACITY).unwrap();
            let mut server = Server::new(queues).unwrap();
            for word in &requests {
                word.store(0xdead_beef, Ordering::Relaxed);
            }
            requests[2].store(0, Ordering::Relaxed); // unplugged
            assert_eq!(
                server.dequeue_request(),
                Err(QueueError::PeerIndexCorrupt {
                    peer: 0xdead_beef,
                    own: 0
                })
            );
            // The server's own head was never taken from the scribbled memory.
            requests[1].store(1, Ordering::Relaxed);
            let scribbled = server.dequeue_request().unwrap().unwrap();
            assert_eq!(
                blk::RequestCode::from_raw(scribbled.code),
                None,
                "garbage code refused"
            );
            assert_eq!(scribbled.id, 0xdead_beef);
            // A client that moves the response head past the server's tail.
            responses[0].store(7, Ordering::Relaxed);
            assert!(matches!(
                server.enqueue_response(&Response::default()),
                Err(QueueError::PeerIndexCorrupt { peer: 7, own: 0 })
            ));
            // Wrapping counters near u32::MAX are fine.
            let (requests, responses) = memory();
            requests[0].store(u32::MAX - 1, Ordering::Relaxed);
            requests[1].store(u32::MAX - 1, Ordering::Relaxed);
            let queues = Queues::new(&requests, &responses, CAPACITY).unwrap();
            let (mut client, mut server) =
                (Client::new(queues).unwrap(), Server::new(queues).unwrap());
            for id in 0..CAPACITY {
                client.enqueue_request(&request(id)).unwrap();
            }
            for id in 0..CAPACITY {
                assert_eq!(server.dequeue_request().unwrap().map(|r| r.id), Some(id));
            }
        }

        /// Entries as a C peer writes and reads them: the structures' bytes, in order, at
        /// sDDF's offsets (the header, then `index % capacity` entries).
        #[test]
        fn entries_are_the_c_structures_bytes() {
            use zerocopy::{FromBytes, FromZeros, IntoBytes};
            let store = |words: &[AtomicU32], at: usize, bytes: &[u8]| {
                for (index, chunk) in bytes.chunks(4).enumerate() {
                    let mut word = [0; 4];
                    word[..chunk.len()].copy_from_slice(chunk);
                    words[at / 4 + index].store(u32::from_le_bytes(word), Ordering::Relaxed);
                }
            };
            let load = |words: &[AtomicU32], at: usize, length: usize| {
                let mut bytes = [0u8; 32];
                for index in 0..length / 4 {
                    let word = words[at / 4 + index].load(Ordering::Relaxed).to_le_bytes();
                    bytes[index * 4..index * 4 + 4].copy_from_slice(&word);
                }
                bytes
            };
            let (requests, responses) = memory();
            let queues = Queues::new(&requests, &responses, CAPACITY).unwrap();
            let mut server = Server::new(queues).unwrap();
            // A C client's request 0 in slot 0 (byte 16), then its tail.
            let sent = request(5);
            store(&requests, blk::REQUEST_QUEUE_HEADER, sent.as_bytes());
            requests[1].store(1, Ordering::Release);
            assert_eq!(server.dequeue_request(), Ok(Some(sent)));
            assert_eq!(requests[0].load(Ordering::Relaxed), 1, "head at byte 0");
            // The server's response, as a C client reads slot 0 (byte 8).
            let answer = Response {
                status: blk::ResponseStatus::Io as u32,
                success_count: 0x1234,
                id: 0xabcd_0123,
                ..Response::default()
            };
            server.enqueue_response(&answer).unwrap();
            let bytes = load(&responses, blk::RESPONSE_QUEUE_HEADER, 12);
            assert_eq!(Response::read_from_bytes(&bytes[..12]).ok(), Some(answer));
            assert_eq!(responses[1].load(Ordering::Relaxed), 1, "tail at byte 4");
            // The storage information's `ready` byte.
            let words: [AtomicU32; 22] = core::array::from_fn(|_| AtomicU32::new(0));
            let mut info = blk::StorageInfo::new_zeroed();
            info.ready = 1;
            store(&words, 0, info.as_bytes());
            assert!(blk::storage_ready(&words));
            info.ready = 0;
            info.read_only = 1;
            store(&words, 0, info.as_bytes());
            assert!(!blk::storage_ready(&words), "read_only is the byte before");
            assert!(!blk::storage_ready(&words[..16]), "too short");
        }

        /// Counters a peer made impossible before this side started are refused, not taken up.
        #[test]
        fn impossible_counters_at_start_are_refused() {
            let (requests, responses) = memory();
            requests[1].store(CAPACITY + 1, Ordering::Relaxed);
            let queues = Queues::new(&requests, &responses, CAPACITY).unwrap();
            assert!(matches!(
                Server::new(queues),
                Err(QueueError::PeerIndexCorrupt { .. })
            ));
            assert!(Client::new(queues).is_err());
            requests[1].store(CAPACITY, Ordering::Relaxed);
            assert!(Server::new(queues).is_ok(), "a full queue is possible");
        }

        #[test]
        fn queues_too_small_for_their_capacity_are_refused() {
            let (requests, responses) = memory();
            assert!(Queues::new(&requests, &responses, CAPACITY + 1).is_err());
            assert!(Queues::new(&requests, &responses, 0).is_err());
            assert!(
                Queues::new(&requests[..12], &responses, 1).is_ok(),
                "16 + 32 bytes"
            );
            assert!(Queues::new(&requests[..11], &responses, 1).is_err());
        }
    }
}
