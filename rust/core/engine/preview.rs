//! Preview for users (docs/model.md §7): the mark at which a position would start being
//! deleveraged under the current book.
//!
//! The model is a gap: the mark of the position's market jumps from where it is to `P`, and
//! every position then below maintenance is liquidated at `P` through the waterfall (worst
//! first, with the current fund pools and triggers; other markets keep their marks). A
//! position's ADL mark is the nearest `P`, on a grid of relative moves in its favour (a
//! long's counterparties are shorts, who lose as the mark rises), at which that jump gives it
//! an ADL fill. Each trial runs on a copy of the engine: nothing observable changes.
//!
//! Trials that provably give none of the positions asked about an ADL fill are not run
//! (`MissBound`): the answer is the same as running every trial (`adl_marks_brute`, kept as
//! the test oracle), only sooner.

use rustc_hash::FxHashSet;

use crate::core::book::position::Side;
use crate::core::engine::{Engine, FillKind, Request};
use crate::core::policy::score::{near, AdlPrice, Policy};
use crate::core::units::error::{AdlError, Result};

/// Most grid points `adl_marks` tries (each runs the gap on a copy of the engine).
pub const MAX_TRIALS: u32 = 10_000;

impl Engine {
    /// Slots of the positions of `(market, side)` that an ADL fill reaches when the mark of
    /// `market` jumps to `mark` (ticks) and everything below maintenance is liquidated there.
    /// With `stop_at`, the gap stops as soon as that slot is reached (the rest of the set is
    /// then incomplete; only whether it holds `stop_at` is meant).
    fn gap_hits(&self, market: u32, side: Side, mark: i64, stop_at: Option<u32>) -> Result<FxHashSet<u32>> {
        let mut e = self.clone();
        e.keep_fills = false;
        e.set_mark_ticks(&[(market, mark)], None)?;
        let mut hits = FxHashSet::default();
        // ADL credits can only help counterparties, so a few passes settle every cascade; a
        // pass that liquidates nothing (only unvaluable cross accounts left) ends it.
        let mut progressed = true;
        while progressed {
            progressed = false;
            for slot in e.liquidatable() {
                let p = *e.store.get(slot);
                // Closed or cured by an earlier liquidation of this pass?
                let live = e.store.find(&(p.account, p.market, p.side)) == Some(slot);
                let below = if p.cross { e.cross.totals(p.account).liquidatable() } else { e.health(slot).is_ok_and(|(eq, mm)| eq < mm) };
                if !(live && below) {
                    continue;
                }
                let outcomes = if p.cross {
                    match e.liquidate_account(p.account, false, false) {
                        // A cross account with a position in a market without a mark cannot
                        // be valued, so the venue could not liquidate it either: it stays.
                        Err(AdlError::NoMark { .. }) => continue,
                        other => {
                            progressed = true;
                            other?
                        }
                    }
                } else {
                    progressed = true;
                    vec![e.liquidate(
                        Request { account: p.account, market: p.market, side: p.side, fill_price: None, force: false, partial: false },
                        false,
                    )?]
                };
                for f in outcomes.iter().flat_map(|l| &l.fills).filter(|f| f.kind == FillKind::Adl && f.market == market) {
                    if let (Some(account), Some(s)) = (f.account, f.side) {
                        if s == side {
                            if let Some(orig) = self.store.find(&(account, market, side)) {
                                hits.insert(orig);
                                if stop_at == Some(orig) {
                                    return Ok(hits);
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(hits)
    }

    /// For every position of `(market, side)` (or only `only`), the first mark on the grid
    /// `P0·(1 ± k·step)`, `k = 1, 2, …` up to a move of `max_move`, at which a gap deleverages
    /// it (`None`: no such mark within `max_move`). With `only`, the bracket found is then
    /// narrowed by bisection to one tick (assuming one crossing inside it). Marks in ticks.
    pub fn adl_marks(&mut self, market: u32, side: Side, step: f64, max_move: f64, only: Option<u32>) -> Result<Vec<(u32, Option<i64>)>> {
        self.adl_marks_with(market, side, step, max_move, only, true)
    }

    /// `adl_marks` running every trial in full (no `MissBound`, no early stop): the reference
    /// the fast path is tested against.
    #[doc(hidden)]
    pub fn adl_marks_brute(
        &mut self,
        market: u32,
        side: Side,
        step: f64,
        max_move: f64,
        only: Option<u32>,
    ) -> Result<Vec<(u32, Option<i64>)>> {
        self.adl_marks_with(market, side, step, max_move, only, false)
    }

    fn adl_marks_with(
        &mut self,
        market: u32,
        side: Side,
        step: f64,
        max_move: f64,
        only: Option<u32>,
        fast: bool,
    ) -> Result<Vec<(u32, Option<i64>)>> {
        if !(step.is_finite() && step > 0.0 && step <= max_move) {
            return Err(AdlError::config("step", format!("{step} must be > 0 and at most max_move")));
        }
        // Each grid point is a trial on a copy of the engine: bound how many there are.
        if max_move / step > MAX_TRIALS as f64 {
            return Err(AdlError::config(
                "step",
                format!("{step} gives more than {MAX_TRIALS} trials up to max_move {max_move}; use at least max_move / {MAX_TRIALS}"),
            ));
        }
        // Longs are reached as the mark rises (any move), shorts as it falls (below 100 %).
        if !(max_move.is_finite() && max_move > 0.0 && (side == Side::Long || max_move < 1.0) && max_move <= 10.0) {
            return Err(AdlError::config(
                "max_move",
                format!("{max_move} must be > 0, at most 10, and below 1 for shorts (the mark falls)"),
            ));
        }
        let m = self.markets.get(market as usize).ok_or_else(|| AdlError::UnknownMarket { symbol: format!("#{market}") })?;
        let start = m.mark()?;
        let members: Vec<u32> = match only {
            Some(slot) => vec![slot],
            None => m.members[side.slot()].clone(),
        };
        // Longs are deleveraged when shorts go bankrupt: the mark rising. Shorts: it falling.
        let dir = side.sign_f64();
        let steps = (max_move / step).floor() as i64;
        // The grid is of prices (an inverse market's ticks are of −1/P); a price off the
        // grid's range ends the search.
        let (grid, p0) = (m.grid, m.grid.price_f64(start as f64));
        let at = |k: i64| grid.ticks(p0 * (1.0 + dir * k as f64 * step)).filter(|&t| grid.is_price(t));
        let bound = if fast { self.miss_bound(market, side) } else { None };
        let stop_at = if fast { only } else { None };
        // The gap's hits among `pending`, or none without running it when the bound proves it.
        let hits = |e: &Engine, mark: i64, pending: &[u32]| -> Result<FxHashSet<u32>> {
            match &bound {
                Some(b) if b.misses(e, mark, pending) => Ok(FxHashSet::default()),
                _ => e.gap_hits(market, side, mark, stop_at),
            }
        };
        // The fill log is not needed in the copies: move it out while they are made.
        let log = std::mem::take(&mut self.events);
        // The fill log goes back even if a trial panics (the panic is then re-raised).
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut first: Vec<Option<i64>> = vec![None; members.len()];
            let mut left = members.len();
            let mut last_miss = start;
            let mut last_tried = start;
            for k in 1..=steps {
                if left == 0 {
                    break;
                }
                let Some(mark) = at(k) else { break };
                // Steps finer than a tick land on the same mark: one trial per mark.
                if mark == last_tried {
                    continue;
                }
                last_tried = mark;
                let pending: Vec<u32> = members.iter().zip(&first).filter(|(_, f)| f.is_none()).map(|(&s, _)| s).collect();
                let hits = hits(self, mark, &pending)?;
                for (i, slot) in members.iter().enumerate() {
                    if first[i].is_none() && hits.contains(slot) {
                        first[i] = Some(mark);
                        left -= 1;
                    }
                }
                if first.iter().all(Option::is_none) {
                    last_miss = mark;
                }
            }
            if let (Some(slot), Some(Some(hit))) = (only, first.first().copied()) {
                // Bisection between the last grid mark that missed and the first that hit.
                let (mut miss, mut hit) = (last_miss, hit);
                while (hit - miss).abs() > 1 {
                    let mid = miss + (hit - miss) / 2;
                    if hits(self, mid, &[slot])?.contains(&slot) {
                        hit = mid;
                    } else {
                        miss = mid;
                    }
                }
                first[0] = Some(hit);
            }
            Ok(members.iter().copied().zip(first).collect())
        }));
        self.events = log;
        result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// A proof that a gap deleverages none of some positions, without running it, where every ADL
/// fill of the gap provably comes from an isolated position of the market at its own
/// bankruptcy price. It applies when: the policy is `bitmex` at the bankruptcy price (scores
/// keep their order under the proportional partial closes of ADL), the market charges no ADL
/// fee, holds no cross position, and nothing in the engine is liquidatable at the current
/// marks. Then, for a jump of the mark in favour of `side` to `P`:
///
/// - no position of `side` in the market becomes liquidatable (its equity gains faster than
///   its maintenance grows), nothing elsewhere moves, so the ADL lots against `side` come only
///   from the opposite positions of the market with a deficit at `P`: at most
///   `U = Σ q_b` over those with `(M_b − reserved fee) + σ_b·q_b·(P − E_b) < 0`;
/// - each such position was solvent at the current mark `P0`, so its ADL price lies between
///   `P0` and `P` (up to one cash unit per lot of rounding); a counterparty whose equity at `P0`
///   is at least `(3 + log2 q)` cash units per lot therefore pays at any of them, and its score
///   stays ahead of one it is clearly ahead of at `P` (checked with its margin per lot raised
///   by `2 + log2 q` units, more than the rounding of repeated partial closes can move it);
/// - so a position `m` of `side` gets a lot only after every such counterparty ahead of it
///   (other than accounts also holding the opposite side, which are not matched with
///   themselves) is closed whole: `L_m` lots. If `U <= L_m`, `m` is not reached.
pub(crate) struct MissBound {
    market: u32,
    side: Side,
    start: i64,
}

impl Engine {
    /// The bound for `(market, side)`, or `None` where it does not apply (see `MissBound`).
    fn miss_bound(&self, market: u32, side: Side) -> Option<MissBound> {
        let m = &self.markets[market as usize];
        let applies = self.policy == Policy::Bitmex
            && self.adl_price == AdlPrice::Bankruptcy
            && m.adl_fee_ppm == 0
            && m.members.iter().flatten().all(|&s| !self.store.get(s).cross)
            && self.liquidatable().is_empty();
        let start = m.mark?;
        applies.then_some(MissBound { market, side, start })
    }
}

impl MissBound {
    /// Whether the gap to `mark` provably gives none of `pending` (slots of `side`) an ADL fill.
    fn misses(&self, e: &Engine, mark: i64, pending: &[u32]) -> bool {
        let m = &e.markets[self.market as usize];
        let (g, tiers, side) = (&m.grid, &m.tiers, self.side);
        // U: lots of the opposite positions with a deficit at `mark` (the waterfall's `whole`).
        let mut deficit_lots = 0i128;
        for &slot in &m.members[side.opposite().slot()] {
            let p = e.store.get(slot);
            let mg = p.margin - e.reserved_fee(m, p, p.margin);
            if mg + p.side.sign_i128() * g.value(p.qty, mark - p.entry) < 0 {
                deficit_lots += p.qty as i128;
            }
        }
        if deficit_lots == 0 {
            return true;
        }
        // Counterparties sure to pay and to stay in their place: their lowest score at `mark`
        // (margin per lot raised by the rounding bound) and lots, highest score first.
        let lowest = |slot: u32| {
            let p = e.store.get(slot);
            let slack = 3 + p.qty.ilog2() as i128;
            if p.equity(g, self.start) < slack * p.qty as i128 || e.store.find(&(p.account, self.market, side.opposite())).is_some() {
                return None;
            }
            let margin = p.margin + (slack - 1) * p.qty as i128;
            Policy::Bitmex.score(g, tiers, side, p.qty, p.entry, margin, mark).map(|s| (s, p.qty))
        };
        let mut sure: Vec<(f64, i64)> = m.members[side.slot()].iter().filter_map(|&slot| lowest(slot)).collect();
        sure.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let mut ahead = Vec::with_capacity(sure.len() + 1);
        ahead.push(0i128);
        for &(_, lots) in &sure {
            ahead.push(ahead.last().unwrap() + lots as i128);
        }
        pending.iter().all(|&slot| {
            let p = e.store.get(slot);
            // Not eligible at `mark` (no equity): not in the queue, so not reached.
            let Some(own) = Policy::Bitmex.score(g, tiers, side, p.qty, p.entry, p.margin, mark) else { return true };
            // Counterparties clearly ahead: a prefix of `sure` (scores above `own`, not near it).
            let clearly_ahead = |s: f64| s > own && !near(s, own);
            let k = sure.partition_point(|&(s, _)| clearly_ahead(s));
            // Not `m` itself (its lowest score is below its own; this only guards rounding).
            let own_lots = lowest(slot).filter(|&(s, _)| clearly_ahead(s)).map_or(0, |(_, q)| q as i128);
            deficit_lots <= ahead[k] - own_lots
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::book::input::PositionColumns;
    use crate::core::market::MarketSpec;

    #[test]
    fn the_bound_skips_only_trials_that_miss() {
        // Prices in tenths, cash in thousandths, mark 100, empty fund, mmr 5 % (as in
        // venue_cases::preview_finds_the_mark_that_starts_deleveraging). Shorts A 10 @ 100 m100
        // (deficit above 110), B 10 @ 100 m200 (above 120); longs L2 10 @ 90 m100 (first), L1
        // 10 @ 100 m1,000 (second).
        let cols = PositionColumns {
            account: &[1, 2, 11, 12],
            market: &[],
            side: &[-1, -1, 1, 1],
            qty: &[10.0; 4],
            entry: &[100.0, 100.0, 100.0, 90.0],
            margin: &[100.0, 200.0, 1_000.0, 100.0],
            adl_cap: &[],
            cross: &[],
        };
        let mut e = Engine::new(Policy::Bitmex, 0.0, 3, MarketSpec::linear(0, 1, 0.05)).unwrap();
        e.load(cols, &["X".to_string()], None, None).unwrap();
        e.set_marks(&[("X".to_string(), 100.0)], None).unwrap();
        let l1 = e.store.find(&(11, 0, Side::Long)).unwrap();
        let l2 = e.store.find(&(12, 0, Side::Long)).unwrap();
        let b = e.miss_bound(0, Side::Long).expect("isolated book at rest: the bound applies");
        // At 111 (1,110 ticks) only A has a deficit: U = 10 lots. L2 (equity at 100: 200 ≥
        // (3 + log2 10)·10 thousandths) is clearly ahead of L1 (scores 0.84 vs 0.11): L = 10
        // for L1, so L1 is missed without a trial; L2 has nobody ahead, so it is not.
        assert!(b.misses(&e, 1_110, &[l1]));
        assert!(!b.misses(&e, 1_110, &[l2]));
        // At 121 both shorts have a deficit (U = 20 > 10): L1's trial runs. Below 110 nobody has one.
        assert!(!b.misses(&e, 1_210, &[l1]));
        assert!(b.misses(&e, 1_099, &[l1, l2]));
        // The answers are those of running every trial.
        for only in [None, Some(l1), Some(l2)] {
            assert_eq!(e.adl_marks(0, Side::Long, 0.01, 0.5, only).unwrap(), e.adl_marks_brute(0, Side::Long, 0.01, 0.5, only).unwrap());
        }
        // A cross position in the market, or anything liquidatable at the marks: no bound.
        e.set_marks(&[("X".to_string(), 111.0)], None).unwrap();
        assert!(e.miss_bound(0, Side::Long).is_none());
    }
}
