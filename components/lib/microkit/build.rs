//! On bare metal, compiles the libmicrokit shim (`src/sel4/shim.c`) against the SDK's headers and
//! links it and `libmicrokit.a`, when `MICROKIT_BOARD_DIR` names an SDK board/config directory
//! (the Makefile sets it for the image build). Without it (`make check-target`), the crate still
//! compiles for the target, which proves the Rust side; only the final link needs the SDK.
//! `WARDEN_CC` / `WARDEN_AR` override the cross tools (default Debian's `aarch64-linux-gnu-`).

#![allow(
    clippy::panic,
    clippy::expect_used,
    reason = "a build script reports a broken setup by failing the build"
)]

use std::path::PathBuf;
use std::process::Command;

fn run(command: &mut Command) {
    let status = command
        .status()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(status.success(), "{command:?} failed with {status}");
}

fn main() {
    println!("cargo:rerun-if-changed=src/sel4/shim.c");
    println!("cargo:rerun-if-env-changed=MICROKIT_BOARD_DIR");
    println!("cargo:rerun-if-env-changed=WARDEN_CC");
    println!("cargo:rerun-if-env-changed=WARDEN_AR");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let Ok(board) = std::env::var("MICROKIT_BOARD_DIR") else {
        return;
    };
    let board = PathBuf::from(board);
    let header = board.join("include/microkit.h");
    assert!(
        header.is_file(),
        "MICROKIT_BOARD_DIR={} has no include/microkit.h: set it to $MICROKIT_SDK/board/$MICROKIT_BOARD/$MICROKIT_CONFIG",
        board.display()
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()));
    let cc = std::env::var("WARDEN_CC").unwrap_or_else(|_| "aarch64-linux-gnu-gcc".into());
    let ar = std::env::var("WARDEN_AR").unwrap_or_else(|_| "aarch64-linux-gnu-ar".into());
    let object = out.join("shim.o");
    let library = out.join("libwarden_shim.a");
    run(Command::new(&cc)
        .args([
            "-c",
            "-O2",
            "-Wall",
            "-Werror",
            "-ffreestanding",
            "-nostdlib",
        ])
        .args(["-mgeneral-regs-only", "-fno-stack-protector"])
        .arg("-I")
        .arg(board.join("include"))
        .arg("src/sel4/shim.c")
        .arg("-o")
        .arg(&object));
    let _ = std::fs::remove_file(&library);
    run(Command::new(&ar).arg("crs").arg(&library).arg(&object));
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=warden_shim");
    println!(
        "cargo:rustc-link-search=native={}",
        board.join("lib").display()
    );
    println!("cargo:rustc-link-lib=static=microkit");
}
