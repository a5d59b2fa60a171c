//! Sides of a position: long or short, their sign and their slot in per-market arrays.
//!
//! A `Side` is parsed once from its code (+1 long, −1 short) where one enters: input columns
//! (`book::input::parse_row`), arguments (`TryFrom<i8>`, `book::input::check_side` when the
//! error names a row), log and snapshot records. Inside, it is always one of the two.

/// +1 long, −1 short. `#[repr(i8)]` with the sign as discriminant: one byte, as the `i8` code
/// it replaces (`Position` stays 56 bytes), and `sign` is that byte, so arithmetic by side
/// compiles to the same sign-extended multiply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(i8)]
pub enum Side {
    Short = -1,
    Long = 1,
}

/// Hashed as its code, so maps keyed by side hash as they did when it was an `i8`.
impl std::hash::Hash for Side {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.sign().hash(state);
    }
}

impl Side {
    /// Both sides in slot order (long, short).
    pub const BOTH: [Side; 2] = [Side::Long, Side::Short];

    /// +1 or −1.
    #[inline(always)]
    pub const fn sign(self) -> i8 {
        self as i8
    }

    #[inline(always)]
    pub const fn sign_i64(self) -> i64 {
        self as i8 as i64
    }

    #[inline(always)]
    pub const fn sign_i128(self) -> i128 {
        self as i8 as i128
    }

    #[inline(always)]
    pub const fn sign_f64(self) -> f64 {
        self as i8 as f64
    }

    /// 0 for long, 1 for short: the slot of a side in per-market arrays.
    #[inline(always)]
    pub const fn slot(self) -> usize {
        ((self as i8) < 0) as usize
    }

    /// The side in slot `slot` (0 long, else short).
    #[inline(always)]
    pub const fn of_slot(slot: usize) -> Side {
        if slot == 0 {
            Side::Long
        } else {
            Side::Short
        }
    }

    #[inline(always)]
    pub const fn opposite(self) -> Side {
        match self {
            Side::Long => Side::Short,
            Side::Short => Side::Long,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Side::Long => "long",
            Side::Short => "short",
        }
    }

    /// The side of a code already screened as +1 or −1 (a validated input column, see
    /// `book::input::block_valid`): a sign test, branch-free, no check.
    #[inline(always)]
    pub const fn of_screened(code: i8) -> Side {
        if code < 0 {
            Side::Short
        } else {
            Side::Long
        }
    }

    /// The side of a code, `None` unless it is +1 or −1 (callers name the field in their
    /// error: `TryFrom<i8>`, `book::input::check_side`).
    #[inline(always)]
    pub const fn of(code: i8) -> Option<Side> {
        match code {
            1 => Some(Side::Long),
            -1 => Some(Side::Short),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_signs_and_slots() {
        // The discriminant is the code: one byte, and the same sign arithmetic as the i8.
        assert_eq!(std::mem::size_of::<Side>(), 1);
        assert_eq!(std::mem::size_of::<Option<Side>>(), 1);
        for (side, code, slot, name) in [(Side::Long, 1i8, 0usize, "long"), (Side::Short, -1, 1, "short")] {
            assert_eq!((side.sign(), side.sign_i64(), side.sign_i128(), side.sign_f64()), (code, code as i64, code as i128, code as f64));
            assert_eq!((side.slot(), Side::of_slot(slot), side.name()), (slot, side, name));
            assert_eq!(Side::of(code), Some(side));
            assert_eq!(side.opposite().sign(), -code);
        }
        assert!([0i8, 2, -2, i8::MIN, i8::MAX].iter().all(|&c| Side::of(c).is_none()));
        // Ordered as the codes (short < long), as sorts by side were.
        assert!(Side::Short < Side::Long);
    }
}
