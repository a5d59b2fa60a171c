//! The liquidation waterfall of docs/model.md §2 in exact integer cash. Each step is one
//! function (in `steps`) that reads the state and returns what it moves between the ledgers
//! (a `Delta`, and the ADL legs); `plan` runs the steps and combines their deltas, `check_ledgers`
//! checks the result once (every ledger within `LEDGER_LIMIT`; conservation in debug builds),
//! and `apply_plan` applies it once. `plan_capped` builds the ranking index a plan needs first.

mod steps;

use crate::core::book::position::Position;
use crate::core::engine::undo::Undo;
use crate::core::engine::{Engine, Fill, FillKind, Liquidation, PassedOver};
use crate::core::policy::alloc::{Allocation, Take};
use crate::core::policy::queues::Market;
use crate::core::units::error::Result;
use crate::core::units::fixed::{ledger, split_ceil};

/// What one step of the waterfall moves between the ledgers (cash units). A plan's delta is
/// the sum of its steps' (`+=`); its `Liquidation` reports it.
#[derive(Clone, Copy, Default)]
struct Delta {
    /// The liquidation fee (part of `to_fund`).
    fee: i128,
    /// Into the insurance fund: fees, surplus equity, the bankrupt lots' value at the mark.
    to_fund: i128,
    /// Out of the fund, to cover deficits.
    from_fund: i128,
    bad_debt: i128,
    /// Value passed to the external book by book fills: σ·lots·(P − F).
    book_value: i128,
    /// ADL fees the counterparties pay to the venue.
    adl_fees: i128,
    /// Surplus returned to the liquidated account's cash.
    returned: i128,
}

impl std::ops::AddAssign for Delta {
    fn add_assign(&mut self, d: Delta) {
        self.fee += d.fee;
        self.to_fund += d.to_fund;
        self.from_fund += d.from_fund;
        self.bad_debt += d.bad_debt;
        self.book_value += d.book_value;
        self.adl_fees += d.adl_fees;
        self.returned += d.returned;
    }
}

/// One counterparty transfer (docs/model.md §2 steps 3–4), computed before anything is applied.
struct AdlLeg {
    take: Take,
    /// Margin released from the counterparty's position into its cash.
    released: i128,
    /// Credit to the counterparty's cash: released margin + realised PnL at the ADL price,
    /// less the ADL fee.
    credit: i128,
    /// The ADL price in ticks (the fill record's price).
    price: f64,
    /// The counterparty's cash after the credit, set by `check_ledgers`.
    cash: i128,
}

/// The position being liquidated and the prices its waterfall uses, read once by `plan`.
struct Liquidated<'a> {
    slot: u32,
    p: Position,
    m: &'a Market,
    /// The mark `P` and the fill price `F` (ticks).
    mark: i64,
    fill: i64,
}

impl Liquidated<'_> {
    /// σ as a cash factor.
    fn sigma(&self) -> i128 {
        self.p.side.sign_i128()
    }
    /// Value passed to the book by closing `lots` at F: σ·lots·(P − F).
    fn book_value(&self, lots: i64) -> i128 {
        self.sigma() * self.m.grid.value(lots, self.mark - self.fill)
    }
    /// Equity of `lots` lots carrying `margin` if closed at F.
    fn at_fill(&self, lots: i64, margin: i128) -> i128 {
        margin + self.sigma() * self.m.grid.value(lots, self.fill - self.p.entry)
    }
}

/// What the steps of one liquidation move, before `check_ledgers`.
#[derive(Default)]
struct Moves {
    /// The liquidated account's cash after its cross wallet's debit (`None`: isolated,
    /// unchanged), checked when the debit was taken.
    wallet: Option<i128>,
    delta: Delta,
    /// Lots closed against the book at F before ADL (steps 1–2, a partial close) and after
    /// it (step 5, kind `BadDebt`).
    external: i64,
    unmatched: i64,
    legs: Vec<AdlLeg>,
    passed: Vec<PassedOver>,
    /// A partial close: the lots closed and the margin the position keeps.
    partial: Option<(i64, i128)>,
}

/// The ledgers after a plan, each checked within `±LEDGER_LIMIT` (what snapshots hold).
struct Ledgers {
    fund: i128,
    bad_debt: i128,
    book_value: i128,
    fees: i128,
}

/// A planned liquidation, or the opposite-side index it needs first.
enum Planned {
    Done(Box<Plan>),
    /// An index holding at least the head of the queue with this many lots (rebuilt deeper
    /// if the current one is a shallower head).
    NeedHead(i64),
    NeedComplete,
}

/// A checked liquidation, ready to apply.
pub(super) struct Plan {
    slot: u32,
    /// The liquidated account's cash after the plan, when it changes (a cross wallet, a
    /// returned surplus).
    cash: Option<i128>,
    legs: Vec<AdlLeg>,
    partial: Option<(i64, i128)>,
    ledgers: Ledgers,
    pub(super) outcome: Liquidation,
}

impl Engine {
    /// Plans one liquidation on the current state, notes what it will change, applies it.
    pub(super) fn step(
        &mut self,
        undo: &mut Undo,
        slot: u32,
        fill: Option<i64>,
        partial: bool,
        max_adl: Option<i64>,
    ) -> Result<Liquidation> {
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

    /// Plans a liquidation with at most `max_adl` lots auto-deleveraged (`None`: no cap),
    /// building the opposite side's ranking index only when the event reaches ADL (a mark
    /// change leaves it stale; events the book or fund cover skip it). Ranked policies first
    /// get an index of the queue's head only (see `Market::head_index`), and a complete one
    /// if the head does not hold enough lots.
    pub(super) fn plan_capped(&mut self, slot: u32, fill: Option<i64>, partial: bool, max_adl: Option<i64>) -> Result<Plan> {
        let (market, side) = {
            let p = self.store.get(slot);
            (p.market as usize, p.side.opposite())
        };
        // The last event's refiles, sorted into the pro-rata index in one go.
        self.markets[market].settle_pro_rata(side);
        // Each retry builds a deeper head, up to the complete index, which satisfies any plan.
        loop {
            let need = match self.plan(slot, fill, partial, max_adl)? {
                Planned::Done(plan) => return Ok(*plan),
                Planned::NeedHead(lots) => Some(lots),
                Planned::NeedComplete => None,
            };
            // Every cross account of the side is read: count them at the marks once.
            self.cross.sync_market(market as u32, side);
            let (markets, store, scoring) = self.book_mut();
            match need {
                Some(lots) => markets[market].head_index(store, &scoring, side, lots)?,
                None => markets[market].index(store, &scoring, side)?,
            };
        }
    }

    /// The waterfall of docs/model.md §2: each step's delta, combined and checked.
    fn plan(&self, slot: u32, fill: Option<i64>, partial: bool, max_adl: Option<i64>) -> Result<Planned> {
        let p = self.store.get(slot);
        let m = &self.markets[p.market as usize];
        let mark = m.mark()?;
        let at = Liquidated { slot, p, m, mark, fill: fill.unwrap_or(mark) };
        // (A cross wallet's whole debit is checked even when a partial close follows.)
        let (margin, wallet) = self.cross_wallet_debit(&at)?;
        if partial {
            if let Some(moves) = self.partial_close(&at) {
                return self.combine(&at, moves);
            }
        }
        // Under `FeeConvention::Bankruptcy` the fee is taken out of the margin first: the rest
        // of the waterfall sees the margin less the fee, so the bankruptcy price includes it.
        let fee = self.reserved_fee(m, &p, margin);
        let mut delta = Delta { fee, to_fund: fee, ..Delta::default() };
        let mg = margin - fee;
        if let Some(close) = self.book_close(&at, mg) {
            delta += close;
            return self.combine(&at, Moves { wallet, delta, external: p.qty, ..Moves::default() });
        }
        let (covered, cover) = self.fund_cover(&at, mg);
        delta += cover;
        let lots = p.qty - covered;
        let margin_left = mg - split_ceil(mg, covered, p.qty);
        let at_mark = self.adl_at_mark(&at, mg);
        // A severity cap ADLs fewer lots; those it leaves go to step 5 with the unmatched ones.
        let target = max_adl.map_or(lots, |k| k.min(lots));
        let Allocation { takes, passed } = match self.adl_counterparties(&at, at_mark, lots, margin_left, target) {
            Ok(allocation) => allocation,
            Err(need) => return Ok(need),
        };
        let adl = self.adl_legs(&at, takes, at_mark, lots, margin_left)?;
        delta.adl_fees += adl.fees;
        // What the fund has left after step 2 pays the settlement at the mark, then step 5.
        let fund_left = self.funds.pool(m.pool).balance - delta.from_fund;
        let settled = steps::settle_at_mark(adl.value_at_mark, fund_left);
        delta += settled;
        delta += self.unmatched(&at, adl.lots_left, adl.margin_left, fund_left - settled.from_fund);
        let passed = passed
            .iter()
            .map(|x| {
                let c = self.store.get(x.slot);
                PassedOver { account: c.account, side: c.side, reason: x.reason }
            })
            .collect();
        let moves = Moves { wallet, delta, external: covered, unmatched: adl.lots_left, legs: adl.legs, passed, partial: None };
        self.combine(&at, moves)
    }

    /// The steps' outcome, checked once (`check_ledgers`).
    fn combine(&self, at: &Liquidated, mut moves: Moves) -> Result<Planned> {
        let (cash, ledgers) = self.check_ledgers(at, &moves.delta, moves.wallet, &mut moves.legs)?;
        let outcome = self.outcome(at, &mut moves);
        let Moves { legs, partial, .. } = moves;
        let plan = Plan { slot: at.slot, cash, legs, partial, ledgers, outcome };
        debug_assert_eq!(self.value_change(&plan), 0, "a liquidation plan that does not conserve value");
        Ok(Planned::Done(Box::new(plan)))
    }

    /// Every ledger the plan changes, after it, within `±LEDGER_LIMIT`: the counterparties'
    /// cash (into each leg), the liquidated account's cash, the fund (its inflows before its
    /// outflows, so every balance in between is within the limit too), bad debt, book value
    /// and fees. These are the values `apply_plan` writes.
    fn check_ledgers(&self, at: &Liquidated, d: &Delta, wallet: Option<i128>, legs: &mut [AdlLeg]) -> Result<(Option<i128>, Ledgers)> {
        for leg in legs.iter_mut() {
            let account = self.store.get(leg.take.slot).account;
            debug_assert_ne!(account, at.p.account, "an account matched against itself");
            leg.cash = ledger(self.cash_of(account), leg.credit, "account cash")?;
        }
        let cash = match d.returned {
            0 => wallet,
            returned => Some(ledger(wallet.unwrap_or_else(|| self.cash_of(at.p.account)), returned, "account cash")?),
        };
        let ledgers = Ledgers {
            fund: ledger(self.funds.pool(at.m.pool).balance, d.to_fund, "insurance fund")? - d.from_fund,
            bad_debt: ledger(self.bad_debt, d.bad_debt, "bad debt")?,
            book_value: ledger(self.book_value, d.book_value, "book value")?,
            fees: ledger(self.fees, d.adl_fees, "fees")?,
        };
        Ok((cash, ledgers))
    }

    /// The record of a liquidation: its amounts, fills (book fills before ADL, the ADL fills,
    /// the unmatched lots) and the positions whose orders a venue would cancel.
    fn outcome(&self, at: &Liquidated, s: &mut Moves) -> Liquidation {
        let (p, g) = (&at.p, &at.m.grid);
        let event = self.next_event;
        let key = (p.account, p.market, p.side);
        let fill = |account: Option<u64>, side, lots, price: f64, kind| Fill {
            event,
            ts: self.ts,
            market: p.market,
            bankrupt_account: p.account,
            bankrupt_side: p.side,
            account,
            side,
            lots,
            price: g.price_f64(price),
            rank: None,
            score: None,
            kind,
            entry: None,
        };
        let mut fills = Vec::with_capacity(s.legs.len() + 2);
        let mut cancel_orders = Vec::with_capacity(s.legs.len() + 1);
        cancel_orders.push(key);
        if s.external > 0 {
            fills.push(fill(None, None, s.external, at.fill as f64, FillKind::External));
        }
        for leg in &s.legs {
            let c = self.store.get(leg.take.slot);
            let entry = Some(g.price_f64(c.entry as f64));
            let (rank, score) = (leg.take.rank, leg.take.score);
            fills.push(Fill { rank, score, entry, ..fill(Some(c.account), Some(c.side), leg.take.lots, leg.price, FillKind::Adl) });
            cancel_orders.push((c.account, c.market, c.side));
        }
        if s.unmatched > 0 {
            fills.push(fill(None, None, s.unmatched, at.fill as f64, FillKind::BadDebt));
        }
        let d = &s.delta;
        Liquidation {
            event,
            key,
            fills,
            to_fund: d.to_fund,
            from_fund: d.from_fund,
            bad_debt: d.bad_debt,
            adl_lots: s.legs.iter().map(|l| l.take.lots).sum(),
            external_lots: s.external + s.unmatched,
            cancel_orders,
            fee: d.fee,
            returned: d.returned,
            adl_fees: d.adl_fees,
            remaining_lots: s.partial.map_or(0, |(lots, _)| p.qty - lots),
            passed: std::mem::take(&mut s.passed),
        }
    }

    /// How much the plan changes the sum docs/model.md §2 conserves at fixed marks (cash +
    /// position equity + fund + book value + fees − bad debt): 0 for every plan.
    /// (Called by a `debug_assert`: compiled in release builds, never run there.)
    fn value_change(&self, plan: &Plan) -> i128 {
        // A position's equity after closing `lots` of it and releasing `released` margin.
        let closed = |p: &Position, lots: i64, released: i128| {
            self.position_equity(p) - self.position_equity(&Position { qty: p.qty - lots, margin: p.margin - released, ..*p })
        };
        let p = self.store.get(plan.slot);
        let mut change = match plan.partial {
            Some((lots, kept)) => -closed(&p, lots, p.margin - kept),
            None => -closed(&p, p.qty, p.margin),
        };
        change += plan.cash.map_or(0, |cash| cash - self.cash_of(p.account));
        for leg in &plan.legs {
            let c = self.store.get(leg.take.slot);
            change += leg.cash - self.cash_of(c.account) - closed(&c, leg.take.lots, leg.released);
        }
        let l = &plan.ledgers;
        let fund = self.funds.pool(self.markets[p.market as usize].pool).balance;
        change + (l.fund - fund) + (l.book_value - self.book_value) + (l.fees - self.fees) - (l.bad_debt - self.bad_debt)
    }

    /// Applies a checked plan: positions, members and scores, cross totals, then the ledgers.
    fn apply_plan(&mut self, plan: Plan) -> Liquidation {
        let Plan { slot, cash, legs, partial, ledgers, outcome } = plan;
        let p = self.store.get(slot);
        let market = p.market as usize;
        if let Some(cash) = cash {
            self.put_cash(p.account, cash);
        }
        if let Some((lots, margin_after)) = partial {
            self.store.set(slot, Position { qty: p.qty - lots, margin: margin_after, ..p });
            self.markets[market].shrink_member(&self.store, slot, lots);
            if p.cross {
                self.refresh_cross(std::iter::once(p.account)).expect("a wallet within the ledger limit");
            } else {
                let (markets, store, scoring) = self.book_mut();
                markets[market].rescore_member(store, &scoring, slot);
            }
            return self.settle(outcome, ledgers);
        }
        // Cross accounts whose totals change, and positions whose score may move.
        let mut touched = Vec::new();
        let mut shrunk = Vec::new();
        self.markets[market].remove_member(&mut self.store, slot);
        self.store.remove(slot);
        if p.cross {
            self.cross.remove(p.account, slot, p.market, &mut self.cash);
            touched.push(p.account);
        }
        for leg in &legs {
            let lots = leg.take.lots;
            let c = self.store.get(leg.take.slot);
            self.put_cash(c.account, leg.cash);
            // Any credit to an account with cross positions (this one or others) moves its wallet.
            if !self.cross.slots(c.account).is_empty() {
                touched.push(c.account);
            }
            if lots == c.qty {
                self.markets[market].remove_member(&mut self.store, leg.take.slot);
                self.store.remove(leg.take.slot);
                if c.cross {
                    self.cross.remove(c.account, leg.take.slot, c.market, &mut self.cash);
                }
            } else {
                self.store.set(leg.take.slot, Position { qty: c.qty - lots, margin: c.margin - leg.released, ..c });
                self.markets[market].shrink_member(&self.store, leg.take.slot, lots);
                if !c.cross {
                    // (Cross positions are rescored with their account's new totals below.)
                    shrunk.push(leg.take.slot);
                }
            }
        }
        let (markets, store, scoring) = self.book_mut();
        for s in shrunk {
            let m = store.get(s).market as usize;
            markets[m].rescore_member(store, &scoring, s);
        }
        if outcome.returned != 0 && !self.cross.slots(p.account).is_empty() {
            touched.push(p.account);
        }
        // Within `CROSS_LIMIT`: wallets were checked against `LEDGER_LIMIT` when planned, and
        // what positions are left are a subset, at the same marks, of sums within the limit.
        self.refresh_cross(touched.into_iter()).expect("a wallet within the ledger limit");
        self.settle(outcome, ledgers)
    }

    /// Books an applied liquidation's checked ledgers and its fills.
    fn settle(&mut self, outcome: Liquidation, ledgers: Ledgers) -> Liquidation {
        #[cfg(debug_assertions)]
        crate::core::engine::fault::step();
        let pool = self.markets[outcome.key.1 as usize].pool;
        let needed_adl = outcome.adl_lots > 0 || outcome.bad_debt > 0;
        let delta = ledgers.fund - self.funds.pool(pool).balance;
        self.funds.credit(pool, outcome.key.1, delta, self.ts, outcome.event, needed_adl);
        self.bad_debt = ledgers.bad_debt;
        self.book_value = ledgers.book_value;
        self.fees = ledgers.fees;
        self.next_event += 1;
        for f in outcome.fills.iter().filter(|_| self.keep_fills) {
            self.events.push(f.clone());
        }
        outcome
    }
}
