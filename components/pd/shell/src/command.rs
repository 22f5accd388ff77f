//! The shell's commands: parsing a line, and running a command over [`Services`] (the calls
//! the PD makes), writing what it prints into a `String`. Nothing here touches the kernel, so
//! the tests run it against a fake manager and fake drivers.
//!
//! Every reply is untrusted: a reply of the wrong kind is reported, never trusted, and the
//! tree walk is bounded.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use warden_protocol::{EventKind, FailureKind, PdPhase, PowerTarget, Status};
use warden_services::admin::{self, Device, Event, Submitted};
use warden_services::call::{CallError, Caller};
use warden_services::clock::civil_time;
use warden_services::entropy::{self, MAX_ENTROPY_BYTES};
use warden_services::ReplyError;
use warden_vocabulary::{DeviceId, DeviceState, DriverId, PdId};

/// The calls a command makes: into the device manager (it is a [`Caller`]: the manager's admin
/// calls), and to the clock and entropy drivers.
pub trait Services: Caller {
    /// Seconds since the Unix epoch, from the clock driver.
    ///
    /// # Errors
    /// [`ReplyError`].
    fn time(&mut self) -> Result<u64, ReplyError>;
    /// Up to [`MAX_ENTROPY_BYTES`] random bytes from the entropy driver.
    ///
    /// # Errors
    /// [`ReplyError`].
    fn entropy(&mut self, bytes: usize) -> Result<entropy::Bytes, ReplyError>;
}

/// The manager's admin calls, through `services`.
fn manager(services: &mut dyn Services) -> admin::Client<&mut dyn Services> {
    admin::Client(services)
}

/// A device named on the command line: `INDEX` (whatever generation lives there) or
/// `INDEX:GENERATION`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceName {
    /// The slot.
    pub index: u32,
    /// The generation, if given.
    pub generation: Option<u32>,
}

/// What a line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Nothing (an empty line).
    Nothing,
    /// The commands.
    Help,
    /// The device tree with its bindings.
    Tree,
    /// The device tree as Graphviz DOT.
    TreeDot,
    /// One device in full.
    Device(DeviceName),
    /// The time from the clock driver.
    Time,
    /// Random bytes from the entropy driver.
    Random(usize),
    /// Unbind a device from its driver.
    Unbind(DeviceName),
    /// Bind a device to a driver (a driver handle).
    Bind(DeviceName, DriverId),
    /// Probe again every unbound device that was not unbound by hand.
    Rescan,
    /// A driver PD's supervision.
    Pd(u32),
    /// Restart a quarantined driver PD.
    Retry(u32),
    /// Suspend a device and its subtree (children first), or the whole system (`None`).
    Suspend(Option<DeviceName>),
    /// Resume a device and its subtree (parents first), or the whole system (`None`).
    Resume(Option<DeviceName>),
    /// Remove a device and its subtree (children first).
    Remove(DeviceName),
    /// Shut the whole system down (children first).
    Shutdown,
    /// The manager's counters.
    Stats,
    /// The last N records of the manager's trace ring.
    Trace(usize),
    /// Print events as they come, the next N or until a line is typed.
    Events(Option<u32>),
}

/// Why a line is not a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not a command the shell knows.
    Unknown(String),
    /// A known command with wrong arguments: its usage.
    Usage(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(word) => write!(f, "unknown command '{word}' (try 'help')"),
            Self::Usage(usage) => write!(f, "usage: {usage}"),
        }
    }
}

const HELP: &str = "\
commands:
  help              this list
  tree [--dot]      the device tree with its bindings (from the device manager); --dot
                    as Graphviz DOT (bound green, unbound grey, waiting for its PD orange)
  device DEV        one device: compatible strings, resources, parent, driver
  time              the time from the real-time clock driver
  random [N]        N random bytes (1-32, default 16) from the entropy driver
  unbind DEV        unbind a device from its driver; it stays unbound until 'bind'
  bind DEV DRIVER   bind a device to a driver
  rescan            probe again every unbound device that was not unbound by hand
  pd N              driver PD N's supervision: running, restarting or quarantined, failures
  retry N           restart driver PD N now (one that is quarantined, or waiting to restart)
  suspend DEV|all   suspend a device and its subtree (children first), or the whole system
  resume DEV|all    resume a device and its subtree (parents first), or the whole system
  remove DEV        remove a device and its subtree (children first, each driver's remove)
  shutdown          shut the whole system down (children first)
  events [N]        print the manager's events as they come (the next N; a line typed stops)
  stats             the manager's counters: probes, walk restarts, callbacks, events lost
  trace [N]         the last N (default 16) records of the manager's trace ring
The requests (unbind, bind, rescan, suspend, resume, remove, shutdown) wait for their outcome.
DEV is INDEX or INDEX:GENERATION, as 'tree' shows it; DRIVER is INDEX:GENERATION, as
'device' shows it; N is a driver PD's number, as 'device' shows it.
";

/// Parses one line.
///
/// # Errors
/// [`ParseError`].
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let mut words = line.split_whitespace();
    let Some(name) = words.next() else {
        return Ok(Command::Nothing);
    };
    let arguments: Vec<&str> = words.collect();
    let device = |usage| match arguments.as_slice() {
        [word] => device_name(word).ok_or(ParseError::Usage(usage)),
        _ => Err(ParseError::Usage(usage)),
    };
    let none = |command, usage| {
        if arguments.is_empty() {
            Ok(command)
        } else {
            Err(ParseError::Usage(usage))
        }
    };
    // An optional count from 1 to `max` (`default` without one).
    let counted = |default: Option<usize>, max: usize, usage| match arguments.as_slice() {
        [] => Ok(default),
        [word] => match word.parse::<usize>() {
            Ok(count @ 1..) if count <= max => Ok(Some(count)),
            _ => Err(ParseError::Usage(usage)),
        },
        _ => Err(ParseError::Usage(usage)),
    };
    match name {
        "help" | "?" => none(Command::Help, "help"),
        "tree" => match arguments.as_slice() {
            [] => Ok(Command::Tree),
            ["--dot"] => Ok(Command::TreeDot),
            _ => Err(ParseError::Usage("tree [--dot]")),
        },
        "time" => none(Command::Time, "time"),
        "rescan" => none(Command::Rescan, "rescan"),
        "shutdown" => none(Command::Shutdown, "shutdown"),
        "stats" => none(Command::Stats, "stats"),
        "trace" => counted(Some(16), MAX_TRACE, "trace [N], N from 1 to 64")
            .map(|count| Command::Trace(count.unwrap_or(16))),
        "events" => counted(None, u32::MAX as usize, "events [N], N at least 1")
            .map(|count| Command::Events(count.and_then(|count| u32::try_from(count).ok()))),
        "device" => device("device INDEX[:GENERATION]").map(Command::Device),
        "unbind" => device("unbind INDEX[:GENERATION]").map(Command::Unbind),
        "remove" => device("remove INDEX[:GENERATION]").map(Command::Remove),
        "suspend" | "resume" => {
            let usage = if name == "suspend" {
                "suspend INDEX[:GENERATION] | all"
            } else {
                "resume INDEX[:GENERATION] | all"
            };
            let target = match arguments.as_slice() {
                ["all"] => None,
                [name] => Some(device_name(name).ok_or(ParseError::Usage(usage))?),
                _ => return Err(ParseError::Usage(usage)),
            };
            Ok(if name == "suspend" {
                Command::Suspend(target)
            } else {
                Command::Resume(target)
            })
        }
        "bind" => {
            const USAGE: &str = "bind INDEX[:GENERATION] DRIVER-INDEX:DRIVER-GENERATION";
            match arguments.as_slice() {
                [device, driver] => {
                    let device = device_name(device).ok_or(ParseError::Usage(USAGE))?;
                    match device_name(driver) {
                        Some(DeviceName {
                            index,
                            generation: Some(generation),
                        }) => Ok(Command::Bind(
                            device,
                            DriverId::from_parts(index, generation),
                        )),
                        _ => Err(ParseError::Usage(USAGE)),
                    }
                }
                _ => Err(ParseError::Usage(USAGE)),
            }
        }
        "pd" | "retry" => {
            let usage = if name == "pd" { "pd N" } else { "retry N" };
            match arguments.as_slice() {
                [number] => number
                    .parse::<u32>()
                    .map(|pd| {
                        if name == "pd" {
                            Command::Pd(pd)
                        } else {
                            Command::Retry(pd)
                        }
                    })
                    .map_err(|_| ParseError::Usage(usage)),
                _ => Err(ParseError::Usage(usage)),
            }
        }
        "random" => counted(Some(16), MAX_ENTROPY_BYTES, "random [N], N from 1 to 32")
            .map(|count| Command::Random(count.unwrap_or(16))),
        other => Err(ParseError::Unknown(String::from(other))),
    }
}

fn device_name(word: &str) -> Option<DeviceName> {
    let (index, generation) = match word.split_once(':') {
        Some((index, generation)) => (index, Some(generation.parse().ok()?)),
        None => (word, None),
    };
    Some(DeviceName {
        index: index.parse().ok()?,
        generation,
    })
}

/// The most devices a tree walk takes (the manager's core holds 96).
pub const MAX_WALK: usize = 256;
/// The deepest indentation `tree` prints (deeper devices are shown at this depth), so that a
/// hostile manager's chain of parents cannot make the output grow with the square of its length.
pub const MAX_DEPTH: usize = 16;

/// Runs `command`, writing what it prints to `out` (lines end in `\n`); what it leaves the shell
/// waiting for, if anything.
pub fn run(command: Command, services: &mut dyn Services, out: &mut String) -> Option<Wait> {
    let waits = match command {
        Command::Unbind(name) => Some(device_request(
            services,
            name,
            ("unbind", "Unbind", |client, device| client.unbind(device)),
            out,
        )),
        Command::Bind(name, driver) => Some(bind(services, name, driver, out)),
        Command::Rescan => Some(rescan(services, out)),
        Command::Suspend(name) => Some(power(services, name, true, out)),
        Command::Resume(name) => Some(power(services, name, false, out)),
        Command::Remove(name) => Some(device_request(
            services,
            name,
            ("remove", "RemoveDevice", |client, device| {
                client.remove(device)
            }),
            out,
        )),
        Command::Shutdown => Some(shutdown(services, out)),
        Command::Events(count) => Some(events(services, count, out)),
        _ => None,
    };
    if let Some(result) = waits {
        return result.unwrap_or_else(|error| {
            let _ = writeln!(out, "error: {error}");
            None
        });
    }
    let result = match command {
        Command::Nothing => Ok(()),
        Command::Help => {
            out.push_str(HELP);
            Ok(())
        }
        Command::Tree => tree(services, out),
        Command::TreeDot => tree_dot(services, out),
        Command::Device(name) => show_device(services, name, out),
        Command::Time => time(services, out),
        Command::Random(count) => random(services, count, out),
        Command::Pd(pd) => show_pd(services, pd, out),
        Command::Stats => stats(services, out),
        Command::Trace(count) => trace(services, count, out),
        Command::Retry(pd) => retry(services, pd, out),
        Command::Unbind(_)
        | Command::Bind(..)
        | Command::Rescan
        | Command::Suspend(_)
        | Command::Resume(_)
        | Command::Remove(_)
        | Command::Shutdown
        | Command::Events(_) => Ok(()),
    };
    if let Err(error) = result {
        let _ = writeln!(out, "error: {error}");
    }
    None
}

/// Why a command failed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Failure {
    Call(CallError),
    Refused(Status),
    Unexpected(&'static str),
    NoDevice(DeviceName),
    NotReady(&'static str),
    Absent(&'static str),
    AlreadyBound(String),
    NoPd(u32),
    NotStopped(u32),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Call(CallError::Encode) => write!(f, "the call cannot be made"),
            Self::Call(CallError::Malformed) => write!(f, "the manager's reply is malformed"),
            Self::Refused(status) => write!(f, "the manager refused: {status:?}"),
            Self::Unexpected(what) => write!(f, "unexpected reply to {what}"),
            Self::NoDevice(name) => match name.generation {
                Some(generation) => write!(f, "no device {}:{generation}", name.index),
                None => write!(f, "no device {}", name.index),
            },
            Self::NotReady(what) => write!(f, "no {what} is bound yet"),
            Self::Absent(what) => write!(f, "this system gives the shell no {what}"),
            Self::AlreadyBound(driver) => write!(
                f,
                "the device is already bound to {driver}; 'unbind' it first"
            ),
            Self::NoPd(pd) => write!(f, "no driver PD {pd} is supervised"),
            Self::NotStopped(pd) => {
                write!(f, "driver PD {pd} is running: there is nothing to retry")
            }
        }
    }
}

impl Failure {
    /// What a failed admin call about `what` says.
    fn of(error: admin::Error, what: &'static str) -> Self {
        match error {
            admin::Error::Call(error) => Self::Call(error),
            admin::Error::Refused(status) => Self::Refused(status),
            admin::Error::Unexpected => Self::Unexpected(what),
        }
    }
}

/// Every device, in index order, one `QueryTree` call each.
///
/// The manager answers each call from its state at that moment and may handle other events
/// between two calls, so the walk is not one snapshot: a device added behind the cursor is
/// missed, one removed after it was read is still listed, and a child whose parent went away
/// is shown as a root. Each device is reported at most once (the cursor only moves forward).
fn walk(services: &mut dyn Services) -> Result<Vec<Device>, Failure> {
    let mut devices = Vec::new();
    let mut cursor = 0u64;
    while devices.len() < MAX_WALK {
        match manager(services).next_device(cursor) {
            Ok(None) => return Ok(devices),
            Ok(Some(device)) => {
                if u64::from(device.id.index()) < cursor {
                    return Err(Failure::Unexpected("QueryTree (the cursor went back)"));
                }
                cursor = u64::from(device.id.index()) + 1;
                devices.push(device);
            }
            Err(error) => return Err(Failure::of(error, "QueryTree")),
        }
    }
    Ok(devices)
}

/// A driver's name (and PD), or a placeholder if the manager no longer knows it.
fn driver_label(services: &mut dyn Services, driver: DriverId) -> String {
    match manager(services).driver(driver) {
        Ok(info) => alloc::format!("{} (driver {driver}, PD {})", info.name, info.pd.0),
        Err(_) => alloc::format!("driver {driver} (gone)"),
    }
}

fn driver_name(services: &mut dyn Services, driver: DriverId) -> String {
    match manager(services).driver(driver) {
        Ok(info) => String::from(info.name.as_str()),
        Err(_) => alloc::format!("driver {driver}"),
    }
}

/// The most specific compatible string of a device; `(disabled)` for one without (the board's
/// disabled nodes have no match data, so that no driver matches them).
fn compatible(device: &Device) -> &str {
    device.match_data.first_compatible().unwrap_or("(disabled)")
}

/// Every device ([`walk`]) and the name of each driver they are bound to, one call each.
fn walk_with_drivers(
    services: &mut dyn Services,
) -> Result<(Vec<Device>, BTreeMap<DriverId, String>), Failure> {
    let devices = walk(services)?;
    let mut names: BTreeMap<DriverId, String> = BTreeMap::new();
    for driver in devices.iter().filter_map(|device| device.driver) {
        names
            .entry(driver)
            .or_insert_with(|| driver_name(services, driver));
    }
    Ok((devices, names))
}

fn tree(services: &mut dyn Services, out: &mut String) -> Result<(), Failure> {
    let (devices, names) = walk_with_drivers(services)?;
    let bound = devices
        .iter()
        .filter(|device| device.driver.is_some())
        .count();
    let _ = writeln!(out, "device tree: {} devices, {bound} bound", devices.len());
    let present = |id: &DeviceId| devices.iter().any(|device| device.id == *id);
    // Depth-first from the roots, children in index order; an explicit stack, so a hostile
    // reply cannot make the recursion deep.
    let mut stack: Vec<(usize, usize)> = devices
        .iter()
        .enumerate()
        .filter(|(_, device)| !device.parent.as_ref().is_some_and(present))
        .map(|(position, _)| (position, 1))
        .rev()
        .collect();
    let mut printed = alloc::vec![false; devices.len()];
    while let Some((position, depth)) = stack.pop() {
        let (Some(device), Some(done)) = (devices.get(position), printed.get_mut(position)) else {
            continue;
        };
        if core::mem::replace(done, true) {
            continue;
        }
        let driver = match (device.driver, device.last_pd) {
            (Some(driver), _) => names.get(&driver).cloned().unwrap_or_default(),
            (None, Some(pd)) => alloc::format!("(unbound; {})", pd_state(services, pd.0)),
            (None, None) => String::from("(unbound)"),
        };
        let _ = write!(
            out,
            "{:indent$}{} {}",
            "",
            device.id,
            compatible(device),
            indent = depth.min(MAX_DEPTH) * 2
        );
        if let Some(window) = device.resources.mmio.first() {
            let _ = write!(out, " @0x{:x}", window.base);
        }
        if let Some(address) = device.resources.address {
            let _ = write!(out, " at 0x{address:x}");
        }
        if let Some(irq) = device.resources.irqs.first() {
            let _ = write!(out, " irq {irq}");
        }
        let _ = writeln!(out, " -> {driver}");
        let children = devices
            .iter()
            .enumerate()
            .filter(|(_, child)| child.parent == Some(device.id))
            .map(|(child, _)| (child, depth + 1))
            .rev();
        stack.extend(children);
    }
    Ok(())
}

/// `text` inside a DOT string: quotes and backslashes escaped, anything outside printable
/// ASCII dropped (the names come from the manager, and through it from the board and drivers).
fn dot_escaped(text: &str) -> String {
    let mut escaped = String::new();
    for c in text
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
    {
        if c == '"' || c == '\\' {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The device tree as Graphviz DOT (`tree --dot`): a node per device (its handle, compatible,
/// first window and INTID, and its driver), an edge from each parent to its children, the
/// state by colour — bound green, unbound grey, waiting for its driver PD (restarting or
/// quarantined) orange, disabled white. `dot -Tsvg` renders it.
fn tree_dot(services: &mut dyn Services, out: &mut String) -> Result<(), Failure> {
    let (devices, names) = walk_with_drivers(services)?;
    out.push_str("digraph warden {\n");
    out.push_str("  rankdir=LR;\n");
    out.push_str("  node [shape=box, style=\"rounded,filled\", fontname=\"monospace\"];\n");
    for device in &devices {
        let (colour, driver) = match (device.driver, device.last_pd) {
            (Some(driver), _) => ("palegreen", names.get(&driver).cloned().unwrap_or_default()),
            (None, Some(pd)) => ("orange", pd_state(services, pd.0)),
            (None, None) if device.match_data.first_compatible().is_none() => {
                ("white", String::from("disabled"))
            }
            (None, None) => ("lightgrey", String::from("unbound")),
        };
        // Lines of the label, each escaped on its own, joined by DOT's `\n`.
        let mut lines = alloc::vec![alloc::format!("{} {}", device.id, compatible(device))];
        let mut place = String::new();
        if let Some(window) = device.resources.mmio.first() {
            let _ = write!(place, "@0x{:x}", window.base);
        }
        if let Some(irq) = device.resources.irqs.first() {
            let _ = write!(
                place,
                "{}irq {irq}",
                if place.is_empty() { "" } else { " " }
            );
        }
        if !place.is_empty() {
            lines.push(place);
        }
        lines.push(driver);
        let label: Vec<String> = lines.iter().map(|line| dot_escaped(line)).collect();
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\", fillcolor={colour}];",
            device.id,
            label.join("\\n")
        );
    }
    let present = |id: &DeviceId| devices.iter().any(|device| device.id == *id);
    for device in &devices {
        if let Some(parent) = device.parent.filter(present) {
            let _ = writeln!(out, "  \"{parent}\" -> \"{}\";", device.id);
        }
    }
    out.push_str("}\n");
    Ok(())
}

/// The device a name means: with a generation, that handle; without, whatever lives at the
/// index.
fn find(services: &mut dyn Services, name: DeviceName) -> Result<Device, Failure> {
    let reply = match name.generation {
        Some(generation) => manager(services)
            .device(DeviceId::from_parts(name.index, generation))
            .map(Some),
        None => manager(services).next_device(u64::from(name.index)),
    };
    match reply {
        Ok(Some(device)) if device.id.index() == name.index => Ok(device),
        Ok(_) | Err(admin::Error::Refused(Status::NoSuchObject | Status::StaleHandle)) => {
            Err(Failure::NoDevice(name))
        }
        Err(error) => Err(Failure::of(error, "QueryDevice")),
    }
}

fn show_device(
    services: &mut dyn Services,
    name: DeviceName,
    out: &mut String,
) -> Result<(), Failure> {
    let device = find(services, name)?;
    let _ = writeln!(out, "device {}", device.id);
    let names: Vec<&str> = device
        .match_data
        .compatible
        .iter()
        .map(|name| name.as_str())
        .collect();
    let _ = writeln!(out, "  compatible: {}", names.join(", "));
    if let Some(bus_id) = device.match_data.bus_id {
        let _ = writeln!(out, "  bus id:     {bus_id}");
    }
    for window in &device.resources.mmio {
        let _ = writeln!(
            out,
            "  mmio:       0x{:x}-0x{:x}",
            window.base,
            window.base.saturating_add(window.size.saturating_sub(1))
        );
    }
    for irq in &device.resources.irqs {
        let _ = writeln!(out, "  irq:        {irq}");
    }
    if let Some(address) = device.resources.address {
        let _ = writeln!(out, "  address:    0x{address:x} (on its bus)");
    }
    if let Some(parent) = device.parent {
        let _ = writeln!(out, "  parent:     {parent}");
    }
    let state = match device.state {
        DeviceState::Active => "active",
        DeviceState::Suspended => "suspended",
        DeviceState::ShutDown => "shut down",
    };
    let _ = writeln!(out, "  state:      {state}");
    let driver = match (device.driver, device.last_pd) {
        (Some(driver), _) => driver_label(services, driver),
        (None, Some(pd)) => alloc::format!(
            "(unbound; its driver's {}: 'pd {}')",
            pd_state(services, pd.0),
            pd.0
        ),
        (None, None) => String::from("(unbound)"),
    };
    let _ = writeln!(out, "  driver:     {driver}");
    Ok(())
}

/// A few words on a driver PD's state ("PD 4 quarantined"), or just its number.
fn pd_state(services: &mut dyn Services, pd: u32) -> String {
    match manager(services).pd(PdId(pd)) {
        Ok(status) => alloc::format!("PD {pd} {}", phase(&status)),
        Err(_) => alloc::format!("PD {pd}"),
    }
}

fn phase(status: &admin::Supervised) -> String {
    match status.phase {
        PdPhase::Starting => String::from("starting"),
        PdPhase::Running => String::from("running"),
        PdPhase::Waiting => alloc::format!("restarting in {} ms", status.restart_in_ms),
        PdPhase::Quarantined => alloc::format!(
            "quarantined after {} failures in a row",
            status.consecutive_failures
        ),
    }
}

fn show_pd(services: &mut dyn Services, pd: u32, out: &mut String) -> Result<(), Failure> {
    let status = match manager(services).pd(PdId(pd)) {
        Ok(status) => status,
        Err(admin::Error::Refused(Status::NoSuchObject)) => return Err(Failure::NoPd(pd)),
        Err(error) => return Err(Failure::of(error, "QueryPd")),
    };
    let _ = writeln!(out, "driver PD {pd}: {}", phase(&status));
    let _ = writeln!(
        out,
        "  failures:   {} ({} in a row), {} restarts",
        status.failures, status.consecutive_failures, status.restarts
    );
    let last = match status.last_failure {
        FailureKind::None => String::from("none"),
        FailureKind::Fault => alloc::format!("a fault (label {})", status.failure_detail),
        FailureKind::Overdue => String::from("a callback past its deadline"),
        FailureKind::Silent => String::from("a heartbeat not answered"),
        FailureKind::NeverRegistered => String::from("no registration after its start"),
        FailureKind::Stopped => String::from("a broken ring"),
    };
    let _ = writeln!(out, "  last:       {last}");
    if status.phase == PdPhase::Quarantined {
        let _ = writeln!(out, "  'retry {pd}' restarts it");
    }
    Ok(())
}

fn retry(services: &mut dyn Services, pd: u32, out: &mut String) -> Result<(), Failure> {
    match manager(services).retry(PdId(pd)) {
        Ok(()) => {
            let _ = writeln!(out, "driver PD {pd} restarted; 'pd {pd}' shows how it goes");
            Ok(())
        }
        Err(admin::Error::Refused(Status::NoSuchObject)) => Err(Failure::NoPd(pd)),
        Err(admin::Error::Refused(Status::Busy)) => Err(Failure::NotStopped(pd)),
        Err(error) => Err(Failure::of(error, "RetryPd")),
    }
}

/// The most trace records `trace` prints (the manager's ring holds 64).
pub const MAX_TRACE: usize = 64;

fn trace(services: &mut dyn Services, count: usize, out: &mut String) -> Result<(), Failure> {
    let mut records = Vec::new();
    let mut cursor = 0u64;
    // Bounded whatever the manager answers.
    while records.len() < MAX_WALK {
        match manager(services).trace_record(cursor) {
            Ok(None) => break,
            Ok(Some(record)) => {
                if record.sequence < cursor {
                    return Err(Failure::Unexpected("QueryTrace (the cursor went back)"));
                }
                cursor = record.sequence.saturating_add(1);
                records.push(record);
            }
            Err(error) => return Err(Failure::of(error, "QueryTrace")),
        }
    }
    let shown = records.len().saturating_sub(count);
    let (Some(first), Some(last)) = (records.get(shown), records.last()) else {
        out.push_str("trace: the manager's trace ring is empty\n");
        return Ok(());
    };
    let _ = writeln!(
        out,
        "trace: the manager's last {} of {} records (sequence {} to {}):",
        records.len() - shown,
        records.len(),
        first.sequence,
        last.sequence
    );
    for record in records.get(shown..).unwrap_or_default() {
        trace_line(record, out);
    }
    Ok(())
}

/// One record of the trace ring as a line.
fn trace_line(record: &admin::TraceRecord, out: &mut String) {
    let name = u8::try_from(record.name)
        .ok()
        .and_then(warden_microkit::trace::Name::from_code)
        .map_or("?", warden_microkit::trace::Name::text);
    let _ = write!(
        out,
        "  {:>4}.{:06} s  {} {name} {}",
        record.at_ns / 1_000_000_000,
        record.at_ns % 1_000_000_000 / 1000,
        if record.begin == 1 { "begin" } else { "end  " },
        record.id
    );
    if record.pd != 0 {
        let _ = write!(out, " on PD {}", record.pd);
    }
    if record.begin == 1 {
        let mut details = Vec::new();
        if let Some(device) = record.device {
            details.push(alloc::format!("device {device}"));
        }
        if let Some(driver) = record.driver {
            details.push(alloc::format!("driver {driver}"));
        }
        if record.request > 0 {
            details.push(alloc::format!("request {}", record.request - 1));
        }
        if !details.is_empty() {
            let _ = write!(out, ": {}", details.join(", "));
        }
        out.push('\n');
    } else {
        let status = u16::try_from(record.status)
            .ok()
            .and_then(|code| Status::from_code(code).ok());
        let _ = match status {
            Some(status) => writeln!(out, ": {status:?}"),
            None => writeln!(out, ": status {}", record.status),
        };
    }
}

fn stats(services: &mut dyn Services, out: &mut String) -> Result<(), Failure> {
    let stats = manager(services)
        .stats()
        .map_err(|error| Failure::of(error, "QueryStats"))?;
    let _ = writeln!(
        out,
        "manager: {} events, {} probes, {} binds, {} walk restarts ({} pairs skipped), {} callbacks ({} in flight, at most {}), {} deferred, {} requests completed",
        stats.events,
        stats.probes,
        stats.binds,
        stats.walk_restarts,
        stats.pairs_skipped,
        stats.callbacks,
        stats.in_flight,
        stats.max_in_flight,
        stats.deferred,
        stats.completions
    );
    let _ = writeln!(
        out,
        "supervision: {} restarts, {} driver PDs quarantined",
        stats.restarts, stats.quarantined
    );
    let _ = writeln!(
        out,
        "events: {} queued for clients, {} lost",
        stats.events_queued, stats.events_lost
    );
    Ok(())
}

fn time(services: &mut dyn Services, out: &mut String) -> Result<(), Failure> {
    match services.time() {
        Ok(seconds) => {
            let _ = writeln!(
                out,
                "{} ({seconds} s since 1970, from the real-time clock)",
                civil_time(seconds)
            );
            Ok(())
        }
        Err(ReplyError::NotReady) => Err(Failure::NotReady("clock")),
        Err(ReplyError::Refused) => Err(Failure::Absent("clock")),
        Err(ReplyError::Malformed) => Err(Failure::Unexpected("the time call")),
    }
}

fn random(services: &mut dyn Services, count: usize, out: &mut String) -> Result<(), Failure> {
    match services.entropy(count) {
        Ok(bytes) => {
            let _ = write!(out, "{} random bytes: ", bytes.len());
            for byte in &bytes {
                let _ = write!(out, "{byte:02x}");
            }
            out.push('\n');
            Ok(())
        }
        Err(ReplyError::NotReady) => Err(Failure::NotReady("entropy source")),
        Err(ReplyError::Refused) => Err(Failure::Absent("entropy source")),
        Err(ReplyError::Malformed) => Err(Failure::Unexpected("the entropy call")),
    }
}

/// What a command leaves the shell waiting for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wait {
    /// The completion of the client's request `request` (what it is, for the outcome's line).
    Completion {
        /// The number the manager accepted it as.
        request: u32,
        /// What it asked, as the shell printed it (`unbind 34:0 (virtio,mmio)`).
        what: String,
    },
    /// Events, printed as they come, until a line is typed or `left` more have come.
    Events {
        /// Events still to print.
        left: u32,
    },
}

/// The manager's answer to a request: accepted (the shell waits for its completion), or done
/// at once.
fn submitted(
    answer: Result<Submitted, admin::Error>,
    what: String,
    call: &'static str,
    out: &mut String,
) -> Result<Option<Wait>, Failure> {
    match answer.map_err(|error| Failure::of(error, call))? {
        Submitted::Accepted(request) => {
            let _ = writeln!(out, "{what} accepted (request {request})");
            Ok(Some(Wait::Completion { request, what }))
        }
        Submitted::Done => {
            let _ = writeln!(out, "{what}: done");
            Ok(None)
        }
    }
}

/// A device as a request's line names it: `34:0 (virtio,mmio)`.
fn named(device: &Device) -> String {
    alloc::format!(
        "{} ({})",
        device.id,
        device.match_data.first_compatible().unwrap_or("")
    )
}

/// The manager's request about one device, and its line: `unbind` or `remove`.
type DeviceRequest =
    fn(&mut admin::Client<&mut dyn Services>, DeviceId) -> Result<Submitted, admin::Error>;

fn device_request(
    services: &mut dyn Services,
    name: DeviceName,
    (verb, call, request): (&str, &'static str, DeviceRequest),
    out: &mut String,
) -> Result<Option<Wait>, Failure> {
    let device = find(services, name)?;
    let answer = request(&mut manager(services), device.id);
    submitted(
        answer,
        alloc::format!("{verb} {}", named(&device)),
        call,
        out,
    )
}

fn power(
    services: &mut dyn Services,
    name: Option<DeviceName>,
    suspend: bool,
    out: &mut String,
) -> Result<Option<Wait>, Failure> {
    let verb = if suspend { "suspend" } else { "resume" };
    let (target, what) = match name {
        None => (PowerTarget::All, String::from("all")),
        Some(name) => {
            let device = find(services, name)?;
            (PowerTarget::Device(device.id), named(&device))
        }
    };
    let mut client = manager(services);
    let (answer, call) = if suspend {
        (client.suspend(target), "SuspendDevice")
    } else {
        (client.resume(target), "ResumeDevice")
    };
    submitted(answer, alloc::format!("{verb} {what}"), call, out)
}

fn shutdown(services: &mut dyn Services, out: &mut String) -> Result<Option<Wait>, Failure> {
    let answer = manager(services).shutdown();
    submitted(answer, String::from("shutdown"), "ShutdownSystem", out)
}

fn bind(
    services: &mut dyn Services,
    name: DeviceName,
    driver: DriverId,
    out: &mut String,
) -> Result<Option<Wait>, Failure> {
    let device = find(services, name)?;
    let answer = manager(services).bind(device.id, driver);
    if answer == Err(admin::Error::Refused(Status::Busy)) {
        // Busy is what the manager says of a bound device: say so, and to which driver.
        if let Some(bound) = find(services, name)?.driver {
            return Err(Failure::AlreadyBound(driver_label(services, bound)));
        }
    }
    submitted(
        answer,
        alloc::format!("bind {} to driver {driver}", named(&device)),
        "Bind",
        out,
    )
}

fn rescan(services: &mut dyn Services, out: &mut String) -> Result<Option<Wait>, Failure> {
    let answer = manager(services).rescan();
    submitted(answer, String::from("rescan"), "Rescan", out)
}

fn events(
    services: &mut dyn Services,
    count: Option<u32>,
    out: &mut String,
) -> Result<Option<Wait>, Failure> {
    manager(services)
        .subscribe(EventKind::MASK)
        .map_err(|error| Failure::of(error, "Subscribe"))?;
    match count {
        Some(count) => {
            let _ = writeln!(out, "events: the next {count} (a line typed stops them)");
        }
        None => out.push_str("events: as they come (a line typed stops them)\n"),
    }
    Ok(Some(Wait::Events {
        left: count.unwrap_or(u32::MAX),
    }))
}

/// The line that says what an event is (`event: device 47:1 (virtio,device2) bound to driver
/// 3:0`); the count of events lost before it, if any, on a line of its own before it.
pub fn describe_event(event: &Event, out: &mut String) {
    describe_lost(event, out);
    let device = || match event.device {
        Some(device) => alloc::format!("device {device}"),
        None => String::from("a device"),
    };
    let driver = || match event.driver {
        Some(driver) => alloc::format!("driver {driver}"),
        None => String::from("its driver"),
    };
    let pd = || match event.pd {
        Some(pd) => alloc::format!("driver PD {}", pd.0),
        None => String::from("a driver PD"),
    };
    let _ = match event.kind {
        EventKind::DeviceAdded => writeln!(out, "event: {} added", device()),
        EventKind::DeviceRemoved => writeln!(out, "event: {} removed", device()),
        EventKind::Bound => writeln!(out, "event: {} bound to {}", device(), driver()),
        EventKind::Unbound => writeln!(out, "event: {} unbound from {}", device(), driver()),
        EventKind::Suspended => writeln!(out, "event: {} suspended", device()),
        EventKind::Resumed => writeln!(out, "event: {} resumed", device()),
        EventKind::ShutDown => writeln!(out, "event: {} shut down", device()),
        EventKind::Faulted => writeln!(out, "event: {} failed and was stopped", pd()),
        EventKind::Quarantined => writeln!(out, "event: {} quarantined", pd()),
        EventKind::Completed => {
            let _ = write!(out, "event: request {} ", event.request);
            outcome(event, out);
            Ok(())
        }
    };
}

/// The line that says how many events the manager dropped before `event`, if any.
pub fn describe_lost(event: &Event, out: &mut String) {
    if event.lost > 0 {
        let _ = writeln!(
            out,
            "event: {} events lost (the manager's queue for this shell was full)",
            event.lost
        );
    }
}

/// How a completed request ended, to the end of the line: `done`, or the refusal.
pub fn outcome(event: &Event, out: &mut String) {
    let _ = match (event.status, event.detail) {
        (Status::Ok, _) => writeln!(out, "done"),
        (Status::Failed, code) => writeln!(out, "failed: the driver's code {code}"),
        (Status::NotPermitted, 1) => {
            writeln!(out, "refused: NotPermitted (the system does not grant it)")
        }
        (status, _) => writeln!(out, "refused: {status:?}"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_protocol::Message;
    use warden_vocabulary::{Compatible, MatchData, MmioWindow, Name, Outcome, PdId, Resources};

    fn device(index: u32, generation: u32) -> DeviceId {
        DeviceId::from_parts(index, generation)
    }

    fn driver(index: u32, generation: u32) -> DriverId {
        DriverId::from_parts(index, generation)
    }

    /// (handle, parent, driver, compatible, MMIO address).
    type FakeDevice = (
        DeviceId,
        Option<DeviceId>,
        Option<DriverId>,
        &'static str,
        Option<u64>,
    );

    /// A manager with a small tree: 0 the board's root, 1 a UART bound to driver 0:0 under it,
    /// 3 a transport under 0 bound to driver 1:0, 5 a child of 3 (unbound).
    struct FakeManager {
        devices: Vec<FakeDevice>,
        calls: Vec<Message>,
        clock: Result<u64, ReplyError>,
    }

    impl FakeManager {
        fn new() -> Self {
            Self {
                devices: alloc::vec![
                    (device(0, 0), None, None, "linux,dummy-virt", None),
                    (
                        device(1, 0),
                        Some(device(0, 0)),
                        Some(driver(0, 0)),
                        "arm,pl011",
                        Some(0x900_0000)
                    ),
                    (
                        device(3, 2),
                        Some(device(0, 0)),
                        Some(driver(1, 0)),
                        "virtio,mmio",
                        Some(0xa00_3e00)
                    ),
                    (
                        device(5, 0),
                        Some(device(3, 2)),
                        None,
                        "virtio,device2",
                        None
                    ),
                ],
                calls: Vec::new(),
                clock: Ok(1_795_597_369),
            }
        }

        fn info(&self, position: usize) -> Message {
            let (device, parent, driver, compatible, address) = self.devices[position];
            let mut resources = Resources::default();
            if let Some(address) = address {
                resources
                    .mmio
                    .push(MmioWindow {
                        base: address,
                        size: 0x200,
                    })
                    .unwrap();
                resources.irqs.push(33 + device.index()).unwrap();
            }
            Message::DeviceInfo {
                device,
                parent,
                driver,
                state: DeviceState::Active,
                match_data: MatchData {
                    compatible: [Compatible::try_from(compatible).unwrap()]
                        .into_iter()
                        .collect(),
                    bus_id: None,
                },
                resources,
                // The transport's child lost its driver when driver PD 4 failed.
                last_pd: (device.index() == 5).then_some(PdId(4)),
            }
        }
    }

    fn status(status: Status) -> Message {
        Message::Completion {
            status,
            detail: 0,
            outcome: Outcome::Done,
        }
    }

    impl Caller for FakeManager {
        fn call(&mut self, call: &Message) -> Result<Message, CallError> {
            self.calls.push(call.clone());
            Ok(match call {
                Message::QueryTree { cursor } => {
                    match self
                        .devices
                        .iter()
                        .position(|d| u64::from(d.0.index()) >= *cursor)
                    {
                        Some(position) => self.info(position),
                        None => status(Status::NoSuchObject),
                    }
                }
                Message::QueryDevice { device } => {
                    match self.devices.iter().position(|d| d.0 == *device) {
                        Some(position) => self.info(position),
                        None => status(Status::StaleHandle),
                    }
                }
                Message::QueryDriver { driver } => Message::DriverInfo {
                    driver: *driver,
                    pd: PdId(driver.index() + 1),
                    bound: 1,
                    name: Name::try_from(["pl011-console", "virtio-mmio"][driver.index() as usize])
                        .unwrap(),
                },
                Message::Unbind { device } => {
                    if self.devices.iter().any(|d| d.0 == *device && d.2.is_some()) {
                        Message::Accepted { request: 7 }
                    } else {
                        status(Status::NoMatch)
                    }
                }
                Message::Rescan {} => status(Status::Ok),
                Message::RemoveDevice { .. } => Message::Accepted { request: 8 },
                // The transport's child cannot resume while its parent sleeps (as the manager
                // would say of a suspended parent).
                Message::ResumeDevice {
                    target: PowerTarget::Device(device),
                } if device.index() == 5 => status(Status::ParentSuspended),
                Message::SuspendDevice { .. } | Message::ResumeDevice { .. } => {
                    Message::Accepted { request: 9 }
                }
                Message::ShutdownSystem {} => status(Status::ShutDown),
                Message::Subscribe { .. } => status(Status::Ok),
                Message::QueryTrace { cursor } if *cursor <= 41 => Message::TraceRecord {
                    sequence: (*cursor).max(40),
                    at_ns: 12_345_678_901,
                    begin: u32::from(*cursor <= 40),
                    name: 32,
                    id: 57,
                    pd: 3,
                    device: Some(device(34, 0)),
                    driver: Some(driver(2, 0)),
                    request: 53,
                    status: 2,
                },
                Message::QueryTrace { .. } => status(Status::NoSuchObject),
                Message::QueryStats {} => Message::Stats {
                    events: 120,
                    probes: 40,
                    binds: 30,
                    walk_restarts: 2,
                    pairs_skipped: 5,
                    callbacks: 70,
                    in_flight: 1,
                    max_in_flight: 6,
                    deferred: 0,
                    completions: 50,
                    restarts: 3,
                    quarantined: 1,
                    events_queued: 44,
                    events_lost: 7,
                },
                Message::QueryPd { pd: PdId(4) } => Message::PdInfo {
                    pd: PdId(4),
                    phase: PdPhase::Quarantined,
                    restart_in_ms: 0,
                    consecutive_failures: 5,
                    failures: 7,
                    restarts: 6,
                    last_failure: FailureKind::Fault,
                    failure_detail: 3,
                },
                Message::RetryPd { pd: PdId(4) } => status(Status::Ok),
                Message::QueryPd { .. } | Message::RetryPd { .. } => status(Status::NoSuchObject),
                Message::Bind { device, driver } => {
                    if self.devices.iter().any(|d| d.0 == *device && d.2.is_none())
                        && driver.index() < 2
                    {
                        Message::Accepted { request: 10 }
                    } else {
                        status(Status::Busy)
                    }
                }
                _ => status(Status::NotPermitted),
            })
        }
    }

    impl Services for FakeManager {
        fn time(&mut self) -> Result<u64, ReplyError> {
            self.clock
        }

        fn entropy(&mut self, bytes: usize) -> Result<entropy::Bytes, ReplyError> {
            Ok((0..bytes.min(8))
                .map(|index| (index as u8).wrapping_mul(17))
                .collect())
        }
    }

    fn run_line(manager: &mut FakeManager, line: &str) -> String {
        let mut out = String::new();
        match parse(line) {
            Ok(command) => {
                run(command, manager, &mut out);
            }
            Err(error) => out = alloc::format!("{error}\n"),
        }
        out
    }

    #[test]
    fn lines_parse_into_commands_and_bad_ones_say_why() {
        assert_eq!(parse("  "), Ok(Command::Nothing));
        assert_eq!(parse("tree"), Ok(Command::Tree));
        assert_eq!(parse(" random  8 "), Ok(Command::Random(8)));
        assert_eq!(parse("random"), Ok(Command::Random(16)));
        assert_eq!(
            parse("device 47:3"),
            Ok(Command::Device(DeviceName {
                index: 47,
                generation: Some(3)
            }))
        );
        assert_eq!(
            parse("unbind 47"),
            Ok(Command::Unbind(DeviceName {
                index: 47,
                generation: None
            }))
        );
        assert_eq!(
            parse("frobnicate"),
            Err(ParseError::Unknown("frobnicate".into()))
        );
        for bad in [
            "bind 5",
            "bind 5 1",
            "bind x 1:0",
            "bind 5 1:0 2",
            "random 0",
            "random 33",
            "random x",
            "random 1 2",
            "tree now",
            "unbind",
            "unbind 4:x",
            "device -1",
            "device 1:2:3",
        ] {
            assert!(matches!(parse(bad), Err(ParseError::Usage(_))), "{bad}");
        }
        assert_eq!(
            parse("unbind").unwrap_err().to_string(),
            "usage: unbind INDEX[:GENERATION]"
        );
    }

    #[test]
    fn tree_walks_the_manager_and_prints_parents_before_children() {
        let mut manager = FakeManager::new();
        let out = run_line(&mut manager, "tree");
        assert_eq!(
            out,
            "device tree: 4 devices, 2 bound\n\
             \x20 0:0 linux,dummy-virt -> (unbound)\n\
             \x20   1:0 arm,pl011 @0x9000000 irq 34 -> pl011-console\n\
             \x20   3:2 virtio,mmio @0xa003e00 irq 36 -> virtio-mmio\n\
             \x20     5:0 virtio,device2 -> (unbound; PD 4 quarantined after 5 failures in a row)\n"
        );
        // One call per device and one past the end; one per distinct driver; one for the PD
        // the unbound disk lost.
        let walks: Vec<_> = manager
            .calls
            .iter()
            .filter_map(|call| match call {
                Message::QueryTree { cursor } => Some(*cursor),
                _ => None,
            })
            .collect();
        assert_eq!(walks, [0, 1, 2, 4, 6]);
        assert_eq!(manager.calls.len(), 8);
    }

    #[test]
    fn tree_dot_gives_a_node_per_device_an_edge_per_parent_and_the_state_by_colour() {
        let mut manager = FakeManager::new();
        let out = run_line(&mut manager, "tree --dot");
        assert_eq!(
            out,
            "digraph warden {\n\
             \x20 rankdir=LR;\n\
             \x20 node [shape=box, style=\"rounded,filled\", fontname=\"monospace\"];\n\
             \x20 \"0:0\" [label=\"0:0 linux,dummy-virt\\nunbound\", fillcolor=lightgrey];\n\
             \x20 \"1:0\" [label=\"1:0 arm,pl011\\n@0x9000000 irq 34\\npl011-console\", fillcolor=palegreen];\n\
             \x20 \"3:2\" [label=\"3:2 virtio,mmio\\n@0xa003e00 irq 36\\nvirtio-mmio\", fillcolor=palegreen];\n\
             \x20 \"5:0\" [label=\"5:0 virtio,device2\\nPD 4 quarantined after 5 failures in a row\", fillcolor=orange];\n\
             \x20 \"0:0\" -> \"1:0\";\n\
             \x20 \"0:0\" -> \"3:2\";\n\
             \x20 \"3:2\" -> \"5:0\";\n\
             }\n"
        );
        assert_eq!(
            parse("tree --svg").unwrap_err().to_string(),
            "usage: tree [--dot]"
        );
    }

    /// A compatible string (from the board, through the manager) that tries to close the
    /// label and add its own attributes or nodes stays inside the label.
    #[test]
    fn tree_dot_escapes_what_the_manager_reports() {
        assert_eq!(dot_escaped(r#"a"] evil [b"#), r#"a\"] evil [b"#);
        assert_eq!(
            dot_escaped("back\\slash\nnewline\u{1b}[31m"),
            "back\\\\slashnewline[31m"
        );
    }

    #[test]
    fn device_shows_everything_and_names_by_index_or_handle() {
        let mut manager = FakeManager::new();
        let out = run_line(&mut manager, "device 3");
        assert!(
            out.starts_with("device 3:2\n  compatible: virtio,mmio\n"),
            "{out}"
        );
        assert!(out.contains("  mmio:       0xa003e00-0xa003fff\n"), "{out}");
        assert!(out.contains("  irq:        36\n"), "{out}");
        assert!(out.contains("  parent:     0:0\n"), "{out}");
        assert!(
            out.contains("  driver:     virtio-mmio (driver 1:0, PD 2)\n"),
            "{out}"
        );
        assert_eq!(
            run_line(&mut manager, "device 3:1"),
            "error: no device 3:1\n"
        );
        assert_eq!(
            run_line(&mut manager, "device 4"),
            "error: no device 4\n",
            "5 lives past 4"
        );
        assert_eq!(run_line(&mut manager, "device 9"), "error: no device 9\n");
    }

    #[test]
    fn power_and_remove_are_requests_and_refusals_are_reported() {
        let mut manager = FakeManager::new();
        assert_eq!(
            run_line(&mut manager, "suspend all"),
            "suspend all accepted (request 9)\n"
        );
        assert_eq!(
            manager.calls.last(),
            Some(&Message::SuspendDevice {
                target: PowerTarget::All
            })
        );
        assert_eq!(
            run_line(&mut manager, "resume 3"),
            "resume 3:2 (virtio,mmio) accepted (request 9)\n"
        );
        assert_eq!(
            manager.calls.last(),
            Some(&Message::ResumeDevice {
                target: PowerTarget::Device(device(3, 2))
            })
        );
        assert_eq!(
            run_line(&mut manager, "resume 5"),
            "error: the manager refused: ParentSuspended\n"
        );
        assert_eq!(
            run_line(&mut manager, "suspend 1"),
            "suspend 1:0 (arm,pl011) accepted (request 9)\n"
        );
        assert_eq!(run_line(&mut manager, "suspend 7"), "error: no device 7\n");
        assert_eq!(
            run_line(&mut manager, "remove 5"),
            "remove 5:0 (virtio,device2) accepted (request 8)\n"
        );
        assert_eq!(
            manager.calls.last(),
            Some(&Message::RemoveDevice {
                device: device(5, 0)
            })
        );
        for line in [
            "suspend",
            "resume all now",
            "remove",
            "remove all",
            "suspend x",
        ] {
            assert!(
                run_line(&mut manager, line).starts_with("usage: "),
                "{line}"
            );
        }
    }

    #[test]
    fn unbind_and_rescan_are_requests_and_refusals_are_reported() {
        let mut manager = FakeManager::new();
        assert_eq!(
            run_line(&mut manager, "unbind 1"),
            "unbind 1:0 (arm,pl011) accepted (request 7)\n"
        );
        assert_eq!(
            manager.calls.last(),
            Some(&Message::Unbind {
                device: device(1, 0)
            })
        );
        assert_eq!(
            run_line(&mut manager, "unbind 5"),
            "error: the manager refused: NoMatch\n"
        );
        assert_eq!(run_line(&mut manager, "rescan"), "rescan: done\n");
        assert_eq!(
            run_line(&mut manager, "bind 5 1:0"),
            "bind 5:0 (virtio,device2) to driver 1:0 accepted (request 10)\n"
        );
        assert_eq!(
            manager.calls.last(),
            Some(&Message::Bind {
                device: device(5, 0),
                driver: driver(1, 0)
            })
        );
        assert_eq!(
            run_line(&mut manager, "bind 1 1:0"),
            "error: the device is already bound to pl011-console (driver 0:0, PD 1); 'unbind' it first\n"
        );
        // Busy for an unbound device (its lock is taken, say) stays Busy.
        assert_eq!(
            run_line(&mut manager, "bind 5 7:0"),
            "error: the manager refused: Busy\n"
        );
        assert_eq!(run_line(&mut manager, "bind 7 1:0"), "error: no device 7\n");
    }

    #[test]
    fn time_and_random_come_from_the_drivers() {
        let mut manager = FakeManager::new();
        assert_eq!(
            run_line(&mut manager, "time"),
            "2026-11-25T09:02:49Z (1795597369 s since 1970, from the real-time clock)\n"
        );
        manager.clock = Err(ReplyError::NotReady);
        assert_eq!(
            run_line(&mut manager, "time"),
            "error: no clock is bound yet\n"
        );
        manager.clock = Err(ReplyError::Refused);
        assert_eq!(
            run_line(&mut manager, "time"),
            "error: this system gives the shell no clock\n"
        );
        assert_eq!(
            run_line(&mut manager, "random 4"),
            "4 random bytes: 00112233\n"
        );
        assert!(run_line(&mut manager, "help").contains("unbind DEV"));
    }

    /// A manager whose replies are wrong in the ways a hostile or broken one could be.
    struct HostileManager {
        reply: fn(u64) -> Message,
        calls: usize,
    }

    impl Caller for HostileManager {
        fn call(&mut self, call: &Message) -> Result<Message, CallError> {
            self.calls += 1;
            match call {
                Message::QueryTree { cursor } => Ok((self.reply)(*cursor)),
                _ => Err(CallError::Malformed),
            }
        }
    }

    impl Services for HostileManager {
        fn time(&mut self) -> Result<u64, ReplyError> {
            Err(ReplyError::Malformed)
        }
        fn entropy(&mut self, _: usize) -> Result<entropy::Bytes, ReplyError> {
            Err(ReplyError::Malformed)
        }
    }

    fn device_at(index: u64) -> Message {
        Message::DeviceInfo {
            device: device(index as u32, 0),
            parent: Some(device(index as u32 + 1, 0)),
            driver: Some(driver(9, 9)),
            state: DeviceState::Active,
            match_data: MatchData::default(),
            resources: Resources::default(),
            last_pd: None,
        }
    }

    #[test]
    fn a_device_lost_to_a_failed_pd_says_so_and_the_pd_can_be_retried() {
        let mut manager = FakeManager::new();
        let out = run_line(&mut manager, "tree");
        assert!(
            out.contains(
                "5:0 virtio,device2 -> (unbound; PD 4 quarantined after 5 failures in a row)"
            ),
            "{out}"
        );
        let out = run_line(&mut manager, "device 5");
        assert!(
            out.contains("driver:     (unbound; its driver's PD 4 quarantined after 5 failures in a row: 'pd 4')"),
            "{out}"
        );
        let out = run_line(&mut manager, "pd 4");
        assert_eq!(
            out,
            "driver PD 4: quarantined after 5 failures in a row\n  failures:   7 (5 in a row), 6 restarts\n  last:       a fault (label 3)\n  'retry 4' restarts it\n"
        );
        assert_eq!(
            run_line(&mut manager, "retry 4"),
            "driver PD 4 restarted; 'pd 4' shows how it goes\n"
        );
        assert_eq!(
            run_line(&mut manager, "retry 9"),
            "error: no driver PD 9 is supervised\n"
        );
        assert_eq!(run_line(&mut manager, "pd"), "usage: pd N\n");
        assert_eq!(run_line(&mut manager, "retry x"), "usage: retry N\n");
    }

    #[test]
    fn hostile_replies_are_reported_and_the_walk_is_bounded() {
        let mut out = String::new();
        // The wrong kind of reply.
        let mut manager = HostileManager {
            reply: |_| Message::Rescan {},
            calls: 0,
        };
        run(Command::Tree, &mut manager, &mut out);
        assert_eq!(out, "error: unexpected reply to QueryTree\n");
        // A cursor that goes back: the walk would never end.
        let mut manager = HostileManager {
            reply: |_| device_at(0),
            calls: 0,
        };
        out.clear();
        run(Command::Tree, &mut manager, &mut out);
        assert_eq!(
            out,
            "error: unexpected reply to QueryTree (the cursor went back)\n"
        );
        // A tree without end, each device the parent of the one before: bounded, printed,
        // the indentation capped; the last device's parent is not there, so it is the root;
        // the drivers it names that cannot be asked about are shown as such.
        let mut manager = HostileManager {
            reply: device_at,
            calls: 0,
        };
        out.clear();
        run(Command::Tree, &mut manager, &mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "device tree: 256 devices, 256 bound");
        assert_eq!(lines[1], "  255:0 (disabled) -> driver 9:9", "the root");
        assert_eq!(lines[2], "    254:0 (disabled) -> driver 9:9");
        let deepest = " ".repeat(MAX_DEPTH * 2) + "0:0 (disabled) -> driver 9:9";
        assert_eq!(lines[256], deepest);
        assert_eq!(lines.len(), 257);
        assert_eq!(manager.calls, MAX_WALK + 1);
        out.clear();
        run(Command::Time, &mut manager, &mut out);
        assert_eq!(out, "error: unexpected reply to the time call\n");
    }

    #[test]
    fn requests_leave_the_shell_waiting_for_their_outcome() {
        let mut manager = FakeManager::new();
        let mut out = String::new();
        let wait = run(parse("unbind 1").unwrap(), &mut manager, &mut out);
        assert_eq!(
            wait,
            Some(Wait::Completion {
                request: 7,
                what: String::from("unbind 1:0 (arm,pl011)")
            })
        );
        // Done at once, or refused: nothing to wait for.
        assert_eq!(run(Command::Rescan, &mut manager, &mut out), None);
        out.clear();
        assert_eq!(run(Command::Shutdown, &mut manager, &mut out), None);
        assert_eq!(out, "error: the manager refused: ShutDown\n");
        out.clear();
        assert_eq!(
            run(parse("events 3").unwrap(), &mut manager, &mut out),
            Some(Wait::Events { left: 3 })
        );
        assert_eq!(
            manager.calls.last(),
            Some(&Message::Subscribe {
                mask: EventKind::MASK
            })
        );
        assert_eq!(out, "events: the next 3 (a line typed stops them)\n");
        assert_eq!(
            run(parse("events").unwrap(), &mut manager, &mut out),
            Some(Wait::Events { left: u32::MAX })
        );
        assert_eq!(
            run_line(&mut manager, "stats"),
            "manager: 120 events, 40 probes, 30 binds, 2 walk restarts (5 pairs skipped), 70 callbacks (1 in flight, at most 6), 0 deferred, 50 requests completed\n\
             supervision: 3 restarts, 1 driver PDs quarantined\n\
             events: 44 queued for clients, 7 lost\n"
        );
        assert_eq!(
            run_line(&mut manager, "trace"),
            "trace: the manager's last 2 of 2 records (sequence 40 to 41):\n\
             \x20   12.345678 s  begin probe 57 on PD 3: device 34:0, driver 2:0, request 52\n\
             \x20   12.345678 s  end   probe 57 on PD 3: Defer\n"
        );
        assert_eq!(
            run_line(&mut manager, "trace 1"),
            "trace: the manager's last 1 of 2 records (sequence 41 to 41):\n\
             \x20   12.345678 s  end   probe 57 on PD 3: Defer\n"
        );
        for bad in [
            "events 0",
            "events x",
            "events 1 2",
            "shutdown now",
            "stats now",
            "trace 0",
            "trace 65",
        ] {
            assert!(matches!(parse(bad), Err(ParseError::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn events_and_outcomes_read_as_lines() {
        let event = |kind| Event {
            kind,
            device: Some(device(47, 1)),
            driver: Some(driver(3, 0)),
            pd: Some(PdId(3)),
            request: 0,
            status: Status::Ok,
            detail: 0,
            lost: 0,
        };
        let line = |event: Event| {
            let mut out = String::new();
            describe_event(&event, &mut out);
            out
        };
        assert_eq!(
            line(event(EventKind::Bound)),
            "event: device 47:1 bound to driver 3:0\n"
        );
        assert_eq!(
            line(event(EventKind::Unbound)),
            "event: device 47:1 unbound from driver 3:0\n"
        );
        assert_eq!(
            line(Event {
                lost: 4,
                ..event(EventKind::DeviceAdded)
            }),
            "event: 4 events lost (the manager's queue for this shell was full)\nevent: device 47:1 added\n"
        );
        assert_eq!(
            line(event(EventKind::Faulted)),
            "event: driver PD 3 failed and was stopped\n"
        );
        assert_eq!(
            line(event(EventKind::Quarantined)),
            "event: driver PD 3 quarantined\n"
        );
        assert_eq!(
            line(Event {
                request: 5,
                status: Status::Failed,
                detail: 22,
                ..event(EventKind::Completed)
            }),
            "event: request 5 failed: the driver's code 22\n"
        );
        assert_eq!(
            line(Event {
                request: 6,
                status: Status::Busy,
                ..event(EventKind::Completed)
            }),
            "event: request 6 refused: Busy\n"
        );
        assert_eq!(
            line(Event {
                device: None,
                ..event(EventKind::Suspended)
            }),
            "event: a device suspended\n"
        );
    }
}
