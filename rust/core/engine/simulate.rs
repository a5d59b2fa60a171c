//! Liquidation cascades over a price path. Each step moves marks, finds the positions that
//! became liquidatable, and liquidates them worst first (lowest equity / maintenance, then
//! slot) through the engine's waterfall at a fill price from the slippage model.
//!
//! Finding them does not rescan the book. An isolated position's liquidation price
//! `(q·E − σ·M)/(q·(1 − σ·mmr))` does not move with the mark, and an ADL partial close keeps
//! it (margin and size shrink together; margin rounding moves it by less than one cash unit
//! over the position). So each (market, side) keeps its positions sorted by that price, and a
//! step only advances a cursor: longs from the highest price down while it is ≥ the mark,
//! shorts from the lowest up while it is ≤ the mark. Every candidate is confirmed with the
//! exact integer health check. Cross accounts depend on every mark of the account: `set_marks`
//! moves the totals of the accounts holding a market whose mark moved, and the engine keeps
//! those below maintenance ordered by shortfall, so a step reads them off in O(log n) each.

use std::collections::VecDeque;

use crate::core::book::position::Side;
use crate::core::engine::{Engine, Liquidation, Request};
use crate::core::units::error::{AdlError, Result};

/// The external book's fill price for a liquidation: the mark moved against the liquidated
/// side by `bps_per_million` basis points per million of quote notional. The notional is the
/// liquidation's own plus what was liquidated in the same market within `window` before it
/// (in the price path's time unit), summed exactly in cash units. Capped at `max_bps`, then
/// rounded to the price grid away from the liquidated side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slippage {
    pub bps_per_million: f64,
    pub window: i64,
    pub max_bps: f64,
}

impl Slippage {
    pub fn check(&self) -> Result<()> {
        if !(self.bps_per_million.is_finite() && self.bps_per_million >= 0.0) {
            return Err(AdlError::config("bps_per_million", format!("{} must be finite and >= 0", self.bps_per_million)));
        }
        if !(self.max_bps.is_finite() && (0.0..10_000.0).contains(&self.max_bps)) {
            return Err(AdlError::config("max_bps", format!("{} must be in [0, 10000)", self.max_bps)));
        }
        if self.window < 0 {
            return Err(AdlError::config("window", format!("{} must be >= 0", self.window)));
        }
        Ok(())
    }

    /// Fill price (quote units) for selling (`side` = 1, a long) or buying back (−1) at `mark`
    /// when `volume` (quote units: this liquidation's notional plus the recent one) trades.
    pub fn fill_price(&self, mark: f64, side: Side, volume: f64) -> f64 {
        let bps = (self.bps_per_million * volume / 1e6).min(self.max_bps);
        mark * (1.0 - side.sign_f64() * bps / 1e4)
    }
}

/// One market side's positions in the order the mark reaches their liquidation price.
#[derive(Clone, Default)]
struct Queue {
    /// (liquidation price in ticks, slot, account): longs descending, shorts ascending.
    order: Vec<(f64, u32, u64)>,
    next: usize,
}

/// What the ADL fills of a run took from one counterparty account, in the settlement
/// currency. `V(P)` is the value of the closed lots at price `P`: `q·m·P`, or `−q·m/P` in an
/// inverse market.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tally {
    /// Contracts closed by ADL (summed across markets).
    pub qty: f64,
    /// Σ |V(mark)| at the event.
    pub notional: f64,
    /// Σ (σ·(V(mark) − V(entry)))⁺: the profit the closed lots had at the event.
    pub profit_taken: f64,
    /// Σ σ·(V(mark) − V(P_ADL)): the loss against the mark at the event (the deficit covered).
    pub need: f64,
    /// Σ σ·(V(P_{t+Δ}) − V(P_ADL)): the haircut valued Δ later.
    pub haircut: f64,
}

/// What a severity controller may know when a liquidation reaches ADL (one round of
/// docs/severity.md, "In the simulator"); values in the settlement currency.
#[derive(Clone, Debug, PartialEq)]
pub struct SeverityStart {
    pub event: u64,
    pub ts: i64,
    pub market: u32,
    pub account: u64,
    pub side: Side,
    /// Q_t: the lots past the fund that ADL takes with no cap.
    pub lots: i64,
    /// D_t: the deficit those lots leave at the fill price, Σ σ_b·(V(P_ADL) − V(F)).
    pub deficit: f64,
    pub mark: f64,
    pub fill: f64,
    /// The opposite side of the market: (account, lots held, unrealised profit at the mark, >= 0).
    pub opposite: Vec<(u64, i64, f64)>,
}

/// One severity round: the cap the controller chose and what followed. `need` and `haircut`
/// are ex-post: valued at the market's mark Δ later.
#[derive(Clone, Debug, PartialEq)]
pub struct SeverityRound {
    pub start: SeverityStart,
    pub cap: i64,
    pub adl_lots: i64,
    /// The deficit the ADL'd lots took over: Σ σ_b·(V(P_ADL) − V(F)) over the ADL fills.
    pub covered: f64,
    pub bad_debt: f64,
    /// B_t^needed: the deficit the Q_t lots carry at the later mark, (Σ σ_b·(V(P_ADL) − V(P_{t+Δ})))⁺
    /// over the fills of the uncapped event.
    pub need: f64,
    /// Σ σ_c·(V(P_{t+Δ}) − V(P_ADL)) over the ADL fills: what the counterparties gave up.
    pub haircut: f64,
    /// Lots ADL closed per account.
    pub closed: Vec<(u64, i64)>,
}

/// A severity controller as the simulation calls it: the round's start and the previous
/// round (if any) in, the most lots to auto-deleverage out.
pub type SeverityHook<'a> = dyn FnMut(&SeverityStart, Option<&SeverityRound>) -> Result<i64> + 'a;

/// A cascade simulation over an engine.
pub struct Simulation {
    pub engine: Engine,
    pub slippage: Slippage,
    /// Per counterparty account, what ADL took (see `Tally`).
    pub tally: rustc_hash::FxHashMap<u64, Tally>,
    /// Per market: [longs, shorts].
    queues: Vec<[Queue; 2]>,
    /// Per market: liquidated notional (exact cash units) by time, and its running sum, for
    /// the slippage's recent volume.
    recent: Vec<(VecDeque<(i64, i128)>, i128)>,
    /// The severity rounds played so far (`step_with` with a hook).
    pub rounds: Vec<SeverityRound>,
}

/// What one step did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepOutcome {
    /// (liquidation, mark, fill price). Its fills, cancel list and passed-over list are
    /// emptied as soon as its ADL fills are tallied (`Simulation::tally`): a pro-rata event
    /// has a leg per opposite position, and a crash step of a 1M book makes hundreds of
    /// millions of them, more than memory holds at once.
    pub liquidations: Vec<(Liquidation, f64, f64)>,
    /// ADL fills of the step's liquidations (every fill of kind `Adl`), tallied and dropped.
    pub adl_fills: u64,
}

impl Simulation {
    /// Takes the engine (marks need not be set yet) and orders its isolated positions.
    pub fn new(engine: Engine, slippage: Slippage) -> Result<Simulation> {
        slippage.check()?;
        let n = engine.markets().len();
        let mut queues = vec![<[Queue; 2]>::default(); n];
        for (slot, p) in engine.store().iter() {
            if p.cross {
                continue;
            }
            let m = engine.market(p.market);
            queues[p.market as usize][p.side.slot()].order.push((m.liquidation_ticks(&p), slot, p.account));
        }
        for q in queues.iter_mut() {
            q[0].order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            q[1].order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        }
        Ok(Simulation { engine, slippage, tally: Default::default(), queues, recent: vec![(VecDeque::new(), 0); n], rounds: Vec::new() })
    }

    /// Candidates whose liquidation price the mark has reached, confirmed exactly: (ratio,
    /// slot). The float liquidation price can differ from the exact test (maintenance is
    /// rounded up to the cash unit, margin split by ADL rounds down) by a hair, so entries
    /// within two ticks past the mark are checked too; the cursor only moves over entries
    /// that are done (liquidated now or gone), never past one still open.
    fn candidates(&mut self) -> Vec<(f64, u32)> {
        const TOLERANCE_TICKS: f64 = 2.0;
        let mut out = Vec::new();
        for (mi, sides) in self.queues.iter_mut().enumerate() {
            let m = self.engine.market(mi as u32);
            let Some(mark) = m.mark else { continue };
            for (si, q) in sides.iter_mut().enumerate() {
                let (mut j, mut advance) = (q.next, true);
                while let Some(&(liq, slot, account)) = q.order.get(j) {
                    let tol = TOLERANCE_TICKS + liq.abs() * 1e-12;
                    let reached = if si == 0 { liq >= mark as f64 - tol } else { liq <= mark as f64 + tol };
                    if !reached {
                        break;
                    }
                    j += 1;
                    let p = self.engine.store().get(slot);
                    // Gone (closed by ADL or liquidated): the slot is free.
                    let gone = p.qty == 0 || p.account != account || p.market != mi as u32 || p.side.slot() != si;
                    if !gone {
                        let (e, mm) = (p.equity(&m.grid, mark), m.maintenance(&p, mark));
                        if e >= mm {
                            advance = false;
                            continue;
                        }
                        out.push((if mm > 0 { e as f64 / mm as f64 } else { f64::NEG_INFINITY }, slot));
                    }
                    if advance {
                        q.next = j;
                    }
                }
            }
        }
        out
    }

    /// Moves the marks (market id, price) at `ts` and liquidates what became liquidatable:
    /// isolated positions worst first, then cross accounts below maintenance (largest
    /// shortfall first). Returns each liquidation with its mark and fill price. `later[m]` is
    /// market m's mark Δ later (NaN: unknown, the event's mark is used), for the haircuts.
    pub fn step(&mut self, marks: &[(u32, f64)], ts: i64, later: &[f64]) -> Result<StepOutcome> {
        self.step_with(marks, ts, later, None)
    }

    /// `step` where every liquidation that reaches ADL is a severity round: `hook` chooses
    /// the most lots to deleverage (see `Engine::liquidate_capped`), and the round is recorded.
    pub fn step_with(
        &mut self,
        marks: &[(u32, f64)],
        ts: i64,
        later: &[f64],
        mut hook: Option<&mut SeverityHook<'_>>,
    ) -> Result<StepOutcome> {
        let named: Vec<(String, f64)> = marks.iter().map(|&(m, p)| (self.engine.market(m).name.clone(), p)).collect();
        self.engine.set_marks(&named, Some(ts))?;
        let mut cands = self.candidates();
        cands.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut out = StepOutcome::default();
        for (_, slot) in cands {
            let p = self.engine.store().get(slot);
            if p.qty == 0 {
                continue; // closed by an earlier ADL in this step
            }
            self.liquidate_one(p.account, p.market, p.side, ts, later, hook.as_deref_mut(), &mut out)?;
        }
        // Cross accounts, largest shortfall first. ADL in one can close another's positions or
        // push it below maintenance, so each is re-checked just before, until none is left.
        loop {
            let Some(account) = self.engine.worst_cross_account() else { break };
            // Largest maintenance first, like `liquidate_account`, each at its own fill price.
            for (market, side) in self.engine.cross_order(account)? {
                self.liquidate_one(account, market, side, ts, later, hook.as_deref_mut(), &mut out)?;
            }
        }
        Ok(out)
    }

    /// Adds a liquidation's ADL fills to the counterparties' tallies, then drops its
    /// per-leg lists (they are in the engine's log if it keeps one).
    fn tally(&mut self, l: &mut Liquidation, mark: f64, later: f64, out: &mut StepOutcome) {
        let g = &self.engine.market(l.key.1).grid;
        for f in l.fills.iter().filter(|f| f.kind == crate::core::engine::FillKind::Adl) {
            out.adl_fills += 1;
            let (Some(account), Some(side)) = (f.account, f.side) else { continue };
            // Values in the settlement currency (multipliers and inverse markets included).
            let (s, at) = (side.sign_f64(), |price: f64| g.value_at_f64(f.lots, price));
            let t = self.tally.entry(account).or_default();
            t.qty += g.qty_f64(f.lots);
            t.notional += at(mark).abs();
            t.profit_taken += (s * (at(mark) - at(f.entry.unwrap_or(f.price)))).max(0.0);
            t.need += s * (at(mark) - at(f.price));
            t.haircut += s * (at(later) - at(f.price));
        }
        (l.fills, l.cancel_orders, l.passed) = (Vec::new(), Vec::new(), Vec::new());
    }

    #[allow(clippy::too_many_arguments)]
    fn liquidate_one(
        &mut self,
        account: u64,
        market: u32,
        side: Side,
        ts: i64,
        later: &[f64],
        hook: Option<&mut SeverityHook<'_>>,
        out: &mut StepOutcome,
    ) -> Result<()> {
        let m = self.engine.market(market);
        let mark_ticks = m.mark()?;
        let mark = m.grid.price_f64(mark_ticks as f64);
        let Some(slot) = self.engine.store().find(&(account, market, side)) else { return Ok(()) };
        let p = self.engine.store().get(slot);
        let notional = m.grid.notional(p.qty, mark_ticks);
        let (recent, sum) = &mut self.recent[market as usize];
        let window = self.slippage.window;
        while recent.front().is_some_and(|&(t, _)| t < ts - window) {
            let (_, v) = recent.pop_front().expect("front exists");
            *sum -= v;
        }
        let raw = self.slippage.fill_price(mark, side, (notional + *sum) as f64 / m.grid.cash_scale);
        // On the grid and a price: a long sells at or below the mark, a short buys at or above
        // (ticks rise with the price in inverse markets too).
        let g = &m.grid;
        let ticks = if side == Side::Long { g.ticks_f64(raw).floor() } else { g.ticks_f64(raw).ceil() };
        let fill = g.price_f64(if g.inverse { ticks.min(-1.0) } else { ticks.max(1.0) });
        recent.push_back((ts, notional));
        *sum += notional;
        let req = Request { account, market, side, fill_price: Some(fill), force: true, partial: false };
        let later = later.get(market as usize).copied().filter(|x| x.is_finite()).unwrap_or(mark);
        let round = match hook {
            Some(hook) => self.severity_round(req, mark, fill, later, hook)?,
            None => None,
        };
        let mut l = self.engine.liquidate_capped(req, round.as_ref().map(|r| r.cap), false)?;
        if let Some(mut r) = round {
            let g = &self.engine.market(market).grid;
            let s = side.sign_f64();
            for f in l.fills.iter().filter(|f| f.kind == crate::core::engine::FillKind::Adl) {
                r.adl_lots += f.lots;
                r.covered += s * (g.value_at_f64(f.lots, f.price) - g.value_at_f64(f.lots, fill));
                r.haircut -= s * (g.value_at_f64(f.lots, later) - g.value_at_f64(f.lots, f.price));
                r.closed.push((f.account.unwrap_or_default(), f.lots));
            }
            r.bad_debt = self.engine.cash_f64(l.bad_debt);
            self.rounds.push(r);
        }
        self.tally(&mut l, mark, later, out);
        out.liquidations.push((l, mark, fill));
        Ok(())
    }

    /// A dry run of the uncapped event: when it reaches ADL, the round's start goes to the
    /// hook (without the need, which it must not see), and the round comes back with its cap
    /// and need, the rest to be filled in from the real event.
    fn severity_round(
        &mut self,
        req: Request,
        mark: f64,
        fill: f64,
        later: f64,
        hook: &mut SeverityHook<'_>,
    ) -> Result<Option<SeverityRound>> {
        let full = self.engine.liquidate(req, true)?;
        if full.adl_lots == 0 {
            return Ok(None);
        }
        let g = self.engine.market(req.market).grid;
        let s = req.side.sign_f64();
        let (mut deficit, mut need) = (0.0, 0.0);
        for f in full.fills.iter().filter(|f| f.kind == crate::core::engine::FillKind::Adl) {
            deficit += s * (g.value_at_f64(f.lots, f.price) - g.value_at_f64(f.lots, fill));
            need += s * (g.value_at_f64(f.lots, f.price) - g.value_at_f64(f.lots, later));
        }
        let opposite = self
            .engine
            .store()
            .iter()
            .filter(|(_, p)| p.market == req.market && p.side == req.side.opposite())
            .map(|(_, p)| {
                let profit = p.side.sign_f64() * (g.value_at_f64(p.qty, mark) - g.value_at_f64(p.qty, g.price_f64(p.entry as f64)));
                (p.account, p.qty, profit.max(0.0))
            })
            .collect();
        let start = SeverityStart {
            event: full.event,
            ts: self.engine.ts().unwrap_or_default(),
            market: req.market,
            account: req.account,
            side: req.side,
            lots: full.adl_lots,
            deficit,
            mark,
            fill,
            opposite,
        };
        let cap = hook(&start, self.rounds.last())?;
        if cap < 0 {
            return Err(AdlError::config("severity", format!("the controller chose {cap} lots in event {}; it must be >= 0", start.event)));
        }
        let cap = cap.min(start.lots);
        Ok(Some(SeverityRound {
            start,
            cap,
            adl_lots: 0,
            covered: 0.0,
            bad_debt: 0.0,
            need: need.max(0.0),
            haircut: 0.0,
            closed: Vec::new(),
        }))
    }
}
