//! A client PD of Warden's drivers, the proof that they serve: when the disk is ready it reads
//! block 0, writes a pattern to block 1, reads it back and checks it, and flushes (blocks of
//! 4096 bytes, sDDF's unit); when the entropy source is bound it asks for 16 random bytes; when
//! the clock is bound it reads the time. Each step is logged. When the driver gives it another
//! disk in sDDF's protocol (the one it checked removed and a hot-plugged one serving now,
//! whose storage information differs: its capacity, serial or queue depth), it checks that one
//! too; a disk described exactly as the one checked is taken for it, and in Warden's protocol,
//! whose announcement says only that a disk is there, the check runs once.
//!
//! The disk is spoken to in sDDF's block protocol (`warden_services::sddf_block`: the storage
//! information, the request and response queues, the data region) when the system description
//! maps its regions, as an sDDF client composed with Warden's driver would; otherwise in
//! Warden's own (`warden_services::block`). The description chooses.
//!
//! Channels: 1 — the virtio-blk driver; 2 — the virtio-rng driver (`warden_services::entropy`);
//! 3 — the PL031 driver (`warden_services::clock`). The drivers have higher priorities, as calls
//! require. What the drivers answer is checked like any untrusted input.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use log::{info, warn};
use warden_microkit::{ChannelSet, Handler};
use warden_services::block::{self, Data, Operation, Request, Status};
use warden_services::sddf_block::{self, blk as sddf};
use warden_services::{clock, entropy, ReplyError};

pub mod admin_hostile;
pub mod serial;
pub mod soak;

/// What this PD expects of the system description.
pub mod interface {
    use warden_interface::block_client::{
        BLK_CLIENT_DATA, BLK_REQUEST_QUEUE, BLK_RESPONSE_QUEUE, BLK_STORAGE_INFO, BLOCK_DATA,
        REQUESTS, RESPONSES,
    };
    pub use warden_interface::block_client::{BLOCK, CLOCK, ENTROPY, TIMER};

    /// Warden's block maps (the soak client's; this client's when sDDF's are not mapped):
    /// (vaddr symbol, size symbol).
    pub const REGIONS: [(&str, &str); 3] = [REQUESTS, RESPONSES, BLOCK_DATA];
    /// sDDF's block maps (`warden_services::sddf_block::SYMBOLS`).
    pub const SDDF_REGIONS: [(&str, &str); 4] = [
        BLK_STORAGE_INFO,
        BLK_REQUEST_QUEUE,
        BLK_RESPONSE_QUEUE,
        BLK_CLIENT_DATA,
    ];
}

/// Bytes of a block.
const BLOCK_BYTES: usize = sddf::TRANSFER_SIZE as usize;
/// The block the client writes (block 0 is only read: it may hold a partition table).
const PATTERN_BLOCK: u64 = 1;
/// Where in the data region each step's block goes.
const READ_OFFSET: u32 = 0;
const PATTERN_OFFSET: u32 = BLOCK_BYTES as u32;
const BACK_OFFSET: u32 = 2 * BLOCK_BYTES as u32;
/// The data region the check needs.
const DATA_BYTES: usize = 3 * BLOCK_BYTES;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Waiting,
    ReadBlock0,
    WritePattern,
    ReadBack,
    Flush,
    Done,
}

/// The disk, in the protocol the description chose.
enum Disk {
    Sddf(sddf_block::Client),
    Warden(block::Client),
}

impl Disk {
    fn data(&self) -> Data {
        match self {
            Self::Sddf(disk) => disk.data(),
            Self::Warden(disk) => disk.data(),
        }
    }

    fn protocol(&self) -> &'static str {
        match self {
            Self::Sddf(_) => "sDDF's block protocol",
            Self::Warden(_) => "Warden's block protocol",
        }
    }

    /// Whether the disk is there, and what is known of it. Warden's driver says so by
    /// notifying (its announcement); sDDF's by filling in the storage information.
    fn ready(&self) -> Option<String> {
        match self {
            Self::Sddf(disk) => disk.storage().map(|info| {
                let serial: String = info
                    .serial_number
                    .iter()
                    .take_while(|byte| **byte != 0)
                    .map(|byte| char::from(*byte))
                    .filter(char::is_ascii_graphic)
                    .collect();
                let mut text = String::new();
                let _ = write!(
                    text,
                    "{} blocks of {BLOCK_BYTES} bytes, sectors of {}, serial '{serial}', {} requests at once{}",
                    info.capacity,
                    info.sector_size,
                    info.queue_depth,
                    if info.read_only != 0 { ", read-only" } else { "" }
                );
                text
            }),
            Self::Warden(_) => Some(String::from("announced")),
        }
    }

    /// Queues `operation` on `count` blocks from `block`, the data at `offset`, as request `id`.
    fn submit(&mut self, id: u32, operation: Operation, block: u64, offset: u32) -> bool {
        let count = u16::from(operation != Operation::Flush);
        let outcome = match self {
            Self::Sddf(disk) => disk
                .submit(&sddf::Request {
                    code: match operation {
                        Operation::Read => sddf::RequestCode::Read,
                        Operation::Write => sddf::RequestCode::Write,
                        Operation::Flush => sddf::RequestCode::Flush,
                    } as u32,
                    io_or_offset: u64::from(offset),
                    block_number: block,
                    count,
                    id,
                    ..sddf::Request::default()
                })
                .map_err(|error| alloc::format!("{error:?}")),
            Self::Warden(disk) => disk
                .submit(&Request {
                    id,
                    operation,
                    sector: block * (BLOCK_BYTES / block::SECTOR_BYTES) as u64,
                    count: u32::from(count) * (BLOCK_BYTES / block::SECTOR_BYTES) as u32,
                    offset,
                })
                .map_err(|error| alloc::format!("{error:?}")),
        };
        match outcome {
            Ok(()) => true,
            Err(error) => {
                warn!("client: the request queue refused a request ({error})");
                false
            }
        }
    }

    /// The responses queued: (id, how it ended, if not well).
    fn responses(&mut self) -> Vec<(u32, Option<String>)> {
        let mut responses = Vec::new();
        match self {
            Self::Sddf(disk) => disk.responses(|response| {
                let failed = match sddf::ResponseStatus::from_raw(response.status) {
                    Some(sddf::ResponseStatus::Ok) => None,
                    Some(status) => Some(alloc::format!("{status:?}")),
                    None => Some(alloc::format!("status {} (not sDDF's)", response.status)),
                };
                responses.push((response.id, failed));
            }),
            // The announcement only says the disk is there.
            Self::Warden(disk) => disk.responses(|response| {
                if !response.is_announcement() {
                    let failed = (response.status != Status::Ok)
                        .then(|| alloc::format!("{:?}", response.status));
                    responses.push((response.id, failed));
                }
            }),
        }
        responses
    }
}

/// The client.
pub struct Client {
    disk: Option<Disk>,
    step: Step,
    /// What the disk checked last was ([`Disk::ready`]'s description).
    checked: Option<String>,
    entropy_done: bool,
    clock_done: bool,
}

fn pattern_byte(index: usize) -> u8 {
    (index as u8).wrapping_mul(7) ^ 0xa5
}

fn hex(bytes: impl Iterator<Item = u8>) -> String {
    let mut text = String::new();
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

impl Client {
    fn data_byte(&self, offset: usize) -> u8 {
        self.disk
            .as_ref()
            .map_or(0, |disk| disk.data().byte(offset))
    }

    fn request(&mut self, step: Step, operation: Operation, block: u64, offset: u32) {
        if let Some(disk) = self.disk.as_mut() {
            if disk.submit(step as u32, operation, block, offset) {
                self.step = step;
            }
        }
    }

    fn write_pattern(&mut self) {
        let pattern: Vec<u8> = (0..BLOCK_BYTES).map(pattern_byte).collect();
        if let Some(disk) = self.disk.as_ref() {
            disk.data().write(PATTERN_OFFSET as usize, &pattern);
        }
        self.request(
            Step::WritePattern,
            Operation::Write,
            PATTERN_BLOCK,
            PATTERN_OFFSET,
        );
    }

    fn advance(&mut self, id: u32, failed: Option<String>) {
        if id != self.step as u32 {
            // A driver restarted while it served answers again what it had not finished.
            warn!(
                "client: response to request {id} while at {:?}; ignored",
                self.step
            );
            return;
        }
        if let Some(failed) = failed {
            warn!("client: {:?} failed: {failed}", self.step);
            self.step = Step::Done;
            return;
        }
        match self.step {
            Step::ReadBlock0 => {
                info!(
                    "client: block 0 read: {}…",
                    hex((0..16).map(|index| self.data_byte(READ_OFFSET as usize + index)))
                );
                self.write_pattern();
            }
            Step::WritePattern => {
                info!("client: pattern written to block {PATTERN_BLOCK}");
                self.request(Step::ReadBack, Operation::Read, PATTERN_BLOCK, BACK_OFFSET);
            }
            Step::ReadBack => {
                let mismatch = (0..BLOCK_BYTES).find(|index| {
                    self.data_byte(BACK_OFFSET as usize + index) != pattern_byte(*index)
                });
                let protocol = self.disk.as_ref().map_or("", Disk::protocol);
                match mismatch {
                    None => info!(
                        "client: block {PATTERN_BLOCK} read back: all {BLOCK_BYTES} bytes match the pattern (verified, {protocol})"
                    ),
                    Some(index) => warn!(
                        "client: block {PATTERN_BLOCK} read back: byte {index} differs (0x{:02x}, wrote 0x{:02x}): VERIFY FAILED",
                        self.data_byte(BACK_OFFSET as usize + index),
                        pattern_byte(index)
                    ),
                }
                self.request(Step::Flush, Operation::Flush, 0, 0);
            }
            Step::Flush => {
                info!("client: flushed; disk check done");
                self.step = Step::Done;
            }
            Step::Waiting | Step::Done => {}
        }
    }

    /// Starts the check once the disk is there, and again when another disk is.
    fn start_if_ready(&mut self) {
        let known = self.disk.as_ref().and_then(Disk::ready);
        if self.step == Step::Done && known.is_some() && known != self.checked {
            info!("client: the driver serves another disk now; checking it");
            self.step = Step::Waiting;
        }
        if self.step != Step::Waiting {
            return;
        }
        if let Some(disk) = self.disk.as_ref() {
            if let Some(known) = known {
                self.checked = Some(known.clone());
                info!(
                    "client: the disk is ready ({}: {known}); reading block 0",
                    disk.protocol()
                );
                self.request(Step::ReadBlock0, Operation::Read, 0, READ_OFFSET);
            }
        }
    }

    fn drain_responses(&mut self) {
        let responses = self.disk.as_mut().map(Disk::responses).unwrap_or_default();
        for (id, failed) in responses {
            self.advance(id, failed);
        }
    }

    fn ask_entropy(&mut self) {
        match entropy::Client(interface::ENTROPY).random(16) {
            Ok(bytes) => {
                info!(
                    "client: {} random bytes from virtio-rng: {}",
                    bytes.len(),
                    hex(bytes.iter().copied())
                );
                self.entropy_done = true;
            }
            Err(ReplyError::NotReady) => {}
            Err(ReplyError::Refused) => warn!("client: no entropy source to call"),
            Err(ReplyError::Malformed) => warn!("client: malformed entropy reply"),
        }
    }

    fn ask_time(&mut self) {
        match clock::Client(interface::CLOCK).now() {
            Ok(seconds) => {
                info!(
                    "client: the PL031 says it is {} ({seconds} s since 1970)",
                    clock::civil_time(seconds)
                );
                self.clock_done = true;
            }
            Err(ReplyError::NotReady) => {}
            Err(ReplyError::Refused) => warn!("client: no clock to call"),
            Err(ReplyError::Malformed) => warn!("client: malformed time reply"),
        }
    }
}

impl Handler for Client {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if channels.contains(interface::BLOCK) {
            self.start_if_ready();
            self.drain_responses();
        }
        if channels.contains(interface::ENTROPY) && !self.entropy_done {
            self.ask_entropy();
        }
        if channels.contains(interface::CLOCK) && !self.clock_done {
            self.ask_time();
        }
        Ok(())
    }
}

/// The PD's `init`.
#[must_use]
pub fn init() -> Client {
    let disk = match sddf_block::Regions::from_system() {
        Some(regions) => match sddf_block::Client::new(interface::BLOCK, regions) {
            Ok(disk) => Some(Disk::Sddf(disk)),
            Err(error) => {
                warn!("client: the sDDF queues are corrupt ({error:?}); no disk check");
                None
            }
        },
        None => block::Regions::from_system()
            .map(|regions| Disk::Warden(block::Client::new(interface::BLOCK, regions))),
    }
    .filter(|disk| {
        let enough = disk.data().len() >= DATA_BYTES;
        if !enough {
            warn!(
                "client: the data region is smaller than {DATA_BYTES} bytes; the disk check cannot run"
            );
        }
        enough
    });
    info!(
        "client: waiting for the disk ({}), the entropy source and the clock",
        disk.as_ref().map_or("no disk mapped", Disk::protocol)
    );
    let mut client = Client {
        disk,
        step: Step::Waiting,
        checked: None,
        entropy_done: false,
        clock_done: false,
    };
    // An sDDF driver that filled in the storage information before this PD started (or
    // restarted) does not notify again.
    if matches!(client.disk, Some(Disk::Sddf(_))) {
        client.start_if_ready();
    }
    client
}
