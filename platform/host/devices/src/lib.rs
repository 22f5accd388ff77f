//! Device models of the host platform: what a driver PD's register accesses reach on Linux.
//!
//! On the host platform a driver PD is a process without device memory. Every register access
//! it makes (through `warden_registers::Registers`) is handed by the launcher, synchronously and
//! in order, to one of these models, which acts on it the way the hardware would at that
//! access: a PL011 write to `DR` prints the byte, a virtio `QueueNotify` processes the queue
//! before the write returns. The models are sans-IO apart from what the device itself is about
//! (the UART's output stream, the block device's image file, the entropy source): they own no
//! threads, no timers and no sockets, so the launcher decides when things happen and the tests
//! can drive them access by access.
//!
//! DMA — virtqueues and buffers — lives in memory the driver PD shares with the launcher. A
//! model reads and writes it through [`DmaMemory`], by guest-physical address, and never holds
//! on to it between accesses.
//!
//! # What every model guarantees
//! - An invalid access (outside the window, misaligned, an unknown or reserved register, a width
//!   the register does not allow) reads 0 and writes nothing; it is logged at debug level and
//!   never panics. A driver bug or a hostile driver must not take the launcher down.
//! - Interrupts are level-triggered: [`Device::irq_level`] says whether the line is asserted
//!   after the accesses so far; the launcher samples it after each access, and at the time
//!   [`Device::next_change`] names (a timer's line changes without an access).
#![forbid(unsafe_code)]

mod generic_timer;
mod meson_timer;
mod meson_uart;
mod pci;
mod pl011;
mod pl031;
mod registers;
mod serial;
mod virtio_blk;
mod virtio_mmio;
mod virtio_pci;
mod virtio_rng;

pub use generic_timer::{GenericTimer, GENERIC_TIMER_HZ};
pub use meson_timer::MesonTimer;
pub use meson_uart::MesonUart;
pub use pci::{BarSpec, EcamModel, PciBus, PciFunction};
pub use pl011::Pl011;
pub use pl031::Pl031;
pub use registers::{ModelRegisters, SharedOutput};
pub use virtio_blk::Blk;
pub use virtio_mmio::{QueueFault, VirtioBackend, VirtioMmio};
pub use virtio_pci::{virtio_pci_capabilities, VirtioPci, BAR_BYTES as VIRTIO_PCI_BAR_BYTES};
pub use virtio_rng::{EntropySource, Rng};
pub use warden_registers::Width;

/// Guest-physical memory the device may DMA to (the launcher maps the DMA regions).
///
/// Implementations MUST refuse (with [`DmaError`]) any range that is not wholly inside memory
/// the driver shared for DMA, and MUST NOT touch memory on a refused access.
pub trait DmaMemory {
    /// Reads `buf.len()` bytes at guest-physical address `paddr`.
    ///
    /// # Errors
    /// [`DmaError`] when the range is not DMA memory.
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), DmaError>;
    /// Writes `data` at guest-physical address `paddr`.
    ///
    /// # Errors
    /// [`DmaError`] when the range is not DMA memory.
    fn write(&mut self, paddr: u64, data: &[u8]) -> Result<(), DmaError>;
}

/// A DMA access to memory the driver did not share: the range asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmaError {
    /// Guest-physical address of the access.
    pub paddr: u64,
    /// Bytes the access covered.
    pub len: usize,
}

impl std::fmt::Display for DmaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DMA access to {} bytes at {:#x} outside DMA memory",
            self.len, self.paddr
        )
    }
}

impl std::error::Error for DmaError {}

/// No DMA memory at all: for devices that do not DMA (the UART, the RTC) and for PDs without
/// DMA regions. Every access is refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDma;

impl DmaMemory for NoDma {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        Err(DmaError {
            paddr,
            len: buf.len(),
        })
    }

    fn write(&mut self, paddr: u64, data: &[u8]) -> Result<(), DmaError> {
        Err(DmaError {
            paddr,
            len: data.len(),
        })
    }
}

/// One contiguous block of DMA memory owned by the caller, at guest-physical address `base`:
/// for tests and for tools that run a model without a driver process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmaBuffer {
    base: u64,
    bytes: Vec<u8>,
}

impl DmaBuffer {
    /// `len` zeroed bytes at guest-physical address `base`.
    #[must_use]
    pub fn new(base: u64, len: usize) -> Self {
        Self {
            base,
            bytes: vec![0; len],
        }
    }

    /// The guest-physical address of the first byte.
    #[must_use]
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The contents.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The contents, to fill in.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// The byte range of `len` bytes at `paddr`, if it lies inside the buffer.
    fn range(&self, paddr: u64, len: usize) -> Result<std::ops::Range<usize>, DmaError> {
        let error = DmaError { paddr, len };
        let start = paddr
            .checked_sub(self.base)
            .and_then(|start| usize::try_from(start).ok())
            .ok_or(error)?;
        let end = start.checked_add(len).ok_or(error)?;
        if end > self.bytes.len() {
            return Err(error);
        }
        Ok(start..end)
    }
}

impl DmaMemory for DmaBuffer {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let range = self.range(paddr, buf.len())?;
        let source = self.bytes.get(range).ok_or(DmaError {
            paddr,
            len: buf.len(),
        })?;
        buf.copy_from_slice(source);
        Ok(())
    }

    fn write(&mut self, paddr: u64, data: &[u8]) -> Result<(), DmaError> {
        let range = self.range(paddr, data.len())?;
        let target = self.bytes.get_mut(range).ok_or(DmaError {
            paddr,
            len: data.len(),
        })?;
        target.copy_from_slice(data);
        Ok(())
    }
}

/// A model of one device's register window.
///
/// The launcher calls `read`/`write` for each register access of the driver PD, in order, and
/// samples `irq_level` after each.
pub trait Device: Send {
    /// What the model is: `"pl011"`, `"pl031"` or `"virtio-mmio"`.
    fn kind(&self) -> &'static str;
    /// The register window's size in bytes.
    fn size(&self) -> u64;
    /// One register read of `width` at byte `offset` in the window.
    fn read(&mut self, offset: u64, width: Width, dma: &mut dyn DmaMemory) -> u32;
    /// One register write of the low `width` bytes of `value` at byte `offset` in the window.
    fn write(&mut self, offset: u64, width: Width, value: u32, dma: &mut dyn DmaMemory);
    /// Whether the (level-triggered) interrupt line is asserted.
    fn irq_level(&self) -> bool;
    /// When the line may change by itself, without an access (a timer's): the time on the
    /// model's clock; the launcher looks at the line again then.
    fn next_change(&self) -> Option<std::time::Duration> {
        None
    }
}

/// The 32-bit register an access of `width` at `offset` falls in, for the ARM peripherals
/// (PL011, PL031) whose registers are 32 bits apart and also allow narrower accesses at the
/// register's address. `None` for accesses outside `size` or not at a register's address.
fn arm_register(offset: u64, width: Width, size: u64) -> Option<usize> {
    let end = offset.checked_add(width.bytes() as u64)?;
    (offset % 4 == 0 && end <= size)
        .then_some(offset)
        .and_then(|offset| usize::try_from(offset).ok())
}

/// A UART model's transmitted byte to its output stream, flushed (a console shows it at once);
/// an output error is logged, not the model's concern.
fn emit(output: &mut (dyn std::io::Write + Send), byte: u8, model: &str) {
    if let Err(error) = output.write_all(&[byte]).and_then(|()| output.flush()) {
        log::debug!("{model}: output stream: {error}");
    }
}

/// The low `width` bytes of `value`.
fn truncate(value: u32, width: Width) -> u32 {
    value & width.all_ones()
}

/// The PrimeCell identification registers at 0xFE0..0x1000 shared by ARM peripherals: four
/// peripheral id bytes, then the four PrimeCell id bytes.
fn primecell_id(offset: usize, peripheral_id: [u8; 4]) -> Option<u32> {
    const CELL_ID: [u8; 4] = [0x0d, 0xf0, 0x05, 0xb1];
    let index = offset.checked_sub(0xfe0)? / 4;
    let byte = match index {
        0..=3 => peripheral_id.get(index),
        _ => CELL_ID.get(index.checked_sub(4)?),
    };
    byte.map(|byte| u32::from(*byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dma_buffer_refuses_ranges_outside_it() {
        let mut memory = DmaBuffer::new(0x1000, 16);
        memory.write(0x1004, &[1, 2, 3]).unwrap();
        let mut buf = [0; 4];
        memory.read(0x1003, &mut buf).unwrap();
        assert_eq!(buf, [0, 1, 2, 3]);
        assert_eq!(
            memory.read(0xfff, &mut buf),
            Err(DmaError {
                paddr: 0xfff,
                len: 4
            })
        );
        assert_eq!(
            memory.write(0x100e, &[0; 4]),
            Err(DmaError {
                paddr: 0x100e,
                len: 4
            })
        );
        assert!(memory.read(u64::MAX, &mut buf).is_err());
        assert_eq!(NoDma.read(0, &mut buf), Err(DmaError { paddr: 0, len: 4 }));
    }

    #[test]
    fn arm_registers_allow_narrow_accesses_at_the_register_address_only() {
        assert_eq!(arm_register(0x18, Width::U8, 0x1000), Some(0x18));
        assert_eq!(arm_register(0x19, Width::U8, 0x1000), None);
        assert_eq!(arm_register(0xffc, Width::U32, 0x1000), Some(0xffc));
        assert_eq!(arm_register(0x1000, Width::U32, 0x1000), None);
        assert_eq!(arm_register(u64::MAX - 1, Width::U32, 0x1000), None);
        assert_eq!(primecell_id(0xfe4, [1, 2, 3, 4]), Some(2));
        assert_eq!(primecell_id(0xffc, [1, 2, 3, 4]), Some(0xb1));
        assert_eq!(primecell_id(0x1000, [1, 2, 3, 4]), None);
        assert_eq!(primecell_id(0xfdc, [1, 2, 3, 4]), None);
    }
}
