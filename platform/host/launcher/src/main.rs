//! `warden-host`: checks a Microkit system description (`check`) or runs it on Linux (`run`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "warden-host",
    about = "Warden's host platform for Microkit system descriptions"
)]
struct Arguments {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a system description as the microkit tool does; exit 0 if valid, else print the
    /// located error and exit 1.
    Check {
        /// The system description (system.xml).
        file: PathBuf,
        /// The target's CPU cores (a PD's `cpu` must be below it): 1 for the SDK's debug and
        /// release configurations, more for `smp-*` ones.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
        cores: u64,
    },
    /// Run a system description, one process per protection domain, until --timeout (exit 3
    /// when a PD without a parent faults: nothing can restart it).
    Run {
        /// The system description (system.xml).
        file: PathBuf,
        /// Stop every protection domain after this many seconds (a positive number).
        #[arg(long, value_parser = seconds)]
        timeout: Option<std::time::Duration>,
        /// Write every notification, call, fault and restart to this file as JSON lines.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// The board's device tree blob (e.g. build/board/qemu_virt_aarch64.dtb): its PL011,
        /// PL031 and virtio-mmio devices are modelled, the PL011 as the console on stdio.
        #[arg(long)]
        board: Option<PathBuf>,
        /// Plug a virtio device in at start-up: blk=IMAGE or rng (repeatable; the first takes
        /// the highest transport, as QEMU does).
        #[arg(long, value_name = "DEVICE")]
        virtio: Vec<warden_host::devices::VirtioSpec>,
        /// Listen here for control commands: plug blk=IMAGE, plug rng, unplug ADDRESS, plug pci
        /// blk=IMAGE, plug pci rng, unplug pci SLOT, pull pci SLOT, devices,
        /// inject kill|hang|panic|corrupt|flood PD.
        #[arg(long)]
        control: Option<PathBuf>,
        /// Run another program in a PD's place: PD=PROGRAM (the host build of PROGRAM.elf;
        /// repeatable).
        #[arg(long, value_name = "PD=PROGRAM", value_parser = program_override)]
        program: Vec<(String, String)>,
    },
    /// The fault-injection soak: run a system with the soak client in its client PD's place,
    /// inject random faults into its driver PDs one at a time, and check that each is recovered
    /// (the tree whole again, the client's blocks verified) with no request lost and no data
    /// corrupted. Exit 0 only if so; the last line gives the figures.
    Soak(SoakArguments),
    /// Print the devices Warden makes of a board's device tree blob (path, compatible, bus,
    /// windows, INTIDs, parent) and every node it leaves out with the reason; the last line is
    /// `board: N devices, K left out (reasons: …)`. Exit 1 if the blob cannot be read.
    Board {
        /// The device tree blob (e.g. build/board/qemu_virt_aarch64.dtb).
        file: PathBuf,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Send one command to a running system's control socket and print the answer: the
    /// launcher's own (plug blk=IMAGE, plug rng, unplug ADDRESS, plug pci blk=IMAGE, unplug pci
    /// SLOT, pull pci SLOT, devices, inject FAULT PD), or
    /// one of the shell's (tree, device 34, stats, …), typed on the console through the shell.
    Control {
        /// The control socket (run --control).
        socket: PathBuf,
        /// The command, e.g. plug blk=disk.img, unplug 0xa000000, devices, tree.
        #[arg(required = true)]
        command: Vec<String>,
    },
    /// Send one QMP command to QEMU's monitor socket (`make qemu` listens at build/qmp.sock)
    /// and print QEMU's events and answer, e.g. `device_add '{"driver": "virtio-blk-pci",
    /// "bus": "slot1", "drive": "pcidisk", "id": "card1"}'` or `device_del '{"id": "card1"}'
    /// --wait DEVICE_DELETED`. Exit 1 on an error answer or when QEMU does not answer in time.
    Qmp {
        /// QEMU's QMP socket.
        socket: PathBuf,
        /// The command (device_add, device_del, query-pci, …).
        command: String,
        /// Its arguments: one JSON object.
        arguments: Option<String>,
        /// After the answer, wait for this event (DEVICE_DELETED: the ejection is complete).
        #[arg(long)]
        wait: Option<String>,
        /// Seconds to wait for it.
        #[arg(long, default_value_t = 10)]
        wait_seconds: u64,
    },
    /// Check a Chrome trace written by `run --trace FILE.json`: every slice ends, timestamps
    /// rise on each track, every probe names its device and driver, every flow joins a request
    /// to its callbacks. The last line is `trace: …`; exit 1 at the first thing that is not so.
    TraceCheck {
        /// The trace.
        file: PathBuf,
    },
}

/// `warden-host soak`'s arguments.
#[derive(clap::Args)]
struct SoakArguments {
    /// The system description (system.xml).
    file: PathBuf,
    /// The board's device tree blob.
    #[arg(long)]
    board: PathBuf,
    /// Plug a virtio device in at start-up (as for run; the first disk is soaked).
    #[arg(long, value_name = "DEVICE")]
    virtio: Vec<String>,
    /// Faults to inject.
    #[arg(long, default_value_t = 200)]
    faults: usize,
    /// Seed of the random draw (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds a fault may take to be recovered before the soak stops.
    #[arg(long, default_value = "15", value_parser = seconds)]
    recovery_timeout: std::time::Duration,
    /// The PD whose children are the driver PDs.
    #[arg(long, default_value = "device_manager")]
    manager: String,
    /// The PD the soak client runs in.
    #[arg(long, default_value = "client")]
    client: String,
    /// Copy every line of the run to this file.
    #[arg(long)]
    log: Option<PathBuf>,
    /// A line per fault.
    #[arg(long)]
    verbose: bool,
    /// Only these driver PDs (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    only_pds: Vec<String>,
    /// Only these faults (comma-separated: kill, hang, panic, corrupt, flood).
    #[arg(long, value_delimiter = ',')]
    only_faults: Vec<String>,
}

fn main() -> ExitCode {
    match Arguments::parse().command {
        Command::Check { file, cores } => {
            match warden_host::sdf::parse_file_for(
                &file,
                warden_host::sdf::Target { cores: Some(cores) },
            ) {
                Ok(system) => {
                    warden_host::output::say(&format!(
                        "{}: ok ({} protection domains, {} memory regions, {} channels)",
                        file.display(),
                        system.protection_domains.len(),
                        system.memory_regions.len(),
                        system.channels.len()
                    ));
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("{error}");
                    ExitCode::from(1)
                }
            }
        }
        Command::TraceCheck { file } => {
            let checked = std::fs::read_to_string(&file)
                .map_err(|error| format!("{}: {error}", file.display()))
                .and_then(|text| warden_host::trace::check(&text));
            match checked {
                Ok(checked) => {
                    warden_host::output::say(&format!(
                        "trace: {} slices on {} tracks, {} probes, {} flows through {} callbacks; every slice ends, timestamps rise on every track, every probe names its device and driver, every flow joins a request to its callbacks",
                        checked.slices, checked.tracks, checked.probes, checked.flows, checked.steps
                    ));
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("trace: {}: {error}", file.display());
                    ExitCode::from(1)
                }
            }
        }
        Command::Board { file, json } => {
            match warden_host::board::read_blob(&file)
                .and_then(|blob| warden_host::board::report(&blob, json))
            {
                Ok(report) => {
                    warden_host::output::say(&report.text);
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("warden-host: board: {error}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Control { socket, command } => {
            match warden_host::launcher::control(&socket, &command.join(" ")) {
                Ok(answer) if answer.starts_with("ok") => {
                    // A shell command's answer is what the shell printed; the launcher's own
                    // is its status line.
                    match answer.split_once('\n') {
                        Some((_, printed)) => warden_host::output::say(printed),
                        None => warden_host::output::say(&answer),
                    }
                    ExitCode::SUCCESS
                }
                Ok(answer) => {
                    eprintln!("{answer}");
                    ExitCode::from(1)
                }
                Err(error) => {
                    eprintln!("warden-host: {}: {error}", socket.display());
                    ExitCode::from(1)
                }
            }
        }
        Command::Qmp {
            socket,
            command,
            arguments,
            wait,
            wait_seconds,
        } => {
            let wait = wait
                .as_deref()
                .map(|event| (event, std::time::Duration::from_secs(wait_seconds)));
            match warden_host::qmp::execute(&socket, &command, arguments.as_deref(), wait) {
                Ok(outcome) => {
                    for line in &outcome.lines {
                        warden_host::output::say(line);
                    }
                    if outcome.ok {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(error) => {
                    eprintln!("warden-host: {}: {error}", socket.display());
                    ExitCode::from(1)
                }
            }
        }
        Command::Soak(arguments) => {
            let options = arguments.options();
            match warden_host::soak::soak(&options) {
                Ok(outcome) => {
                    if let Some(why) = &outcome.stopped {
                        warden_host::output::say(&format!("soak: stopped early: {why}"));
                        warden_host::output::say(&format!(
                            "--- the run's last lines:\n{}\n--- the soak stopped early: {why}",
                            outcome.recent.join("\n")
                        ));
                    }
                    if outcome.unprompted > 0 {
                        warden_host::output::say(&format!(
                            "soak: {} rounds found the PD drawn being restarted by the manager on its own (not injected; waited for the tree, drew again)",
                            outcome.unprompted
                        ));
                    }
                    warden_host::output::say(&outcome.summary());
                    if outcome.passed() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(error) => {
                    eprintln!("warden-host: soak: {error}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Run {
            file,
            timeout,
            trace,
            board,
            virtio,
            control,
            program,
        } => {
            let options = warden_host::launcher::Options {
                timeout,
                trace,
                board,
                virtio,
                control,
                programs: program,
            };
            match warden_host::launcher::run(&file, &options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("warden-host: {error}");
                    ExitCode::from(error.exit_code())
                }
            }
        }
    }
}

/// `PD=PROGRAM` of `--program`.
fn program_override(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((pd, program)) if !pd.is_empty() && !program.is_empty() && !program.contains('/') => {
            Ok((pd.to_string(), program.to_string()))
        }
        _ => Err(format!(
            "'{text}': expected PD=PROGRAM (a program built beside warden-host, e.g. client=soak_client)"
        )),
    }
}

/// A positive, finite number of seconds (`--timeout`, `--recovery-timeout`), at most a year.
fn seconds(text: &str) -> Result<std::time::Duration, String> {
    const YEAR: f64 = 365.0 * 24.0 * 3600.0;
    match text.trim().parse::<f64>() {
        Ok(value) if value > 0.0 && value <= YEAR => {
            Some(std::time::Duration::from_secs_f64(value))
                .filter(|duration| !duration.is_zero())
                .ok_or_else(|| {
                    format!("'{text}' seconds is under a nanosecond: too short to be a time")
                })
        }
        Ok(_) => Err(format!(
            "'{text}': expected a positive number of seconds, at most a year ({YEAR})"
        )),
        Err(_) => Err(format!("'{text}' is not a number of seconds")),
    }
}

impl SoakArguments {
    /// The soak's options.
    fn options(self) -> warden_host::soak::Options {
        let recovery_timeout = self.recovery_timeout;
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |since| since.as_nanos() as u64)
        });
        warden_host::soak::Options {
            file: self.file,
            board: self.board,
            virtio: self.virtio,
            faults: self.faults,
            seed,
            recovery_timeout,
            manager: self.manager,
            client: self.client,
            log: self.log,
            verbose: self.verbose,
            only_pds: self.only_pds,
            only_faults: self.only_faults,
        }
    }
}
