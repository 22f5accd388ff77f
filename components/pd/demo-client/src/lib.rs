//! A client PD of Warden's drivers, the proof that they serve: when the disk is bound it reads
//! sector 0, writes a pattern to sector 1, reads it back and checks it, and flushes; when the
//! entropy source is bound it asks for 16 random bytes; when the clock is bound it reads the
//! time. Each step is logged.
//!
//! Channels: 1 — the virtio-blk driver (queue pair `requests`/`responses`, data region
//! `block_data`: `warden_services::block`); 2 — the virtio-rng driver (`warden_services::entropy`);
//! 3 — the PL031 driver (`warden_services::clock`). The drivers have higher priorities, as calls
//! require. What the drivers answer is checked like any untrusted input.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use core::fmt::Write;
use log::{info, warn};
use warden_microkit::{ChannelSet, Handler};
use warden_services::block::{self, Operation, Request, Response, Status};
use warden_services::{clock, entropy, ReplyError};

pub mod soak;

/// What this PD expects of the system description.
pub mod interface {
    use warden_microkit::Channel;

    /// The virtio-blk driver.
    pub const BLOCK: Channel = Channel::new(1);
    /// The virtio-rng driver (this end calls).
    pub const ENTROPY: Channel = Channel::new(2);
    /// The PL031 driver (this end calls).
    pub const CLOCK: Channel = Channel::new(3);
    /// The system timer (this end calls; the soak client's clock).
    pub const TIMER: Channel = Channel::new(4);
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
    disk: Option<block::Client>,
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
        self.disk
            .as_ref()
            .map_or(0, |disk| disk.data().byte(offset))
    }

    fn request(&mut self, step: Step, operation: Operation, sector: u64, offset: u32) {
        let request = Request {
            id: step as u32,
            operation,
            sector,
            count: 1,
            offset,
        };
        let Some(disk) = self.disk.as_mut() else {
            return;
        };
        if let Err(error) = disk.submit(&request) {
            warn!("client: the request ring refused a request ({error:?})");
            return;
        }
        self.step = step;
    }

    fn write_pattern(&mut self) {
        let pattern: alloc::vec::Vec<u8> = (0..512).map(pattern_byte).collect();
        if let Some(disk) = self.disk.as_ref() {
            disk.data().write(PATTERN_OFFSET as usize, &pattern);
        }
        self.request(
            Step::WritePattern,
            Operation::Write,
            PATTERN_SECTOR,
            PATTERN_OFFSET,
        );
    }

    fn advance(&mut self, response: Response) {
        if response.id != self.step as u32 {
            warn!(
                "client: response to request {} while at {:?}; ignored",
                response.id, self.step
            );
            return;
        }
        if response.status != Status::Ok {
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
                self.request(Step::ReadBack, Operation::Read, PATTERN_SECTOR, BACK_OFFSET);
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
                self.request(Step::Flush, Operation::Flush, 0, 0);
            }
            Step::Flush => {
                info!("client: flushed; disk check done");
                self.step = Step::Done;
            }
            Step::Waiting | Step::Done => {}
        }
    }

    fn drain_responses(&mut self) {
        let mut responses = alloc::vec::Vec::new();
        if let Some(disk) = self.disk.as_mut() {
            disk.responses(|response| responses.push(response));
        }
        // The driver's announcement only says the disk is there (the first starts the check).
        for response in responses.into_iter().filter(|r| !r.is_announcement()) {
            self.advance(response);
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
            if self.step == Step::Waiting {
                info!("client: the disk is ready; reading sector 0");
                self.request(Step::ReadSector0, Operation::Read, 0, READ_OFFSET);
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
    let disk = block::Regions::from_system()
        .map(|regions| block::Client::new(interface::BLOCK, regions))
        .filter(|disk| {
            let enough = disk.data().len() >= 1536;
            if !enough {
                warn!(
                    "client: the data region is smaller than 1536 bytes; the disk check cannot run"
                );
            }
            enough
        });
    info!("client: waiting for the disk, the entropy source and the clock");
    Client {
        disk,
        step: Step::Waiting,
        entropy_done: false,
        clock_done: false,
    }
}
