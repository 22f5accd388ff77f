//! `warden-host board FILE.dtb [--json]`: the devices Warden makes of a board's device tree,
//! and every node it leaves out with the reason. What a person porting Warden to a new board
//! runs first; the device manager reads the tree with the same code (`warden-board`, phandles
//! indexed).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use warden_board::{Board, BoardBus, BoardDevice, BoardError, PhandleSlot};

/// One item of the walk: a device, or a node left out and why.
#[derive(Debug)]
enum Item<'a> {
    Device {
        path: String,
        device: Box<BoardDevice<'a>>,
        /// Path of its parent device.
        parent: Option<String>,
    },
    LeftOut {
        path: String,
        error: BoardError<'a>,
    },
}

/// The report: its text (or JSON) and whether the blob could be read at all.
#[derive(Debug)]
pub struct Report {
    /// What to print.
    pub text: String,
    /// Devices found.
    pub devices: usize,
    /// Nodes left out.
    pub left_out: usize,
}

/// The largest board blob read: real trees are under 1 MiB; a device (`/dev/zero`) or a huge
/// file is refused instead of read until memory runs out.
pub const LARGEST_BLOB: u64 = 16 << 20;

/// Reads the board blob at `path`, at most [`LARGEST_BLOB`] bytes.
///
/// # Errors
/// The file cannot be read, or is larger than that (the message says which).
pub fn read_blob(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let mut blob = Vec::new();
    file.take(LARGEST_BLOB + 1)
        .read_to_end(&mut blob)
        .map_err(|error| format!("{}: {error}", path.display()))?;
    if blob.len() as u64 > LARGEST_BLOB {
        return Err(format!(
            "{}: larger than {} MiB, which no board's device tree is",
            path.display(),
            LARGEST_BLOB >> 20
        ));
    }
    Ok(blob)
}

/// A short name for why a node was left out, for the summary's counts.
fn reason(error: &BoardError<'_>) -> String {
    match error {
        BoardError::TooMany { what, limit, .. } => format!("more {what} than {limit}"),
        BoardError::BadProperty { property, .. } => format!("malformed {property}"),
        BoardError::BadParentProperty { property, .. } => {
            format!("parent's {property} not supported")
        }
        BoardError::NotTranslatable { .. } => "no CPU-physical address".to_string(),
        BoardError::TooDeep { .. } => "nested too deep".to_string(),
        _ => "blob malformed".to_string(),
    }
}

fn full_path(names: impl Iterator<Item = impl AsRef<str>>) -> String {
    let mut path = String::new();
    for name in names {
        path.push('/');
        path.push_str(name.as_ref());
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

/// Reads `blob` and describes it.
///
/// # Errors
/// The blob as a whole cannot be read (the error says why).
pub fn report(blob: &[u8], json: bool) -> Result<Report, String> {
    let board = Board::new(blob).map_err(|error| error.to_string())?;
    let mut storage = vec![PhandleSlot::default(); board.phandle_count()];
    let index = board
        .index_phandles(&mut storage)
        .map_err(|error| error.to_string())?;
    let mut walk = board.devices_indexed(&index);
    let mut items = Vec::new();
    // The path of each item by its index in the walk (parents are given by that index).
    let mut paths: Vec<String> = Vec::new();
    while let Some(item) = walk.next() {
        let path = full_path(walk.path());
        paths.push(path.clone());
        items.push(match item {
            Ok(device) => {
                let parent = device.parent.and_then(|parent| paths.get(parent).cloned());
                Item::Device {
                    path,
                    device: Box::new(device),
                    parent,
                }
            }
            Err(error) => Item::LeftOut { path, error },
        });
    }
    let devices = items
        .iter()
        .filter(|item| matches!(item, Item::Device { .. }))
        .count();
    let left_out = items.len() - devices;
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for item in &items {
        if let Item::LeftOut { error, .. } = item {
            *reasons.entry(reason(error)).or_insert(0) += 1;
        }
    }
    let reasons = if reasons.is_empty() {
        "none".to_string()
    } else {
        reasons
            .iter()
            .map(|(reason, count)| format!("{count} {reason}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let summary = format!("board: {devices} devices, {left_out} left out (reasons: {reasons})");
    let name = board.model().or(board.compatible()).unwrap_or("?");
    let text = if json {
        json_report(name, &items, &summary)
    } else {
        text_report(name, &items, &summary)
    };
    Ok(Report {
        text,
        devices,
        left_out,
    })
}

/// The device's bus: `platform`, or its controller's kind and its address there
/// (`i2c@0x50`).
fn bus(device: &BoardDevice<'_>) -> String {
    match device.bus {
        BoardBus::Platform => "platform".to_string(),
        BoardBus::Local {
            kind,
            address: Some(address),
        } => format!("{kind}@{address:#x}"),
        BoardBus::Local {
            kind,
            address: None,
        } => kind.to_string(),
    }
}

fn windows(device: &BoardDevice<'_>) -> String {
    let windows: Vec<String> = device
        .mmio
        .iter()
        .map(|window| format!("{:#x}+{:#x}", window.base, window.size))
        .collect();
    let mut text = if windows.is_empty() {
        "-".to_string()
    } else {
        windows.join(",")
    };
    if device.reg_not_translatable {
        text.push_str(" (+ reg with no CPU-physical address)");
    }
    text
}

fn intids(device: &BoardDevice<'_>) -> String {
    let mut text: Vec<String> = device.irqs.iter().map(u32::to_string).collect();
    if device.interrupt_parent_not_gic {
        text.push("(+ not on the GIC)".to_string());
    }
    if text.is_empty() {
        "-".to_string()
    } else {
        text.join(",")
    }
}

/// A host bridge's buses, apertures and INTx routes, for its second line.
fn pci_host(host: &warden_board::PciHost) -> String {
    let apertures: Vec<String> = host
        .apertures
        .iter()
        .map(|aperture| {
            format!(
                "{} {:#x}+{:#x} at {:#x}",
                aperture.space, aperture.pci_base, aperture.size, aperture.cpu_base
            )
        })
        .collect();
    let untranslated = match host.ranges_not_translatable {
        0 => String::new(),
        ranges => format!(" (+ {ranges} ranges with no CPU address)"),
    };
    format!(
        "pci host: buses {}-{}; apertures {}{untranslated}; INTx {} routes{}",
        host.first_bus,
        host.last_bus,
        if apertures.is_empty() {
            "-".to_string()
        } else {
            apertures.join(", ")
        },
        host.intx.len(),
        match (host.intx_malformed, host.intx_not_gic) {
            (true, _) => " (interrupt-map malformed: no INTx routed)",
            (false, true) => " (+ routes not on the GIC)",
            (false, false) => "",
        }
    )
}

fn text_report(name: &str, items: &[Item<'_>], summary: &str) -> String {
    let mut out = format!("board '{name}'\n");
    for item in items {
        match item {
            Item::Device {
                path,
                device,
                parent,
            } => {
                let _ = writeln!(
                    out,
                    "{path}  compatible {}  bus {}  windows {}  intids {}  parent {}{}",
                    device.compatible.join(" "),
                    bus(device),
                    windows(device),
                    intids(device),
                    parent.as_deref().unwrap_or("-"),
                    if device.enabled { "" } else { "  (disabled)" }
                );
                if let Some(host) = &device.pci {
                    let _ = writeln!(out, "    {}", pci_host(host));
                }
            }
            Item::LeftOut { path, error } => {
                let _ = writeln!(out, "{path}  left out: {error}");
            }
        }
    }
    out.push_str(summary);
    out
}

fn json_report(name: &str, items: &[Item<'_>], summary: &str) -> String {
    let mut devices = Vec::new();
    let mut left_out = Vec::new();
    for item in items {
        match item {
            Item::Device {
                path,
                device,
                parent,
            } => devices.push(serde_json::json!({
                "path": path,
                "compatible": device.compatible.as_slice(),
                "bus": match device.bus {
                    BoardBus::Platform => "platform",
                    BoardBus::Local { kind, .. } => kind,
                },
                "address": match device.bus {
                    BoardBus::Local { address, .. } => address,
                    BoardBus::Platform => None,
                },
                "windows": device.mmio.iter()
                    .map(|w| serde_json::json!({ "base": w.base, "size": w.size }))
                    .collect::<Vec<_>>(),
                "reg_not_translatable": device.reg_not_translatable,
                "intids": device.irqs.as_slice(),
                "interrupts_not_on_gic": device.interrupt_parent_not_gic,
                "parent": parent,
                "enabled": device.enabled,
                "pci": device.pci.as_ref().map(|host| serde_json::json!({
                    "first_bus": host.first_bus,
                    "last_bus": host.last_bus,
                    "apertures": host.apertures.iter().map(|aperture| serde_json::json!({
                        "space": aperture.space.to_string(),
                        "pci_base": aperture.pci_base,
                        "cpu_base": aperture.cpu_base,
                        "size": aperture.size,
                    })).collect::<Vec<_>>(),
                    "intx": host.intx.iter().map(|route| serde_json::json!({
                        "unit": route.unit,
                        "pin": route.pin,
                        "intid": route.intid,
                    })).collect::<Vec<_>>(),
                    "intx_not_gic": host.intx_not_gic,
                    "intx_malformed": host.intx_malformed,
                    "ranges_not_translatable": host.ranges_not_translatable,
                })),
            })),
            Item::LeftOut { path, error } => left_out.push(serde_json::json!({
                "path": path,
                "reason": reason(error),
                "error": error.to_string(),
            })),
        }
    }
    serde_json::json!({
        "board": name,
        "devices": devices,
        "left_out": left_out,
        "summary": summary,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn paths_are_joined_from_the_root() {
        assert_eq!(full_path(["soc", "uart@0"].iter()), "/soc/uart@0");
        assert_eq!(full_path(std::iter::empty::<&str>()), "/");
    }

    #[test]
    fn a_blob_that_is_not_one_is_an_error() {
        assert!(report(b"not a device tree", false)
            .unwrap_err()
            .contains("device tree blob"));
    }
}
