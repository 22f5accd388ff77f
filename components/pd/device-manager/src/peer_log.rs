//! Log lines a peer causes (a driver PD's malformed messages, corrupt slots, refused answers) are
//! rate-limited per peer: a few per second are printed, the rest counted and summed up in one
//! line ("… 3,512 more like this") once the second is over. A flooding driver cannot set the
//! manager's log volume.

use alloc::string::String;
use core::time::Duration;

use warden_manager_core::Instant;

/// Lines a peer may cause per window.
pub const LINES: u32 = 5;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(1);

/// One peer's budget of log lines.
#[derive(Debug, Default)]
pub struct PeerLog {
    window_start: Instant,
    lines: u32,
    held: u64,
}

impl PeerLog {
    /// May a line caused by this peer be printed at `now`? If not, it is counted.
    pub fn allow(&mut self, now: Instant) -> bool {
        if now >= self.window_start.after(WINDOW) && self.held == 0 {
            self.window_start = now;
            self.lines = 0;
        }
        if self.lines < LINES {
            self.lines += 1;
            true
        } else {
            self.held += 1;
            false
        }
    }

    /// Once the window is over, the lines held back in it are summed up (for the peer named
    /// `pd`), and a new window starts.
    pub fn flush(&mut self, now: Instant, pd: u8) {
        if self.held > 0 && now >= self.window_start.after(WINDOW) {
            log::warn!(
                "manager: driver PD {pd}: … {} more like this",
                thousands(self.held)
            );
            self.held = 0;
            self.lines = 0;
            self.window_start = now;
        }
    }

    /// When held-back lines are due to be summed up.
    #[must_use]
    pub fn due(&self) -> Option<Instant> {
        (self.held > 0).then(|| self.window_start.after(WINDOW))
    }

    /// Lines held back so far in this window.
    #[must_use]
    pub fn held(&self) -> u64 {
        self.held
    }
}

/// `n` with a comma between groups of three digits.
#[must_use]
pub fn thousands(n: u64) -> String {
    let digits = alloc::format!("{n}");
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_prints_five_lines_a_second_and_sums_up_the_rest() {
        let mut log = PeerLog::default();
        let ms = |ms: u64| Instant(ms * 1_000_000);
        let printed = (0..3517).filter(|_| log.allow(ms(10))).count();
        assert_eq!(printed, 5);
        assert_eq!(log.held(), 3512);
        assert_eq!(log.due(), Some(ms(1000)));
        log.flush(ms(999), 1);
        assert_eq!(log.held(), 3512, "not yet");
        log.flush(ms(1000), 1);
        assert_eq!(log.held(), 0);
        assert!(log.allow(ms(1001)), "a new window");
    }

    #[test]
    fn counts_read_with_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(3512), "3,512");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
