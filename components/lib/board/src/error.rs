//! Why a blob, or one node of it, could not be read.

use core::fmt;

/// What went wrong reading the board's device tree.
///
/// Errors about the blob as a whole (`Truncated` to `TooDeep`) come from [`crate::Board::new`],
/// which checks the whole structure block before anything is read from it. Errors naming a
/// `node` come from [`crate::Devices`] and concern that node alone: iteration goes on with the
/// next node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoardError<'a> {
    /// The blob is shorter than its header, or than the `totalsize` its header states.
    Truncated {
        /// Bytes the header says (or the header itself needs).
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// The first word is not the flattened-devicetree magic `0xd00dfeed`.
    BadMagic {
        /// The word found instead.
        found: u32,
    },
    /// The blob's format version cannot be read by a version-17 reader.
    UnsupportedVersion {
        /// The header's `version`.
        version: u32,
        /// The header's `last_comp_version`.
        last_compatible_version: u32,
    },
    /// A header field places a block outside the blob (or is otherwise impossible).
    BadHeader {
        /// The header field at fault.
        field: &'static str,
    },
    /// The structure block is not a well-formed token sequence.
    Malformed {
        /// Byte offset of the fault, from the start of the structure block.
        offset: usize,
        /// What is wrong there.
        reason: &'static str,
    },
    /// Nodes are nested more deeply than Warden reads (see [`crate::MAX_DEPTH`]).
    TooDeep {
        /// Byte offset of the node too deep, from the start of the structure block.
        offset: usize,
    },
    /// The node has more compatible strings, `reg` windows or interrupts than a
    /// [`crate::BoardDevice`] holds.
    TooMany {
        /// The node's name.
        node: &'a str,
        /// What there are too many of.
        what: &'static str,
        /// How many Warden holds.
        limit: usize,
    },
    /// One of the node's own properties is malformed (wrong length, bad encoding, a value that
    /// cannot be).
    BadProperty {
        /// The node's name.
        node: &'a str,
        /// The property.
        property: &'static str,
    },
    /// A property of the node's bus or interrupt controller, needed to read the node, is
    /// malformed or has a value Warden does not read (e.g. `#address-cells = <3>` on a bus that
    /// is not a PCI bus).
    BadParentProperty {
        /// The node being read.
        node: &'a str,
        /// The bus or interrupt controller whose property it is.
        parent: &'a str,
        /// The property.
        property: &'static str,
    },
    /// The storage given to [`crate::Board::index_phandles`] has fewer slots than the tree has
    /// phandles.
    IndexTooSmall {
        /// Phandles in the tree ([`crate::Board::phandle_count`]).
        needed: usize,
        /// Slots given.
        given: usize,
    },
    /// A `reg` address cannot be translated to a CPU-physical address: a bus between the node
    /// and the root has no `ranges` (a syscon's children), or none of its `ranges` covers the
    /// window. The walk yields no such error: it keeps the device, with the windows before
    /// that one ([`crate::BoardDevice::reg_not_translatable`]); the variant names the case.
    NotTranslatable {
        /// The node being read.
        node: &'a str,
        /// The bus whose address space the address could not leave.
        bus: &'a str,
        /// The address, in that bus's address space.
        address: u64,
    },
}

impl fmt::Display for BoardError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Truncated { needed, available } => write!(
                f,
                "device tree blob truncated: {needed} bytes needed, {available} available"
            ),
            Self::BadMagic { found } => {
                write!(
                    f,
                    "not a device tree blob: magic {found:#010x}, expected 0xd00dfeed"
                )
            }
            Self::UnsupportedVersion {
                version,
                last_compatible_version,
            } => write!(
                f,
                "device tree blob version {version} (compatible back to \
                 {last_compatible_version}) cannot be read as version 17"
            ),
            Self::BadHeader { field } => {
                write!(f, "device tree blob header field {field} is out of range")
            }
            Self::Malformed { offset, reason } => {
                write!(
                    f,
                    "device tree structure block malformed at offset {offset:#x}: {reason}"
                )
            }
            Self::TooDeep { offset } => write!(
                f,
                "device tree nodes nested more than {} deep (at structure offset {offset:#x})",
                crate::MAX_DEPTH
            ),
            Self::TooMany { node, what, limit } => {
                write!(f, "node {node}: more {what} than the {limit} Warden holds")
            }
            Self::BadProperty { node, property } => {
                write!(f, "node {node}: property {property} is malformed")
            }
            Self::BadParentProperty {
                node,
                parent,
                property,
            } => write!(
                f,
                "node {node}: {property} of {parent} is malformed or not supported"
            ),
            Self::IndexTooSmall { needed, given } => write!(
                f,
                "the tree has {needed} phandles, the index room for {given}"
            ),
            Self::NotTranslatable { node, bus, address } => write!(
                f,
                "node {node}: address {address:#x} on bus {bus} has no CPU-physical translation"
            ),
        }
    }
}

impl core::error::Error for BoardError<'_> {}
