//! The board of the host platform: models of the devices in the board's device tree blob
//! (`warden-host-devices`), the PDs' device maps, DMA memory and interrupt routing.
//!
//! The launcher instantiates a model for every device of the DTB it has one for (`arm,pl011`,
//! `amlogic,meson-ao-uart`, `arm,pl031`, `virtio,mmio`; `arm,armv8-timer`, the CPU's generic
//! timer, whose system registers every PD reaches at `system_timer::HOST_ADDRESS`, as seL4 exports
//! them to every PD; and the Meson timer in the page of `amlogic,meson-gxbb-wdt`, which the
//! S905X3's watchdog and timers share), at the DTB's addresses, so a system
//! description written for the real board (`phys_addr` device regions, `irq` numbers) runs unchanged. A device region is not
//! shared memory here: a PD's access to it arrives as a frame, is handed to the model of the
//! device at that physical address, in order, and answered. An access outside every device map
//! of the PD is a VM fault, as on seL4. Models reach DMA memory (the regions that are not
//! device memory) through the regions' memfds, at the physical addresses the launcher gives those
//! regions (delivered to PDs by `<setvar region_paddr>`).
//!
//! Interrupts are level-triggered lines: after every access, acknowledgement, console input or
//! hot-plug the launcher looks at each routed line and raises or lowers it in the kernel model.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use warden_host_devices::{
    Blk, Device, DmaError, DmaMemory, EcamModel, GenericTimer, MesonTimer, MesonUart, PciBus,
    PciFunction, Pl011, Pl031, Rng, VirtioMmio, VirtioPci, Width,
};
use warden_microkit::system_timer;

use crate::sdf::System;

/// Where the launcher places regions that have no `phys_addr` (the QEMU virt board's RAM).
pub const RAM_BASE: u64 = 0x4000_0000;

/// A virtio device to plug in: at start-up (`--virtio`) or at run time (control socket).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VirtioSpec {
    /// virtio-blk backed by an image file.
    Blk(std::path::PathBuf),
    /// virtio-rng fed by the operating system's random numbers.
    Rng,
}

impl std::str::FromStr for VirtioSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.split_once('=') {
            Some(("blk", path)) if !path.is_empty() => Ok(Self::Blk(path.into())),
            None if text == "rng" => Ok(Self::Rng),
            _ => Err(format!(
                "'{text}' is not a virtio device: use blk=IMAGE or rng"
            )),
        }
    }
}

impl VirtioSpec {
    fn backend(&self) -> Result<Box<dyn warden_host_devices::VirtioBackend>, String> {
        match self {
            Self::Blk(path) => {
                let blk = Blk::open(path)
                    .map_err(|error| format!("disk image {}: {error}", path.display()))?;
                if blk.capacity() == 0 {
                    return Err(format!(
                        "disk image {}: smaller than one 512-byte sector, so a disk of no \
                         sectors (make it larger, e.g. truncate -s 1M)",
                        path.display()
                    ));
                }
                Ok(Box::new(blk))
            }
            Self::Rng => Ok(Box::new(Rng::from_os())),
        }
    }
}

/// What the console printed since a control command was typed on it (`control SOCKET
/// COMMAND` with one of the shell's commands): the lines, and the line not yet ended (the
/// prompt, when the shell is done).
#[derive(Debug, Default)]
pub struct Capture {
    /// Capturing.
    pub active: bool,
    /// The lines printed since, each without its end.
    pub lines: Vec<String>,
    /// The line being printed (kept whether capturing or not, while it is short: a prompt).
    pub partial: String,
    /// Lines past [`MAX_CAPTURED_LINES`], counted.
    pub more: usize,
}

/// The most lines one captured answer keeps (a `tree` of the core's 128 devices is 130); the
/// rest are counted.
pub const MAX_CAPTURED_LINES: usize = 1024;
/// The longest unfinished line kept (a prompt is shorter).
const PARTIAL_BYTES: usize = 64;

/// The console UART's output: the launcher's standard output, a line at a time with a
/// `[console]` prefix, so it reads apart from the PDs' debug output. A prompt without a newline
/// is shown once the UART has been quiet for a moment (on the next access that does not print).
/// While a control command runs, its lines are also captured for the answer.
#[derive(Default)]
struct ConsoleOutput {
    line: Vec<u8>,
    capture: std::sync::Arc<std::sync::Mutex<Capture>>,
}

impl ConsoleOutput {
    fn captured(&self, ended: bool) {
        let Ok(mut capture) = self.capture.lock() else {
            return;
        };
        if ended {
            capture.partial.clear();
            if !capture.active {
                return;
            }
            if capture.lines.len() < MAX_CAPTURED_LINES {
                let text = String::from_utf8_lossy(&self.line).into_owned();
                capture.lines.push(text);
            } else {
                capture.more += 1;
            }
        } else if self.line.len() <= PARTIAL_BYTES {
            capture.partial = String::from_utf8_lossy(&self.line).into_owned();
        } else {
            capture.partial.clear();
        }
    }
}

impl std::io::Write for ConsoleOutput {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        for byte in bytes {
            match byte {
                b'\n' => {
                    crate::output::say(&format!(
                        "[console] {}",
                        String::from_utf8_lossy(&self.line)
                    ));
                    self.captured(true);
                    self.line.clear();
                }
                b'\r' => {}
                // Backspace as the line editor echoes it: erase the last character.
                8 => {
                    self.line.pop();
                }
                other => self.line.push(*other),
            }
        }
        self.captured(false);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Model {
    Uart(Pl011),
    MesonUart(MesonUart),
    Clock(Pl031),
    Virtio(VirtioMmio),
    SystemTimer(GenericTimer),
    MesonTimer(MesonTimer),
    Pci(EcamModel),
}

impl Model {
    fn device(&mut self) -> &mut dyn Device {
        match self {
            Self::Uart(model) => model,
            Self::MesonUart(model) => model,
            Self::Clock(model) => model,
            Self::Virtio(model) => model,
            Self::SystemTimer(model) => model,
            Self::MesonTimer(model) => model,
            Self::Pci(model) => model,
        }
    }

    fn device_ref(&self) -> &dyn Device {
        match self {
            Self::Uart(model) => model,
            Self::MesonUart(model) => model,
            Self::Clock(model) => model,
            Self::Virtio(model) => model,
            Self::SystemTimer(model) => model,
            Self::MesonTimer(model) => model,
            Self::Pci(model) => model,
        }
    }
}

struct Slot {
    name: String,
    base: u64,
    size: u64,
    intid: Option<u32>,
    model: Model,
}

/// A device region mapped into a PD.
#[derive(Clone, Copy, Debug)]
struct DeviceMap {
    pd: usize,
    vaddr: u64,
    size: u64,
    paddr: u64,
}

/// The DMA-capable regions, read and written through their files.
struct DmaRegions(Vec<(u64, u64, File)>);

impl DmaRegions {
    fn find(&self, paddr: u64, len: usize) -> Result<(&File, u64), DmaError> {
        let error = DmaError { paddr, len };
        let end = paddr.checked_add(len as u64).ok_or(error)?;
        self.0
            .iter()
            .find(|(base, size, _)| paddr >= *base && end <= base + size)
            .map(|(base, _, file)| (file, paddr - base))
            .ok_or(error)
    }
}

impl DmaMemory for DmaRegions {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let (file, offset) = self.find(paddr, buf.len())?;
        file.read_exact_at(buf, offset).map_err(|_| DmaError {
            paddr,
            len: buf.len(),
        })
    }

    fn write(&mut self, paddr: u64, data: &[u8]) -> Result<(), DmaError> {
        let (file, offset) = self.find(paddr, data.len())?;
        file.write_all_at(data, offset).map_err(|_| DmaError {
            paddr,
            len: data.len(),
        })
    }
}

/// A routed interrupt line's level, to apply to the kernel model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line {
    /// The PD that owns the IRQ.
    pub pd: usize,
    /// Its channel id for it.
    pub channel: u8,
    /// Asserted?
    pub asserted: bool,
}

/// A memory aperture of the PCIe host bridge: CPU addresses `cpu_base..+size` reach bus
/// addresses from `pci_base`, where the functions' BARs decode.
#[derive(Clone, Copy, Debug)]
struct PciWindow {
    cpu_base: u64,
    size: u64,
    pci_base: u64,
}

impl PciWindow {
    fn bus_address(&self, paddr: u64) -> Option<u64> {
        let offset = paddr.checked_sub(self.cpu_base)?;
        (offset < self.size).then(|| self.pci_base + offset)
    }
}

/// The host platform's board.
pub struct Board {
    slots: Vec<Slot>,
    /// The PCIe host bridge's memory apertures (its model is one of the slots).
    pci_windows: Vec<PciWindow>,
    /// Its root ports' hot-plug interrupts: (device number on the root bus, GIC INTID).
    pci_ports: Vec<(u8, u32)>,
    maps: Vec<DeviceMap>,
    dma: DmaRegions,
    /// GIC INTID → (PD, channel).
    routes: HashMap<u32, (usize, u8)>,
    /// The timers' clocks count from here.
    started: std::time::Instant,
    /// The console's output captured for a control command.
    capture: std::sync::Arc<std::sync::Mutex<Capture>>,
}

/// Physical addresses of the regions: `phys_addr` where the description fixes one, otherwise
/// consecutive page-aligned addresses from [`RAM_BASE`].
#[must_use]
pub fn region_paddrs(system: &System) -> Vec<u64> {
    let mut next = RAM_BASE;
    system
        .memory_regions
        .iter()
        .map(|region| {
            region.phys_addr.unwrap_or_else(|| {
                let address = next;
                next += region.size.div_ceil(0x1000) * 0x1000;
                address
            })
        })
        .collect()
}

impl Board {
    /// The board of `dtb` (none: no device models), for `system`, whose regions' memory is
    /// `region_files` (the launcher's memfds, read and written by position) at `paddrs`.
    ///
    /// # Errors
    /// An unreadable or malformed DTB; a device region mapped by a PD with no model behind it.
    pub fn new(
        dtb: Option<&Path>,
        system: &System,
        paddrs: &[u64],
        region_files: &[File],
    ) -> Result<Self, String> {
        let mut slots = Vec::new();
        let mut pci_windows = Vec::new();
        let mut pci_ports = Vec::new();
        let capture = std::sync::Arc::new(std::sync::Mutex::new(Capture::default()));
        let started = std::time::Instant::now();
        let clock = move || -> Box<dyn Fn() -> std::time::Duration + Send> {
            Box::new(move || started.elapsed())
        };
        if let Some(path) = dtb {
            let bytes = crate::board::read_blob(path).map_err(|error| format!("board {error}"))?;
            let board = warden_board::Board::new(&bytes)
                .map_err(|error| format!("board {}: {error}", path.display()))?;
            let mut phandles = vec![warden_board::PhandleSlot::default(); board.phandle_count()];
            let index = board
                .index_phandles(&mut phandles)
                .map_err(|error| format!("board {}: {error}", path.display()))?;
            for device in board.devices_indexed(&index) {
                let Ok(device) = device else { continue };
                if device.enabled && device.compatible.contains(&"arm,armv8-timer") {
                    slots.push(Slot {
                        name: device.path_name.to_string(),
                        base: system_timer::HOST_ADDRESS,
                        size: system_timer::WINDOW_BYTES as u64,
                        intid: Some(system_timer::INTID),
                        model: Model::SystemTimer(GenericTimer::new(clock())),
                    });
                    continue;
                }
                let (Some(window), true) = (device.mmio.first(), device.enabled) else {
                    continue;
                };
                if device.compatible.contains(&"amlogic,meson-gxbb-wdt") {
                    slots.push(Slot {
                        name: "timer page (watchdog, timers A-I)".to_string(),
                        base: window.base & !0xfff,
                        size: 0x1000,
                        intid: Some(timer_driver::meson::INTID),
                        model: Model::MesonTimer(MesonTimer::new(clock())),
                    });
                    continue;
                }
                let console = || {
                    Box::new(ConsoleOutput {
                        line: Vec::new(),
                        capture: std::sync::Arc::clone(&capture),
                    })
                };
                let model = if device.compatible.contains(&"arm,pl011") {
                    Model::Uart(Pl011::new(console()))
                } else if device.compatible.contains(&"amlogic,meson-ao-uart") {
                    Model::MesonUart(MesonUart::new(console()))
                } else if device.compatible.contains(&"arm,pl031") {
                    Model::Clock(Pl031::new(Box::new(|| {
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |elapsed| elapsed.as_secs())
                    })))
                } else if device.compatible.contains(&"virtio,mmio") {
                    Model::Virtio(VirtioMmio::new())
                } else if let (true, Some(host)) = (
                    device.compatible.contains(&"pci-host-ecam-generic"),
                    &device.pci,
                ) {
                    pci_windows.extend(
                        host.apertures
                            .iter()
                            .filter(|aperture| aperture.space != warden_vocabulary::PciSpace::Io)
                            .map(|aperture| PciWindow {
                                cpu_base: aperture.cpu_base,
                                size: aperture.size,
                                pci_base: aperture.pci_base,
                            }),
                    );
                    let buses = u16::from(host.last_bus - host.first_bus) + 1;
                    let buses = buses.min(u16::try_from(window.size >> 20).unwrap_or(u16::MAX));
                    // Each root port's hot-plug interrupt is its INTA, where the host
                    // bridge's interrupt-map routes it.
                    pci_ports.extend(
                        (1..=PCI_SLOTS)
                            .filter_map(|port| host.intid(port, 0, 1).map(|intid| (port, intid))),
                    );
                    slots.push(Slot {
                        name: device.path_name.to_string(),
                        base: window.base,
                        size: window.size,
                        // Shown as the first port's; the lines are the ports' (`lines`).
                        intid: pci_ports.first().map(|&(_, intid)| intid),
                        model: Model::Pci(EcamModel::new(host.first_bus, buses, pci_root_bus())),
                    });
                    continue;
                } else {
                    continue;
                };
                slots.push(Slot {
                    name: device.path_name.to_string(),
                    base: window.base,
                    size: window.size,
                    intid: device.irqs.first().copied(),
                    model,
                });
            }
        }
        let mut maps = Vec::new();
        let mut dma = Vec::new();
        for (index, region) in system.memory_regions.iter().enumerate() {
            let paddr = paddrs.get(index).copied().unwrap_or_default();
            let mappers: Vec<(usize, &crate::sdf::Map)> = system
                .protection_domains
                .iter()
                .enumerate()
                .flat_map(|(pd, domain)| {
                    domain
                        .maps
                        .iter()
                        .filter(|map| map.region == region.name)
                        .map(move |map| (pd, map))
                })
                .collect();
            if region.phys_addr.is_some() {
                let in_pci_window = pci_windows
                    .iter()
                    .any(|window: &PciWindow| window.bus_address(paddr).is_some());
                if !mappers.is_empty()
                    && !in_pci_window
                    && !slots.iter().any(|slot| {
                        slot.base < paddr + region.size && paddr < slot.base + slot.size
                    })
                {
                    return Err(format!(
                        "memory region '{}' is device memory at 0x{paddr:x}, and the board{} has no device model there",
                        region.name,
                        dtb.map(|path| format!(" ({})", path.display()))
                            .unwrap_or_else(|| " (none given: use --board FILE.dtb)".into())
                    ));
                }
                for (pd, map) in mappers {
                    maps.push(DeviceMap {
                        pd,
                        vaddr: map.vaddr,
                        size: region.size,
                        paddr,
                    });
                }
            } else if let Some(memory) = region_files.get(index) {
                let file = memory
                    .try_clone()
                    .map_err(|error| format!("memory region '{}': {error}", region.name))?;
                dma.push((paddr, region.size, file));
            }
        }
        let mut routes = HashMap::new();
        for (pd, domain) in system.protection_domains.iter().enumerate() {
            for irq in &domain.irqs {
                if let (Ok(intid), Ok(channel)) = (u32::try_from(irq.irq), u8::try_from(irq.id)) {
                    routes.insert(intid, (pd, channel));
                }
            }
        }
        Ok(Self {
            slots,
            pci_windows,
            pci_ports,
            maps,
            dma: DmaRegions(dma),
            routes,
            started,
            capture,
        })
    }

    /// The physical address of `pd`'s access at `address`: in one of its device maps, or the
    /// generic timer's system registers, which every PD reaches (if the board has the timer).
    fn translate(&self, pd: usize, address: u64) -> Option<u64> {
        let system_timer = address >= system_timer::HOST_ADDRESS
            && address - system_timer::HOST_ADDRESS < system_timer::WINDOW_BYTES as u64;
        if system_timer {
            return self
                .slots
                .iter()
                .any(|slot| matches!(slot.model, Model::SystemTimer(_)))
                .then_some(address);
        }
        self.maps
            .iter()
            .find(|map| map.pd == pd && address >= map.vaddr && address - map.vaddr < map.size)
            .map(|map| map.paddr + (address - map.vaddr))
    }

    /// How long until a model's line may change by itself (a timer's), if one may.
    #[must_use]
    pub fn next_change(&self) -> Option<std::time::Duration> {
        let elapsed = self.started.elapsed();
        self.slots
            .iter()
            .filter_map(|slot| slot.model.device_ref().next_change())
            .min()
            .map(|at| at.saturating_sub(elapsed))
    }

    /// A register access by `pd` at its virtual `address`: `Some(value)` (0 for a write), or
    /// `None` when the address is in none of the PD's device maps (a VM fault). Inside a map
    /// but where no model is, reads see all ones and writes vanish, as on a bus with no
    /// device.
    pub fn access(
        &mut self,
        pd: usize,
        address: u64,
        width: u8,
        write: Option<u32>,
    ) -> Option<u32> {
        let paddr = self.translate(pd, address)?;
        let width = Width::from_bytes(usize::from(width))?;
        let Self {
            slots,
            dma,
            pci_windows,
            ..
        } = self;
        let Some(slot) = slots
            .iter_mut()
            .find(|slot| paddr >= slot.base && paddr - slot.base < slot.size)
        else {
            // A PCI function's BAR, through the host bridge's apertures; nothing there reads
            // all ones, as a bus with no device answering does.
            let bus = pci_windows
                .iter()
                .find_map(|window| window.bus_address(paddr));
            let ecam = slots.iter_mut().find_map(|slot| match &mut slot.model {
                Model::Pci(ecam) => Some(ecam),
                _ => None,
            });
            return Some(match (bus, ecam, write) {
                (Some(bus), Some(ecam), Some(value)) => {
                    ecam.memory_write(bus, width, value, dma);
                    0
                }
                (Some(bus), Some(ecam), None) => ecam
                    .memory_read(bus, width, dma)
                    .unwrap_or(width.all_ones()),
                (_, _, Some(_)) => 0,
                (_, _, None) => width.all_ones(),
            });
        };
        let offset = paddr - slot.base;
        Some(match write {
            Some(value) => {
                slot.model.device().write(offset, width, value, dma);
                0
            }
            None => slot.model.device().read(offset, width, dma),
        })
    }

    /// Every routed line's level.
    pub fn lines(&mut self) -> Vec<Line> {
        let routes = &self.routes;
        let mut lines: Vec<Line> = self
            .slots
            .iter_mut()
            .filter(|slot| !matches!(slot.model, Model::Pci(_)))
            .filter_map(|slot| {
                let (pd, channel) = *routes.get(&slot.intid?)?;
                Some(Line {
                    pd,
                    channel,
                    asserted: slot.model.device().irq_level(),
                })
            })
            .collect();
        // The root ports' hot-plug lines. A card's own INTx is not routed: its drivers here
        // poll, and turn INTx off.
        let ecam = self.slots.iter().find_map(|slot| match &slot.model {
            Model::Pci(ecam) => Some(ecam),
            _ => None,
        });
        if let Some(ecam) = ecam {
            for &(port, intid) in &self.pci_ports {
                if let Some(&(pd, channel)) = routes.get(&intid) {
                    lines.push(Line {
                        pd,
                        channel,
                        asserted: ecam.port_irq(port),
                    });
                }
            }
        }
        lines
    }

    /// Whether the board has a console UART.
    #[must_use]
    pub fn has_console(&self) -> bool {
        self.slots
            .iter()
            .any(|slot| matches!(slot.model, Model::Uart(_) | Model::MesonUart(_)))
    }

    /// Starts capturing the console's output (what was captured before is dropped).
    pub fn start_capture(&mut self) {
        if let Ok(mut capture) = self.capture.lock() {
            let partial = core::mem::take(&mut capture.partial);
            *capture = Capture {
                active: true,
                partial,
                ..Capture::default()
            };
        }
    }

    /// Whether the console's output ends in `prompt` with nothing typed after it (the shell
    /// waits for a line, and nobody is typing one).
    #[must_use]
    pub fn console_at(&self, prompt: &str) -> bool {
        self.capture
            .lock()
            .is_ok_and(|capture| !capture.active && capture.partial == prompt)
    }

    /// Stops capturing; what was captured.
    pub fn take_capture(&mut self) -> Capture {
        self.capture
            .lock()
            .map(|mut capture| {
                let partial = capture.partial.clone();
                let taken = core::mem::take(&mut *capture);
                capture.partial = partial;
                taken
            })
            .unwrap_or_default()
    }

    /// Whether the output captured since a line was typed ends in `prompt` again.
    #[must_use]
    pub fn capture_ends_with(&self, prompt: &str) -> bool {
        self.capture.lock().is_ok_and(|capture| {
            // The line typed (its echo) ends the prompt it was typed at first.
            capture.active && !capture.lines.is_empty() && capture.partial == prompt
        })
    }

    /// Console input for the (first) UART.
    pub fn console_input(&mut self, bytes: &[u8]) {
        for slot in &mut self.slots {
            match &mut slot.model {
                Model::Uart(uart) => uart.push_input(bytes),
                Model::MesonUart(uart) => uart.push_input(bytes),
                _ => continue,
            }
            return;
        }
    }

    /// Plugs a virtio device into a free transport: the highest free slot at start-up (as
    /// QEMU assigns `-device virtio-*-device`), the lowest at run time (hot-plug). Returns a
    /// description of where it went.
    ///
    /// # Errors
    /// No free transport, or the backend cannot be opened.
    pub fn plug(&mut self, spec: &VirtioSpec, highest_first: bool) -> Result<String, String> {
        let backend = spec.backend()?;
        let mut free: Vec<usize> = self
            .slots
            .iter()
            .enumerate()
            .filter(
                |(_, slot)| matches!(&slot.model, Model::Virtio(virtio) if virtio.device_id() == 0),
            )
            .map(|(index, _)| index)
            .collect();
        free.sort_by_key(|index| self.slots.get(*index).map_or(0, |slot| slot.base));
        let chosen = if highest_first {
            free.last()
        } else {
            free.first()
        };
        let Some(slot) = chosen.and_then(|index| self.slots.get_mut(*index)) else {
            return Err("no free virtio-mmio transport on the board".into());
        };
        let description = backend.describe();
        if let Model::Virtio(virtio) = &mut slot.model {
            virtio
                .plug(backend)
                .map_err(|_| "the transport is occupied".to_string())?;
        }
        let routed = slot
            .intid
            .is_some_and(|intid| self.routes.contains_key(&intid));
        Ok(format!(
            "{description} at {} (0x{:x}, irq {}){}",
            slot.name,
            slot.base,
            slot.intid.unwrap_or_default(),
            if routed {
                ""
            } else {
                "; no protection domain receives its interrupt"
            }
        ))
    }

    /// Plugs a PCI card into the lowest empty hot-plug slot of the PCIe host bridge (QEMU's
    /// `device_add … bus=PORT`): its presence and link come up and the slot interrupts.
    ///
    /// # Errors
    /// No host bridge, no empty slot, or the backend cannot be opened.
    pub fn plug_pci(&mut self, spec: &VirtioSpec) -> Result<String, String> {
        let backend = spec.backend()?;
        let description = backend.describe();
        let ecam = self.ecam()?;
        let free = (1..=PCI_SLOTS).find(|&slot| {
            ecam.root_mut()
                .function_mut(slot, 0)
                .and_then(PciFunction::secondary_bus_mut)
                .is_some_and(|bus| bus.function_mut(0, 0).is_none())
        });
        if let Some(slot) = free {
            let card = VirtioPci::card(backend);
            let Some(port) = ecam.root_mut().function_mut(slot, 0) else {
                return Err("no empty PCIe slot".into());
            };
            if port.plug(card).is_ok() {
                return Ok(format!(
                    "{description} (virtio-pci) in PCIe slot {slot} (root port 00:{slot:02x}.0)"
                ));
            }
        }
        Err("no empty PCIe slot".into())
    }

    /// Takes the card out of PCIe slot `slot`: `eject` presses its attention button (QEMU's
    /// `device_del`: software removes the functions and turns the slot off, which ejects
    /// it); otherwise it is pulled out at once (a surprise removal).
    ///
    /// # Errors
    /// No host bridge, no such slot, or the slot is empty.
    pub fn unplug_pci(&mut self, slot: &str, eject: bool) -> Result<String, String> {
        let number = slot
            .parse::<u8>()
            .ok()
            .filter(|number| (1..=PCI_SLOTS).contains(number))
            .ok_or_else(|| format!("'{slot}' is not a PCIe slot (1-{PCI_SLOTS})"))?;
        let port = self
            .ecam()?
            .root_mut()
            .function_mut(number, 0)
            .ok_or_else(|| format!("no root port for slot {number}"))?;
        let occupied = port
            .secondary_bus_mut()
            .is_some_and(|bus| bus.function_mut(0, 0).is_some());
        if !occupied {
            return Err(format!("PCIe slot {number} is empty"));
        }
        if eject {
            port.press_attention_button();
            Ok(format!("attention button of PCIe slot {number} pressed"))
        } else {
            port.pull();
            Ok(format!("card pulled out of PCIe slot {number}"))
        }
    }

    fn ecam(&mut self) -> Result<&mut EcamModel, String> {
        self.slots
            .iter_mut()
            .find_map(|slot| match &mut slot.model {
                Model::Pci(ecam) => Some(ecam),
                _ => None,
            })
            .ok_or_else(|| "the board has no PCIe host bridge".to_string())
    }

    /// Unplugs the virtio device at physical address `base`.
    ///
    /// # Errors
    /// No virtio transport there, or it is empty.
    pub fn unplug(&mut self, base: u64) -> Result<String, String> {
        let slot = self
            .slots
            .iter_mut()
            .find(|slot| slot.base == base && matches!(slot.model, Model::Virtio(_)))
            .ok_or_else(|| format!("no virtio-mmio transport at 0x{base:x}"))?;
        let Model::Virtio(virtio) = &mut slot.model else {
            return Err(format!("no virtio-mmio transport at 0x{base:x}"));
        };
        let backend = virtio
            .unplug()
            .ok_or_else(|| format!("the transport at 0x{base:x} is empty"))?;
        Ok(format!("{} removed from {}", backend.describe(), slot.name))
    }

    /// What the board has, one line per model.
    #[must_use]
    pub fn summary(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter(|slot| match &slot.model {
                Model::Virtio(virtio) => virtio.device_id() != 0,
                _ => true,
            })
            .map(|slot| {
                let kind = match &slot.model {
                    Model::Uart(_) => "PL011 (console on stdio)".to_string(),
                    Model::MesonUart(_) => "Meson UART (console on stdio)".to_string(),
                    Model::Clock(_) => "PL031 (host clock)".to_string(),
                    Model::Virtio(virtio) => {
                        format!("virtio-mmio, device id {}", virtio.device_id())
                    }
                    Model::SystemTimer(_) => "ARM generic timer (system registers)".to_string(),
                    Model::MesonTimer(_) => "Meson timer (host clock)".to_string(),
                    Model::Pci(_) => format!(
                        "PCIe host bridge (ECAM), {PCI_SLOTS} hot-plug slots (irqs {})",
                        self.pci_ports
                            .iter()
                            .map(|(_, intid)| intid.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                format!(
                    "{} at 0x{:x}, irq {}: {kind}",
                    slot.name,
                    slot.base,
                    slot.intid.unwrap_or_default()
                )
            })
            .collect()
    }
}

/// The hot-plug slots of the PCIe host bridge: root ports 00:01.0 and 00:02.0.
const PCI_SLOTS: u8 = 2;

/// QEMU virt's root bus with `-device pcie-root-port` twice: the host bridge's own function
/// (1b36:0008) and two empty root ports with hot-plug slots 1 and 2.
fn pci_root_bus() -> PciBus {
    let mut bus = PciBus::new().with(0, 0, PciFunction::endpoint(0x1b36, 0x0008, 0x06_00_00));
    for slot in 1..=PCI_SLOTS {
        bus = bus.with(
            slot,
            0,
            PciFunction::root_port(u16::from(slot), PciBus::link()).with_pin(1),
        );
    }
    bus
}
