//! The manager's marks in the launcher's trace (`warden-host run --trace FILE.json`): every
//! request from its arrival to its completion, and every callback from its sending to the
//! driver's answer, drawn on the driver PD's track and joined to the request it serves by a flow
//! ([`warden_microkit::trace`]; nothing on seL4, or with tracing off).

use warden_manager_core::{Callback, CallbackKind, Completion, Request, RequestId};
use warden_microkit::trace::{self, Mark, Name, Phase};
use warden_vocabulary::{Answer, CallbackId, DeviceId, DriverId, Outcome};

fn device(device: DeviceId) -> Option<[u32; 2]> {
    Some([device.index(), device.generation()])
}

fn driver(driver: DriverId) -> Option<[u32; 2]> {
    Some([driver.index(), driver.generation()])
}

/// A request arrived (and was taken as `id`).
pub(crate) fn request_arrived(id: RequestId, request: &Request) {
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
    trace::mark(Mark {
        device: on.and_then(device),
        driver: by.and_then(driver),
        ..Mark::new(Phase::Begin, name, u64::from(id.0))
    });
}

/// A request completed.
pub(crate) fn request_completed(completion: &Completion, status: u16) {
    let (on, by) = match completion.result {
        Ok(Outcome::Device { device, driver }) => (Some(device), driver),
        Ok(Outcome::Driver { driver, .. }) => (None, Some(driver)),
        Ok(Outcome::Done) | Err(_) => (None, None),
    };
    trace::mark(Mark {
        device: on.and_then(device),
        driver: by.and_then(driver),
        status,
        // The name of an end is the launcher's from its start; any request name will do.
        ..Mark::new(Phase::End, Name::Rescan, u64::from(completion.request.0))
    });
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

/// A callback was sent to its driver PD, for `request`.
pub(crate) fn callback_sent(callback: &Callback, request: Option<RequestId>) {
    trace::mark(Mark {
        child: u8::try_from(callback.pd.0).unwrap_or(0),
        device: device(callback.device),
        driver: driver(callback.driver),
        request: request.map(|id| u64::from(id.0)),
        ..Mark::new(
            Phase::Begin,
            callback_name(callback.kind),
            callback.id.sequence(),
        )
    });
}

/// A driver answered a callback (the manager took the answer).
pub(crate) fn callback_answered(callback: CallbackId, answer: Answer) {
    let status = match answer {
        Answer::Ok => 0,
        Answer::NotMine => 1,
        Answer::Defer => 2,
        Answer::Failed(_) => 9,
    };
    trace::mark(Mark {
        status,
        ..Mark::new(Phase::End, Name::Probe, callback.sequence())
    });
}
