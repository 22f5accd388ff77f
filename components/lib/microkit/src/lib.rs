//! The Microkit API Warden's protection domains are written against, in the shape of
//! rust-sel4's `sel4-microkit`: a PD is `init() -> impl Handler`; the handler's entry points are
//! `notified`, `protected` and `fault`; channels can `notify`, `irq_ack` and `pp_call`.
//!
//! PD crates never ask which platform they run on: the build target chooses the backend. On
//! Linux (the host platform, any target with an OS) the backend in `host` talks to the
//! `warden-host` launcher, which plays the Microkit kernel's slow path, and signals and calls
//! its peers directly over the channel handles the launcher gives it. On bare metal
//! (`target_os = "none"`, the seL4 Microkit) the backend in `sel4` calls libmicrokit through a
//! small C shim (`src/sel4/shim.c`, compiled by `build.rs` against the SDK's `microkit.h`).
//!
//! A PD crate is a `no_std` + `alloc` library holding its handler, and a two-line binary:
//!
//! ```ignore
//! #![cfg_attr(target_os = "none", no_std, no_main)]
//! warden_microkit::protection_domain!(my_pd::init);
//! ```
//!
//! which becomes `fn main` on the host and the `init` entry point on seL4. Shared memory
//! regions are reached with [`memory_region_words!`], which reads the `setvar_vaddr` and
//! `setvar_size` symbols the Microkit tool patches (on the host: what the launcher passes).
//!
//! # What a restarted PD can rely on
//! `microkit_pd_restart` writes only the program counter: memory, `.data` and `.bss` are not
//! restored. Warden's `Child::restart` writes the PC (`_start`) *and* the stack pointer (the top
//! of the PD's stack, below the IPC-buffer guard page), so a restarted PD starts on a fresh
//! stack rather than below the frame it faulted in. The runtime then re-initialises what it
//! owns: the old handler is abandoned (not dropped: its memory is about to be reused), the PD's
//! heap is reset to empty, and `init` builds a new handler. A PD must therefore keep all of its
//! state in its handler (no `static` state of its own), and must take up its side of shared
//! memory again in `init`: shared regions keep their contents (Warden's rings continue from the
//! head and tail indices stored in the region). On the host platform a restart starts a new
//! process, which gives the same guarantees and more.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod device;
#[cfg(not(target_os = "none"))]
mod host;
#[cfg(not(target_os = "none"))]
pub mod host_protocol;
pub mod log_line;
#[cfg(not(target_os = "none"))]
mod mapping;
#[cfg(target_os = "none")]
#[doc(hidden)]
pub mod sel4;
pub mod system_timer;
pub mod trace;

#[cfg(not(target_os = "none"))]
use host as backend;
#[cfg(target_os = "none")]
use sel4 as backend;

pub use device::{DeviceRegion, DeviceRegisters};
#[cfg(not(target_os = "none"))]
pub use host::{run, HostError};
pub use warden_registers::{Registers, Width};

/// Declares a protection domain: `protection_domain!(path::to::init)`, where `init` returns
/// the PD's [`Handler`]. On the host it defines `fn main`, which connects to `warden-host`; on
/// seL4 it defines the `init` entry point libmicrokit calls (and calls again after a restart).
/// The binary crate must be `#![cfg_attr(target_os = "none", no_std, no_main)]`.
#[macro_export]
macro_rules! protection_domain {
    ($init:path) => {
        #[cfg(not(target_os = "none"))]
        fn main() {
            if let Err(error) = $crate::run($init) {
                ::std::eprintln!("{error}");
                ::std::process::exit(1);
            }
        }

        /// The Microkit `init` entry point: builds this PD's handler.
        #[cfg(target_os = "none")]
        #[no_mangle]
        pub extern "C" fn init() {
            $crate::sel4::start($init);
        }
    };
}

/// The shared memory region this PD maps with `setvar_vaddr="VADDR" setvar_size="SIZE"`, as
/// 32-bit words (for Warden's rings): `memory_region_words!(VADDR, SIZE)` evaluates to
/// `Option<&'static [AtomicU32]>`, `None` if the system description gives no such map (or an
/// unaligned one). On seL4 the macro defines the two 8-byte symbols the Microkit tool patches
/// (the tool refuses a system whose setvar symbols are missing from the ELF); on the host the
/// launcher passes the same values by name.
#[macro_export]
macro_rules! memory_region_words {
    ($vaddr:ident, $size:ident) => {{
        #[cfg(target_os = "none")]
        let region = $crate::sel4::region_words($crate::setvar!($vaddr), $crate::setvar!($size));
        #[cfg(not(target_os = "none"))]
        let region = $crate::memory_region_words(::core::stringify!($vaddr));
        region
    }};
}

/// A region this PD maps with `setvar_vaddr="VADDR" setvar_size="SIZE"` and whose physical
/// address a `<setvar symbol="PADDR" region_paddr="..."/>` gives: `device_region!(VADDR, SIZE,
/// PADDR)` evaluates to `Option<DeviceRegion>` (`None` if the description gives no such map).
/// Used for device memory (`phys_addr` regions) and for DMA memory, whose physical addresses
/// a device is given.
#[macro_export]
macro_rules! device_region {
    ($vaddr:ident, $size:ident, $paddr:ident) => {
        $crate::DeviceRegion::new(
            $crate::setvar!($vaddr),
            $crate::setvar!($size),
            $crate::setvar!($paddr),
        )
    };
}

/// The value the system description gives the symbol `NAME` (a `setvar_vaddr`, `setvar_size`
/// or `<setvar region_paddr>`): `setvar!(NAME)` evaluates to a `u64`, 0 when it is not set. On
/// seL4 the macro defines the 8-byte variable the Microkit tool patches, under that symbol (the
/// tool refuses a system whose setvar symbols are missing from the ELF; each symbol may be
/// named once per PD); on the host the launcher passes the same values by name.
#[macro_export]
macro_rules! setvar {
    ($name:ident) => {{
        #[cfg(target_os = "none")]
        let value = {
            #[no_mangle]
            #[used]
            #[link_section = ".data"]
            #[allow(non_upper_case_globals)]
            static $name: $crate::sel4::PatchedVariable = $crate::sel4::PatchedVariable::new();
            $name.get()
        };
        #[cfg(not(target_os = "none"))]
        let value = $crate::setvar(::core::stringify!($name)).unwrap_or(0);
        value
    }};
}

/// Highest channel id.
pub const MAX_CHANNEL: u8 = 61;

/// A channel (or IRQ) id of this PD, 0–61.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel(u8);

impl Channel {
    /// The channel with this id; `None` above 61.
    #[must_use]
    pub const fn try_new(index: u8) -> Option<Self> {
        if index <= MAX_CHANNEL {
            Some(Self(index))
        } else {
            None
        }
    }

    /// The channel with this id (ids come from the system description and are constants).
    ///
    /// # Panics
    /// Above 61 — at compile time when used in a constant.
    #[must_use]
    #[allow(
        clippy::panic,
        reason = "channel ids are compile-time constants of the system"
    )]
    pub const fn new(index: u8) -> Self {
        match Self::try_new(index) {
            Some(channel) => channel,
            None => panic!("Microkit channel ids are 0-61"),
        }
    }

    /// The id.
    #[must_use]
    pub const fn index(self) -> u8 {
        self.0
    }

    /// `microkit_notify`: signal the PD at the other end.
    pub fn notify(self) {
        backend::notify(self);
    }

    /// `microkit_irq_ack`: unmask this IRQ channel.
    pub fn irq_ack(self) {
        backend::irq_ack(self);
    }

    /// `microkit_ppcall`: call the PD at the other end; blocks until its `protected` returns.
    #[must_use]
    pub fn pp_call(self, message: MessageInfo) -> MessageInfo {
        backend::pp_call(self, message)
    }
}

/// The channels delivered together to one `notified` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ChannelSet(u64);

impl ChannelSet {
    /// The set with these bits (bit n = channel n).
    #[must_use]
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits & ((1 << (MAX_CHANNEL + 1)) - 1))
    }

    /// The bits.
    #[must_use]
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Does it hold `channel`?
    #[must_use]
    pub const fn contains(self, channel: Channel) -> bool {
        self.0 & (1 << channel.0) != 0
    }

    /// The channels, lowest first.
    pub fn iter(self) -> impl Iterator<Item = Channel> {
        (0..=MAX_CHANNEL)
            .filter(move |index| self.0 & (1 << index) != 0)
            .map(Channel)
    }
}

/// A child PD's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Child(u8);

impl Child {
    /// The child with this id.
    #[must_use]
    pub const fn new(index: u8) -> Self {
        Self(index)
    }

    /// The id.
    #[must_use]
    pub const fn index(self) -> u8 {
        self.0
    }

    /// `microkit_pd_restart`: run the child's `init` again on a fresh stack. Memory is not
    /// restored; see the crate docs for what a restarted PD can rely on.
    pub fn restart(self) {
        backend::restart(self);
    }

    /// `microkit_pd_stop`: stop the child for good.
    pub fn stop(self) {
        backend::stop(self);
    }
}

/// A message info: label (52 bits) and message-register count (7 bits), packed as seL4 packs
/// `seL4_MessageInfo_t` (label in bits 63–12, count in bits 6–0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct MessageInfo {
    label: u64,
    count: u8,
}

impl MessageInfo {
    /// Highest label.
    pub const MAX_LABEL: u64 = (1 << 52) - 1;
    /// Highest register count.
    pub const MAX_COUNT: u8 = 120;

    /// A message info; the label is cut to 52 bits and the count to 120, as the kernel would.
    #[must_use]
    pub const fn new(label: u64, count: u8) -> Self {
        Self {
            label: label & Self::MAX_LABEL,
            count: if count > Self::MAX_COUNT {
                Self::MAX_COUNT
            } else {
                count
            },
        }
    }

    /// The label.
    #[must_use]
    pub const fn label(self) -> u64 {
        self.label
    }

    /// Message registers used.
    #[must_use]
    pub const fn count(self) -> u8 {
        self.count
    }

    /// The seL4 word.
    #[must_use]
    pub const fn to_word(self) -> u64 {
        (self.label << 12) | self.count as u64
    }

    /// From an seL4 word (the capability fields are ignored).
    #[must_use]
    pub const fn from_word(word: u64) -> Self {
        Self::new(word >> 12, (word & 0x7f) as u8)
    }
}

/// Message register `index` (0–119) of this PD's IPC buffer.
#[must_use]
pub fn get_mr(index: usize) -> u64 {
    backend::get_mr(index)
}

/// Sets message register `index` (0–119); out-of-range indices are ignored.
pub fn set_mr(index: usize, value: u64) {
    backend::set_mr(index, value);
}

/// The memory region mapped with `setvar_vaddr="symbol"`, as shared bytes (`None` if this PD
/// has no such map). Accesses are atomic: the region is shared with other PDs. Host only: PD
/// code uses [`memory_region_words!`], which works on both platforms.
#[cfg(not(target_os = "none"))]
#[must_use]
pub fn memory_region(symbol: &str) -> Option<&'static [core::sync::atomic::AtomicU8]> {
    mapping::memory_region(symbol)
}

/// The memory region mapped with `setvar_vaddr="symbol"`, as shared 32-bit words (for rings).
/// Host only: PD code uses [`memory_region_words!`].
#[cfg(not(target_os = "none"))]
#[must_use]
pub fn memory_region_words(symbol: &str) -> Option<&'static [core::sync::atomic::AtomicU32]> {
    mapping::memory_region_words(symbol)
}

/// The value the system description patches into `symbol` (`setvar_vaddr`, `setvar_size`).
/// Host only.
#[cfg(not(target_os = "none"))]
#[must_use]
pub fn setvar(symbol: &str) -> Option<u64> {
    mapping::setvar(symbol)
}

/// A PD's event handler: what `init` returns.
pub trait Handler {
    /// Error an entry point may return; it stops the PD like a fault.
    type Error: core::fmt::Display;

    /// Some channels were signalled.
    ///
    /// # Errors
    /// Whatever the PD considers fatal.
    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        let _ = channels;
        Err(unexpected("notification"))
    }

    /// A protected procedure call on `channel`; the reply's registers are set with `set_mr`.
    ///
    /// # Errors
    /// Whatever the PD considers fatal.
    fn protected(
        &mut self,
        channel: Channel,
        message: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        let _ = (channel, message);
        Err(unexpected("protected procedure call"))
    }

    /// The host platform's launcher injects a fault into this PD (its `inject` control
    /// command, which the soak uses). Never called on seL4. The default ignores it.
    ///
    /// # Errors
    /// Whatever the PD considers fatal.
    fn inject(&mut self, fault: InjectedFault) -> Result<(), Self::Error> {
        let _ = fault;
        Ok(())
    }

    /// A child faulted; `Some` resumes it (on the host: restarts it), `None` leaves it stopped
    /// until [`Child::restart`] or [`Child::stop`].
    ///
    /// # Errors
    /// Whatever the PD considers fatal.
    fn fault(
        &mut self,
        child: Child,
        message: MessageInfo,
    ) -> Result<Option<MessageInfo>, Self::Error> {
        let _ = (child, message);
        Err(unexpected("fault"))
    }
}

/// A fault the host platform's launcher injects into a PD ([`Handler::inject`]); killing a PD
/// needs no help from it (the launcher kills its process).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InjectedFault {
    /// Hang in the next callback (or now, if none is coming).
    Hang,
    /// Panic in the next probe (or now).
    Panic,
    /// Write a malformed slot to a ring the PD produces, then go on.
    Corrupt,
    /// Notify a peer in a tight loop.
    Flood,
}

impl InjectedFault {
    /// The fault's code on the host platform's wire.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::Hang => 1,
            Self::Panic => 2,
            Self::Corrupt => 3,
            Self::Flood => 4,
        }
    }

    /// The fault with this code.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Hang),
            2 => Some(Self::Panic),
            3 => Some(Self::Corrupt),
            4 => Some(Self::Flood),
            _ => None,
        }
    }
}

/// This PD's life: 1 at its first start, one more at each restart (on seL4 a counter the
/// runtime keeps across `microkit_pd_restart`, which leaves memory as it was; on the host the
/// launcher's count of the process it started).
#[must_use]
pub fn incarnation() -> u32 {
    backend::incarnation()
}

/// Writes `line` to the debug console as one line, made safe to print
/// ([`log_line::sanitise`]): what the log printer PD does with the lines it is sent. PDs log
/// with the `log` crate; its records reach the console whole on both platforms.
pub fn print_line(line: &[u8]) {
    backend::print_line(line);
}

/// Stops this PD with a fault, saying why: for a PD that cannot run at all (its system
/// description lacks a region it needs, say). The message goes to the debug console and the
/// fault to the PD's parent, on both platforms (a panic is a fault).
pub fn fatal(why: core::fmt::Arguments<'_>) -> ! {
    #[allow(
        clippy::panic,
        reason = "a PD that cannot run faults, and its parent decides what follows"
    )]
    {
        panic!("{why}")
    }
}

/// The default entry points fail on purpose, as libmicrokit's weak defaults do.
fn unexpected<E>(what: &str) -> E {
    #[allow(
        clippy::panic,
        reason = "an unexpected entry is a fault of the PD, as in libmicrokit"
    )]
    {
        panic!("unexpected {what}: this PD does not handle it")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use alloc::vec::Vec;

    #[test]
    fn channel_sets_iterate_in_ascending_order() {
        let set = ChannelSet::from_bits(0b1010_0001 | 1 << 61 | 1 << 63);
        let channels: Vec<u8> = set.iter().map(Channel::index).collect();
        assert_eq!(channels, [0, 5, 7, 61], "bits above 61 are not channels");
        assert!(set.contains(Channel::new(5)));
        assert!(!set.contains(Channel::new(6)));
    }

    #[test]
    fn message_info_packs_like_sel4() {
        let info = MessageInfo::new(0x0103, 53);
        assert_eq!(info.to_word(), 0x0103 << 12 | 53);
        assert_eq!(MessageInfo::from_word(info.to_word()), info);
        assert_eq!(MessageInfo::new(u64::MAX, 200).count(), 120);
        assert_eq!(
            MessageInfo::new(u64::MAX, 0).label(),
            MessageInfo::MAX_LABEL
        );
    }

    #[test]
    fn channel_ids_are_checked() {
        assert!(Channel::try_new(61).is_some());
        assert!(Channel::try_new(62).is_none());
    }
}
