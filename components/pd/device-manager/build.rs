//! Embeds the board's device tree blob: `WARDEN_BOARD_DTB` if set (the Makefile sets it for the
//! board it builds), otherwise the QEMU virt DTB, which `scripts/board-dtb.sh` has QEMU dump with
//! the machine options `make qemu` uses. Never a hand-written blob.
//!
//! Embeds the grants of the system description the image is built for (`WARDEN_SYSTEM_FILE`,
//! which the Makefile sets; otherwise the top-level `system.xml`): for each child of the PD
//! whose program is `device_manager.elf`, the device memory and interrupts it is given
//! (`warden_system::grants`), as `grants.rs`.

use std::path::PathBuf;
use std::process::{exit, Command};

fn main() {
    println!("cargo:rerun-if-env-changed=WARDEN_BOARD_DTB");
    let Some(out_dir) = std::env::var_os("OUT_DIR") else {
        eprintln!("error: cargo did not set OUT_DIR");
        exit(1);
    };
    embed_grants(&PathBuf::from(&out_dir));
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

/// Writes `grants.rs` (see the crate docs).
fn embed_grants(out_dir: &std::path::Path) {
    println!("cargo:rerun-if-env-changed=WARDEN_SYSTEM_FILE");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let file = std::env::var_os("WARDEN_SYSTEM_FILE")
        .map_or_else(|| root.join("system.xml"), PathBuf::from);
    println!("cargo:rerun-if-changed={}", file.display());
    let system = warden_system::parse_file(&file).unwrap_or_else(|error| {
        eprintln!("error: the system description the manager takes its grants from: {error}");
        exit(1);
    });
    let Some(manager) = warden_system::grants::find_by_program(&system, "device_manager.elf")
    else {
        eprintln!(
            "error: {}: no single PD runs device_manager.elf, whose children's grants the manager embeds",
            file.display()
        );
        exit(1);
    };
    let grants = warden_system::grants::child_grants(&system, manager).unwrap_or_else(|error| {
        eprintln!("error: {}: {error}", file.display());
        exit(1);
    });
    // Named relative to the repository when it is inside it: the same sources give the same
    // image wherever they are checked out.
    let named = std::fs::canonicalize(&file)
        .ok()
        .and_then(|file| {
            let root = std::fs::canonicalize(&root).ok()?;
            file.strip_prefix(root)
                .ok()
                .map(std::path::Path::to_path_buf)
        })
        .unwrap_or_else(|| file.clone());
    let mut code = format!(
        "/// The system description the grants come from.\npub const SYSTEM_FILE: &str = {:?};\n/// One driver PD's grant: its child id, device windows (base, size), interrupts.\npub type PdGrant = (u64, &'static [(u64, u64)], &'static [u32]);\n/// Each driver PD's grant.\npub const GRANTS: &[PdGrant] = &[\n",
        named.display().to_string()
    );
    for (id, grant) in &grants {
        let windows: Vec<String> = grant
            .windows
            .iter()
            .map(|window| format!("(0x{:x}, 0x{:x})", window.base, window.size))
            .collect();
        let irqs: Vec<String> = grant.irqs.iter().map(u32::to_string).collect();
        code.push_str(&format!(
            "    ({id}, &[{}], &[{}]),\n",
            windows.join(", "),
            irqs.join(", ")
        ));
    }
    code.push_str("];\n");
    if let Err(error) = std::fs::write(out_dir.join("grants.rs"), code) {
        eprintln!("error: writing grants.rs: {error}");
        exit(1);
    }
}
