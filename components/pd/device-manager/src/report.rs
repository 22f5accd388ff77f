//! What the manager tells the log: one line for each change to the tree (a device added, bound,
//! unbound or removed), a line for each driver registered and each request that failed, and the
//! whole tree once, at the end of bring-up (later the shell's `tree` shows it).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use log::info;

use warden_manager_core::{Completion, PdId};
use warden_vocabulary::{DeviceId, DriverId};

use crate::Core;

/// A device as the log last described it.
#[derive(Clone, PartialEq, Eq)]
struct Seen {
    device: DeviceId,
    compatible: String,
    /// The driver it is bound to, with its name.
    driver: Option<(DriverId, String)>,
}

impl Seen {
    fn name(&self) -> String {
        alloc::format!("device {} ({})", self.device, self.compatible)
    }
}

/// The log's memory of the tree.
pub struct Report {
    /// The tree as the log last described it.
    seen: Vec<Seen>,
    /// While the board is loaded its devices are summed up in one line, not one each.
    loading: bool,
    /// The whole tree has been printed, once bring-up ended.
    brought_up: bool,
}

impl Report {
    pub(crate) fn new() -> Self {
        Self {
            seen: Vec::new(),
            loading: true,
            brought_up: false,
        }
    }

    /// The board's devices are in: from now on every change is a line.
    pub(crate) fn loaded(&mut self, core: &Core) {
        self.loading = false;
        self.seen = describe(core);
    }

    /// A request completed.
    pub(crate) fn completed(&mut self, completion: &Completion) {
        match completion.result {
            // A registration is logged where it is decided; a device's binding as a change
            // of the tree.
            Ok(_) => {}
            Err(error) => info!(
                "manager: request {:?} failed: {error:?}",
                completion.request
            ),
        }
    }

    /// A driver added a child from inside its probe: the line says how (the change log need
    /// not repeat it).
    pub(crate) fn child_added(&mut self, core: &Core, pd: PdId, child: DeviceId, parent: DeviceId) {
        let compatible = compatible(core, child);
        info!(
            "manager: driver PD {} added child {child} ({compatible}) under {parent} (__device_add, parent locked by its probe)",
            pd.0
        );
        self.seen.push(Seen {
            device: child,
            compatible,
            driver: None,
        });
    }

    /// After every step of the core: one line for each change since the last, and the whole
    /// tree when bring-up has just ended (`all_registered`: every driver PD asked to register).
    pub(crate) fn changed(&mut self, core: &Core, all_registered: bool) {
        if self.loading {
            return;
        }
        let now = describe(core);
        for old in &self.seen {
            let new = now.iter().find(|new| new.device == old.device);
            if let Some((_, driver)) = &old.driver {
                if new.is_none_or(|new| new.driver != old.driver) {
                    info!("manager: {} unbound from '{driver}'", old.name());
                }
            }
            if new.is_none() {
                info!("manager: {} removed", old.name());
            }
        }
        for new in &now {
            let old = self.seen.iter().find(|old| old.device == new.device);
            if old.is_none() {
                match core.device(new.device).ok().and_then(|info| info.parent) {
                    Some(parent) => info!("manager: {} added under {parent}", new.name()),
                    None => info!("manager: {} added", new.name()),
                }
            }
            if let Some((_, driver)) = &new.driver {
                if old.is_none_or(|old| old.driver != new.driver) {
                    info!("manager: {} bound to driver '{driver}'", new.name());
                }
            }
        }
        self.seen = now;
        if !self.brought_up && all_registered && core.is_quiescent() {
            self.brought_up = true;
            self.print_tree(core);
        }
    }

    fn print_tree(&self, core: &Core) {
        let bound = self
            .seen
            .iter()
            .filter(|seen| seen.driver.is_some())
            .count();
        info!(
            "manager: bring-up done; device tree ({} devices, {bound} bound):",
            self.seen.len()
        );
        // Depth-first from the roots, an explicit stack.
        let mut stack: Vec<(DeviceId, usize)> = core.roots().map(|root| (root, 1)).collect();
        stack.reverse();
        while let Some((device, depth)) = stack.pop() {
            let Some(seen) = self.seen.iter().find(|seen| seen.device == device) else {
                continue;
            };
            let mut resources = String::new();
            if let Ok(info) = core.device(device) {
                if let Some(window) = info.resources.mmio.first() {
                    resources.push_str(&alloc::format!(" @0x{:x}", window.base));
                }
                if let Some(irq) = info.resources.irqs.first() {
                    resources.push_str(&alloc::format!(" irq {irq}"));
                }
            }
            info!(
                "manager: {:indent$}{device} {}{resources} -> {}",
                "",
                seen.compatible,
                seen.driver
                    .as_ref()
                    .map_or("(unbound)", |(_, name)| name.as_str()),
                indent = depth * 2
            );
            if let Ok(children) = core.children(device) {
                let children: Vec<DeviceId> = children.collect();
                stack.extend(children.into_iter().rev().map(|child| (child, depth + 1)));
            }
        }
    }
}

/// A device's most specific compatible string; `(disabled)` for a device with no match data,
/// which only the board's disabled nodes have (so that no driver can match them).
pub fn compatible(core: &Core, device: DeviceId) -> String {
    let Ok(info) = core.device(device) else {
        return String::new();
    };
    match (info.match_data.first_compatible(), info.match_data.bus_id) {
        (Some(name), _) => name.to_string(),
        (None, None) => "(disabled)".to_string(),
        (None, Some(id)) => alloc::format!("(bus id {id})"),
    }
}

/// Every device with what the log says of it.
fn describe(core: &Core) -> Vec<Seen> {
    core.devices()
        .map(|device| Seen {
            device,
            compatible: compatible(core, device),
            driver: core.device(device).ok().and_then(|info| {
                let driver = info.driver?;
                Some((driver, core.driver(driver).ok()?.name.to_string()))
            }),
        })
        .collect()
}
