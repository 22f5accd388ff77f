//! virtio-drivers' own `VirtIOBlk` and `VirtIORng`, over Warden's `RegisterTransport`, against
//! the virtio-mmio model: the models must satisfy the drivers Warden really runs.
//!
//! The test plays the launcher: a `Registers` implementation hands each access to the model,
//! and the model's DMA goes straight to the driver's memory. "Physical" addresses are the
//! driver's pointers (an identity `Hal`), and the DMA adapter only touches ranges the `Hal`
//! handed out or shared, so a model bug shows up as a `DmaError`, not as memory corruption.
#![allow(
    unsafe_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::alloc::Layout;
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::Mutex;

use virtio_drivers::device::blk::{VirtIOBlk, SECTOR_SIZE};
use virtio_drivers::device::rng::VirtIORng;
use virtio_drivers::transport::{DeviceType, InterruptStatus, Transport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};
use warden_host_devices::{Blk, DmaError, DmaMemory, ModelRegisters, Rng, VirtioMmio};
use warden_virtio::{probe_device_id, RegisterTransport, TransportError};

/// Memory ranges (address, length) the device may access: DMA pages from `dma_alloc` and
/// buffers between `share` and `unshare`. Shared by all tests of this binary, whose ranges
/// never overlap (they are live allocations).
static DMA_RANGES: Mutex<Vec<(u64, usize)>> = Mutex::new(Vec::new());

fn add_range(address: u64, len: usize) {
    DMA_RANGES.lock().unwrap().push((address, len));
}

fn remove_range(address: u64) {
    let mut ranges = DMA_RANGES.lock().unwrap();
    if let Some(index) = ranges.iter().position(|(start, _)| *start == address) {
        ranges.swap_remove(index);
    }
}

/// Whether `address..address + len` lies inside one live range.
fn is_dma(address: u64, len: usize) -> bool {
    DMA_RANGES.lock().unwrap().iter().any(|(start, range_len)| {
        address >= *start
            && address
                .checked_add(len as u64)
                .is_some_and(|end| end <= start + *range_len as u64)
    })
}

/// An identity-mapped `Hal` on the process heap.
struct TestHal;

fn page_layout(pages: usize) -> Layout {
    Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).unwrap()
}

// SAFETY: `dma_alloc` returns zeroed, page-aligned, exclusively owned heap memory that lives
// until `dma_dealloc`; `share` hands out the buffer's own address, valid while it is shared.
unsafe impl Hal for TestHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        // SAFETY: the layout has a non-zero size (virtio-drivers never asks for 0 pages).
        let pointer = unsafe { std::alloc::alloc_zeroed(page_layout(pages)) };
        let pointer = NonNull::new(pointer).expect("DMA allocation failed");
        add_range(pointer.as_ptr() as u64, pages * PAGE_SIZE);
        (pointer.as_ptr() as PhysAddr, pointer)
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        remove_range(paddr);
        // SAFETY: the caller passes back what `dma_alloc` returned, with the same page count.
        unsafe { std::alloc::dealloc(vaddr.as_ptr(), page_layout(pages)) };
        0
    }

    unsafe fn mmio_phys_to_virt(_paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        unreachable!("only the PCI transport maps MMIO through the Hal")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let address = buffer.as_ptr().cast::<u8>() as PhysAddr;
        add_range(address, buffer.len());
        address
    }

    unsafe fn unshare(paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {
        remove_range(paddr);
    }
}

/// The model's view of DMA memory: the driver's own memory, at its own addresses.
struct DriverMemory;

impl DmaMemory for DriverMemory {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        if !is_dma(paddr, buf.len()) {
            return Err(DmaError {
                paddr,
                len: buf.len(),
            });
        }
        // SAFETY: the range lies in memory `TestHal` allocated or a buffer shared with the
        // device, both live (they leave `DMA_RANGES` before they are freed). The driver is
        // blocked in the register access that got us here, so nothing writes it concurrently.
        unsafe {
            std::ptr::copy_nonoverlapping(paddr as *const u8, buf.as_mut_ptr(), buf.len());
        }
        Ok(())
    }

    fn write(&mut self, paddr: u64, data: &[u8]) -> Result<(), DmaError> {
        if !is_dma(paddr, data.len()) {
            return Err(DmaError {
                paddr,
                len: data.len(),
            });
        }
        // SAFETY: as in `read`; the driver does not read the range during the access either.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), paddr as *mut u8, data.len());
        }
        Ok(())
    }
}

/// The launcher's part: each register access of the driver goes to the model, in order, and
/// the model's DMA to the driver's memory.
type ModelWindow = ModelRegisters<VirtioMmio, DriverMemory>;

fn window() -> ModelWindow {
    ModelRegisters::with_memory(VirtioMmio::new(), DriverMemory)
}

/// A temporary disk image, removed on drop.
struct Image(PathBuf);

impl Image {
    fn new(name: &str, sectors: usize) -> Self {
        let path = std::env::temp_dir().join(format!(
            "warden-virtio-drivers-{}-{name}.img",
            std::process::id()
        ));
        let contents: Vec<u8> = (0..sectors * SECTOR_SIZE)
            .map(|index| (index / SECTOR_SIZE * 7 + index % 251) as u8)
            .collect();
        std::fs::write(&path, contents).unwrap();
        Self(path)
    }

    fn sector(&self, sector: usize) -> Vec<u8> {
        std::fs::read(&self.0).unwrap()[sector * SECTOR_SIZE..(sector + 1) * SECTOR_SIZE].to_vec()
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn an_empty_slot_is_probed_as_empty_and_refused_as_a_transport() {
    let window = window();
    assert_eq!(probe_device_id(&window), Ok(0));
    assert_eq!(
        RegisterTransport::new(&window).err(),
        Some(TransportError::NoDevice)
    );
}

#[test]
fn virtio_blk_reads_writes_and_flushes_an_image() {
    let image = Image::new("blk", 64);
    let window = window();
    window
        .model()
        .plug(Box::new(Blk::open(&image.0).unwrap()))
        .map_err(|_| ())
        .unwrap();
    assert!(window.irq_level(), "plugging raises a configuration change");
    assert_eq!(probe_device_id(&window), Ok(2));

    let transport = RegisterTransport::new(&window).unwrap();
    assert_eq!(transport.device_type(), DeviceType::Block);
    let mut blk = VirtIOBlk::<TestHal, _>::new(transport).unwrap();
    assert_eq!(blk.capacity(), 64);
    assert!(!blk.readonly());
    assert!(!window.irq_level(), "the driver's reset cleared it");

    let mut sector = [0u8; SECTOR_SIZE];
    blk.read_blocks(0, &mut sector).unwrap();
    assert_eq!(sector.as_slice(), image.sector(0));

    let pattern: Vec<u8> = (0..2 * SECTOR_SIZE).map(|i| (i * 13 + 5) as u8).collect();
    blk.write_blocks(5, &pattern).unwrap();
    let mut back = vec![0u8; 2 * SECTOR_SIZE];
    blk.read_blocks(5, &mut back).unwrap();
    assert_eq!(back, pattern);
    blk.flush().unwrap();
    assert_eq!(image.sector(5), pattern[..SECTOR_SIZE]);
    assert_eq!(image.sector(6), pattern[SECTOR_SIZE..]);

    let mut id = [0u8; 20];
    let len = blk.device_id(&mut id).unwrap();
    assert_eq!(&id[..len], b"warden-blk");

    // Past the end: the device answers IOERR, the driver reports it.
    assert_eq!(
        blk.read_blocks(64, &mut sector),
        Err(virtio_drivers::Error::IoError)
    );
    assert_eq!(
        blk.write_blocks(63, &pattern),
        Err(virtio_drivers::Error::IoError)
    );

    // Every completed request raised the used-buffer interrupt.
    assert!(window.irq_level());
    assert_eq!(
        blk.ack_interrupt().bits(),
        InterruptStatus::QUEUE_INTERRUPT.bits()
    );
    assert!(!window.irq_level());

    drop(blk);
    let model = window.model();
    assert_eq!(
        model.status(),
        0,
        "dropping the transport resets the device"
    );
    assert_eq!(model.last_fault(), None);
}

#[test]
fn virtio_rng_delivers_the_sources_bytes_and_survives_hot_plug() {
    let window = window();
    let mut counter = 0u8;
    let rng = Rng::new(Box::new(move |buffer: &mut [u8]| {
        for byte in buffer {
            counter = counter.wrapping_add(1);
            *byte = counter;
        }
    }));
    window.model().plug(Box::new(rng)).map_err(|_| ()).unwrap();

    let mut driver =
        VirtIORng::<TestHal, _>::new(RegisterTransport::new(&window).unwrap()).unwrap();
    let mut bytes = [0u8; 32];
    assert_eq!(driver.request_entropy(&mut bytes).unwrap(), 32);
    assert_eq!(bytes.to_vec(), (1..=32).collect::<Vec<u8>>());
    assert_eq!(driver.request_entropy(&mut bytes[..4]).unwrap(), 4);
    assert_eq!(bytes[..4], [33, 34, 35, 36]);
    drop(driver);

    // Swap the device in the slot: the driver side sees a fresh device with a fresh queue.
    let old = window.model().unplug().unwrap();
    assert_eq!(old.device_id(), 4);
    assert!(window.irq_level());
    assert_eq!(probe_device_id(&window), Ok(0));
    window
        .model()
        .plug(Box::new(Rng::from_os()))
        .map_err(|_| ())
        .unwrap();
    let mut driver =
        VirtIORng::<TestHal, _>::new(RegisterTransport::new(&window).unwrap()).unwrap();
    let mut bytes = [0u8; 64];
    assert_eq!(driver.request_entropy(&mut bytes).unwrap(), 64);
    assert!(bytes.iter().any(|byte| *byte != 0));
}

// virtio-pci: a card on the ECAM model, enumerated by warden-pci as the host bridge's driver
// does, then driven through Warden's PCI transport: its configuration page for the
// capabilities, its BAR (through the model's memory decoding) for the structures.

use warden_host_devices::{
    virtio_pci_capabilities, BarSpec, EcamModel, PciBus, PciFunction, VirtioPci,
    VIRTIO_PCI_BAR_BYTES,
};
use warden_pci::{enumerate, Ecam, PciAperture, PciSpace, Table};
use warden_registers::{Registers, Width};
use warden_virtio::{PciError, PciTransport};

type EcamWindow = ModelRegisters<EcamModel, DriverMemory>;

/// One BAR of a function as its driver maps it: accesses go to whatever decodes the bus
/// address (the model's memory decoding), nothing there reads all ones.
struct BarWindow<'a> {
    ecam: &'a EcamWindow,
    base: u64,
    size: usize,
}

impl Registers for BarWindow<'_> {
    fn size(&self) -> usize {
        self.size
    }

    fn read(&self, offset: usize, width: Width) -> u32 {
        if !warden_registers::access_ok(offset, width, self.size) {
            return width.all_ones();
        }
        self.ecam
            .model()
            .memory_read(self.base + offset as u64, width, &mut DriverMemory)
            .unwrap_or(width.all_ones())
    }

    fn write(&self, offset: usize, width: Width, value: u32) {
        if warden_registers::access_ok(offset, width, self.size) {
            self.ecam.model().memory_write(
                self.base + offset as u64,
                width,
                value,
                &mut DriverMemory,
            );
        }
    }
}

/// QEMU virt's 64-bit aperture, where the card's BAR goes.
const HIGH: PciAperture = PciAperture {
    space: PciSpace::Prefetchable,
    pci_base: 0x80_0000_0000,
    cpu_base: 0x80_0000_0000,
    size: 0x80_0000_0000,
};

/// A virtio-pci card (device type `kind`) with QEMU's BAR 4 and `capabilities` (the bodies of
/// vendor capabilities).
fn card(
    kind: u16,
    capabilities: &[Vec<u8>],
    device: Box<dyn warden_host_devices::Device>,
) -> PciFunction {
    let mut function = PciFunction::endpoint(0x1af4, 0x1040 + kind, 0x01_00_00)
        .with_bar(
            4,
            BarSpec::Memory64 {
                size: VIRTIO_PCI_BAR_BYTES,
                prefetchable: true,
            },
        )
        .with_memory(4, device);
    for body in capabilities {
        function = function.with_capability(0x09, body);
    }
    function
}

/// The card at 00:00.0, enumerated: the ECAM window, and the CPU address of BAR 4.
fn enumerated(card: PciFunction) -> (EcamWindow, Option<u64>) {
    let window = ModelRegisters::with_memory(
        EcamModel::new(0, 1, PciBus::new().with(0, 0, card)),
        DriverMemory,
    );
    let ecam = Ecam::new(&window, 0, 0);
    let mut table: Table<4> = Table::new();
    enumerate(&ecam, 0, 0, &[HIGH], &mut table);
    let bar = table.functions[0].bars[4]
        .and_then(|bar| bar.placed)
        .map(|(_, cpu)| cpu);
    (window, bar)
}

fn transport_of(window: &EcamWindow, bar: u64) -> Result<PciTransport<BarWindow<'_>>, PciError> {
    warden_virtio::pci::enable_bus_master(window);
    let placed = warden_driver::placed_bars(window);
    assert_eq!(placed, [false, false, false, false, true, false]);
    let mut bars: [Option<BarWindow<'_>>; 6] = std::array::from_fn(|_| None);
    bars[4] = Some(BarWindow {
        ecam: window,
        base: bar,
        size: VIRTIO_PCI_BAR_BYTES as usize,
    });
    PciTransport::new(window, bars)
}

fn blk_device(image: &Image) -> Box<dyn warden_host_devices::Device> {
    let mut device = VirtioMmio::new();
    device
        .plug(Box::new(Blk::open(&image.0).unwrap()))
        .map_err(|_| ())
        .unwrap();
    Box::new(VirtioPci::new(device))
}

#[test]
fn virtio_blk_over_pci_reads_and_writes_an_image() {
    let image = Image::new("pci-blk", 32);
    let (window, bar) = enumerated(card(2, &virtio_pci_capabilities(4), blk_device(&image)));
    let bar = bar.expect("BAR 4 placed in the 64-bit aperture");
    assert_eq!(bar, 0x80_0000_0000);
    let transport = transport_of(&window, bar).unwrap();
    assert_eq!(transport.device_type(), DeviceType::Block);
    let mut blk = VirtIOBlk::<TestHal, _>::new(transport).unwrap();
    assert_eq!(blk.capacity(), 32);
    let mut sector = [0u8; SECTOR_SIZE];
    blk.read_blocks(3, &mut sector).unwrap();
    assert_eq!(sector.as_slice(), image.sector(3));
    let pattern: Vec<u8> = (0..SECTOR_SIZE).map(|i| (i * 11 + 3) as u8).collect();
    blk.write_blocks(7, &pattern).unwrap();
    assert_eq!(image.sector(7), pattern);
    drop(blk);
    // The driver's reset on drop reached the device through the BAR.
    let status = BarWindow {
        ecam: &window,
        base: bar,
        size: VIRTIO_PCI_BAR_BYTES as usize,
    }
    .read(warden_virtio::pci::common::DEVICE_STATUS, Width::U8);
    assert_eq!(status, 0);
}

#[test]
fn a_bar_with_memory_decoding_off_answers_nothing() {
    let image = Image::new("pci-off", 8);
    let (window, bar) = enumerated(card(2, &virtio_pci_capabilities(4), blk_device(&image)));
    let bar = bar.unwrap();
    // Memory decoding off (Command bit 1): the BAR reads all ones, as an empty bus does.
    window.write(0x04, Width::U16, 0);
    let bar_window = BarWindow {
        ecam: &window,
        base: bar,
        size: VIRTIO_PCI_BAR_BYTES as usize,
    };
    assert_eq!(bar_window.read(0x12, Width::U16), 0xffff);
    window.write(0x04, Width::U16, 0x2);
    assert_eq!(
        bar_window.read(0x12, Width::U16),
        1,
        "one queue, with decoding on"
    );
    // A field accessed with another width than its own reads 0; such a write changes nothing.
    bar_window.write(0x14, Width::U8, 1);
    assert_eq!(
        bar_window.read(0x14, Width::U8),
        1,
        "device_status takes bytes"
    );
    assert_eq!(bar_window.read(0x14, Width::U32), 0);
    bar_window.write(0x14, Width::U32, 0);
    assert_eq!(bar_window.read(0x14, Width::U8), 1);
}

#[test]
fn hostile_virtio_pci_functions_are_refused_by_name() {
    let image = Image::new("pci-hostile", 8);
    let good = virtio_pci_capabilities(4);
    // Not a virtio function at all.
    let (window, bar) = enumerated(
        PciFunction::endpoint(0x8086, 0x1042, 0x01_00_00)
            .with_bar(
                4,
                BarSpec::Memory64 {
                    size: VIRTIO_PCI_BAR_BYTES,
                    prefetchable: true,
                },
            )
            .with_memory(4, blk_device(&image)),
    );
    assert_eq!(
        transport_of(&window, bar.unwrap()).err(),
        Some(PciError::NotModernVirtio {
            vendor: 0x8086,
            device: 0x1042
        })
    );
    // No ISR structure.
    let without_isr: Vec<Vec<u8>> = good.iter().filter(|body| body[1] != 3).cloned().collect();
    let (window, bar) = enumerated(card(2, &without_isr, blk_device(&image)));
    assert_eq!(
        transport_of(&window, bar.unwrap()).err(),
        Some(PciError::Missing(3))
    );
    // The common configuration said to run past the end of its BAR.
    let mut long = good.clone();
    long[0][10..14].copy_from_slice(&0x10_0000u32.to_le_bytes());
    let (window, bar) = enumerated(card(2, &long, blk_device(&image)));
    assert_eq!(
        transport_of(&window, bar.unwrap()).err(),
        Some(PciError::OutsideBar { cfg_type: 1 })
    );
    // In a BAR the function was not given.
    let mut elsewhere = good.clone();
    elsewhere[1][2] = 2;
    let (window, bar) = enumerated(card(2, &elsewhere, blk_device(&image)));
    assert_eq!(
        transport_of(&window, bar.unwrap()).err(),
        Some(PciError::OutsideBar { cfg_type: 3 })
    );
    // A capability list that loops: the last capability points back at the first.
    let (window, bar) =
        enumerated(card(2, &good, blk_device(&image)).with_raw(0x40 + 3 * 0x10 + 1, &[0x40]));
    assert_eq!(
        transport_of(&window, bar.unwrap()).err(),
        Some(PciError::BadCapabilityList)
    );
    // A virtio capability shorter than its fields.
    let mut short = good.clone();
    short[0][0] = 8;
    let (window, bar) = enumerated(card(2, &short, blk_device(&image)));
    assert_eq!(
        transport_of(&window, bar.unwrap()).err(),
        Some(PciError::BadCapabilityList)
    );
    // A device type virtio-drivers does not know.
    let (window, bar) = enumerated(card(0x3f, &good, blk_device(&image)));
    assert_eq!(
        transport_of(&window, bar.unwrap()).err(),
        Some(PciError::UnknownDevice(0x3f))
    );
}
