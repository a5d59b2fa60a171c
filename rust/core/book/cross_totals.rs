//! An account's cross totals (docs/model.md §6): `TNC = W + Σu`, `TMMR = Σ MM_i`, equity
//! shares, and the bound `CROSS_LIMIT` every sum stays within.

use crate::core::book::cross_bounds::Terms;
use crate::core::book::position::Position;
use crate::core::market::instrument::Instrument;
use crate::core::market::tiers::Tiers;
use crate::core::units::error::AdlError;
use crate::core::units::fixed::Grid;

/// An account's cross totals at the current marks, in cash units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrossTotals {
    pub wallet: i128,
    pub upnl: i128,
    pub maintenance: i128,
    pub notional: i128,
}

impl CrossTotals {
    /// Total net collateral `W + Σu`.
    pub fn tnc(&self) -> i128 {
        self.wallet + self.upnl
    }
    /// `TNC < TMMR`: every cross position of the account is liquidatable.
    pub fn liquidatable(&self) -> bool {
        self.tnc() < self.maintenance
    }
    /// `floor(TNC·part/whole)`: the equity share of a position whose maintenance is `mm` and
    /// notional `n` (by notional when the account has no maintenance at all).
    pub fn share(&self, mm: i128, n: i128) -> i128 {
        let (part, whole) = if self.maintenance > 0 { (mm, self.maintenance) } else { (n, self.notional) };
        let tnc = self.tnc();
        if whole <= 0 || part >= whole {
            return tnc;
        }
        match tnc.checked_mul(part) {
            Some(x) => x.div_euclid(whole),
            // Beyond 128 bits (no real book gets here): the nearest float share, rounded down.
            None => (tnc as f64 * (part as f64 / whole as f64)).floor() as i128,
        }
    }
}

/// PnL, maintenance and notional of a position in cash units. A market without a mark yet
/// counts the entry price (no PnL).
pub fn terms(p: &Position, grid: &Grid, tiers: &Tiers, mark: Option<i64>) -> (i128, i128, i128) {
    let mark = mark.unwrap_or(p.entry);
    (p.upnl(grid, mark), p.maintenance(grid, mark, tiers), grid.notional(p.qty, mark))
}

/// Bound on an account's cross sums, in cash units: |wallet|, Σ|PnL|, Σ maintenance and
/// Σ notional each at most 2^124 (2.1·10^37). A position alone may be worth 10^38
/// (10^15 lots × 10^15 ticks × 10^8), so sums of a few could pass i128; within the bound every
/// formula here (TNC, shares, effective and liquidation margins: sums of at most eight such
/// terms) fits i128, and so does any account that holds a subset of the positions at the
/// same marks (Σ|PnL| bounds every partial sum). Calls that would go beyond are refused.
pub const CROSS_LIMIT: i128 = 1 << 124;

/// The totals of a wallet and these positions at their markets' marks, or `None` beyond
/// `CROSS_LIMIT`.
pub fn bounded_totals<'a>(wallet: i128, positions: impl Iterator<Item = (&'a Position, &'a Instrument)>) -> Option<CrossTotals> {
    let within = |x: i128| x.abs() <= CROSS_LIMIT;
    let mut t = CrossTotals { wallet, ..CrossTotals::default() };
    let mut abs_upnl = 0i128;
    for (p, m) in positions {
        // Each term fits i128 (at most 10^38); each running sum is checked before the next.
        let (u, mm, n) = terms(p, &m.grid, &m.tiers, m.mark);
        abs_upnl += u.abs();
        t.upnl += u;
        t.maintenance += mm;
        t.notional += n;
        if !(within(abs_upnl) && within(t.maintenance) && within(t.notional)) {
            return None;
        }
    }
    within(wallet).then_some(t)
}

/// `bounded_totals` from terms already computed: the totals and Σ|PnL|.
pub fn bounded(wallet: i128, terms: impl Iterator<Item = Terms>) -> Option<(CrossTotals, i128)> {
    let within = |x: i128| x.abs() <= CROSS_LIMIT;
    let mut t = CrossTotals { wallet, ..CrossTotals::default() };
    let mut abs_upnl = 0i128;
    for x in terms {
        abs_upnl += x.upnl.abs();
        t.upnl += x.upnl;
        t.maintenance += x.maintenance;
        t.notional += x.notional;
        if !(within(abs_upnl) && within(t.maintenance) && within(t.notional)) {
            return None;
        }
    }
    within(wallet).then_some((t, abs_upnl))
}

/// The refusal of an account whose sums would pass `CROSS_LIMIT`.
pub fn beyond(account: u64) -> AdlError {
    AdlError::overflow(&format!("the cross totals of account {account} (each sum is limited to 2^124 cash units)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_by_maintenance_then_notional() {
        // TNC = 100 + (−40) = 60; maintenance 30 of which this position 10: share 20.
        let t = CrossTotals { wallet: 100, upnl: -40, maintenance: 30, notional: 3_000 };
        assert_eq!(t.share(10, 1_000), 20);
        // Rounded down, also for negative collateral: −7·1/3 = −2.33 → −3.
        let t = CrossTotals { wallet: 0, upnl: -7, maintenance: 3, notional: 300 };
        assert_eq!(t.share(1, 100), -3);
        // No maintenance at all: by notional, 60·1,000/3,000 = 20.
        let t = CrossTotals { wallet: 100, upnl: -40, maintenance: 0, notional: 3_000 };
        assert_eq!(t.share(0, 1_000), 20);
        assert!(!t.liquidatable());
    }
}
