//! A protocol message as a protected procedure call, both halves: the client's [`call`] and the
//! server's [`receive`] and [`reply`]. The mapping is `warden_protocol::ppc`'s: label = opcode,
//! message registers = body; this module moves it in and out of the PD's IPC buffer. Every PD
//! that calls the device manager, and the manager answering, use it.

use warden_microkit::{get_mr, set_mr, Channel, MessageInfo};
use warden_protocol::ppc::{self, decode_call, encode_call, MAX_REGISTERS};
use warden_protocol::{DecodeError, Message};

/// Why a call gave no reply a caller can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The message does not travel as a protected procedure call.
    Encode,
    /// The reply did not decode.
    Malformed,
}

/// Something a protocol call can be made to: a channel, or a fake one in tests.
pub trait Caller {
    /// Makes the call; returns the (decoded, untrusted) reply.
    ///
    /// # Errors
    /// [`CallError`].
    fn call(&mut self, message: &Message) -> Result<Message, CallError>;
}

impl<C: Caller + ?Sized> Caller for &mut C {
    fn call(&mut self, message: &Message) -> Result<Message, CallError> {
        (**self).call(message)
    }
}

impl Caller for Channel {
    fn call(&mut self, message: &Message) -> Result<Message, CallError> {
        call(*self, message)
    }
}

/// Calls the PD at the other end of `channel` with `message` and decodes its reply.
///
/// # Errors
/// [`CallError`].
pub fn call(channel: Channel, message: &Message) -> Result<Message, CallError> {
    let info = store(message).ok_or(CallError::Encode)?;
    let reply = channel.pp_call(info);
    receive(reply).map_err(|_| CallError::Malformed)
}

/// The message a call (or a reply) carries, read from the IPC buffer.
///
/// # Errors
/// Any [`DecodeError`]; whatever the caller put there is checked.
pub fn receive(info: MessageInfo) -> Result<Message, DecodeError> {
    let count = usize::from(info.count()).min(MAX_REGISTERS);
    let mut registers = [0u64; MAX_REGISTERS];
    for (index, register) in registers.iter_mut().take(count).enumerate() {
        *register = get_mr(index);
    }
    let info = ppc::MessageInfo {
        label: info.label(),
        count: count as u16,
    };
    decode_call(info, registers.get(..count).unwrap_or_default())
}

/// Writes `message` into the IPC buffer as a reply; returns the message info to return. A
/// message that cannot travel as a call (a bug of the server's) is an empty reply, which
/// callers take as a refusal.
#[must_use]
pub fn reply(message: &Message) -> MessageInfo {
    store(message).unwrap_or_else(|| {
        log::error!("call: {message:?} cannot travel as a reply");
        MessageInfo::new(0, 0)
    })
}

fn store(message: &Message) -> Option<MessageInfo> {
    let mut registers = [0u64; MAX_REGISTERS];
    let info = encode_call(message, &mut registers).ok()?;
    let count = u8::try_from(info.count).ok()?;
    for (index, value) in registers.iter().take(usize::from(count)).enumerate() {
        set_mr(index, *value);
    }
    Some(MessageInfo::new(info.label, count))
}
