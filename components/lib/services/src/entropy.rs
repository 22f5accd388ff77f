//! The entropy service: random bytes, as a protected procedure call.
//!
//! The call: label [`ENTROPY`], register 0 = bytes wanted (1–[`MAX_ENTROPY_BYTES`]). The reply:
//! label 0, the bytes in registers 0..n (little-endian, 8 per register) and, in the register
//! after them, how many bytes came; label [`NOT_READY`] while no device is bound. [`serve`] is
//! the driver's half (the virtio-rng driver), [`Client`] the client's.

use warden_microkit::{get_mr, set_mr, Channel, MessageInfo};

use crate::{ReplyError, NOT_READY};

/// Call label: entropy.
pub const ENTROPY: u64 = 1;
/// Most entropy bytes one call returns.
pub const MAX_ENTROPY_BYTES: usize = 32;

/// Random bytes, as many as came.
pub type Bytes = heapless::Vec<u8, MAX_ENTROPY_BYTES>;

/// The client's half: the entropy driver on `channel` (this end calls).
#[derive(Clone, Copy, Debug)]
pub struct Client(pub Channel);

impl Client {
    /// Up to `wanted` random bytes (at most [`MAX_ENTROPY_BYTES`]).
    ///
    /// # Errors
    /// [`ReplyError`].
    pub fn random(&self, wanted: usize) -> Result<Bytes, ReplyError> {
        set_mr(0, wanted.clamp(1, MAX_ENTROPY_BYTES) as u64);
        let reply = self.0.pp_call(MessageInfo::new(ENTROPY, 1));
        decode_reply(reply.label(), usize::from(reply.count()), get_mr)
    }
}

/// Decodes the reply to an [`ENTROPY`] call: its label and the registers it names (`count` of
/// them, read through `register`).
///
/// # Errors
/// [`ReplyError`].
pub fn decode_reply(
    label: u64,
    count: usize,
    register: impl Fn(usize) -> u64,
) -> Result<Bytes, ReplyError> {
    match (label, count) {
        (0, 0) => return Err(ReplyError::Refused),
        (0, _) => {}
        (NOT_READY, _) => return Err(ReplyError::NotReady),
        _ => return Err(ReplyError::Malformed),
    }
    if count < 2 {
        return Err(ReplyError::Malformed);
    }
    let got = usize::try_from(register(count - 1)).map_err(|_| ReplyError::Malformed)?;
    if got == 0 || got > MAX_ENTROPY_BYTES || got.div_ceil(8) != count - 1 {
        return Err(ReplyError::Malformed);
    }
    let mut bytes = Bytes::new();
    for index in 0..count - 1 {
        for byte in register(index).to_le_bytes() {
            if bytes.len() < got {
                let _ = bytes.push(byte);
            }
        }
    }
    Ok(bytes)
}

/// The driver's half: answers a call with the bytes `fill` puts in the buffer it is given (it
/// returns how many; `None` when it has none: no device, or the device failed). A call that is
/// not [`ENTROPY`] with its register is answered [`NOT_READY`].
#[must_use]
pub fn serve(call: MessageInfo, fill: impl FnOnce(&mut [u8]) -> Option<usize>) -> MessageInfo {
    if call.label() != ENTROPY || call.count() < 1 {
        return MessageInfo::new(NOT_READY, 0);
    }
    let wanted = usize::try_from(get_mr(0))
        .unwrap_or(MAX_ENTROPY_BYTES)
        .clamp(1, MAX_ENTROPY_BYTES);
    let mut bytes = [0u8; MAX_ENTROPY_BYTES];
    let Some(got) = bytes
        .get_mut(..wanted)
        .and_then(fill)
        .map(|got| got.min(wanted))
        .filter(|&got| got > 0)
    else {
        return MessageInfo::new(NOT_READY, 0);
    };
    let words = got.div_ceil(8);
    for (index, chunk) in bytes.chunks(8).take(words).enumerate() {
        let mut word = [0u8; 8];
        for (to, from) in word.iter_mut().zip(chunk) {
            *to = *from;
        }
        set_mr(index, u64::from_le_bytes(word));
    }
    // Label 0 (ok); the count says how many registers hold the `got` bytes.
    set_mr(words, got as u64);
    MessageInfo::new(0, (words + 1) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_checked() {
        let words = [0x0807_0605_0403_0201u64, 0x0a09, 10];
        let bytes = decode_reply(0, 3, |index| words[index]).unwrap();
        assert_eq!(bytes.as_slice(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(decode_reply(NOT_READY, 0, |_| 0), Err(ReplyError::NotReady));
        // The count of bytes disagrees with the registers, is zero, or is too large.
        assert_eq!(decode_reply(0, 0, |_| 0), Err(ReplyError::Refused));
        for (count, last) in [(3, 17), (3, 0), (3, 8), (2, 33), (1, 1)] {
            assert_eq!(
                decode_reply(0, count, |index| if index + 1 == count { last } else { 0 }),
                Err(ReplyError::Malformed),
                "{count} registers, {last} bytes"
            );
        }
        assert_eq!(decode_reply(5, 2, |_| 1), Err(ReplyError::Malformed));
    }

    #[test]
    fn the_server_answers_what_its_device_gave_and_nothing_else() {
        set_mr(0, 10);
        let reply = serve(MessageInfo::new(ENTROPY, 1), |buffer| {
            buffer.fill(0xab);
            Some(buffer.len())
        });
        assert_eq!(reply, MessageInfo::new(0, 3));
        let bytes = decode_reply(reply.label(), usize::from(reply.count()), get_mr).unwrap();
        assert_eq!(bytes.as_slice(), &[0xab; 10]);
        // A huge request is cut to the most a reply holds; a device with nothing is not ready.
        set_mr(0, u64::MAX);
        let reply = serve(MessageInfo::new(ENTROPY, 1), |buffer| Some(buffer.len()));
        assert_eq!(reply.count(), 5);
        assert_eq!(
            serve(MessageInfo::new(ENTROPY, 1), |_| None).label(),
            NOT_READY
        );
        assert_eq!(
            serve(MessageInfo::new(ENTROPY, 0), |_| Some(1)).label(),
            NOT_READY
        );
        assert_eq!(
            serve(MessageInfo::new(9, 1), |_| Some(1)).label(),
            NOT_READY
        );
    }
}
