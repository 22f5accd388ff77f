//! Protected procedure calls into the manager: how a message maps onto a Microkit message info
//! (label, count) and the message registers.
//!
//! * label = the opcode (Microkit labels have 52 bits; opcodes have 16);
//! * count = the number of 64-bit message registers, `ceil(body length / 8)`;
//! * the registers hold the body (the same bytes as after the header on a queue), little-endian,
//!   the unused tail of the last register zero.
//!
//! No header travels: the kernel delivers the label and count, and the call is answered
//! synchronously, so no request id is needed. The largest body sent this way (`PCI_HOST`,
//! 464 bytes) needs 58 registers; seL4 allows 120 (`seL4_MsgMaxLength`) and libmicrokit's
//! `microkit_mr_set`/`microkit_mr_get` reach all of them. Calls from driver PDs: `REGISTER`,
//! `ADD_CHILD`, `REMOVE_CHILD`, `CALLBACK_DONE`, `ALIVE`, `BIND` and `UNBIND` (a driver letting
//! go of its device and binding it again, as a bus driver does on hot-plug) and
//! `QUERY_PCI_HOST` (a host bridge's driver asking for its bridge's description); from an
//! administrative client such as the shell: `QUERY_DEVICE`, `QUERY_TREE`, `QUERY_DRIVER`,
//! `UNBIND`, `BIND`, `RESCAN`, `REMOVE_DEVICE`, `SUSPEND_DEVICE`, `RESUME_DEVICE`, `QUERY_PD`,
//! `RETRY_PD`, `SUBSCRIBE`, `NEXT_EVENT`, `SHUTDOWN_SYSTEM`, `QUERY_STATS`, `QUERY_TRACE`.
//! Replies: `COMPLETION`, `ACCEPTED`, `EVENT`, `DEVICE_INFO`, `DRIVER_INFO`, `PD_INFO`, `STATS`,
//! `TRACE_RECORD` and `PCI_HOST` (464 bytes).

use crate::message::{
    body_length, decode_body, encode_body, is_call, DecodeError, EncodeError, Message,
};

/// Message registers a call may use.
pub const MAX_REGISTERS: usize = 64;

/// A Microkit message info: label and register count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageInfo {
    /// The label (the opcode).
    pub label: u64,
    /// Registers used.
    pub count: u16,
}

/// Encodes a call (or its reply) into message registers.
///
/// # Errors
/// [`EncodeError::WrongTransport`] for a message that travels on queues only.
pub fn encode_call(
    message: &Message,
    registers: &mut [u64; MAX_REGISTERS],
) -> Result<MessageInfo, EncodeError> {
    let code = message.opcode();
    if !is_call(code) {
        return Err(EncodeError::WrongTransport(code));
    }
    let mut bytes = [0u8; MAX_REGISTERS * 8];
    let length = encode_body(message, &mut bytes)?;
    let count = length.div_ceil(8);
    for (register, chunk) in registers.iter_mut().zip(bytes.chunks(8)).take(count) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        *register = u64::from_le_bytes(word);
    }
    Ok(MessageInfo {
        label: u64::from(code),
        count: count as u16,
    })
}

/// Decodes a call (or its reply) from a message info and the registers it names.
///
/// # Errors
/// [`DecodeError::UnknownOpcode`], [`DecodeError::WrongTransport`], [`DecodeError::BadLength`]
/// (count not the opcode's, or more registers than given), [`DecodeError::ReservedNotZero`]
/// (bytes past the body in the last register), and every body error.
pub fn decode_call(info: MessageInfo, registers: &[u64]) -> Result<Message, DecodeError> {
    let code = u16::try_from(info.label).map_err(|_| DecodeError::UnknownOpcode(u16::MAX))?;
    let length = body_length(code).ok_or(DecodeError::UnknownOpcode(code))?;
    if !is_call(code) {
        return Err(DecodeError::WrongTransport(code));
    }
    let count = usize::from(info.count);
    let bad_length = DecodeError::BadLength {
        opcode: code,
        expected: length.div_ceil(8),
        got: count,
    };
    if count != length.div_ceil(8) {
        return Err(bad_length);
    }
    let registers = registers.get(..count).ok_or(bad_length)?;
    let mut bytes = [0u8; MAX_REGISTERS * 8];
    for (chunk, register) in bytes.chunks_mut(8).zip(registers) {
        chunk.copy_from_slice(&register.to_le_bytes());
    }
    let (body, padding) = bytes.split_at(length);
    if padding.iter().any(|byte| *byte != 0) {
        return Err(DecodeError::ReservedNotZero);
    }
    decode_body(code, body)
}
