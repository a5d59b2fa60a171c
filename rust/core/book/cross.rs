//! Cross margin (docs/model.md §6). An account's cross positions hold no margin of their own:
//! they share the account's wallet `W`, which is its free cash. Net collateral is
//! `TNC = W + Σu` and maintenance `TMMR = Σ MM_i` over the account's cross positions.
//!
//! A cross position's equity is its share of TNC by maintenance, `TNC·MM_i/TMMR` (by notional
//! when TMMR = 0), rounded down. Its *effective margin* is that share less its own PnL. With
//! it, the isolated bankruptcy price `E − σM/q` is the §6 price `P − σ·TNC_i/q`, so the
//! isolated scores and waterfall apply to cross positions unchanged.

use rustc_hash::FxHashMap;

use crate::core::book::position::{Position, PositionStore};
use crate::core::market::instrument::Instrument;
use crate::core::market::tiers::Tiers;
use crate::core::units::error::{AdlError, Result};
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

#[derive(Clone, Default)]
pub(crate) struct CrossAccount {
    slots: Vec<u32>,
    totals: CrossTotals,
}

/// The cross accounts of an engine: their positions' slots and totals at the marks. Totals
/// are refreshed by the engine whenever marks, the account's cash or its positions change.
#[derive(Clone, Default)]
pub struct CrossBook {
    accounts: FxHashMap<u64, CrossAccount>,
}

impl CrossBook {
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }
    pub fn add(&mut self, account: u64, slot: u32) {
        self.accounts.entry(account).or_default().slots.push(slot);
    }
    /// Forgets a closed position; an account with no cross position left is dropped.
    pub fn remove(&mut self, account: u64, slot: u32) {
        if let Some(a) = self.accounts.get_mut(&account) {
            a.slots.retain(|&s| s != slot);
            if a.slots.is_empty() {
                self.accounts.remove(&account);
            }
        }
    }
    pub fn slots(&self, account: u64) -> &[u32] {
        self.accounts.get(&account).map_or(&[], |a| &a.slots)
    }
    pub fn accounts(&self) -> impl Iterator<Item = u64> + '_ {
        self.accounts.keys().copied()
    }
    /// The account's totals (all zero for an account without cross positions).
    pub fn totals(&self, account: u64) -> CrossTotals {
        self.accounts.get(&account).map(|a| a.totals).unwrap_or_default()
    }

    /// Recomputes an account's totals from its wallet and its positions at the marks. Beyond
    /// `CROSS_LIMIT` the totals are left as they were and the call is refused.
    pub fn refresh(&mut self, account: u64, wallet: i128, store: &PositionStore, markets: &[impl AsRef<Instrument>]) -> Result<()> {
        let Some(a) = self.accounts.get_mut(&account) else { return Ok(()) };
        let positions = a.slots.iter().map(|&slot| {
            let p = store.get(slot);
            (p, markets[p.market as usize].as_ref())
        });
        a.totals = bounded_totals(wallet, positions).ok_or_else(|| beyond(account))?;
        Ok(())
    }

    /// Refreshes every account; on an error some are refreshed and some not (the caller puts
    /// the inputs back and refreshes again).
    pub fn refresh_all(&mut self, cash: &FxHashMap<u64, i128>, store: &PositionStore, markets: &[impl AsRef<Instrument>]) -> Result<()> {
        let accounts: Vec<u64> = self.accounts().collect();
        for a in accounts {
            self.refresh(a, cash.get(&a).copied().unwrap_or(0), store, markets)?;
        }
        Ok(())
    }

    /// An account as it is (for `undo::Undo`), and putting one back.
    pub(crate) fn account(&self, account: u64) -> Option<CrossAccount> {
        self.accounts.get(&account).cloned()
    }
    pub(crate) fn put_account(&mut self, account: u64, a: Option<CrossAccount>) {
        match a {
            Some(a) => self.accounts.insert(account, a),
            None => self.accounts.remove(&account),
        };
    }

    /// A cross position's equity: its share of the account's net collateral.
    pub fn equity(&self, p: &Position, grid: &Grid, tiers: &Tiers, mark: i64) -> i128 {
        let (_, mm, n) = terms(p, grid, tiers, Some(mark));
        self.totals(p.account).share(mm, n)
    }

    /// A cross position's effective margin: its equity share less its own PnL.
    pub fn effective_margin(&self, p: &Position, grid: &Grid, tiers: &Tiers, mark: i64) -> i128 {
        self.equity(p, grid, tiers, mark) - p.upnl(grid, mark)
    }

    /// The margin that, put in the isolated liquidation-price formula, gives the mark of this
    /// position's market at which its account reaches `TNC = TMMR`, other marks held:
    /// `W + Σ_other u − Σ_other MM`.
    pub fn liquidation_margin(&self, p: &Position, grid: &Grid, tiers: &Tiers, mark: i64) -> i128 {
        let t = self.totals(p.account);
        let (u, mm, _) = terms(p, grid, tiers, Some(mark));
        t.tnc() - u - (t.maintenance - mm)
    }
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
