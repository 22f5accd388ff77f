//! The manager's trace: every request from its arrival to its completion, and every callback
//! from its sending to the driver's answer. Each mark goes to the launcher's trace
//! (`warden-host run --trace FILE.json`, where a callback is drawn on its driver PD's track,
//! joined to the request it serves by a flow: [`warden_microkit::trace`]; nothing on seL4 or with
//! tracing off) and into the manager's own bounded ring ([`Ring`], as Hubris's `ringbuf`), which
//! keeps the last [`RING`] with their time on the manager's clock (the system timer's: the
//! generic counter on seL4) and which clients read with `QueryTrace` (the shell's `trace`).

use heapless::Deque;
use warden_manager_core::Instant;
use warden_manager_core::{Callback, CallbackKind, Completion, Request, RequestId};
use warden_microkit::trace::{self, Mark, Name, Phase};
use warden_services::admin::TraceRecord;
use warden_vocabulary::{Answer, CallbackId, DeviceId, DriverId, Outcome};

fn device(device: DeviceId) -> Option<[u32; 2]> {
    Some([device.index(), device.generation()])
}

fn driver(driver: DriverId) -> Option<[u32; 2]> {
    Some([driver.index(), driver.generation()])
}

/// What the trace says of a request: its name, device and driver (taken before the request is
/// handed to the core).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Described(Name, Option<DeviceId>, Option<DriverId>);

/// What the trace says of `request`.
pub(crate) fn describe(request: &Request) -> Described {
    let (name, on, by) = match request {
        Request::AddDevice { .. } => (Name::AddDevice, None, None),
        Request::DeleteDevice(on) => (Name::RemoveDevice, Some(*on), None),
        Request::RegisterDriver(_) => (Name::RegisterDriver, None, None),
        Request::UnregisterDriver(by) => (Name::UnregisterDriver, None, Some(*by)),
        Request::Bind { device, driver } => (Name::Bind, Some(*device), Some(*driver)),
        Request::Unbind(on) => (Name::Unbind, Some(*on), None),
        Request::Probe(on) => (Name::ProbeDevice, Some(*on), None),
        Request::Rescan => (Name::Rescan, None, None),
        Request::Suspend(on) => (Name::SuspendRequest, Some(*on), None),
        Request::SuspendAll => (Name::SuspendRequest, None, None),
        Request::Resume(on) => (Name::ResumeRequest, Some(*on), None),
        Request::ResumeAll => (Name::ResumeRequest, None, None),
        Request::Shutdown => (Name::ShutdownRequest, None, None),
    };
    Described(name, on, by)
}

/// The mark of a request that arrived (and was taken as `id`).
pub(crate) fn request_arrived(id: RequestId, Described(name, on, by): Described) -> Mark {
    Mark {
        device: on.and_then(device),
        driver: by.and_then(driver),
        ..Mark::new(Phase::Begin, name, u64::from(id.0))
    }
}

/// The mark of a request that completed.
pub(crate) fn request_completed(completion: &Completion, status: u16) -> Mark {
    let (on, by) = match completion.result {
        Ok(Outcome::Device { device, driver }) => (Some(device), driver),
        Ok(Outcome::Driver { driver, .. }) => (None, Some(driver)),
        Ok(Outcome::Done) | Err(_) => (None, None),
    };
    Mark {
        device: on.and_then(device),
        driver: by.and_then(driver),
        status,
        // An end is named as its start was, by the ring and by the launcher.
        ..Mark::new(Phase::End, Name::Request, u64::from(completion.request.0))
    }
}

fn callback_name(kind: CallbackKind) -> Name {
    match kind {
        CallbackKind::Probe => Name::Probe,
        CallbackKind::Remove => Name::Remove,
        CallbackKind::Suspend => Name::Suspend,
        CallbackKind::Resume => Name::Resume,
        CallbackKind::Shutdown => Name::Shutdown,
    }
}

/// The mark of a callback sent to its driver PD, for `request`.
pub(crate) fn callback_sent(callback: &Callback, request: Option<RequestId>) -> Mark {
    Mark {
        child: u8::try_from(callback.pd.0).unwrap_or(0),
        device: device(callback.device),
        driver: driver(callback.driver),
        request: request.map(|id| u64::from(id.0)),
        ..Mark::new(
            Phase::Begin,
            callback_name(callback.kind),
            callback.id.sequence(),
        )
    }
}

/// The mark of a driver's answer to a callback (the manager took the answer).
pub(crate) fn callback_answered(callback: CallbackId, answer: Answer) -> Mark {
    Mark {
        status: warden_protocol::field::answer_status(answer).0 as u16,
        ..Mark::new(Phase::End, Name::Callback, callback.sequence())
    }
}

/// Records the ring keeps.
pub const RING: usize = 64;

/// One record: a mark, its number and its time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its number, counting every record made.
    pub sequence: u64,
    /// When.
    pub at: Instant,
    /// The mark.
    pub mark: Mark,
}

/// The manager's trace ring: the last [`RING`] records.
#[derive(Debug, Default)]
pub struct Ring {
    records: Deque<Record, RING>,
    next: u64,
}

impl Ring {
    /// Records `mark` at `at`, and sets it in the launcher's trace; the oldest record goes
    /// when the ring is full.
    pub fn record(&mut self, at: Instant, mut mark: Mark) {
        // An end is named as its start was (if the ring still has it).
        if mark.phase == Phase::End {
            let begun = self.records.iter().rev().find(|record| {
                record.mark.phase == Phase::Begin
                    && record.mark.id == mark.id
                    && record.mark.name.is_callback() == mark.name.is_callback()
            });
            if let Some(begun) = begun {
                mark.name = begun.mark.name;
                mark.child = begun.mark.child;
            }
        }
        trace::mark(mark);
        if self.records.is_full() {
            let _ = self.records.pop_front();
        }
        let _ = self.records.push_back(Record {
            sequence: self.next,
            at,
            mark,
        });
        self.next += 1;
    }

    /// The first record whose sequence is at least `cursor`, as a client sees it.
    #[must_use]
    pub fn from(&self, cursor: u64) -> Option<TraceRecord> {
        let record = self
            .records
            .iter()
            .find(|record| record.sequence >= cursor)?;
        let handle = |parts: Option<[u32; 2]>| parts.map(|[index, generation]| (index, generation));
        let mark = record.mark;
        Some(TraceRecord {
            sequence: record.sequence,
            at_ns: record.at.nanos(),
            begin: u32::from(mark.phase == Phase::Begin),
            name: u32::from(mark.name as u8),
            id: mark.id,
            pd: u32::from(mark.child),
            device: handle(mark.device)
                .map(|(index, generation)| DeviceId::from_parts(index, generation)),
            driver: handle(mark.driver)
                .map(|(index, generation)| DriverId::from_parts(index, generation)),
            request: mark.request.map_or(0, |request| request.saturating_add(1)),
            status: u32::from(mark.status),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_last_records_in_order() {
        let mut ring = Ring::default();
        for id in 0..(RING as u64 + 10) {
            ring.record(Instant(id * 1000), Mark::new(Phase::Begin, Name::Probe, id));
        }
        // The first ten are gone; the cursor finds the oldest kept.
        let first = ring.from(0).unwrap();
        assert_eq!((first.sequence, first.id, first.at_ns), (10, 10, 10_000));
        let last = ring.from(RING as u64 + 9).unwrap();
        assert_eq!(last.sequence, RING as u64 + 9);
        assert_eq!(ring.from(RING as u64 + 10), None);
        let mut cursor = 0;
        let mut seen = 0;
        while let Some(record) = ring.from(cursor) {
            cursor = record.sequence + 1;
            seen += 1;
        }
        assert_eq!(seen, RING);
        // An end takes its start's name and PD.
        ring.record(
            Instant(1),
            Mark {
                child: 3,
                ..Mark::new(Phase::Begin, Name::Suspend, 500)
            },
        );
        ring.record(Instant(2), Mark::new(Phase::End, Name::Callback, 500));
        let end = ring.from(RING as u64 + 11).unwrap();
        assert_eq!((end.begin, end.name, end.pd), (0, Name::Suspend as u32, 3));
    }
}
