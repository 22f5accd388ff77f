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
    },
    /// Run a system description, one process per protection domain, until --timeout (exit 3
    /// when a PD without a parent faults: nothing can restart it).
    Run {
        /// The system description (system.xml).
        file: PathBuf,
        /// Stop every protection domain after this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
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
        /// Listen here for control commands: plug blk=IMAGE, plug rng, unplug ADDRESS, devices,
        /// inject kill|hang|panic|corrupt|flood PD.
        #[arg(long)]
        control: Option<PathBuf>,
    },
    /// Send one command to a running system's control socket and print the answer.
    Control {
        /// The control socket (run --control).
        socket: PathBuf,
        /// The command, e.g. plug blk=disk.img, unplug 0xa000000, devices.
        #[arg(required = true)]
        command: Vec<String>,
    },
}

fn main() -> ExitCode {
    match Arguments::parse().command {
        Command::Check { file } => match warden_host::sdf::parse_file(&file) {
            Ok(system) => {
                println!(
                    "{}: ok ({} protection domains, {} memory regions, {} channels)",
                    file.display(),
                    system.protection_domains.len(),
                    system.memory_regions.len(),
                    system.channels.len()
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{error}");
                ExitCode::from(1)
            }
        },
        Command::Control { socket, command } => {
            match warden_host::launcher::control(&socket, &command.join(" ")) {
                Ok(answer) if answer.starts_with("ok") => {
                    println!("{answer}");
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
        Command::Run {
            file,
            timeout,
            trace,
            board,
            virtio,
            control,
        } => {
            let options = warden_host::launcher::Options {
                timeout: timeout.map(std::time::Duration::from_secs_f64),
                trace,
                board,
                virtio,
                control,
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
