//! DMA memory for Warden's virtio drivers: a page pool over the PD's DMA region (a memory
//! region of the system description whose physical address the PD learns from
//! `<setvar region_paddr>`), and [`VirtioHal`], `virtio-drivers`' `Hal` over it.
//!
//! Virtqueues are allocated from the pool. Buffers the driver passes to `virtio-drivers`
//! (`read_blocks(&mut buf)`) live in the PD's ordinary memory, which the device cannot reach
//! (on the host platform: which is not shared with the launcher's device model; on seL4:
//! whose physical address the PD does not know), so `share` copies them into a bounce page
//! of the pool and `unshare` copies the device's answer back: what a swiotlb does.
//!
//! `Hal`'s functions have no `self`, so the pool is a static; a PD has one thread and calls
//! it from one entry point at a time. The pool has 256 pages at most (1 MiB).
#![no_std]
#![deny(unsafe_code)]

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

const WORDS: usize = 4;
/// Pages the pool can manage.
pub const MAX_PAGES: usize = WORDS * 64;

static VADDR: AtomicUsize = AtomicUsize::new(0);
static PADDR: AtomicU64 = AtomicU64::new(0);
static PAGES: AtomicUsize = AtomicUsize::new(0);
/// Bit n set: page n is in use.
static USED: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];

/// Why the pool could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolError {
    /// The region is not page-aligned, or empty.
    Unaligned,
}

/// Gives the pool the DMA region at `vaddr` (this PD's mapping) and `paddr` (the device's
/// view), `size` bytes; pages past [`MAX_PAGES`] are not used. Forgets earlier allocations
/// (call it once, in `init`).
///
/// # Errors
/// [`PoolError::Unaligned`] for a region that is not whole pages at page-aligned addresses.
pub fn init(vaddr: u64, paddr: u64, size: u64) -> Result<(), PoolError> {
    let page = PAGE_SIZE as u64;
    if size < page || vaddr % page != 0 || paddr % page != 0 {
        return Err(PoolError::Unaligned);
    }
    let vaddr = usize::try_from(vaddr).map_err(|_| PoolError::Unaligned)?;
    let pages = usize::try_from(size / page).map_or(MAX_PAGES, |pages| pages.min(MAX_PAGES));
    VADDR.store(vaddr, Ordering::Relaxed);
    PADDR.store(paddr, Ordering::Relaxed);
    PAGES.store(pages, Ordering::Relaxed);
    for word in &USED {
        word.store(0, Ordering::Relaxed);
    }
    Ok(())
}

fn used(page: usize) -> bool {
    USED.get(page / 64)
        .is_some_and(|word| word.load(Ordering::Relaxed) & (1 << (page % 64)) != 0)
}

fn mark(first: usize, count: usize, in_use: bool) {
    for page in first..first + count {
        if let Some(word) = USED.get(page / 64) {
            let bit = 1 << (page % 64);
            if in_use {
                word.fetch_or(bit, Ordering::Relaxed);
            } else {
                word.fetch_and(!bit, Ordering::Relaxed);
            }
        }
    }
}

/// Allocates `count` contiguous zeroed pages; their first page's index.
fn allocate(count: usize) -> Option<usize> {
    let pages = PAGES.load(Ordering::Relaxed);
    if count == 0 || count > pages {
        return None;
    }
    let first =
        (0..=pages - count).find(|first| (*first..first + count).all(|page| !used(page)))?;
    mark(first, count, true);
    Some(first)
}

/// Pages in use (for tests and the log).
#[must_use]
pub fn pages_in_use() -> usize {
    USED.iter()
        .map(|word| word.load(Ordering::Relaxed).count_ones() as usize)
        .sum()
}

fn page_paddr(page: usize) -> PhysAddr {
    PADDR.load(Ordering::Relaxed) + (page * PAGE_SIZE) as u64
}

fn page_vaddr(page: usize) -> usize {
    VADDR.load(Ordering::Relaxed) + page * PAGE_SIZE
}

fn page_of(paddr: PhysAddr) -> Option<usize> {
    let offset = paddr.checked_sub(PADDR.load(Ordering::Relaxed))?;
    usize::try_from(offset / PAGE_SIZE as u64).ok()
}

/// The pool has run out: a driver needs more DMA memory than its region holds, which is a
/// mistake in the system description. `Hal::dma_alloc` has no way to fail, so the PD stops.
fn exhausted(pages: usize) -> ! {
    #[allow(clippy::panic, reason = "Hal::dma_alloc cannot fail; the PD faults")]
    {
        panic!(
            "dma: no {pages} free contiguous pages in the DMA region ({} of {} in use)",
            pages_in_use(),
            PAGES.load(Ordering::Relaxed)
        )
    }
}

/// `virtio-drivers`' `Hal` over the pool.
pub struct VirtioHal;

#[allow(unsafe_code)]
// SAFETY (the trait's implementation requirements): `dma_alloc` returns pages of the PD's DMA
// region, mapped for the PD's whole life, page-aligned, zeroed, not handed out twice until
// `dma_dealloc` (the bitmap); `share` returns the physical address of a pool page that holds
// the buffer's bytes, and `unshare` copies back and frees it.
unsafe impl Hal for VirtioHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let Some(first) = allocate(pages) else {
            exhausted(pages)
        };
        let vaddr = page_vaddr(first);
        let pointer = vaddr as *mut u8;
        // SAFETY: the pages are inside the DMA region mapped rw at VADDR (init), and are now
        // this allocation's alone (the bitmap).
        unsafe { core::ptr::write_bytes(pointer, 0, pages * PAGE_SIZE) };
        let Some(pointer) = NonNull::new(pointer) else {
            exhausted(pages)
        };
        (page_paddr(first), pointer)
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        match page_of(paddr) {
            Some(first) => {
                mark(first, pages, false);
                0
            }
            None => -1,
        }
    }

    unsafe fn mmio_phys_to_virt(_paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        // Only the PCI transport asks; Warden's virtio drivers use virtio-mmio, whose registers
        // they reach through `warden-registers`.
        #[allow(clippy::panic, reason = "unreachable with the virtio-mmio transport")]
        {
            panic!("dma: mmio_phys_to_virt is for the PCI transport, which Warden does not use")
        }
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let length = buffer.len();
        let pages = length.div_ceil(PAGE_SIZE).max(1);
        let Some(first) = allocate(pages) else {
            exhausted(pages)
        };
        let bounce = page_vaddr(first) as *mut u8;
        // SAFETY: the caller guarantees `buffer` is valid for `length` bytes and not accessed
        // meanwhile; the bounce pages are ours (just allocated), mapped, and `length` bytes
        // long at least; the two do not overlap (the buffer is not in the pool).
        unsafe {
            if direction == BufferDirection::DeviceToDriver {
                core::ptr::write_bytes(bounce, 0, length);
            } else {
                core::ptr::copy_nonoverlapping(buffer.as_ptr().cast::<u8>(), bounce, length);
            }
        }
        page_paddr(first)
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let Some(first) = page_of(paddr) else {
            return;
        };
        let length = buffer.len();
        if direction != BufferDirection::DriverToDevice {
            // SAFETY: `paddr` came from `share` for this buffer (the caller's guarantee): the
            // bounce pages hold `length` bytes and the buffer is valid for them.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    page_vaddr(first) as *const u8,
                    buffer.as_ptr().cast::<u8>(),
                    length,
                );
            }
        }
        mark(first, length.div_ceil(PAGE_SIZE).max(1), false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_hands_out_contiguous_pages_and_takes_them_back() {
        init(0x10_0000, 0x4000_0000, 8 * PAGE_SIZE as u64).unwrap();
        let first = allocate(3).unwrap();
        let second = allocate(4).unwrap();
        assert_eq!((first, second), (0, 3));
        assert_eq!(allocate(2), None, "one page left");
        assert_eq!(page_paddr(second), 0x4000_3000);
        mark(first, 3, false);
        assert_eq!(allocate(2), Some(0), "freed pages are reused");
        assert_eq!(pages_in_use(), 6);
        assert_eq!(page_of(0x4000_3000), Some(3));
        assert_eq!(page_of(0x3fff_f000), None);
        assert_eq!(
            init(0x10_0001, 0x4000_0000, 0x1000),
            Err(PoolError::Unaligned)
        );
    }
}
