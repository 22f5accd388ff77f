//! Log records as whole lines: on seL4 a PD's debug output is one kernel call per character,
//! so two PDs printing at once mix their characters mid-line. A PD with a channel to the log
//! printer PD ([`CHANNEL`], `pp="true"` on the PD's end) sends each record there in one
//! protected procedure call instead; the printer, the only PD that prints, writes it out whole.
//! This module is both halves of that call: [`pack`] for the PD, [`unpack`] for the printer.
//!
//! The call: label [`LABEL`]; message register 0 holds the line's length in bytes, registers
//! 1.. its bytes, eight to a register, little-endian. The reply's label is 0 when the line was
//! printed, 1 when the message was malformed. A line has no line break of its own: the printer
//! ends it.

use crate::{Channel, MessageInfo};

/// The channel id every PD uses for the log printer (the last id a PD has, so it collides with
/// none of the ids Warden's systems give their own channels).
pub const CHANNEL: Channel = Channel::new(crate::MAX_CHANNEL);

/// The call's label ("LOG").
pub const LABEL: u64 = 0x004c_4f47;

/// The reply label for a line that was printed.
pub const PRINTED: u64 = 0;

/// The reply label for a malformed call (wrong label, a length beyond the registers sent).
pub const MALFORMED: u64 = 1;

/// The longest line one call carries: all registers but the length.
pub const MAX_LINE: usize = (MessageInfo::MAX_COUNT as usize - 1) * 8;

/// Puts `line` (cut to [`MAX_LINE`] bytes) into `registers`; returns the call's message info.
#[must_use]
pub fn pack(line: &[u8], registers: &mut [u64; MessageInfo::MAX_COUNT as usize]) -> MessageInfo {
    let line = line.get(..MAX_LINE).unwrap_or(line);
    let (length, bytes) = registers.split_at_mut(1);
    if let Some(first) = length.first_mut() {
        *first = line.len() as u64;
    }
    let mut used = 1;
    for (register, chunk) in bytes.iter_mut().zip(line.chunks(8)) {
        let mut word = [0u8; 8];
        if let Some(prefix) = word.get_mut(..chunk.len()) {
            prefix.copy_from_slice(chunk);
        }
        *register = u64::from_le_bytes(word);
        used += 1;
    }
    MessageInfo::new(LABEL, used)
}

/// Why a call is not a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Not the log call's label.
    Label(u64),
    /// The length register is missing, or names more bytes than the registers sent hold.
    Length {
        /// The length the caller gave.
        claimed: u64,
        /// The bytes its registers hold.
        sent: usize,
    },
}

/// The line a call carries, copied into `out`; `register(i)` reads message register `i`.
///
/// # Errors
/// [`Malformed`] when the label or the length is wrong; nothing the caller sends can make it
/// read beyond the registers of the call.
pub fn unpack(
    info: MessageInfo,
    register: impl Fn(usize) -> u64,
    out: &mut [u8; MAX_LINE],
) -> Result<&[u8], Malformed> {
    if info.label() != LABEL {
        return Err(Malformed::Label(info.label()));
    }
    let count = usize::from(info.count());
    let sent = count.saturating_sub(1) * 8;
    let claimed = if count == 0 { u64::MAX } else { register(0) };
    let length = usize::try_from(claimed)
        .ok()
        .filter(|&length| length <= sent && length <= MAX_LINE)
        .ok_or(Malformed::Length { claimed, sent })?;
    for (index, chunk) in out.chunks_mut(8).enumerate().take(length.div_ceil(8)) {
        let word = register(index + 1).to_le_bytes();
        for (byte, value) in chunk.iter_mut().zip(word) {
            *byte = value;
        }
    }
    Ok(out.get(..length).unwrap_or_default())
}

/// Writes `line` as the printer prints it, through `put`: a control character (a line break, an
/// escape sequence) or a byte that is not UTF-8 as `\xNN`, so a line stays one line and cannot
/// move the terminal's cursor; then the line break.
pub fn sanitise(line: &[u8], mut put: impl FnMut(u8)) {
    for chunk in line.utf8_chunks() {
        for character in chunk.valid().chars() {
            let mut bytes = [0u8; 4];
            for &byte in character.encode_utf8(&mut bytes).as_bytes() {
                if character.is_control() {
                    escape(byte, &mut put);
                } else {
                    put(byte);
                }
            }
        }
        for &byte in chunk.invalid() {
            escape(byte, &mut put);
        }
    }
    put(b'\n');
}

/// `\xNN`.
fn escape(byte: u8, put: &mut impl FnMut(u8)) {
    let hex = |nibble: u8| match nibble {
        0..=9 => b'0' + nibble,
        _ => b'a' + (nibble - 10),
    };
    for out in [b'\\', b'x', hex(byte >> 4), hex(byte & 0xf)] {
        put(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    fn round_trip(line: &[u8]) -> Result<Vec<u8>, Malformed> {
        let mut registers = [0u64; MessageInfo::MAX_COUNT as usize];
        let info = pack(line, &mut registers);
        let mut out = [0u8; MAX_LINE];
        unpack(info, |i| registers.get(i).copied().unwrap_or(0), &mut out).map(<[u8]>::to_vec)
    }

    #[test]
    fn lines_travel_whole() {
        for line in [
            &b""[..],
            b"x",
            b"12345678",
            b"[manager] manager: 48 devices",
        ] {
            assert_eq!(round_trip(line).unwrap(), line);
        }
        let long = [b'a'; MAX_LINE + 100];
        assert_eq!(
            round_trip(&long).unwrap().len(),
            MAX_LINE,
            "cut, never split"
        );
    }

    #[test]
    fn a_hostile_caller_cannot_make_the_printer_read_beyond_its_registers() {
        let mut out = [0u8; MAX_LINE];
        let huge = |_: usize| u64::MAX;
        for info in [
            MessageInfo::new(LABEL, 0),
            MessageInfo::new(LABEL, 1),
            MessageInfo::new(LABEL, 120),
        ] {
            assert!(matches!(
                unpack(info, huge, &mut out),
                Err(Malformed::Length { .. })
            ));
        }
        // 17 bytes claimed, two registers of bytes sent: 16 bytes.
        let short = |i: usize| if i == 0 { 17 } else { 0x4141_4141_4141_4141 };
        assert_eq!(
            unpack(MessageInfo::new(LABEL, 3), short, &mut out),
            Err(Malformed::Length {
                claimed: 17,
                sent: 16
            })
        );
        assert_eq!(
            unpack(MessageInfo::new(7, 3), short, &mut out),
            Err(Malformed::Label(7))
        );
    }

    #[test]
    fn the_printer_keeps_one_line_one_line() {
        let mut printed = Vec::new();
        sanitise(
            "ok\n[uart_driver] forged\x1b[2J \u{85}é…".as_bytes(),
            |b| printed.push(b),
        );
        sanitise(b"bad \xff\xc3", |b| printed.push(b));
        assert_eq!(
            String::from_utf8(printed).unwrap(),
            "ok\\x0a[uart_driver] forged\\x1b[2J \\xc2\\x85é…\nbad \\xff\\xc3\n"
        );
    }
}
