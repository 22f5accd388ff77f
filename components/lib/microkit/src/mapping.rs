//! Memory regions on the host platform: the launcher keeps each region in a sealed memfd, hands
//! each start of a PD one descriptor per map (`ToPd::Region`, opened with the map's permissions
//! only) and tells it (`WARDEN_PD_MAPS`) where to map each and how; this module maps them at the
//! system description's virtual addresses. A region has no name in the file system, so a PD is
//! handed only the regions it maps, and the descriptor of a read-only map cannot be mapped
//! writable; it is closed once mapped (a PD that reopened it through `/proc/self/fd` first could
//! write it: the host platform's processes are one user's, see the launcher). The only `unsafe`
//! of the crate.
#![allow(
    unsafe_code,
    reason = "mapping shared memory at a fixed address needs mmap"
)]

use std::sync::atomic::AtomicU8;
use std::sync::OnceLock;

use rustix::mm::{mmap, MapFlags, ProtFlags};

/// One region mapped into this PD.
#[derive(Debug)]
struct Mapped {
    setvar: String,
    region: &'static [AtomicU8],
}

static MAPPED: OnceLock<Vec<Mapped>> = OnceLock::new();
static SETVARS: OnceLock<Vec<(String, u64)>> = OnceLock::new();

fn number(text: &str) -> Result<u64, String> {
    u64::from_str_radix(text.trim_start_matches("0x"), 16)
        .map_err(|_| format!("bad number '{text}'"))
}

/// Maps every map listed in `WARDEN_PD_MAPS` (`vaddr,size,perms,setvar;…`, numbers in hex),
/// map `n` from the descriptor `regions` gives for `n`, and records `WARDEN_PD_SETVARS`
/// (`symbol=value;…`).
pub(crate) fn map_regions(mut regions: Vec<(u16, std::os::fd::OwnedFd)>) -> Result<(), String> {
    let mut mapped = Vec::new();
    let maps = std::env::var("WARDEN_PD_MAPS").unwrap_or_default();
    for (index, entry) in maps
        .split(';')
        .filter(|entry| !entry.is_empty())
        .enumerate()
    {
        let fields: Vec<&str> = entry.split(',').collect();
        let [vaddr, size, perms, setvar] = fields[..] else {
            return Err(format!("bad map entry '{entry}'"));
        };
        let (vaddr, size) = (number(vaddr)?, number(size)?);
        let length = usize::try_from(size).map_err(|_| "map too large".to_string())?;
        let path = format!("map {index}");
        let file = regions
            .iter()
            .position(|(map, _)| usize::from(*map) == index)
            .map(|at| regions.swap_remove(at).1)
            .ok_or_else(|| format!("the launcher sent no memory for {path}"))?;
        let mut protection = ProtFlags::empty();
        for (letter, flag) in [
            ('r', ProtFlags::READ),
            ('w', ProtFlags::WRITE),
            ('x', ProtFlags::EXEC),
        ] {
            if perms.contains(letter) {
                protection |= flag;
            }
        }
        // SAFETY: FIXED_NOREPLACE maps only where nothing of this process is mapped (it fails
        // instead of replacing a mapping), so no existing Rust object is aliased or unmapped.
        // The mapping is never unmapped, so the 'static slice below stays valid; it is shared
        // with other processes, and every access to it goes through atomics.
        let address = unsafe {
            mmap(
                vaddr as *mut core::ffi::c_void,
                length,
                protection,
                MapFlags::SHARED | MapFlags::FIXED_NOREPLACE,
                &file,
                0,
            )
        }
        .map_err(|error| format!("mapping {path} at 0x{vaddr:x}: {error}"))?;
        if address as u64 != vaddr {
            return Err(format!(
                "the kernel mapped {path} at {address:?}, not 0x{vaddr:x}"
            ));
        }
        // SAFETY: the pointer is the start of a live mapping of `length` bytes (above), and
        // AtomicU8 has the layout of u8 with every bit pattern valid. A map without `r` (or
        // without `w`) is still such a mapping: an access it does not allow is a SIGSEGV, the
        // VM fault it is on seL4, never a read of memory that is not there.
        let region = unsafe { core::slice::from_raw_parts(address.cast::<AtomicU8>(), length) };
        mapped.push(Mapped {
            setvar: setvar.to_string(),
            region,
        });
    }
    let mut setvars = Vec::new();
    let text = std::env::var("WARDEN_PD_SETVARS").unwrap_or_default();
    for entry in text.split(';').filter(|entry| !entry.is_empty()) {
        let (symbol, value) = entry
            .split_once('=')
            .ok_or(format!("bad setvar '{entry}'"))?;
        setvars.push((symbol.to_string(), number(value)?));
    }
    let _ = MAPPED.set(mapped);
    let _ = SETVARS.set(setvars);
    Ok(())
}

/// The memory region whose map sets `symbol` (its `setvar_vaddr`), as bytes.
pub(crate) fn memory_region(symbol: &str) -> Option<&'static [AtomicU8]> {
    MAPPED
        .get()?
        .iter()
        .find(|mapped| mapped.setvar == symbol)
        .map(|mapped| mapped.region)
}

/// The same region as 32-bit words (for the shared-memory rings): `None` if there is no such
/// map or its size is not a multiple of 4.
pub(crate) fn memory_region_words(symbol: &str) -> Option<&'static [std::sync::atomic::AtomicU32]> {
    let bytes = memory_region(symbol)?;
    let pointer = bytes.as_ptr();
    let aligned = pointer.align_offset(core::mem::align_of::<std::sync::atomic::AtomicU32>()) == 0;
    if !aligned || bytes.len() % 4 != 0 {
        return None;
    }
    // SAFETY: the region is a live page-aligned mapping that is never unmapped (see
    // `map_regions`), the pointer is 4-aligned (checked), the length is whole words (checked),
    // and AtomicU32 accepts every bit pattern; all accesses are atomic.
    Some(unsafe {
        core::slice::from_raw_parts(
            pointer.cast::<std::sync::atomic::AtomicU32>(),
            bytes.len() / 4,
        )
    })
}

/// The value the system description gives `symbol` (`setvar_vaddr`, `setvar_size`, …).
pub(crate) fn setvar(symbol: &str) -> Option<u64> {
    SETVARS
        .get()?
        .iter()
        .find(|(name, _)| name == symbol)
        .map(|(_, value)| *value)
}

/// Maps `length` bytes of a shared-memory descriptor the launcher sent (a call slot) read-write
/// wherever the kernel chooses, as 32-bit words; the mapping lives as long as the process.
pub(crate) fn map_shared_words(
    memory: &std::os::fd::OwnedFd,
    length: usize,
) -> Result<&'static [std::sync::atomic::AtomicU32], String> {
    // SAFETY: a null address lets the kernel choose where, so no existing mapping of this
    // process is touched. The mapping is never unmapped (the 'static slice below stays valid);
    // it is shared with one other process, and every access to it goes through atomics.
    let address = unsafe {
        mmap(
            core::ptr::null_mut(),
            length,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            memory,
            0,
        )
    }
    .map_err(|error| format!("mapping a call slot: {error}"))?;
    // SAFETY: the pointer is the start of a live, page-aligned mapping of `length` bytes (above);
    // `length / 4` words fit in it, and AtomicU32 accepts every bit pattern.
    Ok(unsafe {
        core::slice::from_raw_parts(address.cast::<std::sync::atomic::AtomicU32>(), length / 4)
    })
}
