//! Base address registers: what each asks for, read the standard way (write all ones, read the
//! mask back, restore), and how an assigned address is written back.
//!
//! The size is the mask's lowest set address bit, as Linux's `pci_size` reads it, so a mask
//! with holes cannot make the size anything but a power of two. A BAR whose mask reads 0 is not
//! implemented. Sizing is done with the function's decoding off (the caller's job), since a
//! half-written BAR would decode at a random address.

use crate::config::{register, Address, ConfigSpace};

/// What a BAR maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BarKind {
    /// I/O space.
    Io,
    /// Memory below 4 GiB (a 32-bit BAR, or one of the old "below 1 MiB" kind).
    Memory32,
    /// Memory anywhere: this BAR and the next hold the address.
    Memory64,
}

/// One BAR's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BarRequest {
    /// Its index, 0–5 (the first of the two for a 64-bit BAR).
    pub index: u8,
    /// What it maps.
    pub kind: BarKind,
    /// Prefetchable memory.
    pub prefetchable: bool,
    /// Bytes, a power of two (also its alignment).
    pub size: u64,
}

impl BarRequest {
    /// Where it goes: 64-bit prefetchable BARs through the prefetchable windows, other
    /// memory BARs (a 64-bit non-prefetchable one too, as Linux does) below 4 GiB.
    #[must_use]
    pub const fn space(&self) -> warden_vocabulary::PciSpace {
        use warden_vocabulary::PciSpace;
        match self.kind {
            BarKind::Io => PciSpace::Io,
            BarKind::Memory64 if self.prefetchable => PciSpace::Prefetchable,
            BarKind::Memory64 | BarKind::Memory32 => PciSpace::Memory,
        }
    }

    /// Its register's offset.
    #[must_use]
    pub const fn offset(&self) -> u16 {
        register::BAR0 + 4 * self.index as u16
    }
}

/// A BAR that cannot be used as it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BarError {
    /// A 64-bit BAR in the last register, with no register for its upper half.
    NoUpperHalf {
        /// The BAR.
        index: u8,
    },
    /// A memory BAR of the reserved type (bits 2:1 = 11).
    ReservedType {
        /// The BAR.
        index: u8,
    },
}

impl core::fmt::Display for BarError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoUpperHalf { index } => {
                write!(
                    f,
                    "BAR {index} is 64-bit but has no register for its upper half"
                )
            }
            Self::ReservedType { index } => write!(f, "BAR {index} has the reserved memory type"),
        }
    }
}

/// Reads the requests of the first `count` BARs (6 for an endpoint, 2 for a bridge), each
/// restored to what it held. `None` entries are BARs not implemented (or the upper halves of
/// 64-bit BARs).
pub fn size_bars<C: ConfigSpace>(
    config: &C,
    address: Address,
    count: u8,
) -> [Option<Result<BarRequest, BarError>>; 6] {
    let mut requests = [None; 6];
    let count = count.min(6);
    let mut index = 0;
    while index < count {
        let offset = register::BAR0 + 4 * u16::from(index);
        let original = config.read32(address, offset);
        config.write32(address, offset, u32::MAX);
        let mask = config.read32(address, offset);
        config.write32(address, offset, original);
        let mut next = index + 1;
        let request = if original & 1 == 1 {
            // I/O: bits 31:2 are the address (the upper 16 may be hardwired to zero).
            let size = lowest_bit(u64::from(mask & !0x3));
            size.map(|size| {
                Ok(BarRequest {
                    index,
                    kind: BarKind::Io,
                    prefetchable: false,
                    size,
                })
            })
        } else {
            let prefetchable = original & 0x8 != 0;
            match (original >> 1) & 0x3 {
                0b10 => {
                    next = index + 2;
                    if index + 1 >= count {
                        Some(Err(BarError::NoUpperHalf { index }))
                    } else {
                        let upper = offset + 4;
                        let original_upper = config.read32(address, upper);
                        config.write32(address, upper, u32::MAX);
                        let mask_upper = config.read32(address, upper);
                        config.write32(address, upper, original_upper);
                        let mask = (u64::from(mask_upper) << 32) | u64::from(mask & !0xF);
                        lowest_bit(mask).map(|size| {
                            Ok(BarRequest {
                                index,
                                kind: BarKind::Memory64,
                                prefetchable,
                                size,
                            })
                        })
                    }
                }
                0b11 => Some(Err(BarError::ReservedType { index })),
                _ => lowest_bit(u64::from(mask & !0xF)).map(|size| {
                    Ok(BarRequest {
                        index,
                        kind: BarKind::Memory32,
                        prefetchable,
                        size,
                    })
                }),
            }
        };
        if let Some(slot) = requests.get_mut(usize::from(index)) {
            *slot = request;
        }
        index = next;
    }
    requests
}

/// Writes the bus address `address` into BAR `request` (both halves of a 64-bit BAR).
pub fn write_bar<C: ConfigSpace>(
    config: &C,
    function: Address,
    request: &BarRequest,
    address: u64,
) {
    config.write32(function, request.offset(), (address & 0xFFFF_FFFF) as u32);
    if request.kind == BarKind::Memory64 {
        config.write32(function, request.offset() + 4, (address >> 32) as u32);
    }
}

/// Reads back the bus address BAR `request` holds.
pub fn read_bar<C: ConfigSpace>(config: &C, function: Address, request: &BarRequest) -> u64 {
    let flags = if request.kind == BarKind::Io {
        0x3
    } else {
        0xF
    };
    let low = u64::from(config.read32(function, request.offset()) & !flags);
    if request.kind == BarKind::Memory64 {
        low | (u64::from(config.read32(function, request.offset() + 4)) << 32)
    } else {
        low
    }
}

/// The lowest set bit of `mask` as a value; `None` for 0.
fn lowest_bit(mask: u64) -> Option<u64> {
    (mask != 0).then(|| mask & mask.wrapping_neg())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_is_the_lowest_address_bit_of_the_mask() {
        assert_eq!(lowest_bit(0xFFFF_F000), Some(0x1000));
        assert_eq!(lowest_bit(0xFFFF_0000_F000), Some(0x1000));
        assert_eq!(lowest_bit(1 << 63), Some(1 << 63));
        assert_eq!(lowest_bit(0), None);
    }
}
