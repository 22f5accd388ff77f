//! The timer service: the time since start-up and one timeout per client, in sDDF's timer
//! protocol (its `sddf/timer/protocol.h` labels and registers), so that an sDDF client can use
//! Warden's timer driver and Warden's clients an sDDF one.
//!
//! | call (label) | registers in | reply |
//! |---|---|---|
//! | [`GET_TIME`] (0) | — | label 0, register 0 = nanoseconds since the timer started |
//! | [`SET_TIMEOUT`] (1) | register 0 = nanoseconds from now | label 0, no registers; the client's channel is notified once that time has come |
//!
//! A client has one timeout: setting another replaces it. The timer driver has a higher
//! priority than its clients (they call it). [`Client`] is the client's half; the driver's is
//! [`receive`], [`reply_time`] and [`Timeouts`], the bookkeeping every timer driver shares (the
//! ARM generic timer's and the Meson timer's).

use core::time::Duration;

use warden_microkit::{get_mr, set_mr, Channel, MessageInfo, MAX_CHANNEL};
use warden_vocabulary::Instant;

use crate::ReplyError;

/// Call label: the time since start-up.
pub const GET_TIME: u64 = 0;
/// Call label: notify me after the nanoseconds in register 0.
pub const SET_TIMEOUT: u64 = 1;

/// The client's half: the timer driver on `channel`.
#[derive(Clone, Copy, Debug)]
pub struct Client(pub Channel);

impl Client {
    /// The time since the timer started.
    ///
    /// # Errors
    /// [`ReplyError::Refused`] when this PD may not call the channel (there is no timer);
    /// [`ReplyError::Malformed`] for any other reply than the protocol's.
    pub fn now(&self) -> Result<Instant, ReplyError> {
        let reply = self.0.pp_call(MessageInfo::new(GET_TIME, 0));
        decode_time(reply.label(), usize::from(reply.count()), get_mr)
    }

    /// Asks for a notification on this channel `after` from now (replacing any timeout this
    /// PD set before).
    pub fn set_timeout(&self, after: Duration) {
        let nanos = u64::try_from(after.as_nanos()).unwrap_or(u64::MAX);
        set_mr(0, nanos);
        let _ = self.0.pp_call(MessageInfo::new(SET_TIMEOUT, 1));
    }
}

/// Decodes the reply to [`GET_TIME`]: its label and the registers it names (`count` of them,
/// read through `register`).
///
/// # Errors
/// [`ReplyError`].
pub fn decode_time(
    label: u64,
    count: usize,
    register: impl Fn(usize) -> u64,
) -> Result<Instant, ReplyError> {
    match (label, count) {
        (0, 1) => Ok(Instant(register(0))),
        (0, 0) => Err(ReplyError::Refused),
        _ => Err(ReplyError::Malformed),
    }
}

/// A call to the timer driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// [`GET_TIME`].
    Time,
    /// [`SET_TIMEOUT`], so long from now.
    Timeout(Duration),
    /// Anything else (answered with an empty reply).
    Unknown(u64),
}

/// The driver's half: the call in `message` (a timeout's length read from register 0).
#[must_use]
pub fn receive(message: MessageInfo) -> Call {
    match (message.label(), message.count()) {
        (GET_TIME, _) => Call::Time,
        (SET_TIMEOUT, 1..) => Call::Timeout(Duration::from_nanos(get_mr(0))),
        (label, _) => Call::Unknown(label),
    }
}

/// The driver's reply to [`GET_TIME`].
#[must_use]
pub fn reply_time(now: Instant) -> MessageInfo {
    set_mr(0, now.nanos());
    MessageInfo::new(0, 1)
}

/// The driver's reply to everything else.
#[must_use]
pub fn reply_empty() -> MessageInfo {
    MessageInfo::new(0, 0)
}

/// One timeout per client channel: when it is due, and which are due now.
#[derive(Clone, Debug)]
pub struct Timeouts {
    due: [Option<Instant>; MAX_CHANNEL as usize + 1],
}

impl Default for Timeouts {
    fn default() -> Self {
        Self::new()
    }
}

impl Timeouts {
    /// No timeout set.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            due: [None; MAX_CHANNEL as usize + 1],
        }
    }

    /// `client` wants a notification `after` from `now` (its earlier timeout is replaced).
    pub fn set(&mut self, client: Channel, now: Instant, after: Duration) {
        if let Some(slot) = self.due.get_mut(usize::from(client.index())) {
            *slot = Some(now.after(after));
        }
    }

    /// Takes every timeout due at `now`, calling `due` with each client's channel.
    pub fn expire(&mut self, now: Instant, mut due: impl FnMut(Channel)) {
        for (index, slot) in self.due.iter_mut().enumerate() {
            if slot.is_some_and(|at| at <= now) {
                *slot = None;
                if let Some(channel) = u8::try_from(index).ok().and_then(Channel::try_new) {
                    due(channel);
                }
            }
        }
    }

    /// The earliest timeout set, if any.
    #[must_use]
    pub fn next(&self) -> Option<Instant> {
        self.due.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn each_client_has_one_timeout_and_hears_when_it_is_due() {
        let mut timeouts = Timeouts::new();
        let (a, b) = (Channel::new(1), Channel::new(7));
        let now = Instant(1_000);
        timeouts.set(a, now, Duration::from_nanos(500));
        timeouts.set(b, now, Duration::from_nanos(200));
        assert_eq!(timeouts.next(), Some(Instant(1_200)));
        // A new timeout replaces the client's earlier one.
        timeouts.set(b, now, Duration::from_nanos(900));
        assert_eq!(timeouts.next(), Some(Instant(1_500)));
        let mut heard = Vec::new();
        timeouts.expire(Instant(1_499), |channel| heard.push(channel));
        assert!(heard.is_empty());
        timeouts.expire(Instant(1_500), |channel| heard.push(channel));
        assert_eq!(heard, [a]);
        timeouts.expire(Instant(u64::MAX), |channel| heard.push(channel));
        assert_eq!(heard, [a, b], "each once");
        assert_eq!(timeouts.next(), None);
        // A timeout at the end of time never overflows.
        timeouts.set(a, Instant(u64::MAX - 1), Duration::MAX);
        assert_eq!(timeouts.next(), Some(Instant(u64::MAX)));
    }

    #[test]
    fn replies_are_checked() {
        assert_eq!(decode_time(0, 1, |_| 42), Ok(Instant(42)));
        assert_eq!(decode_time(0, 0, |_| 42), Err(ReplyError::Refused));
        assert_eq!(decode_time(3, 1, |_| 42), Err(ReplyError::Malformed));
        assert_eq!(decode_time(0, 2, |_| 42), Err(ReplyError::Malformed));
    }
}
