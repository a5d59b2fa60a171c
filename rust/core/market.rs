//! Markets: grid, maintenance rate, mark, and the per-side member lists and ranking indexes.

use crate::core::error::{AdlError, Result};
use crate::core::fees::close_fee;
use crate::core::fixed::Grid;
use crate::core::position::{side_slot, Position, PositionStore, Side, NO_INDEX};
use crate::core::ranking::{Entry, QueueOrder, RankIndex};
use crate::core::score::{desc_key, near, Fraction, Lights};
use crate::core::scoring::Scoring;
use crate::core::tiers::{rate_ppm, TierSpec, Tiers};

/// Queue order over the positions of one market at its mark.
struct MarketOrder<'a> {
    store: &'a PositionStore,
    grid: &'a Grid,
    tiers: &'a Tiers,
    scoring: &'a Scoring<'a>,
    mark: i64,
}

impl QueueOrder for MarketOrder<'_> {
    fn account(&self, slot: u32) -> u64 {
        self.store.get(slot).account
    }
    fn exact(&self, slot: u32) -> Option<Fraction> {
        self.scoring.exact(self.grid, self.tiers, self.mark, self.store.get(slot))
    }
}

/// One position of a queue indicator (docs/model.md §3).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueRow {
    pub slot: u32,
    pub rank: u64,
    pub percentile: f64,
    pub lights: u8,
    pub score: f64,
    pub lots_ahead: i64,
}

/// User-facing market parameters. `MarketSpec::linear` gives the textbook market: a flat
/// maintenance rate, contract = one unit of the base asset, no fees.
#[derive(Clone, Debug, PartialEq)]
pub struct MarketSpec {
    /// Lot = 10^-qty_decimals contracts. Default 4 (0.0001).
    pub qty_decimals: u32,
    /// Price grid = 10^-price_decimals of the quote. Default 4 (0.0001).
    pub price_decimals: u32,
    /// Maintenance-margin rate, e.g. 0.005 (used when `tiers` is empty).
    pub maintenance_rate: f64,
    /// Base-asset units per contract (a linear contract's value is `q·multiplier·P`); in an
    /// inverse market, quote units per contract (value `q·multiplier/P` of the base coin).
    pub multiplier: f64,
    /// An inverse contract (BitMEX's XBTUSD): margin, PnL and cash in the base coin, prices
    /// held as `−1/P` on a grid of `10^-price_decimals` (see `fixed::Grid`).
    pub inverse: bool,
    /// Risk-limit tiers by notional; empty: one tier at `maintenance_rate`.
    pub tiers: Vec<TierSpec>,
    /// Liquidation fee: a rate on the liquidated notional, paid to the insurance fund.
    pub liquidation_fee: f64,
    /// Where the liquidation fee comes from (see `FeeConvention`).
    pub fee_convention: FeeConvention,
    /// Whether what is left after a close at or better than the bankruptcy price (less the
    /// liquidation fee) goes to the insurance fund (BitMEX, Binance, Bybit) or back to the trader.
    pub surplus_to_fund: bool,
    /// ADL fee: a rate on the notional each counterparty closes at the ADL price, charged to
    /// the counterparty and paid to the venue (0 on Binance and Bitget; the maker fee on Bybit).
    pub adl_fee: f64,
    /// The insurance-fund pool the market draws on (`funds::Funds`); empty: the default pool.
    pub fund_pool: String,
}

/// How a venue takes its liquidation fee (docs/model.md §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeeConvention {
    /// Out of what is left after the close (BitMEX, Binance): when the book pays at least the
    /// bankruptcy price the fund takes `min(surplus, fee·N_F)`; otherwise there is no fee.
    Surplus,
    /// In the bankruptcy price (Bybit): the fee to close at the bankruptcy price is reserved
    /// out of the margin first, so the position is bankrupt while it still holds the fee:
    /// long `P_bk = (q·E − M)/(q·(1 − fee))`, short `(q·E + M)/(q·(1 + fee))`.
    Bankruptcy,
}

impl FeeConvention {
    pub fn parse(name: &str) -> Result<FeeConvention> {
        match name {
            "surplus" => Ok(FeeConvention::Surplus),
            "bankruptcy" => Ok(FeeConvention::Bankruptcy),
            other => Err(AdlError::config("fee_convention", format!("{other:?} is not one of: surplus, bankruptcy"))),
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            FeeConvention::Surplus => "surplus",
            FeeConvention::Bankruptcy => "bankruptcy",
        }
    }
}

impl MarketSpec {
    /// A linear market with a flat maintenance rate and no fees.
    pub const fn linear(qty_decimals: u32, price_decimals: u32, maintenance_rate: f64) -> MarketSpec {
        MarketSpec {
            qty_decimals,
            price_decimals,
            maintenance_rate,
            multiplier: 1.0,
            inverse: false,
            tiers: Vec::new(),
            liquidation_fee: 0.0,
            fee_convention: FeeConvention::Surplus,
            surplus_to_fund: true,
            adl_fee: 0.0,
            fund_pool: String::new(),
        }
    }
}

impl Default for MarketSpec {
    fn default() -> Self {
        MarketSpec::linear(4, 4, 0.005)
    }
}

/// A market whose pool is not resolved yet.
pub const NO_POOL: u32 = u32::MAX;

#[derive(Clone)]
pub struct Market {
    pub name: String,
    pub spec: MarketSpec,
    pub grid: Grid,
    /// Maintenance margin by tier.
    pub tiers: Tiers,
    /// Fee rates in ppm.
    pub liquidation_fee_ppm: i64,
    pub adl_fee_ppm: i64,
    /// Its insurance-fund pool (`NO_POOL` until the engine resolves `spec.fund_pool`).
    pub pool: u32,
    pub mark: Option<i64>,
    /// Slots of the live positions per side (0 long, 1 short).
    pub members: [Vec<u32>; 2],
    /// Ranking index per side; `None` when stale (marks moved or the book was replaced).
    index: [Option<RankIndex>; 2],
    /// Per side: `Some(cut)` when the index holds only the head of the queue (every eligible
    /// position whose score is above `cut`, and those near it); `None` when it is complete.
    cut: [Option<f64>; 2],
}

impl Market {
    pub fn new(name: &str, spec: MarketSpec, cash_decimals: u32) -> Result<Market> {
        let grid = if spec.inverse {
            Grid::inverse(spec.qty_decimals, spec.price_decimals, cash_decimals, spec.multiplier)?
        } else {
            Grid::with_multiplier(spec.qty_decimals, spec.price_decimals, cash_decimals, spec.multiplier)?
        };
        Ok(Market {
            name: name.to_string(),
            tiers: Tiers::new(spec.maintenance_rate, &spec.tiers, &Grid::cash_only(cash_decimals)?)?,
            liquidation_fee_ppm: rate_ppm("liquidation_fee", spec.liquidation_fee)?,
            adl_fee_ppm: rate_ppm("adl_fee", spec.adl_fee)?,
            pool: NO_POOL,
            spec,
            grid,
            mark: None,
            members: [Vec::new(), Vec::new()],
            index: [None, None],
            cut: [None, None],
        })
    }

    /// The pool name this market draws on.
    pub fn pool_name(&self) -> &str {
        if self.spec.fund_pool.is_empty() {
            crate::core::funds::DEFAULT_POOL
        } else {
            &self.spec.fund_pool
        }
    }

    /// The estimated fee to close an isolated position at its bankruptcy price (`fees::close_fee`),
    /// part of its maintenance under `FeeConvention::Bankruptcy` (Bybit); 0 under `Surplus` and
    /// for cross positions (their maintenance is the account's TMMR by tier only).
    pub fn close_fee(&self, p: &Position) -> i128 {
        match self.spec.fee_convention {
            FeeConvention::Bankruptcy if !p.cross => {
                close_fee(&self.grid, p.side, p.qty, p.entry, p.margin as i128, self.liquidation_fee_ppm)
            }
            _ => 0,
        }
    }

    /// Maintenance of an isolated position at `mark`: by tier, plus the estimated fee to
    /// close under `FeeConvention::Bankruptcy`, so that it is liquidatable (`e < MM + fee`)
    /// no later than bankrupt (`e <= fee`; Bybit's "maintenance includes the fee to close").
    pub fn maintenance(&self, p: &Position, mark: i64) -> i128 {
        p.maintenance(&self.grid, mark, &self.tiers) + self.close_fee(p)
    }

    /// Liquidation price of an isolated position in ticks (`e = maintenance`): the fee to
    /// close is constant in the mark, so it is the price of the margin less that fee.
    pub fn liquidation_ticks(&self, p: &Position) -> f64 {
        let fee = self.close_fee(p) as f64;
        self.tiers.liquidation_ticks(&self.grid, p.side, p.qty, p.entry, p.margin as f64 - fee)
    }

    pub fn mark(&self) -> Result<i64> {
        self.mark.ok_or_else(|| AdlError::NoMark { symbol: self.name.clone() })
    }

    pub fn set_mark(&mut self, mark: i64) {
        if self.mark != Some(mark) {
            self.mark = Some(mark);
            self.index = [None, None];
        }
    }

    pub fn invalidate(&mut self) {
        self.index = [None, None];
    }

    /// Adds a slot to its side's member list (the index of that side goes stale).
    pub fn add_member(&mut self, store: &mut PositionStore, slot: u32) {
        let s = side_slot(store.get(slot).side);
        store.get_mut(slot).member_pos = self.members[s].len() as u32;
        self.members[s].push(slot);
        self.index[s] = None;
    }

    /// Removes a slot from its member list (swap-remove) and from the ranking index.
    pub fn remove_member(&mut self, store: &mut PositionStore, slot: u32) {
        let p = *store.get(slot);
        let s = side_slot(p.side);
        let list = &mut self.members[s];
        list.swap_remove(p.member_pos as usize);
        if let Some(&moved) = list.get(p.member_pos as usize) {
            store.get_mut(moved).member_pos = p.member_pos;
        }
        if let Some(idx) = self.index[s].as_mut() {
            if p.index_pos != NO_INDEX {
                idx.remove(p.index_pos as usize, p.qty);
            }
        }
    }

    /// A position gave up `lots` lots but stays open (the store already holds its new size
    /// and margin): its lots leave the index. Its score is refreshed by `rescore_member`.
    pub fn shrink_member(&mut self, store: &PositionStore, slot: u32, lots: i64) {
        let p = store.get(slot);
        if let (Some(idx), true) = (self.index[side_slot(p.side)].as_mut(), p.index_pos != NO_INDEX) {
            idx.shrink(p.index_pos as usize, lots);
        }
    }

    /// Moves a position to its current score in its side's index (margin rounding or its
    /// cross account's totals may have changed it), or out of it when it is no longer
    /// eligible. A position that became eligible again makes the index stale.
    pub fn rescore_member(&mut self, store: &mut PositionStore, scoring: &Scoring<'_>, slot: u32) {
        let p = *store.get(slot);
        let s = side_slot(p.side);
        let Some(idx) = self.index[s].as_mut() else { return };
        let mark = self.mark.expect("an index exists only with a mark");
        let score = scoring.score(&self.grid, &self.tiers, mark, slot, &p);
        match (score, p.index_pos) {
            (None, NO_INDEX) => {}
            // Below the cut of a head-only index it stays out; otherwise the index is stale.
            (Some(score), NO_INDEX) => {
                if !matches!(self.cut[s], Some(cut) if score < cut && !near(score, cut)) {
                    self.index[s] = None;
                }
            }
            (None, pos) => {
                idx.remove(pos as usize, p.qty);
                store.get_mut(slot).index_pos = NO_INDEX;
            }
            // Below the cut of a head-only index: positions left out may now rank before it.
            (Some(score), pos) if matches!(self.cut[s], Some(cut) if score < cut && !near(score, cut)) => {
                idx.remove(pos as usize, p.qty);
                store.get_mut(slot).index_pos = NO_INDEX;
            }
            (Some(score), pos) => {
                let order = MarketOrder { store, grid: &self.grid, tiers: &self.tiers, scoring, mark };
                let mut moves = Vec::new();
                idx.rescore(pos as usize, score, &order, |s, at| moves.push((s, at)));
                for (s, at) in moves {
                    store.get_mut(s).index_pos = at as u32;
                }
            }
        }
    }

    /// The queue indicator of `side` from its current index, in queue order: (slot, rank,
    /// percentile, lights, score, lots queued ahead); `None` without an index or a mark.
    pub fn indicator(&self, store: &PositionStore, scoring: &Scoring<'_>, side: Side, method: Lights) -> Option<Vec<QueueRow>> {
        let (idx, mark) = (self.index[side_slot(side)].as_ref()?, self.mark?);
        let order = MarketOrder { store, grid: &self.grid, tiers: &self.tiers, scoring, mark };
        let rows = idx.lights(method, &order).into_iter();
        Some(
            rows.map(|(pos, rank, percentile, lights, lots_ahead)| QueueRow {
                slot: idx.slot_at(pos),
                rank,
                percentile,
                lights,
                score: idx.score_at(pos),
                lots_ahead,
            })
            .collect(),
        )
    }

    /// The queue indicator of the position at ranking position `pos` of `side` (as
    /// `indicator` gives it); `None` without an index or a mark.
    pub fn queue_place(&self, store: &PositionStore, scoring: &Scoring<'_>, side: Side, pos: usize, method: Lights) -> Option<QueueRow> {
        let (idx, mark) = (self.index[side_slot(side)].as_ref()?, self.mark?);
        let order = MarketOrder { store, grid: &self.grid, tiers: &self.tiers, scoring, mark };
        let (rank, percentile, lights, lots_ahead) = idx.place(pos, method, &order);
        Some(QueueRow { slot: idx.slot_at(pos), rank, percentile, lights, score: idx.score_at(pos), lots_ahead })
    }

    /// The complete ranking index of `side`, rebuilt first if stale or head-only. Requires a mark.
    pub fn index(&mut self, store: &mut PositionStore, scoring: &Scoring<'_>, side: Side) -> Result<&RankIndex> {
        let s = side_slot(side);
        if self.index[s].is_none() || self.cut[s].is_some() {
            self.build(store, scoring, side, None)?;
        }
        Ok(self.index[s].as_ref().expect("built above"))
    }

    /// An index of `side` holding at least the head of the queue with `lots` lots (a current
    /// index will do unless it is a head holding fewer lots; a new one keeps only about the
    /// best `4·lots` lots). Scoring
    /// every position is O(n); sorting only the head avoids the O(n log n) full sort that a
    /// mark change would otherwise cost the next event.
    pub fn head_index(&mut self, store: &mut PositionStore, scoring: &Scoring<'_>, side: Side, lots: i64) -> Result<&RankIndex> {
        let s = side_slot(side);
        let shallow = self.cut[s].is_some() && self.index[s].as_ref().is_some_and(|i| i.total_lots() < lots);
        if self.index[s].is_none() || shallow {
            self.build(store, scoring, side, Some(lots))?;
        }
        Ok(self.index[s].as_ref().expect("built above"))
    }

    /// Whether the index of `side` holds only the head of the queue.
    pub fn is_head_only(&self, side: Side) -> bool {
        self.cut[side_slot(side)].is_some()
    }

    fn build(&mut self, store: &mut PositionStore, scoring: &Scoring<'_>, side: Side, head_lots: Option<i64>) -> Result<()> {
        let s = side_slot(side);
        let mark = self.mark()?;
        let mut entries = Vec::with_capacity(self.members[s].len());
        for &slot in &self.members[s] {
            let p = store.get_mut(slot);
            p.index_pos = NO_INDEX;
            if let Some(score) = scoring.score(&self.grid, &self.tiers, mark, slot, p) {
                entries.push(Entry { slot, account: p.account, score, lots: p.qty });
            }
        }
        self.cut[s] = None;
        if let Some(lots) = head_lots {
            if let Some(cut) = keep_head(&mut entries, lots) {
                self.cut[s] = Some(cut);
            }
        }
        let idx = RankIndex::build(entries, &MarketOrder { store, grid: &self.grid, tiers: &self.tiers, scoring, mark });
        for (pos, slot) in idx.slots() {
            store.get_mut(slot).index_pos = pos as u32;
        }
        self.index[s] = Some(idx);
        Ok(())
    }

    /// The index of `side` if it is current (possibly head-only: see `is_head_only`).
    pub fn current_index(&self, side: Side) -> Option<&RankIndex> {
        self.index[side_slot(side)].as_ref()
    }
}

/// Keeps the best entries holding at least `4·lots` lots (and at least a sixteenth of them,
/// so that a cascade of events at the same marks rarely needs a deeper head) plus
/// every entry whose score is near the worst kept one (only the exact comparison can order
/// those). Returns the lowest kept score, or `None` when everything is kept.
fn keep_head(entries: &mut Vec<Entry>, lots: i64) -> Option<f64> {
    const MIN_KEEP: usize = 1_024;
    let n = entries.len();
    let want = lots.saturating_mul(4);
    let total: i64 = entries.iter().map(|e| e.lots).sum();
    if n <= 4 * MIN_KEEP || total <= want {
        return None;
    }
    let key = |e: &Entry| (desc_key(e.score), e.account, e.slot);
    let avg = (total as f64 / n as f64).max(1.0);
    let mut k = ((want as f64 / avg) * 2.0) as usize;
    k = k.clamp(MIN_KEEP.max(n / 16), n);
    loop {
        entries.select_nth_unstable_by_key(k - 1, key);
        let held: i64 = entries[..k].iter().map(|e| e.lots).sum();
        if held >= want || k == n {
            break;
        }
        k = (k * 2).min(n);
    }
    if k * 2 > n {
        return None; // most of the side: a complete index costs little more
    }
    let cut = entries[..k].iter().map(|e| e.score).fold(f64::INFINITY, f64::min);
    let mut rest = entries.split_off(k);
    rest.retain(|e| near(e.score, cut));
    entries.extend(rest);
    Some(entries.iter().map(|e| e.score).fold(f64::INFINITY, f64::min))
}
