//! The block service: sectors of a disk, the sDDF way — requests and responses on two rings
//! (client → driver, driver → client) with a notification on the channel between them, the data
//! in a region both map (`block_data`), a request naming an offset in it.
//!
//! | request | fields | response |
//! |---|---|---|
//! | [`Operation::Read`] | id, sector, count (sectors of 512 bytes), data offset | id, [`Status`] |
//! | [`Operation::Write`] | same | same |
//! | [`Operation::Flush`] | id | same |
//!
//! The driver announces its disk when it is bound (an [`ANNOUNCE`] response: the client starts
//! then, or resubmits what it has outstanding, since a driver that restarted lost what it had
//! taken) and notifies the client after it queues responses; the client notifies the driver when it queues requests and the driver asked
//! for a signal. Both halves find the rings and the data region in their system description
//! through [`Regions::from_system`] (setvar symbols `requests`, `responses`, `block_data`): the
//! driver's is [`Server`], the client's [`Client`].

use core::sync::atomic::{AtomicU32, Ordering};

use log::warn;
use warden_microkit::Channel;
use warden_protocol::ring::SLOT_BYTES;
use warden_protocol::{Consumer, Producer, RingError, RingMemory};
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bytes of a sector.
pub const SECTOR_BYTES: usize = 512;

/// A block operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Read sectors into the data region.
    Read = 1,
    /// Write sectors from the data region.
    Write = 2,
    /// Make earlier writes durable.
    Flush = 3,
}

/// How a block request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Done.
    Ok = 0,
    /// No disk is bound.
    NotReady = 1,
    /// Outside the disk or the data region, or malformed.
    Invalid = 2,
    /// The device reported an error.
    DeviceError = 3,
}

/// A block request on the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Chosen by the client, quoted in the response.
    pub id: u32,
    /// What to do.
    pub operation: Operation,
    /// First sector.
    pub sector: u64,
    /// Sectors.
    pub count: u32,
    /// Offset of the data in the shared data region.
    pub offset: u32,
}

/// The id of the response a driver queues when its disk is bound (the announcement): no
/// request has it (clients number theirs below it). A client resubmits then whatever it has
/// outstanding — a driver that restarted lost the requests it had taken and not answered.
pub const ANNOUNCE: u32 = u32::MAX;

/// A block response on the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// The request's id.
    pub id: u32,
    /// How it ended.
    pub status: Status,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct RequestWire {
    id: U32,
    operation: U32,
    sector: U64,
    count: U32,
    offset: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct ResponseWire {
    id: U32,
    status: U32,
}

/// Bytes of an encoded request.
pub const REQUEST_BYTES: usize = core::mem::size_of::<RequestWire>();
/// Bytes of an encoded response.
pub const RESPONSE_BYTES: usize = core::mem::size_of::<ResponseWire>();

impl Request {
    /// The request's bytes.
    #[must_use]
    pub fn encode(&self) -> [u8; REQUEST_BYTES] {
        let wire = RequestWire {
            id: U32::new(self.id),
            operation: U32::new(self.operation as u32),
            sector: U64::new(self.sector),
            count: U32::new(self.count),
            offset: U32::new(self.offset),
        };
        let mut out = [0u8; REQUEST_BYTES];
        out.copy_from_slice(wire.as_bytes());
        out
    }

    /// Decodes a request; `None` unless it is exactly one well-formed request.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let wire = RequestWire::read_from_bytes(bytes).ok()?;
        let operation = match wire.operation.get() {
            1 => Operation::Read,
            2 => Operation::Write,
            3 => Operation::Flush,
            _ => return None,
        };
        Some(Self {
            id: wire.id.get(),
            operation,
            sector: wire.sector.get(),
            count: wire.count.get(),
            offset: wire.offset.get(),
        })
    }

    /// The data bytes it covers, if they lie within a data region of `region_bytes`.
    #[must_use]
    pub fn data_range(&self, region_bytes: usize) -> Option<core::ops::Range<usize>> {
        let start = usize::try_from(self.offset).ok()?;
        let length = usize::try_from(self.count)
            .ok()?
            .checked_mul(SECTOR_BYTES)?;
        let end = start.checked_add(length)?;
        (end <= region_bytes).then_some(start..end)
    }
}

impl Response {
    /// Is it the driver's announcement that its disk is bound ([`ANNOUNCE`])?
    #[must_use]
    pub fn is_announcement(&self) -> bool {
        self.id == ANNOUNCE
    }

    /// The response's bytes.
    #[must_use]
    pub fn encode(&self) -> [u8; RESPONSE_BYTES] {
        let wire = ResponseWire {
            id: U32::new(self.id),
            status: U32::new(self.status as u32),
        };
        let mut out = [0u8; RESPONSE_BYTES];
        out.copy_from_slice(wire.as_bytes());
        out
    }

    /// Decodes a response; `None` unless it is exactly one well-formed response.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let wire = ResponseWire::read_from_bytes(bytes).ok()?;
        let status = match wire.status.get() {
            0 => Status::Ok,
            1 => Status::NotReady,
            2 => Status::Invalid,
            3 => Status::DeviceError,
            _ => return None,
        };
        Some(Self {
            id: wire.id.get(),
            status,
        })
    }
}

/// The shared memory of one block client: the two rings and the data region.
#[derive(Debug)]
pub struct Regions {
    requests: RingMemory<'static>,
    responses: RingMemory<'static>,
    data: &'static [AtomicU32],
}

impl Regions {
    /// The regions over these maps; `None` (with a word why) unless all three are there and
    /// the rings fit.
    #[must_use]
    pub fn new(
        requests: Option<&'static [AtomicU32]>,
        responses: Option<&'static [AtomicU32]>,
        data: Option<&'static [AtomicU32]>,
    ) -> Option<Self> {
        let ring = |words: Option<&'static [AtomicU32]>| RingMemory::over(words?).ok();
        match (ring(requests), ring(responses), data) {
            (Some(requests), Some(responses), Some(data)) => Some(Self {
                requests,
                responses,
                data,
            }),
            _ => {
                warn!(
                    "block: the request and response rings and the data region are not all mapped"
                );
                None
            }
        }
    }

    /// The regions this PD's system description maps (`requests`, `responses`,
    /// `block_data`), on either side.
    #[must_use]
    pub fn from_system() -> Option<Self> {
        Self::new(
            warden_microkit::memory_region_words!(requests, requests_size),
            warden_microkit::memory_region_words!(responses, responses_size),
            warden_microkit::memory_region_words!(block_data, block_data_size),
        )
    }
}

/// The data region, as bytes (it is shared: every access is an atomic word access).
#[derive(Clone, Copy, Debug)]
pub struct Data(&'static [AtomicU32]);

impl Data {
    /// The data region over `words` (a map of this PD's).
    #[must_use]
    pub fn over(words: &'static [AtomicU32]) -> Self {
        Self(words)
    }

    /// Its size in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len() * 4
    }

    /// Is it empty?
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The byte at `offset` (0 beyond the end).
    #[must_use]
    pub fn byte(&self, offset: usize) -> u8 {
        let word = self
            .0
            .get(offset / 4)
            .map_or(0, |word| word.load(Ordering::Relaxed));
        word.to_le_bytes().get(offset % 4).copied().unwrap_or(0)
    }

    /// Sets the byte at `offset` (nothing beyond the end). Not atomic as a whole: only the
    /// region's one writer may use it (a queue's producer).
    pub fn set_byte(&self, offset: usize, byte: u8) {
        if let Some(word) = self.0.get(offset / 4) {
            let mut value = word.load(Ordering::Relaxed).to_le_bytes();
            if let Some(slot) = value.get_mut(offset % 4) {
                *slot = byte;
            }
            word.store(u32::from_le_bytes(value), Ordering::Relaxed);
        }
    }

    /// Copies `bytes` in at `offset` (a multiple of 4; what lies beyond the end is dropped).
    pub fn write(&self, offset: usize, bytes: &[u8]) {
        for (word, chunk) in self.0.iter().skip(offset / 4).zip(bytes.chunks(4)) {
            let mut value = [0u8; 4];
            for (to, from) in value.iter_mut().zip(chunk) {
                *to = *from;
            }
            word.store(u32::from_le_bytes(value), Ordering::Relaxed);
        }
    }

    /// Copies out `out.len()` bytes from `offset` (a multiple of 4).
    pub fn read(&self, offset: usize, out: &mut [u8]) {
        for (word, chunk) in self.0.iter().skip(offset / 4).zip(out.chunks_mut(4)) {
            let value = word.load(Ordering::Relaxed).to_le_bytes();
            for (to, from) in chunk.iter_mut().zip(value) {
                *to = from;
            }
        }
    }
}

/// The client's half: it queues requests and takes responses.
#[derive(Debug)]
pub struct Client {
    channel: Channel,
    requests: Producer<'static>,
    responses: Consumer<'static>,
    data: Data,
}

impl Client {
    /// The client of the driver on `channel`, over `regions`.
    #[must_use]
    pub fn new(channel: Channel, regions: Regions) -> Self {
        let responses = Consumer::new(regions.responses);
        // Ask for a notification when the driver queues the first response.
        let _ = responses.arm_signal();
        Self {
            channel,
            requests: Producer::new(regions.requests),
            responses,
            data: Data(regions.data),
        }
    }

    /// The data region.
    #[must_use]
    pub fn data(&self) -> Data {
        self.data
    }

    /// Queues a request, notifying the driver if it asked.
    ///
    /// # Errors
    /// The ring's, when it is full (or corrupt).
    pub fn submit(&mut self, request: &Request) -> Result<(), RingError> {
        self.requests.try_push(&request.encode())?;
        if self.requests.signal_needed() {
            self.channel.notify();
        }
        Ok(())
    }

    /// The responses queued, each handed to `each`; malformed ones are dropped with a word, and
    /// a corrupt slot is skipped (its length is reported).
    pub fn responses(&mut self, mut each: impl FnMut(Response)) {
        let mut buffer = [0u8; SLOT_BYTES];
        loop {
            match self.responses.pop_or_arm(&mut buffer) {
                Ok(Some(length)) => {
                    match Response::decode(buffer.get(..length).unwrap_or_default()) {
                        Some(response) => each(response),
                        None => warn!("block: a malformed response from the driver; dropped"),
                    }
                }
                Ok(None) => return,
                Err(RingError::PeerSlotCorrupt { length }) => {
                    warn!("block: the driver wrote a slot of {length} bytes; skipped");
                }
                Err(error) => {
                    warn!("block: the response ring is corrupt ({error:?})");
                    return;
                }
            }
        }
    }
}

/// The driver's half: it takes requests and queues responses.
#[derive(Debug)]
pub struct Server {
    channel: Channel,
    requests: Consumer<'static>,
    responses: Producer<'static>,
    data: Data,
}

impl Server {
    /// The server of the client on `channel`, over `regions`.
    #[must_use]
    pub fn new(channel: Channel, regions: Regions) -> Self {
        let requests = Consumer::new(regions.requests);
        let _ = requests.arm_signal();
        Self {
            channel,
            requests,
            responses: Producer::new(regions.responses),
            data: Data(regions.data),
        }
    }

    /// The data region.
    #[must_use]
    pub fn data(&self) -> Data {
        self.data
    }

    /// Tells the client the disk is there (it starts then, or resubmits what it had
    /// outstanding): an [`ANNOUNCE`] response and a notification.
    pub fn announce(&mut self) {
        let announcement = Response {
            id: ANNOUNCE,
            status: Status::Ok,
        };
        if self.responses.try_push(&announcement.encode()).is_err() {
            warn!("block: the client's response ring is full; the announcement goes by notification only");
        }
        self.channel.notify();
    }

    /// Answers every request queued with what `serve` makes of it, then notifies the client if
    /// it asked. Requests queued before this incarnation of the driver started are served like
    /// any other: a restarted driver leaves none waiting. At most a ring's worth per call, so a
    /// client that refills the ring as fast as it is drained cannot keep the driver from its
    /// other work (the rest is served at the next notification, or the next call).
    pub fn serve(&mut self, mut serve: impl FnMut(&Request, Data) -> Status) {
        let mut buffer = [0u8; SLOT_BYTES];
        let mut answered = false;
        for _ in 0..self.requests.capacity() {
            let length = match self.requests.pop_or_arm(&mut buffer) {
                Ok(Some(length)) => length,
                Ok(None) => break,
                Err(RingError::PeerSlotCorrupt { length }) => {
                    warn!("block: the client wrote a slot of {length} bytes; skipped");
                    continue;
                }
                Err(error) => {
                    warn!("block: the request ring is corrupt ({error:?})");
                    break;
                }
            };
            let Some(request) = Request::decode(buffer.get(..length).unwrap_or_default()) else {
                warn!("block: a malformed request from the client; dropped");
                continue;
            };
            let response = Response {
                id: request.id,
                status: serve(&request, self.data),
            };
            // The client has at most as many requests in flight as the ring has slots.
            if self.responses.try_push(&response.encode()).is_err() {
                warn!(
                    "block: the client's response ring is full; response {} lost",
                    request.id
                );
            }
            answered = true;
        }
        if answered && self.responses.signal_needed() {
            self.channel.notify();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_junk_is_refused() {
        let request = Request {
            id: 7,
            operation: Operation::Write,
            sector: 1 << 40,
            count: 2,
            offset: 512,
        };
        assert_eq!(Request::decode(&request.encode()), Some(request));
        assert_eq!(request.data_range(4096), Some(512..1536));
        assert_eq!(request.data_range(1024), None, "past the region");
        let huge = Request {
            count: u32::MAX,
            offset: u32::MAX,
            ..request
        };
        assert_eq!(huge.data_range(1 << 20), None, "far past the region");
        let mut bad = request.encode();
        bad[4] = 9;
        assert_eq!(Request::decode(&bad), None, "unknown operation");
        assert_eq!(Request::decode(&request.encode()[..20]), None, "short");
        let response = Response {
            id: 7,
            status: Status::DeviceError,
        };
        assert_eq!(Response::decode(&response.encode()), Some(response));
        assert_eq!(Response::decode(&[0, 0, 0, 0, 4, 0, 0, 0]), None);
    }
}
