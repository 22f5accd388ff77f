//! `warden-host run`: one Linux process per protection domain, with the launcher playing the
//! Microkit kernel's slow path: start-up, interrupts, faults, restarts, stops, device registers.
//! Notifications and protected procedure calls do not pass through it: each PD is handed its
//! own channel ends at every start ([`handles`]: pipes and call slots) and signals its peers
//! directly. The slow path's rules live in `warden-host-kernel`; this module is the I/O around
//! it: processes, the socket each PD talks on, fault detection from exit statuses, log prefixing
//! and the trace (with `--trace`, PDs report their notifications and calls to it).
//!
//! `program_image path="NAME.elf"` runs the host build of the same PD crate: the executable
//! `NAME` in the directory that holds `warden-host` (cargo puts every binary of a workspace
//! there). `--program PD=NAME` runs another program in a PD's place (the soak's client).
//!
//! Memory regions: each is a sealed memfd (no name in the file system, a size no PD can change),
//! handed to each start of every PD that maps it as a descriptor opened with that map's
//! permissions, and mapped shared at the description's vaddr, so a PD is handed only the regions
//! it maps and a write to a read-only map faults as it does on seL4. The host platform's PDs are
//! processes of one user: the kernel does not stop a hostile one that reopens its read-only
//! descriptor through `/proc/self/fd` before closing it, or that reaches another process of the
//! user through `/proc/PID` or ptrace. Against that, seL4 is the boundary (see the README). Regions without `phys_addr` get physical addresses
//! from the board's RAM (for `<setvar region_paddr>` and DMA). Device memory (a region with
//! `phys_addr`) is served by the board's device models (`--board FILE.dtb`; see [`crate::devices`]):
//! mapping one with no model behind it is an error naming the address.
//!
//! Control socket (`--control PATH`): one command per line, answered with one line (`ok …` or
//! `error: …`): `plug blk=IMAGE`, `plug rng`, `unplug ADDRESS`, `devices`, `inject FAULT PD`.
//! Plugging raises the transport's interrupt (a configuration change), which is how the
//! virtio-mmio bus driver learns of it; see `warden-host-devices`. `inject` is the soak's fault
//! injection: `kill` ends the PD's process (SIGKILL), `hang`, `panic`, `corrupt` and `flood` are
//! delivered to the PD as an entry of its own (`Handler::inject`).
//!
//! A PD with no parent that faults cannot be restarted by anyone: the run stops, says which PD
//! and why, and `warden-host run` exits with status 3 (the device manager's death is fail-stop
//! and loud, not a system that goes on without it).
//!
//! Scheduling: the host runs every PD as an ordinary process. Priorities, budgets, periods and
//! passive PDs are checked in the description and the priority rule of calls is enforced, but
//! they do not shape the host's scheduling; the Microkit's ordering guarantees (one entry point
//! at a time, notifications before calls, blocking calls) come from the kernel model.
//!
//! Restarts: on seL4 `microkit_pd_restart` only resets the program counter (memory is kept);
//! on the host a restart starts a fresh process (memory is lost). Warden's PDs therefore keep
//! nothing across a restart that they do not re-create in `init`, which is correct on both.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use warden_host_kernel::{Action, ChannelEnd, FaultKind, Kernel, PdConfig, CHANNELS};
use warden_microkit::host_protocol::{framed, read_frame, FromPd, ToPd, Traced};

use crate::devices::{region_paddrs, Board, VirtioSpec};
use crate::sdf::{self, System};

mod connections;
mod handles;
mod processes;

pub use connections::control;
use connections::{accept, accept_control, read_console, Claim, Event};
use handles::Handles;
use processes::Process;

/// Options of a run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Stop every PD after this long.
    pub timeout: Option<Duration>,
    /// Write every notification, call, fault and restart here as JSON lines.
    pub trace: Option<PathBuf>,
    /// The board's device tree blob: device models for its devices.
    pub board: Option<PathBuf>,
    /// Virtio devices plugged in at start-up.
    pub virtio: Vec<VirtioSpec>,
    /// Where to listen for control commands (hot-plug, fault injection).
    pub control: Option<PathBuf>,
    /// Programs run in place of a PD's `program_image`: (PD name, program name).
    pub programs: Vec<(String, String)>,
}

/// Why a run could not start or go on.
#[derive(Debug)]
pub enum LaunchError {
    /// The system description is invalid.
    Description(sdf::SdfError),
    /// Something the host platform cannot run yet.
    Unsupported(String),
    /// A program image has no host build.
    MissingProgram(String, PathBuf),
    /// An operating-system call failed.
    Io(String, std::io::Error),
    /// A PD without a parent faulted: nobody can restart it, and the run stopped.
    RootFaulted(String, FaultKind),
}

impl LaunchError {
    /// The exit status `warden-host run` ends with.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::RootFaulted(..) => 3,
            _ => 1,
        }
    }
}

impl std::fmt::Display for LaunchError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Description(error) => write!(formatter, "{error}"),
            Self::Unsupported(what) => write!(formatter, "not supported on the host platform yet: {what}"),
            Self::MissingProgram(pd, path) => write!(
                formatter,
                "protection domain '{pd}': no host build of its program image at {} (build the PD crate first)",
                path.display()
            ),
            Self::Io(what, error) => write!(formatter, "{what}: {error}"),
            Self::RootFaulted(pd, kind) => write!(
                formatter,
                "'{pd}' faulted ({kind:?}) and has no parent: no PD can restart it, so the system stopped"
            ),
        }
    }
}

/// A path of the run's, removed when dropped: the run's directory, the control socket.
enum Removed {
    Directory(PathBuf),
    File(PathBuf),
}

impl Drop for Removed {
    fn drop(&mut self) {
        match self {
            Self::Directory(path) => {
                let _ = std::fs::remove_dir_all(path);
            }
            Self::File(path) => {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Kernel configurations from a checked system description.
#[must_use]
pub fn kernel_config(system: &System) -> Vec<PdConfig> {
    let mut configs: Vec<PdConfig> = system
        .protection_domains
        .iter()
        .map(|pd| PdConfig {
            name: pd.name.clone(),
            parent: pd.parent.map(|(parent, id)| (parent, id as u8)),
            channels: [None; CHANNELS],
            irqs: pd.irqs.iter().fold(0, |bits, irq| bits | 1 << irq.id),
        })
        .collect();
    for channel in &system.channels {
        let [first, second] = &channel.ends;
        for (end, other) in [(first, second), (second, first)] {
            if let Some(slot) = configs
                .get_mut(end.pd)
                .and_then(|config| config.channels.get_mut(end.id as usize))
            {
                *slot = Some(ChannelEnd {
                    peer: other.pd,
                    peer_id: other.id as u8,
                    may_notify: end.notify,
                    may_call: end.pp,
                });
            }
        }
    }
    configs
}

struct Launcher {
    processes: Vec<Process>,
    socket: PathBuf,
    trace: Option<crate::trace::Trace>,
    board: Board,
    /// The board's DTB, named to every PD (`WARDEN_BOARD_DTB`): the device manager reads its
    /// tree from it, so the manager and the models see one board.
    board_dtb: Option<PathBuf>,
    /// The system description, named to every PD (`WARDEN_SYSTEM_FILE`): the device manager
    /// takes its driver PDs' grants from it.
    system_file: PathBuf,
    /// A PD without a parent faulted: the run ends.
    root_fault: Option<(usize, FaultKind)>,
    /// Each PD's channel handles, handed to every start of it.
    handles: Handles,
    /// PDs that broke the rules of the kernel socket, and how: each is stopped as a fault.
    abusive: Vec<(usize, String)>,
    /// `--trace` is on: PDs report their channel operations.
    tracing: bool,
    /// A shell command from the control socket, typed on the console: where its answer goes
    /// (once the shell's prompt is back), the command, and until when to wait.
    shell_command: Option<ShellCommand>,
}

/// A shell command from the control socket, in progress.
struct ShellCommand {
    reply: Sender<String>,
    command: String,
    until: Instant,
}

/// What a valid description asks for that the host platform does not model, named: the first
/// such thing, or `None`. The microkit tool builds these for seL4; on the host they would run
/// as something they are not, so they are refused rather than ignored.
#[must_use]
pub fn beyond_the_host(system: &sdf::System) -> Option<String> {
    if system.domains.is_some() {
        return Some(
            "<domains>: seL4's domain scheduler (fixed time slices per domain; the host's scheduler gives none)"
                .into(),
        );
    }
    for pd in &system.protection_domains {
        if let Some(vm) = &pd.virtual_machine {
            return Some(format!(
                "protection domain '{}': virtual machine '{}' (seL4's hypervisor mode has no host model)",
                pd.name, vm.name
            ));
        }
        if let Some(cap) = pd.cap_maps.first() {
            let kind = cap.kind.element();
            return Some(format!(
                "protection domain '{}': <cspace> entry {kind} of '{}' in slot {} (a PD's seL4 capabilities have no host model)",
                pd.name, cap.pd, cap.slot
            ));
        }
    }
    system.memory_regions.iter().find_map(|region| {
        region.prefill_bootinfo.as_ref().map(|kind| {
            format!(
                "memory region '{}': prefill_bootinfo=\"{kind}\" (boot information is the seL4 loader's)",
                region.name
            )
        })
    })
}

/// Runs a system description until `timeout` (or forever).
///
/// # Errors
/// An invalid description, a missing program, or a failing system call at start-up.
pub fn run(file: &Path, options: &Options) -> Result<(), LaunchError> {
    processes::keep_inherited_descriptors_from_pds();
    // A large system needs thousands of descriptors (a few per channel end, one per map, one
    // per region), all made before the first PD starts; the soft limit is often 1,024, the hard
    // one far above.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    );
    let system = sdf::parse_file(file).map_err(LaunchError::Description)?;
    if let Some(what) = beyond_the_host(&system) {
        return Err(LaunchError::Unsupported(what));
    }
    let paddrs = region_paddrs(&system);
    // The board first: a device region with no model behind it is a mistake in the
    // description (or the wrong --board), whatever else is missing.
    Board::new(options.board.as_deref(), &system, &paddrs, &[])
        .map_err(LaunchError::Unsupported)?;
    let directory = std::env::current_exe()
        .map_err(|error| LaunchError::Io("locating warden-host".into(), error))?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    if let Some((name, _)) = options
        .programs
        .iter()
        .find(|(name, _)| !system.protection_domains.iter().any(|pd| &pd.name == name))
    {
        return Err(LaunchError::Unsupported(format!(
            "--program {name}=…: the system has no protection domain '{name}'"
        )));
    }
    let mut processes = Vec::new();
    for pd in &system.protection_domains {
        let image = options
            .programs
            .iter()
            .rev()
            .find_map(|(name, program)| (name == &pd.name).then_some(program.as_str()))
            .unwrap_or(&pd.program_image);
        let stem = image.strip_suffix(".elf").unwrap_or(image);
        let program = directory.join(stem);
        if !program.is_file() {
            return Err(LaunchError::MissingProgram(pd.name.clone(), program));
        }
        processes.push(Process {
            name: pd.name.clone(),
            program,
            child: None,
            incarnation: 0,
            connection: None,
            connection_id: None,
            queued: VecDeque::new(),
            outbox: Vec::new(),
            maps: String::new(),
            setvars: String::new(),
        });
    }
    let runtime = std::env::temp_dir().join(format!("warden-host-{}", std::process::id()));
    std::fs::create_dir_all(&runtime)
        .map_err(|error| LaunchError::Io(format!("creating {}", runtime.display()), error))?;
    // Removed on every way out, errors and panics included (the launcher, declared later,
    // stops every PD first when it is dropped).
    let _runtime = Removed::Directory(runtime.clone());
    // Each memory region is a sealed memfd, with no name in the file system: a PD reaches
    // only the regions it maps, through the descriptors it is handed ([`handles`]).
    let mut region_files = Vec::new();
    for (index, region) in system.memory_regions.iter().enumerate() {
        let memory = handles::region(index, region).map_err(|error| {
            LaunchError::Io(format!("creating memory region '{}'", region.name), error)
        })?;
        region_files.push(memory);
    }
    let mut board = match Board::new(options.board.as_deref(), &system, &paddrs, &region_files) {
        Ok(board) => board,
        Err(error) => return Err(LaunchError::Unsupported(error)),
    };
    for spec in &options.virtio {
        match board.plug(spec, true) {
            Ok(placed) => crate::output::say(&format!("warden-host: virtio {placed}")),
            Err(error) => {
                return Err(LaunchError::Unsupported(format!(
                    "--virtio {spec:?}: {error}"
                )))
            }
        }
    }
    for line in board.summary() {
        crate::output::say(&format!("warden-host: board: {line}"));
    }
    // Each PD's maps' memory, by PD, in its maps' order.
    let mut region_memory = Vec::new();
    for (process, pd) in processes.iter_mut().zip(&system.protection_domains) {
        let mut maps = Vec::new();
        let mut setvars = Vec::new();
        let mut memory = Vec::new();
        for map in &pd.maps {
            let Some(index) = system
                .memory_regions
                .iter()
                .position(|region| region.name == map.region)
            else {
                continue;
            };
            let (Some(region), Some(file)) =
                (system.memory_regions.get(index), region_files.get(index))
            else {
                continue;
            };
            if let Some(symbol) = &map.setvar_vaddr {
                setvars.push(format!("{symbol}={:x}", map.vaddr));
            }
            if let Some(symbol) = &map.setvar_size {
                setvars.push(format!("{symbol}={:x}", region.size));
            }
            if let (Some(symbol), Some(prefill)) = (&map.setvar_prefill_size, &region.prefill) {
                setvars.push(format!("{symbol}={:x}", prefill.length));
            }
            // Device memory is not mapped: its accesses go to the board's models.
            if region.phys_addr.is_some() {
                continue;
            }
            let permissions = map.permissions;
            let perms: String = [
                (permissions.read, 'r'),
                (permissions.write, 'w'),
                (permissions.execute, 'x'),
            ]
            .iter()
            .filter(|(set, _)| *set)
            .map(|(_, letter)| *letter)
            .collect();
            let setvar = map.setvar_vaddr.clone().unwrap_or_default();
            // Map n of the list is the PD's n-th descriptor.
            let Ok(number) = u16::try_from(maps.len()) else {
                return Err(LaunchError::Unsupported(format!(
                    "protection domain '{}': more than {} maps",
                    pd.name,
                    u16::MAX
                )));
            };
            memory.push((
                number,
                handles::opened_for(file, permissions.write).map_err(|error| {
                    LaunchError::Io(format!("opening memory region '{}'", region.name), error)
                })?,
            ));
            maps.push(format!(
                "{:x},{:x},{perms},{setvar}",
                map.vaddr, region.size
            ));
        }
        region_memory.push(memory);
        for setvar in &pd.setvars {
            if let Some(index) = system
                .memory_regions
                .iter()
                .position(|region| region.name == setvar.region)
            {
                let paddr = paddrs.get(index).copied().unwrap_or_default();
                setvars.push(format!("{}={paddr:x}", setvar.symbol));
            }
        }
        // `setvar_id`s: the ids of its IRQs, channel ends and children.
        for setvar in &pd.setvar_ids {
            setvars.push(format!("{}={:x}", setvar.symbol, setvar.id));
        }
        process.maps = maps.join(";");
        process.setvars = setvars.join(";");
    }
    let socket = runtime.join("kernel.sock");
    let listener = UnixListener::bind(&socket)
        .map_err(|error| LaunchError::Io(format!("binding {}", socket.display()), error))?;
    let trace = match &options.trace {
        Some(path) => Some(crate::trace::Trace::new(
            std::fs::File::create(path)
                .map_err(|error| LaunchError::Io(format!("creating {}", path.display()), error))?,
            path,
            processes
                .iter()
                .map(|process| process.name.clone())
                .collect(),
        )),
        None => None,
    };
    // Ctrl-C and SIGTERM stop the run cleanly: every PD process is killed and the run's
    // directory (its sockets) removed. The PDs are in their own process group, so
    // a Ctrl-C at the terminal reaches the launcher only.
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    if let Err(error) = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)) {
        eprintln!("warden-host: cannot catch Ctrl-C ({error}); --timeout still stops the run");
    }
    let (sender, receiver) = channel();
    let mut control_socket = None;
    if let Some(path) = &options.control {
        let control = UnixListener::bind(path)
            .map_err(|error| LaunchError::Io(format!("binding {}", path.display()), error))?;
        // Ours once bound (a path that was there already is not touched).
        control_socket = Some(Removed::File(path.clone()));
        let events = sender.clone();
        std::thread::spawn(move || accept_control(&control, &events));
    }
    let input = sender.clone();
    std::thread::spawn(move || read_console(&input));
    std::thread::spawn(move || accept(&listener, &sender));
    let config = kernel_config(&system);
    drop(region_files);
    let handles = Handles::new(&config, region_memory).map_err(|error| {
        LaunchError::Io("creating the channels' pipes and call slots".into(), error)
    })?;
    let mut launcher = Launcher {
        processes,
        socket,
        tracing: trace.is_some(),
        shell_command: None,
        trace,
        board,
        board_dtb: options.board.clone(),
        system_file: std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf()),
        root_fault: None,
        handles,
        abusive: Vec::new(),
    };
    let mut kernel = Kernel::new(config);
    let result = launcher
        .start_all()
        .map(|()| launcher.serve(&mut kernel, &receiver, options.timeout, &interrupted));
    launcher.shut_down();
    if let Some(trace) = &mut launcher.trace {
        trace.finish();
    }
    drop(control_socket);
    result?;
    match launcher.root_fault {
        Some((pd, kind)) => Err(LaunchError::RootFaulted(
            launcher.name(pd).to_string(),
            kind,
        )),
        None => Ok(()),
    }
}

impl Launcher {
    fn start_all(&mut self) -> Result<(), LaunchError> {
        for pd in 0..self.processes.len() {
            self.spawn(pd)?;
        }
        Ok(())
    }

    fn perform(&mut self, kernel: &mut Kernel, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Signal(pd, channel) => self.send(pd, ToPd::Irq(channel)),
                Action::Fault(parent, child, kind) => {
                    self.send(parent, ToPd::Fault(child, kind as u64));
                }
                Action::Inject(pd, code) => self.send(pd, ToPd::Inject(code)),
                Action::CancelCall(callee, channel, caller) => {
                    let start = self
                        .processes
                        .get(caller)
                        .map_or(0, |process| process.incarnation);
                    self.send(callee, ToPd::CallCancelled(channel, start));
                }
                Action::WithdrawFault(parent, child) => {
                    self.send(parent, ToPd::FaultWithdrawn(child));
                }
                Action::Restart(pd) => {
                    self.record(pd, "restart", serde_json::Map::new());
                    crate::output::say(&format!("warden-host: restarting '{}'", self.name(pd)));
                    self.kill(pd);
                    if let Err(error) = self.spawn(pd) {
                        eprintln!("warden-host: {error}");
                        let actions = kernel.fault(pd, FaultKind::UnknownSyscall);
                        self.perform(kernel, actions);
                    }
                }
                Action::Stop(pd) => {
                    crate::output::say(&format!("warden-host: stopping '{}'", self.name(pd)));
                    self.record(pd, "stop", serde_json::Map::new());
                    self.kill(pd);
                }
                Action::Dead(pd, kind) => {
                    eprintln!(
                        "warden-host: '{}' faulted ({kind:?}) and has no parent: no PD can restart it; stopping the system",
                        self.name(pd)
                    );
                    self.root_fault.get_or_insert((pd, kind));
                }
            }
        }
    }

    fn handle(&mut self, kernel: &mut Kernel, pd: usize, frame: FromPd) {
        let name = self.name(pd).to_string();
        let result = match frame {
            FromPd::Hello { .. } => Ok(Vec::new()),
            FromPd::FaultDone { child, resume } => kernel.fault_done(pd, child, resume),
            FromPd::IrqAck(channel) => kernel.irq_ack(pd, channel),
            FromPd::Restart(child) => kernel.restart(pd, child),
            FromPd::Stop(child) => {
                // Synchronous, as on seL4: the caller goes on once the child is stopped.
                let result = kernel.stop(pd, child);
                if let Ok(actions) = &result {
                    self.perform(kernel, actions.clone());
                }
                self.send(pd, ToPd::RegisterValue(0));
                result.map(|_| Vec::new())
            }
            FromPd::RegisterRead { address, width } => {
                self.register_access(kernel, pd, address, width, None);
                Ok(Vec::new())
            }
            FromPd::RegisterWrite {
                address,
                width,
                value,
            } => {
                self.register_access(kernel, pd, address, width, Some(value));
                Ok(Vec::new())
            }
            FromPd::Traced(event) => {
                let mut details = serde_json::Map::new();
                let what = match event {
                    Traced::Notify(channel) => {
                        details.insert("channel".into(), channel.into());
                        "notify"
                    }
                    Traced::Call(channel, label) => {
                        details.insert("channel".into(), channel.into());
                        details.insert("label".into(), label.into());
                        "ppcall"
                    }
                    Traced::Refused(channel) => {
                        details
                            .insert("reason".into(), format!("InvalidChannel({channel})").into());
                        "refused"
                    }
                    Traced::Mark(mark) => {
                        let child = kernel.child(pd, mark.child);
                        if let Some(trace) = &mut self.trace {
                            trace.mark(pd, mark, child);
                        }
                        return;
                    }
                };
                self.record(pd, what, details);
                Ok(Vec::new())
            }
        };
        match result {
            Ok(actions) => self.perform(kernel, actions),
            Err(refusal) => {
                eprintln!("[{name}] refused by the kernel: {refusal:?}");
                let mut details = serde_json::Map::new();
                details.insert("reason".into(), format!("{refusal:?}").into());
                self.record(pd, "refused", details);
            }
        }
    }

    fn serve(
        &mut self,
        kernel: &mut Kernel,
        events: &std::sync::mpsc::Receiver<Event>,
        timeout: Option<Duration>,
        interrupted: &AtomicBool,
    ) {
        let started = Instant::now();
        loop {
            if interrupted.load(Ordering::SeqCst) {
                crate::output::say("warden-host: interrupted, stopping every protection domain");
                return;
            }
            if self.root_fault.is_some() {
                return;
            }
            if crate::output::closed() {
                eprintln!("warden-host: standard output closed, stopping every protection domain");
                return;
            }
            if timeout.is_some_and(|limit| started.elapsed() >= limit) {
                crate::output::say(
                    "warden-host: timeout reached, stopping every protection domain",
                );
                return;
            }
            // Wake for the next event, or when a model's line changes by itself (a timer).
            let wait = self
                .board
                .next_change()
                .map_or(Duration::from_millis(10), |wait| {
                    wait.min(Duration::from_millis(10))
                });
            match events.recv_timeout(wait) {
                Ok(Event::Connected(claim, stream)) => {
                    if !self.believes(claim) {
                        crate::output::say(&format!(
                            "warden-host: refused a connection claiming to be '{}' (process {:?})",
                            self.name(claim.pd),
                            claim.peer
                        ));
                        let _ = stream.shutdown(std::net::Shutdown::Both);
                        continue;
                    }
                    self.connect(kernel, claim, stream);
                }
                Ok(Event::Frame(claim, frame, credit)) => {
                    if self.believes_frame(claim) {
                        self.handle(kernel, claim.pd, frame);
                    }
                    credit.give();
                }
                Ok(Event::Abuse(claim, reason)) => {
                    if self.believes_frame(claim) {
                        self.abusive.push((claim.pd, reason));
                    }
                }
                Ok(Event::Input(bytes)) => self.board.console_input(&bytes),
                Ok(Event::Control(command, reply)) => {
                    if let Some(answer) = self.control(kernel, &command, &reply) {
                        let _ = reply.send(answer);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.update_lines(kernel);
            self.shell_answer();
            self.flush_all();
            self.stop_abusive(kernel);
            self.reap(kernel);
        }
    }
}
