//! Embeds the board's device tree blob: `WARDEN_BOARD_DTB` if set (the Makefile sets it for the
//! board it builds), otherwise the QEMU virt DTB, which `scripts/board-dtb.sh` has QEMU dump with
//! the machine options `make qemu` uses. Never a hand-written blob.

use std::path::PathBuf;
use std::process::{exit, Command};

fn main() {
    println!("cargo:rerun-if-env-changed=WARDEN_BOARD_DTB");
    let Some(out_dir) = std::env::var_os("OUT_DIR") else {
        eprintln!("error: cargo did not set OUT_DIR");
        exit(1);
    };
    let out = PathBuf::from(out_dir).join("board.dtb");
    if let Some(path) = std::env::var_os("WARDEN_BOARD_DTB") {
        let path = PathBuf::from(path);
        println!("cargo:rerun-if-changed={}", path.display());
        if let Err(error) = std::fs::copy(&path, &out) {
            eprintln!("error: WARDEN_BOARD_DTB={}: {error}", path.display());
            exit(1);
        }
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let script = root.join("scripts/board-dtb.sh");
    println!("cargo:rerun-if-changed={}", script.display());
    let status = Command::new("bash")
        .arg(&script)
        .arg("qemu_virt_aarch64")
        .arg(&out)
        .status();
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => {
            eprintln!(
                "error: {} qemu_virt_aarch64 failed ({status}); the device manager embeds the board's DTB, which QEMU dumps (install qemu-system-arm, or set WARDEN_BOARD_DTB to a .dtb file)",
                script.display()
            );
            exit(1);
        }
        Err(error) => {
            eprintln!("error: running {}: {error}", script.display());
            exit(1);
        }
    }
}
