//! PCI behind an ECAM window: a host bridge's buses with endpoints, PCI-to-PCI bridges and PCI
//! Express root ports, each function a 4 KiB configuration space that acts on accesses as the
//! hardware does (BARs take only the bits their size allows, bridges forward configuration
//! accesses to the buses their bus numbers name). Hostile functions are built the same way:
//! raw bytes anywhere, a bridge that will not take its bus number, a function that goes away
//! after so many reads.
//!
//! The register map is the one the host-bridge driver uses (`warden_pci::config::register`).

mod function;

use std::collections::BTreeMap;

use warden_pci::config::register;

use crate::{Device, DmaMemory, Width};

pub use function::{BarSpec, PciFunction};

/// One bus: functions by (device, function).
#[derive(Debug, Default)]
pub struct PciBus {
    functions: BTreeMap<(u8, u8), PciFunction>,
    /// A PCI Express link: only device 0 answers (the port forwards no other device number).
    link: bool,
    /// On a link: device 0 answers for every device number (a port that does not decode the
    /// device number, which is why software scans only device 0 behind a port).
    aliases: bool,
}

impl PciBus {
    /// An empty conventional bus (any device number answers).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The bus of a PCI Express link (below a root or downstream port): device 0 only.
    #[must_use]
    pub fn link() -> Self {
        Self {
            link: true,
            ..Self::default()
        }
    }

    /// The bus of a link whose port forwards every device number to device 0.
    #[must_use]
    pub fn aliasing_link() -> Self {
        Self {
            link: true,
            aliases: true,
            ..Self::default()
        }
    }

    /// Puts `function` at `device`.`number` (replacing what was there).
    #[must_use]
    pub fn with(mut self, device: u8, number: u8, function: PciFunction) -> Self {
        self.insert(device, number, function);
        self
    }

    /// Puts `function` at `device`.`number` (a hot-plug: replacing what was there).
    pub fn insert(&mut self, device: u8, number: u8, function: PciFunction) {
        if device < 32 && number < 8 {
            self.functions.insert((device, number), function);
            self.mark_multifunction(device);
        }
    }

    /// Takes the function at `device`.`number` away (a removal).
    pub fn remove(&mut self, device: u8, number: u8) -> Option<PciFunction> {
        let removed = self.functions.remove(&(device, number));
        self.mark_multifunction(device);
        removed
    }

    /// Function 0 says whether the device has others (header type bit 7).
    fn mark_multifunction(&mut self, device: u8) {
        let others = self
            .functions
            .keys()
            .any(|(at, number)| *at == device && *number != 0);
        if let Some(first) = self.functions.get_mut(&(device, 0)) {
            first.set_multifunction(others);
        }
    }

    /// The function at `device`.`number` on bus `target`, this bus being number `number_here`;
    /// through the bridges whose bus numbers hold `target`.
    fn route(
        &mut self,
        number_here: u8,
        target: u8,
        device: u8,
        number: u8,
    ) -> Option<&mut PciFunction> {
        if target == number_here {
            let device = match (self.link, self.aliases) {
                (true, true) => 0,
                (true, false) if device != 0 => return None,
                _ => device,
            };
            return self.functions.get_mut(&(device, number));
        }
        // Bus numbers are the bridges' own registers, as software wrote them (or as a hostile
        // bridge reads them). Two bridges that claim the same bus are a conflict: on hardware
        // both would answer; here nobody does.
        let claims = |function: &PciFunction| {
            function.is_bridge() && {
                let secondary = function.config_byte(register::SECONDARY_BUS);
                let subordinate = function.config_byte(register::SUBORDINATE_BUS);
                secondary != 0
                    && secondary > number_here
                    && (secondary..=subordinate).contains(&target)
            }
        };
        if self
            .functions
            .values()
            .filter(|function| claims(function))
            .count()
            != 1
        {
            return None;
        }
        let bridge = self
            .functions
            .values_mut()
            .find(|function| claims(function))?;
        let secondary = bridge.config_byte(register::SECONDARY_BUS);
        bridge
            .secondary_bus_mut()?
            .route(secondary, target, device, number)
    }

    /// Whether a hot-plug slot on this bus or behind it has an enabled event pending.
    fn hotplug_pending(&self) -> bool {
        self.functions.values().any(|function| {
            function.hotplug_pending()
                || function
                    .secondary_bus()
                    .is_some_and(PciBus::hotplug_pending)
        })
    }

    /// The model behind the memory BAR that decodes bus address `address` on this bus or
    /// behind its bridges (those whose windows forward it), with the offset there.
    fn memory_at(&mut self, address: u64) -> Option<(&mut dyn Device, u64)> {
        // Found first without holding a borrow, then taken.
        let key = self
            .functions
            .iter_mut()
            .find_map(|(key, function)| function.memory_at(address).map(|_| *key));
        if let Some(key) = key {
            return self.functions.get_mut(&key)?.memory_at(address);
        }
        self.functions
            .values_mut()
            .filter(|function| function.is_bridge() && function.forwards_memory(address))
            .find_map(|bridge| bridge.secondary_bus_mut()?.memory_at(address))
    }

    /// Whether a model behind a BAR on this bus or behind it asserts its interrupt.
    fn memory_irq(&self) -> bool {
        self.functions.values().any(|function| {
            function.memory_irq() || function.secondary_bus().is_some_and(PciBus::memory_irq)
        })
    }

    /// The function at `device`.`number` of this bus (not routed).
    pub fn function_mut(&mut self, device: u8, number: u8) -> Option<&mut PciFunction> {
        self.functions.get_mut(&(device, number))
    }
}

/// A host bridge's ECAM window (PCI Express 5.0 §7.2.2) over its buses, the first of them
/// `first_bus`.
#[derive(Debug)]
pub struct EcamModel {
    first_bus: u8,
    buses: u16,
    root: PciBus,
}

impl EcamModel {
    /// An ECAM window of `buses` buses (1 MiB each) whose first is `first_bus`, with `root` as
    /// that first bus.
    #[must_use]
    pub fn new(first_bus: u8, buses: u16, root: PciBus) -> Self {
        Self {
            first_bus,
            buses: buses.clamp(1, 256),
            root,
        }
    }

    /// The root bus, to plug and unplug.
    pub fn root_mut(&mut self) -> &mut PciBus {
        &mut self.root
    }

    /// The function at `bus:device.function` as configuration accesses reach it now.
    pub fn function_mut(&mut self, bus: u8, device: u8, function: u8) -> Option<&mut PciFunction> {
        self.root.route(self.first_bus, bus, device, function)
    }

    /// A memory read at bus address `address` (through the host bridge's apertures): what
    /// the BAR that decodes it answers; `None` when no function decodes it.
    pub fn memory_read(
        &mut self,
        address: u64,
        width: Width,
        dma: &mut dyn DmaMemory,
    ) -> Option<u32> {
        let (device, offset) = self.root.memory_at(address)?;
        Some(device.read(offset, width, dma))
    }

    /// A memory write at bus address `address`; `false` when no function decodes it.
    pub fn memory_write(
        &mut self,
        address: u64,
        width: Width,
        value: u32,
        dma: &mut dyn DmaMemory,
    ) -> bool {
        match self.root.memory_at(address) {
            Some((device, offset)) => {
                device.write(offset, width, value, dma);
                true
            }
            None => false,
        }
    }

    /// Whether the hot-plug slot of the root port at `device` (function 0 of the root bus)
    /// asserts its interrupt: an enabled event pending.
    #[must_use]
    pub fn port_irq(&self, device: u8) -> bool {
        self.root
            .functions
            .get(&(device, 0))
            .is_some_and(PciFunction::hotplug_pending)
    }

    /// Whether a function's model asserts its INTx (the launcher routes it as the card's).
    #[must_use]
    pub fn card_irq(&self) -> bool {
        self.root.memory_irq()
    }

    fn decode(&self, offset: u64, width: Width) -> Option<(u8, u8, u8, u16)> {
        let bytes = width.bytes() as u64;
        if offset % bytes != 0 || offset.checked_add(bytes)? > self.size() {
            return None;
        }
        let bus = u8::try_from((offset >> 20) + u64::from(self.first_bus)).ok()?;
        let device = ((offset >> 15) & 0x1F) as u8;
        let function = ((offset >> 12) & 0x7) as u8;
        Some((bus, device, function, (offset & 0xFFF) as u16))
    }
}

impl Device for EcamModel {
    fn kind(&self) -> &'static str {
        "pci-ecam"
    }

    fn size(&self) -> u64 {
        u64::from(self.buses) << 20
    }

    fn read(&mut self, offset: u64, width: Width, _dma: &mut dyn DmaMemory) -> u32 {
        let Some((bus, device, number, register)) = self.decode(offset, width) else {
            log::debug!("pci-ecam: read of {width:?} at {offset:#x}: not an access");
            return width.all_ones();
        };
        match self.function_mut(bus, device, number) {
            Some(function) => function.read(register, width),
            // No function answers: the read completes with all ones (Unsupported Request).
            None => width.all_ones(),
        }
    }

    fn write(&mut self, offset: u64, width: Width, value: u32, _dma: &mut dyn DmaMemory) {
        let Some((bus, device, number, register)) = self.decode(offset, width) else {
            log::debug!("pci-ecam: write of {width:?} at {offset:#x}: not an access");
            return;
        };
        if let Some(function) = self.function_mut(bus, device, number) {
            function.write(register, width, value);
        }
    }

    /// The root ports' hot-plug interrupts, as one line (the host platform gives the bridge
    /// driver one interrupt for its slots).
    fn irq_level(&self) -> bool {
        self.root.hotplug_pending()
    }
}
