//! The packed state of one block-map entry.
//!
//! ```text
//!   63                                  2  1  0
//!  +-------------------------------------+-----+
//!  | slot (62 bits)                      | tag |   tag 00 untouched (whole word 0)
//!  +-------------------------------------+-----+       01 copying, bit 2 = a writer is parked
//!                                                      10 preserved(slot)
//! ```

/// Raw word of an untouched entry.
pub(crate) const UNTOUCHED: u64 = 0;
/// Raw word of an entry being copied.
pub(crate) const COPYING: u64 = 0b01;
/// Set on a copying entry when a writer parks on it.
pub(crate) const WAITERS: u64 = 0b100;
const TAG_MASK: u64 = 0b11;
const TAG_PRESERVED: u64 = 0b10;

/// The largest slot number an entry can hold.
pub const MAX_SLOT: u64 = (1 << 62) - 1;

/// The decoded state of a block-map entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Nothing preserved for this block.
    Untouched,
    /// A writer is copying the block; the copy is not readable yet.
    Copying,
    /// The block's data lives in this diff-area slot.
    Preserved(u64),
}

impl Entry {
    #[inline]
    pub(crate) fn decode(word: u64) -> Entry {
        match word & TAG_MASK {
            0 => Entry::Untouched,
            TAG_PRESERVED => Entry::Preserved(word >> 2),
            _ => Entry::Copying,
        }
    }
}

#[inline]
pub(crate) fn preserved(slot: u64) -> u64 {
    debug_assert!(slot <= MAX_SLOT);
    (slot << 2) | TAG_PRESERVED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips() {
        assert_eq!(Entry::decode(UNTOUCHED), Entry::Untouched);
        assert_eq!(Entry::decode(COPYING), Entry::Copying);
        assert_eq!(Entry::decode(COPYING | WAITERS), Entry::Copying);
        for s in [0, 1, 12345, MAX_SLOT] {
            assert_eq!(Entry::decode(preserved(s)), Entry::Preserved(s));
        }
    }
}
