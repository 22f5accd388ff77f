//! Native PCI Express hot-plug (PCI Express 5.0 §6.7) at a port's slot: interrupts enabled,
//! events read and cleared, and what they mean for the card in the slot; power control for an
//! orderly removal (the attention button asks, software removes the card's functions, turns the
//! slot off, and the platform completes the ejection).
//!
//! A slot's events are input from hardware: they are read as a state (presence, link) rather
//! than trusted one by one, so a burst of events, a lost one, or a presence that flaps
//! decides by what the slot holds when it is read.

use crate::config::{Address, ConfigSpace};
use crate::express::{register, slot_control, slot_status, Express};

/// What the slot's events and state say happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SlotChange {
    /// A card is in the slot with its link up, and none was known there: enumerate it.
    Arrived,
    /// The card known there is gone, or its link went down (a surprise removal): remove its
    /// functions now; nothing is there to answer.
    Gone,
    /// The attention button was pressed with a card in the slot (QEMU's `device_del`): remove
    /// its functions, then turn the slot's power off.
    EjectRequested,
    /// Nothing that changes what the slot holds.
    Nothing,
}

/// A slot's status as read, events included (they are cleared by the read).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlotState {
    /// Slot Status as read.
    pub status: u16,
    /// Link Status as read.
    pub link: u16,
}

impl SlotState {
    /// A card is in the slot.
    #[must_use]
    pub const fn present(&self) -> bool {
        self.status & slot_status::PRESENT != 0
    }

    /// The link to the card is up (Data Link Layer Link Active).
    #[must_use]
    pub const fn link_active(&self) -> bool {
        self.link & (1 << 13) != 0
    }

    /// What this state means for a slot that held a card (`occupied`) or not. A presence or
    /// link change while occupied is `Gone` even if a card reads as there now: it may be
    /// another card (pulled and plugged between two reads); the next read, with the slot no
    /// longer occupied, finds it `Arrived` (Linux's pciehp turns the slot off on any such
    /// event, then enumerates again).
    #[must_use]
    pub const fn change(&self, occupied: bool) -> SlotChange {
        let there = self.present() && self.link_active();
        let changed =
            self.status & (slot_status::PRESENCE_CHANGED | slot_status::LINK_CHANGED) != 0;
        if occupied && (!there || changed) {
            SlotChange::Gone
        } else if !occupied && there {
            SlotChange::Arrived
        } else if occupied && self.status & slot_status::ATTENTION_BUTTON != 0 {
            SlotChange::EjectRequested
        } else {
            SlotChange::Nothing
        }
    }
}

/// The slot's events that software enables: attention button, presence detect and link state
/// changes, and the hot-plug interrupt. Command completions are not asked for (they would
/// interrupt after every control write); the power control and the indicators keep what
/// they hold.
pub fn enable<C: ConfigSpace>(config: &C, port: Address, express: &Express) {
    let enable = slot_control::ATTENTION_BUTTON
        | slot_control::PRESENCE_DETECT
        | slot_control::LINK_STATE
        | slot_control::HOT_PLUG_INTERRUPT;
    // Events left from before (a previous incarnation of the driver) are cleared first.
    read_and_clear(config, port, express);
    // The indicators and the power control keep what they hold.
    let at = control_offset(express);
    let control = config.read16(port, at) & !slot_control::COMMAND_COMPLETED;
    config.write16(port, at, control | enable);
}
/// Reads the slot's status and link and clears the events read.
pub fn read_and_clear<C: ConfigSpace>(config: &C, port: Address, express: &Express) -> SlotState {
    let status_at = u16::from(express.offset) + register::SLOT_STATUS;
    let status = config.read16(port, status_at);
    let link = config.read16(port, u16::from(express.offset) + register::LINK_STATUS);
    let events = status
        & (slot_status::ATTENTION_BUTTON
            | slot_status::PRESENCE_CHANGED
            | slot_status::COMMAND_COMPLETED
            | slot_status::LINK_CHANGED);
    if events != 0 {
        config.write16(port, status_at, events);
    }
    SlotState { status, link }
}

/// Turns the slot's power off (or on again), with its power indicator.
pub fn set_power<C: ConfigSpace>(config: &C, port: Address, express: &Express, on: bool) {
    let at = control_offset(express);
    let control =
        config.read16(port, at) & !(slot_control::POWER_OFF | slot_control::POWER_INDICATOR);
    let control = if on {
        control | (0b01 << 8)
    } else {
        control | slot_control::POWER_OFF | (0b11 << 8)
    };
    config.write16(port, at, control);
}

fn control_offset(express: &Express) -> u16 {
    u16::from(express.offset) + register::SLOT_CONTROL
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(present: bool, link: bool, button: bool) -> SlotState {
        SlotState {
            status: if present { slot_status::PRESENT } else { 0 }
                | if button {
                    slot_status::ATTENTION_BUTTON
                } else {
                    0
                },
            link: if link { 1 << 13 } else { 0 },
        }
    }

    #[test]
    fn a_presence_change_while_occupied_is_a_removal_even_if_a_card_is_there() {
        let mut swapped = state(true, true, false);
        swapped.status |= slot_status::PRESENCE_CHANGED;
        assert_eq!(swapped.change(true), SlotChange::Gone);
        // Once the old card's functions are gone, the same state is a card that arrived.
        assert_eq!(swapped.change(false), SlotChange::Arrived);
        let mut flapped = state(true, true, false);
        flapped.status |= slot_status::LINK_CHANGED;
        assert_eq!(flapped.change(true), SlotChange::Gone);
    }

    #[test]
    fn the_slot_is_judged_by_what_it_holds_not_by_its_events() {
        assert_eq!(state(true, true, false).change(false), SlotChange::Arrived);
        assert_eq!(state(true, true, false).change(true), SlotChange::Nothing);
        // Presence without a link is not yet a card to enumerate.
        assert_eq!(state(true, false, false).change(false), SlotChange::Nothing);
        assert_eq!(state(false, false, false).change(true), SlotChange::Gone);
        assert_eq!(state(true, false, false).change(true), SlotChange::Gone);
        assert_eq!(
            state(true, true, true).change(true),
            SlotChange::EjectRequested
        );
        // A button pressed at an empty slot asks nothing.
        assert_eq!(state(false, false, true).change(false), SlotChange::Nothing);
    }
}
