//! The flattened-devicetree container: header checks and a bounds-checked structure-block reader.
//!
//! Everything here returns an error on bad input instead of panicking, and [`validate`] walks
//! the whole structure block once so that later readers (ours and the `fdt` crate's) only ever
//! see a well-formed token sequence.

use crate::error::BoardError;
use crate::MAX_DEPTH;

/// The flattened-devicetree magic, the blob's first big-endian word.
const MAGIC: u32 = 0xd00d_feed;
/// The version-17 header: ten big-endian words.
const HEADER_LEN: usize = 40;
/// The format this reader implements; `size_dt_struct` only exists from version 17 on.
const READ_VERSION: u32 = 17;

const FDT_BEGIN_NODE: u32 = 0x1;
const FDT_END_NODE: u32 = 0x2;
const FDT_PROP: u32 = 0x3;
const FDT_NOP: u32 = 0x4;
const FDT_END: u32 = 0x9;

/// The two blocks of a blob that has passed [`parse_header`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Blob<'a> {
    /// The structure block (`off_dt_struct`, `size_dt_struct`).
    pub(crate) structure: &'a [u8],
    /// The strings block (`off_dt_strings`, `size_dt_strings`).
    pub(crate) strings: &'a [u8],
}

fn header_word(dtb: &[u8], index: usize) -> Option<u32> {
    let start = index.checked_mul(4)?;
    let bytes = dtb.get(start..start.checked_add(4)?)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

/// The `[offset, offset + size)` block of a `total`-byte blob, if it lies inside it.
fn block<'a>(
    whole: &'a [u8],
    offset: u32,
    size: u32,
    field: &'static str,
) -> Result<&'a [u8], BoardError<'a>> {
    let start = usize::try_from(offset).map_err(|_| BoardError::BadHeader { field })?;
    let length = usize::try_from(size).map_err(|_| BoardError::BadHeader { field })?;
    let end = start
        .checked_add(length)
        .ok_or(BoardError::BadHeader { field })?;
    whole.get(start..end).ok_or(BoardError::BadHeader { field })
}

/// Checks the header and returns the blob cut to `totalsize` with its two blocks.
pub(crate) fn parse_header(dtb: &[u8]) -> Result<(&[u8], Blob<'_>), BoardError<'_>> {
    let word = |index| {
        header_word(dtb, index).ok_or(BoardError::Truncated {
            needed: HEADER_LEN,
            available: dtb.len(),
        })
    };
    let magic = word(0)?;
    if magic != MAGIC {
        return Err(BoardError::BadMagic { found: magic });
    }
    let total_size = word(1)?;
    let off_dt_struct = word(2)?;
    let off_dt_strings = word(3)?;
    let off_mem_rsvmap = word(4)?;
    let version = word(5)?;
    let last_compatible_version = word(6)?;
    let size_dt_strings = word(8)?;
    let size_dt_struct = word(9)?;

    let total =
        usize::try_from(total_size).map_err(|_| BoardError::BadHeader { field: "totalsize" })?;
    if total < HEADER_LEN {
        return Err(BoardError::BadHeader { field: "totalsize" });
    }
    let whole = dtb.get(..total).ok_or(BoardError::Truncated {
        needed: total,
        available: dtb.len(),
    })?;
    if version < READ_VERSION || last_compatible_version > READ_VERSION {
        return Err(BoardError::UnsupportedVersion {
            version,
            last_compatible_version,
        });
    }
    let structure = block(
        whole,
        off_dt_struct,
        size_dt_struct,
        "off_dt_struct/size_dt_struct",
    )?;
    let strings = block(
        whole,
        off_dt_strings,
        size_dt_strings,
        "off_dt_strings/size_dt_strings",
    )?;
    // The reservation map is not read here, but a header pointing it outside the blob is
    // corrupt; each entry is 16 bytes and the map ends with an all-zero one.
    block(whole, off_mem_rsvmap, 16, "off_mem_rsvmap")?;
    Ok((whole, Blob { structure, strings }))
}

/// One structure-block token (NOPs are skipped by [`Cursor::next_token`]).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Token<'a> {
    /// `FDT_BEGIN_NODE` with the node's name (`name@unit-address`, empty for the root).
    BeginNode(&'a str),
    /// `FDT_END_NODE`.
    EndNode,
    /// `FDT_PROP` with its name (from the strings block) and value.
    Property { name: &'a str, value: &'a [u8] },
    /// `FDT_END`.
    End,
}

/// A position in the structure block; `Copy`, so that a caller can look ahead and go back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor<'a> {
    blob: Blob<'a>,
    offset: usize,
}

const fn malformed<'a>(offset: usize, reason: &'static str) -> BoardError<'a> {
    BoardError::Malformed { offset, reason }
}

/// The NUL-terminated UTF-8 string at the start of `bytes`, without its NUL.
fn c_string(bytes: &[u8]) -> Option<&str> {
    let end = bytes.iter().position(|&b| b == 0)?;
    core::str::from_utf8(bytes.get(..end)?).ok()
}

/// Rounds `offset` up to the next multiple of 4 (tokens are 4-byte aligned).
fn align4(offset: usize) -> Option<usize> {
    Some(offset.checked_add(3)? & !3)
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of the structure block.
    pub(crate) const fn new(blob: Blob<'a>) -> Self {
        Self { blob, offset: 0 }
    }

    /// A cursor at `offset` of the structure block (a node's begin token, from an index).
    pub(crate) const fn at(blob: Blob<'a>, offset: usize) -> Self {
        Self { blob, offset }
    }

    /// The offset of the next token, from the start of the structure block.
    pub(crate) const fn offset(&self) -> usize {
        self.offset
    }

    fn word(&mut self) -> Result<u32, BoardError<'a>> {
        let at = self.offset;
        let end = at.checked_add(4).ok_or(malformed(at, "offset overflow"))?;
        let bytes = self
            .blob
            .structure
            .get(at..end)
            .ok_or(malformed(at, "the structure block ends inside a token"))?;
        let word = u32::from_be_bytes(
            bytes
                .try_into()
                .map_err(|_| malformed(at, "the structure block ends inside a token"))?,
        );
        self.offset = end;
        Ok(word)
    }

    /// Reads the next token other than `FDT_NOP`.
    pub(crate) fn next_token(&mut self) -> Result<Token<'a>, BoardError<'a>> {
        loop {
            let at = self.offset;
            match self.word()? {
                FDT_NOP => {}
                FDT_BEGIN_NODE => {
                    let rest = self.blob.structure.get(self.offset..).unwrap_or_default();
                    let name = c_string(rest)
                        .ok_or(malformed(at, "node name is unterminated or not UTF-8"))?;
                    self.offset = self
                        .offset
                        .checked_add(name.len() + 1)
                        .and_then(align4)
                        .ok_or(malformed(at, "offset overflow"))?;
                    return Ok(Token::BeginNode(name));
                }
                FDT_END_NODE => return Ok(Token::EndNode),
                FDT_PROP => {
                    let length = self.word()?;
                    let name_offset = self.word()?;
                    let length = usize::try_from(length)
                        .map_err(|_| malformed(at, "property length overflow"))?;
                    let value_end = self
                        .offset
                        .checked_add(length)
                        .ok_or(malformed(at, "property length overflow"))?;
                    let value =
                        self.blob
                            .structure
                            .get(self.offset..value_end)
                            .ok_or(malformed(
                                at,
                                "property value runs past the structure block",
                            ))?;
                    self.offset = align4(value_end).ok_or(malformed(at, "offset overflow"))?;
                    let name = usize::try_from(name_offset)
                        .ok()
                        .and_then(|start| self.blob.strings.get(start..))
                        .and_then(c_string)
                        .ok_or(malformed(
                            at,
                            "property name offset is outside the strings block, or the name is \
                             unterminated or not UTF-8",
                        ))?;
                    return Ok(Token::Property { name, value });
                }
                FDT_END => return Ok(Token::End),
                _ => return Err(malformed(at, "unknown token")),
            }
        }
    }

    /// Reads the properties at the cursor (those of the node just begun), leaving the cursor
    /// on the first token that is not a property.
    pub(crate) fn node_properties(&mut self) -> Result<NodeProperties<'a>, BoardError<'a>> {
        let mut properties = NodeProperties::default();
        loop {
            let before = *self;
            match self.next_token()? {
                Token::Property { name, value } => properties.record(name, value),
                _ => {
                    *self = before;
                    return Ok(properties);
                }
            }
        }
    }
}

/// The properties of one node that Warden reads (raw values; each reader checks its own).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct NodeProperties<'a> {
    pub(crate) compatible: Option<&'a [u8]>,
    pub(crate) status: Option<&'a [u8]>,
    pub(crate) reg: Option<&'a [u8]>,
    pub(crate) ranges: Option<&'a [u8]>,
    pub(crate) address_cells: Option<&'a [u8]>,
    pub(crate) size_cells: Option<&'a [u8]>,
    pub(crate) interrupts: Option<&'a [u8]>,
    pub(crate) interrupt_parent: Option<&'a [u8]>,
    pub(crate) interrupts_extended: Option<&'a [u8]>,
    pub(crate) interrupt_cells: Option<&'a [u8]>,
    pub(crate) phandle: Option<&'a [u8]>,
    pub(crate) device_type: Option<&'a [u8]>,
    pub(crate) bus_range: Option<&'a [u8]>,
    pub(crate) interrupt_map: Option<&'a [u8]>,
    pub(crate) interrupt_map_mask: Option<&'a [u8]>,
}

impl<'a> NodeProperties<'a> {
    fn record(&mut self, name: &str, value: &'a [u8]) {
        let slot = match name {
            "compatible" => &mut self.compatible,
            "status" => &mut self.status,
            "reg" => &mut self.reg,
            "ranges" => &mut self.ranges,
            "#address-cells" => &mut self.address_cells,
            "#size-cells" => &mut self.size_cells,
            "interrupts" => &mut self.interrupts,
            "interrupt-parent" => &mut self.interrupt_parent,
            "interrupts-extended" => &mut self.interrupts_extended,
            "#interrupt-cells" => &mut self.interrupt_cells,
            "device_type" => &mut self.device_type,
            "bus-range" => &mut self.bus_range,
            "interrupt-map" => &mut self.interrupt_map,
            "interrupt-map-mask" => &mut self.interrupt_map_mask,
            // Old trees carry only the pre-standard spelling.
            "phandle" | "linux,phandle" => &mut self.phandle,
            _ => return,
        };
        // A property appearing twice is invalid; like libfdt's lookup, the first one counts.
        if slot.is_none() {
            *slot = Some(value);
        }
    }
}

/// Checks that the structure block is one well-formed tree: a root node named "" first,
/// properties before child nodes, balanced begin/end tokens no deeper than [`MAX_DEPTH`],
/// every name terminated and UTF-8, every value and name offset in bounds, and `FDT_END` last.
///
/// This is also what makes the `fdt` crate safe to use on the blob: fdt 0.1.5 indexes, unwraps
/// and asserts its way through these same tokens and panics when any of this does not hold.
pub(crate) fn validate(blob: Blob<'_>) -> Result<(), BoardError<'_>> {
    let mut cursor = Cursor::new(blob);
    let mut depth = 0_usize;
    // Properties are allowed until the current node's first child begins.
    let mut properties_allowed = false;
    let mut root_seen = false;
    loop {
        let at = cursor.offset();
        match cursor.next_token()? {
            Token::BeginNode(name) => {
                if depth == 0 {
                    if root_seen {
                        return Err(malformed(at, "a second root node"));
                    }
                    if !name.is_empty() {
                        return Err(malformed(at, "the root node has a name"));
                    }
                    root_seen = true;
                }
                depth += 1;
                // `depth` counts the root as 1: a node at `MAX_DEPTH` makes it `MAX_DEPTH + 1`.
                if depth > MAX_DEPTH + 1 {
                    return Err(BoardError::TooDeep { offset: at });
                }
                properties_allowed = true;
            }
            Token::EndNode => {
                depth = depth
                    .checked_sub(1)
                    .ok_or(malformed(at, "end of a node never begun"))?;
                properties_allowed = false;
            }
            Token::Property { .. } => {
                if depth == 0 {
                    return Err(malformed(at, "a property outside any node"));
                }
                if !properties_allowed {
                    return Err(malformed(at, "a property after a child node"));
                }
            }
            Token::End => {
                if depth != 0 {
                    return Err(malformed(at, "the structure ends inside a node"));
                }
                if !root_seen {
                    return Err(malformed(at, "no root node"));
                }
                return Ok(());
            }
        }
    }
}
