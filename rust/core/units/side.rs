//! Sides of a position: +1 long, -1 short, and their slot in per-market arrays.

/// +1 long, -1 short.
pub type Side = i8;
pub const LONG: Side = 1;
pub const SHORT: Side = -1;

/// 0 for long, 1 for short: the slot of a side in per-market arrays.
#[inline]
pub fn side_slot(side: Side) -> usize {
    (side < 0) as usize
}

pub fn side_name(side: Side) -> &'static str {
    if side > 0 {
        "long"
    } else {
        "short"
    }
}
