//! The block service in sDDF's protocol ([`warden_protocol::sddf`]): what an sDDF block client
//! that names its buffers by offset in a data region (a file system, a virtualiser's client,
//! Warden's demo client) shares with Warden's virtio-blk driver — the storage-information region, the request and response queues and the data
//! region — and both halves over them, [`Server`] (the driver's) and [`Client`].
//!
//! Both halves find their regions in their system description ([`Regions::from_system`]: setvar
//! symbols `blk_storage_info`, `blk_request_queue`, `blk_response_queue`, `blk_client_data`,
//! each with its `_size`). The queues' capacity is not in shared memory (a peer could lie about
//! it): each side derives it from the sizes of its own maps ([`capacity_for`]), the largest
//! power of two whose queues fit both regions, so an sDDF component composed with a Warden
//! driver is built with that capacity (64 for the 4 KiB queue regions Warden's systems give).
//!
//! Signalling, as sDDF's block clients and virtualisers do it: the client notifies after it
//! queues requests, the server after it queues responses and after it fills in the storage
//! information. The server answers each request once across its own death
//! ([`blk_queue::Server::answer_next`]): a driver that dies while it serves leaves the request
//! queued and its next incarnation answers it, so an sDDF client, which knows nothing of
//! Warden's supervision, loses nothing when the driver is restarted. (A block virtualiser as
//! sDDF builds it gives its driver I/O addresses in `io_or_offset`, not offsets: Warden's
//! driver does not serve that side yet.)

use core::sync::atomic::{AtomicU32, Ordering};

use log::warn;
use warden_microkit::Channel;
use warden_protocol::sddf::blk::{Request, Response, ResponseStatus, StorageInfo};
use warden_protocol::sddf::blk_queue::{self, QueueError, Queues};
use zerocopy::{FromBytes, IntoBytes};

use crate::block::Data;

/// sDDF's block structures and codes, for the halves' users.
pub use warden_protocol::sddf::blk;

/// The setvar symbols of sDDF's four regions, as [`Regions::from_system`] reads them on either
/// side: (vaddr symbol, size symbol). PD crates' `interface` modules name these.
pub const SYMBOLS: [(&str, &str); 4] = [
    ("blk_storage_info", "blk_storage_info_size"),
    ("blk_request_queue", "blk_request_queue_size"),
    ("blk_response_queue", "blk_response_queue_size"),
    ("blk_client_data", "blk_client_data_size"),
];

/// The largest queue capacity Warden derives (sDDF's examples use 128 to 1024).
pub const MAX_CAPACITY: u32 = 1 << 12;

/// The capacity of queues over a request region of `request_bytes` and a response region of
/// `response_bytes`: the largest power of two (at most [`MAX_CAPACITY`]) whose request queue and
/// response queue both fit; `None` if not even one entry does.
#[must_use]
pub fn capacity_for(request_bytes: usize, response_bytes: usize) -> Option<u32> {
    let fits = |capacity: u32| {
        blk::request_queue_bytes(capacity).is_some_and(|bytes| bytes <= request_bytes)
            && blk::response_queue_bytes(capacity).is_some_and(|bytes| bytes <= response_bytes)
    };
    (0..=MAX_CAPACITY.trailing_zeros())
        .rev()
        .map(|shift| 1 << shift)
        .find(|capacity| fits(*capacity))
}

/// The shared memory of one sDDF block client.
#[derive(Clone, Copy, Debug)]
pub struct Regions {
    info: &'static [AtomicU32],
    queues: Queues<'static>,
    data: &'static [AtomicU32],
}

impl Regions {
    /// The regions over these maps; `None` unless all four are there (silently: the PD speaks
    /// Warden's protocol only), or with a word why if the storage information does not fit or
    /// the queues hold no entry.
    #[must_use]
    pub fn new(
        info: Option<&'static [AtomicU32]>,
        requests: Option<&'static [AtomicU32]>,
        responses: Option<&'static [AtomicU32]>,
        data: Option<&'static [AtomicU32]>,
    ) -> Option<Self> {
        let (Some(info), Some(requests), Some(responses), Some(data)) =
            (info, requests, responses, data)
        else {
            return None;
        };
        if info.len() * 4 < core::mem::size_of::<StorageInfo>() {
            warn!(
                "sddf-blk: the storage-information region holds {} bytes, fewer than the {} it needs",
                info.len() * 4,
                core::mem::size_of::<StorageInfo>()
            );
            return None;
        }
        let queues = capacity_for(requests.len() * 4, responses.len() * 4)
            .and_then(|capacity| Queues::new(requests, responses, capacity).ok());
        let Some(queues) = queues else {
            warn!("sddf-blk: the queue regions hold no entry");
            return None;
        };
        Some(Self { info, queues, data })
    }

    /// The regions this PD's system description maps, on either side; `None` if it maps none
    /// of them (the PD serves, or speaks, Warden's own block protocol only).
    #[must_use]
    pub fn from_system() -> Option<Self> {
        Self::new(
            warden_microkit::memory_region_words!(blk_storage_info, blk_storage_info_size),
            warden_microkit::memory_region_words!(blk_request_queue, blk_request_queue_size),
            warden_microkit::memory_region_words!(blk_response_queue, blk_response_queue_size),
            warden_microkit::memory_region_words!(blk_client_data, blk_client_data_size),
        )
    }
}

/// The word of the storage information that holds `ready`.
const READY_WORD: usize = blk::STORAGE_INFO_READY / 4;
const READY_BIT: u32 = 1 << (8 * (blk::STORAGE_INFO_READY % 4));

/// Clears `ready` in the storage information `info`.
fn withdraw(info: &[AtomicU32]) {
    if let Some(word) = info.get(READY_WORD) {
        word.fetch_and(!READY_BIT, Ordering::Release);
    }
}

/// The driver's half.
#[derive(Debug)]
pub struct Server {
    channel: Channel,
    info: &'static [AtomicU32],
    queues: blk_queue::Server<'static>,
    data: Data,
    capacity: u32,
}

impl Server {
    /// The server of the client on `channel`, over `regions`, taking up the queues' counters
    /// from the memory (a restarted driver goes on where its predecessor stopped); the storage
    /// information is withdrawn until [`Server::publish`].
    ///
    /// # Errors
    /// The queues' counters are impossible (the client wrote them).
    pub fn new(channel: Channel, regions: Regions) -> Result<Self, QueueError> {
        // Withdrawn first, so that a client whose counters are refused sees no disk.
        withdraw(regions.info);
        Ok(Self {
            channel,
            info: regions.info,
            queues: blk_queue::Server::new(regions.queues)?,
            data: Data::over(regions.data),
            capacity: regions.queues.capacity(),
        })
    }

    /// The queues' capacity (the most requests a client has outstanding).
    #[must_use]
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The data region.
    #[must_use]
    pub fn data(&self) -> Data {
        self.data
    }

    /// Fills in the storage information, `ready` cleared while it is written and set last
    /// (release), and notifies the client.
    pub fn publish(&self, info: &StorageInfo) {
        self.withdraw();
        let mut bytes = [0u8; core::mem::size_of::<StorageInfo>()];
        bytes.copy_from_slice(info.as_bytes());
        for (index, (word, chunk)) in self.info.iter().zip(bytes.chunks(4)).enumerate() {
            let mut value = [0u8; 4];
            value.copy_from_slice(chunk);
            let mut value = u32::from_le_bytes(value);
            if index == READY_WORD {
                value &= !READY_BIT;
            }
            word.store(value, Ordering::Relaxed);
        }
        if let Some(word) = self.info.get(READY_WORD) {
            word.fetch_or(READY_BIT, Ordering::Release);
        }
        self.channel.notify();
    }

    /// Clears `ready`: no device is there (before the first disk is bound, after it is removed).
    pub fn withdraw(&self) {
        withdraw(self.info);
    }

    /// Answers the requests queued, each with what `serve` makes of it (at least once), at most
    /// a queue's worth per call so that a client refilling the queue cannot keep the driver
    /// from its other work; then notifies the client if any response was queued. A corrupt
    /// queue is reported and left alone (nothing is read or written past its counters).
    pub fn serve(&mut self, mut serve: impl FnMut(&Request, Data) -> ResponseStatus) {
        let data = self.data;
        let mut answered = false;
        for _ in 0..self.capacity {
            let outcome = self.queues.answer_next(|request| {
                let status = serve(request, data);
                let transfers = matches!(
                    blk::RequestCode::from_raw(request.code),
                    Some(blk::RequestCode::Read | blk::RequestCode::Write)
                );
                let count = if status == ResponseStatus::Ok && transfers {
                    request.count
                } else {
                    0
                };
                Response {
                    status: status as u32,
                    success_count: count,
                    id: request.id,
                    ..Response::default()
                }
            });
            match outcome {
                Ok(true) => answered = true,
                Ok(false) => break,
                Err(QueueError::Full) => {
                    warn!("sddf-blk: the client's response queue is full; the rest waits");
                    break;
                }
                Err(error) => {
                    warn!("sddf-blk: the client's queues are corrupt ({error:?})");
                    break;
                }
            }
        }
        if answered {
            self.channel.notify();
        }
    }
}

/// The client's half.
#[derive(Debug)]
pub struct Client {
    channel: Channel,
    info: &'static [AtomicU32],
    queues: blk_queue::Client<'static>,
    data: Data,
    capacity: u32,
}

impl Client {
    /// The client of the driver on `channel`, over `regions`.
    ///
    /// # Errors
    /// The queues' counters are impossible (the driver wrote them).
    pub fn new(channel: Channel, regions: Regions) -> Result<Self, QueueError> {
        Ok(Self {
            channel,
            info: regions.info,
            queues: blk_queue::Client::new(regions.queues)?,
            data: Data::over(regions.data),
            capacity: regions.queues.capacity(),
        })
    }

    /// The data region.
    #[must_use]
    pub fn data(&self) -> Data {
        self.data
    }

    /// The storage information, once the driver has filled it in: `ready` (acquire), the
    /// words, then `ready` again, so that information the driver withdrew while it was read
    /// is not taken (a withdrawal and a whole new publication between the two loads of
    /// `ready` would go unseen; the driver notifies after each publication, and a client
    /// that must know reads again then).
    #[must_use]
    pub fn storage(&self) -> Option<StorageInfo> {
        if !blk::storage_ready(self.info) {
            return None;
        }
        let mut bytes = [0u8; core::mem::size_of::<StorageInfo>()];
        for (word, chunk) in self.info.iter().zip(bytes.chunks_mut(4)) {
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        core::sync::atomic::fence(Ordering::Acquire);
        if !blk::storage_ready(self.info) {
            return None;
        }
        StorageInfo::read_from_bytes(&bytes).ok()
    }

    /// Queues `request` and notifies the driver.
    ///
    /// # Errors
    /// The queue's, when it is full (or the driver's counter is impossible).
    pub fn submit(&mut self, request: &Request) -> Result<(), QueueError> {
        self.queues.enqueue_request(request)?;
        self.channel.notify();
        Ok(())
    }

    /// The responses queued, at most a queue's worth (a driver that keeps producing cannot
    /// keep the client here), each handed to `each`; a corrupt queue is reported and left.
    pub fn responses(&mut self, mut each: impl FnMut(Response)) {
        for _ in 0..self.capacity {
            match self.queues.dequeue_response() {
                Ok(Some(response)) => each(response),
                Ok(None) => return,
                Err(error) => {
                    warn!("sddf-blk: the driver's response queue is corrupt ({error:?})");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    #[test]
    fn the_capacity_is_the_largest_power_of_two_that_fits_both_queues() {
        // 4 KiB each: (4096 - 16) / 32 = 127 requests, (4096 - 8) / 12 = 340 responses.
        assert_eq!(capacity_for(0x1000, 0x1000), Some(64));
        assert_eq!(capacity_for(16 + 32 * 128, 0x1000), Some(128));
        assert_eq!(capacity_for(16 + 32 * 128 - 1, 0x1000), Some(64));
        assert_eq!(capacity_for(0x1000, 8 + 12 * 16), Some(16));
        assert_eq!(capacity_for(16 + 32, 8 + 12), Some(1));
        assert_eq!(capacity_for(16 + 31, 0x1000), None, "not one request");
        assert_eq!(capacity_for(0, 0), None);
        assert_eq!(capacity_for(usize::MAX, usize::MAX), Some(MAX_CAPACITY));
    }

    fn leak(words: usize) -> &'static [AtomicU32] {
        Box::leak((0..words).map(|_| AtomicU32::new(0)).collect::<Box<[_]>>())
    }

    fn regions() -> Regions {
        regions_over(leak(1024))
    }

    fn regions_over(requests: &'static [AtomicU32]) -> Regions {
        Regions::new(
            Some(leak(1024)),
            Some(requests),
            Some(leak(1024)),
            Some(leak(2048)),
        )
        .unwrap()
    }

    fn info(capacity: u64) -> StorageInfo {
        let mut serial_number = [0u8; 64];
        serial_number[..5].copy_from_slice(b"disk0");
        StorageInfo {
            serial_number,
            read_only: 0,
            ready: 1,
            sector_size: 512,
            block_size: 1,
            queue_depth: 64,
            cylinders: 0,
            heads: 0,
            blocks: 0,
            _padding: [0; 2],
            capacity,
        }
    }

    #[test]
    fn storage_information_is_seen_only_once_published_and_not_after_withdrawal() {
        let regions = regions();
        let server = Server::new(Channel::new(1), regions).unwrap();
        let client = Client::new(Channel::new(1), regions).unwrap();
        assert_eq!(server.capacity(), 64);
        assert_eq!(client.storage(), None, "not ready before publish");
        server.publish(&info(256));
        assert_eq!(client.storage(), Some(info(256)));
        server.withdraw();
        assert_eq!(client.storage(), None);
        // A restarted driver withdraws what its predecessor published until it has a disk.
        server.publish(&info(256));
        let successor = Server::new(Channel::new(1), regions).unwrap();
        assert_eq!(client.storage(), None);
        // One whose counters are refused (a client scribbled them) leaves no disk shown.
        successor.publish(&info(256));
        let scribbled = leak(1024);
        scribbled[1].store(0x8000_0000, Ordering::Release);
        let refused = Regions::new(
            Some(regions.info),
            Some(scribbled),
            Some(leak(1024)),
            Some(leak(16)),
        );
        assert!(Server::new(Channel::new(1), refused.unwrap()).is_err());
        assert_eq!(client.storage(), None, "no stale ready");
    }

    #[test]
    fn requests_are_served_in_order_and_answered_with_their_counts() {
        let regions = regions();
        let mut server = Server::new(Channel::new(1), regions).unwrap();
        let mut client = Client::new(Channel::new(1), regions).unwrap();
        for id in 0..3u16 {
            client
                .submit(&Request {
                    code: blk::RequestCode::Read as u32,
                    io_or_offset: u64::from(id) * 4096,
                    block_number: u64::from(id),
                    count: id + 1,
                    id: u32::from(id) + 100,
                    ..Request::default()
                })
                .unwrap();
        }
        let mut served = Vec::new();
        server.serve(|request, _| {
            served.push(request.id);
            if request.id == 101 {
                ResponseStatus::Io
            } else {
                ResponseStatus::Ok
            }
        });
        assert_eq!(served, [100, 101, 102]);
        let mut answers = Vec::new();
        client.responses(|response| {
            answers.push((response.id, response.status, response.success_count));
        });
        assert_eq!(
            answers,
            [
                (100, ResponseStatus::Ok as u32, 1),
                (101, ResponseStatus::Io as u32, 0),
                (102, ResponseStatus::Ok as u32, 3)
            ]
        );
    }

    /// A hostile client that floods its queue gets a queue's worth served per call; one that
    /// scribbles impossible counters gets nothing served and nothing written.
    #[test]
    fn a_flooding_or_scribbling_client_is_bounded() {
        let requests = leak(1024);
        let regions = regions_over(requests);
        let mut server = Server::new(Channel::new(1), regions).unwrap();
        let mut client = Client::new(Channel::new(1), regions).unwrap();
        for id in 0..64 {
            client
                .submit(&Request {
                    id,
                    ..Request::default()
                })
                .unwrap();
        }
        let mut calls = 0;
        server.serve(|_, _| {
            calls += 1;
            ResponseStatus::Ok
        });
        assert_eq!(calls, 64);
        // The client never drains its responses: the next requests wait, unanswered.
        for id in 0..8 {
            client
                .submit(&Request {
                    id,
                    ..Request::default()
                })
                .unwrap();
        }
        server.serve(|_, _| {
            calls += 1;
            ResponseStatus::Ok
        });
        assert_eq!(calls, 64, "no room for a response: nothing served");
        // The client drains; then it scribbles: the request queue's tail far past its head.
        client.responses(|_| {});
        requests[1].store(0x8000_0000, Ordering::Release);
        server.serve(|_, _| {
            calls += 1;
            ResponseStatus::Ok
        });
        assert_eq!(calls, 64, "an impossible tail: nothing served");
        assert!(
            Server::new(Channel::new(1), regions).is_err(),
            "impossible counters refused at start"
        );
    }
}
