//! Views of a shared memory region mapped by the platform (a Microkit memory region, or shared
//! memory on the host platform). The only `unsafe` of the crate.
#![allow(
    unsafe_code,
    reason = "turning a mapped region into atomics needs a raw pointer"
)]

use crate::sync::AtomicU32;

/// The words of a ring region at `base`, `bytes` long.
///
/// Returns `None` if `base` is null or not 4-byte aligned.
///
/// # Safety
/// `base..base + bytes` must be mapped readable and writable for the rest of the program
/// (Microkit maps regions for the PD's lifetime and never unmaps them), and every access to it,
/// by this PD and by the peer, must be an atomic 32-bit access — which is how the rings of this
/// crate access it. The peer may write anything at any time: every bit pattern is a valid
/// `AtomicU32`, and the ring validates what it reads.
#[must_use]
pub unsafe fn ring_words(base: *mut u8, bytes: usize) -> Option<&'static [AtomicU32]> {
    if base.is_null() || base.align_offset(core::mem::align_of::<AtomicU32>()) != 0 {
        return None;
    }
    // SAFETY: the pointer is non-null and aligned (checked above); the caller guarantees the
    // range is mapped for 'static and only accessed atomically, and AtomicU32 has the size and
    // alignment of u32 with every bit pattern valid.
    Some(unsafe {
        core::slice::from_raw_parts(
            base.cast::<AtomicU32>(),
            bytes / core::mem::size_of::<u32>(),
        )
    })
}
