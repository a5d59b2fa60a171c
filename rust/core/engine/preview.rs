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
//! (`gap_model::GapModel`): the answer is the same as running every trial (`adl_marks_brute`,
//! kept as the test oracle), only sooner.

use rustc_hash::FxHashSet;

use crate::core::book::position::Side;
use crate::core::engine::{Engine, FillKind, Request};
use crate::core::units::error::{AdlError, Result};

/// Most grid points `adl_marks` tries (each runs the gap on a copy of the engine).
pub const MAX_TRIALS: u32 = 10_000;

impl Engine {
    /// Slots of the positions of `(market, side)` that an ADL fill reaches when the mark of
    /// `market` jumps to `mark` (ticks) and everything below maintenance is liquidated there.
    /// With `stop_at`, the gap stops as soon as that slot is reached (the rest of the set is
    /// then incomplete; only whether it holds `stop_at` is meant).
    ///
    /// The copy is dropped after the trial. With `fast`, its liquidations keep nothing to
    /// roll back (`Engine::unnoted`): one that fails ends the trial with its error, as it does
    /// through `liquidate`/`liquidate_account` (which `adl_marks_brute` keeps calling).
    fn gap_hits(&self, market: u32, side: Side, mark: i64, stop_at: Option<u32>, fast: bool) -> Result<FxHashSet<u32>> {
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
                let p = e.store.get(slot);
                // Closed or cured by an earlier liquidation of this pass?
                let live = e.store.find(&(p.account, p.market, p.side)) == Some(slot);
                let below = if p.cross { e.cross.totals(p.account).liquidatable() } else { e.health(slot).is_ok_and(|(eq, mm)| eq < mm) };
                if !(live && below) {
                    continue;
                }
                // A cross account with a position in a market without a mark cannot be valued,
                // so the venue could not liquidate it either: it stays. Checked before anything
                // changes, since a fast trial's liquidations keep no rollback notes: any error
                // after this one ends the trial.
                if p.cross && matches!(e.cross_order(p.account), Err(AdlError::NoMark { .. })) {
                    continue;
                }
                progressed = true;
                let outcomes = if p.cross {
                    e.liquidate_account_in(p.account, false, false, !fast)?
                } else {
                    let req =
                        Request { account: p.account, market: p.market, side: p.side, fill_price: None, force: false, partial: false };
                    vec![if fast {
                        let (slot, fill) = e.check(&req, 0)?;
                        e.unnoted(|e, undo| e.step(undo, slot, fill, false, None))?
                    } else {
                        e.liquidate(req, false)?
                    }]
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

    /// `adl_marks` running every trial in full (no gap model, no early stop): the reference
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
        let bound = if fast { self.gap_model(market, side) } else { None };
        let stop_at = if fast { only } else { None };
        // The gap's hits among `pending`, or none without running it when the bound proves it.
        let hits = |e: &Engine, mark: i64, pending: &[u32]| -> Result<FxHashSet<u32>> {
            match &bound {
                Some(b) if b.misses(e, mark, pending) => Ok(FxHashSet::default()),
                _ => e.gap_hits(market, side, mark, stop_at, fast),
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
