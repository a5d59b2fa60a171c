//! Exact ledger totals for audits. Each term fits in i128 (a position's value is at most
//! 10^15 lots × 10^15 ticks × 10^8 = 10^38 cash units), but a sum over many positions or
//! accounts need not, so the sums are kept in a 192-bit accumulator: `hi·2^64 + lo`.

use rustc_hash::FxHashMap;

use crate::core::book::position::Side;
use crate::core::engine::{Engine, FillKind, Liquidation};

/// A sum of i128 terms that cannot overflow (for up to 2^63 terms).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wide {
    /// Multiples of 2^64.
    pub hi: i128,
    /// The rest, in `[0, 2^64)`.
    pub lo: i128,
}

impl Wide {
    pub fn add(&mut self, x: i128) {
        // x = carry·2^64 + rest with rest in [0, 2^64): nothing here can overflow.
        let (carry, rest) = (x >> 64, x & (u64::MAX as i128));
        self.hi += carry;
        self.lo += rest;
        self.hi += self.lo >> 64;
        self.lo &= u64::MAX as i128;
    }
    /// The value when it fits in i128.
    pub fn narrow(&self) -> Option<i128> {
        self.hi.checked_mul(1 << 64)?.checked_add(self.lo)
    }
}

impl FromIterator<i128> for Wide {
    fn from_iter<I: IntoIterator<Item = i128>>(it: I) -> Wide {
        let mut w = Wide::default();
        it.into_iter().for_each(|x| w.add(x));
        w
    }
}

/// `Totals` with every field exact (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WideTotals {
    pub cash: Wide,
    pub position_equity: Wide,
    pub fund: Wide,
    pub bad_debt: Wide,
    pub book_value: Wide,
    pub fees: Wide,
    pub long_lots: Wide,
    pub short_lots: Wide,
}

impl Engine {
    /// Ledger totals at the current marks, exactly, whatever the book (positions in markets
    /// without marks count margin only); `totals()` holds the same values when they fit.
    pub fn wide_totals(&self) -> WideTotals {
        let mut t = WideTotals {
            cash: self.cash_entries().map(|(_, c)| c).collect(),
            fund: self.funds().pools().iter().map(|p| p.balance).collect(),
            bad_debt: [self.bad_debt()].into_iter().collect(),
            book_value: [self.book_value].into_iter().collect(),
            fees: [self.fees].into_iter().collect(),
            ..WideTotals::default()
        };
        for (_, p) in self.store().iter() {
            t.position_equity.add(self.position_equity(&p));
            if p.side == Side::Long { &mut t.long_lots } else { &mut t.short_lots }.add(p.qty as i128);
        }
        t
    }
}

/// Every account's cash and every cross account's TNC before an operation, to check that the
/// operation made nobody insolvent (docs/model.md §2, step 4).
#[derive(Clone, Debug, Default)]
pub struct SolvencyBaseline {
    cash: FxHashMap<u64, i128>,
    tnc: FxHashMap<u64, i128>,
}

impl SolvencyBaseline {
    pub fn of(e: &Engine) -> SolvencyBaseline {
        SolvencyBaseline { cash: e.accounts_cash(), tnc: e.cross_accounts().map(|(a, t)| (a, t.tnc())).collect() }
    }

    /// Checks every ADL counterparty of `results` (accounts liquidated in them excepted): an
    /// isolated one received cash >= 0 (its free cash did not fall); a cross one keeps
    /// `TNC >= min(TNC before, 0)` (its wallet once it holds nothing cross): cross fills keep it
    /// >= 0 and isolated credits only raise it, so an account holding both is checked on its
    /// TNC. The error names the first account that breaks this.
    pub fn check<'a>(&self, after: &Engine, results: impl IntoIterator<Item = &'a Liquidation> + Clone) -> Result<(), String> {
        let liquidated: Vec<u64> = results.clone().into_iter().map(|l| l.key.0).collect();
        let tnc_after: FxHashMap<u64, i128> = after.cross_accounts().map(|(a, t)| (a, t.tnc())).collect();
        for l in results {
            for f in l.fills.iter().filter(|f| f.kind == FillKind::Adl) {
                let Some(cp) = f.account.filter(|a| !liquidated.contains(a)) else { continue };
                let cash = |a| self.cash.get(&a).copied().unwrap_or(0);
                match self.tnc.get(&cp) {
                    Some(&before) => {
                        let now = tnc_after.get(&cp).copied().unwrap_or_else(|| after.cash_of(cp));
                        if now < before.min(0) {
                            return Err(format!("ADL took cross account {cp} from TNC {before} to {now}"));
                        }
                    }
                    None if after.cash_of(cp) < cash(cp) => {
                        return Err(format!("ADL paid account {cp} negative cash: {} -> {}", cash(cp), after.cash_of(cp)));
                    }
                    None => {}
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_beyond_i128_are_exact() {
        let big = 10i128.pow(38);
        // 3·10^38 − 10^38 + 5 = 2·10^38 + 5 = hi·2^64 + lo.
        let w: Wide = [big, big, big, -big, 5].into_iter().collect();
        let two_e38_plus_5: u128 = 2 * 10u128.pow(38) + 5;
        assert_eq!((w.hi as u128) << 64 | w.lo as u128, two_e38_plus_5);
        assert_eq!(w.narrow(), None);
        let small: Wide = [7, -10, 2].into_iter().collect();
        assert_eq!((small.hi, small.lo, small.narrow()), (-1, (1 << 64) - 1, Some(-1)));
        let neg: Wide = [-big, -big].into_iter().collect();
        assert_eq!(neg.narrow(), None);
        assert_eq!((neg.hi as f64 * 2f64.powi(64) / 1e38).round(), -2.0);
    }
}
