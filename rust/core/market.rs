//! Markets: grid, maintenance rate, mark, and the per-side member lists and ranking indexes.

use crate::core::error::{AdlError, Result};
use crate::core::fixed::{Grid, RATE_SCALE};
use crate::core::position::{side_slot, PositionStore, Side, NO_INDEX};
use crate::core::ranking::{Entry, QueueOrder, RankIndex};
use crate::core::score::Fraction;
use crate::core::scoring::Scoring;

/// Queue order over the positions of one market at its mark.
struct MarketOrder<'a> {
    store: &'a PositionStore,
    grid: &'a Grid,
    rate_ppm: i64,
    scoring: &'a Scoring<'a>,
    mark: i64,
}

impl QueueOrder for MarketOrder<'_> {
    fn account(&self, slot: u32) -> u64 {
        self.store.get(slot).account
    }
    fn exact(&self, slot: u32) -> Option<Fraction> {
        self.scoring.exact(self.grid, self.rate_ppm, self.mark, self.store.get(slot))
    }
}

/// User-facing market parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MarketSpec {
    /// Lot = 10^-qty_decimals of the base asset. Default 4 (0.0001).
    pub qty_decimals: u32,
    /// Price grid = 10^-price_decimals of the quote. Default 4 (0.0001).
    pub price_decimals: u32,
    /// Maintenance-margin rate, e.g. 0.005.
    pub maintenance_rate: f64,
}

impl Default for MarketSpec {
    fn default() -> Self {
        MarketSpec { qty_decimals: 4, price_decimals: 4, maintenance_rate: 0.005 }
    }
}

/// Maintenance rate in ppm, rounded to the nearest ppm.
pub fn rate_ppm(rate: f64) -> Result<i64> {
    if !rate.is_finite() || !(0.0..1.0).contains(&rate) {
        return Err(AdlError::config("maintenance_rate", format!("{rate} must be in [0, 1)")));
    }
    Ok((rate * RATE_SCALE as f64).round() as i64)
}

#[derive(Clone)]
pub struct Market {
    pub name: String,
    pub spec: MarketSpec,
    pub grid: Grid,
    pub rate_ppm: i64,
    pub mark: Option<i64>,
    /// Slots of the live positions per side (0 long, 1 short).
    pub members: [Vec<u32>; 2],
    /// Ranking index per side; `None` when stale (marks moved or the book was replaced).
    index: [Option<RankIndex>; 2],
}

impl Market {
    pub fn new(name: &str, spec: MarketSpec, cash_decimals: u32) -> Result<Market> {
        Ok(Market {
            name: name.to_string(),
            spec,
            grid: Grid::new(spec.qty_decimals, spec.price_decimals, cash_decimals)?,
            rate_ppm: rate_ppm(spec.maintenance_rate)?,
            mark: None,
            members: [Vec::new(), Vec::new()],
            index: [None, None],
        })
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
        let score = scoring.score(&self.grid, self.rate_ppm, mark, slot, &p);
        match (score, p.index_pos) {
            (None, NO_INDEX) => {}
            (Some(_), NO_INDEX) => self.index[s] = None,
            (None, pos) => {
                idx.remove(pos as usize, p.qty);
                store.get_mut(slot).index_pos = NO_INDEX;
            }
            (Some(score), pos) => {
                let order = MarketOrder { store, grid: &self.grid, rate_ppm: self.rate_ppm, scoring, mark };
                let mut moves = Vec::new();
                idx.rescore(pos as usize, score, &order, |s, at| moves.push((s, at)));
                for (s, at) in moves {
                    store.get_mut(s).index_pos = at as u32;
                }
            }
        }
    }

    /// The ranking index of `side`, rebuilt first if stale. Requires a mark.
    pub fn index(&mut self, store: &mut PositionStore, scoring: &Scoring<'_>, side: Side) -> Result<&RankIndex> {
        let s = side_slot(side);
        if self.index[s].is_none() {
            let mark = self.mark()?;
            let mut entries = Vec::with_capacity(self.members[s].len());
            for &slot in &self.members[s] {
                let p = store.get_mut(slot);
                p.index_pos = NO_INDEX;
                if let Some(score) = scoring.score(&self.grid, self.rate_ppm, mark, slot, p) {
                    entries.push(Entry { slot, account: p.account, score, lots: p.qty });
                }
            }
            let idx = RankIndex::build(entries, &MarketOrder { store, grid: &self.grid, rate_ppm: self.rate_ppm, scoring, mark });
            for (pos, slot) in idx.slots() {
                store.get_mut(slot).index_pos = pos as u32;
            }
            self.index[s] = Some(idx);
        }
        Ok(self.index[s].as_ref().expect("built above"))
    }

    /// The index of `side` if it is current.
    pub fn current_index(&self, side: Side) -> Option<&RankIndex> {
        self.index[side_slot(side)].as_ref()
    }
}
