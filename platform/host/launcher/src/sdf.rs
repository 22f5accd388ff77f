//! The Microkit 2.3 system description (SDF) parsed and checked as the `microkit` tool checks
//! it, with every error located at `file:line:column`.
//!
//! Elements and attributes: `system` holds `protection_domain`, `memory_region` and `channel`.
//! A `protection_domain` has `name`, `priority` (0–254, default 0), `budget` (µs, default 1000),
//! `period` (default: the budget), `passive`, `stack_size` (4 KiB–16 MiB, page multiple,
//! default 4 KiB), `smc`, `cpu`, `fpu`, and `id` when nested in a parent; it holds one `program_image`
//! (`path`, `path_for_symbols`), `map` (`mr`, `vaddr`, `perms`, `cached`, `setvar_vaddr`,
//! `setvar_size`), `irq` (`irq`, `id`, `trigger`), `setvar` (`symbol`, `region_paddr`) and
//! child `protection_domain`s. A `memory_region` has `name`, `size`, `page_size` (0x1000 or
//! 0x200000), `phys_addr`. A `channel` holds exactly two `end`s (`pd`, `id`, `pp`, `notify`).
//! Anything else is an error. Virtual machines are not supported by Warden and are refused.

use std::fmt;

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

/// Map permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permissions {
    /// `r`.
    pub read: bool,
    /// `w`.
    pub write: bool,
    /// `x`.
    pub execute: bool,
}

/// A `map` of a memory region into a PD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Map {
    /// The region's name.
    pub region: String,
    /// Where it appears in the PD.
    pub vaddr: u64,
    /// Permissions.
    pub permissions: Permissions,
    /// Cached (false for device registers).
    pub cached: bool,
    /// Symbol patched with `vaddr`.
    pub setvar_vaddr: Option<String>,
    /// Symbol patched with the region's size.
    pub setvar_size: Option<String>,
    /// Where in the file.
    pub location: Location,
}

/// IRQ trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Level-triggered (the default).
    Level,
    /// Edge-triggered.
    Edge,
}

/// An `irq` of a PD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Irq {
    /// The hardware interrupt number.
    pub irq: u64,
    /// The PD's channel id for it.
    pub id: u64,
    /// Trigger.
    pub trigger: Trigger,
    /// Where in the file.
    pub location: Location,
}

/// A `setvar` naming a region's physical address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetVar {
    /// The symbol.
    pub symbol: String,
    /// The region whose physical address it receives.
    pub region: String,
}

/// A protection domain (children are flattened into the system's list, with `parent`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtectionDomain {
    /// Its name.
    pub name: String,
    /// Priority 0–254.
    pub priority: u8,
    /// Budget in µs.
    pub budget: u64,
    /// Period in µs.
    pub period: u64,
    /// Passive: runs on its callers' budgets after `init`.
    pub passive: bool,
    /// Stack bytes.
    pub stack_size: u64,
    /// May make SMC calls.
    pub smc: bool,
    /// Uses the floating-point unit (default true).
    pub fpu: bool,
    /// CPU core.
    pub cpu: Option<u64>,
    /// The program's path.
    pub program_image: String,
    /// Maps.
    pub maps: Vec<Map>,
    /// IRQs.
    pub irqs: Vec<Irq>,
    /// `setvar` elements.
    pub setvars: Vec<SetVar>,
    /// Parent PD (index in [`System::protection_domains`]) and this PD's id under it.
    pub parent: Option<(usize, u64)>,
    /// Where in the file.
    pub location: Location,
}

/// A memory region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    /// Its name.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Page size.
    pub page_size: u64,
    /// Fixed physical address (device memory or a fixed DMA region).
    pub phys_addr: Option<u64>,
    /// Where in the file.
    pub location: Location,
}

/// One end of a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct End {
    /// The PD (index in [`System::protection_domains`]).
    pub pd: usize,
    /// The PD's id for the channel.
    pub id: u64,
    /// This end may call the other.
    pub pp: bool,
    /// This end may notify.
    pub notify: bool,
}

/// A channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    /// Its two ends.
    pub ends: [End; 2],
    /// Where in the file.
    pub location: Location,
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
}

/// Reads and checks a system description file.
///
/// # Errors
/// The file cannot be read, or the first problem found, located.
pub fn parse_file(path: &std::path::Path) -> Result<System, SdfError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| SdfError {
        file: file.clone(),
        line: 0,
        column: 0,
        message: format!("cannot read the file: {error}"),
    })?;
    parse(&file, &text)
}

/// Parses and checks the text of a system description; `file` names it in errors.
///
/// # Errors
/// The first problem found, located.
pub fn parse(file: &str, text: &str) -> Result<System, SdfError> {
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
    };
    parser.system()
}

struct Parser<'a, 'input> {
    file: &'a str,
    document: &'a roxmltree::Document<'input>,
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
                    format!(
                        "unknown attribute '{}' on <{}> (allowed: {})",
                        attribute.name(),
                        node.tag_name().name(),
                        allowed.join(", ")
                    ),
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
            system.channels.push(channel);
        }
        self.check(&system)?;
        Ok(system)
    }

    fn protection_domain(
        &self,
        node: Node,
        parent: Option<usize>,
        system: &mut System,
    ) -> Result<(), SdfError> {
        let mut allowed = vec![
            "name",
            "priority",
            "budget",
            "period",
            "passive",
            "stack_size",
            "smc",
            "cpu",
            "fpu",
        ];
        if parent.is_some() {
            allowed.push("id");
        }
        self.attributes(node, &allowed)?;
        let name = self.required(node, "name")?.to_string();
        let priority = self.optional_number(node, "priority")?.unwrap_or(0);
        if priority > MAX_PRIORITY {
            return Err(self.error(
                node,
                format!("priority {priority} of '{name}' is above {MAX_PRIORITY}"),
            ));
        }
        let budget = self
            .optional_number(node, "budget")?
            .unwrap_or(DEFAULT_BUDGET);
        let period = self.optional_number(node, "period")?.unwrap_or(budget);
        if budget > period {
            return Err(self.error(
                node,
                format!("budget ({budget}) of '{name}' is greater than its period ({period})"),
            ));
        }
        let stack_size = self
            .optional_number(node, "stack_size")?
            .unwrap_or(MIN_STACK);
        if !(MIN_STACK..=MAX_STACK).contains(&stack_size) || stack_size % SMALL_PAGE != 0 {
            return Err(self.error(
                node,
                format!(
                    "stack_size 0x{stack_size:x} of '{name}' must be a multiple of 0x1000 from 0x{MIN_STACK:x} to 0x{MAX_STACK:x}"
                ),
            ));
        }
        let child_id = match parent {
            Some(_) => {
                let id = self.required_number(node, "id")?;
                if id > MAX_ID {
                    return Err(
                        self.error(node, format!("child id {id} of '{name}' is above {MAX_ID}"))
                    );
                }
                Some(id)
            }
            None => None,
        };
        let mut pd = ProtectionDomain {
            name: name.clone(),
            priority: priority as u8,
            budget,
            period,
            passive: self.boolean(node, "passive", false)?,
            stack_size,
            smc: self.boolean(node, "smc", false)?,
            fpu: self.boolean(node, "fpu", true)?,
            cpu: self.optional_number(node, "cpu")?,
            program_image: String::new(),
            maps: Vec::new(),
            irqs: Vec::new(),
            setvars: Vec::new(),
            parent: parent.zip(child_id),
            location: self.location(node),
        };
        let index = system.protection_domains.len();
        let mut children = Vec::new();
        let mut program_image = None;
        for element in self.elements(node)? {
            match element.tag_name().name() {
                "program_image" => {
                    self.attributes(element, &["path", "path_for_symbols"])?;
                    if program_image.is_some() {
                        return Err(self.error(
                            element,
                            format!("'{name}' has more than one <program_image>"),
                        ));
                    }
                    program_image = Some(self.required(element, "path")?.to_string());
                }
                "map" => {
                    let map = self.map(element)?;
                    pd.maps.push(map);
                }
                "irq" => {
                    let irq = self.irq(element)?;
                    pd.irqs.push(irq);
                }
                "setvar" => {
                    self.attributes(element, &["symbol", "region_paddr"])?;
                    pd.setvars.push(SetVar {
                        symbol: self.required(element, "symbol")?.to_string(),
                        region: self.required(element, "region_paddr")?.to_string(),
                    });
                }
                "protection_domain" => children.push(element),
                "virtual_machine" => {
                    return Err(self.error(element, "<virtual_machine> is not supported by Warden"))
                }
                other => {
                    return Err(self.error(
                        element,
                        format!("unknown element <{other}> in <protection_domain>"),
                    ))
                }
            }
        }
        pd.program_image = program_image
            .ok_or_else(|| self.error(node, format!("'{name}' has no <program_image>")))?;
        self.check_symbols(&pd)?;
        system.protection_domains.push(pd);
        let mut child_ids: Vec<u64> = Vec::new();
        for child in children {
            let before = system.protection_domains.len();
            self.protection_domain(child, Some(index), system)?;
            let id = system
                .protection_domains
                .get(before)
                .and_then(|child| child.parent)
                .map_or(0, |(_, id)| id);
            if child_ids.contains(&id) {
                return Err(self.error(child, format!("child id {id} is used twice in '{name}'")));
            }
            child_ids.push(id);
        }
        Ok(())
    }

    fn check_symbols(&self, pd: &ProtectionDomain) -> Result<(), SdfError> {
        let mut symbols: Vec<&str> = Vec::new();
        let from_maps = pd.maps.iter().flat_map(|map| {
            [&map.setvar_vaddr, &map.setvar_size]
                .into_iter()
                .flatten()
                .map(move |symbol| (symbol.as_str(), map.location))
        });
        let from_setvars = pd
            .setvars
            .iter()
            .map(|setvar| (setvar.symbol.as_str(), pd.location));
        for (symbol, location) in from_maps.chain(from_setvars) {
            if symbols.contains(&symbol) {
                return Err(self.error_at(
                    location,
                    format!("symbol '{symbol}' is set twice in '{}'", pd.name),
                ));
            }
            symbols.push(symbol);
        }
        Ok(())
    }

    fn map(&self, node: Node) -> Result<Map, SdfError> {
        self.attributes(
            node,
            &[
                "mr",
                "vaddr",
                "perms",
                "cached",
                "setvar_vaddr",
                "setvar_size",
            ],
        )?;
        let permissions = match node.attribute("perms") {
            None => Permissions {
                read: true,
                write: true,
                execute: false,
            },
            Some(text) => {
                let valid = !text.is_empty() && text.chars().all(|c| matches!(c, 'r' | 'w' | 'x'));
                if !valid {
                    return Err(self.error(
                        node,
                        format!("perms '{text}' must be a combination of 'r', 'w' and 'x'"),
                    ));
                }
                Permissions {
                    read: text.contains('r'),
                    write: text.contains('w'),
                    execute: text.contains('x'),
                }
            }
        };
        if permissions.write && !permissions.read && !permissions.execute {
            return Err(self.error(node, "write-only maps are not allowed"));
        }
        Ok(Map {
            region: self.required(node, "mr")?.to_string(),
            vaddr: self.required_number(node, "vaddr")?,
            permissions,
            cached: self.boolean(node, "cached", true)?,
            setvar_vaddr: node.attribute("setvar_vaddr").map(str::to_string),
            setvar_size: node.attribute("setvar_size").map(str::to_string),
            location: self.location(node),
        })
    }

    fn irq(&self, node: Node) -> Result<Irq, SdfError> {
        self.attributes(node, &["irq", "id", "trigger"])?;
        let id = self.required_number(node, "id")?;
        if id > MAX_ID {
            return Err(self.error(node, format!("irq id {id} is above {MAX_ID}")));
        }
        let trigger = match node.attribute("trigger") {
            None | Some("level") => Trigger::Level,
            Some("edge") => Trigger::Edge,
            Some(other) => {
                return Err(self.error(
                    node,
                    format!("trigger must be 'level' or 'edge', not '{other}'"),
                ))
            }
        };
        Ok(Irq {
            irq: self.required_number(node, "irq")?,
            id,
            trigger,
            location: self.location(node),
        })
    }

    fn memory_region(&self, node: Node) -> Result<MemoryRegion, SdfError> {
        self.attributes(node, &["name", "size", "page_size", "phys_addr"])?;
        let name = self.required(node, "name")?.to_string();
        let size = self.required_number(node, "size")?;
        let page_size = self
            .optional_number(node, "page_size")?
            .unwrap_or(SMALL_PAGE);
        if page_size != SMALL_PAGE && page_size != LARGE_PAGE {
            return Err(self.error(
                node,
                format!("page_size 0x{page_size:x} of '{name}' must be 0x1000 or 0x200000"),
            ));
        }
        if size == 0 || size % page_size != 0 {
            return Err(self.error(
                node,
                format!("size 0x{size:x} of '{name}' is not a non-zero multiple of its page size 0x{page_size:x}"),
            ));
        }
        let phys_addr = self.optional_number(node, "phys_addr")?;
        if let Some(address) = phys_addr {
            if address % page_size != 0 || address.checked_add(size).is_none() {
                return Err(self.error(
                    node,
                    format!("phys_addr 0x{address:x} of '{name}' is not aligned to its page size 0x{page_size:x}"),
                ));
            }
        }
        Ok(MemoryRegion {
            name,
            size,
            page_size,
            phys_addr,
            location: self.location(node),
        })
    }

    fn channel(&self, node: Node, system: &System) -> Result<Channel, SdfError> {
        self.attributes(node, &[])?;
        let elements = self.elements(node)?;
        let mut ends = Vec::new();
        for element in &elements {
            if element.tag_name().name() != "end" {
                return Err(self.error(
                    *element,
                    format!(
                        "unknown element <{}> in <channel>",
                        element.tag_name().name()
                    ),
                ));
            }
            self.attributes(*element, &["pd", "id", "pp", "notify"])?;
            let pd_name = self.required(*element, "pd")?;
            let pd = system
                .protection_domains
                .iter()
                .position(|pd| pd.name == pd_name)
                .ok_or_else(|| {
                    self.error(*element, format!("no protection domain named '{pd_name}'"))
                })?;
            let id = self.required_number(*element, "id")?;
            if id > MAX_ID {
                return Err(self.error(*element, format!("channel id {id} is above {MAX_ID}")));
            }
            ends.push(End {
                pd,
                id,
                pp: self.boolean(*element, "pp", false)?,
                notify: self.boolean(*element, "notify", true)?,
            });
        }
        let Ok([first, second]) = <[End; 2]>::try_from(ends) else {
            return Err(self.error(node, "a channel must have exactly two <end> elements"));
        };
        if first.pd == second.pd {
            return Err(self.error(
                node,
                "both ends of a channel are in the same protection domain",
            ));
        }
        if first.pp && second.pp {
            return Err(self.error(node, "pp may be set on one end of a channel only"));
        }
        Ok(Channel {
            ends: [first, second],
            location: self.location(node),
        })
    }

    /// The checks across elements.
    fn check(&self, system: &System) -> Result<(), SdfError> {
        let pds = &system.protection_domains;
        if pds.len() > MAX_PROTECTION_DOMAINS {
            let last = pds
                .last()
                .map_or(Location { line: 1, column: 1 }, |pd| pd.location);
            return Err(self.error_at(
                last,
                format!(
                    "{} protection domains: at most {MAX_PROTECTION_DOMAINS} are allowed (children count)",
                    pds.len()
                ),
            ));
        }
        for (index, pd) in pds.iter().enumerate() {
            if pd.name == "monitor" {
                return Err(self.error_at(pd.location, "the name 'monitor' is reserved".into()));
            }
            if pds.iter().take(index).any(|other| other.name == pd.name) {
                return Err(self.error_at(
                    pd.location,
                    format!("protection domain name '{}' is used twice", pd.name),
                ));
            }
        }
        for (index, region) in system.memory_regions.iter().enumerate() {
            let earlier = system.memory_regions.iter().take(index);
            if earlier.clone().any(|other| other.name == region.name) {
                return Err(self.error_at(
                    region.location,
                    format!("memory region name '{}' is used twice", region.name),
                ));
            }
            if let Some(start) = region.phys_addr {
                let end = start + region.size;
                for other in earlier {
                    if let Some(other_start) = other.phys_addr {
                        if start < other_start + other.size && other_start < end {
                            return Err(self.error_at(
                                region.location,
                                format!(
                                    "memory region '{}' overlaps '{}' in physical memory",
                                    region.name, other.name
                                ),
                            ));
                        }
                    }
                }
            }
        }
        self.check_ids(system)?;
        self.check_maps(system)?;
        for channel in &system.channels {
            for (caller, callee) in [
                (&channel.ends[0], &channel.ends[1]),
                (&channel.ends[1], &channel.ends[0]),
            ] {
                let (Some(from), Some(to)) = (pds.get(caller.pd), pds.get(callee.pd)) else {
                    continue;
                };
                // Strictly increasing priorities along every call also make the call graph
                // acyclic: a cycle would need a PD of higher priority than itself.
                if caller.pp && from.priority >= to.priority {
                    return Err(self.error_at(
                        channel.location,
                        format!(
                            "'{}' (priority {}) may only call a protection domain of strictly higher priority, and '{}' has priority {}",
                            from.name, from.priority, to.name, to.priority
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Channel and IRQ ids share one namespace per PD; IRQ numbers are unique system-wide.
    fn check_ids(&self, system: &System) -> Result<(), SdfError> {
        let pds = &system.protection_domains;
        let mut used: Vec<Vec<u64>> = vec![Vec::new(); pds.len()];
        let mut irq_numbers: Vec<u64> = Vec::new();
        for (index, pd) in pds.iter().enumerate() {
            for irq in &pd.irqs {
                if irq_numbers.contains(&irq.irq) {
                    return Err(
                        self.error_at(irq.location, format!("irq {} is claimed twice", irq.irq))
                    );
                }
                irq_numbers.push(irq.irq);
                if let Some(ids) = used.get_mut(index) {
                    if ids.contains(&irq.id) {
                        return Err(self.error_at(
                            irq.location,
                            format!("id {} is used twice in '{}'", irq.id, pd.name),
                        ));
                    }
                    ids.push(irq.id);
                }
            }
        }
        for channel in &system.channels {
            for end in &channel.ends {
                let name = pds.get(end.pd).map_or("", |pd| pd.name.as_str());
                if let Some(ids) = used.get_mut(end.pd) {
                    if ids.contains(&end.id) {
                        return Err(self.error_at(
                            channel.location,
                            format!("id {} is used twice in '{name}'", end.id),
                        ));
                    }
                    ids.push(end.id);
                }
            }
        }
        Ok(())
    }

    fn check_maps(&self, system: &System) -> Result<(), SdfError> {
        for pd in &system.protection_domains {
            let mut placed: Vec<(u64, u64, &str)> = Vec::new();
            for map in &pd.maps {
                let region = system
                    .memory_regions
                    .iter()
                    .find(|region| region.name == map.region)
                    .ok_or_else(|| {
                        self.error_at(
                            map.location,
                            format!("no memory region named '{}'", map.region),
                        )
                    })?;
                if map.vaddr % region.page_size != 0 {
                    return Err(self.error_at(
                        map.location,
                        format!(
                            "vaddr 0x{:x} is not aligned to the page size 0x{:x} of '{}'",
                            map.vaddr, region.page_size, region.name
                        ),
                    ));
                }
                let end = map.vaddr.checked_add(region.size).ok_or_else(|| {
                    self.error_at(map.location, "the map runs past the address space".into())
                })?;
                if let Some((_, _, other)) = placed
                    .iter()
                    .find(|(start, stop, _)| map.vaddr < *stop && *start < end)
                {
                    return Err(self.error_at(
                        map.location,
                        format!(
                            "the map of '{}' at 0x{:x} overlaps the map of '{other}' in '{}'",
                            region.name, map.vaddr, pd.name
                        ),
                    ));
                }
                placed.push((map.vaddr, end, region.name.as_str()));
            }
            for setvar in &pd.setvars {
                let known = system
                    .memory_regions
                    .iter()
                    .any(|region| region.name == setvar.region);
                if !known {
                    return Err(self.error_at(
                        pd.location,
                        format!(
                            "setvar '{}' names no memory region '{}'",
                            setvar.symbol, setvar.region
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
