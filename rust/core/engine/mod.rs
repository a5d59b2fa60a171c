//! The engine: positions, account cash, insurance fund and bad-debt ledgers, and the
//! liquidation waterfall of docs/model.md §2. Every mutating call validates first and then
//! applies, so an error leaves the engine exactly as it was.

pub mod audit;
pub mod dry_run;
pub mod labels;
pub mod preview;
pub mod simulate;
pub mod stateless;
pub mod undo;
pub mod updates;
pub mod views;

use rustc_hash::FxHashMap;

use crate::core::book::cross::CrossBook;
use crate::core::book::funds::Funds;
use crate::core::book::input::{check_side, parse_mark, parse_price, parse_row, PositionColumns};
use crate::core::book::partial::partial_close;
use crate::core::book::position::{side_slot, Key, Position, PositionStore, Side};
use crate::core::book::trigger::{AdlState, Trigger};
use crate::core::engine::labels::Labels;
use crate::core::engine::undo::{Book, Undo};
use crate::core::market::fees::{fee_on, reserved_fee};
use crate::core::market::{FeeConvention, MarketSpec, NO_POOL};
use crate::core::policy::alloc::{AdlTerms, Allocation, OppositeSide, PassReason, Take};
use crate::core::policy::kernel;
use crate::core::policy::queues::Market;
pub use crate::core::policy::score::AdlPrice;
use crate::core::policy::score::{Lights, Policy};
use crate::core::policy::scoring::Scoring;
use crate::core::units::error::{AdlError, Checked, Result};
use crate::core::units::fixed::{cash_to_f64, split_ceil, split_floor, Grid, LEDGER_LIMIT, MAX_MARGIN};

/// How a fill was executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillKind {
    /// Closed against the external order book at the fill price.
    External,
    /// Auto-deleveraged against a counterparty.
    Adl,
    /// Closed against the book with no counterparty left; its deficit beyond the fund is bad debt.
    BadDebt,
}

impl FillKind {
    pub fn name(&self) -> &'static str {
        match self {
            FillKind::External => "external",
            FillKind::Adl => "adl",
            FillKind::BadDebt => "bad_debt",
        }
    }
}

/// One fill record (docs/model.md §5). `account`/`side` are the counterparty's; `None` when the
/// book took the lots.
#[derive(Clone, Debug, PartialEq)]
pub struct Fill {
    pub event: u64,
    pub ts: Option<i64>,
    pub market: u32,
    pub bankrupt_account: u64,
    pub bankrupt_side: Side,
    pub account: Option<u64>,
    pub side: Option<Side>,
    pub lots: i64,
    /// Price in quote units (the exact effective price of the transfer).
    pub price: f64,
    pub rank: Option<u64>,
    pub score: Option<f64>,
    pub kind: FillKind,
    /// The counterparty's entry price (quote units) for ADL fills: with `price` it gives the
    /// profit the counterparty gave up.
    pub entry: Option<f64>,
}

/// The outcome of one liquidation. Cash amounts in cash units.
#[derive(Clone, Debug, PartialEq)]
pub struct Liquidation {
    pub event: u64,
    pub key: Key,
    pub fills: Vec<Fill>,
    /// Paid into the fund (remaining equity when the book paid at least the bankruptcy price).
    pub to_fund: i128,
    /// Paid out of the fund to cover deficits.
    pub from_fund: i128,
    pub bad_debt: i128,
    pub adl_lots: i64,
    pub external_lots: i64,
    /// Positions whose open orders a venue would cancel: the liquidated one and every counterparty.
    pub cancel_orders: Vec<Key>,
    /// The liquidation fee (part of `to_fund`).
    pub fee: i128,
    /// What was left after the close, returned to the trader's cash (`surplus_to_fund = false`).
    pub returned: i128,
    /// ADL fees the counterparties paid to the venue.
    pub adl_fees: i128,
    /// Lots the position still holds (> 0 after a partial liquidation).
    pub remaining_lots: i64,
    /// Counterparties the queue passed over because they could not pay at the ADL price
    /// (docs/model.md §2 step 4), in the order they were met. They keep their place.
    pub passed: Vec<PassedOver>,
}

/// A counterparty passed over in an event: its position and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassedOver {
    pub account: u64,
    pub side: Side,
    pub reason: PassReason,
}

/// A liquidation request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Request {
    pub account: u64,
    pub market: u32,
    pub side: Side,
    /// Price the external book gives for the whole quantity; `None` = mark.
    pub fill_price: Option<f64>,
    pub force: bool,
    /// Close only the fewest lots that bring an isolated position back to maintenance
    /// (`partial::partial_close`); the whole position when no part will do.
    pub partial: bool,
}

/// Ledger totals, for audits and conservation checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Totals {
    pub cash: i128,
    pub position_equity: i128,
    pub fund: i128,
    pub bad_debt: i128,
    /// Value passed to the external book: Σ σ·q·(P − F) over book fills.
    pub book_value: i128,
    pub long_lots: i128,
    pub short_lots: i128,
    /// ADL fees paid to the venue.
    pub fees: i128,
}

impl Totals {
    /// What the invariant of docs/model.md §2 conserves at fixed marks (fees paid to the venue
    /// included): cash + position equity + fund + book value + fees − bad debt.
    pub fn value(&self) -> i128 {
        self.cash + self.position_equity + self.fund + self.book_value + self.fees - self.bad_debt
    }
}

/// One counterparty transfer, computed before anything is applied.
struct AdlLeg {
    take: Take,
    /// Margin released from the counterparty's position into its cash.
    released: i128,
    /// Total credit to the counterparty's cash (released margin + realised PnL at the ADL price).
    credit: i128,
}

/// A planned liquidation, or the opposite-side index it needs first.
enum Planned {
    Done(Box<Plan>),
    /// An index holding at least the head of the queue with this many lots (rebuilt deeper
    /// if the current one is a shallower head).
    NeedHead(i64),
    NeedComplete,
}

struct Plan {
    slot: u32,
    /// Cash moved from a cross account's wallet into the liquidated position (its effective margin).
    wallet_debit: i128,
    legs: Vec<AdlLeg>,
    book_value: i128,
    /// A partial close: the position keeps what the close left (lots closed, margin after).
    partial: Option<(i64, i128)>,
    outcome: Liquidation,
}

/// The log of fills, in event order, in fixed-size chunks so that appending never copies the
/// history (a growing Vec would stall one event for milliseconds when it doubles). Its front
/// can be drained (`Engine::drain_events`), so the first chunk may be short.
#[derive(Clone, Default)]
pub struct EventLog {
    chunks: std::collections::VecDeque<Vec<Fill>>,
    len: usize,
}

impl EventLog {
    const CHUNK: usize = 4096;

    pub(crate) fn push(&mut self, f: Fill) {
        debug_assert!(self.last().is_none_or(|l| l.event <= f.event), "fills in event order");
        match self.chunks.back_mut() {
            Some(c) if c.len() < Self::CHUNK => c.push(f),
            _ => {
                let mut c = Vec::with_capacity(Self::CHUNK);
                c.push(f);
                self.chunks.push_back(c);
            }
        }
        self.len += 1;
    }
    pub fn len(&self) -> usize {
        self.len
    }
    /// Keeps the first `len` fills (`undo::Undo`).
    pub(crate) fn truncate(&mut self, len: usize) {
        while self.len > len {
            let last = self.chunks.back_mut().expect("fills left to cut");
            let cut = (self.len - len).min(last.len());
            last.truncate(last.len() - cut);
            self.len -= cut;
            if last.is_empty() {
                self.chunks.pop_back();
            }
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn iter(&self) -> impl Iterator<Item = &Fill> {
        self.chunks.iter().flatten()
    }
    pub fn last(&self) -> Option<&Fill> {
        self.chunks.back().and_then(|c| c.last())
    }
    /// The fills of events `>= event`, found by binary search (chunks, then within one).
    pub fn since(&self, event: u64) -> impl Iterator<Item = &Fill> {
        let first = self.chunks.partition_point(|c| c.last().is_some_and(|f| f.event < event));
        let skip = self.chunks.get(first).map_or(0, |c| c.partition_point(|f| f.event < event));
        self.chunks.range(first..).flatten().skip(skip)
    }
    /// Drops the fills of events `< event`; returns how many.
    pub(crate) fn drain_before(&mut self, event: u64) -> usize {
        let before = self.len;
        while let Some(front) = self.chunks.front_mut() {
            let k = front.partition_point(|f| f.event < event);
            self.len -= k;
            if k < front.len() {
                front.drain(..k);
                break;
            }
            self.chunks.pop_front();
        }
        before - self.len
    }
}

#[derive(Clone)]
pub struct Engine {
    pub policy: Policy,
    /// Price of ADL fills; defaults to the policy's (`Policy::adl_price`).
    pub adl_price: AdlPrice,
    /// Seed of the `dydx` walk's start (with the event id).
    pub seed: u64,
    /// How queue lights are bucketed; defaults to the policy's (`Policy::lights`).
    pub lights: Lights,
    /// Whether fills are kept in the event log (`events()`); simulations that only need
    /// aggregates turn it off. In snapshots (version 5) and set by a logged operation.
    pub keep_fills: bool,
    /// The fills of events below this id were drained (`drain_events`); 0 = never.
    pub(crate) drained_upto: u64,
    pub(crate) funds: Funds,
    pub cash_decimals: u32,
    pub default_spec: MarketSpec,
    pub(crate) markets: Vec<Market>,
    pub(crate) market_ids: FxHashMap<String, u32>,
    pub(crate) store: PositionStore,
    pub(crate) cash: FxHashMap<u64, i128>,
    pub(crate) cross: CrossBook,
    /// Caller's scores by slot (policy `custom`).
    pub(crate) custom: Vec<f64>,
    pub(crate) bad_debt: i128,
    pub(crate) book_value: i128,
    /// ADL fees paid to the venue.
    pub(crate) fees: i128,
    pub(crate) next_event: u64,
    pub(crate) ts: Option<i64>,
    pub(crate) events: EventLog,
    /// The caller's string account ids by code (empty: integer ids) and clock zone.
    pub(crate) labels: Labels,
    pub(crate) clock: Option<String>,
}

impl Engine {
    pub fn new(policy: Policy, insurance_fund: f64, cash_decimals: u32, default_spec: MarketSpec) -> Result<Engine> {
        // Validate the defaults once by building a throwaway market.
        Market::new("", default_spec.clone(), cash_decimals)?;
        let fund = Self::cash_param(insurance_fund, cash_decimals, "insurance_fund")?;
        Ok(Engine {
            policy,
            adl_price: policy.adl_price(),
            seed: 0,
            lights: policy.lights(),
            keep_fills: true,
            drained_upto: 0,
            funds: Funds::new(Trigger::FundEmpty, fund),
            cash_decimals,
            default_spec,
            markets: Vec::new(),
            market_ids: FxHashMap::default(),
            store: PositionStore::default(),
            cash: FxHashMap::default(),
            cross: CrossBook::default(),
            custom: Vec::new(),
            bad_debt: 0,
            book_value: 0,
            fees: 0,
            next_event: 0,
            ts: None,
            events: EventLog::default(),
            labels: Labels::default(),
            clock: None,
        })
    }

    /// An amount `>= 0` in cash units (`field` names it in the error).
    pub(crate) fn cash_param(x: f64, cash_decimals: u32, field: &str) -> Result<i128> {
        let g = Grid::cash_only(cash_decimals)?;
        match g.cash(x) {
            Some(v) if v >= 0 => Ok(v),
            _ => Err(AdlError::config(field, format!("{x} must be a finite amount >= 0 within the fixed-point range"))),
        }
    }

    // ----- markets -------------------------------------------------------------------

    /// Adds or redefines a market. Redefining is allowed only while it has no positions.
    pub fn add_market(&mut self, name: &str, spec: MarketSpec) -> Result<u32> {
        self.undoable(|e, undo| e.add_market_noted(name, spec, undo))
    }

    pub(crate) fn add_market_noted(&mut self, name: &str, spec: MarketSpec, undo: &mut Undo) -> Result<u32> {
        if let Some(&id) = self.market_ids.get(name) {
            undo.note_replaced_market(self, id);
        }
        let mut m = Market::new(name, spec, self.cash_decimals)?;
        match self.market_ids.get(name) {
            Some(&id) => {
                let old = &self.markets[id as usize];
                if !old.members[0].is_empty() || !old.members[1].is_empty() {
                    return Err(AdlError::config("market", format!("market {name:?} has open positions; its grid cannot change")));
                }
                // Keep the mark: the old grid's ticks as a price, on the new grid.
                if let Some(t) = old.mark {
                    m.set_mark(parse_mark(&m.grid, name, old.grid.price_f64(t as f64))?);
                }
                self.markets[id as usize] = m;
                self.resolve_pool(id);
                Ok(id)
            }
            None => {
                self.markets.push(m);
                let id = (self.markets.len() - 1) as u32;
                self.market_ids.insert(name.to_string(), id);
                self.resolve_pool(id);
                Ok(id)
            }
        }
    }

    /// Points one market at its fund pool (constant time: `restore` adds markets one by one).
    fn resolve_pool(&mut self, id: u32) {
        let trigger = self.funds.pool(0).trigger.trigger;
        let m = &mut self.markets[id as usize];
        if m.pool == NO_POOL {
            m.pool = self.funds.add(m.pool_name(), trigger, 0);
        }
    }

    /// Points new markets at their fund pools, adding (empty) pools that do not exist yet.
    pub(crate) fn resolve_pools(&mut self) {
        let trigger = self.funds.pool(0).trigger.trigger;
        for m in self.markets.iter_mut().filter(|m| m.pool == NO_POOL) {
            m.pool = self.funds.add(m.pool_name(), trigger, 0);
        }
    }

    pub fn market_id(&self, name: &str) -> Result<u32> {
        self.market_ids.get(name).copied().ok_or_else(|| AdlError::UnknownMarket { symbol: name.to_string() })
    }
    pub fn markets(&self) -> &[Market] {
        &self.markets
    }
    pub fn market(&self, id: u32) -> &Market {
        &self.markets[id as usize]
    }

    /// Sets marks (all validated first). Marks of other markets are unchanged.
    pub fn set_marks(&mut self, marks: &[(String, f64)], ts: Option<i64>) -> Result<()> {
        self.undoable(|e, undo| e.set_marks_noted(marks, ts, undo))
    }

    pub(crate) fn set_marks_noted(&mut self, marks: &[(String, f64)], ts: Option<i64>, undo: &mut Undo) -> Result<()> {
        // The clock only moves forward (the drawdown window and fill stamps read it).
        if let (Some(new), Some(now)) = (ts, self.ts) {
            if new < now {
                return Err(AdlError::config("ts", format!("{new} is before the engine's clock {now}; ts must not go backwards")));
            }
        }
        let mut parsed = Vec::with_capacity(marks.len());
        for (name, price) in marks {
            let id = self.market_id(name)?;
            parsed.push((id, parse_mark(&self.markets[id as usize].grid, name, *price)?));
        }
        // Marks, cross totals (from the marks), the clock and every pool's trigger window.
        undo.note_marks(self);
        undo.note_all_pools(self);
        self.set_mark_ticks(&parsed, ts).map_err(|e| AdlError::config("marks", e.to_string()))
    }

    /// Refuses a `ts` more than `max_step` ahead of the engine's clock (`None`: one window of
    /// a drawdown trigger, unbounded under the other triggers). One stray future `ts` would
    /// otherwise move the clock there for good: every later real `ts` is before it (refused),
    /// and the trigger's window, stuck at that time, would never slide. Beyond one window
    /// nothing of the window's history is left, so a real gap that long is one the caller
    /// knows of (and allows with `max_step`). Checked at the door (`oplog::Journal`), not on
    /// replay: a logged `set_marks` was accepted when it ran.
    pub fn check_ts_step(&self, ts: Option<i64>, max_step: Option<i64>) -> Result<()> {
        let limit = max_step.or_else(|| self.funds.pool(0).trigger.trigger.window());
        if let (Some(new), Some(now), Some(limit)) = (ts, self.ts, limit) {
            if new.saturating_sub(now) > limit {
                return Err(AdlError::config(
                    "ts",
                    format!("{new} is more than max_ts_step = {limit} ahead of the engine's clock {now} (a stray future ts would hold the clock there)"),
                ));
            }
        }
        Ok(())
    }

    /// Sets validated marks (market id, ticks): what `set_marks` does after parsing. Refused,
    /// changing nothing, when a cross account's sums would pass `cross::CROSS_LIMIT`.
    pub(crate) fn set_mark_ticks(&mut self, marks: &[(u32, i64)], ts: Option<i64>) -> Result<()> {
        let before: Vec<(u32, Option<i64>)> = marks.iter().map(|&(id, _)| (id, self.markets[id as usize].mark)).collect();
        for &(id, t) in marks {
            self.markets[id as usize].set_mark(t);
        }
        // The markets whose mark moved, each once with its first mark before the call.
        let mut moved: Vec<(u32, Option<i64>)> =
            before.iter().copied().filter(|&(id, old)| self.markets[id as usize].mark != old).collect();
        moved.sort_by_key(|&(id, _)| id);
        moved.dedup_by_key(|&mut (id, _)| id);
        if !self.cross.is_empty() && !moved.is_empty() {
            match self.cross.remark(&moved, &self.markets) {
                Ok(touched) => {
                    let changed: Vec<u32> = moved.iter().map(|&(id, _)| id).collect();
                    self.rekey_cross(&touched, &changed)
                }
                Err(e) => {
                    // Back to the old marks (their indexes went stale: caches, rebuilt on use).
                    for &(id, mark) in before.iter().rev() {
                        self.markets[id as usize].mark = mark;
                    }
                    return Err(e);
                }
            }
        }
        if ts.is_some() {
            self.ts = ts;
        }
        self.funds.observe(self.ts);
        Ok(())
    }

    /// Cross positions in markets whose mark did not move but whose accounts' totals did
    /// (`touched`): their scores moved. A queue with few of them re-keys them in place; one
    /// with many goes stale (rebuilt on use, as after a mark change of its own market).
    fn rekey_cross(&mut self, touched: &[u64], changed: &[u32]) {
        let current = |(i, m): (usize, &Market)| {
            changed.binary_search(&(i as u32)).is_err() && (m.current_index(1).is_some() || m.current_index(-1).is_some())
        };
        if !self.markets.iter().enumerate().any(current) {
            return; // every queue the touched accounts are in is stale already
        }
        let mut by_side: FxHashMap<(u32, usize), Vec<u32>> = FxHashMap::default();
        for &a in touched {
            for &slot in self.cross.slots(a) {
                let p = self.store.get(slot);
                if changed.binary_search(&p.market).is_err() && self.markets[p.market as usize].current_index(p.side).is_some() {
                    by_side.entry((p.market, side_slot(p.side))).or_default().push(slot);
                }
            }
        }
        let scoring = Scoring { policy: self.policy, cross: &self.cross, custom: &self.custom };
        for ((market, side), mut slots) in by_side {
            let m = &mut self.markets[market as usize];
            let queued = m.current_index(if side == 0 { 1 } else { -1 }).map_or(0, |i| i.len());
            if slots.len() > REKEY_MAX.max(queued / 64) {
                m.invalidate_side(side);
                continue;
            }
            slots.sort_unstable();
            for slot in slots {
                m.rescore_member(&mut self.store, &scoring, slot);
            }
        }
    }

    // ----- book ----------------------------------------------------------------------

    /// Replaces the book. `symbols[code]` names the market of each code in `cols.market`;
    /// unknown markets are created with the default spec. `accounts` (account, cash), when
    /// given, replaces all account cash (a cross account's wallet); otherwise every account
    /// starts at zero cash. `custom` gives each row's score under policy `custom`.
    pub fn load(
        &mut self,
        cols: PositionColumns<'_>,
        symbols: &[String],
        accounts: Option<(&[u64], &[f64])>,
        custom: Option<&[f64]>,
    ) -> Result<()> {
        self.undoable(|e, undo| e.load_noted(cols, symbols, accounts, custom, undo))
    }

    /// `load`: the new book is staged and swapped in whole; the old one goes to `undo`.
    pub(crate) fn load_noted(
        &mut self,
        cols: PositionColumns<'_>,
        symbols: &[String],
        accounts: Option<(&[u64], &[f64])>,
        custom: Option<&[f64]>,
        undo: &mut Undo,
    ) -> Result<()> {
        cols.check_shape(symbols.len())?;
        let custom = self.check_custom(custom, cols.len())?;
        // Markets are staged so a failure changes nothing.
        let mut markets = self.markets.clone();
        let mut ids = self.market_ids.clone();
        let mut code_to_id = Vec::with_capacity(symbols.len());
        for name in symbols {
            let id = match ids.get(name) {
                Some(&id) => id,
                None => {
                    markets.push(Market::new(name, self.default_spec.clone(), self.cash_decimals)?);
                    let id = (markets.len() - 1) as u32;
                    ids.insert(name.clone(), id);
                    id
                }
            };
            code_to_id.push(id);
        }
        for m in markets.iter_mut() {
            m.members = [Vec::new(), Vec::new()];
            m.invalidate();
        }
        let cash = match accounts {
            Some((acc, amounts)) => self.parse_accounts(acc, amounts)?,
            None => FxHashMap::default(),
        };
        let n = cols.len();
        let mut store = PositionStore::with_capacity(n);
        for row in 0..n {
            let id = code_to_id[cols.market_of(row) as usize];
            let m = &markets[id as usize];
            let r = parse_row(&m.grid, row, cols.side[row], cols.qty[row], cols.entry[row], cols.margin[row])?;
            let account = cols.account[row];
            let inserted = store.insert(cols.position(row, r, id));
            if let Err(first) = inserted {
                // Slots are handed out in row order while loading, so a slot is its row.
                return Err(AdlError::DuplicateKey { account, symbol: m.name.clone(), side: r.side, row, first_row: first as usize });
            }
        }
        for slot in 0..n as u32 {
            let m = store.get(slot).market as usize;
            markets[m].add_member(&mut store, slot);
        }
        let cross = CrossBook::build(&cash, &store, &markets)?;
        undo.note_replaced_book(Book {
            markets: std::mem::replace(&mut self.markets, markets),
            market_ids: std::mem::replace(&mut self.market_ids, ids),
            store: std::mem::replace(&mut self.store, store),
            cash: std::mem::replace(&mut self.cash, cash),
            cross: std::mem::replace(&mut self.cross, cross),
            custom: std::mem::replace(&mut self.custom, custom),
        });
        self.resolve_pools();
        Ok(())
    }

    /// Custom scores: required (finite, one per row) under policy `custom`, refused otherwise.
    pub(crate) fn check_custom(&self, custom: Option<&[f64]>, n: usize) -> Result<Vec<f64>> {
        match (self.policy, custom) {
            (Policy::Custom, Some(s)) => {
                if s.len() != n {
                    return Err(AdlError::config("score", format!("column has {} rows, positions have {n}", s.len())));
                }
                if let Some(row) = s.iter().position(|x| !x.is_finite()) {
                    return Err(AdlError::value("score", row, format!("{} is not a finite score", s[row])));
                }
                Ok(s.to_vec())
            }
            (Policy::Custom, None) => Err(AdlError::config("score", "policy custom needs a score for every position")),
            (_, Some(_)) => {
                Err(AdlError::config("score", format!("scores are given but the policy is {}, not custom", self.policy.name())))
            }
            (_, None) => Ok(Vec::new()),
        }
    }

    pub(crate) fn parse_accounts(&self, acc: &[u64], amounts: &[f64]) -> Result<FxHashMap<u64, i128>> {
        if acc.len() != amounts.len() {
            return Err(AdlError::config("cash", "accounts and cash columns differ in length"));
        }
        let g = Grid::cash_only(self.cash_decimals)?;
        let mut cash = FxHashMap::with_capacity_and_hasher(acc.len(), Default::default());
        let mut first_row = FxHashMap::default();
        for (row, (&a, &x)) in acc.iter().zip(amounts).enumerate() {
            let v = match g.cash(x) {
                Some(v) if v >= 0 => v,
                _ => return Err(AdlError::value("cash", row, format!("{x} must be a finite amount >= 0 within the fixed-point range"))),
            };
            if let Some(first) = first_row.insert(a, row) {
                return Err(AdlError::value("account", row, format!("duplicate account {a} (first seen at row {first})")));
            }
            cash.insert(a, v);
        }
        Ok(cash)
    }

    pub fn store(&self) -> &PositionStore {
        &self.store
    }
    /// Σ of every fund pool.
    pub fn fund(&self) -> i128 {
        self.funds.total()
    }
    pub fn funds(&self) -> &Funds {
        &self.funds
    }
    pub fn bad_debt(&self) -> i128 {
        self.bad_debt
    }
    pub fn ts(&self) -> Option<i64> {
        self.ts
    }
    pub fn events(&self) -> &EventLog {
        &self.events
    }
    /// The id the next event will have (every cursor of the fill log is at most this).
    pub fn next_event(&self) -> u64 {
        self.next_event
    }
    /// The fills of events below this id were drained (0 = never).
    pub fn drained_upto(&self) -> u64 {
        self.drained_upto
    }

    /// Drops the fill records of events `< upto` (a cursor: the id after the last event the
    /// caller has read). Refused, changing nothing, when `upto` is past the next event id.
    /// A cursor below an earlier one drops nothing more. Returns the records dropped.
    pub fn drain_events(&mut self, upto: u64) -> Result<usize> {
        if upto > self.next_event {
            return Err(AdlError::config(
                "upto",
                format!("{upto} is past the next event id {}; a cursor is at most the id after the last event", self.next_event),
            ));
        }
        self.drained_upto = self.drained_upto.max(upto);
        Ok(self.events.drain_before(upto))
    }

    /// Whether later events keep their fill records (those already held stay).
    pub fn set_keep_fills(&mut self, keep: bool) {
        self.keep_fills = keep;
    }
    pub fn cash_of(&self, account: u64) -> i128 {
        self.cash.get(&account).copied().unwrap_or(0)
    }
    pub fn accounts_cash(&self) -> &FxHashMap<u64, i128> {
        &self.cash
    }
    pub fn cash_f64(&self, units: i128) -> f64 {
        cash_to_f64(units, self.cash_decimals)
    }

    /// Sets the balance of fund pool `pool`: `"default"`, or one a market names in
    /// `MarketSpec::fund_pool` (an unknown name is refused: a typo would fund nobody).
    pub fn set_fund(&mut self, amount: f64, pool: &str) -> Result<()> {
        self.undoable(|e, undo| e.set_fund_noted(amount, pool, undo))
    }

    pub(crate) fn set_fund_noted(&mut self, amount: f64, pool: &str, undo: &mut Undo) -> Result<()> {
        let amount = Self::cash_param(amount, self.cash_decimals, "insurance_fund")?;
        let id = self.funds.id(pool).ok_or_else(|| {
            let known: Vec<&str> = self.funds.pools().iter().map(|p| p.name.as_str()).collect();
            AdlError::config("pool", format!("no fund pool {pool:?} (pools: {known:?}; a market names its pool with fund_pool)"))
        })?;
        undo.note_pool(self, id);
        self.funds.set(id, amount, self.ts);
        Ok(())
    }

    /// Sets the ADL trigger of every pool (its history starts from the pool's balance).
    pub fn set_trigger(&mut self, trigger: Trigger) {
        self.funds.set_trigger(trigger, self.ts);
    }

    pub(crate) fn set_trigger_noted(&mut self, trigger: Trigger, undo: &mut Undo) {
        undo.note_all_pools(self);
        self.funds.set_trigger(trigger, self.ts);
    }

    /// A pool's trigger state and measure (drawdown ratio, or fund / peak).
    pub fn adl_state(&self, pool: &str) -> Result<(Trigger, AdlState, f64)> {
        let id = self.funds.id(pool).ok_or_else(|| AdlError::config("pool", format!("no fund pool {pool:?}")))?;
        let p = self.funds.pool(id);
        let (state, level) = p.trigger.state(p.balance);
        Ok((p.trigger.trigger, state, level))
    }

    /// Ledger totals at the current marks (positions in markets without marks count margin only).
    pub fn totals(&self) -> Totals {
        let mut t = Totals {
            cash: self.cash.values().sum(),
            position_equity: 0,
            fund: self.funds.total(),
            bad_debt: self.bad_debt,
            book_value: self.book_value,
            long_lots: 0,
            short_lots: 0,
            fees: self.fees,
        };
        for (_, p) in self.store.iter() {
            t.position_equity += self.position_equity(p);
            if p.side > 0 {
                t.long_lots += p.qty as i128;
            } else {
                t.short_lots += p.qty as i128;
            }
        }
        t
    }

    // ----- queries -------------------------------------------------------------------

    /// A position's term of the conserved sum: its equity at the mark, or its margin while
    /// its market has no mark.
    pub fn position_equity(&self, p: &Position) -> i128 {
        let m = &self.markets[p.market as usize];
        m.mark.map_or(p.margin, |mark| p.equity(&m.grid, mark))
    }

    /// Drops every ranking index (a cache, rebuilt on first use).
    pub fn drop_caches(&mut self) {
        self.markets.iter_mut().for_each(Market::invalidate);
    }

    pub(crate) fn scoring(&self) -> Scoring<'_> {
        Scoring { policy: self.policy, cross: &self.cross, custom: &self.custom }
    }

    /// Equity and maintenance of the position at `slot` (requires a mark). A cross position's
    /// equity is its share of its account's net collateral (so `equity < maintenance` exactly
    /// when the account is below maintenance).
    pub fn health(&self, slot: u32) -> Result<(i128, i128)> {
        let p = self.store.get(slot);
        let m = &self.markets[p.market as usize];
        let mark = m.mark()?;
        let mm = if p.cross { p.maintenance(&m.grid, mark, &m.tiers) } else { m.maintenance(p, mark) };
        Ok((self.scoring().equity(&m.grid, &m.tiers, mark, p), mm))
    }

    /// Whether a position is below maintenance, with its equity and maintenance (a cross
    /// position's are its account's: TNC and TMMR).
    fn below_maintenance(&self, p: &Position, m: &Market, mark: i64) -> (bool, i128, i128) {
        let (e, mm) = if p.cross {
            let t = self.cross.totals(p.account);
            (t.tnc(), t.maintenance)
        } else {
            (p.equity(&m.grid, mark), m.maintenance(p, mark))
        };
        (e < mm, e, mm)
    }

    /// Bankruptcy and liquidation prices of the position at `slot`, in ticks (cross: docs/model.md
    /// §6, the other marks held). `None` for a cross position in a market without a mark.
    pub fn prices(&self, slot: u32) -> Option<(f64, f64)> {
        let p = *self.store.get(slot);
        let m = &self.markets[p.market as usize];
        let bankrupt_at = |margin: i128| Position { margin: margin - self.reserved_fee(m, &p, margin), ..p };
        if !p.cross {
            return Some((bankrupt_at(p.margin).bankruptcy_ticks(&m.grid), m.liquidation_ticks(&p)));
        }
        let mark = m.mark?;
        let bk = bankrupt_at(self.cross.effective_margin(&p, &m.grid, &m.tiers, mark));
        let liq = Position { margin: self.cross.liquidation_margin(&p, &m.grid, &m.tiers, mark), ..p };
        Some((bk.bankruptcy_ticks(&m.grid), liq.liquidation_ticks(&m.grid, &m.tiers)))
    }

    /// The liquidation fee reserved out of `margin` under `FeeConvention::Bankruptcy` (0 otherwise).
    pub(crate) fn reserved_fee(&self, m: &Market, p: &Position, margin: i128) -> i128 {
        match m.spec.fee_convention {
            FeeConvention::Bankruptcy => reserved_fee(&m.grid, p.side, p.qty, p.entry, margin, m.liquidation_fee_ppm),
            FeeConvention::Surplus => 0,
        }
    }

    /// Slots of positions with equity < maintenance, worst (lowest equity/maintenance) first;
    /// all cross positions of an account below maintenance. Markets without a mark are skipped.
    pub fn liquidatable(&self) -> Vec<u32> {
        let mut out: Vec<(f64, u32)> = Vec::new();
        for (slot, p) in self.store.iter() {
            let m = &self.markets[p.market as usize];
            let Some(mark) = m.mark else { continue };
            let (below, e, mm) = self.below_maintenance(p, m, mark);
            if below {
                let ratio = if mm > 0 { e as f64 / mm as f64 } else { f64::NEG_INFINITY };
                out.push((ratio, slot));
            }
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        out.into_iter().map(|(_, s)| s).collect()
    }

    /// The queue indicator of one side of a market (docs/model.md §3), in queue order, with
    /// the engine's `lights` method; empty under policies that rank nobody.
    pub fn indicator(&mut self, market: u32, side: Side) -> Result<Vec<crate::core::policy::queues::QueueRow>> {
        if !self.policy.is_ranked() {
            return Ok(Vec::new());
        }
        self.ranking(market, side)?;
        let scoring = Scoring { policy: self.policy, cross: &self.cross, custom: &self.custom };
        Ok(self.markets[market as usize].indicator(&self.store, &scoring, side, self.lights).expect("built"))
    }

    /// Ranking queue of one side of a market (rebuilt if stale).
    pub fn ranking(&mut self, market: u32, side: Side) -> Result<&crate::core::policy::ranking::RankIndex> {
        let scoring = Scoring { policy: self.policy, cross: &self.cross, custom: &self.custom };
        self.markets[market as usize].index(&mut self.store, &scoring, side)
    }

    // ----- liquidation ---------------------------------------------------------------

    fn find(&self, account: u64, market: u32, side: Side) -> Result<u32> {
        if market as usize >= self.markets.len() {
            return Err(AdlError::UnknownMarket { symbol: format!("#{market}") });
        }
        self.store.find(&(account, market, side)).ok_or_else(|| AdlError::UnknownPosition {
            account,
            symbol: self.markets[market as usize].name.clone(),
            side,
        })
    }

    /// Checks a request without changing anything observable; returns the slot and fill price.
    pub(crate) fn check(&self, req: &Request, row: usize) -> Result<(u32, Option<i64>)> {
        check_side(req.side, Some(row))?;
        let slot = self.find(req.account, req.market, req.side)?;
        let m = &self.markets[req.market as usize];
        let mark = m.mark()?;
        let fill = match req.fill_price {
            Some(x) => Some(parse_price(&m.grid, "fill_price", row, x)?),
            None => None,
        };
        let (below, e, mm) = self.below_maintenance(self.store.get(slot), m, mark);
        if !below && !req.force {
            return Err(AdlError::NotLiquidatable {
                account: req.account,
                symbol: m.name.clone(),
                side: req.side,
                equity: self.cash_f64(e),
                maintenance: self.cash_f64(mm),
            });
        }
        Ok((slot, fill))
    }

    /// Liquidates one position through the waterfall. With `dry_run` the result is computed
    /// and nothing is applied (the ranking index may be rebuilt: a cache, not state).
    pub fn liquidate(&mut self, req: Request, dry_run: bool) -> Result<Liquidation> {
        self.liquidate_capped(req, None, dry_run)
    }

    /// `liquidate` auto-deleveraging at most `max_adl` lots (a severity budget, docs/model.md
    /// §8; `None`: no cap). The lots past the fund that the cap leaves close against the book
    /// at the fill price as in step 5: the fund's leftover pays their deficit, the rest is bad debt.
    pub fn liquidate_capped(&mut self, req: Request, max_adl: Option<i64>, dry_run: bool) -> Result<Liquidation> {
        if let Some(k) = max_adl.filter(|&k| k < 0) {
            return Err(AdlError::config("max_adl", format!("{k} lots: must be >= 0")));
        }
        let (slot, fill) = self.check(&req, 0)?;
        if dry_run {
            return Ok(self.plan_capped(slot, fill, req.partial, max_adl)?.outcome);
        }
        self.undoable(|e, undo| e.step(undo, slot, fill, req.partial, max_adl))
    }

    /// Runs a mutating call, which notes in `undo` what it is about to change (liquidations:
    /// each `step`): if it fails (or panics) after changing something, everything noted is
    /// put back (`undo::Undo`), so the call changes nothing.
    pub(crate) fn undoable<T>(&mut self, f: impl FnOnce(&mut Engine, &mut Undo) -> Result<T>) -> Result<T> {
        let mut undo = Undo::start(self);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self, &mut undo)));
        match result {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => {
                undo.rollback(self);
                Err(e)
            }
            Err(panic) => {
                undo.rollback(self);
                let message = crate::core::units::error::panic_message(panic.as_ref());
                Err(AdlError::Internal { message: format!("{message}; the call was undone") })
            }
        }
    }

    /// Plans one liquidation on the current state, notes what it will change, applies it.
    fn step(&mut self, undo: &mut Undo, slot: u32, fill: Option<i64>, partial: bool, max_adl: Option<i64>) -> Result<Liquidation> {
        let plan = self.plan_capped(slot, fill, partial, max_adl)?;
        let p = self.store.get(slot);
        let mut slots = vec![slot];
        let mut accounts = vec![p.account];
        for leg in &plan.legs {
            slots.push(leg.take.slot);
            accounts.push(self.store.get(leg.take.slot).account);
        }
        let market = p.market;
        undo.note(self, &slots, &accounts, self.markets[market as usize].pool, market);
        Ok(self.apply_plan(plan))
    }

    /// Liquidates a batch in order. Every request is validated against the state at the
    /// start before anything is applied (all or nothing). A position that an earlier
    /// request of the batch already closed through ADL is skipped (`None`).
    pub fn liquidate_many(&mut self, reqs: &[Request]) -> Result<Vec<Option<Liquidation>>> {
        let mut seen = FxHashMap::default();
        let mut checked = Vec::with_capacity(reqs.len());
        for (row, req) in reqs.iter().enumerate() {
            let (slot, fill) = self.check(req, row)?;
            if let Some(first) = seen.insert(slot, row) {
                return Err(AdlError::value(
                    "account",
                    row,
                    format!(
                        "position (account={}, side={}) is liquidated twice in the batch (first at row {first})",
                        req.account, req.side
                    ),
                ));
            }
            checked.push(fill);
        }
        self.undoable(|e, undo| {
            let mut out = Vec::with_capacity(reqs.len());
            for (req, fill) in reqs.iter().zip(checked) {
                let Some(slot) = e.store.find(&(req.account, req.market, req.side)) else {
                    out.push(None);
                    continue;
                };
                out.push(Some(e.step(undo, slot, fill, req.partial, None)?));
            }
            Ok(out)
        })
    }

    /// Liquidates every cross position of `account` (docs/model.md §6), largest maintenance
    /// first (then market id, longs first). Each closes at its own cross bankruptcy price;
    /// closing one at that price leaves the account's `TNC/TMMR` as it was, so the rest stay
    /// liquidatable and all are closed. Checked first: the account has cross positions, every
    /// market involved has a mark, and (unless `force`) `TNC < TMMR`.
    ///
    /// With `partial`, each position in that order is first closed only as far as brings the
    /// account back to `TNC >= TMMR` (`partial::partial_close`), and the rest are left open
    /// once it is; a position no partial close can cure is closed whole.
    pub fn liquidate_account(&mut self, account: u64, force: bool, partial: bool) -> Result<Vec<Liquidation>> {
        let order = self.cross_order(account)?;
        let t = self.cross.totals(account);
        if !force && !t.liquidatable() {
            let (market, side) = order[0];
            return Err(AdlError::NotLiquidatable {
                account,
                symbol: self.markets[market as usize].name.clone(),
                side,
                equity: self.cash_f64(t.tnc()),
                maintenance: self.cash_f64(t.maintenance),
            });
        }
        self.undoable(|e, undo| {
            let mut out = Vec::with_capacity(order.len());
            for (market, side) in order {
                if partial && !out.is_empty() && !e.cross.totals(account).liquidatable() {
                    break;
                }
                let req = Request { account, market, side, fill_price: None, force: true, partial };
                let (slot, fill) = e.check(&req, 0)?;
                out.push(e.step(undo, slot, fill, partial, None)?);
            }
            Ok(out)
        })
    }

    /// An account's cross positions in liquidation order: largest maintenance first, then
    /// market id, longs first. Every market involved must have a mark.
    pub fn cross_order(&self, account: u64) -> Result<Vec<(u32, Side)>> {
        let slots = self.cross.slots(account);
        if slots.is_empty() {
            return Err(AdlError::config("account", format!("account {account} has no cross positions")));
        }
        let mut keyed = Vec::with_capacity(slots.len());
        for &slot in slots {
            let p = self.store.get(slot);
            let m = &self.markets[p.market as usize];
            let mm = p.maintenance(&m.grid, m.mark()?, &m.tiers);
            keyed.push((std::cmp::Reverse(mm), p.market, -p.side));
        }
        keyed.sort_unstable();
        Ok(keyed.into_iter().map(|(_, m, s)| (m, -s)).collect())
    }

    /// Cross accounts with their totals at the marks.
    pub fn cross_accounts(&self) -> impl Iterator<Item = (u64, crate::core::book::cross::CrossTotals)> + '_ {
        self.cross.accounts().map(|a| (a, self.cross.totals(a)))
    }

    /// The cross account below maintenance with the largest shortfall (`TMMR − TNC`, then
    /// the lowest id), if any: kept as totals change, found in O(log n).
    pub fn worst_cross_account(&self) -> Option<u64> {
        self.cross.worst_below()
    }

    /// The cross accounts below maintenance (`TNC < TMMR`), largest shortfall first (then
    /// by id).
    pub fn cross_below(&self) -> Vec<u64> {
        self.cross.below().collect()
    }

    /// Plans a liquidation with at most `max_adl` lots auto-deleveraged (`None`: no cap),
    /// building the opposite side's ranking index only when the event reaches ADL (a mark
    /// change leaves it stale; events the book or fund cover skip it). Ranked policies first
    /// get an index of the queue's head only (see `Market::head_index`), and a complete one
    /// if the head does not hold enough lots.
    fn plan_capped(&mut self, slot: u32, fill: Option<i64>, partial: bool, max_adl: Option<i64>) -> Result<Plan> {
        let (market, side) = {
            let p = self.store.get(slot);
            (p.market as usize, -p.side)
        };
        // Each retry builds a deeper head, up to the complete index, which satisfies any plan.
        loop {
            let need = match self.plan(slot, fill, partial, max_adl)? {
                Planned::Done(plan) => return Ok(*plan),
                Planned::NeedHead(lots) => Some(lots),
                Planned::NeedComplete => None,
            };
            let scoring = Scoring { policy: self.policy, cross: &self.cross, custom: &self.custom };
            let m = &mut self.markets[market];
            match need {
                Some(lots) => m.head_index(&mut self.store, &scoring, side, lots)?,
                None => m.index(&mut self.store, &scoring, side)?,
            };
        }
    }

    /// The waterfall of docs/model.md §2 in exact integer cash.
    fn plan(&self, slot: u32, fill: Option<i64>, partial: bool, max_adl: Option<i64>) -> Result<Planned> {
        let p = *self.store.get(slot);
        let m = &self.markets[p.market as usize];
        let g: &Grid = &m.grid;
        let mark = m.mark()?;
        let f_px = fill.unwrap_or(mark);
        // A cross position takes its effective margin out of the wallet and is then
        // liquidated as an isolated one: at its bankruptcy price it ends at exactly zero.
        let wallet_debit = if p.cross { self.cross.effective_margin(&p, g, &m.tiers, mark) } else { 0 };
        let margin = if p.cross { wallet_debit } else { p.margin };
        if p.cross {
            ledger(self.cash_of(p.account), -wallet_debit, "account cash")?;
        }
        let (q, e, s) = (p.qty, p.entry, p.side as i128);
        let event = self.next_event;
        let key = (p.account, p.market, p.side);
        let mut out = Liquidation {
            event,
            key,
            fills: Vec::new(),
            to_fund: 0,
            from_fund: 0,
            bad_debt: 0,
            adl_lots: 0,
            external_lots: 0,
            cancel_orders: vec![key],
            fee: 0,
            returned: 0,
            adl_fees: 0,
            remaining_lots: 0,
            passed: Vec::new(),
        };
        let book_fill = |lots: i64, kind: FillKind| Fill {
            event,
            ts: self.ts,
            market: p.market,
            bankrupt_account: p.account,
            bankrupt_side: p.side,
            account: None,
            side: None,
            lots,
            price: g.price_f64(f_px as f64),
            rank: None,
            score: None,
            kind,
            entry: None,
        };
        // Value passed to the book by closing `lots` at F: σ·lots·(P − F).
        let book_value = |lots: i64| s * g.value(lots, mark - f_px);
        // Equity of `lots` lots carrying `margin` if closed at F.
        let at_fill = |lots: i64, margin: i128| margin + s * g.value(lots, f_px - e);
        let done = |legs, book_value, partial, out| {
            Ok(Planned::Done(Box::new(Plan { slot, wallet_debit, legs, book_value, partial, outcome: out })))
        };

        // 0. A partial close through the book, when asked for and enough.
        if partial {
            if let Some((lots, kept_margin, wallet_change)) = self.partial_plan(&p, m, mark, f_px) {
                out.fee = fee_on(g.notional(lots, f_px), m.liquidation_fee_ppm);
                out.to_fund = out.fee;
                out.external_lots = lots;
                out.remaining_lots = q - lots;
                out.fills.push(book_fill(lots, FillKind::External));
                ledger(self.funds.pool(m.pool).balance, out.to_fund, "insurance fund")?;
                let plan = Plan {
                    slot,
                    wallet_debit: -wallet_change,
                    legs: Vec::new(),
                    book_value: book_value(lots),
                    partial: Some((lots, kept_margin)),
                    outcome: out,
                };
                return Ok(Planned::Done(Box::new(plan)));
            }
        }
        // Under `FeeConvention::Bankruptcy` the fee is taken out of the margin first: the rest
        // of the waterfall sees the margin less the fee, so the bankruptcy price includes it.
        out.fee = self.reserved_fee(m, &p, margin);
        out.to_fund = out.fee;
        let mg = margin - out.fee;

        let whole = at_fill(q, mg);
        if whole >= 0 {
            // 1. The book pays at least the bankruptcy price: the fee (`Surplus` convention) goes
            // to the fund, and the rest to the fund or back to the trader.
            out.fills.push(book_fill(q, FillKind::External));
            let fee = match m.spec.fee_convention {
                FeeConvention::Surplus => fee_on(g.notional(q, f_px), m.liquidation_fee_ppm).min(whole),
                FeeConvention::Bankruptcy => 0,
            };
            out.fee += fee;
            out.to_fund += fee;
            if m.spec.surplus_to_fund {
                out.to_fund += whole - fee;
            } else {
                out.returned = whole - fee;
                ledger(ledger(self.cash_of(p.account), -wallet_debit, "account cash")?, out.returned, "account cash")?;
            }
            out.external_lots = q;
            ledger(self.funds.pool(m.pool).balance, out.to_fund, "insurance fund")?;
            return done(Vec::new(), book_value(q), None, out);
        }
        // 2. The fund covers whole lots: Q_f = max k with pay(k) <= fund, where the covered
        // lots carry ceil(M·k/Q) of the margin (rounding in the fund's favour).
        let pay = |k: i64| -at_fill(k, split_ceil(mg, k, q));
        // The market's pool; while its trigger is armed it is bypassed: it covers nothing.
        let fund = self.funds.available(m.pool, p.market);
        let covered = max_affordable(q, fund, pay);
        // An armed trigger stops the fund from sparing counterparties, not from paying for
        // what no counterparty takes (step 5): the leftover is the whole balance.
        let mut fund_left = self.funds.pool(m.pool).balance;
        let mut total_book_value = 0i128;
        if covered > 0 {
            let paid = pay(covered);
            out.from_fund = paid;
            fund_left -= paid;
            out.external_lots = covered;
            total_book_value += book_value(covered);
            out.fills.push(book_fill(covered, FillKind::External));
        }
        // 3-4. ADL the rest against the opposite queue, at the bankruptcy price or the mark.
        let at_mark = match self.adl_price {
            AdlPrice::Bankruptcy => false,
            AdlPrice::Mark => true,
            // The mark caps at the bankruptcy price exactly when the position is not bankrupt.
            AdlPrice::MarkCapped => mg + p.upnl(g, mark) <= 0,
        };
        let mut lots_left = q - covered;
        let mut margin_left = mg - split_ceil(mg, covered, q);
        let scoring = self.scoring();
        let terms =
            if at_mark { AdlTerms::Mark } else { AdlTerms::Bankruptcy { side: p.side, entry: e, lots: lots_left, margin: margin_left } };
        // A severity cap ADLs fewer lots; those it leaves go to step 5 with the unmatched ones.
        let target = max_adl.map_or(lots_left, |k| k.min(lots_left));
        let allocation = if target == 0 {
            Allocation::default()
        } else {
            // Queue policies can start from the head of the queue; the others see everyone.
            let head_ok = kernel::allocates_from_head(self.policy);
            let head_only = m.is_head_only(-p.side);
            let index = match m.current_index(-p.side) {
                Some(index) if head_ok || !head_only => index,
                Some(_) => return Ok(Planned::NeedComplete),
                None => return Ok(if head_ok { Planned::NeedHead(target) } else { Planned::NeedComplete }),
            };
            let members = &m.members[side_slot(-p.side)];
            let opposite = OppositeSide { store: &self.store, index, members, grid: g, tiers: &m.tiers, mark, scoring: &scoring, terms };
            let allocation = kernel::allocate(self.policy, &opposite, target, p.account, self.seed, event, head_only);
            // The head ran out before the lots did: a head twice as deep (min_max_leverage
            // needs the whole side for its size fallback).
            if head_only && allocation.lots() < target {
                return Ok(if kernel::falls_back_to_size(self.policy) {
                    Planned::NeedComplete
                } else {
                    Planned::NeedHead(index.total_lots().saturating_add(target).saturating_mul(2))
                });
            }
            allocation
        };
        out.passed = allocation
            .passed
            .iter()
            .map(|x| {
                let c = self.store.get(x.slot);
                PassedOver { account: c.account, side: c.side, reason: x.reason }
            })
            .collect();
        let mut legs = Vec::with_capacity(allocation.takes.len());
        // At the mark, what the bankrupt lots are worth there (margin + PnL) is settled below.
        let mut value_at_mark = 0i128;
        for take in allocation.takes {
            let c = self.store.get(take.slot);
            // The bankrupt lots carry their share of the margin. At the bankruptcy price it goes
            // to the counterparty, so the bankrupt account ends at exactly zero.
            let carried = split_floor(margin_left, take.lots, lots_left);
            margin_left -= carried;
            lots_left -= take.lots;
            let mut released = split_floor(c.margin, take.lots, c.qty);
            let (pnl, price_ticks) = if at_mark {
                value_at_mark += carried + s * g.value(take.lots, mark - e);
                (c.side as i128 * g.value(take.lots, mark - c.entry), mark as f64)
            } else {
                let ticks = e as f64 - s as f64 * carried as f64 / (take.lots as f64 * g.factor as f64);
                (-s * g.value(take.lots, e - c.entry) + carried, ticks)
            };
            let mut credit = released.add_c(pnl, "ADL credit")?;
            if credit < 0 {
                // Only rounding can get here (the allocator checked the exact cash): release the
                // margin rounded up instead, within the counterparty's own account.
                released = split_ceil(c.margin, take.lots, c.qty);
                credit = released.add_c(pnl, "ADL credit")?;
            }
            debug_assert!(c.cross || credit >= 0, "an isolated counterparty receives {credit} from an ADL fill");
            // What the account's TNC is left with (cross): the fee never takes it below zero.
            let headroom = if c.cross {
                self.cross.totals(c.account).tnc() + credit - c.side as i128 * g.value(take.lots, mark - c.entry)
            } else {
                credit
            };
            // The ADL fee on the notional closed at the ADL price (lots·P_bk = lots·E − σ·carried),
            // never more than the credit.
            let notional = if at_mark { g.notional(take.lots, mark) } else { (g.value(take.lots, e) - s * carried).abs() };
            let adl_fee = fee_on(notional, m.adl_fee_ppm).min(credit.max(0)).min(headroom.max(0));
            out.adl_fees += adl_fee;
            let credit = credit - adl_fee;
            ledger(self.cash_of(c.account), credit, "account cash")?;
            out.fills.push(Fill {
                event,
                ts: self.ts,
                market: p.market,
                bankrupt_account: p.account,
                bankrupt_side: p.side,
                account: Some(c.account),
                side: Some(c.side),
                lots: take.lots,
                price: g.price_f64(price_ticks),
                rank: take.rank,
                score: take.score,
                kind: FillKind::Adl,
                entry: Some(g.price_f64(c.entry as f64)),
            });
            out.adl_lots += take.lots;
            out.cancel_orders.push((c.account, c.market, c.side));
            legs.push(AdlLeg { take, released, credit });
        }
        if value_at_mark >= 0 {
            out.to_fund += value_at_mark;
        } else {
            let cover = fund_left.min(-value_at_mark);
            out.from_fund += cover;
            fund_left -= cover;
            out.bad_debt += -value_at_mark - cover;
        }
        // 5. Counterparties ran out: the rest closes against the book; the fund's leftover
        // covers what it can and the remainder is bad debt.
        if lots_left > 0 {
            let value = at_fill(lots_left, margin_left);
            if value >= 0 {
                out.to_fund += value;
            } else {
                let cover = fund_left.min(-value);
                out.from_fund += cover;
                out.bad_debt += -value - cover;
            }
            out.external_lots += lots_left;
            total_book_value += book_value(lots_left);
            out.fills.push(book_fill(lots_left, FillKind::BadDebt));
        }
        ledger(self.funds.pool(m.pool).balance, out.to_fund, "insurance fund")?;
        ledger(self.bad_debt, out.bad_debt, "bad debt")?;
        ledger(self.book_value, total_book_value, "book value")?;
        ledger(self.fees, out.adl_fees, "fees")?;
        done(legs, total_book_value, None, out)
    }

    /// A partial close of `p` (`partial::partial_close`): lots to close, the margin the
    /// position keeps and the change of its account's wallet. An isolated position keeps
    /// its margin less the loss and fee; a cross one keeps none and its wallet takes them,
    /// which must leave the wallet >= 0.
    fn partial_plan(&self, p: &Position, m: &Market, mark: i64, fill: i64) -> Option<(i64, i128, i128)> {
        let fee = m.liquidation_fee_ppm;
        if !p.cross {
            let reserve = m.spec.fee_convention == FeeConvention::Bankruptcy;
            let (lots, kept) = partial_close(p, &m.grid, &m.tiers, fee, mark, fill, true, reserve)?;
            // A close at a profit can raise the margin: beyond `MAX_MARGIN` it closes whole.
            return (kept <= MAX_MARGIN).then_some((lots, kept, 0));
        }
        let margin = self.cross.liquidation_margin(p, &m.grid, &m.tiers, mark);
        let (lots, after) = partial_close(&Position { margin, ..*p }, &m.grid, &m.tiers, fee, mark, fill, false, false)?;
        let change = after - margin;
        let wallet = ledger(self.cash_of(p.account), change, "account cash").ok()?;
        (wallet >= 0).then_some((lots, 0, change))
    }

    fn apply_plan(&mut self, plan: Plan) -> Liquidation {
        let Plan { slot, wallet_debit, legs, book_value, partial, outcome } = plan;
        let p = *self.store.get(slot);
        let market = p.market as usize;
        if let Some((lots, margin_after)) = partial {
            let kept = self.store.get_mut(slot);
            kept.qty -= lots;
            kept.margin = margin_after;
            self.markets[market].shrink_member(&self.store, slot, lots);
            if p.cross {
                *self.cash.entry(p.account).or_insert(0) -= wallet_debit;
                self.refresh_cross(std::iter::once(p.account)).expect("a wallet within the ledger limit");
            } else {
                let scoring = Scoring { policy: self.policy, cross: &self.cross, custom: &self.custom };
                self.markets[market].rescore_member(&mut self.store, &scoring, slot);
            }
            return self.settle(outcome, book_value);
        }
        // Cross accounts whose totals change, and positions whose score may move.
        let mut touched = Vec::new();
        let mut shrunk = Vec::new();
        self.markets[market].remove_member(&mut self.store, slot);
        self.store.remove(slot);
        if p.cross {
            *self.cash.entry(p.account).or_insert(0) -= wallet_debit;
            self.cross.remove(p.account, slot, p.market);
            touched.push(p.account);
        }
        for leg in &legs {
            let lots = leg.take.lots;
            let c = *self.store.get(leg.take.slot);
            *self.cash.entry(c.account).or_insert(0) += leg.credit;
            // Any credit to an account with cross positions (this one or others) moves its wallet.
            if !self.cross.slots(c.account).is_empty() {
                touched.push(c.account);
            }
            if lots == c.qty {
                self.markets[market].remove_member(&mut self.store, leg.take.slot);
                self.store.remove(leg.take.slot);
                if c.cross {
                    self.cross.remove(c.account, leg.take.slot, c.market);
                }
            } else {
                let cp = self.store.get_mut(leg.take.slot);
                cp.qty -= lots;
                cp.margin -= leg.released;
                self.markets[market].shrink_member(&self.store, leg.take.slot, lots);
                if !c.cross {
                    // (Cross positions are rescored with their account's new totals below.)
                    shrunk.push(leg.take.slot);
                }
            }
        }
        let scoring = Scoring { policy: self.policy, cross: &self.cross, custom: &self.custom };
        for s in shrunk {
            let m = self.store.get(s).market as usize;
            self.markets[m].rescore_member(&mut self.store, &scoring, s);
        }
        if outcome.returned != 0 {
            *self.cash.entry(p.account).or_insert(0) += outcome.returned;
            if !self.cross.slots(p.account).is_empty() {
                touched.push(p.account);
            }
        }
        // Within `CROSS_LIMIT`: wallets were checked against `LEDGER_LIMIT` when planned, and
        // what positions are left are a subset, at the same marks, of sums within the limit.
        self.refresh_cross(touched.into_iter()).expect("a wallet within the ledger limit");
        self.settle(outcome, book_value)
    }

    /// Books an applied liquidation's ledger amounts and fills.
    fn settle(&mut self, outcome: Liquidation, book_value: i128) -> Liquidation {
        #[cfg(debug_assertions)]
        fault::step();
        let pool = self.markets[outcome.key.1 as usize].pool;
        let needed_adl = outcome.adl_lots > 0 || outcome.bad_debt > 0;
        self.funds.credit(pool, outcome.key.1, outcome.to_fund - outcome.from_fund, self.ts, outcome.event, needed_adl);
        self.bad_debt += outcome.bad_debt;
        self.book_value += book_value;
        self.fees += outcome.adl_fees;
        self.next_event += 1;
        for f in outcome.fills.iter().filter(|_| self.keep_fills) {
            self.events.push(f.clone());
        }
        outcome
    }
}

/// Fault injection for tests, compiled in debug builds only (`cargo test`, `maturin
/// develop`): `panic_at_step(n)` makes the n-th liquidation applied from now on, on this
/// thread, panic halfway (its positions changed, its ledgers not yet booked).
#[cfg(debug_assertions)]
pub mod fault {
    use std::cell::Cell;

    thread_local! {
        static COUNTDOWN: Cell<u64> = const { Cell::new(0) };
    }

    /// Arms the fault for the `n`-th next step (0 disarms it).
    pub fn panic_at_step(n: u64) {
        COUNTDOWN.with(|c| c.set(n));
    }

    pub(crate) fn step() {
        COUNTDOWN.with(|c| match c.get() {
            0 => {}
            1 => {
                c.set(0);
                panic!("injected fault");
            }
            n => c.set(n - 1),
        });
    }
}

/// Most positions of one queue that a mark change elsewhere re-keys in place (or a 64th of
/// the queue, if more); beyond it the queue is rebuilt on use.
const REKEY_MAX: usize = 64;

/// `x + y` as a ledger amount: within `±LEDGER_LIMIT` (what snapshots hold), else refused.
fn ledger(x: i128, y: i128, what: &str) -> Result<i128> {
    x.checked_add(y).filter(|v| v.abs() <= LEDGER_LIMIT).ok_or_else(|| AdlError::overflow(what))
}

/// The largest `k` in `0..=q` with `pay(k) <= fund`, for `pay` non-decreasing with `pay(0) = 0`.
fn max_affordable(q: i64, fund: i128, pay: impl Fn(i64) -> i128) -> i64 {
    if pay(q) <= fund {
        return q;
    }
    let (mut lo, mut hi) = (0i64, q); // pay(lo) <= fund < pay(hi)
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if pay(mid) <= fund {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(event: u64, k: i64) -> Fill {
        Fill {
            event,
            ts: None,
            market: 0,
            bankrupt_account: event,
            bankrupt_side: 1,
            account: Some(k as u64),
            side: Some(-1),
            lots: k,
            price: 1.0,
            rank: None,
            score: None,
            kind: FillKind::Adl,
            entry: None,
        }
    }

    #[test]
    fn the_chunked_log_drains_reads_and_truncates_as_a_vec_would() {
        // Events of 0..=9 fills each (some with none) across many 4,096-fill chunks, checked
        // against a plain Vec after every drain, read and undo-style truncation.
        let (mut log, mut model) = (EventLog::default(), Vec::new());
        let mut event = 0u64;
        let mut state = 11u64;
        let mut next = |n: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        for round in 0..400 {
            for _ in 0..next(60) {
                for k in 0..next(10) as i64 {
                    log.push(fill(event, k));
                    model.push(fill(event, k));
                }
                event += 1;
            }
            match round % 4 {
                0 => {
                    let upto = model.first().map_or(0, |f: &Fill| f.event) + next(40);
                    let dropped = log.drain_before(upto);
                    let keep = model.partition_point(|f| f.event < upto);
                    model.drain(..keep);
                    assert_eq!(dropped, keep, "round {round}");
                }
                1 => {
                    let len = model.len() - next(model.len() as u64 + 1) as usize;
                    log.truncate(len);
                    model.truncate(len);
                }
                _ => {}
            }
            assert_eq!(log.len(), model.len());
            assert!(log.iter().eq(model.iter()), "round {round}");
            assert_eq!(log.last(), model.last());
            for since in [0, event / 2, event.saturating_sub(3), event, event + 1] {
                let want: Vec<&Fill> = model.iter().filter(|f| f.event >= since).collect();
                assert!(log.since(since).eq(want.into_iter()), "round {round} since {since}");
            }
        }
        assert!(event > 8_000 && log.len() > 0, "several chunks were used");
    }
}
