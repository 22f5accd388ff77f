//! Where the manager keeps what varies in size: every device's match data and resources, every
//! driver's match table, and the text of the `compatible` strings they name.
//!
//! A device slot used to carry room for the most of everything (four 40-byte compatibles, four
//! windows, four interrupts: 304 bytes, mostly empty), and so did every pending `device_add`.
//! Now each kind is stored once, in a table of its own, and a device holds where its share
//! lies:
//!
//! - **texts**: each distinct `compatible` string once, however many devices and drivers name
//!   it, counted; devices and drivers hold its number (so matching compares numbers);
//! - **windows**, **interrupts**, **claims** (match-table entries): packed tables of runs, one
//!   run per holder, compacted when a run is freed (the holders after it are moved down: the
//!   manager walks them, see `Manager::release_device_data`).
//!
//! Capacities scale with the manager's: [`TEXT_BYTES_PER_DEVICE`] bytes of text and a text per
//! device slot, [`WINDOWS_PER_DEVICE`] window and [`IRQS_PER_DEVICE`] interrupts per device slot
//! on average, [`CLAIMS_PER_DRIVER`] match entries per driver slot on average. A device or
//! driver that does not fit is refused `NoSpace`, like one that finds its table full.

use warden_vocabulary::{
    MatchData, MatchEntry, MatchTable, MmioWindow, Resources, ResourcesRef, MAX_COMPATIBLE,
};

/// Bytes of `compatible` text per device slot, on average (a distinct compatible is ~20 bytes,
/// and most are shared: QEMU virt's 32 transports name one; the Odroid C4's tree has 34
/// distinct strings in 645 bytes).
pub const TEXT_BYTES_PER_DEVICE: usize = 16;
/// MMIO windows per device slot, on average (most devices have one; children on buses that are
/// not memory-mapped, and many board nodes, have none).
pub const WINDOWS_PER_DEVICE: usize = 1;
/// Interrupts per device slot, on average.
pub const IRQS_PER_DEVICE: usize = 2;
/// Match-table entries per driver slot, on average.
pub const CLAIMS_PER_DRIVER: usize = 3;

/// Where a holder's items lie in a [`Pool`]: `len` items from `start`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Run {
    start: u16,
    len: u16,
}

impl Run {
    pub(crate) const EMPTY: Self = Self { start: 0, len: 0 };

    /// Where this run lies once `freed` is gone (the items after it moved down).
    #[must_use]
    pub(crate) fn after_free(self, freed: Self) -> Self {
        if self.len > 0 && freed.len > 0 && self.start > freed.start {
            Self {
                start: self.start - freed.len,
                len: self.len,
            }
        } else {
            self
        }
    }

    pub(crate) fn len(self) -> usize {
        usize::from(self.len)
    }

    pub(crate) fn end(self) -> usize {
        usize::from(self.start) + usize::from(self.len)
    }

    pub(crate) fn overlaps(self, other: Self) -> bool {
        self.len > 0
            && other.len > 0
            && usize::from(self.start) < other.end()
            && usize::from(other.start) < self.end()
    }
}

/// `N × K` items of `T` in runs, packed from the start.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Pool<T, const N: usize, const K: usize> {
    items: [[T; K]; N],
    used: u32,
}

impl<T: Copy + Default + PartialEq, const N: usize, const K: usize> Pool<T, N, K> {
    /// Runs start at a `u16`: a pool holds at most 65,536 items (a manager of 4,096 devices
    /// has 65,536 bytes of text).
    const FITS: () = assert!(
        N * K <= u16::MAX as usize + 1,
        "a pool's runs start at a u16"
    );

    pub(crate) fn new() -> Self {
        let () = Self::FITS;
        Self {
            items: [[T::default(); K]; N],
            used: 0,
        }
    }

    pub(crate) fn used(&self) -> usize {
        self.used as usize
    }

    /// Copies `items` in; `None` when they do not fit (nothing is stored then).
    pub(crate) fn store(&mut self, items: &[T]) -> Option<Run> {
        if items.is_empty() {
            return Some(Run::EMPTY);
        }
        let start = self.used();
        let end = start.checked_add(items.len())?;
        self.items
            .as_flattened_mut()
            .get_mut(start..end)?
            .copy_from_slice(items);
        let run = Run {
            start: u16::try_from(start).ok()?,
            len: u16::try_from(items.len()).ok()?,
        };
        self.used = u32::try_from(end).ok()?;
        Some(run)
    }

    pub(crate) fn get(&self, run: Run) -> &[T] {
        self.items
            .as_flattened()
            .get(usize::from(run.start)..run.end())
            .unwrap_or_default()
    }

    /// Frees `run`: the items after it move down by its length (every holder's run must then
    /// be moved with [`Run::after_free`]), and the space freed at the end is cleared, so equal
    /// contents compare and hash equal whatever came and went.
    pub(crate) fn free(&mut self, run: Run) {
        let used = self.used();
        if run.len == 0 || run.end() > used {
            return;
        }
        let items = self.items.as_flattened_mut();
        items.copy_within(run.end()..used, usize::from(run.start));
        if let Some(tail) = items.get_mut(used - run.len()..used) {
            tail.fill(T::default());
        }
        self.used -= u32::from(run.len);
    }
}

/// One distinct text and how many holders name it (0: the entry is free).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct TextEntry {
    run: Run,
    refs: u16,
}

/// Each distinct text once, named by its entry's number.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Texts<const N: usize> {
    entries: [TextEntry; N],
    bytes: Pool<u8, N, TEXT_BYTES_PER_DEVICE>,
}

impl<const N: usize> Texts<N> {
    const FITS: () = assert!(N <= u16::MAX as usize, "texts are numbered by u16");

    pub(crate) fn new() -> Self {
        let () = Self::FITS;
        Self {
            entries: [TextEntry::default(); N],
            bytes: Pool::new(),
        }
    }

    /// The number of `text`, counting one more holder; `None` when there is no room.
    pub(crate) fn intern(&mut self, text: &str) -> Option<u16> {
        let bytes = &self.bytes;
        if let Some(id) = self
            .entries
            .iter()
            .position(|entry| entry.refs > 0 && bytes.get(entry.run) == text.as_bytes())
        {
            let entry = self.entries.get_mut(id)?;
            entry.refs = entry.refs.checked_add(1)?;
            return u16::try_from(id).ok();
        }
        let id = self.entries.iter().position(|entry| entry.refs == 0)?;
        let run = self.bytes.store(text.as_bytes())?;
        if let Some(entry) = self.entries.get_mut(id) {
            *entry = TextEntry { run, refs: 1 };
        }
        u16::try_from(id).ok()
    }

    /// One holder fewer; the last one frees the text.
    pub(crate) fn release(&mut self, id: u16) {
        let Some(entry) = self.entries.get_mut(usize::from(id)) else {
            return;
        };
        entry.refs = entry.refs.saturating_sub(1);
        if entry.refs > 0 {
            return;
        }
        let freed = core::mem::take(entry).run;
        self.bytes.free(freed);
        for entry in &mut self.entries {
            entry.run = entry.run.after_free(freed);
        }
    }

    pub(crate) fn text(&self, id: u16) -> &str {
        self.entries
            .get(usize::from(id))
            .filter(|entry| entry.refs > 0)
            .and_then(|entry| core::str::from_utf8(self.bytes.get(entry.run)).ok())
            .unwrap_or_default()
    }

    /// How many holders name text `id` (for the invariants).
    pub(crate) fn refs(&self, id: u16) -> u16 {
        self.entries
            .get(usize::from(id))
            .map_or(0, |entry| entry.refs)
    }

    /// Every text in use: (number, holders).
    pub(crate) fn in_use(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, entry)| entry.refs > 0)
            .map(|(id, entry)| (id as u16, entry.refs))
    }

    /// Do the entries' runs tile the bytes in use, without overlapping?
    pub(crate) fn is_packed(&self) -> bool {
        let live = || self.entries.iter().filter(|entry| entry.refs > 0);
        let total: usize = live().map(|entry| entry.run.len()).sum();
        total == self.bytes.used()
            && live().all(|entry| entry.run.end() <= self.bytes.used())
            && live()
                .enumerate()
                .all(|(i, a)| live().skip(i + 1).all(|b| !a.run.overlaps(b.run)))
    }
}

/// A device's match data and resources, as the store holds them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct DeviceData {
    /// Its compatibles' text numbers, most specific first.
    pub(crate) compatible: [u16; MAX_COMPATIBLE],
    pub(crate) compatible_len: u8,
    pub(crate) has_bus_id: bool,
    /// Its address on a bus that is not memory-mapped is stored after its windows, in the
    /// windows' run, as a window of size zero (no window has size zero).
    pub(crate) has_address: bool,
    /// How many of its windows (before the address) are forwarded address space.
    pub(crate) forwarded: u8,
    pub(crate) bus_id: u32,
    pub(crate) windows: Run,
    pub(crate) irqs: Run,
}

impl DeviceData {
    pub(crate) fn compatibles(&self) -> &[u16] {
        self.compatible
            .get(..usize::from(self.compatible_len))
            .unwrap_or_default()
    }

    fn bus_id(&self) -> Option<u32> {
        self.has_bus_id.then_some(self.bus_id)
    }
}

/// One entry of a driver's match table, as the store holds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) enum Claim {
    /// Unused.
    #[default]
    None,
    /// A compatible, by its text number.
    Compatible(u16),
    /// A bus id.
    BusId(u32),
}

impl Claim {
    /// Does this entry claim this device (the bus's match routine)?
    pub(crate) fn matches(self, device: &DeviceData) -> bool {
        match self {
            Self::None => false,
            Self::Compatible(text) => device.compatibles().contains(&text),
            Self::BusId(id) => device.bus_id() == Some(id),
        }
    }
}

/// The store: texts, windows, interrupts and claims.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Store<const DEVICES: usize, const DRIVERS: usize> {
    pub(crate) texts: Texts<DEVICES>,
    pub(crate) windows: Pool<MmioWindow, DEVICES, WINDOWS_PER_DEVICE>,
    pub(crate) irqs: Pool<u32, DEVICES, IRQS_PER_DEVICE>,
    pub(crate) claims: Pool<Claim, DRIVERS, CLAIMS_PER_DRIVER>,
}

impl<const DEVICES: usize, const DRIVERS: usize> Store<DEVICES, DRIVERS> {
    pub(crate) fn new() -> Self {
        Self {
            texts: Texts::new(),
            windows: Pool::new(),
            irqs: Pool::new(),
            claims: Pool::new(),
        }
    }

    /// Stores a device's match data and resources; `None` (and nothing kept) when they do not
    /// fit. The runs it returns must be moved whenever a run before them is freed.
    pub(crate) fn store_device(
        &mut self,
        match_data: &MatchData,
        resources: &Resources,
    ) -> Option<DeviceData> {
        let mut data = DeviceData {
            has_bus_id: match_data.bus_id.is_some(),
            bus_id: match_data.bus_id.unwrap_or(0),
            forwarded: resources.forwarded,
            ..DeviceData::default()
        };
        for name in &match_data.compatible {
            let Some(slot) = data.compatible.get_mut(usize::from(data.compatible_len)) else {
                break;
            };
            let Some(text) = self.texts.intern(name) else {
                self.release_texts(&data);
                return None;
            };
            *slot = text;
            data.compatible_len += 1;
        }
        let mut windows = heapless::Vec::<MmioWindow, { warden_vocabulary::MAX_MMIO + 1 }>::new();
        let _ = windows.extend_from_slice(&resources.mmio);
        if let Some(address) = resources.address {
            data.has_address = true;
            let _ = windows.push(MmioWindow {
                base: address,
                size: 0,
            });
        }
        let Some(windows) = self.windows.store(&windows) else {
            self.release_texts(&data);
            return None;
        };
        data.windows = windows;
        let Some(irqs) = self.irqs.store(&resources.irqs) else {
            self.release_texts(&data);
            self.windows.free(windows);
            return None;
        };
        data.irqs = irqs;
        Some(data)
    }

    fn release_texts(&mut self, data: &DeviceData) {
        for &text in data.compatibles() {
            self.texts.release(text);
        }
    }

    /// Lets go of a device's data. Returns the windows' and the interrupts' runs freed: the
    /// caller moves every other holder's runs with [`Run::after_free`].
    pub(crate) fn release_device(&mut self, data: &DeviceData) -> (Run, Run) {
        self.release_texts(data);
        self.windows.free(data.windows);
        self.irqs.free(data.irqs);
        (data.windows, data.irqs)
    }

    pub(crate) fn resources(&self, data: &DeviceData) -> ResourcesRef<'_> {
        let mut mmio = self.windows.get(data.windows);
        if data.has_address {
            mmio = mmio.split_last().map_or(mmio, |(_, windows)| windows);
        }
        ResourcesRef {
            mmio,
            forwarded: data.forwarded,
            irqs: self.irqs.get(data.irqs),
        }
    }

    /// The device's address on a bus that is not memory-mapped.
    pub(crate) fn address(&self, data: &DeviceData) -> Option<u64> {
        data.has_address
            .then(|| {
                self.windows
                    .get(data.windows)
                    .last()
                    .map(|window| window.base)
            })
            .flatten()
    }

    /// The device's match data, as it was given.
    pub(crate) fn match_data(&self, data: &DeviceData) -> MatchData {
        let mut match_data = MatchData {
            bus_id: data.bus_id(),
            ..MatchData::default()
        };
        for &text in data.compatibles() {
            if let Ok(name) = self.texts.text(text).try_into() {
                let _ = match_data.compatible.push(name);
            }
        }
        match_data
    }

    /// The device's resources, as they were given.
    pub(crate) fn resources_owned(&self, data: &DeviceData) -> Resources {
        let view = self.resources(data);
        let mut resources = Resources {
            address: self.address(data),
            forwarded: view.forwarded,
            ..Resources::default()
        };
        for &window in view.mmio {
            let _ = resources.mmio.push(window);
        }
        for &irq in view.irqs {
            let _ = resources.irqs.push(irq);
        }
        resources
    }

    /// Stores a driver's match table; `None` (and nothing kept) when it does not fit.
    pub(crate) fn store_table(&mut self, table: &MatchTable) -> Option<Run> {
        let mut claims = [Claim::None; warden_vocabulary::MAX_MATCH_ENTRIES];
        let mut stored = 0;
        for (slot, entry) in claims.iter_mut().zip(&table.entries) {
            *slot = match entry {
                MatchEntry::BusId(id) => Claim::BusId(*id),
                MatchEntry::Compatible(name) => {
                    let Some(text) = self.texts.intern(name) else {
                        self.release_claims(claims.get(..stored).unwrap_or_default());
                        return None;
                    };
                    Claim::Compatible(text)
                }
            };
            stored += 1;
        }
        let claims = claims.get(..stored).unwrap_or_default();
        let run = self.claims.store(claims);
        if run.is_none() {
            self.release_claims(claims);
        }
        run
    }

    fn release_claims(&mut self, claims: &[Claim]) {
        for claim in claims {
            if let Claim::Compatible(text) = *claim {
                self.texts.release(text);
            }
        }
    }

    /// Lets go of a driver's match table; the caller moves the other drivers' runs.
    pub(crate) fn release_table(&mut self, table: Run) {
        let mut claims = [Claim::None; warden_vocabulary::MAX_MATCH_ENTRIES];
        let stored = self.claims.get(table);
        let count = stored.len().min(claims.len());
        claims
            .get_mut(..count)
            .unwrap_or_default()
            .copy_from_slice(stored.get(..count).unwrap_or_default());
        self.release_claims(claims.get(..count).unwrap_or_default());
        self.claims.free(table);
    }

    pub(crate) fn claims(&self, table: Run) -> &[Claim] {
        self.claims.get(table)
    }

    /// Does the table claim the device?
    pub(crate) fn matches(&self, table: Run, device: &DeviceData) -> bool {
        self.claims(table).iter().any(|claim| claim.matches(device))
    }

    /// The driver's match table, as it was given.
    pub(crate) fn match_table(&self, table: Run) -> MatchTable {
        let mut match_table = MatchTable::default();
        for claim in self.claims(table) {
            let entry = match *claim {
                Claim::None => continue,
                Claim::BusId(id) => MatchEntry::BusId(id),
                Claim::Compatible(text) => match self.texts.text(text).try_into() {
                    Ok(name) => MatchEntry::Compatible(name),
                    Err(()) => continue,
                },
            };
            let _ = match_table.entries.push(entry);
        }
        match_table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_run_moves_the_runs_after_it_down() {
        let mut pool: Pool<u32, 4, 2> = Pool::new();
        let a = pool.store(&[1, 2]).unwrap();
        let b = pool.store(&[3, 4, 5]).unwrap();
        let c = pool.store(&[6]).unwrap();
        assert!(pool.store(&[7, 8, 9]).is_none(), "8 items of room, 6 used");
        pool.free(b);
        let (a, c) = (a.after_free(b), c.after_free(b));
        assert_eq!(pool.get(a), [1, 2]);
        assert_eq!(pool.get(c), [6]);
        assert_eq!(pool.used(), 3);
        let d = pool.store(&[7, 8, 9, 10, 11]).unwrap();
        assert_eq!(pool.get(d), [7, 8, 9, 10, 11]);
        assert_eq!(pool.store(&[]), Some(Run::EMPTY));
        // The same contents by another history compare equal.
        let mut other: Pool<u32, 4, 2> = Pool::new();
        other.store(&[1, 2]).unwrap();
        other.store(&[6]).unwrap();
        other.store(&[7, 8, 9, 10, 11]).unwrap();
        assert_eq!(pool, other);
    }

    #[test]
    fn a_pool_of_65536_items_is_addressed_to_its_last() {
        // The text of a manager of 4,096 devices (it failed to compile at first).
        let mut pool: std::boxed::Box<Pool<u8, 4096, 16>> = std::boxed::Box::new(Pool::new());
        let mut last = Run::EMPTY;
        while let Some(run) = pool.store(&[7; 40]) {
            last = run;
        }
        assert_eq!(pool.used(), 65_520, "1,638 runs of 40");
        assert_eq!(
            pool.store(&[9; 16]).map(Run::end),
            Some(65_536),
            "the very last byte"
        );
        assert_eq!(pool.get(last), [7; 40]);
        assert!(pool.store(&[1]).is_none());
        pool.free(last);
        assert_eq!(pool.used(), 65_496);
    }

    #[test]
    fn texts_are_stored_once_and_freed_with_their_last_holder() {
        let mut texts: Texts<2> = Texts::new();
        let pl011 = texts.intern("arm,pl011").unwrap();
        assert_eq!(texts.intern("arm,pl011"), Some(pl011));
        let virtio = texts.intern("virtio,mmio").unwrap();
        assert_ne!(pl011, virtio);
        assert_eq!(texts.intern("arm,pl031"), None, "two entries");
        texts.release(pl011);
        assert_eq!(texts.text(pl011), "arm,pl011", "one holder left");
        texts.release(pl011);
        assert_eq!(texts.text(pl011), "");
        assert_eq!(texts.text(virtio), "virtio,mmio", "moved down, still found");
        assert!(texts.is_packed());
        let long = "x".repeat(2 * TEXT_BYTES_PER_DEVICE);
        assert_eq!(texts.intern(&long), None, "no room for its bytes");
        assert_eq!(texts.refs(virtio), 1, "a refused text changes nothing");
    }

    #[test]
    fn a_device_that_does_not_fit_leaves_nothing_behind() {
        let mut store: Store<1, 1> = Store::new();
        let before = store.clone();
        let mut match_data = MatchData::compatible("vendor,device").unwrap();
        match_data.bus_id = Some(7);
        let mut resources = Resources::default();
        for base in 0..3 {
            resources
                .mmio
                .push(MmioWindow {
                    base: base * 0x1000,
                    size: 0x1000,
                })
                .unwrap();
        }
        assert!(store.store_device(&match_data, &resources).is_none());
        assert_eq!(store, before, "the text it took was given back");
        resources.mmio.truncate(1);
        resources.irqs.push(33).unwrap();
        let data = store.store_device(&match_data, &resources).unwrap();
        assert_eq!(store.match_data(&data), match_data);
        assert_eq!(store.resources_owned(&data), resources);
        store.release_device(&data);
        // An I2C device: an address on its bus, kept with (not as) its windows.
        resources.mmio.clear();
        resources.address = Some(0x50);
        let data = store.store_device(&match_data, &resources).unwrap();
        assert_eq!(store.resources_owned(&data), resources);
        assert!(
            store.resources(&data).mmio.is_empty(),
            "an address is no window"
        );
        store.release_device(&data);
        assert_eq!(store, before);
    }

    #[test]
    fn tables_match_by_text_number() {
        let mut store: Store<4, 2> = Store::new();
        let mut table = MatchTable::compatible("arm,pl011").unwrap();
        table.entries.push(MatchEntry::BusId(2)).unwrap();
        let run = store.store_table(&table).unwrap();
        assert_eq!(store.match_table(run), table);
        let uart = store
            .store_device(
                &MatchData::compatible("arm,pl011").unwrap(),
                &Resources::default(),
            )
            .unwrap();
        let disk = store
            .store_device(&MatchData::bus_id(2), &Resources::default())
            .unwrap();
        let other = store
            .store_device(
                &MatchData::compatible("arm,pl031").unwrap(),
                &Resources::default(),
            )
            .unwrap();
        assert!(store.matches(run, &uart));
        assert!(store.matches(run, &disk));
        assert!(!store.matches(run, &other));
        store.release_table(run);
        assert_eq!(store.texts.refs(uart.compatible[0]), 1, "the device's hold");
    }
}
