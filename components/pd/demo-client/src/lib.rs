//! A client PD of Warden's drivers, the proof that they serve: when the disk is bound it reads
//! sector 0, writes a pattern to sector 1, reads it back and checks it, and flushes; when the
//! entropy source is bound it asks for 16 random bytes; when the clock is bound it reads the
//! time. Each step is logged.
//!
//! Channels: 1 — the virtio-blk driver (queue pair `requests`/`responses`, data region
//! `block_data`; see `warden_protocol::services`); 2 — the virtio-rng driver (calls); 3 — the
//! PL031 driver (calls). The drivers have higher priorities, as calls require. What the drivers
//! answer is checked like any untrusted input.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, Ordering};
use log::{info, warn};
use warden_microkit::{get_mr, set_mr, ChannelSet, Handler, MessageInfo};
use warden_protocol::ring::SLOT_BYTES;
use warden_protocol::services::{
    entropy_reply, time_reply, BlockOperation, BlockRequest, BlockResponse, BlockStatus,
    ReplyError, ENTROPY, TIME,
};
use warden_protocol::{Consumer, Producer, RingMemory};

/// What this PD expects of the system description.
pub mod interface {
    use warden_microkit::Channel;

    /// The virtio-blk driver.
    pub const BLOCK: Channel = Channel::new(1);
    /// The virtio-rng driver (this end calls).
    pub const ENTROPY: Channel = Channel::new(2);
    /// The PL031 driver (this end calls).
    pub const CLOCK: Channel = Channel::new(3);
    /// Maps: (vaddr symbol, size symbol).
    pub const REGIONS: [(&str, &str); 3] = [
        ("requests", "requests_size"),
        ("responses", "responses_size"),
        ("block_data", "block_data_size"),
    ];
}

/// The sector the client writes (sector 0 is only read: it may hold a partition table).
const PATTERN_SECTOR: u64 = 1;
/// Where in the data region each step's sector goes.
const READ_OFFSET: u32 = 0;
const PATTERN_OFFSET: u32 = 512;
const BACK_OFFSET: u32 = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Waiting,
    ReadSector0,
    WritePattern,
    ReadBack,
    Flush,
    Done,
}

/// The client.
pub struct Client {
    requests: Option<Producer<'static>>,
    responses: Option<Consumer<'static>>,
    data: &'static [AtomicU32],
    step: Step,
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
        let word = self
            .data
            .get(offset / 4)
            .map_or(0, |word| word.load(Ordering::Relaxed));
        word.to_le_bytes().get(offset % 4).copied().unwrap_or(0)
    }

    fn request(&mut self, step: Step, operation: BlockOperation, sector: u64, offset: u32) {
        let request = BlockRequest {
            id: step as u32,
            operation,
            sector,
            count: 1,
            offset,
        };
        let Some(requests) = self.requests.as_mut() else {
            return;
        };
        if requests.try_push(&request.encode()).is_err() {
            warn!("client: the request ring is full");
            return;
        }
        self.step = step;
        if requests.signal_needed() {
            interface::BLOCK.notify();
        }
    }

    fn write_pattern(&mut self) {
        let base = PATTERN_OFFSET as usize / 4;
        for (index, word) in self.data.iter().skip(base).take(128).enumerate() {
            let bytes = [0, 1, 2, 3].map(|byte| pattern_byte(index * 4 + byte));
            word.store(u32::from_le_bytes(bytes), Ordering::Relaxed);
        }
        self.request(
            Step::WritePattern,
            BlockOperation::Write,
            PATTERN_SECTOR,
            PATTERN_OFFSET,
        );
    }

    fn advance(&mut self, response: BlockResponse) {
        if response.id != self.step as u32 {
            warn!(
                "client: response to request {} while at {:?}; ignored",
                response.id, self.step
            );
            return;
        }
        if response.status != BlockStatus::Ok {
            warn!("client: {:?} failed: {:?}", self.step, response.status);
            self.step = Step::Done;
            return;
        }
        match self.step {
            Step::ReadSector0 => {
                info!(
                    "client: sector 0 read: {}…",
                    hex((0..16).map(|index| self.data_byte(READ_OFFSET as usize + index)))
                );
                self.write_pattern();
            }
            Step::WritePattern => {
                info!("client: pattern written to sector {PATTERN_SECTOR}");
                self.request(
                    Step::ReadBack,
                    BlockOperation::Read,
                    PATTERN_SECTOR,
                    BACK_OFFSET,
                );
            }
            Step::ReadBack => {
                let mismatch = (0..512).find(|index| {
                    self.data_byte(BACK_OFFSET as usize + index) != pattern_byte(*index)
                });
                match mismatch {
                    None => info!(
                        "client: sector {PATTERN_SECTOR} read back: all 512 bytes match the pattern (verified)"
                    ),
                    Some(index) => warn!(
                        "client: sector {PATTERN_SECTOR} read back: byte {index} differs (0x{:02x}, wrote 0x{:02x}): VERIFY FAILED",
                        self.data_byte(BACK_OFFSET as usize + index),
                        pattern_byte(index)
                    ),
                }
                self.request(Step::Flush, BlockOperation::Flush, 0, 0);
            }
            Step::Flush => {
                info!("client: flushed; disk check done");
                self.step = Step::Done;
            }
            Step::Waiting | Step::Done => {}
        }
    }

    fn drain_responses(&mut self) {
        let mut buffer = [0u8; SLOT_BYTES];
        loop {
            let Some(responses) = self.responses.as_mut() else {
                return;
            };
            match responses.pop_or_arm(&mut buffer) {
                Ok(Some(length)) => {
                    match BlockResponse::decode(buffer.get(..length).unwrap_or_default()) {
                        Some(response) => self.advance(response),
                        None => warn!("client: malformed response from the disk driver; dropped"),
                    }
                }
                Ok(None) => return,
                Err(error) => {
                    warn!("client: the response ring is corrupt ({error:?})");
                    return;
                }
            }
        }
    }

    fn ask_entropy(&mut self) {
        set_mr(0, 16);
        let reply = interface::ENTROPY.pp_call(MessageInfo::new(ENTROPY, 1));
        match entropy_reply(reply.label(), usize::from(reply.count()), get_mr) {
            Ok((bytes, got)) => {
                info!(
                    "client: {got} random bytes from virtio-rng: {}",
                    hex(bytes.iter().copied().take(got))
                );
                self.entropy_done = true;
            }
            Err(ReplyError::NotReady) => {}
            Err(ReplyError::Refused) => warn!("client: no entropy source to call"),
            Err(ReplyError::Malformed) => warn!("client: malformed entropy reply"),
        }
    }

    fn ask_time(&mut self) {
        let reply = interface::CLOCK.pp_call(MessageInfo::new(TIME, 0));
        match time_reply(reply.label(), usize::from(reply.count()), get_mr) {
            Ok(seconds) => {
                info!(
                    "client: the PL031 says it is {} ({seconds} s since 1970)",
                    pl031_driver::device::civil_time(seconds)
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
            if self.step == Step::Waiting {
                info!("client: the disk is ready; reading sector 0");
                self.request(Step::ReadSector0, BlockOperation::Read, 0, READ_OFFSET);
            }
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
    let ring = |words: Option<&'static [AtomicU32]>| RingMemory::over(words?).ok();
    let requests = ring(warden_microkit::memory_region_words!(
        requests,
        requests_size
    ));
    let responses = ring(warden_microkit::memory_region_words!(
        responses,
        responses_size
    ));
    let data = warden_microkit::memory_region_words!(block_data, block_data_size);
    let mut responses = responses.map(Consumer::new);
    if let Some(responses) = responses.as_mut() {
        let _ = responses.arm_signal();
    }
    if data.is_none_or(|data| data.len() < 1536 / 4) {
        warn!("client: no data region of 1536 bytes at least; the disk check cannot run");
    }
    info!("client: waiting for the disk, the entropy source and the clock");
    Client {
        requests: requests.map(Producer::new),
        responses,
        data: data.unwrap_or_default(),
        step: Step::Waiting,
        entropy_done: false,
        clock_done: false,
    }
}
