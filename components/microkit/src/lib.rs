//! The Microkit API Warden's protection domains are written against, in the shape of
//! rust-sel4's `sel4-microkit`: a PD is `init() -> impl Handler`; the handler's entry points are
//! `notified`, `protected` and `fault`; channels can `notify`, `irq_ack` and `pp_call`.
//!
//! PD crates never ask which platform they run on. On Linux (the host platform) the backend in
//! `host` talks to the `warden-host` launcher, which plays the Microkit kernel's part; the seL4
//! backend (libmicrokit) arrives with the seL4-target issue.
#![deny(unsafe_code)]

mod host;
pub mod host_protocol;
mod mapping;

pub use host::{run, HostError};

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
        host::notify(self);
    }

    /// `microkit_irq_ack`: unmask this IRQ channel.
    pub fn irq_ack(self) {
        host::irq_ack(self);
    }

    /// `microkit_ppcall`: call the PD at the other end; blocks until its `protected` returns.
    #[must_use]
    pub fn pp_call(self, message: MessageInfo) -> MessageInfo {
        host::pp_call(self, message)
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

    /// `microkit_pd_restart`: run the child's `init` again. Memory is not restored (on seL4 only
    /// the program counter is reset); a restarted PD must not rely on its statics.
    pub fn restart(self) {
        host::restart(self);
    }

    /// `microkit_pd_stop`: stop the child for good.
    pub fn stop(self) {
        host::stop(self);
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
    host::get_mr(index)
}

/// Sets message register `index` (0–119); out-of-range indices are ignored.
pub fn set_mr(index: usize, value: u64) {
    host::set_mr(index, value);
}

/// The memory region mapped with `setvar_vaddr="symbol"`, as shared bytes (`None` if this PD
/// has no such map). Accesses are atomic: the region is shared with other PDs.
#[must_use]
pub fn memory_region(symbol: &str) -> Option<&'static [core::sync::atomic::AtomicU8]> {
    mapping::memory_region(symbol)
}

/// The memory region mapped with `setvar_vaddr="symbol"`, as shared 32-bit words (for rings).
#[must_use]
pub fn memory_region_words(symbol: &str) -> Option<&'static [core::sync::atomic::AtomicU32]> {
    mapping::memory_region_words(symbol)
}

/// The value the system description patches into `symbol` (`setvar_vaddr`, `setvar_size`).
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
