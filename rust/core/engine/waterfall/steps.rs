//! The steps of the waterfall (docs/model.md §2), one function each: every step reads the
//! state and the liquidated position and returns what it moves; nothing here changes state
//! or checks a ledger (`Engine::check_ledgers` does, once, for the combined plan).

use crate::core::book::partial::partial_close;
use crate::core::book::position::Position;
use crate::core::engine::waterfall::{AdlLeg, Delta, Liquidated, Moves, Planned};
use crate::core::engine::Engine;
use crate::core::market::fees::fee_on;
use crate::core::market::FeeConvention;
use crate::core::policy::alloc::{AdlTerms, Allocation, OppositeSide, Take};
use crate::core::policy::kernel;
use crate::core::policy::score::AdlPrice;
use crate::core::units::error::{Checked, Result};
use crate::core::units::fixed::{ledger, split_ceil, split_floor, MAX_MARGIN};

/// What the ADL legs of steps 3–4 leave for the steps after them.
pub(super) struct AdlLegs {
    pub legs: Vec<AdlLeg>,
    /// ADL fees the counterparties pay.
    pub fees: i128,
    /// At the mark: what the bankrupt lots are worth there (margin + PnL), settled by
    /// `settle_at_mark`; 0 at the bankruptcy price.
    pub value_at_mark: i128,
    /// The lots no counterparty took, and the margin they carry (step 5).
    pub lots_left: i64,
    pub margin_left: i128,
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

/// docs/model.md §2, the paragraph after step 5: at a mark-price ADL the bankrupt lots' value
/// there goes to the fund when it is >= 0; a loss is paid by the fund's leftover as far as it
/// can and the rest is bad debt.
pub(super) fn settle_at_mark(value_at_mark: i128, fund_left: i128) -> Delta {
    if value_at_mark >= 0 {
        return Delta { to_fund: value_at_mark, ..Delta::default() };
    }
    let cover = fund_left.min(-value_at_mark);
    Delta { from_fund: cover, bad_debt: -value_at_mark - cover, ..Delta::default() }
}

impl Engine {
    /// A partial close through the book (docs/model.md §7), when asked for and enough: the
    /// fewest lots that bring the position (or its cross account) back above maintenance
    /// (`partial::partial_close`). An isolated position keeps its margin less the loss and
    /// fee; a cross one keeps none and its wallet takes them, which must leave it >= 0.
    pub(super) fn partial_close(&self, at: &Liquidated) -> Option<Moves> {
        let (p, m) = (&at.p, at.m);
        let fee = m.liquidation_fee_ppm;
        let (lots, kept, wallet) = if p.cross {
            let margin = self.cross.liquidation_margin(p, &m.grid, &m.tiers, at.mark);
            let (lots, after) = partial_close(&Position { margin, ..*p }, &m.grid, &m.tiers, fee, at.mark, at.fill, false, false)?;
            let wallet = ledger(self.cash_of(p.account), after - margin, "account cash").ok()?;
            (wallet >= 0).then_some((lots, 0, Some(wallet)))?
        } else {
            let reserve = m.spec.fee_convention == FeeConvention::Bankruptcy;
            let (lots, kept) = partial_close(p, &m.grid, &m.tiers, fee, at.mark, at.fill, true, reserve)?;
            // A close at a profit can raise the margin: beyond `MAX_MARGIN` it closes whole.
            (kept <= MAX_MARGIN).then_some((lots, kept, None))?
        };
        let fee = fee_on(m.grid.notional(lots, at.fill), m.liquidation_fee_ppm);
        let delta = Delta { fee, to_fund: fee, book_value: at.book_value(lots), ..Delta::default() };
        Some(Moves { wallet, delta, external: lots, partial: Some((lots, kept)), ..Moves::default() })
    }

    /// docs/model.md §6: a cross position takes its effective margin out of the wallet and is
    /// then liquidated as an isolated one (at its bankruptcy price it ends at exactly zero).
    /// The margin the waterfall liquidates with, and (cross) the wallet after the debit.
    pub(super) fn cross_wallet_debit(&self, at: &Liquidated) -> Result<(i128, Option<i128>)> {
        let (p, m) = (&at.p, at.m);
        if !p.cross {
            return Ok((p.margin, None));
        }
        let debit = self.cross.effective_margin(p, &m.grid, &m.tiers, at.mark);
        Ok((debit, Some(ledger(self.cash_of(p.account), -debit, "account cash")?)))
    }

    /// docs/model.md §2 step 1: the book pays at least the bankruptcy price (`mg`: the margin
    /// less a reserved fee), so all lots close at F; the fee (`Surplus` convention) goes to
    /// the fund, and the rest to the fund or back to the trader. `None` when it does not.
    pub(super) fn book_close(&self, at: &Liquidated, mg: i128) -> Option<Delta> {
        let m = at.m;
        let whole = at.at_fill(at.p.qty, mg);
        if whole < 0 {
            return None;
        }
        let fee = match m.spec.fee_convention {
            FeeConvention::Surplus => fee_on(m.grid.notional(at.p.qty, at.fill), m.liquidation_fee_ppm).min(whole),
            FeeConvention::Bankruptcy => 0,
        };
        let (to_fund, returned) = if m.spec.surplus_to_fund { (whole, 0) } else { (fee, whole - fee) };
        Some(Delta { fee, to_fund, returned, book_value: at.book_value(at.p.qty), ..Delta::default() })
    }

    /// docs/model.md §2 step 2: the fund covers whole lots, `Q_f = max k with pay(k) <= fund`,
    /// where the covered lots carry `ceil(M·k/Q)` of the margin (rounding in the fund's
    /// favour); they close at F. While the pool's trigger is armed it covers nothing.
    pub(super) fn fund_cover(&self, at: &Liquidated, mg: i128) -> (i64, Delta) {
        let q = at.p.qty;
        let pay = |k: i64| -at.at_fill(k, split_ceil(mg, k, q));
        let covered = max_affordable(q, self.funds.available(at.m.pool, at.p.market), pay);
        if covered == 0 {
            return (0, Delta::default());
        }
        (covered, Delta { from_fund: pay(covered), book_value: at.book_value(covered), ..Delta::default() })
    }

    /// Whether ADL fills at the mark rather than at the bankruptcy price (docs/model.md §5).
    pub(super) fn adl_at_mark(&self, at: &Liquidated, mg: i128) -> bool {
        match self.adl_price {
            AdlPrice::Bankruptcy => false,
            AdlPrice::Mark => true,
            // The mark caps at the bankruptcy price exactly when the position is not bankrupt.
            AdlPrice::MarkCapped => mg + at.p.upnl(&at.m.grid, at.mark) <= 0,
        }
    }

    /// docs/model.md §2 steps 3–4, who: up to `target` of the `lots` lots (carrying `margin`)
    /// from the opposite queue, passing over counterparties that cannot pay at the ADL price
    /// (the solvency rule of step 4, `OppositeSide::affordable`). `Err`: the ranking index
    /// this needs first (`plan_capped` builds it and plans again).
    pub(super) fn adl_counterparties(
        &self,
        at: &Liquidated,
        at_mark: bool,
        lots: i64,
        margin: i128,
        target: i64,
    ) -> std::result::Result<Allocation, Planned> {
        if target == 0 {
            return Ok(Allocation::default());
        }
        let (p, m) = (&at.p, at.m);
        // Queue policies can start from the head of the queue; the others see everyone.
        let head_ok = kernel::allocates_from_head(self.policy);
        let head_only = m.is_head_only(p.side.opposite());
        let index = match m.current_index(p.side.opposite()) {
            Some(index) if head_ok || !head_only => index,
            Some(_) => return Err(Planned::NeedComplete),
            None => return Err(if head_ok { Planned::NeedHead(target) } else { Planned::NeedComplete }),
        };
        let terms = if at_mark { AdlTerms::Mark } else { AdlTerms::Bankruptcy { side: p.side, entry: p.entry, lots, margin } };
        let scoring = self.scoring();
        let members = &m.members[p.side.opposite().slot()];
        let opposite =
            OppositeSide { store: &self.store, index, members, grid: &m.grid, tiers: &m.tiers, mark: at.mark, scoring: &scoring, terms };
        let pro_rata = m.pro_rata(p.side.opposite());
        let allocation = kernel::allocate(self.policy, &opposite, target, p.account, self.seed, self.next_event, head_only, pro_rata);
        // The head ran out before the lots did: a head twice as deep (min_max_leverage needs
        // the whole side for its size fallback).
        if head_only && allocation.lots() < target {
            return Err(if kernel::falls_back_to_size(self.policy) {
                Planned::NeedComplete
            } else {
                Planned::NeedHead(index.total_lots().saturating_add(target).saturating_mul(2))
            });
        }
        Ok(allocation)
    }

    /// docs/model.md §2 step 4, what each counterparty gets: it closes its lots at the ADL
    /// price, realises its PnL and gets back their share of its margin, less the ADL fee. The
    /// bankrupt lots carry their share of `margin` to it (at the bankruptcy price), so the
    /// bankrupt account ends at exactly zero.
    pub(super) fn adl_legs(&self, at: &Liquidated, takes: Vec<Take>, at_mark: bool, lots: i64, margin: i128) -> Result<AdlLegs> {
        let (p, g, mark, s) = (&at.p, &at.m.grid, at.mark, at.sigma());
        let e = p.entry;
        let mut out = AdlLegs { legs: Vec::with_capacity(takes.len()), fees: 0, value_at_mark: 0, lots_left: lots, margin_left: margin };
        for take in takes {
            let c = self.store.get(take.slot);
            let carried = split_floor(out.margin_left, take.lots, out.lots_left);
            out.margin_left -= carried;
            out.lots_left -= take.lots;
            let mut released = split_floor(c.margin, take.lots, c.qty);
            let (pnl, price) = if at_mark {
                out.value_at_mark += carried + s * g.value(take.lots, mark - e);
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
            let fee = fee_on(notional, at.m.adl_fee_ppm).min(credit.max(0)).min(headroom.max(0));
            out.fees += fee;
            out.legs.push(AdlLeg { take, released, credit: credit - fee, price, cash: 0 });
        }
        Ok(out)
    }

    /// docs/model.md §2 step 5: the lots no counterparty took (or the severity cap left) close
    /// against the book at F; the fund's leftover covers their deficit as far as it can (also
    /// while a trigger is armed) and the rest is bad debt.
    pub(super) fn unmatched(&self, at: &Liquidated, lots: i64, margin: i128, fund_left: i128) -> Delta {
        if lots == 0 {
            return Delta::default();
        }
        let value = at.at_fill(lots, margin);
        let book_value = at.book_value(lots);
        if value >= 0 {
            return Delta { to_fund: value, book_value, ..Delta::default() };
        }
        let cover = fund_left.min(-value);
        Delta { from_fund: cover, bad_debt: -value - cover, book_value, ..Delta::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fund_covers_the_most_lots_it_can_pay_for() {
        // pay(k) = 3k: a fund of 25 pays for 8 lots (24), 30 for all 10, 2 for none.
        assert_eq!(max_affordable(10, 25, |k| 3 * k as i128), 8);
        assert_eq!(max_affordable(10, 30, |k| 3 * k as i128), 10);
        assert_eq!(max_affordable(10, 2, |k| 3 * k as i128), 0);
    }

    #[test]
    fn a_loss_at_the_mark_is_paid_by_the_fund_then_is_bad_debt() {
        let gain = settle_at_mark(500, 0);
        assert_eq!((gain.to_fund, gain.from_fund, gain.bad_debt), (500, 0, 0));
        // A loss of 500 with 200 left in the fund: 200 from it, 500 − 200 = 300 bad debt.
        let short = settle_at_mark(-500, 200);
        assert_eq!((short.to_fund, short.from_fund, short.bad_debt), (0, 200, 300));
        let covered = settle_at_mark(-500, 800);
        assert_eq!((covered.to_fund, covered.from_fund, covered.bad_debt), (0, 500, 0));
    }
}
