//! Device memory and DMA memory as a PD sees them: the regions its system description maps
//! (`phys_addr` device regions and DMA regions), each known by its virtual address, size and
//! physical address (the `setvar_vaddr`, `setvar_size` and `region_paddr` setvars), and the
//! register windows of the devices inside them.
//!
//! A driver is told about a device in physical terms (MMIO windows, GIC INTIDs), as Linux is
//! told by the device tree; [`DeviceRegion::registers`] finds the window inside one of the
//! PD's own maps. A window outside every map is simply not reachable by this PD: the system
//! description is what grants it.
//!
//! [`DeviceRegisters`] implements [`warden_registers::Registers`]: on seL4 it is volatile MMIO
//! on the mapped window; on the host platform every access is a synchronous frame to the
//! `warden-host` launcher, which hands it to its model of the device.

#[cfg(not(target_os = "none"))]
use warden_registers::access_ok;
use warden_registers::{Registers, Width};
use warden_vocabulary::MmioWindow;

/// One region this PD maps: a physical window (device memory or DMA memory) and where this PD
/// sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRegion {
    /// The physical window (`region_paddr` and the region's size).
    pub window: MmioWindow,
    /// Where this PD maps its base.
    pub vaddr: u64,
}

impl DeviceRegion {
    /// The region from its three setvar values; `None` if any is unpatched (zero) or the window
    /// is not one (it wraps around).
    #[must_use]
    pub fn new(vaddr: u64, size: u64, paddr: u64) -> Option<Self> {
        let window = MmioWindow { base: paddr, size };
        (vaddr != 0 && paddr != 0 && window.is_valid()).then_some(Self { window, vaddr })
    }

    /// This region and `next` as one, when `next` follows it both in this PD's address space
    /// and in physical memory (a device's window mapped as several regions: a PCIe host
    /// bridge's ECAM with a region per bus that other PDs map too); `None` otherwise.
    #[must_use]
    pub fn joined(self, next: Self) -> Option<Self> {
        let size = self.window.size;
        let follows = self.vaddr.checked_add(size) == Some(next.vaddr)
            && self.window.base.checked_add(size) == Some(next.window.base);
        let window = MmioWindow {
            base: self.window.base,
            size: size.checked_add(next.window.size)?,
        };
        (follows && window.is_valid()).then_some(Self {
            window,
            vaddr: self.vaddr,
        })
    }

    /// The registers of the physical window `window`, if it lies in this region.
    #[must_use]
    pub fn registers(&self, window: MmioWindow) -> Option<DeviceRegisters> {
        if !self.window.contains(&window) {
            return None;
        }
        let vaddr = usize::try_from(self.vaddr + (window.base - self.window.base)).ok()?;
        let size = usize::try_from(window.size).ok()?;
        Some(DeviceRegisters::at(vaddr, size))
    }

    /// The virtual address of physical address `paddr` (DMA regions), if it is in the region.
    #[must_use]
    pub fn vaddr_of(&self, paddr: u64) -> Option<u64> {
        self.window
            .contains(&MmioWindow {
                base: paddr,
                size: 1,
            })
            .then(|| self.vaddr + (paddr - self.window.base))
    }
}

/// A device register window mapped into this PD (see the module docs).
#[derive(Debug)]
pub struct DeviceRegisters {
    #[cfg(target_os = "none")]
    mmio: warden_registers::Mmio,
    #[cfg(not(target_os = "none"))]
    vaddr: usize,
    #[cfg(not(target_os = "none"))]
    size: usize,
}

impl DeviceRegisters {
    /// The window at `vaddr` of `size` bytes. Private: windows come from a [`DeviceRegion`],
    /// which guarantees they lie in one of the PD's device maps.
    fn at(vaddr: usize, size: usize) -> Self {
        #[cfg(target_os = "none")]
        {
            #[allow(unsafe_code)]
            // SAFETY: `DeviceRegion::registers` only makes windows inside a region the Microkit
            // tool mapped into this PD (its setvars were patched from a `map` of a device
            // region, which the tool maps uncached), for the PD's whole life; no Rust
            // reference points into device memory.
            let mmio = unsafe { warden_registers::Mmio::new(vaddr, size) };
            Self { mmio }
        }
        #[cfg(not(target_os = "none"))]
        {
            Self { vaddr, size }
        }
    }

    /// The window's virtual address.
    #[must_use]
    pub fn vaddr(&self) -> usize {
        #[cfg(target_os = "none")]
        {
            self.mmio.base()
        }
        #[cfg(not(target_os = "none"))]
        {
            self.vaddr
        }
    }
}

impl Registers for DeviceRegisters {
    fn size(&self) -> usize {
        #[cfg(target_os = "none")]
        {
            self.mmio.size()
        }
        #[cfg(not(target_os = "none"))]
        {
            self.size
        }
    }

    fn read(&self, offset: usize, width: Width) -> u32 {
        #[cfg(target_os = "none")]
        {
            self.mmio.read(offset, width)
        }
        #[cfg(not(target_os = "none"))]
        {
            if !access_ok(offset, width, self.size) {
                return width.all_ones();
            }
            crate::host::register_read((self.vaddr + offset) as u64, width)
        }
    }

    fn write(&self, offset: usize, width: Width, value: u32) {
        #[cfg(target_os = "none")]
        {
            self.mmio.write(offset, width, value);
        }
        #[cfg(not(target_os = "none"))]
        {
            if access_ok(offset, width, self.size) {
                crate::host::register_write((self.vaddr + offset) as u64, width, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_found_only_inside_the_region() {
        let window = |base, size| MmioWindow { base, size };
        let region = DeviceRegion::new(0x500_0000, 0x4000, 0xa00_0000).unwrap();
        let registers = region.registers(window(0xa00_3e00, 0x200)).unwrap();
        assert_eq!(registers.vaddr(), 0x500_3e00);
        assert_eq!(registers.size(), 0x200);
        assert!(
            region.registers(window(0xa00_3f00, 0x200)).is_none(),
            "runs past the end"
        );
        assert!(
            region.registers(window(0x900_0000, 0x1000)).is_none(),
            "another device"
        );
        assert!(
            region.registers(window(u64::MAX - 4, 0x200)).is_none(),
            "wraps"
        );
        assert!(region.registers(window(0xa00_0000, 0)).is_none(), "empty");
        assert_eq!(region.vaddr_of(0xa00_0010), Some(0x500_0010));
        assert_eq!(region.vaddr_of(0xa00_4000), None);
        assert!(DeviceRegion::new(0, 0x1000, 0x1000).is_none(), "unpatched");
        assert!(
            DeviceRegion::new(0x1000, 0x2000, u64::MAX).is_none(),
            "wraps"
        );
    }

    #[test]
    fn regions_that_follow_one_another_join() {
        let bus0 = DeviceRegion::new(0x1000_0000, 0x10_0000, 0x40_1000_0000).unwrap();
        let bus1 = DeviceRegion::new(0x1010_0000, 0x10_0000, 0x40_1010_0000).unwrap();
        let joined = bus0.joined(bus1).unwrap();
        assert_eq!(joined.window.size, 0x20_0000);
        assert_eq!(joined.vaddr, 0x1000_0000);
        assert!(joined
            .registers(MmioWindow {
                base: 0x40_1010_8000,
                size: 0x1000
            })
            .is_some());
        let elsewhere = DeviceRegion::new(0x2000_0000, 0x10_0000, 0x40_1010_0000).unwrap();
        assert!(
            bus0.joined(elsewhere).is_none(),
            "not next in the PD's space"
        );
        let other = DeviceRegion::new(0x1010_0000, 0x10_0000, 0x40_1030_0000).unwrap();
        assert!(bus0.joined(other).is_none(), "not next in physical memory");
        assert!(bus1.joined(bus0).is_none(), "in order only");
    }
}
