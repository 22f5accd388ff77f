//! Time as the manager sees it: an instant on one monotonic clock (the system timer's), in
//! nanoseconds since it started. Time enters the sans-IO core as a value; nothing in it reads a
//! clock.

use core::time::Duration;

/// A point in time: nanoseconds since the system timer started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub u64);

impl Instant {
    /// The start of time.
    pub const ZERO: Self = Self(0);

    /// Nanoseconds since the start.
    #[must_use]
    pub const fn nanos(self) -> u64 {
        self.0
    }

    /// `duration` later (saturating at the end of time).
    #[must_use]
    pub fn after(self, duration: Duration) -> Self {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(nanos))
    }

    /// How long after `earlier` this is (zero if it is not after it).
    #[must_use]
    pub fn since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_add_and_subtract_without_overflow() {
        let start = Instant(5);
        assert_eq!(start.after(Duration::from_nanos(10)), Instant(15));
        assert_eq!(
            Instant(u64::MAX - 1).after(Duration::MAX),
            Instant(u64::MAX)
        );
        assert_eq!(Instant(15).since(start), Duration::from_nanos(10));
        assert_eq!(start.since(Instant(15)), Duration::ZERO, "not after");
    }
}
