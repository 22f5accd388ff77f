//! The seL4 backend: libmicrokit runs the event loop and calls the C entry points `init`,
//! `notified`, `protected` and `fault`; they land here and call the PD's [`Handler`]. The
//! Microkit API itself (notify, irq_ack, ppcall, message registers, restart, stop) is reached
//! through `shim.c`, because `microkit.h` defines it as static inline functions.
//!
//! Differences from the host platform a PD may notice: libmicrokit calls `notified` once per
//! signalled channel (lowest first), so a `ChannelSet` here always holds one channel; on the
//! host the launcher delivers the coalesced set at once. Both are allowed by the Microkit's
//! semantics (a handler must accept any set).
//!
//! This module and `shim.c` are the crate's `unsafe` on seL4: FFI calls, the handler cell the
//! entry points share, the heap, reading the tool-patched variables, and the panic trap. Each
//! block says why it is sound.
#![allow(unsafe_code, reason = "the FFI boundary with libmicrokit")]

use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::{Channel, ChannelSet, Child, Handler, MessageInfo};

/// Where `_start` is: `microkit.ld` links `.text.start` (crt0's `_start`) first, at 0x200000.
const ENTRY_POINT: u64 = 0x20_0000;

/// Bytes of heap each PD has for its handler (`alloc`); reset on every `init`.
pub const HEAP_BYTES: usize = 1 << 20;

mod ffi {
    extern "C" {
        pub(super) static microkit_name: [u8; 64];
        pub(super) static microkit_pps: u64;
        pub(super) fn microkit_dbg_putc(character: i32);
        pub(super) fn warden_notify(channel: u32);
        pub(super) fn warden_irq_ack(channel: u32);
        pub(super) fn warden_ppcall(channel: u32, info: u64) -> u64;
        pub(super) fn warden_mr_get(index: u32) -> u64;
        pub(super) fn warden_mr_set(index: u32, value: u64);
        pub(super) fn warden_pd_restart(child: u32, entry_point: u64) -> u64;
        pub(super) fn warden_pd_stop(child: u32);
    }
}

/// `seL4_MessageInfo_t`: one word, passed in a register like a `u64`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RawMessageInfo {
    word: u64,
}

pub(crate) fn notify(channel: Channel) {
    // SAFETY: a plain system call wrapper; libmicrokit checks the channel against the PD's
    // patched notification mask and refuses (with a debug message) one it may not signal.
    unsafe { ffi::warden_notify(u32::from(channel.index())) }
}

pub(crate) fn irq_ack(channel: Channel) {
    // SAFETY: as `notify`, against the PD's IRQ mask.
    unsafe { ffi::warden_irq_ack(u32::from(channel.index())) }
}

pub(crate) fn pp_call(channel: Channel, message: MessageInfo) -> MessageInfo {
    // SAFETY: seL4_Call on the channel's endpoint cap; the registers travel in the IPC buffer,
    // which libmicrokit set up. An invalid channel is refused by the shim's checks.
    let reply = unsafe { ffi::warden_ppcall(u32::from(channel.index()), message.to_word()) };
    MessageInfo::from_word(reply)
}

pub(crate) fn get_mr(index: usize) -> u64 {
    match u32::try_from(index) {
        // SAFETY: reads the IPC buffer's message register, bounds-checked first.
        Ok(index) if index < u32::from(MessageInfo::MAX_COUNT) => unsafe {
            ffi::warden_mr_get(index)
        },
        _ => 0,
    }
}

pub(crate) fn set_mr(index: usize, value: u64) {
    if let Ok(index) = u32::try_from(index) {
        if index < u32::from(MessageInfo::MAX_COUNT) {
            // SAFETY: writes the IPC buffer's message register, bounds-checked first.
            unsafe { ffi::warden_mr_set(index, value) }
        }
    }
}

pub(crate) fn restart(child: Child) {
    // SAFETY: TCB_WriteRegisters on the child's TCB cap (PC and SP), resuming it; the Microkit
    // gives a parent that cap for each of its children.
    let error = unsafe { ffi::warden_pd_restart(u32::from(child.index()), ENTRY_POINT) };
    if error != 0 {
        log::error!("restarting child {}: seL4 error {error}", child.index());
    }
}

pub(crate) fn stop(child: Child) {
    // SAFETY: TCB_Suspend on the child's TCB cap.
    unsafe { ffi::warden_pd_stop(u32::from(child.index())) }
}

/// An 8-byte variable the Microkit tool patches in the ELF (`setvar_vaddr`, `setvar_size`).
/// Used by [`crate::memory_region_words!`], which places it in `.data` under its symbol name.
#[repr(transparent)]
pub struct PatchedVariable(UnsafeCell<u64>);

// SAFETY: the value is written once, by the tool, before the PD runs; the PD only reads it.
unsafe impl Sync for PatchedVariable {}

impl PatchedVariable {
    /// Zero until patched.
    #[must_use]
    pub const fn new() -> Self {
        Self(UnsafeCell::new(0))
    }

    /// The patched value (a volatile read, so the compiler cannot fold the zero initialiser).
    #[must_use]
    pub fn get(&self) -> u64 {
        // SAFETY: the pointer is to this live, aligned static; nothing writes it at run time.
        unsafe { self.0.get().read_volatile() }
    }
}

impl Default for PatchedVariable {
    fn default() -> Self {
        Self::new()
    }
}

/// The region at `vaddr` of `size` bytes, as words; `None` when unpatched or unaligned.
#[must_use]
pub fn region_words(vaddr: u64, size: u64) -> Option<&'static [AtomicU32]> {
    let length = usize::try_from(size / 4).ok()?;
    if vaddr == 0 || vaddr % 0x1000 != 0 || size == 0 || size % 4 != 0 {
        return None;
    }
    // SAFETY: the tool patched `vaddr`/`size` from one of this PD's maps: the region is mapped
    // there, `size` bytes long, for the PD's whole life (maps never change at run time). It is
    // page-aligned (checked), shared with other PDs, and only accessed through atomics, which
    // accept every bit pattern.
    Some(unsafe { core::slice::from_raw_parts(vaddr as *const AtomicU32, length) })
}

/// The PD's handler behind the C entry points, with the handler's error type erased.
trait EntryPoints {
    fn notified(&mut self, channels: ChannelSet) -> bool;
    fn protected(&mut self, channel: Channel, message: MessageInfo) -> Option<MessageInfo>;
    fn fault(&mut self, child: Child, message: MessageInfo) -> Option<Option<MessageInfo>>;
}

impl<H: Handler> EntryPoints for H {
    fn notified(&mut self, channels: ChannelSet) -> bool {
        Handler::notified(self, channels)
            .map_err(|error| log::error!("notified: {error}"))
            .is_ok()
    }

    fn protected(&mut self, channel: Channel, message: MessageInfo) -> Option<MessageInfo> {
        Handler::protected(self, channel, message)
            .map_err(|error| log::error!("protected: {error}"))
            .ok()
    }

    fn fault(&mut self, child: Child, message: MessageInfo) -> Option<Option<MessageInfo>> {
        Handler::fault(self, child, message)
            .map_err(|error| log::error!("fault: {error}"))
            .ok()
    }
}

/// The handler `init` built, used by the other entry points.
struct HandlerCell(UnsafeCell<Option<Box<dyn EntryPoints>>>);

// SAFETY: a PD has one thread, and libmicrokit runs one entry point at a time and never nests
// them (a PPC the handler makes blocks this thread until the reply). The cell is only touched
// by the entry points below, one access at a time.
unsafe impl Sync for HandlerCell {}

static HANDLER: HandlerCell = HandlerCell(UnsafeCell::new(None));

fn with_handler<R>(entry: impl FnOnce(&mut dyn EntryPoints) -> R) -> Option<R> {
    // SAFETY: see `HandlerCell`: no other reference to the cell's contents exists while an
    // entry point runs.
    let slot = unsafe { &mut *HANDLER.0.get() };
    slot.as_deref_mut().map(entry)
}

/// The heap behind `alloc`.
#[global_allocator]
static ALLOCATOR: linked_list_allocator::LockedHeap = linked_list_allocator::LockedHeap::empty();

struct HeapMemory(UnsafeCell<[u8; HEAP_BYTES]>);

// SAFETY: only its address is taken, to give the memory to the allocator, which serialises use.
unsafe impl Sync for HeapMemory {}

static HEAP: HeapMemory = HeapMemory(UnsafeCell::new([0; HEAP_BYTES]));

/// Starts of this PD: memory survives `microkit_pd_restart`, so the count does too.
static INCARNATION: AtomicU32 = AtomicU32::new(0);

pub(crate) fn incarnation() -> u32 {
    INCARNATION.load(Ordering::Relaxed).max(1)
}

/// `init`, first start or restart: abandon the old handler, empty the heap, build a new one.
#[doc(hidden)]
pub fn start<H: Handler + 'static>(init: impl FnOnce() -> H) {
    INCARNATION.fetch_add(1, Ordering::Relaxed);
    // SAFETY: `init` is an entry point (see `HandlerCell`). After a restart the cell may hold
    // the handler of the previous life: it is forgotten, not dropped, because its heap is about
    // to be reset and nothing else points into that heap (the runtime keeps no other heap
    // objects, and a PD keeps its state in its handler).
    let slot = unsafe { &mut *HANDLER.0.get() };
    core::mem::forget(slot.take());
    // SAFETY: HEAP is a static array used for nothing else; after the forget above no live
    // object is allocated in it, so handing the whole of it to an empty heap aliases nothing.
    unsafe {
        let mut heap = ALLOCATOR.lock();
        *heap = linked_list_allocator::Heap::empty();
        heap.init(HEAP.0.get().cast::<u8>(), HEAP_BYTES);
    }
    if log::set_logger(&DEBUG_CONSOLE).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    *slot = Some(Box::new(init()));
}

/// Ends the PD with a fault its parent receives (a user exception, label 3): an undefined
/// instruction. If the parent resumes it, it faults again.
fn crash() -> ! {
    loop {
        // SAFETY: `udf` raises an undefined-instruction exception and touches no memory; seL4
        // turns it into a fault message to the PD's parent (or the monitor).
        unsafe { core::arch::asm!("udf #0") }
    }
}

/// The C entry point for a notification on `channel`.
#[no_mangle]
pub extern "C" fn notified(channel: u32) {
    let Some(channel) = u8::try_from(channel).ok().and_then(Channel::try_new) else {
        return;
    };
    let channels = ChannelSet::from_bits(1 << channel.index());
    if with_handler(|handler| handler.notified(channels)) != Some(true) {
        crash();
    }
}

/// The C entry point for a protected procedure call on `channel`.
#[no_mangle]
pub extern "C" fn protected(channel: u32, message: RawMessageInfo) -> RawMessageInfo {
    let reply = u8::try_from(channel)
        .ok()
        .and_then(Channel::try_new)
        .and_then(|channel| {
            with_handler(|handler| handler.protected(channel, MessageInfo::from_word(message.word)))
                .flatten()
        });
    match reply {
        Some(reply) => RawMessageInfo {
            word: reply.to_word(),
        },
        None => crash(),
    }
}

/// The C entry point for a fault of child `child`; returns whether to reply (resume it).
#[no_mangle]
pub extern "C" fn fault(child: u32, message: RawMessageInfo, reply: *mut RawMessageInfo) -> i8 {
    let Ok(child) = u8::try_from(child) else {
        return 0;
    };
    let outcome = with_handler(|handler| {
        handler.fault(Child::new(child), MessageInfo::from_word(message.word))
    })
    .flatten();
    match outcome {
        Some(Some(resume)) if !reply.is_null() => {
            // SAFETY: libmicrokit passes a pointer to its reply-tag variable, valid for writes.
            unsafe {
                reply.write(RawMessageInfo {
                    word: resume.to_word(),
                });
            }
            1
        }
        Some(_) => 0,
        None => crash(),
    }
}

/// The PD's name, as the tool patched it into `microkit_name`.
fn name() -> &'static str {
    // SAFETY: libmicrokit's `microkit_name`, patched by the tool before the PD runs and never
    // written afterwards.
    let bytes: &'static [u8; 64] = unsafe { &*core::ptr::addr_of!(ffi::microkit_name) };
    let length = bytes
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(bytes.len());
    bytes
        .get(..length)
        .and_then(|bytes| core::str::from_utf8(bytes).ok())
        .unwrap_or("?")
}

/// The Microkit debug console (the kernel's serial output; debug kernels only): one kernel call
/// per character.
fn put_bytes(bytes: &[u8]) {
    for &byte in bytes {
        // SAFETY: a real function of libmicrokit that prints one character.
        unsafe { ffi::microkit_dbg_putc(i32::from(byte)) }
    }
}

pub(crate) fn print_line(line: &[u8]) {
    crate::log_line::sanitise(line, |byte| put_bytes(&[byte]));
}

/// Does the system description give this PD a channel to the log printer?
fn has_log_printer() -> bool {
    // SAFETY: libmicrokit's `microkit_pps`, patched by the tool before the PD runs (bit n: the
    // PD may call on channel n) and never written afterwards.
    let calls = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(ffi::microkit_pps)) };
    calls & (1 << crate::log_line::CHANNEL.index()) != 0
}

/// One log record being formatted: cut at [`crate::log_line::MAX_LINE`] bytes.
struct Line {
    bytes: [u8; crate::log_line::MAX_LINE],
    length: usize,
}

impl Write for Line {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        let free = self.bytes.get_mut(self.length..).unwrap_or_default();
        let taken = text.len().min(free.len());
        if let (Some(to), Some(from)) = (free.get_mut(..taken), text.as_bytes().get(..taken)) {
            to.copy_from_slice(from);
        }
        self.length += taken;
        Ok(())
    }
}

/// Sends a whole line to the log printer in one call, or, for a PD without one (the printer
/// itself, or a system that has none), prints it here. The call overwrites message registers,
/// and a record may be logged between a PD's own call and its reading of the reply: the
/// registers it uses (and the four the kernel's reply rewrites) are saved and put back.
fn emit(line: &[u8]) {
    use crate::log_line::{pack, CHANNEL, PRINTED};
    if has_log_printer() {
        let mut registers = [0u64; MessageInfo::MAX_COUNT as usize];
        let info = pack(line, &mut registers);
        let used = usize::from(info.count()).max(4);
        let mut saved = [0u64; MessageInfo::MAX_COUNT as usize];
        for (index, slot) in saved.iter_mut().enumerate().take(used) {
            *slot = get_mr(index);
        }
        for (index, value) in registers.iter().enumerate().take(usize::from(info.count())) {
            set_mr(index, *value);
        }
        let reply = pp_call(CHANNEL, info);
        for (index, value) in saved.iter().enumerate().take(used) {
            set_mr(index, *value);
        }
        if reply.label() == PRINTED {
            return;
        }
    }
    print_line(line);
}

/// `log` records go to the debug console, one line each, prefixed with the PD's name as the
/// host launcher prefixes them; through the log printer when the PD has one.
struct DebugConsole;

impl log::Log for DebugConsole {
    fn enabled(&self, _metadata: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let mut line = Line {
            bytes: [0; crate::log_line::MAX_LINE],
            length: 0,
        };
        let _ = if record.level() == log::Level::Info {
            write!(line, "[{}] {}", name(), record.args())
        } else {
            write!(line, "[{}] {}: {}", name(), record.level(), record.args())
        };
        emit(line.bytes.get(..line.length).unwrap_or_default());
    }

    fn flush(&self) {}
}

static DEBUG_CONSOLE: DebugConsole = DebugConsole;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut line = Line {
        bytes: [0; crate::log_line::MAX_LINE],
        length: 0,
    };
    // One line (`PanicInfo`'s own display puts the message on a line of its own).
    let _ = match info.location() {
        Some(location) => write!(
            line,
            "[{}] panicked at {location}: {}",
            name(),
            info.message()
        ),
        None => write!(line, "[{}] panicked: {}", name(), info.message()),
    };
    emit(line.bytes.get(..line.length).unwrap_or_default());
    crash()
}
