//! What driver PDs serve their clients (the device classes), as opposed to what they say to the
//! manager: block storage on a queue pair, entropy and the clock as protected procedure calls.
//! Everything here crosses a PD boundary and is decoded with checks.
//!
//! **Block** (`virtio-blk` driver ↔ its client): requests and responses travel on two
//! [`crate::ring`]s (client → driver, driver → client) with a notification on the channel
//! between them, the sDDF way; the data lives in a region both map (`block_data`), and a
//! request names an offset in it. The driver notifies the client when its disk is bound (the
//! client starts then) and after each response it queues.
//!
//! | request | fields | response |
//! |---|---|---|
//! | [`BlockOperation::Read`] | id, sector, count (sectors of 512 bytes), data offset | id, [`BlockStatus`] |
//! | [`BlockOperation::Write`] | same | same |
//! | [`BlockOperation::Flush`] | id | same |
//!
//! **Entropy** (`virtio-rng` driver): call label [`ENTROPY`], register 0 = bytes wanted (1–32);
//! reply label 0, the bytes in registers 0..n (little-endian, 8 per register) and, in the
//! register after them, how many bytes came; reply label [`NOT_READY`] while no device is
//! bound.
//!
//! **Clock** (PL031 driver): call label [`TIME`]; reply label 0 with register 0 = seconds since
//! the Unix epoch, or [`NOT_READY`].
//!
//! **Console** (a UART driver ↔ the shell): two [`crate::ring`]s and a notification on the
//! channel between them, both ways. On the driver → shell ring each message is one input line
//! the driver has edited and the user ended with Enter (its bytes, no terminator, at most
//! [`MAX_LINE_BYTES`]); on the shell → driver ring each message is output bytes for the UART,
//! written as they are (up to a slot). The driver notifies the shell when its UART is bound
//! (the shell greets), when it puts a line on the ring and the shell asked for a signal, and
//! after it took output (room was made); the shell notifies the driver when it puts output on
//! the ring and the driver asked, or when the driver notified and output is still there (the
//! driver takes a ring's worth at a time). The shell decodes a line with [`console_line`].
//!
//! [`entropy_reply`] and [`time_reply`] decode the call replies on the client's side.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bytes of a sector.
pub const SECTOR_BYTES: usize = 512;
/// Call label: entropy.
pub const ENTROPY: u64 = 1;
/// Call label: the time.
pub const TIME: u64 = 2;
/// Reply label: no device is bound yet.
pub const NOT_READY: u64 = 0xff;
/// Most entropy bytes one call returns.
pub const MAX_ENTROPY_BYTES: usize = 32;
/// Longest console input line, in bytes.
pub const MAX_LINE_BYTES: usize = 128;

/// A console input line from the driver, if it is one: at most [`MAX_LINE_BYTES`] of UTF-8
/// without control characters.
#[must_use]
pub fn console_line(bytes: &[u8]) -> Option<&str> {
    if bytes.len() > MAX_LINE_BYTES {
        return None;
    }
    let text = core::str::from_utf8(bytes).ok()?;
    (!text.chars().any(char::is_control)).then_some(text)
}

/// Why a driver's reply to a call was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// The driver has no device bound (label [`NOT_READY`]).
    NotReady,
    /// An empty reply (label 0, no registers): what libmicrokit (and the host platform)
    /// return when the PD may not call that channel, so there is no such driver.
    Refused,
    /// The reply does not have the shape the call's reply has.
    Malformed,
}

/// Decodes the reply to an [`ENTROPY`] call: its label and the registers it names (`count`
/// of them, read through `register`). The bytes are returned in a buffer of
/// [`MAX_ENTROPY_BYTES`] with their number.
///
/// # Errors
/// [`ReplyError`].
pub fn entropy_reply(
    label: u64,
    count: usize,
    register: impl Fn(usize) -> u64,
) -> Result<([u8; MAX_ENTROPY_BYTES], usize), ReplyError> {
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
    let mut bytes = [0u8; MAX_ENTROPY_BYTES];
    for (index, chunk) in bytes.chunks_mut(8).take(count - 1).enumerate() {
        chunk.copy_from_slice(&register(index).to_le_bytes());
    }
    Ok((bytes, got))
}

/// Decodes the reply to a [`TIME`] call: seconds since the Unix epoch.
///
/// # Errors
/// [`ReplyError`].
pub fn time_reply(
    label: u64,
    count: usize,
    register: impl Fn(usize) -> u64,
) -> Result<u64, ReplyError> {
    match (label, count) {
        (0, 1) => Ok(register(0)),
        (0, 0) => Err(ReplyError::Refused),
        (NOT_READY, _) => Err(ReplyError::NotReady),
        _ => Err(ReplyError::Malformed),
    }
}

/// A block operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockOperation {
    /// Read sectors into the data region.
    Read = 1,
    /// Write sectors from the data region.
    Write = 2,
    /// Make earlier writes durable.
    Flush = 3,
}

/// How a block request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockStatus {
    /// Done.
    Ok = 0,
    /// No disk is bound.
    NotReady = 1,
    /// Outside the disk or the data region, or malformed.
    Invalid = 2,
    /// The device reported an error.
    DeviceError = 3,
}

/// A block request on the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRequest {
    /// Chosen by the client, quoted in the response.
    pub id: u32,
    /// What to do.
    pub operation: BlockOperation,
    /// First sector.
    pub sector: u64,
    /// Sectors.
    pub count: u32,
    /// Offset of the data in the shared data region.
    pub offset: u32,
}

/// A block response on the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockResponse {
    /// The request's id.
    pub id: u32,
    /// How it ended.
    pub status: BlockStatus,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct RequestWire {
    id: U32,
    operation: U32,
    sector: U64,
    count: U32,
    offset: U32,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct ResponseWire {
    id: U32,
    status: U32,
}

/// Bytes of an encoded request.
pub const REQUEST_BYTES: usize = core::mem::size_of::<RequestWire>();
/// Bytes of an encoded response.
pub const RESPONSE_BYTES: usize = core::mem::size_of::<ResponseWire>();

impl BlockRequest {
    /// The request's bytes.
    #[must_use]
    pub fn encode(&self) -> [u8; REQUEST_BYTES] {
        let wire = RequestWire {
            id: U32::new(self.id),
            operation: U32::new(self.operation as u32),
            sector: U64::new(self.sector),
            count: U32::new(self.count),
            offset: U32::new(self.offset),
        };
        let mut out = [0u8; REQUEST_BYTES];
        out.copy_from_slice(wire.as_bytes());
        out
    }

    /// Decodes a request; `None` unless it is exactly one well-formed request.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let wire = RequestWire::read_from_bytes(bytes).ok()?;
        let operation = match wire.operation.get() {
            1 => BlockOperation::Read,
            2 => BlockOperation::Write,
            3 => BlockOperation::Flush,
            _ => return None,
        };
        Some(Self {
            id: wire.id.get(),
            operation,
            sector: wire.sector.get(),
            count: wire.count.get(),
            offset: wire.offset.get(),
        })
    }

    /// The data bytes it covers, if they lie within a data region of `region_bytes`.
    #[must_use]
    pub fn data_range(&self, region_bytes: usize) -> Option<core::ops::Range<usize>> {
        let start = usize::try_from(self.offset).ok()?;
        let length = usize::try_from(self.count)
            .ok()?
            .checked_mul(SECTOR_BYTES)?;
        let end = start.checked_add(length)?;
        (end <= region_bytes).then_some(start..end)
    }
}

impl BlockResponse {
    /// The response's bytes.
    #[must_use]
    pub fn encode(&self) -> [u8; RESPONSE_BYTES] {
        let wire = ResponseWire {
            id: U32::new(self.id),
            status: U32::new(self.status as u32),
        };
        let mut out = [0u8; RESPONSE_BYTES];
        out.copy_from_slice(wire.as_bytes());
        out
    }

    /// Decodes a response; `None` unless it is exactly one well-formed response.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let wire = ResponseWire::read_from_bytes(bytes).ok()?;
        let status = match wire.status.get() {
            0 => BlockStatus::Ok,
            1 => BlockStatus::NotReady,
            2 => BlockStatus::Invalid,
            3 => BlockStatus::DeviceError,
            _ => return None,
        };
        Some(Self {
            id: wire.id.get(),
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_messages_round_trip_and_junk_is_refused() {
        let request = BlockRequest {
            id: 7,
            operation: BlockOperation::Write,
            sector: 1 << 40,
            count: 2,
            offset: 512,
        };
        assert_eq!(BlockRequest::decode(&request.encode()), Some(request));
        assert_eq!(request.data_range(4096), Some(512..1536));
        assert_eq!(request.data_range(1024), None, "past the region");
        let huge = BlockRequest {
            count: u32::MAX,
            offset: u32::MAX,
            ..request
        };
        assert_eq!(huge.data_range(1 << 20), None, "far past the region");
        let mut bad = request.encode();
        bad[4] = 9;
        assert_eq!(BlockRequest::decode(&bad), None, "unknown operation");
        assert_eq!(BlockRequest::decode(&request.encode()[..20]), None, "short");
        let response = BlockResponse {
            id: 7,
            status: BlockStatus::DeviceError,
        };
        assert_eq!(BlockResponse::decode(&response.encode()), Some(response));
        assert_eq!(BlockResponse::decode(&[0, 0, 0, 0, 4, 0, 0, 0]), None);
    }

    #[test]
    fn console_lines_are_checked() {
        assert_eq!(console_line(b"tree"), Some("tree"));
        assert_eq!(
            console_line("r\u{e9}sum\u{e9}".as_bytes()),
            Some("r\u{e9}sum\u{e9}")
        );
        assert_eq!(console_line(b""), Some(""));
        assert_eq!(console_line(b"\xff\xfe"), None, "not UTF-8");
        assert_eq!(console_line(b"a\x1b[2Jb"), None, "a control character");
        assert_eq!(
            console_line(&[b'a'; MAX_LINE_BYTES]),
            Some(&*"a".repeat(MAX_LINE_BYTES))
        );
        assert_eq!(console_line(&[b'a'; MAX_LINE_BYTES + 1]), None, "too long");
    }

    #[test]
    fn call_replies_are_checked() {
        let words = [0x0807_0605_0403_0201u64, 0x0a09, 10];
        let (bytes, got) = entropy_reply(0, 3, |index| words[index]).unwrap();
        assert_eq!(&bytes[..got], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(
            entropy_reply(NOT_READY, 0, |_| 0),
            Err(ReplyError::NotReady)
        );
        // The count of bytes disagrees with the registers, is zero, or is too large.
        assert_eq!(entropy_reply(0, 0, |_| 0), Err(ReplyError::Refused));
        for (count, last) in [(3, 17), (3, 0), (3, 8), (2, 33), (1, 1)] {
            assert_eq!(
                entropy_reply(0, count, |index| if index + 1 == count { last } else { 0 }),
                Err(ReplyError::Malformed),
                "{count} registers, {last} bytes"
            );
        }
        assert_eq!(entropy_reply(5, 2, |_| 1), Err(ReplyError::Malformed));
        assert_eq!(time_reply(0, 1, |_| 1_795_597_369), Ok(1_795_597_369));
        assert_eq!(time_reply(NOT_READY, 0, |_| 0), Err(ReplyError::NotReady));
        assert_eq!(time_reply(0, 2, |_| 0), Err(ReplyError::Malformed));
        assert_eq!(time_reply(0, 0, |_| 0), Err(ReplyError::Refused));
    }
}
