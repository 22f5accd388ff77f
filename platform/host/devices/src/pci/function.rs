//! One function's configuration space: 4 KiB of bytes and, per bit, whether software may
//! write it. BARs, bus numbers and windows are writable bits like any other, so sizing a BAR
//! (all ones written, the mask read back) works here as on hardware.

use warden_pci::capabilities::id;
use warden_pci::config::{
    register, FUNCTION_SPACE, HEADER_BRIDGE, MULTIFUNCTION, STATUS_CAPABILITIES,
};
use warden_pci::express::{register as express, slot_control, slot_status};

use super::PciBus;
use crate::{Device, Width};

/// What a BAR asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarSpec {
    /// 32-bit memory of `size` bytes (a power of two, at least 16).
    Memory32 {
        /// Bytes.
        size: u64,
        /// Prefetchable.
        prefetchable: bool,
    },
    /// 64-bit memory of `size` bytes, in this BAR and the next.
    Memory64 {
        /// Bytes.
        size: u64,
        /// Prefetchable.
        prefetchable: bool,
    },
    /// I/O of `size` bytes (a power of two, at least 4).
    Io {
        /// Bytes.
        size: u64,
    },
}

/// A function.
#[derive(Debug)]
pub struct PciFunction {
    config: Box<[u8; FUNCTION_SPACE as usize]>,
    writable: Box<[u8; FUNCTION_SPACE as usize]>,
    /// The bus behind a bridge.
    secondary: Option<Box<PciBus>>,
    /// Where the next capability goes.
    next_capability: u16,
    /// The last capability's "next" byte.
    last_link: u16,
    /// Reads left before the function stops answering (`None`: never).
    vanish_after: Option<u32>,
    /// A bridge whose secondary bus number reads this, whatever is written.
    fixed_secondary: Option<u8>,
    /// A root port's hot-plug slot.
    slot: Option<SlotModel>,
    /// What one of its memory BARs decodes (a virtio-pci card's structures).
    memory: Option<BarMemory>,
    reads: u64,
    writes: u64,
}

/// A device model behind memory BAR `bar`, reached at offsets into the BAR.
struct BarMemory {
    bar: u8,
    device: Box<dyn Device>,
}

impl std::fmt::Debug for BarMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BarMemory")
            .field("bar", &self.bar)
            .field("device", &self.device.kind())
            .finish()
    }
}

/// A root port's slot: where its PCI Express capability is, and the events not yet cleared.
/// Presence and the link follow the card in the port's bus (device 0).
#[derive(Clone, Copy, Debug)]
struct SlotModel {
    express: u16,
    events: u16,
}

/// Slot Status bits that are events (write 1 to clear).
const SLOT_EVENTS: u16 = slot_status::ATTENTION_BUTTON
    | slot_status::PRESENCE_CHANGED
    | slot_status::COMMAND_COMPLETED
    | slot_status::LINK_CHANGED;
/// Link Status: Data Link Layer Link Active.
const LINK_ACTIVE: u16 = 1 << 13;

impl PciFunction {
    fn blank(vendor: u16, device: u16, class: u32, header: u8) -> Self {
        let mut function = Self {
            config: Box::new([0; FUNCTION_SPACE as usize]),
            writable: Box::new([0; FUNCTION_SPACE as usize]),
            secondary: None,
            next_capability: 0x40,
            last_link: register::CAPABILITIES,
            vanish_after: None,
            fixed_secondary: None,
            slot: None,
            memory: None,
            reads: 0,
            writes: 0,
        };
        function.set(register::VENDOR_ID, &vendor.to_le_bytes());
        function.set(register::DEVICE_ID, &device.to_le_bytes());
        function.set(register::REVISION, &(class << 8 | 1).to_le_bytes());
        function.set(register::HEADER_TYPE, &[header]);
        // Command: I/O, memory, bus master, INTx disable.
        function.allow(register::COMMAND, &0x0407u16.to_le_bytes());
        // Interrupt line: software's scratch byte.
        function.allow(0x3C, &[0xFF]);
        function
    }

    /// An endpoint (type 0 header) with these ids and class code (24 bits).
    #[must_use]
    pub fn endpoint(vendor: u16, device: u16, class: u32) -> Self {
        Self::blank(vendor, device, class, 0)
    }

    /// A PCI-to-PCI bridge (type 1 header, class 0x060400) with `bus` behind it.
    #[must_use]
    pub fn bridge(vendor: u16, device: u16, bus: PciBus) -> Self {
        let mut function = Self::blank(vendor, device, 0x06_04_00, HEADER_BRIDGE);
        function.secondary = Some(Box::new(bus));
        // Primary, secondary, subordinate bus numbers, latency timer.
        function.allow(register::PRIMARY_BUS, &[0xFF; 4]);
        // I/O base/limit: 32-bit I/O (low nibble 1, read-only).
        function.set(register::IO_BASE, &[0x01, 0x01]);
        function.allow(register::IO_BASE, &[0xF0, 0xF0]);
        function.allow(register::MEMORY_BASE, &[0xF0, 0xFF, 0xF0, 0xFF]);
        // Prefetchable base/limit: 64-bit (low nibble 1, read-only).
        function.set(register::PREFETCHABLE_BASE, &[0x01, 0x00, 0x01, 0x00]);
        function.allow(register::PREFETCHABLE_BASE, &[0xF0, 0xFF, 0xF0, 0xFF]);
        function.allow(register::PREFETCHABLE_BASE_UPPER, &[0xFF; 8]);
        function.allow(register::IO_BASE_UPPER, &[0xFF; 4]);
        // Bridge control.
        function.allow(0x3E, &[0xFF, 0x0F]);
        function
    }

    /// A PCI Express root port (QEMU's `pcie-root-port`, 1b36:000c) with its link's bus behind
    /// it and a hot-plug capable slot numbered `slot`.
    #[must_use]
    pub fn root_port(slot: u16, bus: PciBus) -> Self {
        let mut function = Self::bridge(0x1b36, 0x000c, bus);
        // Version 2, root port (4), slot implemented.
        let capabilities: u16 = 0x2 | (4 << 4) | (1 << 8);
        let slot_capabilities: u32 = (u32::from(slot) << 19) | (1 << 6) | (1 << 5) | 0b11;
        let at = function.with_capability_at(id::EXPRESS, &[0; 0x3A]);
        function.set(at + express::CAPABILITIES, &capabilities.to_le_bytes());
        function.set(
            at + express::SLOT_CAPABILITIES,
            &slot_capabilities.to_le_bytes(),
        );
        // Link Capabilities: Data Link Layer Link Active Reporting Capable.
        function.set(at + 0x0C, &(1u32 << 20).to_le_bytes());
        // Slot control is software's; the slot starts powered on (power controller bit 0).
        function.allow(at + express::SLOT_CONTROL, &[0xFF, 0xFF]);
        function.slot = Some(SlotModel {
            express: at,
            events: 0,
        });
        function
    }

    /// Whether a card is in the slot (device 0 of the port's bus).
    fn card_present(&self) -> bool {
        self.secondary
            .as_ref()
            .is_some_and(|bus| bus.functions.keys().any(|(device, _)| *device == 0))
    }

    /// A card put into a root port's empty slot (QEMU's `device_add … bus=PORT`): presence
    /// and link come up, each with its event. `Err` with the card if this is no slot or it is
    /// full.
    ///
    /// # Errors
    /// The card back when the function has no slot or the slot holds a card.
    pub fn plug(&mut self, card: PciFunction) -> Result<(), PciFunction> {
        if self.slot.is_none() || self.card_present() {
            return Err(card);
        }
        let Some(bus) = self.secondary.as_deref_mut() else {
            return Err(card);
        };
        bus.insert(0, 0, card);
        self.raise(slot_status::PRESENCE_CHANGED | slot_status::LINK_CHANGED);
        Ok(())
    }

    /// The card pulled out without warning (a surprise removal). `None` if there was none.
    pub fn pull(&mut self) -> Option<PciFunction> {
        self.slot?;
        let bus = self.secondary.as_deref_mut()?;
        let keys: Vec<(u8, u8)> = bus.functions.keys().copied().collect();
        let card = keys
            .into_iter()
            .filter_map(|(device, number)| bus.remove(device, number))
            .next();
        if card.is_some() {
            self.raise(slot_status::PRESENCE_CHANGED | slot_status::LINK_CHANGED);
        }
        card
    }

    /// The slot's attention button pressed (QEMU's `device_del` of the card asks this way; the
    /// card goes when software turns the slot's power off).
    pub fn press_attention_button(&mut self) -> bool {
        if self.slot.is_none() {
            return false;
        }
        self.raise(slot_status::ATTENTION_BUTTON);
        true
    }

    fn raise(&mut self, events: u16) {
        if let Some(slot) = self.slot.as_mut() {
            slot.events |= events;
        }
    }

    fn slot_control(&self) -> u16 {
        self.slot.map_or(0, |slot| {
            u16::from_le_bytes([
                self.stored_byte(slot.express + express::SLOT_CONTROL),
                self.stored_byte(slot.express + express::SLOT_CONTROL + 1),
            ])
        })
    }

    /// Whether the slot's hot-plug interrupt is asserted: an event it enables is pending.
    #[must_use]
    pub fn hotplug_pending(&self) -> bool {
        let Some(slot) = self.slot else {
            return false;
        };
        let control = self.slot_control();
        let enabled = [
            (
                slot_control::ATTENTION_BUTTON,
                slot_status::ATTENTION_BUTTON,
            ),
            (slot_control::PRESENCE_DETECT, slot_status::PRESENCE_CHANGED),
            (
                slot_control::COMMAND_COMPLETED,
                slot_status::COMMAND_COMPLETED,
            ),
            (slot_control::LINK_STATE, slot_status::LINK_CHANGED),
        ]
        .iter()
        .any(|(enable, event)| control & enable != 0 && slot.events & event != 0);
        control & slot_control::HOT_PLUG_INTERRUPT != 0 && enabled
    }

    /// BAR `index` asks for `spec` (a 64-bit BAR takes `index + 1` too).
    #[must_use]
    pub fn with_bar(mut self, index: u8, spec: BarSpec) -> Self {
        let offset = register::BAR0 + 4 * u16::from(index);
        let (flags, size, wide) = match spec {
            BarSpec::Memory32 { size, prefetchable } => (u32::from(prefetchable) << 3, size, false),
            BarSpec::Memory64 { size, prefetchable } => {
                ((u32::from(prefetchable) << 3) | 0b100, size, true)
            }
            BarSpec::Io { size } => (1, size, false),
        };
        if size == 0 {
            // Not implemented: reads 0, takes no write.
            return self;
        }
        let flag_bits: u64 = if flags & 1 == 1 { 0x3 } else { 0xF };
        let mask = !(size.max(1) - 1) & !flag_bits;
        self.set(offset, &flags.to_le_bytes());
        self.allow(offset, &((mask & 0xFFFF_FFFF) as u32).to_le_bytes());
        if wide {
            self.allow(offset + 4, &((mask >> 32) as u32).to_le_bytes());
        }
        self
    }

    /// Memory BAR `bar` decodes `device` (its registers at offsets into the BAR): reached
    /// through [`EcamModel::memory_read`](super::EcamModel::memory_read) when software has
    /// placed the BAR and turned memory decoding on.
    #[must_use]
    pub fn with_memory(mut self, bar: u8, device: Box<dyn Device>) -> Self {
        self.memory = Some(BarMemory { bar, device });
        self
    }

    /// The bus addresses memory BAR `bar` decodes now: its base as software wrote it and its
    /// size from the bits it lets software write; `None` when memory decoding is off, the BAR
    /// is I/O or unplaced.
    fn decoded(&self, bar: u8) -> Option<(u64, u64)> {
        let dword = |offset: u16| {
            u32::from_le_bytes([0, 1, 2, 3].map(|index| self.stored_byte(offset + index)))
        };
        let mask = |offset: u16| {
            u32::from_le_bytes([0, 1, 2, 3].map(|index| {
                self.writable
                    .get(usize::from(offset + index))
                    .copied()
                    .unwrap_or(0)
            }))
        };
        if dword(register::COMMAND) & 0x2 == 0 || bar > 5 {
            return None;
        }
        let offset = register::BAR0 + 4 * u16::from(bar);
        let low = dword(offset);
        if low & 1 != 0 {
            return None;
        }
        let wide = (low >> 1) & 0b11 == 0b10;
        let (base, mask) = if wide && bar < 5 {
            (
                u64::from(low & !0xF) | u64::from(dword(offset + 4)) << 32,
                u64::from(mask(offset)) | u64::from(mask(offset + 4)) << 32,
            )
        } else {
            (
                u64::from(low & !0xF),
                u64::from(mask(offset)) | !0xFFFF_FFFF,
            )
        };
        // The size is the lowest address bit software may write (as sizing reads it).
        let address_bits = mask & !0xF;
        let size = address_bits & address_bits.wrapping_neg();
        (base != 0 && size != 0).then_some((base, size))
    }

    /// The model behind the BAR that decodes bus address `address`, and the offset there.
    pub(super) fn memory_at(&mut self, address: u64) -> Option<(&mut dyn Device, u64)> {
        let bar = self.memory.as_ref()?.bar;
        let (base, size) = self.decoded(bar)?;
        let offset = address.checked_sub(base).filter(|offset| *offset < size)?;
        let memory = self.memory.as_mut()?;
        Some((memory.device.as_mut(), offset))
    }

    /// Whether the model behind its BAR asserts its interrupt.
    pub(super) fn memory_irq(&self) -> bool {
        self.memory
            .as_ref()
            .is_some_and(|memory| memory.device.irq_level())
    }

    /// Whether a bridge forwards memory at bus address `address` to its secondary bus: its
    /// memory decoding on and the address inside its memory or prefetchable window.
    pub(super) fn forwards_memory(&self, address: u64) -> bool {
        let word = |offset: u16| {
            u16::from_le_bytes([self.stored_byte(offset), self.stored_byte(offset + 1)])
        };
        let dword = |offset: u16| {
            u32::from_le_bytes([0, 1, 2, 3].map(|index| self.stored_byte(offset + index)))
        };
        if word(register::COMMAND) & 0x2 == 0 {
            return false;
        }
        let memory_base = u64::from(word(register::MEMORY_BASE) & 0xFFF0) << 16;
        let memory_limit = (u64::from(word(register::MEMORY_BASE + 2) & 0xFFF0) << 16) | 0xF_FFFF;
        let prefetchable_base = (u64::from(word(register::PREFETCHABLE_BASE) & 0xFFF0) << 16)
            | u64::from(dword(register::PREFETCHABLE_BASE_UPPER)) << 32;
        let prefetchable_limit = (u64::from(word(register::PREFETCHABLE_BASE + 2) & 0xFFF0) << 16)
            | 0xF_FFFF
            | u64::from(dword(register::PREFETCHABLE_BASE_UPPER + 4)) << 32;
        (memory_base <= memory_limit && (memory_base..=memory_limit).contains(&address))
            || (prefetchable_base <= prefetchable_limit
                && (prefetchable_base..=prefetchable_limit).contains(&address))
    }

    /// Interrupt pin `pin` (1–4; other values for hostile functions).
    #[must_use]
    pub fn with_pin(mut self, pin: u8) -> Self {
        self.set(register::INTERRUPT_PIN, &[pin]);
        self
    }

    /// A capability `id` whose bytes after the id and next pointer are `body`, linked at the
    /// end of the list.
    #[must_use]
    pub fn with_capability(mut self, capability: u8, body: &[u8]) -> Self {
        self.with_capability_at(capability, body);
        self
    }

    fn with_capability_at(&mut self, capability: u8, body: &[u8]) -> u16 {
        let at = self.next_capability;
        self.set(at, &[capability, 0]);
        self.set(at + 2, body);
        self.set(self.last_link, &[(at & 0xFF) as u8]);
        self.last_link = at + 1;
        let status = u16::from_le_bytes([
            self.config_byte(register::STATUS),
            self.config_byte(register::STATUS + 1),
        ]) | STATUS_CAPABILITIES;
        self.set(register::STATUS, &status.to_le_bytes());
        self.next_capability = (at + 2 + body.len() as u16 + 3) & !3;
        at
    }

    /// Raw bytes at `offset`, read-only (hostile functions: any header, any pointer).
    #[must_use]
    pub fn with_raw(mut self, offset: u16, bytes: &[u8]) -> Self {
        self.set(offset, bytes);
        self
    }

    /// Raw write mask at `offset` (which bits software may change).
    #[must_use]
    pub fn with_writable(mut self, offset: u16, mask: &[u8]) -> Self {
        self.allow(offset, mask);
        self
    }

    /// The function stops answering after `reads` more configuration reads (a device that is
    /// pulled out, or dies, in the middle of its scan).
    #[must_use]
    pub fn vanishing_after(mut self, reads: u32) -> Self {
        self.vanish_after = Some(reads);
        self
    }

    /// A bridge whose secondary bus number always reads `bus`, whatever is written.
    #[must_use]
    pub fn with_fixed_secondary(mut self, bus: u8) -> Self {
        self.fixed_secondary = Some(bus);
        self
    }

    /// Configuration reads and writes it has seen.
    #[must_use]
    pub fn accesses(&self) -> (u64, u64) {
        (self.reads, self.writes)
    }

    /// The bus behind it, if it is a bridge.
    pub fn secondary_bus_mut(&mut self) -> Option<&mut PciBus> {
        self.secondary.as_deref_mut()
    }

    pub(super) fn secondary_bus(&self) -> Option<&PciBus> {
        self.secondary.as_deref()
    }

    pub(super) fn is_bridge(&self) -> bool {
        self.secondary.is_some()
    }

    pub(super) fn set_multifunction(&mut self, on: bool) {
        let header = self.config_byte(register::HEADER_TYPE) & !MULTIFUNCTION;
        self.set(
            register::HEADER_TYPE,
            &[header | if on { MULTIFUNCTION } else { 0 }],
        );
    }

    /// A byte as the function holds it now (bus numbers as the model routes with them; a
    /// slot's status and its link as the card in it makes them).
    pub(super) fn config_byte(&self, offset: u16) -> u8 {
        if offset == register::SECONDARY_BUS {
            if let Some(bus) = self.fixed_secondary {
                return bus;
            }
        }
        if let Some(slot) = self.slot {
            let present = self.card_present();
            let status = slot.express + express::SLOT_STATUS;
            let link = slot.express + express::LINK_STATUS;
            let dynamic = |value: u16, at: u16| {
                if offset == at {
                    Some((value & 0xFF) as u8)
                } else if offset == at + 1 {
                    Some((value >> 8) as u8)
                } else {
                    None
                }
            };
            let status_value = slot.events | if present { slot_status::PRESENT } else { 0 };
            let link_value = if present { LINK_ACTIVE } else { 0 };
            if let Some(byte) = dynamic(status_value, status).or_else(|| dynamic(link_value, link))
            {
                return byte;
            }
        }
        self.stored_byte(offset)
    }

    fn stored_byte(&self, offset: u16) -> u8 {
        self.config.get(usize::from(offset)).copied().unwrap_or(0)
    }

    fn set(&mut self, offset: u16, bytes: &[u8]) {
        for (index, byte) in bytes.iter().enumerate() {
            if let Some(slot) = self.config.get_mut(usize::from(offset) + index) {
                *slot = *byte;
            }
        }
    }

    fn allow(&mut self, offset: u16, mask: &[u8]) {
        for (index, byte) in mask.iter().enumerate() {
            if let Some(slot) = self.writable.get_mut(usize::from(offset) + index) {
                *slot = *byte;
            }
        }
    }

    fn gone(&self) -> bool {
        self.vanish_after
            .is_some_and(|after| self.reads >= u64::from(after))
    }

    /// A configuration read.
    pub fn read(&mut self, offset: u16, width: Width) -> u32 {
        let gone = self.gone();
        self.reads += 1;
        if gone {
            return width.all_ones();
        }
        (0..width.bytes()).fold(0, |value, index| {
            let byte = self.config_byte(offset + index as u16);
            value | (u32::from(byte) << (8 * index))
        })
    }

    /// A configuration write: only the writable bits change.
    pub fn write(&mut self, offset: u16, width: Width, value: u32) {
        self.writes += 1;
        if self.gone() {
            return;
        }
        let power_before = self.slot_control() & slot_control::POWER_OFF;
        let mut control_written = false;
        for index in 0..width.bytes() {
            if let Some(slot) = self.slot.as_mut() {
                let at = offset + index as u16;
                let byte = ((value >> (8 * index)) & 0xFF) as u16;
                let status = slot.express + express::SLOT_STATUS;
                if at == status || at == status + 1 {
                    // Write 1 to clear.
                    let shift = 8 * (at - status);
                    slot.events &= !((byte << shift) & SLOT_EVENTS);
                    continue;
                }
                let control = slot.express + express::SLOT_CONTROL;
                control_written |= at == control || at == control + 1;
            }
            let at = usize::from(offset) + index;
            let (Some(byte), Some(mask)) = (self.config.get(at).copied(), self.writable.get(at))
            else {
                continue;
            };
            let new = ((value >> (8 * index)) & 0xFF) as u8;
            if let Some(slot) = self.config.get_mut(at) {
                *slot = (byte & !mask) | (new & mask);
            }
        }
        if control_written {
            // Every Slot Control write is a command; it completes at once.
            self.raise(slot_status::COMMAND_COMPLETED);
            let power_off = self.slot_control() & slot_control::POWER_OFF;
            if power_off != 0 && power_before == 0 && self.pull().is_some() {
                log::debug!("pci: slot powered off: the card is ejected");
            }
        }
    }
}
