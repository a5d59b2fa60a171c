//! Read models: for one request, as an exchange's position screen asks (one position or one
//! account, in O(markets + log n) rather than by building whole-book frames), and the
//! per-account rows of the whole book.

use rustc_hash::FxHashMap;

use crate::core::book::cross::CrossTotals;
use crate::core::book::position::{Position, Side, NO_INDEX};
use crate::core::engine::Engine;
use crate::core::policy::queues::QueueRow;
use crate::core::units::error::{AdlError, Result};

/// One position as its holder sees it. Amounts in cash units, prices in ticks of its market.
#[derive(Clone, Debug, PartialEq)]
pub struct PositionView {
    pub position: Position,
    /// Equity and maintenance at the mark (a cross position's: its share of the account's TNC,
    /// and its own maintenance); `None` while its market has no mark.
    pub health: Option<(i128, i128)>,
    /// Bankruptcy and liquidation prices in ticks (cross: the other marks held).
    pub prices: Option<(f64, f64)>,
    /// Its place in the ADL queue (rank, lights, lots queued ahead); `None` when it is not
    /// queued: a pro-rata policy, no mark, or not eligible (bankrupt, or a cross account whose
    /// TNC is not positive).
    pub queue: Option<QueueRow>,
}

/// One account: its free cash (a cross account's wallet), equity (cash + Σ position equity at
/// the marks, margin where a market has no mark), its cross totals and positions.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountView {
    pub account: u64,
    pub cash: i128,
    pub equity: i128,
    pub cross: Option<CrossTotals>,
    pub positions: Vec<PositionView>,
}

/// One row of the whole-book queue indicator (`Engine::indicator_rows`).
#[derive(Clone, Debug, PartialEq)]
pub struct IndicatorRow {
    pub account: u64,
    pub market: u32,
    pub side: Side,
    /// Its place in the queue: rank, percentile, lights, score, lots queued ahead.
    pub place: QueueRow,
    /// The notional of the lots queued ahead at the mark, in cash units.
    pub notional_ahead: i128,
}

impl Engine {
    /// The queue indicator of every open position in a market with a mark (docs/model.md §3):
    /// by market, longs then shorts, each queue in queue order; empty under a policy that
    /// ranks nobody. The whole-book form of `indicator` and of a position view's queue place.
    pub fn indicator_rows(&mut self) -> Result<Vec<IndicatorRow>> {
        let mut out = Vec::new();
        for market in 0..self.markets().len() as u32 {
            let Some(mark) = self.market(market).mark else { continue };
            for side in Side::BOTH {
                for place in self.indicator(market, side)? {
                    let notional_ahead = self.market(market).grid.notional(place.lots_ahead, mark);
                    out.push(IndicatorRow { account: self.store().get(place.slot).account, market, side, place, notional_ahead });
                }
            }
        }
        Ok(out)
    }

    /// The notional of the lots queued ahead of a queue place at its market's mark, in cash
    /// units; `None` without a mark.
    pub fn notional_ahead(&self, market: u32, place: &QueueRow) -> Option<i128> {
        let m = self.market(market);
        Some(m.grid.notional(place.lots_ahead, m.mark?))
    }

    /// The position of `account` on `side` of `market`. The first read after a mark change
    /// ranks that market side again (ranked policies).
    pub fn position_view(&mut self, account: u64, market: u32, side: Side) -> Result<PositionView> {
        if market as usize >= self.markets().len() {
            return Err(AdlError::UnknownMarket { symbol: format!("#{market}") });
        }
        let slot = self.store().find(&(account, market, side)).ok_or_else(|| AdlError::UnknownPosition {
            account,
            symbol: self.market(market).name.clone(),
            side,
        })?;
        self.view_of(slot)
    }

    /// Every open position of `account` (in market order, longs first) and its ledgers.
    pub fn account_view(&mut self, account: u64) -> Result<AccountView> {
        let slots: Vec<u32> = (0..self.markets().len() as u32)
            .flat_map(|m| Side::BOTH.map(|side| (m, side)))
            .filter_map(|(m, side)| self.store().find(&(account, m, side)))
            .collect();
        if slots.is_empty() && self.cash_entry(account).is_none() {
            return Err(AdlError::config("account", format!("account {account} holds no position and no cash")));
        }
        let positions = slots.into_iter().map(|slot| self.view_of(slot)).collect::<Result<Vec<_>>>()?;
        let cash = self.cash_of(account);
        let equity = cash + positions.iter().map(|v| self.position_equity(&v.position)).sum::<i128>();
        let cross = positions.iter().any(|v| v.position.cross).then(|| self.cross.totals(account));
        Ok(AccountView { account, cash, equity, cross, positions })
    }

    /// Every account that holds cash or a position, by id: (account, cash, equity, open
    /// positions), equity as in `account_view` (the whole-book form of it).
    pub fn account_rows(&self) -> Vec<(u64, i128, i128, u32)> {
        let mut by: FxHashMap<u64, (i128, i128, u32)> = FxHashMap::default();
        for (a, c) in self.cash_entries() {
            by.entry(a).or_default().0 = c;
        }
        for (_, p) in self.store().iter() {
            let v = by.entry(p.account).or_default();
            v.1 += self.position_equity(&p);
            v.2 += 1;
        }
        let mut rows: Vec<(u64, i128, i128, u32)> = by.into_iter().map(|(a, (cash, eq, n))| (a, cash, cash + eq, n)).collect();
        rows.sort_unstable_by_key(|r| r.0);
        rows
    }

    fn view_of(&mut self, slot: u32) -> Result<PositionView> {
        let p = self.store().get(slot);
        let marked = self.market(p.market).mark.is_some();
        let queue = if marked && self.policy.is_ranked() {
            self.ranking(p.market, p.side)?;
            let pos = self.store().get(slot).index_pos;
            (pos != NO_INDEX)
                .then(|| self.markets[p.market as usize].queue_place(&self.store, &self.scoring(), p.side, pos as usize, self.lights))
                .flatten()
        } else {
            None
        };
        Ok(PositionView { position: p, health: self.health(slot).ok(), prices: self.prices(slot), queue })
    }
}
