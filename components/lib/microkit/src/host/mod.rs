//! The host backend: a PD is a Linux process started by the `warden-host` launcher. The
//! launcher is the kernel's slow path (start-up, interrupts, faults, restarts, stops, device
//! registers: frames on a socket, see [`crate::host_protocol`]); notifications and protected
//! procedure calls go straight to the peer PD over the channel handles the launcher hands out
//! at start ([`channels`]). The event loop here decides what runs next by the Microkit's rules
//! ([`receiver`]). The message registers are this process's own array, as the IPC buffer is on
//! seL4.

mod channels;
mod receiver;

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, OnceLock};

use rustix::event::{PollFd, PollFlags};

use crate::host_protocol::{
    read_frame, write_frame, FromPd, ToPd, Traced, MAX_FRAME, MAX_REGISTERS,
};
use crate::{Channel, ChannelSet, Child, Handler, MessageInfo};
use channels::{Channels, Message};
use receiver::{Next, Receiver};

static CONNECTION: OnceLock<Mutex<UnixStream>> = OnceLock::new();
/// The same socket, for the event loop's poll.
static POLLED: OnceLock<UnixStream> = OnceLock::new();
static CHANNELS: OnceLock<Channels> = OnceLock::new();
/// `--trace`: report channel operations to the launcher too.
static TRACING: OnceLock<bool> = OnceLock::new();

/// `log` records go to the PD's debug console: on the host, standard output, which the
/// launcher reads line by line and prints prefixed with the PD's name, each record with one
/// write of its own, so records stay whole (on seL4 they go to the log printer PD).
struct DebugConsole;

impl log::Log for DebugConsole {
    fn enabled(&self, _metadata: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.level() == log::Level::Info {
            println!("{}", record.args());
        } else {
            println!("{}: {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

static DEBUG_CONSOLE: DebugConsole = DebugConsole;
static INCARNATION: OnceLock<u32> = OnceLock::new();
thread_local! {
    /// The message registers: the IPC buffer of the PD's one thread (per thread, so that unit
    /// tests running in parallel threads each have their own).
    static REGISTERS: core::cell::RefCell<[u64; MAX_REGISTERS]> =
        const { core::cell::RefCell::new([0; MAX_REGISTERS]) };
    /// What waits to run; fed by the event loop, and by frames that arrive while an entry point
    /// waits for the launcher's answer (a device register, a stop).
    static RECEIVER: core::cell::RefCell<Receiver> = core::cell::RefCell::new(Receiver::default());
}

/// Why a PD could not run on the host platform.
#[derive(Debug)]
pub enum HostError {
    /// Not started by `warden-host` (its environment variables are missing or wrong).
    NotLaunched(&'static str),
    /// The launcher's socket failed.
    Io(std::io::Error),
    /// The launcher sent a frame this PD cannot decode.
    Protocol,
    /// A memory region could not be mapped.
    Mapping(String),
}

impl core::fmt::Display for HostError {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotLaunched(what) => write!(
                formatter,
                "this program is a Warden protection domain: run it with warden-host ({what} is not set)"
            ),
            Self::Io(error) => write!(formatter, "connection to warden-host: {error}"),
            Self::Protocol => write!(formatter, "malformed frame from warden-host"),
            Self::Mapping(error) => write!(formatter, "memory region: {error}"),
        }
    }
}

fn environment(name: &'static str) -> Result<String, HostError> {
    std::env::var(name).map_err(|_| HostError::NotLaunched(name))
}

fn send(frame: &FromPd) -> Result<(), HostError> {
    let connection = CONNECTION
        .get()
        .ok_or(HostError::NotLaunched("the connection"))?;
    let mut stream = connection.lock().map_err(|_| HostError::Protocol)?;
    write_frame(&mut *stream, &frame.encode()).map_err(HostError::Io)
}

fn receive() -> Result<ToPd, HostError> {
    let connection = CONNECTION
        .get()
        .ok_or(HostError::NotLaunched("the connection"))?;
    let mut stream = connection.lock().map_err(|_| HostError::Protocol)?;
    let payload = read_frame(&mut *stream).map_err(HostError::Io)?;
    ToPd::decode(&payload).ok_or(HostError::Protocol)
}

/// Reads exactly `buffer.len()` bytes, collecting the descriptors that come with them.
fn receive_exact_with_descriptors(
    stream: &UnixStream,
    buffer: &mut [u8],
    descriptors: &mut Vec<OwnedFd>,
) -> Result<(), HostError> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut filled = 0;
    while filled < buffer.len() {
        let mut space = [core::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let rest = buffer.get_mut(filled..).ok_or(HostError::Protocol)?;
        let received = rustix::net::recvmsg(
            stream,
            &mut [std::io::IoSliceMut::new(rest)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )
        .map_err(|error| HostError::Io(error.into()))?;
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                descriptors.extend(received);
            }
        }
        if received.bytes == 0 {
            return Err(HostError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        filled += received.bytes;
    }
    Ok(())
}

/// A frame with the descriptors sent with it (start-up only: the channel handles).
fn receive_with_descriptors() -> Result<(ToPd, Vec<OwnedFd>), HostError> {
    let connection = CONNECTION
        .get()
        .ok_or(HostError::NotLaunched("the connection"))?;
    let stream = connection.lock().map_err(|_| HostError::Protocol)?;
    let mut descriptors = Vec::new();
    let mut length = [0u8; 4];
    receive_exact_with_descriptors(&stream, &mut length, &mut descriptors)?;
    let length = u32::from_le_bytes(length) as usize;
    if length > MAX_FRAME {
        return Err(HostError::Protocol);
    }
    let mut payload = vec![0u8; length];
    receive_exact_with_descriptors(&stream, &mut payload, &mut descriptors)?;
    let frame = ToPd::decode(&payload).ok_or(HostError::Protocol)?;
    Ok((frame, descriptors))
}

/// Takes an asynchronous frame of the launcher's (an interrupt, a child's fault, an injected
/// fault, a cancelled call, a withdrawn fault) into the receiver; `Some` for a frame that
/// answers a request.
fn take_in(frame: ToPd) -> Option<ToPd> {
    if let ToPd::CallCancelled(channel, start) = frame {
        if let Some(channels) = CHANNELS.get() {
            channels.cancel(channel, start);
        }
        return None;
    }
    RECEIVER.with_borrow_mut(|receiver| match frame {
        ToPd::FaultWithdrawn(child) => {
            receiver.withdraw_fault(child);
            None
        }
        ToPd::Irq(channel) => {
            receiver.signal(channel);
            None
        }
        ToPd::Fault(child, label) => {
            receiver.fault(child, label);
            None
        }
        ToPd::Inject(code) => {
            receiver.inject(code);
            None
        }
        other => Some(other),
    })
}

/// The launcher's answer to a request: what arrives meanwhile is queued for later.
fn answer() -> Result<u32, HostError> {
    loop {
        match take_in(receive()?) {
            None => {}
            Some(ToPd::RegisterValue(value)) => return Ok(value),
            Some(_) => return Err(HostError::Protocol),
        }
    }
}

fn tracing() -> bool {
    TRACING.get().copied().unwrap_or(false)
}

fn trace(event: Traced) {
    if tracing() {
        if let Err(error) = send(&FromPd::Traced(event)) {
            fatal(&error);
        }
    }
}

/// A span's mark, for the launcher's trace.
pub(crate) fn trace_mark(mark: crate::trace::Mark) {
    trace(Traced::Mark(mark));
}

/// As libmicrokit: an operation on a channel this end may not use is refused (and reported).
fn refused(channel: u8) {
    eprintln!("refused by the kernel: InvalidChannel({channel})");
    trace(Traced::Refused(channel));
}

/// Ends the process when the launcher is gone or misbehaves: without it there is no system.
fn fatal(error: &HostError) -> ! {
    eprintln!("{error}");
    std::process::exit(70)
}

fn load_registers(message: &Message) -> MessageInfo {
    REGISTERS.with_borrow_mut(|registers| {
        for (slot, value) in registers
            .iter_mut()
            .zip(message.registers.iter().take(message.count))
        {
            *slot = *value;
        }
    });
    MessageInfo::new(message.label, message.count as u8)
}

fn store_registers(info: MessageInfo) -> Message {
    let mut message = Message::empty();
    message.label = info.label();
    message.count = usize::from(info.count()).min(MAX_REGISTERS);
    REGISTERS.with_borrow(|registers| message.registers = *registers);
    message
}

pub(crate) fn get_mr(index: usize) -> u64 {
    REGISTERS.with_borrow(|registers| registers.get(index).copied().unwrap_or(0))
}

pub(crate) fn set_mr(index: usize, value: u64) {
    REGISTERS.with_borrow_mut(|registers| {
        if let Some(slot) = registers.get_mut(index) {
            *slot = value;
        }
    });
}

pub(crate) fn incarnation() -> u32 {
    INCARNATION.get().copied().unwrap_or(1)
}

pub(crate) fn print_line(line: &[u8]) {
    use std::io::Write;
    let mut out = Vec::with_capacity(line.len() + 1);
    crate::log_line::sanitise(line, |byte| out.push(byte));
    let _ = std::io::stdout().lock().write_all(&out);
}

pub(crate) fn notify(channel: Channel) {
    let sent = CHANNELS
        .get()
        .is_some_and(|channels| channels.notify(channel.index()));
    if sent {
        trace(Traced::Notify(channel.index()));
    } else {
        refused(channel.index());
    }
}

pub(crate) fn irq_ack(channel: Channel) {
    if let Err(error) = send(&FromPd::IrqAck(channel.index())) {
        fatal(&error);
    }
}

pub(crate) fn restart(child: Child) {
    if let Err(error) = send(&FromPd::Restart(child.index())) {
        fatal(&error);
    }
}

/// Returns once the child is stopped (its process ended), as `microkit_pd_stop` returns once
/// the child's thread is suspended: the caller may then reset what they share.
pub(crate) fn stop(child: Child) {
    if let Err(error) = send(&FromPd::Stop(child.index())).and_then(|()| answer()) {
        fatal(&error);
    }
}

/// A device register load: the launcher's model of the device answers. An address outside
/// this PD's device maps is a VM fault, as on seL4: the launcher ends the process.
pub(crate) fn register_read(address: u64, width: warden_registers::Width) -> u32 {
    let access = FromPd::RegisterRead {
        address,
        width: width.bytes() as u8,
    };
    send(&access)
        .and_then(|()| answer())
        .unwrap_or_else(|error| fatal(&error))
}

/// A device register store; returns once the model has acted on it, so accesses stay in
/// program order with everything else the PD does.
pub(crate) fn register_write(address: u64, width: warden_registers::Width, value: u32) {
    let access = FromPd::RegisterWrite {
        address,
        width: width.bytes() as u8,
        value,
    };
    if let Err(error) = send(&access).and_then(|()| answer()) {
        fatal(&error);
    }
}

pub(crate) fn pp_call(channel: Channel, info: MessageInfo) -> MessageInfo {
    let reply = CHANNELS
        .get()
        .and_then(|channels| channels.call(channel.index(), &store_registers(info)));
    match reply {
        Some(reply) => {
            trace(Traced::Call(channel.index(), info.label()));
            load_registers(&reply)
        }
        None => {
            // As libmicrokit: the call is refused and returns an empty message.
            refused(channel.index());
            MessageInfo::new(0, 0)
        }
    }
}

/// Runs a PD on the host platform: connects to the launcher, takes its channel handles, runs
/// `init`, then serves entry points until the launcher goes away. A handler error ends the
/// process, which the launcher reports as a fault (to the parent, if there is one).
///
/// # Errors
/// Only at start-up, when the process was not started by `warden-host`.
pub fn run<H: Handler>(init: impl FnOnce() -> H) -> Result<(), HostError> {
    let socket = environment("WARDEN_HOST_SOCKET")?;
    let pd: u32 = environment("WARDEN_PD_INDEX")?
        .parse()
        .map_err(|_| HostError::NotLaunched("a numeric WARDEN_PD_INDEX"))?;
    let incarnation: u32 = environment("WARDEN_PD_INCARNATION")?
        .parse()
        .map_err(|_| HostError::NotLaunched("a numeric WARDEN_PD_INCARNATION"))?;
    let _ = INCARNATION.set(incarnation);
    let _ = TRACING.set(std::env::var_os("WARDEN_TRACE").is_some());
    // A panic is one line, as on seL4 (the default hook puts the message on a line of its own,
    // and the launcher prefixes each line): then the process ends with a fault.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|text| (*text).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        match info.location() {
            Some(location) => eprintln!("panicked at {location}: {message}"),
            None => eprintln!("panicked: {message}"),
        }
    }));
    if log::set_logger(&DEBUG_CONSOLE).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    let stream = UnixStream::connect(socket).map_err(HostError::Io)?;
    let _ = POLLED.set(stream.try_clone().map_err(HostError::Io)?);
    let _ = CONNECTION.set(Mutex::new(stream));
    send(&FromPd::Hello { pd, incarnation })?;
    let mut channels = Channels::new();
    let mut regions = Vec::new();
    loop {
        match receive_with_descriptors()? {
            (ToPd::Region(map), mut descriptors) if descriptors.len() == 1 => {
                regions.extend(descriptors.pop().map(|memory| (map, memory)));
            }
            (ToPd::Handle(channel, handle), descriptors) => channels
                .add(channel, handle, descriptors)
                .map_err(HostError::Mapping)?,
            (ToPd::Init, _) => break,
            (ToPd::Region(_), _) => return Err(HostError::Protocol),
            (frame, _) => {
                if take_in(frame).is_some() {
                    return Err(HostError::Protocol);
                }
            }
        }
    }
    // The regions are mapped before `init`, as the Microkit's loader maps them before the PD
    // runs; their descriptors are closed once mapped (the mappings stay).
    crate::mapping::map_regions(regions).map_err(HostError::Mapping)?;
    let channels = CHANNELS.get_or_init(|| channels);
    RECEIVER.with_borrow_mut(|receiver| channels.waiting_calls(receiver));
    let mut handler = init();
    loop {
        collect(channels);
        let Some(next) = RECEIVER.with_borrow_mut(Receiver::next) else {
            continue;
        };
        let result = match next {
            Next::Notified(bits) => handler.notified(ChannelSet::from_bits(bits)),
            Next::Protected(channel) => match (channels.take(channel), Channel::try_new(channel)) {
                (Some((sequence, message)), Some(id)) => {
                    let info = load_registers(&message);
                    handler.protected(id, info).map(|reply| {
                        channels.reply(channel, sequence, &store_registers(reply));
                    })
                }
                _ => Ok(()),
            },
            Next::Fault(child, label) => handler
                .fault(Child::new(child), MessageInfo::new(label, 0))
                .and_then(|resume| {
                    let done = FromPd::FaultDone {
                        child,
                        resume: resume.is_some(),
                    };
                    send(&done).map_err(|error| fatal(&error))
                }),
            Next::Inject(code) => match crate::InjectedFault::from_code(code) {
                Some(fault) => handler.inject(fault),
                None => fatal(&HostError::Protocol),
            },
        };
        if let Err(error) = result {
            eprintln!("entry point failed: {error}");
            std::process::exit(1);
        }
    }
}

/// Waits for something to run (or only looks, when something waits already): the launcher's
/// frames, notifications, doorbells. Each readable descriptor is taken once per pass, so a
/// flooding peer cannot keep the loop from running entries.
fn collect(channels: &Channels) {
    let Some(socket) = POLLED.get() else {
        fatal(&HostError::NotLaunched("the connection"))
    };
    let idle = !RECEIVER.with_borrow(Receiver::has_work);
    let mut descriptors: Vec<PollFd<'_>> = core::iter::once(socket)
        .map(|socket| PollFd::new(socket, PollFlags::IN))
        .chain(
            channels
                .incoming()
                .map(|descriptor| PollFd::new(descriptor, PollFlags::IN)),
        )
        .collect();
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match rustix::event::poll(&mut descriptors, if idle { None } else { Some(&zero) }) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => return,
        Err(error) => fatal(&HostError::Io(error.into())),
    }
    let mut ready = descriptors
        .iter()
        .map(|descriptor| !descriptor.revents().is_empty());
    if ready.next() == Some(true) {
        match receive() {
            Ok(frame) => {
                if take_in(frame).is_some() {
                    fatal(&HostError::Protocol);
                }
            }
            // The launcher closed the connection: the system is shutting down.
            Err(HostError::Io(_)) => std::process::exit(0),
            Err(error) => fatal(&error),
        }
    }
    RECEIVER.with_borrow_mut(|receiver| {
        for (index, readable) in ready.enumerate() {
            if readable {
                channels.arrived(index, receiver);
            }
        }
    });
}
