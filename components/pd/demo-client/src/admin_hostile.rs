//! A hostile administrative client of the device manager, for sim-test: it runs in the shell's
//! place (channel 4 to the manager, the console's rings) and attacks the client protocol.
//!
//! In `init` it sends garbage (a subscription to kinds that do not exist, a `NextEvent` with a
//! body, an unknown opcode, an `Event` of the wrong length, a well-formed manager-to-client
//! `Accepted` sent to the manager, a trace cursor past the end, a trace record sent to the
//! manager), subscribes to every
//! kind of event and floods the manager with [`FLOOD`] system suspends and resumes without ever
//! taking an event: the manager must accept at most its per-client limit of requests whose
//! completions are not taken, refuse the rest Busy, and drop (and count) the events its queue
//! for this client has no room for. The lines typed on the console are its clock: on each it
//! takes every queued event, counting completions and the events the manager says it lost;
//! once every accepted request's completion has come it says so, shows that room for requests
//! is back (a rescan is accepted) and that the manager still answers (the tree's size).

use log::{info, warn};
use warden_microkit::{set_mr, ChannelSet, Handler, MessageInfo};
use warden_protocol::message::opcode;
use warden_protocol::{EventKind, Message, PowerTarget, Status};
use warden_services::admin::{self, Submitted};
use warden_services::call::{self, CallError};
use warden_services::console;

/// Requests sent in the flood.
pub const FLOOD: usize = 20;

const MANAGER: warden_microkit::Channel = warden_interface::shell::MANAGER;

/// The manager's client protocol, through the shell's channel.
struct Manager;

impl call::Caller for Manager {
    fn call(&mut self, message: &Message) -> Result<Message, CallError> {
        call::call(MANAGER, message)
    }
}

/// A raw call: `label` with these message registers; the reply's status, if it is a
/// completion.
fn raw(label: u64, registers: &[u64]) -> Option<Status> {
    for (index, value) in registers.iter().enumerate() {
        set_mr(index, *value);
    }
    let count = u8::try_from(registers.len()).unwrap_or(0);
    match call::receive(MANAGER.pp_call(MessageInfo::new(label, count))) {
        Ok(Message::Completion { status, .. }) => Some(status),
        _ => None,
    }
}

/// The hostile client.
pub struct Hostile {
    console: Option<console::Client>,
    accepted: usize,
    completions: usize,
    events: usize,
    lost: u64,
    done: bool,
}

impl Hostile {
    /// Takes every queued event.
    fn drain(&mut self) {
        let mut client = admin::Client(Manager);
        // More than the manager's queues hold: a manager that never runs dry is reported.
        for _ in 0..1024 {
            match client.next_event() {
                Ok(Some(event)) => {
                    self.lost += u64::from(event.lost);
                    if event.kind == EventKind::Completed {
                        self.completions += 1;
                    } else {
                        self.events += 1;
                    }
                }
                Ok(None) => return,
                Err(error) => {
                    warn!("hostile-admin: NextEvent failed: {error:?}");
                    return;
                }
            }
        }
        warn!("hostile-admin: the manager's events never ran dry");
    }

    fn tick(&mut self) {
        if self.done {
            return;
        }
        self.drain();
        if self.completions < self.accepted {
            info!(
                "hostile-admin: {} of {} completions so far",
                self.completions, self.accepted
            );
            return;
        }
        self.done = true;
        info!(
            "hostile-admin: every completion came ({} of {} accepted requests); {} events taken, {} lost and reported as lost",
            self.completions, self.accepted, self.events, self.lost
        );
        let mut client = admin::Client(Manager);
        let again = client.rescan();
        let mut devices = 0;
        let mut cursor = 0;
        while let Ok(Some(device)) = client.next_device(cursor) {
            devices += 1;
            cursor = u64::from(device.id.index()) + 1;
        }
        match again {
            Ok(Submitted::Accepted(_) | Submitted::Done) => info!(
                "hostile-admin: with its completions taken a request is accepted again; the manager still answers: {devices} devices"
            ),
            Err(error) => warn!("hostile-admin: the rescan after the flood was refused: {error:?}"),
        }
    }
}

impl Handler for Hostile {
    type Error = &'static str;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        if !channels.contains(warden_interface::shell::CONSOLE) {
            // The manager's doorbell is ignored: this client takes events on its own clock.
            return Ok(());
        }
        let mut typed = false;
        if let Some(console) = self.console.as_mut() {
            typed = console.take_lines(|_, _| {}, |_| false);
        }
        if typed {
            self.tick();
        }
        Ok(())
    }
}

/// The PD's `init`: the garbage and the flood.
#[must_use]
pub fn init() -> Hostile {
    let forged = match call::call(MANAGER, &Message::Accepted { request: 1 }) {
        Ok(Message::Completion { status, .. }) => Some(status),
        _ => None,
    };
    let garbage = [
        raw(u64::from(opcode::SUBSCRIBE), &[1 << 40]),
        raw(u64::from(opcode::NEXT_EVENT), &[0xdead_beef, 7, 7]),
        raw(0x02ff, &[1, 2, 3]),
        raw(u64::from(opcode::EVENT), &[0; 8]),
        forged,
        // Past the end of the trace ring, and a trace record forged as a call.
        raw(u64::from(opcode::QUERY_TRACE), &[u64::MAX]),
        raw(u64::from(opcode::TRACE_RECORD), &[7; 9]),
    ];
    info!("hostile-admin: garbage calls answered {garbage:?}");
    let mut client = admin::Client(Manager);
    if let Err(error) = client.subscribe(EventKind::MASK) {
        warn!("hostile-admin: the subscription was refused: {error:?}");
    }
    let (mut accepted, mut busy) = (0, 0);
    for round in 0..FLOOD {
        let answer = if round % 2 == 0 {
            client.suspend(PowerTarget::All)
        } else {
            client.resume(PowerTarget::All)
        };
        match answer {
            Ok(Submitted::Accepted(_)) => accepted += 1,
            Err(admin::Error::Refused(Status::Busy)) => busy += 1,
            other => warn!("hostile-admin: request {round} answered {other:?}"),
        }
    }
    info!(
        "hostile-admin: flooded: {FLOOD} requests without taking an event, {accepted} accepted, {busy} refused Busy"
    );
    Hostile {
        console: console::Client::from_system(),
        accepted,
        completions: 0,
        events: 0,
        lost: 0,
        done: false,
    }
}
