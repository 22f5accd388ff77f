//! The `memory_region` element.

use super::*;

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

impl Parser<'_, '_> {
    pub(super) fn memory_region(&self, node: Node) -> Result<MemoryRegion, SdfError> {
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
}
