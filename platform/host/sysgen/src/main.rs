//! `warden-sysgen [--check] [--root DIR]`: writes every system description that
//! `DIR/systems/*.toml` describes, and the `warden-interface` crate, from
//! `DIR/systems/interfaces.toml`; with `--check`, writes nothing and fails when a committed
//! file differs from what it would write.

use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Warden's system generator.
#[derive(Parser)]
#[command(name = "warden-sysgen", about)]
struct Arguments {
    /// Write nothing: fail when a file differs from what the descriptions make.
    #[arg(long)]
    check: bool,
    /// The repository's top.
    #[arg(long, default_value = ".")]
    root: PathBuf,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))
}

fn run(arguments: &Arguments) -> Result<bool, String> {
    let systems_dir = arguments.root.join("systems");
    let interfaces = read(&systems_dir.join("interfaces.toml"))?;
    let mut systems = Vec::new();
    let listing = std::fs::read_dir(&systems_dir)
        .map_err(|error| format!("{}: {error}", systems_dir.display()))?;
    for entry in listing {
        let path = entry.map_err(|error| error.to_string())?.path();
        let is_system = path
            .extension()
            .is_some_and(|extension| extension == "toml")
            && path
                .file_name()
                .is_some_and(|name| name != "interfaces.toml");
        if is_system {
            let name = format!(
                "systems/{}",
                path.file_name()
                    .map_or(String::new(), |name| name.to_string_lossy().into_owned())
            );
            systems.push((name, read(&path)?));
        }
    }
    systems.sort();
    let files = warden_sysgen::outputs(&interfaces, &systems)?;
    let mut current = true;
    for (relative, text) in files {
        let path = arguments.root.join(&relative);
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        if old == text {
            continue;
        }
        if arguments.check {
            current = false;
            let line = old
                .lines()
                .zip(text.lines())
                .position(|(old, new)| old != new)
                .unwrap_or_else(|| old.lines().count().min(text.lines().count()))
                + 1;
            eprintln!(
                "warden-sysgen: {relative} differs from what systems/ describes (first at line {line}): run `make system` and commit it, or edit the description instead of the file"
            );
        } else {
            std::fs::write(&path, text).map_err(|error| format!("{}: {error}", path.display()))?;
            println!("warden-sysgen: wrote {relative}");
        }
    }
    Ok(current)
}

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    match run(&arguments) {
        Ok(true) => {
            if arguments.check {
                println!("warden-sysgen: every generated file is what systems/ describes");
            }
            ExitCode::SUCCESS
        }
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("warden-sysgen: {error}");
            ExitCode::from(2)
        }
    }
}
