//! The PCI Express capability (PCI Express 5.0 §7.5.3): what a function is on the link (root
//! port, switch port, endpoint) and, for a port with a slot, the slot's hot-plug registers.

use crate::config::{Address, ConfigSpace};

/// Offsets inside the PCI Express capability.
pub mod register {
    /// PCI Express Capabilities (16 bits): version, device/port type, slot implemented.
    pub const CAPABILITIES: u16 = 0x02;
    /// Link Status (16 bits).
    pub const LINK_STATUS: u16 = 0x12;
    /// Slot Capabilities (32 bits).
    pub const SLOT_CAPABILITIES: u16 = 0x14;
    /// Slot Control (16 bits).
    pub const SLOT_CONTROL: u16 = 0x18;
    /// Slot Status (16 bits).
    pub const SLOT_STATUS: u16 = 0x1A;
}

/// Slot Capabilities bits.
pub mod slot_capabilities {
    /// Attention Button Present.
    pub const ATTENTION_BUTTON: u32 = 1 << 0;
    /// Power Controller Present.
    pub const POWER_CONTROLLER: u32 = 1 << 1;
    /// Hot-Plug Surprise: the slot's device may go without warning.
    pub const SURPRISE: u32 = 1 << 5;
    /// Hot-Plug Capable.
    pub const HOT_PLUG: u32 = 1 << 6;
    /// No Command Completed Support.
    pub const NO_COMMAND_COMPLETED: u32 = 1 << 18;
}

/// Slot Control bits.
pub mod slot_control {
    /// Attention Button Pressed Enable.
    pub const ATTENTION_BUTTON: u16 = 1 << 0;
    /// Presence Detect Changed Enable.
    pub const PRESENCE_DETECT: u16 = 1 << 3;
    /// Command Completed Interrupt Enable.
    pub const COMMAND_COMPLETED: u16 = 1 << 4;
    /// Hot-Plug Interrupt Enable.
    pub const HOT_PLUG_INTERRUPT: u16 = 1 << 5;
    /// Power Indicator Control (2 bits): 01 on, 10 blink, 11 off.
    pub const POWER_INDICATOR: u16 = 0b11 << 8;
    /// Power Controller Control: 1 is power off.
    pub const POWER_OFF: u16 = 1 << 10;
    /// Data Link Layer State Changed Enable.
    pub const LINK_STATE: u16 = 1 << 12;
}

/// Slot Status bits (write 1 to clear the events).
pub mod slot_status {
    /// Attention Button Pressed.
    pub const ATTENTION_BUTTON: u16 = 1 << 0;
    /// Presence Detect Changed.
    pub const PRESENCE_CHANGED: u16 = 1 << 3;
    /// Command Completed.
    pub const COMMAND_COMPLETED: u16 = 1 << 4;
    /// Presence Detect State: a card is in the slot.
    pub const PRESENT: u16 = 1 << 6;
    /// Data Link Layer State Changed.
    pub const LINK_CHANGED: u16 = 1 << 8;
}

/// The device/port type field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortType {
    /// An endpoint (types 0 and 1).
    Endpoint,
    /// A root port of the root complex.
    RootPort,
    /// A switch's upstream port.
    UpstreamPort,
    /// A switch's downstream port.
    DownstreamPort,
    /// A bridge to conventional PCI, or another type.
    Other(u8),
}

/// A slot of a root or downstream port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Slot {
    /// Slot Capabilities as read.
    pub capabilities: u32,
}

impl Slot {
    /// Whether the slot is hot-plug capable.
    #[must_use]
    pub const fn hot_plug(&self) -> bool {
        self.capabilities & slot_capabilities::HOT_PLUG != 0
    }

    /// The physical slot number.
    #[must_use]
    pub const fn number(&self) -> u16 {
        (self.capabilities >> 19) as u16
    }
}

/// A function's PCI Express capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Express {
    /// Where the capability is.
    pub offset: u8,
    /// What the function is on its link.
    pub port_type: PortType,
    /// Its slot, if it is a port with one.
    pub slot: Option<Slot>,
}

/// Reads the capability at `offset` of `address`.
pub fn read<C: ConfigSpace>(config: &C, address: Address, offset: u8) -> Express {
    let base = u16::from(offset);
    let capabilities = config.read16(address, base + register::CAPABILITIES);
    let port_type = match (capabilities >> 4) & 0xF {
        0 | 1 => PortType::Endpoint,
        4 => PortType::RootPort,
        5 => PortType::UpstreamPort,
        6 => PortType::DownstreamPort,
        other => PortType::Other(other as u8),
    };
    let slot_implemented = capabilities & (1 << 8) != 0
        && matches!(port_type, PortType::RootPort | PortType::DownstreamPort);
    let slot = slot_implemented.then(|| Slot {
        capabilities: config.read32(address, base + register::SLOT_CAPABILITIES),
    });
    Express {
        offset,
        port_type,
        slot,
    }
}
