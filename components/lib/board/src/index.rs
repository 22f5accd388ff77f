//! The phandle index: every node's phandle with the offset of its begin token, sorted, so that
//! resolving an `interrupt-parent` is a binary search instead of a walk over the whole tree.

use crate::blob::{Blob, Cursor, NodeProperties, Token};
use crate::error::BoardError;

/// One entry of a [`PhandleIndex`]: a phandle and where its node begins.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PhandleSlot {
    phandle: u32,
    /// Offset of the node's `FDT_BEGIN_NODE`, from the start of the structure block.
    offset: u32,
}

/// A board's phandles, indexed by [`crate::Board::index_phandles`] into storage the caller
/// owns (the crate allocates nothing).
#[derive(Debug, Clone, Copy)]
pub struct PhandleIndex<'i> {
    slots: &'i [PhandleSlot],
}

impl<'i> PhandleIndex<'i> {
    pub(crate) const fn slots(&self) -> &'i [PhandleSlot] {
        self.slots
    }

    /// How many phandles it holds.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.slots.len()
    }

    /// It holds none.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

fn phandle_of(properties: &NodeProperties<'_>) -> Option<u32> {
    Some(u32::from_be_bytes(properties.phandle?.try_into().ok()?))
}

/// Calls `each(phandle, offset)` for every node with a phandle, in tree order. The blob has
/// been validated, so a token error cannot happen; should one, the walk ends there.
fn walk(blob: Blob<'_>, mut each: impl FnMut(u32, usize)) {
    let mut cursor = Cursor::new(blob);
    loop {
        let at = cursor.offset();
        match cursor.next_token() {
            Ok(Token::BeginNode(_)) => {
                let Ok(properties) = cursor.node_properties() else {
                    return;
                };
                if let Some(phandle) = phandle_of(&properties) {
                    each(phandle, at);
                }
            }
            Ok(Token::EndNode | Token::Property { .. }) => {}
            Ok(Token::End) | Err(_) => return,
        }
    }
}

pub(crate) fn count(blob: Blob<'_>) -> usize {
    let mut count = 0;
    walk(blob, |_, _| count += 1);
    count
}

pub(crate) fn build<'a, 'i>(
    blob: Blob<'a>,
    storage: &'i mut [PhandleSlot],
) -> Result<PhandleIndex<'i>, BoardError<'a>> {
    let given = storage.len();
    let mut used = 0;
    let mut overflow = 0;
    walk(blob, |phandle, offset| {
        // The structure block of a blob whose header passed fits in a u32 offset.
        let offset = u32::try_from(offset).unwrap_or(u32::MAX);
        match storage.get_mut(used) {
            Some(slot) => {
                *slot = PhandleSlot { phandle, offset };
                used += 1;
            }
            None => overflow += 1,
        }
    });
    if overflow > 0 {
        return Err(BoardError::IndexTooSmall {
            needed: used + overflow,
            given,
        });
    }
    let slots = storage.get_mut(..used).unwrap_or_default();
    // By phandle, then by offset: the first of duplicates in tree order comes first.
    slots.sort_unstable();
    Ok(PhandleIndex { slots })
}

/// The offset of the node with `phandle` (the first in tree order), from a sorted index.
pub(crate) fn find(slots: &[PhandleSlot], phandle: u32) -> Option<usize> {
    let first = slots.partition_point(|slot| slot.phandle < phandle);
    let slot = slots.get(first).filter(|slot| slot.phandle == phandle)?;
    usize::try_from(slot.offset).ok()
}
