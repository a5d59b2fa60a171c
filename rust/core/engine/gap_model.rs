//! What a gap (docs/model.md §7) does, read off the book without running it: a proof that a
//! trial of `Engine::adl_marks` gives none of some positions an ADL fill, so the trial need
//! not be run. The answer is the same as running every trial (`adl_marks_brute`, the test
//! oracle), only sooner.
//!
//! A gap moves the mark of market `M` from `P0` to `P` in favour of `side` `S` and liquidates
//! everything then below maintenance, through the waterfall, until nothing is. The model is
//! built once per `adl_marks` call from the engine at rest and is used only inside this
//! domain (`Engine::gap_model` returns `None` outside it, and every trial is then run):
//!
//! - nothing in the engine is liquidatable at the current marks (so only `M`'s move starts
//!   liquidations);
//! - every fund pool is without a trigger (`Trigger::FundEmpty`: it pays what it holds);
//! - every market a cross account holding `M` trades either charges no liquidation fee or
//!   takes it from the surplus (`FeeConvention::Surplus`), so a cross position closed at a
//!   non-negative equity share never draws on the fund.
//!
//! **No ADL at all.** At `P`, the fund is drawn on only by positions closed with a deficit:
//! an isolated position of the opposite side `O` in `M` (no one else's equity falls),
//! `−(M_b − fee_b) − σ_b·q_b·(P − E_b)` when that is > 0; a cross account holding `M`, its
//! whole `−TNC(P)` when `TNC(P) < 0` (its positions close at equity shares of `TNC`, rounded
//! down and the last one taking the rest, which all have its sign), nothing otherwise. The
//! draws before any ADL only take from the pools, and inflows only add, so if their sum `D(P)`
//! is at most the smallest balance of the pools they draw on, every deficit is covered whole
//! by the fund and no position anywhere gets an ADL fill (any policy, any ADL price). `TNC(P)`
//! is `TNC(P0) + value(Σσ·q, P − P0)` over the account's positions in `M`, exactly.
//!
//! **Not reached in the queue** (only when the fund may not cover everything). Where the
//! policy is `bitmex` at the bankruptcy price, `M` charges no ADL fee and no cross account holds
//! both sides of `M`, the ADL lots against `S` are at most `U(P)`: the lots of those isolated
//! positions of `O` with a deficit and of the `O` positions of cross accounts with `TNC(P) < 0`
//! (a cross account left at `TNC >= 0` after ADL fills elsewhere, which the solvency rule
//! guarantees, closes without a deficit). Each of those was solvent at `P0` (a cross one's
//! share of `TNC(P)` is at most the loss of its position from `P0` to `P`, other legs first or
//! not), so its ADL price lies between `P0` and `P`. An isolated counterparty of `S` whose equity
//! at `P0` is at least `(3 + log2 q)` cash units per lot pays at any of them and stays ahead of
//! an isolated position it is clearly ahead of at `P` (its margin per lot raised by `2 + log2 q`
//! units, more than the rounding of repeated partial closes can move its score). Cross
//! counterparties are not counted: their place and what they can pay move with their TNC, and
//! they may leave the queue in the gap. An isolated position of `S` with `L` lots of such counterparties ahead of it (other
//! than accounts also holding `O`, which are not matched with themselves) is not reached when
//! `U(P) <= L`.

use crate::core::book::position::Side;
use crate::core::book::trigger::Trigger;
use crate::core::engine::Engine;
use crate::core::market::FeeConvention;
use crate::core::policy::score::{near, AdlPrice, Policy};

/// The gap model of one side of one market at rest (see the module docs).
pub(crate) struct GapModel {
    market: u32,
    side: Side,
    /// `P0`, the mark the gap starts from (ticks).
    start: i64,
    /// What can draw on the fund, by how far the mark must move for it to: the smallest
    /// `x = σ_S·P` (the mark's distance in the side's favour, in ticks) at which it has a
    /// deficit, then `(a, b)` with its draw `a·x − b` from there, and the lots it then
    /// auto-deleverages at most. Sorted by that `x`.
    from: Vec<i64>,
    /// Prefix sums of `a`, `b` and the lots over `from`'s order (one more entry than `from`).
    sums: Vec<(i128, i128, i128)>,
    /// The smallest balance of the pools the gap's deficits can draw on.
    fund: i128,
    /// Whether the queue argument applies (bitmex at the bankruptcy price, no ADL fee, no
    /// cross account holding both sides).
    queue: bool,
}

impl Engine {
    /// Nothing liquidatable at the current marks (`liquidatable()` empty, or possibly not when
    /// a cross account below maintenance trades only markets without a mark), without sorting.
    fn at_rest(&self) -> bool {
        self.cross.worst_below().is_none()
            && self.store.iter().all(|(_, p)| {
                let m = &self.markets[p.market as usize];
                p.cross || m.mark.is_none_or(|mark| !self.below_maintenance(&p, m, mark).0)
            })
    }

    /// The gap model of `(market, side)`, or `None` outside its domain (see the module docs).
    pub(crate) fn gap_model(&self, market: u32, side: Side) -> Option<GapModel> {
        let m = &self.markets[market as usize];
        let start = m.mark?;
        if self.funds.pools().iter().any(|p| !matches!(p.trigger.trigger, Trigger::FundEmpty)) || !self.at_rest() {
            return None;
        }
        let opposite = side.opposite();
        // x = σ_S·P. An isolated position of the opposite side (σ_O = −σ_S) has a deficit
        // once mg + σ_O·f·q·(P − E) < 0, i.e. f·q·(x − σ_S·E) > mg: from x = σ_S·E + ⌊mg/(f·q)⌋ + 1,
        // where it draws f·q·x − (f·q·σ_S·E + mg).
        let (f, dir) = (m.grid.factor, side.sign_i128());
        let mut entries: Vec<(i64, i128, i128, i128)> = Vec::new();
        for &slot in &m.members[opposite.slot()] {
            let p = self.store.get(slot);
            if p.cross {
                continue;
            }
            let (mg, fq, e) = (p.margin - self.reserved_fee(m, &p, p.margin), f * p.qty as i128, dir * p.entry as i128);
            entries.push((from_x(e + mg.div_euclid(fq) + 1), fq, fq * e + mg, p.qty as i128));
        }
        let mut pools = vec![m.pool];
        let mut hedged = false;
        let mut seen = rustc_hash::FxHashSet::default();
        for &slot in m.members.iter().flatten() {
            let p = self.store.get(slot);
            if !p.cross || !seen.insert(p.account) {
                continue;
            }
            let leg = |s: Side| self.store.find(&(p.account, market, s)).map(|k| self.store.get(k)).filter(|q| q.cross);
            let (long, short) = (leg(Side::Long), leg(Side::Short));
            hedged |= long.is_some() && short.is_some();
            let net = long.map_or(0, |q| q.qty) - short.map_or(0, |q| q.qty);
            let opposite_lots = if opposite == Side::Long { long } else { short }.map_or(0, |q| q.qty);
            for &k in self.cross.slots(p.account) {
                let other = &self.markets[self.store.get(k).market as usize];
                if other.spec.fee_convention != FeeConvention::Surplus && other.liquidation_fee_ppm != 0 {
                    return None;
                }
                pools.push(other.pool);
            }
            // TNC(P) = TNC(P0) + f·net·(P − P0) = tnc − f·j·(x − x0) with j = −σ_S·net lots
            // against the side: < 0 from x = x0 + ⌊tnc/(f·j)⌋ + 1, drawing f·j·x − (f·j·x0 + tnc).
            let (tnc, j, x0) = (self.cross.totals(p.account).tnc(), -dir * net as i128, dir * start as i128);
            match (j > 0, tnc < 0) {
                (true, _) => entries.push((from_x(x0 + tnc.div_euclid(f * j) + 1), f * j, f * j * x0 + tnc, opposite_lots as i128)),
                // Not losing in the gap: a deficit only if it already has one (never at rest).
                (false, true) => entries.push((i64::MIN, 0, tnc, opposite_lots as i128)),
                (false, false) => {}
            }
        }
        pools.sort_unstable();
        pools.dedup();
        let fund = pools.iter().map(|&id| self.funds.pool(id).balance).min().unwrap_or(0);
        let queue = self.policy == Policy::Bitmex && self.adl_price == AdlPrice::Bankruptcy && m.adl_fee_ppm == 0 && !hedged;
        entries.sort_unstable_by_key(|e| e.0);
        let mut sums = Vec::with_capacity(entries.len() + 1);
        sums.push((0i128, 0i128, 0i128));
        // Each term is within the ledger limits; sums of very many could pass 2^127: no model.
        for &(_, a, b, lots) in &entries {
            let &(sa, sb, sl) = sums.last().unwrap();
            sums.push((sa.checked_add(a)?, sb.checked_add(b)?, sl + lots));
        }
        let from = entries.into_iter().map(|e| e.0).collect();
        Some(GapModel { market, side, start, from, sums, fund, queue })
    }
}

/// A threshold `x` as ticks (beyond the range of ticks: never reached, or always).
fn from_x(x: i128) -> i64 {
    x.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

impl GapModel {
    /// The fund's draws `D(P)` and an upper bound `U(P)` on the lots auto-deleveraged against
    /// the side, for a gap to `mark` (module docs): a binary search and one prefix sum.
    /// (`None` beyond 128 bits, then nothing is proved.)
    fn deficits(&self, mark: i64) -> Option<(i128, i128)> {
        let x = self.side.sign_i64() * mark;
        let (a, b, lots) = self.sums[self.from.partition_point(|&from| from <= x)];
        Some(((x as i128).checked_mul(a)?.checked_sub(b)?, lots))
    }

    /// Whether the gap to `mark` provably gives none of `pending` (slots of the side) an ADL fill.
    pub(crate) fn misses(&self, e: &Engine, mark: i64, pending: &[u32]) -> bool {
        let Some((draw, deficit_lots)) = self.deficits(mark) else { return false };
        if draw <= self.fund {
            return true;
        }
        self.queue && self.behind(e, mark, deficit_lots, pending)
    }

    /// Whether every one of `pending` has more than `deficit_lots` lots of sure counterparties
    /// ahead of it at `mark` (the queue argument of the module docs).
    fn behind(&self, e: &Engine, mark: i64, deficit_lots: i128, pending: &[u32]) -> bool {
        let m = &e.markets[self.market as usize];
        let (g, tiers, side) = (&m.grid, &m.tiers, self.side);
        // Counterparties sure to pay and to stay in their place: their lowest score at `mark`
        // (margin per lot raised by the rounding bound) and lots, highest score first.
        let lowest = |slot: u32| {
            let p = e.store.get(slot);
            let slack = 3 + p.qty.ilog2() as i128;
            if p.cross
                || p.equity(g, self.start) < slack * p.qty as i128
                || e.store.find(&(p.account, self.market, side.opposite())).is_some()
            {
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
            // A cross position's place moves with its account's TNC in the gap: no proof.
            if p.cross {
                return false;
            }
            // Not eligible at `mark` (no equity): not in the queue, so not reached.
            let Some(own) = Policy::Bitmex.score(g, tiers, side, p.qty, p.entry, p.margin, mark) else { return true };
            // Counterparties clearly ahead: a prefix of `sure` (scores above `own`, not near it).
            let clearly_ahead = |s: f64| s > own && !near(s, own);
            let k = sure.partition_point(|&(s, _)| clearly_ahead(s));
            // Not `p` itself (its lowest score is below its own; this only guards rounding).
            let own_lots = lowest(slot).filter(|&(s, _)| clearly_ahead(s)).map_or(0, |(_, q)| q as i128);
            deficit_lots <= ahead[k] - own_lots
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::core::book::input::PositionColumns;
    use crate::core::book::position::Side;
    use crate::core::book::trigger::Trigger;
    use crate::core::engine::Engine;
    use crate::core::market::{FeeConvention, MarketSpec};
    use crate::core::policy::score::Policy;

    /// Prices in tenths, cash in thousandths (100 cash units per lot·tick), mark 100, mmr 5 %.
    /// Shorts A 10 @ 100 m100 (deficit above 110), B 10 @ 100 m200 (above 120) and the cross
    /// account 3, 10 @ 100 with a wallet of 150 (TNC < 0 above 115); longs L2 10 @ 90 m100
    /// (first in the queue), L1 10 @ 100 m1,000 (second).
    fn book(fund: f64, spec: MarketSpec) -> Engine {
        let cols = PositionColumns {
            account: &[1, 2, 3, 11, 12],
            market: &[],
            side: &[-1, -1, -1, 1, 1],
            qty: &[10.0; 5],
            entry: &[100.0, 100.0, 100.0, 100.0, 90.0],
            margin: &[100.0, 200.0, 0.0, 1_000.0, 100.0],
            adl_cap: &[],
            cross: &[0, 0, 1, 0, 0],
        };
        let mut e = Engine::new(Policy::Bitmex, fund, 3, spec).unwrap();
        e.load(cols, &["X".to_string()], Some((&[3], &[150.0])), None).unwrap();
        e.set_marks(&[("X".to_string(), 100.0)], None).unwrap();
        e
    }

    fn same_as_every_trial(e: &mut Engine, slots: &[u32]) {
        for only in [None].into_iter().chain(slots.iter().map(|&s| Some(s))) {
            assert_eq!(e.adl_marks(0, Side::Long, 0.01, 0.5, only).unwrap(), e.adl_marks_brute(0, Side::Long, 0.01, 0.5, only).unwrap());
        }
    }

    #[test]
    fn the_model_skips_only_trials_that_miss() {
        let mut e = book(0.0, MarketSpec::linear(0, 1, 0.05));
        let l1 = e.store.find(&(11, 0, Side::Long)).unwrap();
        let l2 = e.store.find(&(12, 0, Side::Long)).unwrap();
        let b = e.gap_model(0, Side::Long).expect("a book at rest with cross accounts: the model applies");
        // At 111 (1,110 ticks): A's whole is 100,000 − 10·110·100 = −10,000; B's 200,000 −
        // 110,000 = 90,000; the cross TNC 150,000 − 110,000 = 40,000. D = 10,000, U = 10.
        assert_eq!(b.deficits(1_110), Some((10_000, 10)));
        // At 116: A −60,000, B 40,000, TNC 150,000 − 160,000 = −10,000: D = 70,000, U = 20.
        assert_eq!(b.deficits(1_160), Some((70_000, 20)));
        // Empty fund. At 111, L2 (equity at 100: 200,000 ≥ (3 + log2 10)·10) is clearly ahead
        // of L1 (scores 0.84 vs 0.11): L = 10 ≥ U for L1, which is missed without a trial; L2
        // has nobody ahead, so it is not. At 116, U = 20 > 10: L1's trial runs.
        assert!(b.misses(&e, 1_110, &[l1]));
        assert!(!b.misses(&e, 1_110, &[l2]));
        assert!(!b.misses(&e, 1_160, &[l1]));
        // Below 110 nobody has a deficit.
        assert!(b.misses(&e, 1_099, &[l1, l2]));
        same_as_every_trial(&mut e, &[l1, l2]);

        // A fund of 70: at 116, D = 70,000 is covered, so no ADL at all: even L2 is missed.
        // At 116.1, A −61,000 and TNC −11,000: D = 72,000 > 70,000, and L2's trial runs.
        let mut e = book(70.0, MarketSpec::linear(0, 1, 0.05));
        let b = e.gap_model(0, Side::Long).unwrap();
        assert!(b.misses(&e, 1_160, &[l1, l2]));
        assert_eq!(b.deficits(1_161), Some((72_000, 20)));
        assert!(!b.misses(&e, 1_161, &[l2]));
        same_as_every_trial(&mut e, &[l1, l2]);
    }

    #[test]
    fn outside_its_domain_there_is_no_model() {
        // A trigger on the pool: it may stop paying in the gap.
        let mut e = book(70.0, MarketSpec::linear(0, 1, 0.05));
        e.set_trigger(Trigger::FundDrop { arm: 0.7, disarm: 0.9 });
        assert!(e.gap_model(0, Side::Long).is_none());
        // A cross account in a market whose fee is reserved at bankruptcy: a close at a
        // non-negative equity share can still draw on the fund.
        let spec = MarketSpec { liquidation_fee: 0.01, fee_convention: FeeConvention::Bankruptcy, ..MarketSpec::linear(0, 1, 0.05) };
        assert!(book(70.0, spec).gap_model(0, Side::Long).is_none());
        // Something liquidatable at the marks (A below maintenance at 106: 40,000 < 53,000).
        let mut e = book(70.0, MarketSpec::linear(0, 1, 0.05));
        e.set_marks(&[("X".to_string(), 106.0)], None).unwrap();
        assert!(e.gap_model(0, Side::Long).is_none());
        same_as_every_trial(&mut e, &[]);
    }
}
