//! The engine: positions, account cash, insurance fund and bad-debt ledgers, and the
//! liquidation waterfall of docs/model.md §2. Every mutating call validates first and then
//! applies, so an error leaves the engine exactly as it was.

pub mod audit;
pub mod dry_run;
#[cfg(debug_assertions)]
pub mod fault;
mod footprint;
mod gap_model;
pub mod labels;
mod marks;
pub mod preview;
mod records;
pub mod simulate;
pub mod stateless;
pub mod undo;
pub mod updates;
pub mod views;
mod wallets;
mod waterfall;

pub use records::{EventLog, Fill, FillKind, Liquidation, PassedOver, Request, Totals};
use rustc_hash::FxHashMap;

use crate::core::book::cross::CrossBook;
use crate::core::book::funds::Funds;
use crate::core::book::input::{parse_mark, parse_price};
use crate::core::book::position::{Position, PositionStore, Side};
use crate::core::book::trigger::{AdlState, Trigger};
use crate::core::engine::labels::Labels;
use crate::core::engine::undo::Undo;
use crate::core::market::fees::reserved_fee;
use crate::core::market::{FeeConvention, MarketSpec, NO_POOL};
use crate::core::policy::queues::Market;
pub use crate::core::policy::score::AdlPrice;
use crate::core::policy::score::{Lights, Policy};
use crate::core::policy::scoring::Scoring;
use crate::core::units::error::{AdlError, Result};
use crate::core::units::fixed::{cash_to_f64, Grid};

#[derive(Clone)]
/// The engine's state. Its configuration after `new` (`adl_price`, `seed`, `lights`) is
/// public; the rest is read through methods and changed only by the engine's own calls
/// (the snapshot codec in `persist` reads and restores every field).
pub struct Engine {
    pub(in crate::core) policy: Policy,
    /// Price of ADL fills; defaults to the policy's (`Policy::adl_price`).
    pub adl_price: AdlPrice,
    /// Seed of the `dydx` walk's start (with the event id).
    pub seed: u64,
    /// How queue lights are bucketed; defaults to the policy's (`Policy::lights`).
    pub lights: Lights,
    /// Whether fills are kept in the event log (`events()`); simulations that only need
    /// aggregates turn it off. In snapshots (version 5) and set by a logged operation.
    pub(in crate::core) keep_fills: bool,
    /// The fills of events below this id were drained (`drain_events`); 0 = never.
    pub(in crate::core) drained_upto: u64,
    pub(in crate::core) funds: Funds,
    pub(in crate::core) cash_decimals: u32,
    pub(in crate::core) default_spec: MarketSpec,
    pub(in crate::core) markets: Vec<Market>,
    pub(in crate::core) market_ids: FxHashMap<String, u32>,
    pub(in crate::core) store: PositionStore,
    /// Cash of the accounts without cross positions (a cross account's is in its record:
    /// `wallets`).
    pub(in crate::core) cash: FxHashMap<u64, i128>,
    pub(in crate::core) cross: CrossBook,
    /// Caller's scores by slot (policy `custom`).
    pub(in crate::core) custom: Vec<f64>,
    pub(in crate::core) bad_debt: i128,
    pub(in crate::core) book_value: i128,
    /// ADL fees paid to the venue.
    pub(in crate::core) fees: i128,
    pub(in crate::core) next_event: u64,
    pub(in crate::core) ts: Option<i64>,
    pub(in crate::core) events: EventLog,
    /// The caller's string account ids by code (empty: integer ids) and clock zone.
    pub(in crate::core) labels: Labels,
    pub(in crate::core) clock: Option<String>,
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

    // ----- book ----------------------------------------------------------------------

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
    pub fn keep_fills(&self) -> bool {
        self.keep_fills
    }
    /// The policy, the cash decimals and the default market spec are fixed at `new`: the
    /// ranking indexes, custom scores and market grids are built for them.
    pub fn policy(&self) -> Policy {
        self.policy
    }
    pub fn cash_decimals(&self) -> u32 {
        self.cash_decimals
    }
    pub fn default_spec(&self) -> &MarketSpec {
        &self.default_spec
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
            cash: self.cash_entries().map(|(_, c)| c).sum(),
            position_equity: 0,
            fund: self.funds.total(),
            bad_debt: self.bad_debt,
            book_value: self.book_value,
            long_lots: 0,
            short_lots: 0,
            fees: self.fees,
        };
        for (_, p) in self.store.iter() {
            t.position_equity += self.position_equity(&p);
            if p.side == Side::Long {
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
        Scoring::new(self.policy, &self.cross, &self.custom)
    }

    /// The markets and positions to change, beside the scoring view that reads the rest
    /// (disjoint borrows of the engine's fields).
    pub(crate) fn book_mut(&mut self) -> (&mut [Market], &mut PositionStore, Scoring<'_>) {
        (&mut self.markets, &mut self.store, Scoring::new(self.policy, &self.cross, &self.custom))
    }

    /// Equity and maintenance of the position at `slot` (requires a mark). A cross position's
    /// equity is its share of its account's net collateral (so `equity < maintenance` exactly
    /// when the account is below maintenance).
    pub fn health(&self, slot: u32) -> Result<(i128, i128)> {
        let p = self.store.get(slot);
        let m = &self.markets[p.market as usize];
        let mark = m.mark()?;
        let mm = if p.cross { p.maintenance(&m.grid, mark, &m.tiers) } else { m.maintenance(&p, mark) };
        Ok((self.scoring().equity(&m.grid, &m.tiers, mark, &p), mm))
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
        let p = self.store.get(slot);
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
            let (below, e, mm) = self.below_maintenance(&p, m, mark);
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
        Ok(self.markets[market as usize].indicator(&self.store, &self.scoring(), side, self.lights).expect("built"))
    }

    /// Ranking queue of one side of a market (rebuilt if stale).
    pub fn ranking(&mut self, market: u32, side: Side) -> Result<&crate::core::policy::ranking::RankIndex> {
        let m = &self.markets[market as usize];
        if m.current_index(side).is_none() || m.is_head_only(side) {
            self.cross.sync_market(market, side); // every cross account of the side is read
        }
        let (markets, store, scoring) = self.book_mut();
        markets[market as usize].index(store, &scoring, side)
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
        let slot = self.find(req.account, req.market, req.side)?;
        let m = &self.markets[req.market as usize];
        let mark = m.mark()?;
        let fill = match req.fill_price {
            Some(x) => Some(parse_price(&m.grid, "fill_price", row, x)?),
            None => None,
        };
        let (below, e, mm) = self.below_maintenance(&self.store.get(slot), m, mark);
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

    /// Checks a batch as `liquidate_many` does before applying anything: each request in
    /// row order (the first error is the lowest row's), and no position twice. Returns each
    /// request's fill price in ticks.
    pub fn check_batch(&self, reqs: &[Request]) -> Result<Vec<Option<i64>>> {
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
                        req.account,
                        req.side.sign()
                    ),
                ));
            }
            checked.push(fill);
        }
        Ok(checked)
    }

    /// Liquidates a batch in order. Every request is validated against the state at the
    /// start before anything is applied (all or nothing). A position that an earlier
    /// request of the batch already closed through ADL is skipped (`None`).
    pub fn liquidate_many(&mut self, reqs: &[Request]) -> Result<Vec<Option<Liquidation>>> {
        let checked = self.check_batch(reqs)?;
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
        self.liquidate_account_in(account, force, partial, true)
    }

    /// `liquidate_account`, run `undoable` or (`rollback` false, a preview trial's copy)
    /// `unnoted`.
    pub(crate) fn liquidate_account_in(&mut self, account: u64, force: bool, partial: bool, rollback: bool) -> Result<Vec<Liquidation>> {
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
        let run = |e: &mut Engine, undo: &mut Undo| {
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
        };
        if rollback {
            self.undoable(run)
        } else {
            self.unnoted(run)
        }
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
            keyed.push((std::cmp::Reverse(mm), p.market, p.side.slot()));
        }
        keyed.sort_unstable();
        Ok(keyed.into_iter().map(|(_, m, s)| (m, Side::of_slot(s))).collect())
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
}
