//! The soak client (binary `soak_client`, which `warden-host soak` runs in the client PD's
//! place): it writes blocks and reads them back without pause while faults are injected into
//! the driver PDs, and counts what it sees.
//!
//! [`LANES`] requests are in flight at once, one per lane; a lane writes a sector with a
//! pattern that depends on the sector and the lane's round, reads it back into a buffer of its
//! own, checks every byte and moves on to its next sector. When the driver restarts it has
//! lost whatever it had taken and not answered: its announcement ([`block::ANNOUNCE`]) makes
//! the client resubmit every outstanding request under a new id (an answer to an old id is
//! ignored: each request is idempotent, so a copy served twice harms nothing). A request
//! answered NotReady (the disk is not bound yet) waits for the announcement; one not answered
//! at all within [`RESUBMIT_AFTER`] is resubmitted anyway.
//!
//! Counted: verified (read back equal to what was written), mismatches (read back different:
//! data corruption), lost (a lane's request not completed within [`LOST_AFTER`] of its first
//! submission, resubmissions included), resubmitted, errors (Invalid or DeviceError answers).
//! It prints them as `soak-client: …` every [`REPORT_EVERY`] when they changed (and at least
//! once a second), with the age of the oldest outstanding request, and says so at once when a
//! request is lost or a block mismatches.
//!
//! Channels: those of the demo client ([`crate::interface`]) and the system timer on 4.

use core::time::Duration;

use log::{info, warn};
use warden_microkit::{Channel, ChannelSet, Handler};
use warden_services::block::{self, Operation, Request, Response, Status, SECTOR_BYTES};
use warden_services::timer;
use warden_vocabulary::Instant;

/// The system timer (this end calls).
pub const TIMER: Channel = crate::interface::TIMER;

/// Requests in flight at once (each lane needs 1 KiB of the data region).
pub const LANES: usize = 4;
/// The first sector written (sectors 0 and 1 are the demo client's).
const FIRST_SECTOR: u64 = 2;
/// Sectors the lanes cycle through (the disk has at least 1 MiB: 2,048 sectors).
const SECTORS: u64 = 1024;
/// How often the client looks at its lanes.
const TICK: Duration = Duration::from_millis(10);
/// A progress line at most this often.
pub const REPORT_EVERY: Duration = Duration::from_millis(10);
/// A request with no answer this long is submitted again.
pub const RESUBMIT_AFTER: Duration = Duration::from_millis(1000);
/// A lane whose request is not completed this long after its first submission lost it.
pub const LOST_AFTER: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Write,
    Read,
}

#[derive(Clone, Copy, Debug)]
struct Lane {
    sector: u64,
    round: u32,
    phase: Phase,
    /// The id of the request in flight; `None` before the lane starts.
    id: Option<u32>,
    /// When the current operation was first submitted, and last.
    first_sent: Instant,
    sent: Instant,
    /// Its current operation was counted lost already.
    lost: bool,
}

/// What the client has counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Blocks read back equal to what was written.
    pub verified: u64,
    /// Blocks read back different.
    pub mismatches: u64,
    /// Requests not completed within [`LOST_AFTER`].
    pub lost: u64,
    /// Requests submitted again (announcement, NotReady, no answer).
    pub resubmitted: u64,
    /// Invalid or DeviceError answers.
    pub errors: u64,
}

/// The byte `index` of `sector` written in `round`.
#[must_use]
pub fn pattern_byte(sector: u64, round: u32, index: usize) -> u8 {
    let mixed = (sector as u32)
        .wrapping_mul(0x9e37_79b1)
        .wrapping_add(round.wrapping_mul(0x85eb_ca6b))
        .wrapping_add((index as u32).wrapping_mul(0xc2b2_ae35));
    (mixed >> 24) as u8 ^ (mixed >> 8) as u8
}

/// The soak client.
pub struct Soak {
    /// `None` when the system maps no block rings (the client then only says so).
    disk: Option<block::Client>,
    timer: timer::Client,
    lanes: heapless::Vec<Lane, LANES>,
    next_id: u32,
    counters: Counters,
    reported: Option<(Counters, Instant)>,
    started: bool,
}

impl Soak {
    fn now(&self) -> Instant {
        self.timer.now().unwrap_or(Instant(0))
    }

    fn write_offset(lane: usize) -> usize {
        lane * 2 * SECTOR_BYTES
    }

    fn read_offset(lane: usize) -> usize {
        Self::write_offset(lane) + SECTOR_BYTES
    }

    /// Submits lane `index`'s current operation under a new id.
    fn submit(&mut self, index: usize, now: Instant) {
        let id = self.next_id;
        self.next_id = (self.next_id + 1) % block::ANNOUNCE;
        let Some(lane) = self.lanes.get_mut(index) else {
            return;
        };
        let (operation, offset) = match lane.phase {
            Phase::Write => (Operation::Write, Self::write_offset(index)),
            Phase::Read => (Operation::Read, Self::read_offset(index)),
        };
        let request = Request {
            id,
            operation,
            sector: lane.sector,
            count: 1,
            offset: offset as u32,
        };
        lane.id = Some(id);
        lane.sent = now;
        let Some(disk) = self.disk.as_mut() else {
            return;
        };
        if let Err(error) = disk.submit(&request) {
            // Resubmitted at the next tick.
            warn!("soak-client: the request ring refused lane {index}'s request ({error:?})");
            lane.sent = Instant(0);
        }
    }

    /// Starts lane `index`'s next operation (`phase` of its sector).
    fn begin(&mut self, index: usize, phase: Phase, now: Instant) {
        if let Some(lane) = self.lanes.get_mut(index) {
            lane.phase = phase;
            lane.first_sent = now;
            lane.lost = false;
        }
        if let Some(lane) = self.lanes.get(index).filter(|_| phase == Phase::Write) {
            let pattern: heapless::Vec<u8, SECTOR_BYTES> = (0..SECTOR_BYTES)
                .map(|byte| pattern_byte(lane.sector, lane.round, byte))
                .collect();
            if let Some(disk) = self.disk.as_ref() {
                disk.data().write(Self::write_offset(index), &pattern);
            }
        }
        self.submit(index, now);
    }

    fn resubmit(&mut self, index: usize, now: Instant) {
        self.counters.resubmitted += 1;
        self.submit(index, now);
    }

    fn verify(&mut self, index: usize) {
        let Some(lane) = self.lanes.get(index).copied() else {
            return;
        };
        let Some(data) = self.disk.as_ref().map(block::Client::data) else {
            return;
        };
        let differs = (0..SECTOR_BYTES).find(|&byte| {
            data.byte(Self::read_offset(index) + byte)
                != pattern_byte(lane.sector, lane.round, byte)
        });
        match differs {
            None => self.counters.verified += 1,
            Some(byte) => {
                self.counters.mismatches += 1;
                warn!(
                    "soak-client: MISMATCH: sector {} (round {}) byte {byte} read 0x{:02x}, wrote 0x{:02x}",
                    lane.sector,
                    lane.round,
                    data.byte(Self::read_offset(index) + byte),
                    pattern_byte(lane.sector, lane.round, byte)
                );
            }
        }
    }

    fn answered(&mut self, response: Response, now: Instant) {
        if response.is_announcement() {
            self.started = true;
            for index in 0..self.lanes.len() {
                if self.lanes.get(index).is_some_and(|lane| lane.id.is_none()) {
                    self.begin(index, Phase::Write, now);
                } else {
                    self.resubmit(index, now);
                }
            }
            return;
        }
        // An answer to an id no lane waits for: a copy of a resubmitted request.
        let Some((index, lane)) = self
            .lanes
            .iter()
            .copied()
            .enumerate()
            .find(|(_, lane)| lane.id == Some(response.id))
        else {
            return;
        };
        match (response.status, lane.phase) {
            (Status::Ok, Phase::Write) => self.begin(index, Phase::Read, now),
            (Status::Ok, Phase::Read) => {
                self.verify(index);
                if let Some(lane) = self.lanes.get_mut(index) {
                    let next = lane.sector - FIRST_SECTOR + LANES as u64;
                    lane.sector = FIRST_SECTOR + next % SECTORS;
                    lane.round = lane.round.wrapping_add(1);
                }
                self.begin(index, Phase::Write, now);
            }
            // The disk is not bound: the announcement (or the resubmission timer) brings the
            // request back.
            (Status::NotReady, _) => {}
            (Status::Invalid | Status::DeviceError, _) => {
                self.counters.errors += 1;
                warn!("soak-client: sector {}: {:?}", lane.sector, response.status);
                // Tried again at the next tick.
                if let Some(lane) = self.lanes.get_mut(index) {
                    lane.sent = Instant(0);
                }
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        for index in 0..self.lanes.len() {
            let Some(lane) = self
                .lanes
                .get(index)
                .copied()
                .filter(|lane| lane.id.is_some())
            else {
                continue;
            };
            if !lane.lost && now.since(lane.first_sent) >= LOST_AFTER {
                if let Some(lane) = self.lanes.get_mut(index) {
                    lane.lost = true;
                }
                self.counters.lost += 1;
                warn!(
                    "soak-client: LOST: lane {index}'s {:?} of sector {} unanswered for {} ms",
                    lane.phase,
                    lane.sector,
                    now.since(lane.first_sent).as_millis()
                );
            }
            if now.since(lane.sent) >= RESUBMIT_AFTER {
                self.resubmit(index, now);
            }
        }
        let due = self.reported.is_none_or(|(counters, at)| {
            let since = now.since(at);
            (counters != self.counters && since >= REPORT_EVERY) || since >= Duration::from_secs(1)
        });
        if due && self.started {
            self.report(now);
        }
    }

    fn report(&mut self, now: Instant) {
        let oldest = self
            .lanes
            .iter()
            .filter(|lane| lane.id.is_some())
            .map(|lane| now.since(lane.first_sent))
            .max()
            .unwrap_or_default();
        let Counters {
            verified,
            mismatches,
            lost,
            resubmitted,
            errors,
        } = self.counters;
        info!(
            "soak-client: {verified} verified, {mismatches} mismatches, {lost} lost, {resubmitted} resubmitted, {errors} errors, oldest outstanding {} ms",
            oldest.as_millis()
        );
        self.reported = Some((self.counters, now));
    }
}

impl Handler for Soak {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        let now = self.now();
        if channels.contains(crate::interface::BLOCK) {
            if !self.started {
                // The disk may be there already (its announcement is on the ring then).
                self.started = true;
                for index in 0..self.lanes.len() {
                    if self.lanes.get(index).is_some_and(|lane| lane.id.is_none()) {
                        self.begin(index, Phase::Write, now);
                    }
                }
            }
            let mut responses: heapless::Vec<Response, 64> = heapless::Vec::new();
            loop {
                let mut more = false;
                let Some(disk) = self.disk.as_mut() else {
                    break;
                };
                disk.responses(|response| {
                    if responses.push(response).is_err() {
                        more = true;
                    }
                });
                for response in core::mem::take(&mut responses) {
                    self.answered(response, now);
                }
                if !more {
                    break;
                }
            }
        }
        if channels.contains(TIMER) {
            self.tick(now);
            self.timer.set_timeout(TICK);
        }
        Ok(())
    }
}

/// The soak client's `init`.
#[must_use]
pub fn init() -> Soak {
    let disk = block::Regions::from_system()
        .map(|regions| block::Client::new(crate::interface::BLOCK, regions));
    let room = disk.as_ref().map_or(0, |disk| disk.data().len());
    let lanes = (room / (2 * SECTOR_BYTES)).min(LANES);
    if lanes == 0 {
        warn!("soak-client: no block rings or no data region of 1 KiB in this system: nothing to soak");
    }
    let start = Lane {
        sector: 0,
        round: 0,
        phase: Phase::Write,
        id: None,
        first_sent: Instant(0),
        sent: Instant(0),
        lost: false,
    };
    let lanes: heapless::Vec<Lane, LANES> = (0..lanes)
        .map(|index| Lane {
            sector: FIRST_SECTOR + index as u64,
            ..start
        })
        .collect();
    let timer = timer::Client(TIMER);
    timer.set_timeout(TICK);
    info!(
        "soak-client: writing and verifying blocks on {} lanes, sectors {FIRST_SECTOR}-{}",
        lanes.len(),
        FIRST_SECTOR + SECTORS - 1
    );
    Soak {
        disk,
        timer,
        lanes,
        next_id: 0,
        counters: Counters::default(),
        reported: None,
        started: false,
    }
}
