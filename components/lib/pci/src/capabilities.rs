//! The capability list (PCI Local Bus 3.0 §6.7): walked with every pointer checked, so a list
//! that loops, points into the header or runs off the end stops the walk with an error instead
//! of looping or reading garbage.

use crate::config::{register, Address, ConfigSpace, STATUS_CAPABILITIES};

/// Capability ids Warden reads.
pub mod id {
    /// Message Signalled Interrupts.
    pub const MSI: u8 = 0x05;
    /// Vendor-specific (virtio-pci's structures).
    pub const VENDOR: u8 = 0x09;
    /// PCI Express.
    pub const EXPRESS: u8 = 0x10;
    /// MSI-X.
    pub const MSI_X: u8 = 0x11;
}

/// One capability: where it is and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Capability {
    /// Its offset in configuration space (0x40–0xFC, dword-aligned).
    pub offset: u8,
    /// Its id.
    pub id: u8,
}

/// Why a walk stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CapabilityError {
    /// The list comes back to a capability already seen.
    Loop {
        /// The offset seen twice.
        offset: u8,
    },
    /// A pointer into the standard header (below 0x40).
    IntoHeader {
        /// The pointer.
        pointer: u8,
    },
}

impl core::fmt::Display for CapabilityError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Loop { offset } => {
                write!(f, "capability list loops back to 0x{offset:02x}")
            }
            Self::IntoHeader { pointer } => {
                write!(
                    f,
                    "capability pointer 0x{pointer:02x} points into the header"
                )
            }
        }
    }
}

/// The capabilities of one function, in list order; after an error, nothing more.
pub struct Capabilities<C> {
    config: C,
    address: Address,
    next: u8,
    /// Offsets seen, one bit per dword of the 256-byte space.
    seen: [u64; 4],
    failed: bool,
}

/// The capability list of `address` (empty when the status register says there is none).
pub fn capabilities<C: ConfigSpace>(config: C, address: Address) -> Capabilities<C> {
    let present = config.read16(address, register::STATUS) & STATUS_CAPABILITIES != 0;
    let next = if present {
        // The bottom two bits are reserved (§6.7): masked, as Linux does.
        config.read8(address, register::CAPABILITIES) & 0xFC
    } else {
        0
    };
    Capabilities {
        config,
        address,
        next,
        seen: [0; 4],
        failed: false,
    }
}

impl<C: ConfigSpace> Iterator for Capabilities<C> {
    type Item = Result<Capability, CapabilityError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next == 0 {
            return None;
        }
        let offset = self.next;
        if offset < 0x40 {
            self.failed = true;
            return Some(Err(CapabilityError::IntoHeader { pointer: offset }));
        }
        let dword = usize::from(offset / 4);
        let (word, bit) = (dword / 64, dword % 64);
        let Some(seen) = self.seen.get_mut(word) else {
            self.failed = true;
            return Some(Err(CapabilityError::IntoHeader { pointer: offset }));
        };
        if *seen & (1 << bit) != 0 {
            self.failed = true;
            return Some(Err(CapabilityError::Loop { offset }));
        }
        *seen |= 1 << bit;
        let header = self.config.read16(self.address, u16::from(offset));
        let id = (header & 0xFF) as u8;
        self.next = ((header >> 8) as u8) & 0xFC;
        Some(Ok(Capability { offset, id }))
    }
}

/// The first capability with id `id`, or the error that stopped the walk before one was found.
///
/// # Errors
/// What stopped the walk, if it stopped before a capability `id`.
pub fn find<C: ConfigSpace>(
    config: C,
    address: Address,
    id: u8,
) -> Result<Option<Capability>, CapabilityError> {
    for capability in capabilities(config, address) {
        let capability = capability?;
        if capability.id == id {
            return Ok(Some(capability));
        }
    }
    Ok(None)
}
