//! Warden's system generator: one short description per system (`systems/<board>.toml`) and
//! the interfaces of the PD programs (`systems/interfaces.toml`) become the system's Microkit
//! system description and the constants of the `warden-interface` crate.
//!
//! What it makes for a description, so that the description says only what is the system's own:
//! - every driver PD (a PD with `driver = n`) becomes child `n` of the device manager, with its
//!   two rings (`to_drivern`, `from_drivern`), mapped at the addresses both interfaces give,
//!   and the channel on which it calls the manager (the manager's channel `n`, its channel 0);
//! - every PD gets its channel to the log printer (its `log` channel, the printer's next id);
//! - each map's setvar symbols, permissions and caching follow from its kind in the interface.
//!
//! What it checks, each error naming the PD, map, channel or region at fault: names and ends
//! that exist, channel ids used once per PD, maps that do not overlap, device maps that have a
//! physical address, regions of whole pages, calls only to PDs of higher priority (the
//! Microkit's rule for protected procedure calls), every PD able to reach the log printer.
#![forbid(unsafe_code)]

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// The Microkit's page size: every memory region is a whole number of them.
const PAGE: u64 = 0x1000;
/// The highest channel id a Microkit PD has.
const MAX_CHANNEL: u8 = 61;

// --- The descriptions, as written -----------------------------------------------------------

/// One program's interface in `systems/interfaces.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InterfaceText {
    doc: String,
    extends: Option<String>,
    #[serde(default)]
    channels: BTreeMap<String, ChannelText>,
    #[serde(default)]
    ranges: BTreeMap<String, RangeText>,
    #[serde(default)]
    maps: BTreeMap<String, MapText>,
    driver_rings: Option<DriverRings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelText {
    id: u8,
    doc: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeText {
    first: u8,
    last: u8,
    doc: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum MapKind {
    /// Memory shared between PDs: `NAME`, `NAME_size`.
    Shared,
    /// Device registers: `NAME_vaddr`, `NAME_size`, `NAME_paddr`; uncached.
    Device,
    /// Memory a device reads and writes: `NAME_vaddr`, `NAME_size`, `NAME_paddr`; cached.
    Dma,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MapText {
    kind: MapKind,
    vaddr: u64,
    perms: Option<String>,
    doc: String,
}

/// The device manager's rings to driver PD n: at `vaddr + (n - 1) * 2 * size`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct DriverRings {
    vaddr: u64,
    size: u64,
}

/// A system's description, `systems/<board>.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SystemText {
    output: String,
    comment: String,
    #[serde(default)]
    region: Vec<RegionText>,
    pd: Vec<PdText>,
    #[serde(default)]
    channel: Vec<LinkText>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionText {
    comment: Option<String>,
    name: String,
    size: u64,
    paddr: Option<u64>,
    maps: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PdText {
    comment: Option<String>,
    name: String,
    image: String,
    interface: String,
    driver: Option<u8>,
    priority: u8,
    stack_size: Option<u64>,
    #[serde(default)]
    passive: bool,
    #[serde(default)]
    log_printer: bool,
    #[serde(default)]
    irqs: Vec<IrqText>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IrqText {
    channel: String,
    irq: u32,
    trigger: Option<String>,
    comment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkText {
    notify: Option<[String; 2]>,
    call: Option<[String; 2]>,
}

// --- Interfaces, resolved -------------------------------------------------------------------

/// A map an interface offers.
#[derive(Debug, Clone)]
struct MapSpec {
    kind: MapKind,
    vaddr: u64,
    perms: String,
    doc: String,
}

/// A program's interface with what it extends folded in.
#[derive(Debug, Default)]
struct Interface {
    doc: String,
    parent: Option<String>,
    /// Its own channels and those it extends.
    channels: BTreeMap<String, (u8, String)>,
    ranges: BTreeMap<String, (u8, u8, String)>,
    maps: BTreeMap<String, MapSpec>,
    driver_rings: Option<DriverRings>,
    /// Only what this interface adds (for the generated module, which re-exports its parent's).
    own_channels: BTreeSet<String>,
    own_maps: BTreeSet<String>,
}

/// Every program's interface, from `systems/interfaces.toml`.
#[derive(Debug)]
pub struct Interfaces {
    by_name: BTreeMap<String, Interface>,
}

/// Text that goes into the XML or the generated Rust as it is (a comment, a doc line, a path):
/// no control characters but line breaks where `lines` allows them.
fn check_text(what: &str, text: &str, lines: bool) -> Result<(), String> {
    // Control characters, and the bidirectional-text controls that make text read otherwise
    // than it compiles.
    let hostile = |c: &char| {
        (c.is_control() && !(lines && *c == '\n'))
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    match text.chars().find(hostile) {
        Some(c) => Err(format!(
            "{what} holds the control character {:?}{}",
            c,
            if lines { "" } else { " (it is one line)" }
        )),
        None => Ok(()),
    }
}

/// Rust's keywords (strict and reserved), which a name cannot be: interfaces become modules.
const KEYWORDS: [&str; 52] = [
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use",
    "where", "while", "abstract", "become", "box", "do", "final", "macro", "override", "priv",
    "typeof", "unsized", "virtual", "yield", "try", "gen", "union",
];

fn check_name(what: &str, name: &str) -> Result<(), String> {
    if KEYWORDS.contains(&name) {
        return Err(format!("{what} '{name}': a Rust keyword cannot name it"));
    }
    let good = !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if good {
        Ok(())
    } else {
        Err(format!(
            "{what} '{name}': a name is lower-case letters, digits and '_', not starting with a digit"
        ))
    }
}

impl Interfaces {
    /// Reads `systems/interfaces.toml`'s text.
    ///
    /// # Errors
    /// A TOML or field error, an unknown or circular `extends`, a name used twice, an id above
    /// 61, an empty range, a map's vaddr not on a page, unknown permissions.
    pub fn parse(text: &str) -> Result<Self, String> {
        let table: BTreeMap<String, InterfaceText> =
            toml::from_str(text).map_err(|error| format!("interfaces: {error}"))?;
        let mut by_name = BTreeMap::new();
        for name in table.keys() {
            resolve(&table, name, &mut by_name, &mut Vec::new())?;
        }
        Ok(Self { by_name })
    }

    fn get(&self, name: &str) -> Option<&Interface> {
        self.by_name.get(name)
    }

    /// The `warden-interface` crate's source: a module per interface.
    #[must_use]
    pub fn rust(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "//! The interfaces of Warden's PD programs: the channel ids and setvar symbols each\n\
             //! expects of its system description. A PD crate's `interface` module is made of these.\n\
             //!\n\
             //! Generated by warden-sysgen from systems/interfaces.toml: edit that, then `make system`.\n\
             #![no_std]\n\
             #![forbid(unsafe_code)]\n",
        );
        for (name, interface) in &self.by_name {
            let _ = write!(
                out,
                "\n/// {}\n#[rustfmt::skip]\npub mod {name} {{\n",
                interface.doc
            );
            if let Some(parent) = &interface.parent {
                let _ = writeln!(out, "    pub use super::{parent}::*;");
            }
            let mut channels: Vec<_> = interface
                .own_channels
                .iter()
                .filter_map(|channel| {
                    interface
                        .channels
                        .get(channel)
                        .map(|c| (c.0, channel, &c.1))
                })
                .collect();
            channels.sort();
            if !channels.is_empty() {
                out.push_str("    use warden_microkit::Channel;\n");
            }
            for (id, channel, doc) in channels {
                let _ = write!(
                    out,
                    "    /// {doc}\n    pub const {}: Channel = Channel::new({id});\n",
                    channel.to_uppercase()
                );
            }
            for (range, (first, last, doc)) in &interface.ranges {
                let _ = write!(
                    out,
                    "    /// {doc}\n    pub const {}: core::ops::RangeInclusive<u8> = {first}..={last};\n",
                    range.to_uppercase()
                );
            }
            if let Some(rings) = interface.driver_rings {
                let _ = write!(
                    out,
                    "    /// Where driver PD 1's rings are mapped (PD n's: {:#x} bytes of rings further per PD).\n    pub const DRIVER_RINGS_VADDR: usize = {:#x};\n    /// The size of each ring to and from a driver PD.\n    pub const DRIVER_RING_SIZE: usize = {:#x};\n",
                    rings.size * 2,
                    rings.vaddr,
                    rings.size
                );
            }
            let mut maps: Vec<_> = interface
                .own_maps
                .iter()
                .filter_map(|map| interface.maps.get(map).map(|spec| (spec.vaddr, map, spec)))
                .collect();
            maps.sort_by_key(|(vaddr, map, _)| (*vaddr, (*map).clone()));
            for (vaddr, map, spec) in maps {
                let constant = map.to_uppercase();
                match spec.kind {
                    MapKind::Shared => {
                        let _ = write!(
                            out,
                            "    /// {} Mapped at {vaddr:#x}, {}: (vaddr symbol, size symbol).\n    pub const {constant}: (&str, &str) = (\"{map}\", \"{map}_size\");\n",
                            spec.doc, spec.perms
                        );
                    }
                    MapKind::Device | MapKind::Dma => {
                        let _ = write!(
                            out,
                            "    /// {} Mapped at {vaddr:#x}: (vaddr symbol, size symbol, paddr symbol).\n    pub const {constant}: (&str, &str, &str) = (\"{map}_vaddr\", \"{map}_size\", \"{map}_paddr\");\n",
                            spec.doc
                        );
                    }
                }
            }
            out.push_str("}\n");
        }
        out
    }
}

fn resolve(
    table: &BTreeMap<String, InterfaceText>,
    name: &str,
    done: &mut BTreeMap<String, Interface>,
    path: &mut Vec<String>,
) -> Result<(), String> {
    if done.contains_key(name) {
        return Ok(());
    }
    check_name("interface", name)?;
    if path.iter().any(|seen| seen == name) {
        return Err(format!(
            "interface '{name}' extends itself ({} -> {name})",
            path.join(" -> ")
        ));
    }
    let text = table.get(name).ok_or_else(|| {
        format!(
            "interface '{}' extends '{name}', which is not defined",
            path.last().map_or("?", String::as_str)
        )
    })?;
    check_text(&format!("interface '{name}': doc"), &text.doc, false)?;
    let mut interface = Interface {
        doc: text.doc.clone(),
        parent: text.extends.clone(),
        driver_rings: text.driver_rings,
        ..Interface::default()
    };
    if let Some(parent) = &text.extends {
        path.push(name.to_owned());
        resolve(table, parent, done, path)?;
        path.pop();
        if let Some(parent) = done.get(parent) {
            interface.channels.clone_from(&parent.channels);
            interface.ranges.clone_from(&parent.ranges);
            interface.maps.clone_from(&parent.maps);
            interface.driver_rings = interface.driver_rings.or(parent.driver_rings);
        }
    }
    let mut used: BTreeMap<u8, String> = interface
        .channels
        .iter()
        .map(|(channel, (id, _))| (*id, channel.clone()))
        .collect();
    for (channel, spec) in &text.channels {
        check_name(&format!("interface '{name}': channel"), channel)?;
        check_text(
            &format!("interface '{name}': channel '{channel}''s doc"),
            &spec.doc,
            false,
        )?;
        if spec.id > MAX_CHANNEL {
            return Err(format!(
                "interface '{name}': channel '{channel}' has id {}; Microkit channel ids are 0-{MAX_CHANNEL}",
                spec.id
            ));
        }
        if let Some(other) = used.insert(spec.id, channel.clone()) {
            return Err(format!(
                "interface '{name}': channels '{other}' and '{channel}' both have id {}",
                spec.id
            ));
        }
        if interface
            .channels
            .insert(channel.clone(), (spec.id, spec.doc.clone()))
            .is_some()
        {
            return Err(format!(
                "interface '{name}': channel '{channel}' is also its parent's"
            ));
        }
        interface.own_channels.insert(channel.clone());
    }
    for (range, spec) in &text.ranges {
        check_name(&format!("interface '{name}': range"), range)?;
        check_text(
            &format!("interface '{name}': range '{range}''s doc"),
            &spec.doc,
            false,
        )?;
        if spec.first > spec.last || spec.last > MAX_CHANNEL {
            return Err(format!(
                "interface '{name}': range '{range}' is {}..={}; it must be within 0-{MAX_CHANNEL}, first before last",
                spec.first, spec.last
            ));
        }
        for id in spec.first..=spec.last {
            if let Some(other) = used.insert(id, range.clone()) {
                return Err(format!(
                    "interface '{name}': range '{range}' holds id {id}, which is '{other}''s"
                ));
            }
        }
        interface
            .ranges
            .insert(range.clone(), (spec.first, spec.last, spec.doc.clone()));
    }
    for (map, spec) in &text.maps {
        check_name(&format!("interface '{name}': map"), map)?;
        check_text(
            &format!("interface '{name}': map '{map}''s doc"),
            &spec.doc,
            false,
        )?;
        if spec.vaddr % PAGE != 0 {
            return Err(format!(
                "interface '{name}': map '{map}' at {:#x} is not on a page boundary",
                spec.vaddr
            ));
        }
        let perms = spec.perms.clone().unwrap_or_else(|| "rw".to_owned());
        if !matches!(perms.as_str(), "r" | "rw" | "rx" | "rwx") {
            return Err(format!(
                "interface '{name}': map '{map}' has permissions '{perms}' (r, rw, rx or rwx: the Microkit maps nothing unreadable)"
            ));
        }
        let spec = MapSpec {
            kind: spec.kind,
            vaddr: spec.vaddr,
            perms,
            doc: spec.doc.clone(),
        };
        if interface.maps.insert(map.clone(), spec).is_some() {
            return Err(format!(
                "interface '{name}': map '{map}' is also its parent's"
            ));
        }
        interface.own_maps.insert(map.clone());
    }
    // Every constant of the generated module, and every setvar symbol, once.
    let mut constants: BTreeMap<String, String> = BTreeMap::new();
    let mut symbols: BTreeMap<String, String> = BTreeMap::new();
    let names = interface
        .channels
        .keys()
        .map(|channel| (channel.clone(), format!("channel '{channel}'")))
        .chain(
            interface
                .ranges
                .keys()
                .map(|range| (range.clone(), format!("range '{range}'"))),
        )
        .chain(
            interface
                .maps
                .keys()
                .map(|map| (map.clone(), format!("map '{map}'"))),
        );
    for (constant, what) in names {
        if let Some(other) = constants.insert(constant.to_uppercase(), what.clone()) {
            return Err(format!(
                "interface '{name}': {other} and {what} would be one constant {}",
                constant.to_uppercase()
            ));
        }
    }
    for (map, spec) in &interface.maps {
        let own = match spec.kind {
            MapKind::Shared => vec![map.clone(), format!("{map}_size")],
            MapKind::Device | MapKind::Dma => vec![
                format!("{map}_vaddr"),
                format!("{map}_size"),
                format!("{map}_paddr"),
            ],
        };
        for symbol in own {
            if let Some(other) = symbols.insert(symbol.clone(), map.clone()) {
                return Err(format!(
                    "interface '{name}': maps '{other}' and '{map}' would both set the symbol '{symbol}'"
                ));
            }
        }
    }
    done.insert(name.to_owned(), interface);
    Ok(())
}

// --- A system, generated ----------------------------------------------------------------------

/// A map in a PD of the generated system.
#[derive(Debug)]
struct Map {
    region: String,
    name: String,
    spec: MapSpec,
    size: u64,
}

/// A PD of the generated system.
#[derive(Debug)]
struct Pd<'a> {
    text: &'a PdText,
    interface: &'a Interface,
    maps: Vec<Map>,
    /// Channel id → what uses it (for the error when two things do).
    used: BTreeMap<u8, String>,
}

impl Pd<'_> {
    fn take(&mut self, id: u8, user: String) -> Result<(), String> {
        match self.used.insert(id, user.clone()) {
            Some(other) => Err(format!(
                "PD '{}': channel id {id} is used twice ({other}; {user})",
                self.text.name
            )),
            None => Ok(()),
        }
    }
}

#[derive(Debug)]
struct End {
    pd: usize,
    id: u8,
    pp: bool,
    notify: bool,
}

/// A system generated from its description: the path it is written to and its text.
#[derive(Debug)]
pub struct System {
    /// Where the description says it goes (relative to the repository's top).
    pub output: String,
    /// The Microkit system description.
    pub xml: String,
}

/// Generates a system from its description's text.
///
/// # Errors
/// The description's first problem, naming the PD, region, map or channel.
pub fn generate(interfaces: &Interfaces, text: &str) -> Result<System, String> {
    let description: SystemText = toml::from_str(text).map_err(|error| error.to_string())?;
    let mut regions: Vec<(Option<String>, String, u64, Option<u64>)> = Vec::new();
    let mut pds: Vec<Pd<'_>> = Vec::new();
    let mut names = BTreeMap::new();
    for pd in &description.pd {
        check_name("PD", &pd.name)?;
        if names.insert(pd.name.as_str(), pds.len()).is_some() {
            return Err(format!("PD '{}' is described twice", pd.name));
        }
        let interface = interfaces.get(&pd.interface).ok_or_else(|| {
            format!(
                "PD '{}': no interface '{}' in systems/interfaces.toml",
                pd.name, pd.interface
            )
        })?;
        if pd.priority > 254 {
            return Err(format!(
                "PD '{}': priority {} (the Microkit's are 0-254)",
                pd.name, pd.priority
            ));
        }
        if pd.image.contains(['"', '<', '>', '&']) || pd.image.is_empty() {
            return Err(format!("PD '{}': program image '{}'", pd.name, pd.image));
        }
        pds.push(Pd {
            text: pd,
            interface,
            maps: Vec::new(),
            used: BTreeMap::new(),
        });
    }
    let lookup = |name: &str| {
        names
            .get(name)
            .copied()
            .ok_or_else(|| format!("no PD '{name}' in the description"))
    };
    let mut ends: Vec<(End, End)> = Vec::new();

    // The device manager and its driver PDs.
    let managers: Vec<usize> = (0..pds.len())
        .filter(|&index| {
            pds.get(index)
                .is_some_and(|pd| pd.interface.driver_rings.is_some())
        })
        .collect();
    let drivers: Vec<usize> = (0..pds.len())
        .filter(|&index| pds.get(index).is_some_and(|pd| pd.text.driver.is_some()))
        .collect();
    let manager = match (managers.as_slice(), drivers.is_empty()) {
        ([], true) => None,
        ([one], _) => Some(*one),
        ([], false) => {
            return Err("driver PDs are described, but no device manager (a PD whose interface has driver_rings)".into())
        }
        _ => return Err("more than one device manager is described".into()),
    };
    if let Some(manager) = manager {
        let (rings, (first, last)) = {
            let interface = pds.get(manager).map(|pd| pd.interface).ok_or("manager")?;
            let rings = interface.driver_rings.ok_or("manager")?;
            let range = interface.ranges.get("driver_pds").ok_or_else(|| {
                format!(
                    "interface '{}' has driver_rings but no range driver_pds",
                    pds.get(manager).map_or("", |pd| pd.text.interface.as_str())
                )
            })?;
            (rings, (range.0, range.1))
        };
        if rings.size % PAGE != 0 || rings.size == 0 {
            return Err(format!(
                "driver rings of {:#x} bytes are not whole pages",
                rings.size
            ));
        }
        for &driver in &drivers {
            let (name, n, from, to) = {
                let pd = pds.get(driver).ok_or("driver")?;
                let n = pd.text.driver.unwrap_or(0);
                let ring = |map: &str| {
                    pd.interface.maps.get(map).cloned().ok_or_else(|| {
                        format!(
                            "PD '{}' is a driver PD, but its interface '{}' has no map '{map}' (it extends driver)",
                            pd.text.name, pd.text.interface
                        )
                    })
                };
                (
                    pd.text.name.clone(),
                    n,
                    ring("from_manager")?,
                    ring("to_manager")?,
                )
            };
            if !(first..=last).contains(&n) {
                return Err(format!(
                    "PD '{name}': driver PD {n}; the device manager has driver PDs {first}-{last}"
                ));
            }
            let channel = pds
                .get(driver)
                .and_then(|pd| pd.interface.channels.get("manager"))
                .map(|channel| channel.0)
                .ok_or_else(|| {
                    format!(
                        "PD '{name}' is a driver PD, but its interface has no channel 'manager'"
                    )
                })?;
            let pd = pds.get_mut(manager).ok_or("manager")?;
            pd.take(n, format!("driver PD {n}, '{name}'"))
                .map_err(|_| format!("PD '{name}': driver PD {n} is described twice"))?;
            let base = u64::from(n)
                .checked_sub(1)
                .and_then(|slot| slot.checked_mul(2)?.checked_mul(rings.size))
                .and_then(|offset| offset.checked_add(rings.vaddr))
                .filter(|base| {
                    rings
                        .size
                        .checked_mul(2)
                        .and_then(|both| base.checked_add(both))
                        .is_some()
                })
                .ok_or_else(|| {
                    format!(
                        "PD '{name}': driver PD {n}'s rings have no address (slot 0, or past 2^64)"
                    )
                })?;
            for (index, region) in [format!("to_driver{n}"), format!("from_driver{n}")]
                .into_iter()
                .enumerate()
            {
                pd.maps.push(Map {
                    name: region.clone(),
                    region: region.clone(),
                    spec: MapSpec {
                        kind: MapKind::Shared,
                        vaddr: base + u64::from(index == 1) * rings.size,
                        perms: "rw".into(),
                        doc: String::new(),
                    },
                    size: rings.size,
                });
            }
            let pd = pds.get_mut(driver).ok_or("driver")?;
            pd.take(channel, "its channel to the device manager".into())?;
            for (name, spec, region) in [
                ("from_manager", from, format!("to_driver{n}")),
                ("to_manager", to, format!("from_driver{n}")),
            ] {
                pd.maps.push(Map {
                    region,
                    name: name.into(),
                    spec,
                    size: rings.size,
                });
            }
            ends.push((
                End {
                    pd: manager,
                    id: n,
                    pp: false,
                    notify: true,
                },
                End {
                    pd: driver,
                    id: channel,
                    pp: true,
                    notify: true,
                },
            ));
        }
    }

    // The regions the description names, and their maps.
    for region in &description.region {
        check_name("region", &region.name)?;
        if region.size == 0 || region.size % PAGE != 0 {
            return Err(format!(
                "region '{}': {:#x} bytes is not a whole number of 4 KiB pages",
                region.name, region.size
            ));
        }
        if region.paddr.is_some_and(|paddr| paddr % PAGE != 0) {
            return Err(format!(
                "region '{}': its physical address is not on a page boundary",
                region.name
            ));
        }
        if region.maps.is_empty() {
            return Err(format!("region '{}' is mapped by no PD", region.name));
        }
        for end in &region.maps {
            let (pd_name, map) = end
                .split_once('.')
                .ok_or_else(|| format!("region '{}': map '{end}' is not PD.MAP", region.name))?;
            let index =
                lookup(pd_name).map_err(|error| format!("region '{}': {error}", region.name))?;
            let pd = pds.get_mut(index).ok_or("pd")?;
            let spec = pd.interface.maps.get(map).cloned().ok_or_else(|| {
                format!(
                    "region '{}': PD '{pd_name}''s interface '{}' has no map '{map}'",
                    region.name, pd.text.interface
                )
            })?;
            if spec.kind == MapKind::Device && region.paddr.is_none() {
                return Err(format!(
                    "region '{}': PD '{pd_name}' maps it as device registers ('{map}'), but it has no physical address",
                    region.name
                ));
            }
            if spec.kind == MapKind::Shared && region.paddr.is_some() {
                return Err(format!(
                    "region '{}' is device memory (it has a physical address), but PD '{pd_name}' maps it as shared memory ('{map}', cached)",
                    region.name
                ));
            }
            if pd.maps.iter().any(|other| other.name == map) {
                return Err(format!("PD '{pd_name}': map '{map}' is given twice"));
            }
            if let Some(other) = pd.maps.iter().find(|other| other.region == region.name) {
                return Err(format!(
                    "PD '{pd_name}' maps region '{}' twice ('{}' and '{map}')",
                    region.name, other.name
                ));
            }
            pd.maps.push(Map {
                region: region.name.clone(),
                name: map.to_owned(),
                spec,
                size: region.size,
            });
        }
        if let Some(comment) = &region.comment {
            check_text(&format!("region '{}': comment", region.name), comment, true)?;
        }
        regions.push((
            region.comment.clone(),
            region.name.clone(),
            region.size,
            region.paddr,
        ));
    }
    if let Some(manager) = manager {
        let manager = pds.get(manager).ok_or("manager")?;
        for map in &manager.maps {
            regions.push((None, map.region.clone(), map.size, None));
        }
    }
    let mut region_names = BTreeSet::new();
    for region in &regions {
        if !region_names.insert(region.1.as_str()) {
            return Err(format!("region '{}' is described twice (the driver PDs' rings are named to_drivern and from_drivern)", region.1));
        }
    }
    for pd in &pds {
        let mut spans: Vec<(u64, u64, &str)> = pd
            .maps
            .iter()
            .map(|map| {
                map.spec
                    .vaddr
                    .checked_add(map.size)
                    .map(|end| (map.spec.vaddr, end, map.name.as_str()))
                    .ok_or_else(|| {
                        format!(
                            "PD '{}': map '{}' of {:#x} bytes at {:#x} runs past 2^64",
                            pd.text.name, map.name, map.size, map.spec.vaddr
                        )
                    })
            })
            .collect::<Result<_, String>>()?;
        spans.sort_unstable();
        for pair in spans.windows(2) {
            if let [first, second] = pair {
                if second.0 < first.1 {
                    return Err(format!(
                        "PD '{}': map '{}' ({:#x}-{:#x}) overlaps map '{}' at {:#x}; a region this large needs another address in the interface",
                        pd.text.name, first.2, first.0, first.1, second.2, second.0
                    ));
                }
            }
        }
    }

    // Interrupts: each INTID is one PD's.
    let mut owners: BTreeMap<u32, String> = BTreeMap::new();
    for index in 0..pds.len() {
        let pd = pds.get_mut(index).ok_or("pd")?;
        for irq in &pd.text.irqs {
            if let Some(other) = owners.insert(irq.irq, pd.text.name.clone()) {
                return Err(format!(
                    "IRQ {} is given to PD '{other}' and to PD '{}' (an interrupt has one handler)",
                    irq.irq, pd.text.name
                ));
            }
            if let Some(comment) = &irq.comment {
                check_text(
                    &format!("PD '{}': IRQ {}'s comment", pd.text.name, irq.irq),
                    comment,
                    true,
                )?;
            }
            let id = pd
                .interface
                .channels
                .get(&irq.channel)
                .map(|channel| channel.0)
                .ok_or_else(|| {
                    format!(
                        "PD '{}': its interface has no channel '{}' for IRQ {}",
                        pd.text.name, irq.channel, irq.irq
                    )
                })?;
            if let Some(trigger) = &irq.trigger {
                if trigger != "edge" && trigger != "level" {
                    return Err(format!(
                        "PD '{}': IRQ {} has trigger '{trigger}' (edge or level)",
                        pd.text.name, irq.irq
                    ));
                }
            }
            pd.take(id, format!("IRQ {}", irq.irq))?;
        }
    }

    // The channels the description names.
    for link in &description.channel {
        let (pair, pp) = match (&link.notify, &link.call) {
            (Some(pair), None) => (pair, false),
            (None, Some(pair)) => (pair, true),
            _ => {
                return Err(
                    "a [[channel]] is either notify = [A, B] or call = [CALLER, CALLEE]".into(),
                )
            }
        };
        let mut found = Vec::new();
        for end in pair {
            let (pd_name, channel) = end
                .split_once('.')
                .ok_or_else(|| format!("channel end '{end}' is not PD.CHANNEL"))?;
            let index = lookup(pd_name).map_err(|error| format!("channel end '{end}': {error}"))?;
            let pd = pds.get_mut(index).ok_or("pd")?;
            let id = if let Some(channel) = pd.interface.channels.get(channel) {
                channel.0
            } else if let Some((first, last, _)) = pd.interface.ranges.get(channel) {
                (*first..=*last)
                    .find(|id| !pd.used.contains_key(id))
                    .ok_or_else(|| {
                        format!("channel end '{end}': every id of range {first}-{last} is taken")
                    })?
            } else {
                return Err(format!(
                    "channel end '{end}': PD '{pd_name}''s interface '{}' has no channel or range '{channel}'",
                    pd.text.interface
                ));
            };
            pd.take(id, format!("channel '{end}'"))?;
            found.push((index, id));
        }
        if let [(first, first_id), (second, second_id)] = found[..] {
            if first == second {
                return Err(format!("channel {pair:?}: both ends are in one PD"));
            }
            ends.push((
                End {
                    pd: first,
                    id: first_id,
                    pp,
                    notify: true,
                },
                End {
                    pd: second,
                    id: second_id,
                    pp: false,
                    notify: true,
                },
            ));
        }
    }

    // Every PD to the log printer.
    let printers: Vec<usize> = (0..pds.len())
        .filter(|&index| pds.get(index).is_some_and(|pd| pd.text.log_printer))
        .collect();
    if printers.len() > 1 {
        return Err("more than one log printer is described".into());
    }
    if printers.is_empty() {
        if let Some(pd) = pds
            .iter()
            .find(|pd| pd.interface.channels.contains_key("log"))
        {
            return Err(format!(
                "no log printer is described (a PD with log_printer = true), but PD '{}' logs through one on its channel 'log'",
                pd.text.name
            ));
        }
    }
    let order = document_order(&pds, manager);
    if let Some(&printer) = printers.first() {
        let (first, last) = pds
            .get(printer)
            .and_then(|pd| pd.interface.ranges.get("senders"))
            .map(|range| (range.0, range.1))
            .ok_or("the log printer's interface has no range 'senders'")?;
        let senders: Vec<usize> = order
            .into_iter()
            .filter(|&index| index != printer)
            .collect();
        if senders.len() > usize::from(last - first) + 1 {
            return Err(format!(
                "{} PDs log, but the log printer takes at most {}",
                senders.len(),
                u16::from(last) - u16::from(first) + 1
            ));
        }
        for (next, index) in (first..=last).zip(senders) {
            let pd = pds.get_mut(index).ok_or("pd")?;
            let id = pd
                .interface
                .channels
                .get("log")
                .map(|channel| channel.0)
                .ok_or_else(|| {
                    format!(
                        "PD '{}': its interface '{}' has no channel 'log' to the log printer",
                        pd.text.name, pd.text.interface
                    )
                })?;
            pd.take(id, "its channel to the log printer".into())?;
            pds.get_mut(printer)
                .ok_or("printer")?
                .take(next, "a PD's log".into())?;
            ends.push((
                End {
                    pd: index,
                    id,
                    pp: true,
                    notify: false,
                },
                End {
                    pd: printer,
                    id: next,
                    pp: false,
                    notify: false,
                },
            ));
        }
    }

    // The Microkit's rule for calls: to a PD of strictly higher priority.
    for (first, second) in &ends {
        let priority = |end: &End| pds.get(end.pd).map_or(0, |pd| pd.text.priority);
        let name = |end: &End| pds.get(end.pd).map_or("?", |pd| pd.text.name.as_str());
        for (caller, callee) in [(first, second), (second, first)] {
            if caller.pp && priority(caller) >= priority(callee) {
                return Err(format!(
                    "PD '{}' (priority {}) calls PD '{}' (priority {}): the Microkit allows calls only to a PD of higher priority",
                    name(caller), priority(caller), name(callee), priority(callee)
                ));
            }
        }
    }

    check_output(&description.output)?;
    check_text("the system's comment", &description.comment, true)?;
    for pd in &pds {
        check_text(
            &format!("PD '{}': image", pd.text.name),
            &pd.text.image,
            false,
        )?;
        if let Some(comment) = &pd.text.comment {
            check_text(&format!("PD '{}': comment", pd.text.name), comment, true)?;
        }
    }
    let xml = render(&description, &regions, &pds, manager, &ends)?;
    // Whatever the checks above do not cover (stack sizes, physical overlaps, the schema), the
    // Microkit tool's rules as Warden's parser has them do.
    if let Err(error) = warden_system::parse(&description.output, &xml) {
        return Err(format!(
            "the system description made from it is refused: {error}"
        ));
    }
    Ok(System {
        output: description.output.clone(),
        xml,
    })
}

/// An output path: relative to the repository's top, normalised, an XML file.
fn check_output(path: &str) -> Result<(), String> {
    let normal = !path.is_empty()
        && path.ends_with(".xml")
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && path
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"_-./".contains(&byte));
    if normal {
        Ok(())
    } else {
        Err(format!(
            "output '{path}': a path relative to the repository's top, without '.' or '..', ending in .xml"
        ))
    }
}

/// PDs in the order the XML gives them: each top-level PD, the manager's children after it.
fn document_order(pds: &[Pd<'_>], manager: Option<usize>) -> Vec<usize> {
    let mut order = Vec::new();
    for (index, pd) in pds.iter().enumerate() {
        if pd.text.driver.is_some() {
            continue;
        }
        order.push(index);
        if Some(index) == manager {
            order.extend(children(pds));
        }
    }
    order
}

fn children(pds: &[Pd<'_>]) -> Vec<usize> {
    (0..pds.len())
        .filter(|&index| pds.get(index).is_some_and(|pd| pd.text.driver.is_some()))
        .collect()
}

fn comment(out: &mut String, indent: &str, text: &str) -> Result<(), String> {
    if text.contains("--") {
        return Err(format!(
            "a comment holds '--', which XML does not allow: {text:?}"
        ));
    }
    let mut lines = text.trim_matches('\n').lines();
    let _ = write!(out, "{indent}<!-- {}", lines.next().unwrap_or(""));
    for line in lines {
        let _ = write!(out, "\n{indent}     {line}");
    }
    out.push_str(" -->\n");
    Ok(())
}

fn render(
    description: &SystemText,
    regions: &[(Option<String>, String, u64, Option<u64>)],
    pds: &[Pd<'_>],
    manager: Option<usize>,
    ends: &[(End, End)],
) -> Result<String, String> {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!--\n");
    if description.comment.contains("--") {
        return Err("the system's comment holds '--', which XML does not allow".into());
    }
    for line in description.comment.trim_matches('\n').lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "  {line}");
        }
    }
    out.push_str("-->\n<system>\n");
    for (note, name, size, paddr) in regions {
        if let Some(note) = note {
            comment(&mut out, "    ", note)?;
        }
        let _ = write!(out, "    <memory_region name=\"{name}\" size=\"{size:#x}\"");
        if let Some(paddr) = paddr {
            let _ = write!(out, " phys_addr=\"{paddr:#x}\"");
        }
        out.push_str(" />\n");
    }
    for (index, pd) in pds.iter().enumerate() {
        if pd.text.driver.is_some() {
            continue;
        }
        out.push('\n');
        render_pd(&mut out, pd, "    ")?;
        if Some(index) == manager {
            for child in children(pds) {
                if let Some(child) = pds.get(child) {
                    out.push('\n');
                    render_pd(&mut out, child, "        ")?;
                    out.push_str("        </protection_domain>\n");
                }
            }
        }
        out.push_str("    </protection_domain>\n");
    }
    out.push('\n');
    let name = |end: &End| pds.get(end.pd).map_or("?", |pd| pd.text.name.as_str());
    for (first, second) in ends {
        out.push_str("    <channel>\n");
        for end in [first, second] {
            let _ = write!(out, "        <end pd=\"{}\" id=\"{}\"", name(end), end.id);
            if end.pp {
                out.push_str(" pp=\"true\"");
            }
            if !end.notify {
                out.push_str(" notify=\"false\"");
            }
            out.push_str(" />\n");
        }
        out.push_str("    </channel>\n");
    }
    out.push_str("</system>\n");
    Ok(out)
}

/// A PD's opening tag and contents (the caller closes it, after any children).
fn render_pd(out: &mut String, pd: &Pd<'_>, indent: &str) -> Result<(), String> {
    let text = pd.text;
    if let Some(note) = &text.comment {
        comment(out, indent, note)?;
    }
    let _ = write!(out, "{indent}<protection_domain name=\"{}\"", text.name);
    if let Some(id) = text.driver {
        let _ = write!(out, " id=\"{id}\"");
    }
    let _ = write!(out, " priority=\"{}\"", text.priority);
    if text.passive {
        out.push_str(" passive=\"true\"");
    }
    if let Some(stack) = text.stack_size {
        let _ = write!(out, " stack_size=\"{stack:#x}\"");
    }
    out.push_str(">\n");
    let _ = writeln!(out, "{indent}    <program_image path=\"{}\" />", text.image);
    for map in &pd.maps {
        let spec = &map.spec;
        let _ = write!(
            out,
            "{indent}    <map mr=\"{}\" vaddr=\"{:#x}\" perms=\"{}\"",
            map.region, spec.vaddr, spec.perms
        );
        match spec.kind {
            MapKind::Shared => {
                let _ = writeln!(
                    out,
                    " setvar_vaddr=\"{0}\" setvar_size=\"{0}_size\" />",
                    map.name
                );
            }
            MapKind::Device | MapKind::Dma => {
                if spec.kind == MapKind::Device {
                    out.push_str(" cached=\"false\"");
                }
                let _ = writeln!(
                    out,
                    " setvar_vaddr=\"{0}_vaddr\" setvar_size=\"{0}_size\" />\n{indent}    <setvar symbol=\"{0}_paddr\" region_paddr=\"{1}\" />",
                    map.name, map.region
                );
            }
        }
    }
    for irq in &text.irqs {
        if let Some(note) = &irq.comment {
            comment(out, &format!("{indent}    "), note)?;
        }
        let id = pd
            .interface
            .channels
            .get(&irq.channel)
            .map_or(0, |channel| channel.0);
        let _ = write!(out, "{indent}    <irq irq=\"{}\" id=\"{id}\"", irq.irq);
        if let Some(trigger) = &irq.trigger {
            let _ = write!(out, " trigger=\"{trigger}\"");
        }
        out.push_str(" />\n");
    }
    Ok(())
}

/// The files a generation writes: (path relative to the repository's top, contents).
///
/// # Errors
/// A description's or the interfaces' first problem, with the file's name.
pub fn outputs(
    interfaces_text: &str,
    systems: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let interfaces = Interfaces::parse(interfaces_text)
        .map_err(|error| format!("systems/interfaces.toml: {error}"))?;
    let mut files = vec![(
        "components/lib/interface/src/lib.rs".to_owned(),
        interfaces.rust(),
    )];
    for (path, text) in systems {
        let system = generate(&interfaces, text).map_err(|error| format!("{path}: {error}"))?;
        if files.iter().any(|(other, _)| *other == system.output) {
            return Err(format!(
                "{path}: output {} is another description's too",
                system.output
            ));
        }
        files.push((system.output, system.xml));
    }
    Ok(files)
}
