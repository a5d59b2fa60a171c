//! Bands for lazy cross revaluation. A mark change need not revalue every cross account of
//! the market: each account gets, per market it holds, a band of marks within which it
//! provably stays at or above maintenance (`TNC ≥ TMMR`) whatever the other marks do inside
//! their bands. A mark change visits only the accounts whose band it leaves (kept sorted per
//! market by band bounds, like isolated liquidation prices); the others keep totals counted
//! at older marks, and every read adds the difference exactly (`CrossBook::totals`).
//!
//! Why a band holds. A position's `f = u − MM` at mark `P`: `u` is linear in ticks with slope
//! `±q·f`, the notional too, and `MM` is (up to rounding) convex piecewise linear in the
//! notional with rates below 1. So `f` is monotone in the mark, and over a band it is at least
//! its value at the worse end, less the rounding allowance `ALLOWANCE·(tiers + 1)` cash units
//! (`ceil` per rate, and each published maintenance amount within one unit of continuous).
//! A band set is accepted only when `W + Σ (min(f(lo), f(hi)) − allowance) ≥ 0` in exact
//! integers, and the sums `CROSS_LIMIT` bounds stay within it at both ends (each is monotone
//! or convex in the mark, so its largest value is at an end).

use crate::core::market::tiers::Tiers;
use crate::core::units::fixed::Grid;
use crate::core::units::side::Side;

/// Cash units per tier (plus one) a position's `u − MM` may fall short of its value at the
/// worse end of a band through rounding (at most 2·(3·tiers + 1); rounded up generously).
const ALLOWANCE: i128 = 8;

/// What a cross position's terms need of its market: grid, tiers and the mark.
#[derive(Clone, Debug, PartialEq)]
pub struct MarketView {
    pub grid: Grid,
    pub tiers: Tiers,
    pub mark: Option<i64>,
}

/// A cross position's PnL, maintenance and notional at a mark, in cash units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Terms {
    pub upnl: i128,
    pub maintenance: i128,
    pub notional: i128,
}

/// A cross position as its terms need it.
#[derive(Clone, Copy, Debug)]
pub struct Leg {
    pub market: u32,
    pub qty: i64,
    pub entry: i64,
    pub side: Side,
}

impl Leg {
    /// Its terms at `mark` (`None`: no mark yet, the entry counts).
    #[inline]
    pub fn terms(&self, v: &MarketView, mark: Option<i64>) -> Terms {
        let mark = mark.unwrap_or(self.entry);
        let notional = v.grid.notional(self.qty, mark);
        Terms {
            upnl: self.side.sign_i128() * v.grid.value(self.qty, mark - self.entry),
            maintenance: v.tiers.maintenance(notional),
            notional,
        }
    }
}

/// A band: (market, lowest mark, highest mark) in ticks.
pub type Band = (u32, i64, i64);

/// Bands for an account with `wallet` and `legs` at the views' marks, as wide as its slack
/// allows (each market's band the same fraction of its mark, the fraction spending the slack
/// at a loss rate of the notional times one plus the top maintenance rate); `None` (any move revalues it) when the slack is
/// too small or the check fails three times. Markets without a mark get no band (their first
/// mark revalues every account in them). `limit` bounds |wallet|, Σ|PnL|, Σ maintenance and
/// Σ notional.
pub fn bands(wallet: i128, legs: &[Leg], views: &[MarketView], limit: i128) -> Option<Vec<Band>> {
    let mut markets: Vec<(u32, i64)> = legs.iter().filter_map(|l| Some((l.market, views[l.market as usize].mark?))).collect();
    markets.sort_unstable();
    markets.dedup();
    if markets.is_empty() {
        return Some(Vec::new());
    }
    let mut slack = wallet;
    let mut rate = 0.0;
    for l in legs {
        let v = &views[l.market as usize];
        let t = l.terms(v, v.mark);
        slack += t.upnl - t.maintenance - allowance(v);
        if v.mark.is_some() {
            let top = v.tiers.tiers().last().map_or(0, |t| t.rate_ppm) as f64 / 1e6;
            rate += (1.0 + top) * t.notional as f64;
        }
    }
    if slack <= 0 || rate <= 0.0 {
        return None;
    }
    let mut x = (slack as f64 / rate).min(0.5);
    for _ in 0..3 {
        let out: Vec<Band> = markets
            .iter()
            .map(|&(m, p)| {
                let d = (x * p.unsigned_abs() as f64).floor() as i64;
                // Stay on the price side of zero: linear ticks > 0, inverse ticks < 0.
                let (lo, hi) = if views[m as usize].grid.inverse { (p - d, (p + d).min(-1)) } else { ((p - d).max(1), p + d) };
                (m, lo.min(p), hi.max(p))
            })
            .collect();
        if holds(wallet, legs, views, &out, limit) {
            return Some(out);
        }
        x /= 4.0;
    }
    None
}

/// The rounding allowance of a position in the market of `v`, in cash units.
pub fn allowance(v: &MarketView) -> i128 {
    ALLOWANCE * (v.tiers.tiers().len() as i128 + 1)
}

/// Whether the account stays at or above maintenance, and its sums within `limit`, at every
/// mark inside `bands` (exact integers; see the module note).
pub fn holds(wallet: i128, legs: &[Leg], views: &[MarketView], bands: &[Band], limit: i128) -> bool {
    let (mut worst, mut abs, mut mm, mut n) = (wallet, 0i128, 0i128, 0i128);
    for l in legs {
        let v = &views[l.market as usize];
        let (a, b) = match bands.iter().find(|b| b.0 == l.market) {
            Some(&(_, lo, hi)) => (l.terms(v, Some(lo)), l.terms(v, Some(hi))),
            None => (l.terms(v, v.mark), l.terms(v, v.mark)),
        };
        let f = (a.upnl - a.maintenance).min(b.upnl - b.maintenance) - allowance(v);
        let sums = (
            worst.checked_add(f),
            abs.checked_add(a.upnl.abs().max(b.upnl.abs())),
            mm.checked_add(a.maintenance.max(b.maintenance)),
            n.checked_add(a.notional.max(b.notional)),
        );
        let (Some(w), Some(x), Some(y), Some(z)) = sums else { return false };
        (worst, abs, mm, n) = (w, x, y, z);
        if abs > limit || mm > limit || n > limit {
            return false;
        }
    }
    worst >= 0 && wallet.abs() <= limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_band_keeps_the_account_above_maintenance_and_is_tight_enough() {
        // One long of 10 lots at entry 100 ticks, grid of 1 cash unit per lot·tick, flat 5 %
        // maintenance, wallet 100, mark 100: u = 0, MM = ceil(1000·0.05) = 50, slack 50 less
        // the allowance 8·2 = 16 leaves 34; loss rate 1.05·1000 per unit of relative move
        // gives x = 0.0324, so d = floor(3.24) = 3 ticks: band [97, 103]. At 97: u = −30,
        // MM = ceil(970·0.05) = 49: 100 − 30 − 49 = 21 ≥ 16; at 103: 100 + 30 − 52 = 78.
        let grid = Grid::new(0, 0, 0).unwrap();
        let views = vec![MarketView { grid, tiers: Tiers::flat(50_000), mark: Some(100) }];
        let legs = [Leg { market: 0, qty: 10, entry: 100, side: Side::Long }];
        assert_eq!(bands(100, &legs, &views, 1 << 124), Some(vec![(0, 97, 103)]));
        // At 99 and below the slack left: u = −10, MM = ceil(990·0.05) = 50: 100 − 10 − 50 = 40 ≥ 0.
        // A wallet of 60: slack 10 < the allowance: no band (any move revalues it).
        assert_eq!(bands(60, &legs, &views, 1 << 124), None);
        // No mark: no band needed (the first mark revalues every account of the market).
        let views = vec![MarketView { mark: None, ..views[0].clone() }];
        assert_eq!(bands(100, &legs, &views, 1 << 124), Some(vec![]));
    }

    #[test]
    fn bands_never_admit_a_mark_below_maintenance() {
        // Brute force over small books: at every mark inside the bands, W + Σ(u − MM) ≥ 0,
        // under a flat rate and under tiers (rates rising with the notional, each amount
        // keeping maintenance continuous up to rounding).
        use crate::core::market::tiers::TierSpec;
        let grid = Grid::new(0, 0, 0).unwrap();
        let spec = |floor: f64, rate: f64| TierSpec { floor, rate, amount: None };
        let tiered = Tiers::new(0.0, &[spec(0.0, 0.05), spec(2_000.0, 0.1), spec(5_000.0, 0.25)], &grid).unwrap();
        let mut x = 7u64;
        let mut rnd = |k: u64| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) % k
        };
        for case in 0..600 {
            let tiers = if case % 2 == 0 { Tiers::flat(50_000) } else { tiered.clone() };
            let views: Vec<MarketView> =
                (0..2).map(|_| MarketView { grid, tiers: tiers.clone(), mark: Some(50 + rnd(100) as i64) }).collect();
            let legs: Vec<Leg> = (0..1 + rnd(3))
                .map(|_| Leg {
                    market: rnd(2) as u32,
                    qty: 1 + rnd(50) as i64,
                    entry: 50 + rnd(100) as i64,
                    side: if rnd(2) == 0 { Side::Long } else { Side::Short },
                })
                .collect();
            let wallet = rnd(20_000) as i128;
            let Some(b) = bands(wallet, &legs, &views, 1 << 124) else { continue };
            let range = |m: u32| b.iter().find(|x| x.0 == m).map_or((0, 0), |x| (x.1, x.2));
            let (r0, r1) = (range(0), range(1));
            for p0 in r0.0..=r0.1 {
                for p1 in r1.0..=r1.1 {
                    let total: i128 = wallet
                        + legs
                            .iter()
                            .map(|l| {
                                let t = l.terms(&views[l.market as usize], Some(if l.market == 0 { p0 } else { p1 }));
                                t.upnl - t.maintenance
                            })
                            .sum::<i128>();
                    assert!(total >= 0, "wallet {wallet} legs {legs:?} at ({p0}, {p1}): {total}");
                }
            }
        }
    }
}
