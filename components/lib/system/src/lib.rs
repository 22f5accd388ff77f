//! The Microkit 2.3 system description (SDF) parsed and checked as the `microkit` tool checks
//! it, with every error located at `file:line:column`.
//!
//! Elements and attributes: `system` holds `protection_domain`, `memory_region`, `channel` and
//! `domains`. A `protection_domain` has `name`, `priority` (0–254, default 0), `budget` (µs,
//! default 1000), `period` (default: the budget), `passive`, `stack_size` (4 KiB–16 MiB, page
//! multiple, default 8 KiB), `smc`, `cpu` (below the target's cores, [`Target`]), `fpu`,
//! `domain` (required when the system declares domains before it, refused otherwise), and `id`
//! and `setvar_id` when nested in a parent; it holds one `program_image` (`path`,
//! `path_for_symbols`), `map` (`mr`, `vaddr`, `perms`, `cached`, `setvar_vaddr`, `setvar_size`;
//! below the PD's stack, [`map_limit`]), `irq` (`irq`, `id`, `setvar_id`, `trigger`), `setvar`
//! (`symbol`, `region_paddr`), one `cspace` (`cap_tcb`, `cap_sc`, `cap_vspace`: `slot` 1–127 and
//! `pd`), one `virtual_machine` (`name`, `budget`, `period`, `priority`; `vcpu`s with `id`,
//! `setvar_id`, `cpu`, which share the id space of the PD's children; `map`s without setvars,
//! below [`VM_MAP_LIMIT`]) and child `protection_domain`s, at most [`MAX_PROTECTION_DOMAINS`] in
//! all (counted as they are read). A `memory_region` has `name`, `size`, `page_size` (0x1000 or
//! 0x200000), `phys_addr`, `prefill_path` (a file the region starts with; `size` then defaults
//! to the file rounded up to pages, and a map may set `setvar_prefill_size` to the file's
//! length) or `prefill_bootinfo` (`fdt` or x86's). A `channel` holds exactly two `end`s (`pd`,
//! `id`, `pp`, `notify`, `setvar_id`). `domains` holds `domain`s (`name`, `id`) and one
//! `domain_schedule` (`start_index`, `index_shift`) of `schedule_entry`s (`domain`, `duration`
//! as `N us` or `N ticks`) and `schedule_end_marker`s ([`MAX_DOMAINS`], [`MAX_DOMAIN_SCHEDULE`]).
//! Anything else is an error, and so are x86's elements (`ioport`, I/O APIC and MSI `irq`s,
//! `io_address_space`, which the microkit tool supports on x86-64 only): Warden's targets are
//! aarch64 boards with the hypervisor configured, one core unless told, no IOMMU.
//!
//! What is checked here is what the microkit tool checks. What the host platform can run is
//! narrower, and its launcher refuses the rest by name: virtual machines, domains, `cspace`
//! entries and boot information.

use std::fmt;

mod channel;
mod checks;
mod domains;
pub mod grants;

/// The fuzz target's entry point (`fuzz/`), also run over the committed corpus by `cargo test`.
pub mod fuzzing {
    /// Parses `data` as a system description, for the default target and for a target of four
    /// cores; whatever the input, this returns (an error is an answer, a panic is a bug).
    pub fn parse(data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let _ = super::parse("fuzz.xml", &text);
        let _ = super::parse_for("fuzz.xml", &text, super::Target { cores: Some(4) });
    }
}
mod memory_region;
mod protection_domain;
mod virtual_machine;

pub use channel::{Channel, End};
pub use domains::{Domain, Domains, Duration, ScheduleEntry, MAX_DOMAINS, MAX_DOMAIN_SCHEDULE};
pub use memory_region::{MemoryRegion, Prefill};
pub use protection_domain::{
    CapKind, CapMap, Irq, Map, Permissions, ProtectionDomain, SetVar, SetVarId, Trigger, CAP_SLOTS,
};
pub use virtual_machine::{Vcpu, VirtualMachine, VM_MAP_LIMIT};

/// Highest channel or IRQ id of a PD.
pub const MAX_ID: u64 = 61;

/// Highest priority a PD may have (the monitor has 255).
pub const MAX_PRIORITY: u64 = 254;

/// Most protection domains in a system, children included.
pub const MAX_PROTECTION_DOMAINS: usize = 63;

/// Smallest page.
pub const SMALL_PAGE: u64 = 0x1000;

/// Large page.
pub const LARGE_PAGE: u64 = 0x20_0000;

const DEFAULT_BUDGET: u64 = 1000;

const MIN_STACK: u64 = 0x1000;

/// A PD's stack when `stack_size` is not given (the microkit tool's `PD_DEFAULT_STACK_SIZE`).
pub const DEFAULT_STACK: u64 = 0x2000;

/// The highest user virtual address on the aarch64 boards Warden builds for (the 2.3.0 SDK's
/// `address_space_constants.json`, `vspace_user_top`, for qemu_virt_aarch64 and odroidc4). The
/// IPC buffer is the page below it, a guard page below that, and the stack below the guard:
/// a map must end at or below the stack's bottom, as the microkit tool checks.
pub const USER_TOP: u64 = 0xff_ffff_ffff;

/// The lowest address a PD's map may not reach: the bottom of its stack.
#[must_use]
pub const fn map_limit(stack_size: u64) -> u64 {
    let ipc_buffer = USER_TOP & !(SMALL_PAGE - 1);
    ipc_buffer
        .saturating_sub(SMALL_PAGE)
        .saturating_sub(stack_size)
}

/// What the description is checked against, where it is known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// CPU cores: a PD's `cpu` must be below this. `None` (the default, for the host
    /// platform, where `cpu` means nothing, and builds that do not know their SDK
    /// configuration): not checked. `warden-host check` says 1 unless told (`--cores`): the
    /// SDK's debug and release configurations of Warden's boards have one core, `smp-*` more.
    pub cores: Option<u64>,
}

const MAX_STACK: u64 = 16 * 1024 * 1024;

/// An error in a system description, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdfError {
    /// The file.
    pub file: String,
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SdfError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for SdfError {}

/// A position in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
}

/// A whole system description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct System {
    /// Every PD, parents before their children.
    pub protection_domains: Vec<ProtectionDomain>,
    /// Memory regions.
    pub memory_regions: Vec<MemoryRegion>,
    /// Channels.
    pub channels: Vec<Channel>,
    /// The domain scheduler's domains and schedule, if declared.
    pub domains: Option<Domains>,
}

impl System {
    /// The memory region named `name`.
    #[must_use]
    pub fn region(&self, name: &str) -> Option<&MemoryRegion> {
        self.memory_regions
            .iter()
            .find(|region| region.name == name)
    }
}

/// How deeply elements may nest. The XML parser recurses per level, so a file nested
/// thousands deep would overflow the stack: [`too_deep`] refuses it first, in one pass.
pub const MAX_NESTING: usize = 128;

/// The byte offset of the first element nested deeper than [`MAX_NESTING`], and its depth. A
/// linear scan of the tags that skips comments, CDATA, processing instructions, declarations
/// and quoted attribute values (malformed XML is left to the parser to report).
fn too_deep(text: &str) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut depth = 0_usize;
    let mut at = 0;
    let skip_past = |from: usize, end: &str| {
        text.get(from..)
            .and_then(|rest| rest.find(end))
            .map_or(bytes.len(), |found| from + found + end.len())
    };
    while let Some(found) = text.get(at..).and_then(|rest| rest.find('<')) {
        let start = at + found;
        let rest = text.get(start..).unwrap_or_default();
        if rest.starts_with("<!--") {
            at = skip_past(start, "-->");
        } else if rest.starts_with("<![CDATA[") {
            at = skip_past(start, "]]>");
        } else if rest.starts_with("<?") {
            at = skip_past(start, "?>");
        } else if rest.starts_with("<!") {
            at = skip_past(start, ">");
        } else if rest.starts_with("</") {
            depth = depth.saturating_sub(1);
            at = skip_past(start, ">");
        } else {
            // A start tag: find its end outside quoted values; `/>` closes it at once.
            let mut index = start + 1;
            let mut quote = None;
            let mut empty = false;
            while let Some(&byte) = bytes.get(index) {
                match (quote, byte) {
                    (Some(open), _) if byte == open => quote = None,
                    (Some(_), _) => {}
                    (None, b'"' | b'\'') => quote = Some(byte),
                    (None, b'>') => {
                        empty = bytes.get(index.wrapping_sub(1)) == Some(&b'/');
                        break;
                    }
                    (None, _) => {}
                }
                index += 1;
            }
            if !empty {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some((start, depth));
                }
            }
            at = index + 1;
        }
    }
    None
}

/// Line and column (from 1, in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (u32, u32) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

/// Reads and checks a system description file.
///
/// # Errors
/// The file cannot be read, or the first problem found, located.
pub fn parse_file(path: &std::path::Path) -> Result<System, SdfError> {
    parse_file_for(path, Target::default())
}

/// As [`parse_file`], for `target`.
///
/// # Errors
/// The file cannot be read, or the first problem found, located.
pub fn parse_file_for(path: &std::path::Path, target: Target) -> Result<System, SdfError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| SdfError {
        file: file.clone(),
        line: 0,
        column: 0,
        message: format!("cannot read the file: {error}"),
    })?;
    parse_for(&file, &text, target)
}

/// Parses and checks the text of a system description; `file` names it in errors.
///
/// # Errors
/// The first problem found, located.
pub fn parse(file: &str, text: &str) -> Result<System, SdfError> {
    parse_for(file, text, Target::default())
}

/// As [`parse`], for `target`.
///
/// # Errors
/// The first problem found, located.
pub fn parse_for(file: &str, text: &str, target: Target) -> Result<System, SdfError> {
    if let Some((offset, depth)) = too_deep(text) {
        let (line, column) = line_column(text, offset);
        return Err(SdfError {
            file: file.to_string(),
            line,
            column,
            message: format!(
                "elements nested {depth} deep: at most {MAX_NESTING} (a system of {MAX_PROTECTION_DOMAINS} nested protection domains needs fewer)"
            ),
        });
    }
    let document = roxmltree::Document::parse(text).map_err(|error| {
        let position = error.pos();
        SdfError {
            file: file.to_string(),
            line: position.row,
            column: position.col,
            message: format!("not well-formed XML: {error}"),
        }
    })?;
    let parser = Parser {
        file,
        document: &document,
        target,
    };
    parser.system()
}

struct Parser<'a, 'input> {
    file: &'a str,
    document: &'a roxmltree::Document<'input>,
    target: Target,
}

type Node<'a, 'input> = roxmltree::Node<'a, 'input>;

impl Parser<'_, '_> {
    fn location(&self, node: Node) -> Location {
        let position = self.document.text_pos_at(node.range().start);
        Location {
            line: position.row,
            column: position.col,
        }
    }

    fn error_at(&self, location: Location, message: String) -> SdfError {
        SdfError {
            file: self.file.to_string(),
            line: location.line,
            column: location.column,
            message,
        }
    }

    fn error(&self, node: Node, message: impl Into<String>) -> SdfError {
        self.error_at(self.location(node), message.into())
    }

    fn attributes(&self, node: Node, allowed: &[&str]) -> Result<(), SdfError> {
        for attribute in node.attributes() {
            if !allowed.contains(&attribute.name()) {
                return Err(self.error(
                    node,
                    if allowed.is_empty() {
                        format!(
                            "unknown attribute '{}' on <{}> (it takes none)",
                            attribute.name(),
                            node.tag_name().name()
                        )
                    } else {
                        format!(
                            "unknown attribute '{}' on <{}> (allowed: {})",
                            attribute.name(),
                            node.tag_name().name(),
                            allowed.join(", ")
                        )
                    },
                ));
            }
        }
        Ok(())
    }

    fn required<'n>(&self, node: Node<'n, '_>, name: &str) -> Result<&'n str, SdfError> {
        node.attribute(name).ok_or_else(|| {
            self.error(
                node,
                format!(
                    "<{}> is missing the required attribute '{name}'",
                    node.tag_name().name()
                ),
            )
        })
    }

    fn number(&self, node: Node, name: &str, text: &str) -> Result<u64, SdfError> {
        let digits: String = text.chars().filter(|c| *c != '_').collect();
        let parsed = match digits.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => digits.parse(),
        };
        parsed.map_err(|_| {
            self.error(
                node,
                format!("attribute '{name}' is not a number: '{text}' (decimal or 0x-hex)"),
            )
        })
    }

    fn optional_number(&self, node: Node, name: &str) -> Result<Option<u64>, SdfError> {
        node.attribute(name)
            .map(|text| self.number(node, name, text))
            .transpose()
    }

    fn required_number(&self, node: Node, name: &str) -> Result<u64, SdfError> {
        let text = self.required(node, name)?;
        self.number(node, name, text)
    }

    fn boolean(&self, node: Node, name: &str, default: bool) -> Result<bool, SdfError> {
        match node.attribute(name) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(self.error(
                node,
                format!("attribute '{name}' must be 'true' or 'false', not '{other}'"),
            )),
        }
    }

    fn elements<'n, 'i>(&self, node: Node<'n, 'i>) -> Result<Vec<Node<'n, 'i>>, SdfError> {
        let mut elements = Vec::new();
        for child in node.children() {
            if child.is_element() {
                elements.push(child);
            } else if child.is_text() && !child.text().unwrap_or("").trim().is_empty() {
                return Err(self.error(
                    child,
                    format!("unexpected text inside <{}>", node.tag_name().name()),
                ));
            }
        }
        Ok(elements)
    }

    fn system(&self) -> Result<System, SdfError> {
        let root = self.document.root_element();
        if root.tag_name().name() != "system" {
            return Err(self.error(
                root,
                format!(
                    "the root element must be <system>, not <{}>",
                    root.tag_name().name()
                ),
            ));
        }
        self.attributes(root, &[])?;
        let mut system = System {
            protection_domains: Vec::new(),
            memory_regions: Vec::new(),
            channels: Vec::new(),
            domains: None,
        };
        let mut channel_nodes = Vec::new();
        for element in self.elements(root)? {
            match element.tag_name().name() {
                "protection_domain" => self.protection_domain(element, None, &mut system)?,
                "memory_region" => {
                    let region = self.memory_region(element)?;
                    system.memory_regions.push(region);
                }
                "channel" => channel_nodes.push(element),
                "domains" => {
                    // As the tool: a first <domains> that declared no domain is replaced.
                    if system
                        .domains
                        .as_ref()
                        .is_some_and(|domains| !domains.domains.is_empty())
                    {
                        return Err(
                            self.error(element, "the system has more than one <domains>")
                        );
                    }
                    system.domains = Some(self.domains(element)?);
                }
                "virtual_machine" => {
                    return Err(self.error(
                        element,
                        "a <virtual_machine> must be inside the protection domain that runs it (its VMM)",
                    ))
                }
                "io_address_space" => {
                    return Err(self.error(
                        element,
                        "<io_address_space> requires seL4 built with IOMMU support, which the microkit tool has on x86-64 only; Warden's targets are aarch64",
                    ))
                }
                other => {
                    return Err(
                        self.error(element, format!("unknown element <{other}> in <system>"))
                    )
                }
            }
        }
        if system.protection_domains.is_empty() {
            return Err(self.error(root, "the system has no protection domain"));
        }
        for node in channel_nodes {
            let channel = self.channel(node, &system)?;
            // `setvar_id` on an end: the end's PD learns its id for the channel.
            for end in &channel.ends {
                if let (Some(symbol), Some(pd)) =
                    (&end.setvar_id, system.protection_domains.get_mut(end.pd))
                {
                    pd.setvar_ids.push(SetVarId {
                        symbol: symbol.clone(),
                        id: end.id,
                        location: channel.location,
                    });
                }
            }
            system.channels.push(channel);
        }
        for pd in &system.protection_domains {
            self.check_symbols(pd)?;
        }
        self.check(&system)?;
        Ok(system)
    }
}
