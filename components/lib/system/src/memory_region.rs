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
    /// `prefill_path`: the file whose bytes the region starts with.
    pub prefill: Option<Prefill>,
    /// `prefill_bootinfo`: boot information the loader puts in the region (`fdt`, or x86's).
    pub prefill_bootinfo: Option<String>,
    /// Where in the file.
    pub location: Location,
}

/// A region's `prefill_path`, found as the microkit tool finds it: relative to the description's
/// folder, then to the working directory (the tool searches its `--search-path`s, then the
/// working directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prefill {
    /// The file found.
    pub path: std::path::PathBuf,
    /// Its length in bytes when the description was read (what `setvar_prefill_size` gives).
    pub length: u64,
}

/// `prefill_bootinfo` values the microkit tool 2.3.0 knows.
const BOOT_INFO: [&str; 6] = [
    "x86_vbe",
    "x86_mbmmap",
    "x86_acpi_rsdp",
    "x86_framebuffer",
    "x86_tsc_freq",
    "fdt",
];

impl Parser<'_, '_> {
    pub(super) fn memory_region(&self, node: Node) -> Result<MemoryRegion, SdfError> {
        self.attributes(
            node,
            &[
                "name",
                "size",
                "page_size",
                "phys_addr",
                "prefill_path",
                "prefill_bootinfo",
            ],
        )?;
        let name = self.required(node, "name")?.to_string();
        let page_size = self
            .optional_number(node, "page_size")?
            .unwrap_or(SMALL_PAGE);
        if page_size != SMALL_PAGE && page_size != LARGE_PAGE {
            return Err(self.error(
                node,
                format!("page_size 0x{page_size:x} of '{name}' must be 0x1000 or 0x200000"),
            ));
        }
        let prefill = node
            .attribute("prefill_path")
            .map(|path| self.prefill(node, path))
            .transpose()?;
        let prefill_bootinfo = node.attribute("prefill_bootinfo").map(str::to_string);
        if let Some(kind) = &prefill_bootinfo {
            if !BOOT_INFO.contains(&kind.as_str()) {
                return Err(
                    self.error(node, format!("BootInfoMap type: '{kind}' is not supported"))
                );
            }
            if prefill.is_some() {
                return Err(self.error(
                    node,
                    "prefill_path and prefill_bootinfo cannot be both specified",
                ));
            }
        }
        // As the tool: without `size`, a prefilled region is its file rounded up to pages, and
        // boot information takes one page.
        let size = match (self.optional_number(node, "size")?, &prefill) {
            (Some(size), _) => size,
            (None, Some(prefill)) => prefill.length.div_ceil(page_size).saturating_mul(page_size),
            (None, None) if prefill_bootinfo.is_some() => page_size,
            (None, None) => {
                return Err(self.error(
                    node,
                    format!("memory region '{name}': size must be specified if memory region is not prefilled"),
                ))
            }
        };
        if let Some(prefill) = &prefill {
            if prefill.length > size {
                return Err(self.error(
                    node,
                    format!(
                        "size of prefill file exceeds memory region size: {:x} > {size:x}",
                        prefill.length
                    ),
                ));
            }
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
            prefill,
            prefill_bootinfo,
            location: self.location(node),
        })
    }

    /// Finds a `prefill_path` file and takes its length (the file is read when the system is
    /// built or run, not here: a description names any path, `/dev/zero` included).
    fn prefill(&self, node: Node, path: &str) -> Result<Prefill, SdfError> {
        let relative = std::path::Path::new(path);
        let folder = std::path::Path::new(self.file)
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let found = [folder.join(relative), relative.to_path_buf()]
            .into_iter()
            .find(|candidate| candidate.exists())
            .ok_or_else(|| self.error(node, format!("unable to find prefill file: '{path}'")))?;
        let metadata = std::fs::metadata(&found).map_err(|_| {
            self.error(
                node,
                format!("failed to read file '{path}' at prefill_path"),
            )
        })?;
        if !metadata.is_file() {
            return Err(self.error(node, format!("prefill file '{path}' is not a regular file")));
        }
        if metadata.len() == 0 {
            return Err(self.error(node, format!("prefill file '{path}' is empty")));
        }
        Ok(Prefill {
            path: found,
            length: metadata.len(),
        })
    }
}
