//! Cross margin (docs/model.md §6). An account's cross positions hold no margin of their own:
//! they share the account's wallet `W`, which is its free cash. Net collateral is
//! `TNC = W + Σu` and maintenance `TMMR = Σ MM_i` over the account's cross positions.
//!
//! A cross position's equity is its share of TNC by maintenance, `TNC·MM_i/TMMR` (by notional
//! when TMMR = 0), rounded down. Its *effective margin* is that share less its own PnL. With
//! it, the isolated bankruptcy price `E − σM/q` is the §6 price `P − σ·TNC_i/q`, so the
//! isolated scores and waterfall apply to cross positions unchanged.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

use crate::core::book::account_index::AccountIndex;
use crate::core::book::cross_account::CrossAccount;
use crate::core::book::cross_bounds::{allowance, bands, holds, Band, Leg, MarketView, Terms};
use crate::core::book::cross_sums::SumsTable;
use crate::core::book::cross_totals::bounded;
pub use crate::core::book::cross_totals::{beyond, bounded_totals, terms, CrossTotals, CROSS_LIMIT};
use crate::core::book::position::{Position, PositionStore};
use crate::core::book::swept_heap::SweptHeap;
use crate::core::market::instrument::Instrument;
use crate::core::market::tiers::Tiers;
use crate::core::units::error::Result;
use crate::core::units::fixed::Grid;
use crate::core::units::side::Side;

/// No mark: a member counted at its entry (its market had no mark yet).
const NO_MARK: i64 = i64::MIN;

/// A cross position in its market's list: its account's index, what its terms depend on
/// (copied from the store at each refresh, so a mark change reads only this list) and the
/// mark its terms are counted at in its account's totals (`NO_MARK`: none). 28 bytes: the
/// side is the sign of `qty` (lots are positive), and 4-byte alignment leaves no padding
/// (fields are read by value; its slot is in its account's legs).
#[derive(Clone, Copy)]
#[repr(C, packed(4))]
struct Member {
    account: u32,
    /// Lots, negative for a short.
    qty: i64,
    entry: i64,
    mark: i64,
}

/// One end of a band in its market's heap: (mark, account index) in 12 bytes, where the
/// tuple takes 16. Ordered as the tuple.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(C, packed(4))]
struct End {
    mark: i64,
    account: u32,
}

impl End {
    fn new(mark: i64, account: u32) -> End {
        End { mark, account }
    }
    fn parts(self) -> (i64, u32) {
        (self.mark, self.account)
    }
    fn mark(&self) -> i64 {
        self.mark
    }
    fn account(&self) -> u32 {
        self.account
    }
}

impl Member {
    fn leg(&self, market: u32) -> Leg {
        Leg { market, qty: self.qty.abs(), entry: self.entry, side: self.side() }
    }
    fn side(&self) -> Side {
        if self.qty < 0 {
            Side::Short
        } else {
            Side::Long
        }
    }
    fn counted_at(&self) -> Option<i64> {
        (self.mark != NO_MARK).then_some(self.mark)
    }
}

/// The cross accounts of an engine: their positions and totals at the marks.
///
/// Each market lists its cross positions. A mark change revalues only the accounts whose
/// band (`cross_bounds`) it leaves, exactly (integer sums of each position's terms at the new
/// mark less those at the mark it was counted at); any other account provably stays at or
/// above maintenance, and a read of its totals adds the differences on the fly, so every
/// read is exact. The engine refreshes an account whenever its cash or its positions change.
/// Accounts without room for a band (the ones below maintenance among them) are revalued at
/// every move of their markets; those below maintenance are kept ordered by shortfall.
#[derive(Clone, Default)]
pub struct CrossBook {
    /// Account id to record: a vector by id for dense ids, so a score finds its account's
    /// totals with one read.
    ids: AccountIndex,
    accounts: Vec<CrossAccount>,
    /// Per account: totals and Σ|PnL| (the bound `CROSS_LIMIT` holds) at the marks its
    /// members are counted at, apart from the rest so that a score reads 48 bytes.
    sums: SumsTable,
    free: Vec<u32>,
    /// Per market: its cross positions.
    members: Vec<Vec<Member>>,
    /// Per market: grid, tiers and the current mark.
    views: Vec<MarketView>,
    /// Per market: (lowest mark, account index) and (highest mark, account index) of the bands.
    /// As heaps (highest low first, lowest high first); an entry of a band since replaced
    /// stays until popped (then skipped: `has_band`) or swept out (`compact`).
    lows: Vec<SweptHeap<End>>,
    highs: Vec<SweptHeap<Reverse<End>>>,
    /// Per market: the bands filed (the heaps' live entries).
    banded: Vec<usize>,
    /// Per market: the accounts without a band, revalued at every move.
    eager: Vec<BTreeSet<u32>>,
    /// (TNC − TMMR, account) of every account with TNC < TMMR.
    below: BTreeSet<(i128, u64)>,
    /// Bumped by every mark change.
    version: u64,
}

impl CrossBook {
    /// The cross book of these positions and wallets at the markets' marks. The cash entries
    /// of its accounts move from `cash` into their records.
    pub fn build(cash: &mut FxHashMap<u64, i128>, store: &PositionStore, markets: &[impl AsRef<Instrument>]) -> Result<CrossBook> {
        let mut book = CrossBook::default();
        let mut accounts = Vec::new();
        for (slot, p) in store.iter().filter(|(_, p)| p.cross) {
            if book.ids.get(p.account).is_none() {
                accounts.push(p.account);
            }
            book.add(p.account, slot, p.market, cash);
        }
        for a in accounts {
            let wallet = book.cash(a).flatten().unwrap_or(0);
            if let Err(e) = book.refresh(a, wallet, store, markets) {
                book.release_cash(cash);
                return Err(e);
            }
        }
        // Grown by doubling: up to half of each list was spare.
        book.accounts.shrink_to_fit();
        book.sums.shrink_to_fit();
        book.ids.shrink_to_fit();
        book.members.iter_mut().for_each(Vec::shrink_to_fit);
        cash.shrink_to_fit(); // the entries moved out leave room behind
        Ok(book)
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Heap bytes by part (B-trees estimated: `footprint::btree`).
    pub fn footprint(&self) -> Vec<(&'static str, usize)> {
        use crate::core::units::footprint::{btree, vec};
        let per_account = |f: &dyn Fn(&CrossAccount) -> usize| self.accounts.iter().map(f).sum::<usize>();
        let heaps = self.lows.iter().map(SweptHeap::footprint).sum::<usize>() + self.highs.iter().map(SweptHeap::footprint).sum::<usize>();
        vec![
            ("cross id map", self.ids.footprint()),
            ("cross account records", vec(&self.accounts) + vec(&self.free)),
            ("cross account legs and bands", per_account(&CrossAccount::footprint)),
            ("cross totals", self.sums.footprint()),
            ("cross members", self.members.iter().map(vec).sum()),
            ("cross band heaps", heaps),
            (
                "cross eager and below sets",
                self.eager.iter().map(|e| btree::<u32>(e.len())).sum::<usize>() + btree::<(i128, u64)>(self.below.len()),
            ),
        ]
    }

    /// Adds a cross position in `market`; its account's totals count it from its next
    /// `refresh`. A new account's cash entry moves from `cash` into its record.
    pub fn add(&mut self, account: u64, slot: u32, market: u32, cash: &mut FxHashMap<u64, i128>) {
        let index = match self.ids.get(account) {
            Some(i) => i,
            None => {
                let mut new = CrossAccount::new(account);
                new.set_cash(cash.remove(&account));
                let i = match self.free.pop() {
                    Some(i) => {
                        self.accounts[i as usize] = new;
                        self.sums.clear(i);
                        i
                    }
                    None => {
                        self.accounts.push(new);
                        self.sums.push();
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
        a.push(slot, self.members[m].len() as u32, market);
        self.members[m].push(Member { account: index, qty: 0, entry: 0, mark: NO_MARK });
    }

    /// Forgets a closed position of `market`; an account with no cross position left is
    /// dropped, its cash entry back in `cash`. The account's totals change at its next `refresh`.
    pub fn remove(&mut self, account: u64, slot: u32, market: u32, cash: &mut FxHashMap<u64, i128>) {
        let Some(index) = self.ids.get(account) else { return };
        // Counted at the current marks first: the refresh that follows starts from them.
        self.sync(index);
        let a = &mut self.accounts[index as usize];
        let Some(k) = a.slots().iter().position(|&s| s == slot) else { return };
        let at = a.swap_remove(k) as usize;
        let list = &mut self.members[market as usize];
        list.swap_remove(at);
        if let Some(moved) = list.get(at) {
            // It was last: its account's leg in this market at the old end moves to `at`.
            let (b, last) = (&mut self.accounts[moved.account as usize], list.len() as u32);
            let j = b.markets().iter().zip(b.at()).position(|(&m, &x)| m == market && x == last).expect("a member's account lists it");
            b.set_at(j, at as u32);
        }
        if self.accounts[index as usize].is_empty() {
            let t = self.sums.get(index).0;
            self.below.remove(&(t.tnc() - t.maintenance, account));
            self.set_bands(index, Vec::new(), false);
            if let Some(c) = self.accounts[index as usize].cash() {
                cash.insert(account, c);
            }
            self.accounts[index as usize] = CrossAccount::default();
            self.sums.clear(index);
            self.free.push(index);
            self.ids.remove(account);
        }
    }

    /// The cash entry of a cross account (`None`: not a cross account; `Some(None)`: one
    /// without an entry). A cross account's cash lives in its record, nowhere else.
    pub fn cash(&self, account: u64) -> Option<Option<i128>> {
        self.ids.get(account).map(|i| self.accounts[i as usize].cash())
    }
    /// Sets a cross account's cash entry; `false`, changing nothing, when the account has no
    /// cross position. Its totals count the new wallet from its next `refresh`.
    pub fn set_cash(&mut self, account: u64, cash: i128) -> bool {
        self.ids.get(account).map(|i| self.accounts[i as usize].set_cash(Some(cash))).is_some()
    }
    /// The cross accounts' cash entries.
    pub fn cash_entries(&self) -> impl Iterator<Item = (u64, i128)> + '_ {
        self.ids.ids().filter_map(|a| Some((a, self.cash(a)??)))
    }
    /// Moves every cash entry out of the records into `cash` (before the book is rebuilt).
    pub fn release_cash(&mut self, cash: &mut FxHashMap<u64, i128>) {
        for a in self.accounts.iter_mut() {
            if let Some(c) = a.cash() {
                cash.insert(a.id, c);
                a.set_cash(None);
            }
        }
    }
    /// Moves the cash entries of this book's accounts from `cash` into their records.
    pub fn adopt_cash(&mut self, cash: &mut FxHashMap<u64, i128>) {
        for a in self.ids.ids().collect::<Vec<_>>() {
            if let Some(c) = cash.remove(&a) {
                self.set_cash(a, c);
            }
        }
    }

    pub fn slots(&self, account: u64) -> &[u32] {
        self.ids.get(account).map_or(&[], |i| self.accounts[i as usize].slots())
    }
    pub fn accounts(&self) -> impl Iterator<Item = u64> + '_ {
        self.ids.ids()
    }

    /// The account's totals at the current marks (all zero for an account without cross
    /// positions): the stored ones, plus, for positions counted at an older mark, their terms
    /// at the current mark less those at that one (exact; within `CROSS_LIMIT` by its bands).
    #[inline]
    pub fn totals(&self, account: u64) -> CrossTotals {
        let Some(i) = self.ids.get(account) else { return CrossTotals::default() };
        self.totals_at(i)
    }

    #[inline]
    fn totals_at(&self, i: u32) -> CrossTotals {
        if self.sums.version(i) == self.version {
            return self.sums.get(i).0;
        }
        self.stale_totals(i)
    }

    /// `totals` of an account counted at older marks.
    fn stale_totals(&self, i: u32) -> CrossTotals {
        let mut t = self.sums.get(i).0;
        let a = &self.accounts[i as usize];
        for (&m, &at) in a.markets().iter().zip(a.at()) {
            let (e, v) = (&self.members[m as usize][at as usize], &self.views[m as usize]);
            if e.counted_at() != v.mark {
                let (old, new) = (e.leg(m).terms(v, e.counted_at()), e.leg(m).terms(v, v.mark));
                t.upnl += new.upnl - old.upnl;
                t.maintenance += new.maintenance - old.maintenance;
                t.notional += new.notional - old.notional;
            }
        }
        t
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
        let old = self.sums.get(index).0;
        self.sums.set(index, totals, abs_upnl);
        self.rebelow(self.accounts[index as usize].id, &old, &totals);
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

    /// Copies what terms need of each market (grid and tiers fixed while it has positions;
    /// marks move through `remark`, or before any cross position is in the market).
    fn see(&mut self, markets: &[impl AsRef<Instrument>]) {
        for (k, m) in markets.iter().enumerate() {
            let m = m.as_ref();
            match self.views.get_mut(k) {
                Some(v) if v.grid == m.grid && v.tiers == m.tiers && v.mark == m.mark => {}
                Some(v) => *v = MarketView { grid: m.grid, tiers: m.tiers.clone(), mark: m.mark },
                None => self.views.push(MarketView { grid: m.grid, tiers: m.tiers.clone(), mark: m.mark }),
            }
        }
        self.lows.resize_with(self.views.len(), SweptHeap::default);
        self.highs.resize_with(self.views.len(), SweptHeap::default);
        self.banded.resize(self.views.len(), 0);
        self.eager.resize_with(self.views.len(), BTreeSet::new);
    }

    /// Recomputes an account's terms and totals from its wallet and its positions at the
    /// marks, and its bands. Beyond `CROSS_LIMIT` nothing changes and the call is refused.
    pub fn refresh(&mut self, account: u64, wallet: i128, store: &PositionStore, markets: &[impl AsRef<Instrument>]) -> Result<()> {
        let Some(index) = self.ids.get(account) else { return Ok(()) };
        self.see(markets);
        let a = &self.accounts[index as usize];
        let fresh: Vec<(Member, Terms)> = a
            .slots()
            .iter()
            .zip(a.at())
            .map(|(&slot, &at)| {
                let p = store.get(slot);
                let v = &self.views[p.market as usize];
                let m = Member {
                    qty: p.side.sign_i64() * p.qty,
                    entry: p.entry,
                    mark: v.mark.unwrap_or(NO_MARK),
                    ..self.members[p.market as usize][at as usize]
                };
                (m, m.leg(p.market).terms(v, v.mark))
            })
            .collect();
        let (t, abs) = bounded(wallet, fresh.iter().map(|&(_, t)| t)).ok_or_else(|| beyond(account))?;
        let a = &self.accounts[index as usize];
        for ((&at, &market), (m, _)) in a.at().iter().zip(a.markets()).zip(fresh) {
            self.members[market as usize][at as usize] = m;
        }
        self.set_totals(index, t, abs);
        self.sums.set_version(index, self.version);
        self.rebound(index);
        Ok(())
    }

    /// The account's legs at its members' current copies.
    fn legs(&self, index: u32) -> Vec<Leg> {
        let a = &self.accounts[index as usize];
        a.markets().iter().zip(a.at()).map(|(&m, &at)| self.members[m as usize][at as usize].leg(m)).collect()
    }

    /// New bands for an account whose totals are current; none (eager) when its slack does
    /// not cover the rounding allowance, known from its totals without a look at its legs.
    fn rebound(&mut self, index: u32) {
        if self.bands_still_hold(index) {
            return;
        }
        let (t, a) = (&self.sums.get(index).0, &self.accounts[index as usize]);
        let room = a.markets().iter().try_fold(t.tnc() - t.maintenance, |s, &m| s.checked_sub(allowance(&self.views[m as usize])));
        let found = match room {
            Some(r) if r > 0 => bands(t.wallet, &self.legs(index), &self.views, CROSS_LIMIT),
            _ => None,
        };
        match found {
            Some(b) => self.set_bands(index, b, false),
            None => {
                // Already eager in exactly its markets with a mark (an account left below
                // maintenance, revalued at every move): nothing to change, nothing allocated.
                let marked = |m: u32| self.views[m as usize].mark.is_some();
                let listed = |m: u32| a.bands().any(|b| b.0 == m);
                if a.eager && a.markets().iter().all(|&m| !marked(m) || listed(m)) && a.bands().all(|b| a.markets().contains(&b.0)) {
                    return;
                }
                let mut ms: Vec<u32> = a.markets().iter().copied().filter(|&m| self.views[m as usize].mark.is_some()).collect();
                ms.sort_unstable();
                ms.dedup();
                let b: Vec<Band> = ms.into_iter().map(|m| (m, 0, 0)).collect();
                if !(a.eager && a.bands().eq(b.iter().copied())) {
                    self.set_bands(index, b, true);
                }
            }
        }
    }

    /// Whether the account's bands pass `holds` at its current wallet and legs, banding the
    /// same markets `bands` would (each marked market it holds) around the current marks:
    /// then they stay, valid as if new, and the per-market band sets are not touched. A fill
    /// usually leaves them so (a counterparty's position shrinks and its wallet takes the
    /// realised profit).
    fn bands_still_hold(&self, index: u32) -> bool {
        let a = &self.accounts[index as usize];
        let marked = |m: u32| self.views[m as usize].mark.is_some();
        let around = |&(m, lo, hi): &Band| self.views[m as usize].mark.is_some_and(|p| lo <= p && p <= hi);
        let same_markets = a.markets().iter().all(|&m| !marked(m) || a.bands().any(|b| b.0 == m))
            && a.bands().all(|b| around(&b) && a.markets().contains(&b.0));
        let bands: Vec<Band> = a.bands().collect();
        !a.eager && same_markets && holds(self.sums.get(index).0.wallet, &self.legs(index), &self.views, &bands, CROSS_LIMIT)
    }

    /// Replaces an account's bands (`eager`: the markets it is revalued at every move of).
    fn set_bands(&mut self, index: u32, new: Vec<Band>, eager: bool) {
        let a = &self.accounts[index as usize];
        for (m, _, _) in a.bands() {
            if a.eager {
                self.eager[m as usize].remove(&index);
            } else {
                self.banded[m as usize] -= 1; // its heap entries go stale
            }
        }
        for &(m, lo, hi) in &new {
            if eager {
                self.eager[m as usize].insert(index);
            } else {
                self.banded[m as usize] += 1;
                let live = self.banded[m as usize];
                self.lows[m as usize].push(End::new(lo, index), live);
                self.highs[m as usize].push(Reverse(End::new(hi, index)), live);
            }
        }
        let ms: Vec<u32> = new.iter().filter(|_| !eager).map(|b| b.0).collect();
        self.accounts[index as usize].set_bands(&new, eager);
        for m in ms {
            self.compact(m);
        }
    }

    /// Whether account `i` has a band in `market` whose low (`high`: high) is `at`: the heap
    /// entry that says so is current.
    fn has_band(&self, i: u32, market: u32, at: i64, high: bool) -> bool {
        has_band(&self.accounts, i, market, at, high)
    }

    /// Moves a sweep of the market's heaps on (see `swept_heap`: started by a push that
    /// found a heap full or mostly stale); called once per band filed.
    fn compact(&mut self, market: u32) {
        let (m, accounts) = (market as usize, &self.accounts);
        self.lows[m].sweep(|e| has_band(accounts, e.account(), market, e.mark(), false));
        self.highs[m].sweep(|e| has_band(accounts, e.0.account(), market, e.0.mark(), true));
    }

    /// The account's totals at the current marks (`totals`) with Σ|PnL|, or `None` beyond
    /// `CROSS_LIMIT`.
    fn current(&self, index: u32) -> Option<(CrossTotals, i128)> {
        let a = &self.accounts[index as usize];
        let (mut t, mut abs) = self.sums.get(index);
        for (&m, &at) in a.markets().iter().zip(a.at()) {
            let (e, v) = (&self.members[m as usize][at as usize], &self.views[m as usize]);
            if e.counted_at() == v.mark {
                continue;
            }
            let (old, new) = (e.leg(m).terms(v, e.counted_at()), e.leg(m).terms(v, v.mark));
            // Each partial sum is at most the larger of the old and new totals plus one term
            // (10^38): within i128 while the totals are within the limit (2^124).
            t.upnl = t.upnl.checked_add(new.upnl - old.upnl)?;
            t.maintenance = t.maintenance.checked_add(new.maintenance - old.maintenance)?;
            t.notional = t.notional.checked_add(new.notional - old.notional)?;
            abs = abs.checked_add(new.upnl.abs() - old.upnl.abs())?;
        }
        let within = |x: i128| x.abs() <= CROSS_LIMIT;
        (within(abs) && within(t.maintenance) && within(t.notional)).then_some((t, abs))
    }

    /// Sets an account's totals to `current`'s and counts its positions at the current marks.
    fn settle(&mut self, index: u32, t: CrossTotals, abs: i128) {
        let a = &self.accounts[index as usize];
        for (&m, &at) in a.markets().iter().zip(a.at()) {
            let mark = self.views[m as usize].mark.unwrap_or(NO_MARK);
            self.members[m as usize][at as usize].mark = mark;
        }
        self.set_totals(index, t, abs);
        self.sums.set_version(index, self.version);
    }

    /// Counts an account's positions at the current marks (its totals unchanged: `totals`
    /// already read them so). Its bands stay: they hold whatever the marks inside them.
    fn sync(&mut self, index: u32) {
        if self.sums.version(index) == self.version {
            return;
        }
        let (t, abs) = self.current(index).expect("within its bands an account stays within the limit");
        self.settle(index, t, abs);
    }

    /// Counts an account's positions at the current marks: reads of its totals then cost
    /// nothing extra.
    pub fn sync_account(&mut self, account: u64) {
        if let Some(i) = self.ids.get(account) {
            self.sync(i);
        }
    }

    /// Counts every account holding `market` on `side` at the current marks: reads of their
    /// totals (that side's queue being ranked) then cost nothing extra.
    pub fn sync_market(&mut self, market: u32, side: Side) {
        let n = self.members.get(market as usize).map_or(0, Vec::len);
        for k in 0..n {
            let e = self.members[market as usize][k];
            if e.side() == side {
                self.sync(e.account);
            }
        }
    }

    /// The accounts holding any of `markets`.
    pub fn accounts_in(&self, markets: &[u32]) -> Vec<u64> {
        let mut out: Vec<u32> =
            markets.iter().flat_map(|&m| self.members.get(m as usize).into_iter().flatten().map(|e| e.account)).collect();
        out.sort_unstable();
        out.dedup();
        out.into_iter().map(|i| self.accounts[i as usize].id).collect()
    }

    /// After the marks of `changed` markets moved: revalues exactly the accounts whose band
    /// the new mark leaves (every account of a market that had no mark), with new bands, and
    /// keeps the below-maintenance set. Beyond `CROSS_LIMIT` (the smallest such account is
    /// named) nothing changes and the call is refused.
    pub fn remark(&mut self, changed: &[u32], markets: &[impl AsRef<Instrument>]) -> Result<()> {
        let old: Vec<Option<i64>> = self.views.iter().map(|v| v.mark).collect();
        self.see(markets);
        self.version += 1;
        let mut visit = Vec::new();
        // Heap entries taken off, put back if the call is refused.
        let mut popped: Vec<(u32, i64, u32, bool)> = Vec::new();
        for &m in changed.iter().filter(|&&m| (m as usize) < self.members.len()) {
            let (was, now) = (old.get(m as usize).copied().flatten(), self.views[m as usize].mark);
            let mut add = |i: u32| visit.push(i);
            match (was, now) {
                (Some(_), Some(p)) => {
                    for &i in &self.eager[m as usize] {
                        add(i);
                    }
                    // Bands whose low is above the mark, then those whose high is below it.
                    while let Some((lo, i)) = self.lows[m as usize].peek().map(|x| x.parts()).filter(|x| x.0 > p) {
                        self.lows[m as usize].pop();
                        popped.push((m, lo, i, false));
                        if self.has_band(i, m, lo, false) {
                            add(i);
                        }
                    }
                    while let Some((hi, i)) = self.highs[m as usize].peek().map(|x| x.0.parts()).filter(|x| x.0 < p) {
                        self.highs[m as usize].pop();
                        popped.push((m, hi, i, true));
                        if self.has_band(i, m, hi, true) {
                            add(i);
                        }
                    }
                }
                _ => {
                    for e in &self.members[m as usize] {
                        add(e.account);
                    }
                    // Every account of the market gets a band: room for them all at once.
                    let n = self.members[m as usize].len();
                    self.lows[m as usize].reserve(n);
                    self.highs[m as usize].reserve(n);
                }
            }
        }
        // In index order, which is roughly the order of their totals, position lists and
        // members in memory: the visits then stream instead of jumping (the order changes
        // no result); each once.
        visit.sort_unstable();
        visit.dedup();
        let mut fresh = Vec::with_capacity(visit.len());
        let mut refused: Option<u64> = None;
        for &i in &visit {
            match self.current(i) {
                Some(x) => fresh.push((i, x)),
                None => refused = Some(refused.map_or(self.accounts[i as usize].id, |a| a.min(self.accounts[i as usize].id))),
            }
        }
        if let Some(account) = refused {
            for (m, at, i, high) in popped {
                match high {
                    true => self.highs[m as usize].push(Reverse(End::new(at, i)), self.banded[m as usize]),
                    false => self.lows[m as usize].push(End::new(at, i), self.banded[m as usize]),
                }
            }
            for (v, mark) in self.views.iter_mut().zip(old) {
                v.mark = mark;
            }
            self.version -= 1;
            return Err(beyond(account));
        }
        for (i, (t, abs)) in fresh {
            self.settle(i, t, abs);
            self.rebound(i);
        }
        // A market's first mark banded all its accounts at once: no spare room kept (a push
        // into a full heap later starts a sweep, not a copy of it).
        for &m in changed.iter().filter(|&&m| (m as usize) < self.members.len() && old.get(m as usize).copied().flatten().is_none()) {
            self.lows[m as usize].shrink_to_fit();
            self.highs[m as usize].shrink_to_fit();
        }
        Ok(())
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

/// Whether account `i` of `accounts` has a band in `market` whose low (`high`: high) is `at`.
fn has_band(accounts: &[CrossAccount], i: u32, market: u32, at: i64, high: bool) -> bool {
    let a = &accounts[i as usize];
    !a.eager && a.bands().any(|(m, lo, hi)| m == market && if high { hi == at } else { lo == at })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_small() {
        // Per cross position a member (account 4, lots 8, entry 8, mark 8) and per band two
        // heap ends (mark 8, account 4); an account's record is `cross_account`'s.
        assert_eq!((std::mem::size_of::<Member>(), std::mem::size_of::<End>()), (28, 12));
    }

    #[test]
    fn a_move_inside_the_band_is_read_exactly_without_a_revaluation() {
        use crate::core::market::spec::MarketSpec;
        // One long of 10 lots at 100, 1 cash unit per lot·tick, flat 5 %, wallet 100: its band
        // at mark 100 is [97, 103] (cross_bounds' first test).
        let mut store = PositionStore::default();
        let p = Position {
            account: 7,
            qty: 10,
            entry: 100,
            margin: 0,
            market: 0,
            member_pos: 0,
            index_pos: 0,
            side: Side::Long,
            cap_bp: 10_000,
            cross: true,
        };
        let slot = store.insert(p).unwrap();
        let mut m = Instrument::new("X", MarketSpec::linear(0, 0, 0.05), 0).unwrap();
        m.mark = Some(100);
        let mut book = CrossBook::default();
        book.add(7, slot, 0, &mut Default::default());
        book.refresh(7, 100, &store, &[m.clone()]).unwrap();
        assert_eq!(book.accounts[0].bands().collect::<Vec<_>>(), [(0, 97, 103)]);
        // To 101, inside: not revalued (the stored totals stay at mark 100: u = 0, MM = 50),
        // yet read exactly: u = 10·1 = 10, MM = ceil(1,010·0.05) = 51, notional 1,010.
        m.mark = Some(101);
        book.remark(&[0], &[m.clone()]).unwrap();
        assert_eq!(book.sums.get(0).0, CrossTotals { wallet: 100, upnl: 0, maintenance: 50, notional: 1_000 });
        assert_eq!(book.totals(7), CrossTotals { wallet: 100, upnl: 10, maintenance: 51, notional: 1_010 });
        // To 96, outside: revalued: u = −40, MM = ceil(960·0.05) = 48; TNC 60 ≥ 48.
        m.mark = Some(96);
        book.remark(&[0], &[m.clone()]).unwrap();
        assert_eq!(book.sums.get(0).0, CrossTotals { wallet: 100, upnl: -40, maintenance: 48, notional: 960 });
        assert_eq!(book.worst_below(), None);
        // Slack 60 − 48 = 12 does not cover the allowance 16: no band, every move revalues it.
        assert!(book.accounts[0].eager);
        // At 94, u = −60, MM = ceil(940·0.05) = 47 > TNC 40: below maintenance by 7.
        m.mark = Some(94);
        book.remark(&[0], &[m.clone()]).unwrap();
        assert_eq!(book.sums.get(0).0.upnl, -60);
        assert_eq!(book.worst_below(), Some(7));
        assert_eq!(book.totals(7).tnc() - book.totals(7).maintenance, -7);
        m.mark = Some(95);
        book.remark(&[0], &[m]).unwrap();
        assert_eq!(book.sums.get(0).0.upnl, -50);
        // 100 − 50 = 50 ≥ MM = ceil(950·0.05) = 48.
        assert_eq!(book.worst_below(), None);
    }
}
