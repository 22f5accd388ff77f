//! The host backend: a PD is a Linux process connected to the `warden-host` launcher, which
//! plays the Microkit kernel. Entry points arrive as frames; `notify`, `irq_ack`, `pp_call`,
//! `restart` and `stop` are frames to the launcher (see [`crate::host_protocol`]). The message
//! registers are this process's own array, as the IPC buffer is on seL4.

use std::os::unix::net::UnixStream;
use std::sync::{Mutex, OnceLock};

use crate::host_protocol::{read_frame, write_frame, FromPd, Message, ToPd, MAX_REGISTERS};
use crate::{Channel, ChannelSet, Child, Handler, MessageInfo};

static CONNECTION: OnceLock<Mutex<UnixStream>> = OnceLock::new();

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

/// Ends the process when the launcher is gone or misbehaves: without it there is no system.
fn fatal(error: &HostError) -> ! {
    eprintln!("{error}");
    std::process::exit(70)
}

fn load_registers(message: &Message) -> MessageInfo {
    REGISTERS.with_borrow_mut(|registers| {
        for (slot, value) in registers.iter_mut().zip(&message.registers) {
            *slot = *value;
        }
    });
    MessageInfo::new(message.label, message.registers.len() as u8)
}

fn store_registers(info: MessageInfo) -> Message {
    let count = usize::from(info.count()).min(MAX_REGISTERS);
    let registers =
        REGISTERS.with_borrow(|registers| registers.iter().take(count).copied().collect());
    Message {
        label: info.label(),
        registers,
    }
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
    if let Err(error) = send(&FromPd::Notify(channel.index())) {
        fatal(&error);
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
    match send(&FromPd::Stop(child.index())).and_then(|()| receive()) {
        Ok(ToPd::RegisterValue(_)) => {}
        Ok(_) => fatal(&HostError::Protocol),
        Err(error) => fatal(&error),
    }
}

/// A device register load: the launcher's model of the device answers. An address outside
/// this PD's device maps is a VM fault, as on seL4: the launcher ends the process.
pub(crate) fn register_read(address: u64, width: warden_registers::Width) -> u32 {
    let access = FromPd::RegisterRead {
        address,
        width: width.bytes() as u8,
    };
    match send(&access).and_then(|()| receive()) {
        Ok(ToPd::RegisterValue(value)) => value,
        Ok(_) => fatal(&HostError::Protocol),
        Err(error) => fatal(&error),
    }
}

/// A device register store; returns once the model has acted on it, so accesses stay in
/// program order with everything else the PD does.
pub(crate) fn register_write(address: u64, width: warden_registers::Width, value: u32) {
    let access = FromPd::RegisterWrite {
        address,
        width: width.bytes() as u8,
        value,
    };
    match send(&access).and_then(|()| receive()) {
        Ok(ToPd::RegisterValue(_)) => {}
        Ok(_) => fatal(&HostError::Protocol),
        Err(error) => fatal(&error),
    }
}

pub(crate) fn pp_call(channel: Channel, info: MessageInfo) -> MessageInfo {
    let call = FromPd::Call(channel.index(), store_registers(info));
    let reply = send(&call).and_then(|()| receive());
    match reply {
        Ok(ToPd::CallReturn(message)) => load_registers(&message),
        Ok(_) => fatal(&HostError::Protocol),
        Err(error) => fatal(&error),
    }
}

/// Runs a PD on the host platform: connects to the launcher, runs `init` when told, then serves
/// entry points until the launcher goes away. A handler error ends the process, which the
/// launcher reports as a fault (to the parent, if there is one).
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
    crate::mapping::map_regions().map_err(HostError::Mapping)?;
    let stream = UnixStream::connect(socket).map_err(HostError::Io)?;
    let _ = CONNECTION.set(Mutex::new(stream));
    send(&FromPd::Hello { pd, incarnation })?;
    match receive()? {
        ToPd::Init => {}
        _ => return Err(HostError::Protocol),
    }
    let mut handler = init();
    send(&FromPd::EntryDone { reply: None })?;
    loop {
        let entry = match receive() {
            Ok(entry) => entry,
            // The launcher closed the connection: the system is shutting down.
            Err(HostError::Io(_)) => return Ok(()),
            Err(error) => fatal(&error),
        };
        let reply = match entry {
            ToPd::Notified(bits) => handler.notified(ChannelSet::from_bits(bits)).map(|()| None),
            ToPd::Protected(channel, message) => {
                let info = load_registers(&message);
                match Channel::try_new(channel) {
                    Some(channel) => handler
                        .protected(channel, info)
                        .map(|reply| Some(store_registers(reply))),
                    None => fatal(&HostError::Protocol),
                }
            }
            ToPd::Fault(child, label) => handler
                .fault(Child::new(child), MessageInfo::new(label, 0))
                .map(|resume| resume.map(store_registers)),
            ToPd::Inject(code) => match crate::InjectedFault::from_code(code) {
                Some(fault) => handler.inject(fault).map(|()| None),
                None => fatal(&HostError::Protocol),
            },
            ToPd::Init | ToPd::CallReturn(_) | ToPd::RegisterValue(_) => {
                fatal(&HostError::Protocol)
            }
        };
        match reply {
            Ok(reply) => send(&FromPd::EntryDone { reply })?,
            Err(error) => {
                eprintln!("entry point failed: {error}");
                std::process::exit(1);
            }
        }
    }
}
