//! The stored totals of the cross accounts, by account index: in i64 when every sum fits
//! (any book at ordinary cash decimals: 2^63 cash units is 9.2·10^10 at 8 decimals), else
//! exactly in i128 beside. Half the bytes of i128 totals for the common case; exact always.

use rustc_hash::FxHashMap;

use crate::core::book::cross_totals::CrossTotals;

/// `wallet` of an account whose sums are held wide.
const WIDE: i64 = i64::MIN;

/// One account's sums in i64 (`wallet == WIDE`: in `SumsTable::wide`).
#[derive(Clone, Copy, Default)]
struct Narrow {
    wallet: i64,
    upnl: i64,
    maintenance: i64,
    notional: i64,
    abs_upnl: i64,
    /// The book's `version` when the totals were last brought to the current marks.
    version: u64,
}

/// Totals and Σ|PnL| of each account at the marks its members are counted at.
#[derive(Clone, Default)]
pub struct SumsTable {
    narrow: Vec<Narrow>,
    wide: FxHashMap<u32, (CrossTotals, i128)>,
}

impl SumsTable {
    /// The totals and Σ|PnL| of account `i`.
    #[inline]
    pub fn get(&self, i: u32) -> (CrossTotals, i128) {
        let n = &self.narrow[i as usize];
        if n.wallet == WIDE {
            return self.wide[&i];
        }
        let t = CrossTotals {
            wallet: n.wallet as i128,
            upnl: n.upnl as i128,
            maintenance: n.maintenance as i128,
            notional: n.notional as i128,
        };
        (t, n.abs_upnl as i128)
    }

    /// Sets account `i`'s totals and Σ|PnL| (its version unchanged).
    pub fn set(&mut self, i: u32, t: CrossTotals, abs: i128) {
        let n = &mut self.narrow[i as usize];
        let fit = |x: i128| i64::try_from(x).ok().filter(|&x| x != WIDE);
        if n.wallet == WIDE {
            self.wide.remove(&i);
        }
        match (fit(t.wallet), fit(t.upnl), fit(t.maintenance), fit(t.notional), fit(abs)) {
            (Some(wallet), Some(upnl), Some(maintenance), Some(notional), Some(abs_upnl)) => {
                *n = Narrow { wallet, upnl, maintenance, notional, abs_upnl, version: n.version };
            }
            _ => {
                n.wallet = WIDE;
                self.wide.insert(i, (t, abs));
            }
        }
    }

    #[inline]
    pub fn version(&self, i: u32) -> u64 {
        self.narrow[i as usize].version
    }
    pub fn set_version(&mut self, i: u32, v: u64) {
        self.narrow[i as usize].version = v;
    }

    /// A new account at the end, with zero totals.
    pub fn push(&mut self) {
        self.narrow.push(Narrow::default());
    }
    /// Zeroes account `i` (its index is reused).
    pub fn clear(&mut self, i: u32) {
        self.set(i, CrossTotals::default(), 0);
        self.narrow[i as usize].version = 0;
    }

    pub fn shrink_to_fit(&mut self) {
        self.narrow.shrink_to_fit();
    }

    /// Heap bytes.
    pub fn footprint(&self) -> usize {
        use crate::core::units::footprint::{table, vec};
        vec(&self.narrow) + table::<(u32, (CrossTotals, i128))>(self.wide.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_beyond_i64_are_kept_exactly() {
        let mut s = SumsTable::default();
        s.push();
        let small = CrossTotals { wallet: 100, upnl: -40, maintenance: 48, notional: 960 };
        s.set(0, small, 40);
        assert_eq!(s.get(0), (small, 40));
        assert!(s.wide.is_empty());
        // A wallet of 2^63 does not fit i64; i64::MIN itself fits but is the marker: both wide.
        let big = CrossTotals { wallet: 1 << 63, ..small };
        s.set(0, big, 40);
        assert_eq!(s.get(0), (big, 40));
        let marker = CrossTotals { upnl: i64::MIN as i128, ..small };
        s.set(0, marker, 1 << 100);
        assert_eq!(s.get(0), (marker, 1 << 100));
        // Back to narrow: the wide entry goes.
        s.set(0, small, 40);
        assert_eq!((s.get(0), s.wide.len()), ((small, 40), 0));
    }
}
