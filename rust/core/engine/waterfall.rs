//! The liquidation waterfall of docs/model.md §2 in exact integer cash: `plan` computes every
//! transfer of one liquidation and checks each ledger before anything changes, and
//! `apply_plan` applies the plan; `plan_capped` builds the ranking index a plan needs first.

use crate::core::book::partial::partial_close;
use crate::core::book::position::Position;
use crate::core::engine::undo::Undo;
use crate::core::engine::{Engine, Fill, FillKind, Liquidation, PassedOver};
use crate::core::market::fees::fee_on;
use crate::core::market::FeeConvention;
use crate::core::policy::alloc::{AdlTerms, Allocation, OppositeSide, Take};
use crate::core::policy::kernel;
use crate::core::policy::queues::Market;
use crate::core::policy::score::AdlPrice;
use crate::core::units::error::{AdlError, Checked, Result};
use crate::core::units::fixed::{split_ceil, split_floor, Grid, LEDGER_LIMIT, MAX_MARGIN};

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

pub(super) struct Plan {
    slot: u32,
    /// Cash moved from a cross account's wallet into the liquidated position (its effective margin).
    wallet_debit: i128,
    legs: Vec<AdlLeg>,
    book_value: i128,
    /// A partial close: the position keeps what the close left (lots closed, margin after).
    partial: Option<(i64, i128)>,
    pub(super) outcome: Liquidation,
}

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
        let (q, e, s) = (p.qty, p.entry, p.side.sign_i128());
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
            let head_only = m.is_head_only(p.side.opposite());
            let index = match m.current_index(p.side.opposite()) {
                Some(index) if head_ok || !head_only => index,
                Some(_) => return Ok(Planned::NeedComplete),
                None => return Ok(if head_ok { Planned::NeedHead(target) } else { Planned::NeedComplete }),
            };
            let members = &m.members[p.side.opposite().slot()];
            let opposite = OppositeSide { store: &self.store, index, members, grid: g, tiers: &m.tiers, mark, scoring: &scoring, terms };
            let pro_rata = m.pro_rata(p.side.opposite());
            let allocation = kernel::allocate(self.policy, &opposite, target, p.account, self.seed, event, head_only, pro_rata);
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
                (c.side.sign_i128() * g.value(take.lots, mark - c.entry), mark as f64)
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
                self.cross.totals(c.account).tnc() + credit - c.side.sign_i128() * g.value(take.lots, mark - c.entry)
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

    pub(super) fn apply_plan(&mut self, plan: Plan) -> Liquidation {
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
                let (markets, store, scoring) = self.book_mut();
                markets[market].rescore_member(store, &scoring, slot);
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
        let (markets, store, scoring) = self.book_mut();
        for s in shrunk {
            let m = store.get(s).market as usize;
            markets[m].rescore_member(store, &scoring, s);
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
    pub(super) fn settle(&mut self, outcome: Liquidation, book_value: i128) -> Liquidation {
        #[cfg(debug_assertions)]
        crate::core::engine::fault::step();
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
