//! The board's devices, from its device tree blob, added to the tree at start-up.

use alloc::borrow::Cow;
use alloc::vec::Vec;
use log::{info, warn};

use warden_manager_core::{DeviceDescriptor, Request, Requester};
use warden_vocabulary::{DeviceId, MatchData, Outcome, Resources, MAX_INTID};

use crate::DeviceManager;

/// The board's device tree blob (see `build.rs`).
pub static BOARD_DTB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/board.dtb"));

/// The blob the manager reads: [`BOARD_DTB`] on seL4. On the host platform the launcher names
/// the board it models (`warden-host run --board FILE`) in `WARDEN_BOARD_DTB`, and the manager
/// reads that one, so that one build runs any board's system description; an unreadable file
/// is reported and the embedded blob used.
fn board_dtb() -> Cow<'static, [u8]> {
    #[cfg(not(target_os = "none"))]
    if let Some(path) = std::env::var_os("WARDEN_BOARD_DTB") {
        match std::fs::read(&path) {
            Ok(bytes) => return Cow::Owned(bytes),
            Err(error) => warn!(
                "manager: board {}: {error}; using the built-in board",
                path.to_string_lossy()
            ),
        }
    }
    Cow::Borrowed(BOARD_DTB)
}

impl DeviceManager {
    /// Adds the board's devices from its DTB (see the crate docs).
    pub(crate) fn load_board(&mut self) {
        let blob = board_dtb();
        let board = match warden_board::Board::new(&blob) {
            Ok(board) => board,
            Err(error) => {
                warn!("manager: the board's device tree is unusable: {error}; no board devices");
                return;
            }
        };
        info!(
            "manager: board '{}': reading its device tree",
            board.model().or(board.compatible()).unwrap_or("?"),
        );
        // The manager's device for each board device, by its index in the DTB's sequence.
        let mut added: Vec<Option<DeviceId>> = Vec::new();
        let (mut count, mut disabled) = (0, 0);
        // Phandles indexed once: the walk is linear in the blob's size, however many
        // interrupt controllers and interrupt-parent hops the tree has.
        let mut phandles = alloc::vec![warden_board::PhandleSlot::default(); board.phandle_count()];
        let index = match board.index_phandles(&mut phandles) {
            Ok(index) => index,
            Err(error) => {
                warn!("manager: the board's device tree is unusable: {error}; no board devices");
                return;
            }
        };
        for device in board.devices_indexed(&index) {
            let device = match device {
                Ok(device) => device,
                Err(error) => {
                    warn!("manager: board: {error}; node left out");
                    added.push(None);
                    continue;
                }
            };
            let mut match_data = MatchData::default();
            // A disabled node is in the tree, but no driver may have it: with no match data,
            // no match table matches it.
            if device.enabled {
                for name in &device.compatible {
                    if let Ok(name) = (*name).try_into() {
                        let _ = match_data.compatible.push(name);
                    }
                }
            }
            let descriptor = DeviceDescriptor {
                bus: self.platform,
                match_data,
                resources: board_resources(&device),
            };
            let parent = device
                .parent
                .and_then(|index| added.get(index).copied().flatten());
            let request = Request::AddDevice { parent, descriptor };
            match self.submit(Requester::Manager, request) {
                Ok(Some(Outcome::Device { device: id, .. })) => {
                    count += 1;
                    if !device.enabled {
                        disabled += 1;
                    }
                    added.push(Some(id));
                }
                other => {
                    warn!(
                        "manager: board node '{}' not added: {other:?}",
                        device.path_name
                    );
                    added.push(None);
                }
            }
        }
        info!(
            "manager: board device tree loaded: {count} devices ({disabled} disabled), waiting for drivers"
        );
    }
}

/// A board device's resources as the core keeps them. What no driver can be given (an empty
/// or wrapping window, an interrupt beyond the GIC's 0-1019, as a GICv3.1 extended SPI would
/// be) is left out, with a word, so that every device in the tree can be probed and listed; so
/// is what does not fit the core's capacity.
fn board_resources(device: &warden_board::BoardDevice<'_>) -> Resources {
    let mut resources = Resources::default();
    for window in &device.mmio {
        if !window.is_valid() || resources.mmio.push(*window).is_err() {
            warn!(
                "manager: board node '{}': window {:#x}+{:#x} left out",
                device.path_name, window.base, window.size
            );
        }
    }
    for &irq in &device.irqs {
        if irq > MAX_INTID || resources.irqs.push(irq).is_err() {
            warn!(
                "manager: board node '{}': interrupt {irq} left out (not a GIC INTID a driver \
                 can be given, or one too many)",
                device.path_name
            );
        }
    }
    resources
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_board::BoardDevice;
    use warden_vocabulary::MmioWindow;

    #[test]
    fn board_resources_leave_out_what_no_driver_can_be_given() {
        let window = |base, size| MmioWindow { base, size };
        let device = BoardDevice {
            path_name: "odd@0",
            depth: 1,
            parent: None,
            compatible: heapless::Vec::new(),
            mmio: heapless::Vec::from_slice(&[
                window(0x900_0000, 0x1000),
                window(0x1000, 0),
                window(u64::MAX, 2),
            ])
            .unwrap(),
            irqs: heapless::Vec::from_slice(&[33, 1019, 1020, 4096 + 5]).unwrap(),
            interrupt_parent_not_gic: false,
            enabled: true,
        };
        let resources = board_resources(&device);
        assert_eq!(resources.mmio.as_slice(), [window(0x900_0000, 0x1000)]);
        assert_eq!(resources.irqs.as_slice(), [33, 1019]);
    }
}
