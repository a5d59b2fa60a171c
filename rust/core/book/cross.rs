//! Cross margin (docs/model.md §6). An account's cross positions hold no margin of their own:
//! they share the account's wallet `W`, which is its free cash. Net collateral is
//! `TNC = W + Σu` and maintenance `TMMR = Σ MM_i` over the account's cross positions.
//!
//! A cross position's equity is its share of TNC by maintenance, `TNC·MM_i/TMMR` (by notional
//! when TMMR = 0), rounded down. Its *effective margin* is that share less its own PnL. With
//! it, the isolated bankruptcy price `E − σM/q` is the §6 price `P − σ·TNC_i/q`, so the
//! isolated scores and waterfall apply to cross positions unchanged.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

use crate::core::book::position::{Position, PositionStore};
use crate::core::market::instrument::Instrument;
use crate::core::market::tiers::Tiers;
use crate::core::units::error::{AdlError, Result};
use crate::core::units::fixed::Grid;
use crate::core::units::side::Side;

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
fn bounded(wallet: i128, terms: impl Iterator<Item = Terms>) -> Option<(CrossTotals, i128)> {
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

/// A cross position's terms at a mark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Terms {
    upnl: i128,
    maintenance: i128,
    notional: i128,
}

/// A cross position in its market's list: its slot, its account's index and what its terms
/// depend on (copied from the store at each refresh, so a mark change reads only this list).
/// Its account's totals hold its terms at the market's mark: a mark change moves them by
/// the terms at the new mark less those at the old one.
#[derive(Clone, Copy)]
struct Member {
    slot: u32,
    account: u32,
    qty: i64,
    entry: i64,
    side: Side,
}

impl Member {
    /// Its terms at `mark` (`None`: no mark yet, the entry counts) in `m`: `terms` without
    /// the position.
    #[inline]
    fn terms(&self, m: &Instrument, mark: Option<i64>) -> Terms {
        let mark = mark.unwrap_or(self.entry);
        let notional = m.grid.notional(self.qty, mark);
        Terms {
            upnl: self.side.sign_i128() * m.grid.value(self.qty, mark - self.entry),
            maintenance: m.tiers.maintenance(notional),
            notional,
        }
    }
}

/// An account's positions: their slots, and where each is in its market's member list.
#[derive(Clone, Default)]
struct CrossAccount {
    slots: Vec<u32>,
    at: Vec<u32>,
}

/// An account's totals, apart from its positions so that a mark change reads only these.
#[derive(Clone, Copy, Default)]
struct Sums {
    totals: CrossTotals,
    /// Σ|PnL|, the bound `CROSS_LIMIT` holds.
    abs_upnl: i128,
    id: u64,
    /// Last `CrossBook::remark` that touched the account.
    stamp: u64,
}

/// The cross accounts of an engine: their positions and totals at the marks.
///
/// Each market lists its cross positions, so a mark change reads only that market's list and
/// moves each account's totals by its positions' terms (PnL, maintenance, notional) at the new
/// mark less those at the old one, exactly (integer sums). The engine refreshes an account
/// whenever its cash or its positions change. The accounts below maintenance are kept ordered
/// by shortfall, so finding them costs nothing per mark change beyond the accounts it touched.
#[derive(Clone, Default)]
pub struct CrossBook {
    ids: FxHashMap<u64, u32>,
    accounts: Vec<CrossAccount>,
    sums: Vec<Sums>,
    free: Vec<u32>,
    /// Per market: its cross positions.
    members: Vec<Vec<Member>>,
    /// (TNC − TMMR, account) of every account with TNC < TMMR.
    below: BTreeSet<(i128, u64)>,
    stamp: u64,
}

impl CrossBook {
    /// The cross book of these positions and wallets at the markets' marks.
    pub fn build(cash: &FxHashMap<u64, i128>, store: &PositionStore, markets: &[impl AsRef<Instrument>]) -> Result<CrossBook> {
        let mut book = CrossBook::default();
        let mut accounts = Vec::new();
        for (slot, p) in store.iter().filter(|(_, p)| p.cross) {
            if !book.ids.contains_key(&p.account) {
                accounts.push(p.account);
            }
            book.add(p.account, slot, p.market);
        }
        for a in accounts {
            book.refresh(a, cash.get(&a).copied().unwrap_or(0), store, markets)?;
        }
        Ok(book)
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Adds a cross position in `market`; its account's totals count it from its next `refresh`.
    pub fn add(&mut self, account: u64, slot: u32, market: u32) {
        let index = match self.ids.get(&account) {
            Some(&i) => i,
            None => {
                let sums = Sums { id: account, ..Sums::default() };
                let i = match self.free.pop() {
                    Some(i) => {
                        (self.accounts[i as usize], self.sums[i as usize]) = (CrossAccount::default(), sums);
                        i
                    }
                    None => {
                        self.accounts.push(CrossAccount::default());
                        self.sums.push(sums);
                        (self.accounts.len() - 1) as u32
                    }
                };
                self.ids.insert(account, i);
                i
            }
        };
        let m = market as usize;
        if self.members.len() <= m {
            self.members.resize_with(m + 1, Vec::new);
        }
        let a = &mut self.accounts[index as usize];
        a.slots.push(slot);
        a.at.push(self.members[m].len() as u32);
        self.members[m].push(Member { slot, account: index, qty: 0, entry: 0, side: Side::Long });
    }

    /// Forgets a closed position of `market`; an account with no cross position left is
    /// dropped. The account's totals change at its next `refresh`.
    pub fn remove(&mut self, account: u64, slot: u32, market: u32) {
        let Some(&index) = self.ids.get(&account) else { return };
        let a = &mut self.accounts[index as usize];
        let Some(k) = a.slots.iter().position(|&s| s == slot) else { return };
        a.slots.swap_remove(k);
        let at = a.at.swap_remove(k) as usize;
        let list = &mut self.members[market as usize];
        list.swap_remove(at);
        if let Some(moved) = list.get(at) {
            let b = &mut self.accounts[moved.account as usize];
            let j = b.slots.iter().position(|&s| s == moved.slot).expect("a member's account lists it");
            b.at[j] = at as u32;
        }
        if self.accounts[index as usize].slots.is_empty() {
            let t = self.sums[index as usize].totals;
            self.below.remove(&(t.tnc() - t.maintenance, account));
            (self.accounts[index as usize], self.sums[index as usize]) = (CrossAccount::default(), Sums::default());
            self.free.push(index);
            self.ids.remove(&account);
        }
    }

    pub fn slots(&self, account: u64) -> &[u32] {
        self.ids.get(&account).map_or(&[], |&i| &self.accounts[i as usize].slots)
    }
    pub fn accounts(&self) -> impl Iterator<Item = u64> + '_ {
        self.ids.keys().copied()
    }
    /// The account's totals (all zero for an account without cross positions).
    pub fn totals(&self, account: u64) -> CrossTotals {
        self.ids.get(&account).map(|&i| self.sums[i as usize].totals).unwrap_or_default()
    }
    /// The account below maintenance with the largest shortfall `TMMR − TNC` (then the
    /// lowest id), if any.
    pub fn worst_below(&self) -> Option<u64> {
        self.below.first().map(|&(_, a)| a)
    }
    /// Accounts below maintenance, largest shortfall first.
    pub fn below(&self) -> impl Iterator<Item = u64> + '_ {
        self.below.iter().map(|&(_, a)| a)
    }

    /// Sets an account's totals, keeping the below-maintenance set.
    fn set_totals(&mut self, index: u32, totals: CrossTotals, abs_upnl: i128) {
        let a = &mut self.sums[index as usize];
        let old = std::mem::replace(&mut a.totals, totals);
        a.abs_upnl = abs_upnl;
        let id = a.id;
        self.rebelow(id, &old, &totals);
    }

    /// Moves an account in the below-maintenance set from its old totals to its new ones.
    fn rebelow(&mut self, id: u64, old: &CrossTotals, new: &CrossTotals) {
        if old.liquidatable() && old != new {
            self.below.remove(&(old.tnc() - old.maintenance, id));
        }
        if new.liquidatable() {
            self.below.insert((new.tnc() - new.maintenance, id));
        }
    }

    /// Recomputes an account's terms and totals from its wallet and its positions at the
    /// marks. Beyond `CROSS_LIMIT` nothing changes and the call is refused.
    pub fn refresh(&mut self, account: u64, wallet: i128, store: &PositionStore, markets: &[impl AsRef<Instrument>]) -> Result<()> {
        let Some(&index) = self.ids.get(&account) else { return Ok(()) };
        let a = &self.accounts[index as usize];
        let fresh: Vec<(Member, Terms)> = a
            .slots
            .iter()
            .zip(&a.at)
            .map(|(&slot, &at)| {
                let p = store.get(slot);
                let m = Member { qty: p.qty, entry: p.entry, side: p.side, ..self.members[p.market as usize][at as usize] };
                let market = markets[p.market as usize].as_ref();
                (m, m.terms(market, market.mark))
            })
            .collect();
        let (t, abs) = bounded(wallet, fresh.iter().map(|&(_, t)| t)).ok_or_else(|| beyond(account))?;
        for (&at, (m, _)) in a.at.iter().zip(fresh) {
            self.members[store.get(m.slot).market as usize][at as usize] = m;
        }
        self.set_totals(index, t, abs);
        Ok(())
    }

    /// After the marks of `changed` markets moved (each listed once, with its mark before):
    /// recomputes their cross positions' terms and moves their accounts' totals by the
    /// differences. Returns the accounts touched. Beyond `CROSS_LIMIT` (the smallest such
    /// account is named) nothing changes and the call is refused.
    pub fn remark(&mut self, changed: &[(u32, Option<i64>)], markets: &[impl AsRef<Instrument>]) -> Result<Vec<u64>> {
        self.stamp += 1;
        let stamp = self.stamp;
        let changed: Vec<(usize, Option<i64>)> =
            changed.iter().map(|&(m, old)| (m as usize, old)).filter(|&(m, _)| m < self.members.len()).collect();
        // Touched accounts with their sums before.
        let mut before: Vec<(u32, CrossTotals, i128)> = Vec::new();
        // In one pass, each sum is the old terms not replaced yet plus the new ones so far:
        // at most twice the larger of the old and new totals. So when the new totals are within
        // the limit (2^124) no step overflows, and a step that overflows means a sum beyond it.
        let mut overflow = None;
        for &(m, old_mark) in &changed {
            let market = markets[m].as_ref();
            for e in &self.members[m] {
                let a = &mut self.sums[e.account as usize];
                if a.stamp != stamp {
                    a.stamp = stamp;
                    before.push((e.account, a.totals, a.abs_upnl));
                }
                let (old, t) = (e.terms(market, old_mark), e.terms(market, market.mark));
                let (d_upnl, d_mm, d_n) = (t.upnl - old.upnl, t.maintenance - old.maintenance, t.notional - old.notional);
                let d_abs = t.upnl.abs() - old.upnl.abs();
                match (
                    a.totals.upnl.checked_add(d_upnl),
                    a.totals.maintenance.checked_add(d_mm),
                    a.totals.notional.checked_add(d_n),
                    a.abs_upnl.checked_add(d_abs),
                ) {
                    (Some(u), Some(mm), Some(n), Some(abs)) => {
                        (a.totals.upnl, a.totals.maintenance, a.totals.notional, a.abs_upnl) = (u, mm, n, abs)
                    }
                    _ => overflow = Some(overflow.map_or(a.id, |x: u64| x.min(a.id))),
                }
            }
        }
        // One pass over the touched: the limit, and the moves in and out of the below set.
        let within = |x: i128| x.abs() <= CROSS_LIMIT;
        let mut refused = overflow;
        let mut ids = Vec::with_capacity(before.len());
        let mut moves = Vec::new();
        for &(i, old, _) in &before {
            let a = &self.sums[i as usize];
            if !(within(a.abs_upnl) && within(a.totals.maintenance) && within(a.totals.notional)) {
                refused = Some(refused.map_or(a.id, |x| x.min(a.id)));
            }
            if old.liquidatable() || a.totals.liquidatable() {
                moves.push((a.id, old, a.totals));
            }
            ids.push(a.id);
        }
        if let Some(account) = refused {
            for (i, t, abs) in before {
                let a = &mut self.sums[i as usize];
                (a.totals, a.abs_upnl) = (t, abs);
            }
            return Err(beyond(account));
        }
        for (id, old, new) in moves {
            self.rebelow(id, &old, &new);
        }
        Ok(ids)
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
