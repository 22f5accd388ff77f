//! The board's devices, read from its flattened device tree (DTB).
//!
//! The device manager's initial device tree comes from the board's DTB: for QEMU virt the blob
//! QEMU itself dumps, for the Odroid C4 `platform/odroidc4/board.dts` compiled by dtc (both
//! made by `scripts/board-dtb.sh`). [`Board::devices`] lists every node with a `compatible`
//! property, in tree order, with its MMIO windows translated to CPU-physical addresses and its
//! interrupts as GIC interrupt ids: what a driver needs mapped and routed.
//!
//! The blob is untrusted input and nothing here panics on it or allocates. The `fdt` crate
//! (0.1.5) panics on malformed blobs (it indexes, unwraps and asserts on the structure block),
//! so [`Board::new`] first checks the header and the whole structure block itself, and only then
//! lets `fdt` read the root node; the device walk is this crate's own bounds-checked reader,
//! because it needs each node's ancestors (for `ranges` and the interrupt parent), which `fdt`
//! does not expose.
#![no_std]
#![forbid(unsafe_code)]

mod blob;
mod devices;
mod error;
pub mod fuzzing;
mod index;
mod pci;

pub use devices::{BoardBus, BoardDevice, Devices};
pub use error::BoardError;
pub use index::{PhandleIndex, PhandleSlot};
pub use pci::{IntxRoute, PciHost, MAX_APERTURES, MAX_INTX_ROUTES};

/// How many compatible strings, MMIO windows and interrupts a [`BoardDevice`] holds: as many
/// as a device of Warden's carries ([`MAX_COMPATIBLE`], [`MAX_MMIO`], [`MAX_IRQS`]). A node
/// with more is left out with [`BoardError::TooMany`], naming the node and the limit.
pub use warden_vocabulary::{MAX_COMPATIBLE, MAX_IRQS, MAX_MMIO};

/// How deeply nodes may nest: a node at depth `MAX_DEPTH` is read, one deeper is not (the root
/// is depth 0, its children depth 1). Real boards stay below 10; the bound keeps the walk
/// allocation-free.
pub const MAX_DEPTH: usize = 16;

/// A board's device tree blob, checked and ready to be read.
#[derive(Clone, Copy)]
pub struct Board<'a> {
    blob: blob::Blob<'a>,
    tree: fdt::Fdt<'a>,
}

impl core::fmt::Debug for Board<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Board")
            .field("model", &self.model())
            .field("compatible", &self.compatible())
            .finish_non_exhaustive()
    }
}

impl<'a> Board<'a> {
    /// Checks the blob: the header (magic, version 17, `totalsize` within `dtb`, every block
    /// inside it) and the whole structure block (see [`BoardError`] for what is reported).
    ///
    /// # Errors
    /// Any of the blob-level [`BoardError`]s when the blob is truncated or malformed.
    pub fn new(dtb: &'a [u8]) -> Result<Self, BoardError<'a>> {
        let (whole, blob) = blob::parse_header(dtb)?;
        blob::validate(blob)?;
        // Only after `validate`: from here on `fdt` sees a tree it reads without panicking.
        let tree = fdt::Fdt::new(whole).map_err(|_| BoardError::BadHeader { field: "magic" })?;
        Ok(Self { blob, tree })
    }

    /// The root's `model`, e.g. `"linux,dummy-virt"`.
    #[must_use]
    pub fn model(&self) -> Option<&'a str> {
        let value = self.tree.find_node("/")?.property("model")?.value;
        first_string(value)
    }

    /// The root's first (most specific) `compatible` string, e.g. `"hardkernel,odroid-c4"`.
    #[must_use]
    pub fn compatible(&self) -> Option<&'a str> {
        let value = self.tree.find_node("/")?.property("compatible")?.value;
        first_string(value)
    }

    /// The board's devices in tree order, parents before children: every node with a
    /// `compatible` property except the root and what lies under `/cpus`, `/chosen`,
    /// `/aliases` and `/reserved-memory`. Disabled devices are included.
    ///
    /// A node that cannot be read (too many windows, a malformed property, a bus whose cells
    /// Warden does not read) is an `Err` item naming it, and the walk goes on with the next
    /// node. A `reg` that names no CPU-physical address is no error: see
    /// [`BoardDevice::reg_not_translatable`] and [`BoardBus`].
    ///
    /// Without an index every phandle a node names (its `interrupt-parent`, the controllers of
    /// its `interrupts-extended`) is looked up by a walk over the tree, so a tree with many
    /// interrupt controllers costs time quadratic in its size; [`Board::devices_indexed`] is
    /// linear. Fine for small trees and tests.
    #[must_use]
    pub fn devices(&self) -> Devices<'_, 'a> {
        Devices::new(self.blob, None)
    }

    /// As [`Board::devices`], with every phandle looked up in `index` (made by
    /// [`Board::index_phandles`] from this board): the walk is linear in the blob's size
    /// (a lookup is a binary search, at most a few hops per node).
    #[must_use]
    pub fn devices_indexed<'b>(&'b self, index: &'b PhandleIndex<'_>) -> Devices<'b, 'a> {
        Devices::new(self.blob, Some(index.slots()))
    }

    /// How many nodes carry a phandle: the room [`Board::index_phandles`] needs.
    #[must_use]
    pub fn phandle_count(&self) -> usize {
        index::count(self.blob)
    }

    /// Indexes every node's phandle into `storage` (one walk and a sort), for
    /// [`Board::devices_indexed`]. Where two nodes claim one phandle, the first in tree order
    /// is the one found, as in a walk.
    ///
    /// # Errors
    /// [`BoardError::IndexTooSmall`] when `storage` has fewer than [`Board::phandle_count`]
    /// slots.
    pub fn index_phandles<'i>(
        &self,
        storage: &'i mut [PhandleSlot],
    ) -> Result<PhandleIndex<'i>, BoardError<'a>> {
        index::build(self.blob, storage)
    }
}

/// The first string of a string or string-list value, if it is NUL-terminated, non-empty UTF-8.
fn first_string(value: &[u8]) -> Option<&str> {
    let end = value.iter().position(|&byte| byte == 0)?;
    core::str::from_utf8(value.get(..end)?)
        .ok()
        .filter(|string| !string.is_empty())
}
