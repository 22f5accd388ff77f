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
    /// Run a system description, one process per protection domain, until --timeout.
    Run {
        /// The system description (system.xml).
        file: PathBuf,
        /// Stop every protection domain after this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
        /// Write every notification, call, fault and restart to this file as JSON lines.
        #[arg(long)]
        trace: Option<PathBuf>,
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
        Command::Run {
            file,
            timeout,
            trace,
        } => {
            let options = warden_host::launcher::Options {
                timeout: timeout.map(std::time::Duration::from_secs_f64),
                trace,
            };
            match warden_host::launcher::run(&file, &options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("warden-host: {error}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
