//! The frames a PD process and the `warden-host` launcher exchange on the host platform, where
//! the launcher plays the Microkit kernel's slow path: start-up, interrupts, faults, restarts,
//! stops and device registers. Each frame is a little-endian `u32` length and that many bytes:
//! a kind byte and its fields. Both sides treat the other's frames as untrusted: decoding is
//! bounds-checked and returns `None` on anything malformed.
//!
//! Notifications and protected procedure calls take the fast path, from PD to PD without the
//! launcher: at each start the launcher hands the PD one [`Handle`] per channel end it may use
//! (a pipe per direction of notification; a call slot, shared memory with a doorbell pipe, per
//! `pp` end), as `SCM_RIGHTS` descriptors. A PD holds only its own channels' handles, so it
//! can signal only its own peers, and a flood costs only the peer it floods.

use std::io::{Read, Write};

/// Most message registers a protected procedure call carries (`seL4_MsgMaxLength`).
pub const MAX_REGISTERS: usize = 120;
/// Bytes of a call slot's shared memory (the launcher makes each memfd this long).
pub const SLOT_BYTES: usize = 4096;
/// Largest frame accepted (the largest is a trace `Mark`, 45 bytes).
pub const MAX_FRAME: usize = 64;

/// What a PD sends the launcher. Notifications and protected procedure calls are not here:
/// they go from PD to PD over the channel handles ([`Handle`]), without the launcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FromPd {
    /// First frame: which PD this process is, and which start of it.
    Hello {
        /// Index in the system description.
        pd: u32,
        /// Bumped by the launcher on every restart.
        incarnation: u32,
    },
    /// `fault` returned for this child: `resume` if it asked for the child to resume (on the
    /// host: to start again).
    FaultDone {
        /// The child's id.
        child: u8,
        /// `fault` returned a reply.
        resume: bool,
    },
    /// `microkit_irq_ack`.
    IrqAck(u8),
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
    /// With `--trace` only: what this PD did on its channels, for the launcher's trace.
    Traced(Traced),
}

/// A channel operation a PD reports for the trace (`WARDEN_TRACE` set). It is the PD's own
/// account: the launcher records it under the PD's verified identity, and it changes nothing
/// else (the operation itself went over the PD's handles, which are what limit it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Traced {
    /// `microkit_notify(channel)`.
    Notify(u8),
    /// `microkit_ppcall(channel)` with this label.
    Call(u8, u64),
    /// A notify or call on a channel this end may not use: refused, as libmicrokit refuses it.
    Refused(u8),
    /// A span's start or end ([`crate::trace`]).
    Mark(crate::trace::Mark),
}

/// The kinds of channel handle a PD is given, one frame each, with their file descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handle {
    /// The write end of a pipe this PD writes to notify its peer (1 descriptor).
    NotifyOut,
    /// The read end of that pipe: its peer's notifications on the channel (1 descriptor).
    NotifyIn,
    /// A call slot this PD calls through: the slot's shared memory and the write end of the
    /// callee's doorbell pipe (2 descriptors).
    CallOut,
    /// A call slot this PD serves: the slot's memory and the read end of its doorbell (2
    /// descriptors).
    CallIn,
}

impl Handle {
    /// The descriptors its frame carries.
    #[must_use]
    pub fn descriptors(self) -> usize {
        match self {
            Self::NotifyOut | Self::NotifyIn => 1,
            Self::CallOut | Self::CallIn => 2,
        }
    }

    fn code(self) -> u8 {
        match self {
            Self::NotifyOut => 0,
            Self::NotifyIn => 1,
            Self::CallOut => 2,
            Self::CallIn => 3,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::NotifyOut,
            1 => Self::NotifyIn,
            2 => Self::CallOut,
            3 => Self::CallIn,
            _ => return None,
        })
    }
}

/// What the launcher sends a PD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToPd {
    /// A handle of one of its channels (its descriptors travel with the frame, `SCM_RIGHTS`).
    /// Sent before `Init`, once per start.
    Handle(u8, Handle),
    /// The memory of the PD's map number `n` (in `WARDEN_PD_MAPS` order), one descriptor opened
    /// with the map's permissions only (read-only for a read-only map, so that it cannot be
    /// mapped writable): a memfd its region's size, sealed against shrinking and growing. Sent before
    /// `Init`, once per start.
    Region(u16),
    /// Run `init`: every handle has been sent.
    Init,
    /// The interrupt of this IRQ channel fired: a notification on it (masked until acknowledged).
    Irq(u8),
    /// Run `fault` for this child with this label.
    Fault(u8, u64),
    /// A device register access completed (the value read; 0 for a write).
    RegisterValue(u32),
    /// Run `inject` with this fault's code (`InjectedFault::code`).
    Inject(u8),
    /// The caller on this `pp` channel was stopped or restarted: a call its start (this
    /// incarnation number) made and the callee has not taken yet is cancelled (seL4 cancels a
    /// restarted or suspended thread's IPC). A call of a later start is left alone.
    CallCancelled(u8, u32),
    /// This child was stopped: a fault of its not yet delivered is withdrawn.
    FaultWithdrawn(u8),
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

    fn word32(&mut self) -> Option<u32> {
        let (bytes, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_le_bytes(*bytes))
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
            Self::FaultDone { child, resume } => {
                out.extend_from_slice(&[2, *child, u8::from(*resume)]);
            }
            Self::IrqAck(channel) => out.extend_from_slice(&[4, *channel]),
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
            Self::Traced(Traced::Notify(channel)) => out.extend_from_slice(&[10, *channel]),
            Self::Traced(Traced::Call(channel, label)) => {
                out.extend_from_slice(&[11, *channel]);
                out.extend_from_slice(&label.to_le_bytes());
            }
            Self::Traced(Traced::Refused(channel)) => out.extend_from_slice(&[12, *channel]),
            Self::Traced(Traced::Mark(mark)) => {
                let phase = match mark.phase {
                    crate::trace::Phase::Begin => 0,
                    crate::trace::Phase::End => 1,
                };
                let handle = |handle: Option<[u32; 2]>| {
                    handle.map_or(u64::MAX, |[index, generation]| {
                        u64::from(generation) << 32 | u64::from(index)
                    })
                };
                let present = u8::from(mark.device.is_some())
                    | u8::from(mark.driver.is_some()) << 1
                    | u8::from(mark.request.is_some()) << 2;
                out.extend_from_slice(&[13, phase, mark.name as u8, mark.child, present]);
                for word in [
                    mark.id,
                    handle(mark.device),
                    handle(mark.driver),
                    mark.request.unwrap_or(0),
                    u64::from(mark.status),
                ] {
                    out.extend_from_slice(&word.to_le_bytes());
                }
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
            2 => {
                let child = reader.byte()?;
                let resume = match reader.byte()? {
                    0 => false,
                    1 => true,
                    _ => return None,
                };
                Self::FaultDone { child, resume }
            }
            4 => Self::IrqAck(reader.byte()?),
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
            10 => Self::Traced(Traced::Notify(reader.byte()?)),
            11 => {
                let channel = reader.byte()?;
                Self::Traced(Traced::Call(channel, reader.word()?))
            }
            12 => Self::Traced(Traced::Refused(reader.byte()?)),
            13 => {
                let phase = match reader.byte()? {
                    0 => crate::trace::Phase::Begin,
                    1 => crate::trace::Phase::End,
                    _ => return None,
                };
                let name = crate::trace::Name::from_code(reader.byte()?)?;
                let child = reader.byte()?;
                let present = reader.byte()?;
                if present & !0b111 != 0 {
                    return None;
                }
                let id = reader.word()?;
                let handle = |word: u64, bit: u8| {
                    let parts = [(word & 0xffff_ffff) as u32, (word >> 32) as u32];
                    match (present & bit != 0, word) {
                        (true, _) => Some(Some(parts)),
                        (false, u64::MAX) => Some(None),
                        (false, _) => None,
                    }
                };
                let device = handle(reader.word()?, 1)?;
                let driver = handle(reader.word()?, 2)?;
                let request = match (present & 4 != 0, reader.word()?) {
                    (true, request) => Some(request),
                    (false, 0) => None,
                    (false, _) => return None,
                };
                Self::Traced(Traced::Mark(crate::trace::Mark {
                    phase,
                    name,
                    child,
                    id,
                    device,
                    driver,
                    request,
                    status: u16::try_from(reader.word()?).ok()?,
                }))
            }
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
            Self::Handle(channel, handle) => out.extend_from_slice(&[15, *channel, handle.code()]),
            Self::Init => out.push(16),
            Self::Region(map) => {
                out.push(25);
                out.extend_from_slice(&map.to_le_bytes());
            }
            Self::Irq(channel) => out.extend_from_slice(&[17, *channel]),
            Self::Fault(child, label) => {
                out.extend_from_slice(&[19, *child]);
                out.extend_from_slice(&label.to_le_bytes());
            }
            Self::RegisterValue(value) => {
                out.push(21);
                out.extend_from_slice(&u64::from(*value).to_le_bytes());
            }
            Self::Inject(code) => out.extend_from_slice(&[22, *code]),
            Self::CallCancelled(channel, start) => {
                out.extend_from_slice(&[23, *channel]);
                out.extend_from_slice(&start.to_le_bytes());
            }
            Self::FaultWithdrawn(child) => out.extend_from_slice(&[24, *child]),
        }
        out
    }

    /// Decodes a frame; `None` if malformed.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader(bytes);
        let value = match reader.byte()? {
            15 => {
                let channel = reader.byte()?;
                Self::Handle(channel, Handle::from_code(reader.byte()?)?)
            }
            16 => Self::Init,
            17 => Self::Irq(reader.byte()?),
            19 => {
                let child = reader.byte()?;
                Self::Fault(child, reader.word()?)
            }
            21 => Self::RegisterValue(u32::try_from(reader.word()?).ok()?),
            22 => Self::Inject(reader.byte()?),
            23 => {
                let channel = reader.byte()?;
                Self::CallCancelled(channel, reader.word32()?)
            }
            24 => Self::FaultWithdrawn(reader.byte()?),
            25 => {
                let low = reader.byte()?;
                Self::Region(u16::from_le_bytes([low, reader.byte()?]))
            }
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
    stream.write_all(&framed(payload))?;
    stream.flush()
}

/// A frame's bytes as they travel: the length, then the payload (for writers that send the
/// bytes themselves: with descriptors, or without waiting).
#[must_use]
pub fn framed(payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(4 + payload.len());
    frame.extend_from_slice(&length.to_le_bytes());
    frame.extend_from_slice(payload);
    frame
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
        let mark = FromPd::Traced(Traced::Mark(crate::trace::Mark {
            phase: crate::trace::Phase::Begin,
            name: crate::trace::Name::Resume,
            id: u64::MAX,
            child: 8,
            device: Some([u32::MAX, u32::MAX]),
            driver: Some([1, 2]),
            request: Some(u64::MAX),
            status: u16::MAX,
        }));
        assert!(mark.encode().len() <= MAX_FRAME, "{}", mark.encode().len());
        assert_eq!(FromPd::decode(&mark.encode()), Some(mark));
        for frame in [
            FromPd::Hello {
                pd: 3,
                incarnation: 1,
            },
            FromPd::FaultDone {
                child: 4,
                resume: true,
            },
            FromPd::FaultDone {
                child: 0,
                resume: false,
            },
            FromPd::IrqAck(61),
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
            FromPd::Traced(Traced::Notify(3)),
            FromPd::Traced(Traced::Call(2, 9)),
            FromPd::Traced(Traced::Refused(9)),
            FromPd::Traced(Traced::Mark(crate::trace::Mark {
                phase: crate::trace::Phase::End,
                name: crate::trace::Name::Probe,
                id: 7,
                child: 3,
                device: Some([5, 1]),
                driver: None,
                request: Some(9),
                status: 4,
            })),
        ] {
            assert_eq!(FromPd::decode(&frame.encode()), Some(frame));
        }
        for frame in [
            ToPd::Handle(7, Handle::NotifyOut),
            ToPd::Handle(0, Handle::CallIn),
            ToPd::Init,
            ToPd::Irq(5),
            ToPd::Fault(1, 6),
            ToPd::RegisterValue(0xffff_ffff),
            ToPd::Inject(3),
            ToPd::CallCancelled(2, 7),
            ToPd::FaultWithdrawn(4),
            ToPd::Region(0x1234),
        ] {
            assert_eq!(ToPd::decode(&frame.encode()), Some(frame));
        }
        assert_eq!(FromPd::decode(&[2, 1, 2]), None, "resume is 0 or 1");
        assert_eq!(FromPd::decode(&[11, 1, 0]), None, "truncated");
        assert_eq!(FromPd::decode(&[4, 1, 0]), None, "trailing bytes");
        assert_eq!(ToPd::decode(&[99]), None, "unknown kind");
        assert_eq!(ToPd::decode(&[15, 1, 4]), None, "unknown handle");
    }
}
