//! `warden-host`: checks a Microkit system description (`check`); running one (`run`) is not
//! built yet and says so.

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
    /// Run a system description, one process per protection domain (not built yet: exits 2).
    Run {
        /// The system description (system.xml).
        file: PathBuf,
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
        Command::Run { file } => {
            eprintln!(
                "warden-host run {}: running a system is not built yet (issue 4); 'check' validates it",
                file.display()
            );
            ExitCode::from(2)
        }
    }
}
