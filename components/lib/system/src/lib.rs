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

mod channel;
mod checks;
pub mod grants;
mod memory_region;
mod protection_domain;

pub use channel::{Channel, End};
pub use memory_region::MemoryRegion;
pub use protection_domain::{Irq, Map, Permissions, ProtectionDomain, SetVar, Trigger};

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

impl System {
    /// The memory region named `name`.
    #[must_use]
    pub fn region(&self, name: &str) -> Option<&MemoryRegion> {
        self.memory_regions
            .iter()
            .find(|region| region.name == name)
    }
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
}
