//! The log printer PD: the one PD that prints, so that log records reach the console whole.
//!
//! On seL4 a PD prints one character per kernel call, and PDs of equal priority that print at
//! once mix their characters mid-line. Every PD with a channel to this one (id
//! [`warden_microkit::log_line::CHANNEL`] on its side, `pp="true"`) sends each record in one
//! protected procedure call instead (the runtime does it: PD code just uses `log`); this PD
//! prints the line and returns. It is passive and has the system's highest priority, so a call
//! runs on its caller's budget and no other PD's line can start while one is printed: a PD that
//! logs in a loop pays for its own lines. On the host platform records are whole without it (the
//! launcher reads each PD's output line by line), so the PD is there and idle.
//!
//! Whatever a caller sends is checked ([`warden_microkit::log_line::unpack`]): a wrong label or a
//! length beyond the registers sent is answered `MALFORMED` and nothing is printed; control
//! characters are printed as `\xNN`, so one call is one line and cannot move the cursor. It
//! keeps no state between calls: nothing a caller sends can change what the next one gets.
//!
//! Channels: any id, one per PD that logs (this PD only answers calls).
#![cfg_attr(target_os = "none", no_std)]
#![forbid(unsafe_code)]

use warden_microkit::log_line::{self, MALFORMED, MAX_LINE, PRINTED};
use warden_microkit::{get_mr, Channel, Handler, MessageInfo};

/// The log printer's handler.
pub struct LogPrinter<P: FnMut(&[u8])> {
    print: P,
    /// Calls refused as malformed since start.
    pub malformed: u64,
}

impl<P: FnMut(&[u8])> LogPrinter<P> {
    /// A printer that hands each line to `print`.
    pub const fn new(print: P) -> Self {
        Self {
            print,
            malformed: 0,
        }
    }

    /// One call: the line it carries, printed; the reply's label says whether it was one.
    pub fn call(&mut self, info: MessageInfo, register: impl Fn(usize) -> u64) -> MessageInfo {
        let mut line = [0u8; MAX_LINE];
        match log_line::unpack(info, register, &mut line) {
            Ok(line) => {
                (self.print)(line);
                MessageInfo::new(PRINTED, 0)
            }
            Err(_) => {
                self.malformed = self.malformed.saturating_add(1);
                MessageInfo::new(MALFORMED, 0)
            }
        }
    }
}

impl<P: FnMut(&[u8])> Handler for LogPrinter<P> {
    type Error = core::convert::Infallible;

    /// A notification means nothing here, and must not stop the PD every other PD calls (the
    /// system descriptions give the callers' ends `notify="false"` besides).
    fn notified(&mut self, _channels: warden_microkit::ChannelSet) -> Result<(), Self::Error> {
        Ok(())
    }

    fn protected(
        &mut self,
        _channel: Channel,
        message: MessageInfo,
    ) -> Result<MessageInfo, Self::Error> {
        Ok(self.call(message, get_mr))
    }
}

/// The PD's `init`.
#[must_use]
pub fn init() -> LogPrinter<fn(&[u8])> {
    LogPrinter::new(warden_microkit::print_line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_microkit::log_line::{pack, LABEL};

    fn printer() -> LogPrinter<impl FnMut(&[u8])> {
        LogPrinter::new(|_: &[u8]| {})
    }

    #[test]
    fn a_line_is_printed_once_and_whole() {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut registers = [0u64; MessageInfo::MAX_COUNT as usize];
        let info = pack(
            b"[uart_driver] console: pl011-console bound",
            &mut registers,
        );
        let reply = LogPrinter::new(|line: &[u8]| lines.push(line.to_vec()))
            .call(info, |i| registers.get(i).copied().unwrap_or(0));
        assert_eq!(reply.label(), PRINTED);
        assert_eq!(
            lines,
            [b"[uart_driver] console: pl011-console bound".to_vec()]
        );
    }

    #[test]
    fn a_notification_does_not_stop_the_printer() {
        let mut printer = printer();
        assert!(printer
            .notified(warden_microkit::ChannelSet::from_bits(u64::MAX))
            .is_ok());
    }

    #[test]
    fn garbage_is_refused_and_the_next_caller_is_served() {
        let mut printer = printer();
        let garbage = [
            MessageInfo::new(0, 0),
            MessageInfo::new(LABEL, 0),
            MessageInfo::new(LABEL, 2),
            MessageInfo::new(u64::MAX, 120),
        ];
        for info in garbage {
            assert_eq!(printer.call(info, |_| u64::MAX).label(), MALFORMED);
        }
        assert_eq!(printer.malformed, 4);
        let mut registers = [0u64; MessageInfo::MAX_COUNT as usize];
        let info = pack(b"fine", &mut registers);
        assert_eq!(
            printer
                .call(info, |i| registers.get(i).copied().unwrap_or(0))
                .label(),
            PRINTED
        );
    }
}
