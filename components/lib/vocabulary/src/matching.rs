//! Matching devices to drivers: what a device is ([`MatchData`]) and what a driver claims
//! ([`MatchTable`]), Linux's `of_match_table` / `id_table`.

use crate::{Compatible, MAX_COMPATIBLE, MAX_MATCH_ENTRIES};

/// What a device is, for matching: its `compatible` strings (most specific first) and/or the id
/// its bus gives it (a virtio device id, a PCI vendor/device pair packed in 32 bits…).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MatchData {
    /// Device-tree `compatible` strings.
    pub compatible: heapless::Vec<Compatible, MAX_COMPATIBLE>,
    /// Bus-specific device id.
    pub bus_id: Option<u32>,
}

impl MatchData {
    /// Match data with one compatible string; `None` if the string is too long.
    #[must_use]
    pub fn compatible(name: &str) -> Option<Self> {
        let mut data = Self::default();
        data.compatible
            .push(Compatible::try_from(name).ok()?)
            .ok()?;
        Some(data)
    }

    /// Match data with a bus id only.
    #[must_use]
    pub fn bus_id(id: u32) -> Self {
        Self {
            compatible: heapless::Vec::new(),
            bus_id: Some(id),
        }
    }

    /// The most specific compatible string, if there is one.
    #[must_use]
    pub fn first_compatible(&self) -> Option<&str> {
        self.compatible.first().map(Compatible::as_str)
    }
}

/// One entry of a driver's match table.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MatchEntry {
    /// Matches a device that lists this `compatible` string.
    Compatible(Compatible),
    /// Matches a device with this bus id.
    BusId(u32),
}

/// The devices a driver claims to serve.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MatchTable {
    /// The entries; a device matches if it matches any of them.
    pub entries: heapless::Vec<MatchEntry, MAX_MATCH_ENTRIES>,
}

impl MatchTable {
    /// A table with one `compatible` entry; `None` if the string is too long.
    #[must_use]
    pub fn compatible(name: &str) -> Option<Self> {
        let mut table = Self::default();
        table
            .entries
            .push(MatchEntry::Compatible(Compatible::try_from(name).ok()?))
            .ok()?;
        Some(table)
    }

    /// A table with one bus-id entry.
    #[must_use]
    pub fn bus_id(id: u32) -> Self {
        let mut table = Self::default();
        // A fresh table has room for one entry.
        let _ = table.entries.push(MatchEntry::BusId(id));
        table
    }

    /// The bus's match routine: does this driver claim this device?
    #[must_use]
    pub fn matches(&self, device: &MatchData) -> bool {
        self.entries.iter().any(|entry| entry.matches(device))
    }
}

impl MatchEntry {
    /// Does this entry claim this device?
    #[must_use]
    pub fn matches(&self, device: &MatchData) -> bool {
        match self {
            Self::Compatible(name) => device.compatible.iter().any(|c| c == name),
            Self::BusId(id) => device.bus_id == Some(*id),
        }
    }
}
