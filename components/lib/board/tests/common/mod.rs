//! Shared by the integration tests: real blobs from scripts/board-dtb.sh and dtc, and a driver
//! that reads everything a blob offers (to show that no input panics).
#![allow(dead_code, reason = "each test file uses a different subset")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use warden_board::{Board, BoardDevice, BoardError, PhandleSlot};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// A path in the temporary directory that no other test (or test process) uses.
pub fn scratch_path(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let serial = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "warden-board-{}-{serial}-{name}",
        std::process::id()
    ))
}

/// The blob `scripts/board-dtb.sh BOARD` produces. Fails (never skips) when the script does:
/// CI installs QEMU and dtc, and a missing tool must not pass for a passing test.
pub fn board_dtb(board: &str) -> Vec<u8> {
    let out = scratch_path(&format!("{board}.dtb"));
    let result = Command::new("bash")
        .arg(workspace_root().join("scripts/board-dtb.sh"))
        .arg(board)
        .arg(&out)
        .output()
        .expect("run scripts/board-dtb.sh");
    assert!(
        result.status.success(),
        "scripts/board-dtb.sh {board} failed ({}):\n{}",
        result.status,
        String::from_utf8_lossy(&result.stderr)
    );
    let blob = std::fs::read(&out).expect("read the blob board-dtb.sh wrote");
    std::fs::remove_file(&out).ok();
    blob
}

/// `source` compiled by dtc.
pub fn compile_dts(source: &str) -> Vec<u8> {
    compile_dts_with(source, &[])
}

/// `source` compiled by dtc with `flags` (`-f`: a tree dtc calls wrong, on purpose).
pub fn compile_dts_with(source: &str, flags: &[&str]) -> Vec<u8> {
    let dts = scratch_path("tree.dts");
    let dtb = scratch_path("tree.dtb");
    std::fs::write(&dts, source).unwrap();
    // -q: the test trees break dtc's lint checks (odd `reg`s and the like) on purpose.
    let result = Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb"])
        .args(flags)
        .arg("-o")
        .arg(&dtb)
        .arg(&dts)
        .output()
        .expect("run dtc (Debian package device-tree-compiler)");
    assert!(
        result.status.success(),
        "dtc failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let blob = std::fs::read(&dtb).unwrap();
    std::fs::remove_file(&dts).ok();
    std::fs::remove_file(&dtb).ok();
    blob
}

/// Every item of the device walk.
pub fn all_devices<'a>(board: &Board<'a>) -> Vec<Result<BoardDevice<'a>, BoardError<'a>>> {
    board.devices().collect()
}

/// Every device of a real board's blob, checked to read without a single error.
pub fn all_devices_read_cleanly<'a>(
    board: &Board<'a>,
) -> Vec<Result<BoardDevice<'a>, BoardError<'a>>> {
    let devices = all_devices(board);
    let errors: Vec<_> = devices
        .iter()
        .filter_map(|item| item.as_ref().err())
        .collect();
    assert!(
        errors.is_empty(),
        "the blob reads without errors: {errors:?}"
    );
    devices
}

/// The device named `name`, with its index in the walk; panics if it is missing or an error.
pub fn device<'x, 'a>(
    devices: &'x [Result<BoardDevice<'a>, BoardError<'a>>],
    name: &str,
) -> (usize, &'x BoardDevice<'a>) {
    devices
        .iter()
        .enumerate()
        .find_map(|(index, item)| match item {
            Ok(device) if device.path_name == name => Some((index, device)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no device {name} in {devices:#?}"))
}

/// Everything a caller can ask of a blob; returns how many items the walk gave. Must never
/// panic, whatever the bytes.
pub fn read_everything(bytes: &[u8]) -> Result<usize, String> {
    let board = Board::new(bytes).map_err(|error| error.to_string())?;
    let _ = (board.model(), board.compatible(), format!("{board:?}"));
    // The walk with a phandle index gives exactly what the walk without one gives.
    let mut storage = vec![PhandleSlot::default(); board.phandle_count()];
    let index = board
        .index_phandles(&mut storage)
        .map_err(|error| error.to_string())?;
    let plain: Vec<_> = board.devices().collect();
    let indexed: Vec<_> = board.devices_indexed(&index).collect();
    assert_eq!(plain, indexed, "the index changes what the walk reads");
    let mut items = 0;
    for item in board.devices() {
        items += 1;
        match item {
            Ok(device) => {
                assert!(device.compatible.len() <= 4 && device.mmio.len() <= 4);
                if let Some(parent) = device.parent {
                    assert!(parent < items - 1, "a parent comes before its children");
                }
            }
            Err(error) => {
                let _ = error.to_string();
            }
        }
    }
    Ok(items)
}

/// The QEMU blob is 1 MiB of which a few KiB are used: the blob cut to its blocks (the strings
/// block is last) with `totalsize` to match, so that mutation tests hit bytes that matter.
pub fn compact(blob: &[u8]) -> Vec<u8> {
    let word =
        |index: usize| u32::from_be_bytes(blob[index * 4..index * 4 + 4].try_into().unwrap());
    let used = [(2, 9), (3, 8)]
        .iter()
        .map(|&(offset, size)| (word(offset) + word(size)) as usize)
        .max()
        .unwrap();
    let mut compact = blob[..used].to_vec();
    compact[4..8].copy_from_slice(&u32::try_from(used).unwrap().to_be_bytes());
    compact
}

/// A tree of `users` devices, each with its own chain of `hops` nodes without
/// `#interrupt-cells` (each passing on through `interrupt-parent`) ending at the one GIC: the
/// shape that makes phandle resolution by walks quadratic. Built as a dts and compiled by dtc.
pub fn chain_tree(users: usize, hops: usize) -> Vec<u8> {
    use std::fmt::Write;
    let mut source = String::from(
        "/dts-v1/;\n/ {\n#address-cells = <1>;\n#size-cells = <1>;\n\
         gic: interrupt-controller@1000 { compatible = \"arm,gic-400\"; interrupt-controller; \
         #interrupt-cells = <3>; };\n",
    );
    for user in 0..users {
        for hop in 0..hops {
            let next = if hop + 1 == hops {
                "gic".to_string()
            } else {
                format!("hop_{user}_{}", hop + 1)
            };
            writeln!(
                source,
                "hop_{user}_{hop}: hop-{user}-{hop} {{ interrupt-parent = <&{next}>; }};"
            )
            .unwrap();
        }
        writeln!(
            source,
            "user-{user} {{ compatible = \"test,user\"; interrupt-parent = <&hop_{user}_0>; \
             interrupts = <0 1 4>; }};"
        )
        .unwrap();
    }
    source.push_str("};\n");
    compile_dts(&source)
}
