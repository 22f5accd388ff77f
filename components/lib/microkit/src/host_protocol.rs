//! The frames a PD process and the `warden-host` launcher exchange on the host platform, where
//! the launcher plays the Microkit kernel. Each frame is a little-endian `u32` length and that
//! many bytes: a kind byte and its fields. Both sides treat the other's frames as untrusted:
//! decoding is bounds-checked and returns `None` on anything malformed.

use std::io::{Read, Write};

/// Most message registers a frame carries.
pub const MAX_REGISTERS: usize = 120;
/// Largest frame accepted.
pub const MAX_FRAME: usize = 1 + 8 + 1 + 1 + 8 * MAX_REGISTERS + 16;

/// A message info with its registers.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Message {
    /// The label.
    pub label: u64,
    /// The registers (their number is the count).
    pub registers: Vec<u64>,
}

/// What a PD sends the launcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FromPd {
    /// First frame: which PD this process is, and which start of it.
    Hello {
        /// Index in the system description.
        pd: u32,
        /// Bumped by the launcher on every restart.
        incarnation: u32,
    },
    /// The entry point returned (`reply`: what `protected` returned, or `fault` asked to resume).
    EntryDone {
        /// The reply, if any.
        reply: Option<Message>,
    },
    /// `microkit_notify`.
    Notify(u8),
    /// `microkit_irq_ack`.
    IrqAck(u8),
    /// `microkit_ppcall`.
    Call(u8, Message),
    /// `microkit_pd_restart`.
    Restart(u8),
    /// `microkit_pd_stop`.
    Stop(u8),
    /// A load from device memory (the launcher's device model answers with `RegisterValue`).
    RegisterRead {
        /// The PD's virtual address.
        address: u64,
        /// Bytes: 1, 2 or 4.
        width: u8,
    },
    /// A store to device memory (answered with `RegisterValue(0)` once the model has acted).
    RegisterWrite {
        /// The PD's virtual address.
        address: u64,
        /// Bytes: 1, 2 or 4.
        width: u8,
        /// The value (its low `width` bytes).
        value: u32,
    },
}

/// What the launcher sends a PD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToPd {
    /// Run `init`.
    Init,
    /// Run `notified` with these channel bits.
    Notified(u64),
    /// Run `protected`.
    Protected(u8, Message),
    /// Run `fault` for this child with this label.
    Fault(u8, u64),
    /// The `pp_call` returned.
    CallReturn(Message),
    /// A device register access completed (the value read; 0 for a write).
    RegisterValue(u32),
    /// Run `inject` with this fault's code (`InjectedFault::code`).
    Inject(u8),
}

fn put_message(out: &mut Vec<u8>, message: &Message) {
    out.extend_from_slice(&message.label.to_le_bytes());
    let count = message.registers.len().min(MAX_REGISTERS);
    out.push(count as u8);
    for register in message.registers.iter().take(count) {
        out.extend_from_slice(&register.to_le_bytes());
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*first)
    }

    fn word(&mut self) -> Option<u64> {
        let (bytes, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_le_bytes(*bytes))
    }

    fn message(&mut self) -> Option<Message> {
        let label = self.word()?;
        let count = usize::from(self.byte()?);
        if count > MAX_REGISTERS {
            return None;
        }
        let registers = (0..count)
            .map(|_| self.word())
            .collect::<Option<Vec<_>>>()?;
        Some(Message { label, registers })
    }

    fn end<T>(self, value: T) -> Option<T> {
        self.0.is_empty().then_some(value)
    }
}

impl FromPd {
    /// The frame's bytes (without the length).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Self::Hello { pd, incarnation } => {
                out.push(1);
                out.extend_from_slice(&u64::from(*pd).to_le_bytes());
                out.extend_from_slice(&u64::from(*incarnation).to_le_bytes());
            }
            Self::EntryDone { reply } => {
                out.push(2);
                match reply {
                    Some(message) => {
                        out.push(1);
                        put_message(&mut out, message);
                    }
                    None => out.push(0),
                }
            }
            Self::Notify(channel) => out.extend_from_slice(&[3, *channel]),
            Self::IrqAck(channel) => out.extend_from_slice(&[4, *channel]),
            Self::Call(channel, message) => {
                out.extend_from_slice(&[5, *channel]);
                put_message(&mut out, message);
            }
            Self::Restart(child) => out.extend_from_slice(&[6, *child]),
            Self::Stop(child) => out.extend_from_slice(&[7, *child]),
            Self::RegisterRead { address, width } => {
                out.push(8);
                out.extend_from_slice(&address.to_le_bytes());
                out.push(*width);
            }
            Self::RegisterWrite {
                address,
                width,
                value,
            } => {
                out.push(9);
                out.extend_from_slice(&address.to_le_bytes());
                out.push(*width);
                out.extend_from_slice(&u64::from(*value).to_le_bytes());
            }
        }
        out
    }

    /// Decodes a frame; `None` if malformed.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader(bytes);
        let value = match reader.byte()? {
            1 => {
                let pd = u32::try_from(reader.word()?).ok()?;
                let incarnation = u32::try_from(reader.word()?).ok()?;
                Self::Hello { pd, incarnation }
            }
            2 => match reader.byte()? {
                0 => Self::EntryDone { reply: None },
                1 => Self::EntryDone {
                    reply: Some(reader.message()?),
                },
                _ => return None,
            },
            3 => Self::Notify(reader.byte()?),
            4 => Self::IrqAck(reader.byte()?),
            5 => {
                let channel = reader.byte()?;
                Self::Call(channel, reader.message()?)
            }
            6 => Self::Restart(reader.byte()?),
            7 => Self::Stop(reader.byte()?),
            8 => Self::RegisterRead {
                address: reader.word()?,
                width: reader.byte()?,
            },
            9 => Self::RegisterWrite {
                address: reader.word()?,
                width: reader.byte()?,
                value: u32::try_from(reader.word()?).ok()?,
            },
            _ => return None,
        };
        reader.end(value)
    }
}

impl ToPd {
    /// The frame's bytes (without the length).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Self::Init => out.push(16),
            Self::Notified(bits) => {
                out.push(17);
                out.extend_from_slice(&bits.to_le_bytes());
            }
            Self::Protected(channel, message) => {
                out.extend_from_slice(&[18, *channel]);
                put_message(&mut out, message);
            }
            Self::Fault(child, label) => {
                out.extend_from_slice(&[19, *child]);
                out.extend_from_slice(&label.to_le_bytes());
            }
            Self::CallReturn(message) => {
                out.push(20);
                put_message(&mut out, message);
            }
            Self::RegisterValue(value) => {
                out.push(21);
                out.extend_from_slice(&u64::from(*value).to_le_bytes());
            }
            Self::Inject(code) => out.extend_from_slice(&[22, *code]),
        }
        out
    }

    /// Decodes a frame; `None` if malformed.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader(bytes);
        let value = match reader.byte()? {
            16 => Self::Init,
            17 => Self::Notified(reader.word()?),
            18 => {
                let channel = reader.byte()?;
                Self::Protected(channel, reader.message()?)
            }
            19 => {
                let child = reader.byte()?;
                Self::Fault(child, reader.word()?)
            }
            20 => Self::CallReturn(reader.message()?),
            21 => Self::RegisterValue(u32::try_from(reader.word()?).ok()?),
            22 => Self::Inject(reader.byte()?),
            _ => return None,
        };
        reader.end(value)
    }
}

/// Writes one frame.
///
/// # Errors
/// The stream's error.
pub fn write_frame(stream: &mut impl Write, payload: &[u8]) -> std::io::Result<()> {
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    stream.write_all(&length.to_le_bytes())?;
    stream.write_all(payload)?;
    stream.flush()
}

/// Reads one frame (refusing frames above [`MAX_FRAME`]).
///
/// # Errors
/// The stream's error, or `InvalidData` for an oversized frame.
pub fn read_frame(stream: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length)?;
    let length = u32::from_le_bytes(length) as usize;
    if length > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "oversized frame",
        ));
    }
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload)?;
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_garbage_is_refused() {
        let message = Message {
            label: 9,
            registers: vec![1, 2, 3],
        };
        for frame in [
            FromPd::Hello {
                pd: 3,
                incarnation: 1,
            },
            FromPd::EntryDone { reply: None },
            FromPd::EntryDone {
                reply: Some(message.clone()),
            },
            FromPd::Notify(4),
            FromPd::IrqAck(61),
            FromPd::Call(2, message.clone()),
            FromPd::Restart(1),
            FromPd::Stop(1),
            FromPd::RegisterRead {
                address: 0x500_0050,
                width: 4,
            },
            FromPd::RegisterWrite {
                address: 0x500_0051,
                width: 1,
                value: 0xab,
            },
        ] {
            assert_eq!(FromPd::decode(&frame.encode()), Some(frame));
        }
        for frame in [
            ToPd::Init,
            ToPd::Notified(0b101),
            ToPd::Protected(5, message.clone()),
            ToPd::Fault(1, 6),
            ToPd::CallReturn(message),
            ToPd::RegisterValue(0xffff_ffff),
            ToPd::Inject(3),
        ] {
            assert_eq!(ToPd::decode(&frame.encode()), Some(frame));
        }
        assert_eq!(FromPd::decode(&[5, 1, 0]), None, "truncated");
        assert_eq!(FromPd::decode(&[3, 1, 0]), None, "trailing bytes");
        assert_eq!(ToPd::decode(&[99]), None, "unknown kind");
        let mut too_many = vec![20];
        too_many.extend_from_slice(&0u64.to_le_bytes());
        too_many.push(200);
        assert_eq!(ToPd::decode(&too_many), None, "register count above 120");
    }
}
