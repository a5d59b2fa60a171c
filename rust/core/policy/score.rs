//! Ranking policies: who is deleveraged first (docs/model.md §3). Higher score = earlier.

use std::cmp::Ordering;

use crate::core::market::tiers::Tiers;
use crate::core::units::error::{AdlError, Result};
use crate::core::units::fixed::Grid;
use crate::core::units::side::Side;

/// The price ADL fills at (docs/model.md §2–§3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdlPrice {
    /// The bankrupt position's bankruptcy price: it ends at exactly zero (most venues).
    Bankruptcy,
    /// The mark (Hyperliquid): the bankrupt lots' loss beyond their margin is paid by the
    /// fund as far as it can, the rest is bad debt; a surplus goes to the fund.
    Mark,
    /// The mark, but never better for the bankrupt position than its bankruptcy price.
    MarkCapped,
}

impl AdlPrice {
    /// Each ADL price with its name (the one list `parse` and `name` read).
    const NAMES: [(AdlPrice, &'static str); 3] =
        [(AdlPrice::Bankruptcy, "bankruptcy"), (AdlPrice::Mark, "mark"), (AdlPrice::MarkCapped, "mark_capped")];

    pub fn parse(name: &str) -> Result<AdlPrice> {
        match Self::NAMES.iter().find(|p| p.1 == name) {
            Some(p) => Ok(p.0),
            None => Err(AdlError::config("adl_price", format!("{name:?} is not one of: {}", Self::NAMES.map(|p| p.1).join(", ")))),
        }
    }

    pub fn name(self) -> &'static str {
        Self::NAMES.iter().find(|p| p.0 == self).map_or("", |p| p.1)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// BitMEX (also Bybit, Poloniex, MEXC): `pnl%·ℓ` for winners, `pnl%/ℓ` for losers.
    Bitmex,
    /// Binance (also Aevo): `max(0,u)/max(1,W) · MM/(W+u)`; losers score 0 and come last.
    Binance,
    /// No ranking: every eligible opposite position closes its share by size
    /// (the paper's contract pro-rata).
    SizeProRata,
    /// dYdX: no ranking; a seeded walk in account order (see `dydx::DydxWalk`).
    Dydx,
    /// Lots in proportion to unrealised profit (the paper's pro-rata), then by size.
    WealthProRata,
    /// Lots in proportion to leverage × unrealised profit, then by size.
    LeveredProRata,
    /// Every profitable position closes the same fraction η of its size, or its `adl_cap`
    /// when lower; then by size.
    CappedProRata,
    /// The caller's own score column (stateless calls); eligibility as usual (equity > 0).
    Custom,
    /// Most levered profitable positions first: under isolated margin a partial close keeps a
    /// position's leverage, so lowering the maximum leverage is a queue by leverage N/e.
    MinMaxLeverage,
    /// Hyperliquid: profitable positions only, `(P/E)·(N/e)` for longs and `(E/P)·(N/e)` for
    /// shorts (the docs print one form; the inversion for shorts is our reading); fills at mark.
    Hyperliquid,
}

impl Policy {
    pub fn parse(name: &str) -> Result<Policy> {
        match name {
            "bitmex" => Ok(Policy::Bitmex),
            "binance" => Ok(Policy::Binance),
            "size_pro_rata" => Ok(Policy::SizeProRata),
            "hyperliquid" => Ok(Policy::Hyperliquid),
            "dydx" => Ok(Policy::Dydx),
            "wealth_pro_rata" => Ok(Policy::WealthProRata),
            "levered_pro_rata" => Ok(Policy::LeveredProRata),
            "capped_pro_rata" => Ok(Policy::CappedProRata),
            "min_max_leverage" => Ok(Policy::MinMaxLeverage),
            "custom" => Ok(Policy::Custom),
            other => Err(AdlError::config(
                "policy",
                format!(
                    "unknown policy {other:?}; expected one of: bitmex, binance, capped_pro_rata, custom, dydx, hyperliquid, levered_pro_rata, min_max_leverage, size_pro_rata, wealth_pro_rata"
                ),
            )),
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Bitmex => "bitmex",
            Policy::Binance => "binance",
            Policy::SizeProRata => "size_pro_rata",
            Policy::Hyperliquid => "hyperliquid",
            Policy::Dydx => "dydx",
            Policy::WealthProRata => "wealth_pro_rata",
            Policy::LeveredProRata => "levered_pro_rata",
            Policy::CappedProRata => "capped_pro_rata",
            Policy::MinMaxLeverage => "min_max_leverage",
            Policy::Custom => "custom",
        }
    }

    /// How the venue buckets its queue lights: BitMEX by cumulative quantity (its worked
    /// example), every other policy by count.
    pub fn lights(&self) -> Lights {
        match self {
            Policy::Bitmex => Lights::Quantity,
            _ => Lights::Count,
        }
    }

    /// The ADL price the venue uses: the mark for Hyperliquid, else the bankruptcy price.
    pub fn adl_price(&self) -> AdlPrice {
        match self {
            Policy::Hyperliquid => AdlPrice::Mark,
            _ => AdlPrice::Bankruptcy,
        }
    }

    /// Whether the policy orders counterparties by a score (pro-rata policies do not).
    pub fn is_ranked(&self) -> bool {
        !matches!(self, Policy::SizeProRata | Policy::Dydx | Policy::WealthProRata | Policy::LeveredProRata | Policy::CappedProRata)
    }

    /// Score of an isolated position at `mark` (all in fixed point), or `None` when it
    /// cannot be chosen (bankrupt: equity <= 0).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn score(&self, grid: &Grid, tiers: &Tiers, side: Side, qty: i64, entry: i64, margin: i128, mark: i64) -> Option<f64> {
        match self {
            Policy::Bitmex => bitmex_score(grid, side, qty, entry, margin, mark),
            Policy::Binance => binance_score(grid, tiers, side, qty, entry, margin, mark),
            // Everyone eligible (not bankrupt) scores the same: the index orders by account.
            // Custom: the caller substitutes its own score for eligible rows.
            Policy::SizeProRata
            | Policy::Dydx
            | Policy::WealthProRata
            | Policy::LeveredProRata
            | Policy::CappedProRata
            | Policy::Custom => equity_f64(grid, side, qty, entry, margin, mark).map(|_| 0.0),
            Policy::MinMaxLeverage => leverage_terms(grid, side, qty, entry, margin, mark).map(|(n, e)| n as f64 / e as f64),
            Policy::Hyperliquid => {
                hyperliquid_terms(grid, side, qty, entry, margin, mark).map(|(a, b, c, d)| a as f64 * b as f64 / (c as f64 * d as f64))
            }
        }
    }

    /// The same score as an exact fraction, for ordering near-ties exactly; `None` when the
    /// position is not eligible or the exact products exceed 128 bits.
    #[allow(clippy::too_many_arguments)]
    pub fn exact_score(&self, grid: &Grid, tiers: &Tiers, side: Side, qty: i64, entry: i64, margin: i128, mark: i64) -> Option<Fraction> {
        match self {
            Policy::Bitmex => bitmex_exact(grid, side, qty, entry, margin, mark),
            Policy::Binance => binance_exact(grid, tiers, side, qty, entry, margin, mark),
            Policy::SizeProRata | Policy::Dydx | Policy::WealthProRata | Policy::LeveredProRata | Policy::CappedProRata => {
                equity_f64(grid, side, qty, entry, margin, mark).map(|_| Fraction { sign: 0, num: 0, den: 1 })
            }
            // The caller's floats are the scores: ties are exact float ties.
            Policy::Custom => None,
            Policy::MinMaxLeverage => {
                leverage_terms(grid, side, qty, entry, margin, mark).map(|(n, e)| Fraction { sign: 1, num: n as u128, den: e as u128 })
            }
            Policy::Hyperliquid => {
                let (a, b, c, d) = hyperliquid_terms(grid, side, qty, entry, margin, mark)?;
                Some(Fraction { sign: 1, num: (a as u128).checked_mul(b as u128)?, den: (c as u128).checked_mul(d as u128)? })
            }
        }
    }
}

/// A signed fraction `sign · num / den` with `den > 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fraction {
    pub sign: i8,
    pub num: u128,
    pub den: u128,
}

impl Fraction {
    /// Exact comparison (cross-multiplied in 256 bits).
    pub fn cmp_value(&self, other: &Fraction) -> Ordering {
        let (a, b) = (self.sign.signum(), other.sign.signum());
        if a != b || a == 0 {
            return a.cmp(&b);
        }
        let mag = wide_mul(self.num, other.den).cmp(&wide_mul(other.num, self.den));
        if a > 0 {
            mag
        } else {
            mag.reverse()
        }
    }
}

/// The full 256-bit product `a·b` as (high, low) halves.
fn wide_mul(a: u128, b: u128) -> (u128, u128) {
    const MASK: u128 = u64::MAX as u128;
    let (a1, a0, b1, b0) = (a >> 64, a & MASK, b >> 64, b & MASK);
    let (p00, p01, p10, p11) = (a0 * b0, a0 * b1, a1 * b0, a1 * b1);
    let mid = (p00 >> 64) + (p01 & MASK) + (p10 & MASK);
    let lo = (p00 & MASK) | (mid << 64);
    let hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    (hi, lo)
}

/// BitMEX score as a fraction: winners `|P−E|·N / (E·e)`, losers `−|P−E|·e / (E·N)` (an
/// inverse market's `P`, `E` are `y = −1/P` ticks: `|y − y_E|/|y_E| = |1 − E/P|`, BitMEX's
/// inverse PnL %).
fn bitmex_exact(grid: &Grid, side: Side, qty: i64, entry: i64, margin: i128, mark: i64) -> Option<Fraction> {
    let equity = margin + side.sign_i128() * grid.value(qty, mark - entry);
    if equity <= 0 {
        return None;
    }
    let move_ = side.sign_i128() * (mark - entry) as i128;
    let (e, n, d) = (equity as u128, grid.notional(qty, mark) as u128, move_.unsigned_abs());
    let entry = entry.unsigned_abs() as u128;
    let (num, den) = if move_ > 0 { (d.checked_mul(n)?, entry.checked_mul(e)?) } else { (d.checked_mul(e)?, entry.checked_mul(n)?) };
    Some(Fraction { sign: move_.signum() as i8, num, den: den.max(1) })
}

/// Two float scores closer than this (relative) are ordered by their exact fractions: the
/// float evaluation can misorder values a few ulps apart, and equal values must tie exactly
/// so that the account id decides.
const NEAR: f64 = 1e-12;

/// Whether two float scores are close enough that only their exact values can order them.
#[inline]
pub fn near(a: f64, b: f64) -> bool {
    (a - b).abs() <= NEAR * a.abs().max(b.abs())
}

/// A bound below every score that is above `c` or `near` it: `near(s, c)` needs
/// `|s − c| ≤ NEAR·max(|s|, |c|)`, so `s ≥ c − NEAR·|c|/(1 − NEAR) > c − 2·NEAR·|c|` (the
/// margin dwarfs the rounding of this subtraction). A pre-filter; `near` decides.
#[inline]
pub fn near_floor(c: f64) -> f64 {
    c - 2.0 * NEAR * c.abs()
}

/// Queue order of two scores (higher first). Near-ties are settled by `exact` when it can.
#[inline]
pub fn cmp_desc(a: f64, b: f64, exact: impl FnOnce() -> Option<Ordering>) -> Ordering {
    if near(a, b) {
        if let Some(o) = exact() {
            return o.reverse();
        }
    }
    desc_key(a).cmp(&desc_key(b))
}

/// BitMEX: `pnl% = σ(P−E)/E`, `ℓ = N/e`; score `pnl%·ℓ` if `pnl% > 0` else `pnl%/ℓ`.
#[inline(always)]
pub fn bitmex_score(grid: &Grid, side: Side, qty: i64, entry: i64, margin: i128, mark: i64) -> Option<f64> {
    let equity = equity_f64(grid, side, qty, entry, margin, mark)?;
    // pnl%·ℓ = d·N/(E·e) for winners and pnl%/ℓ = d·e/(E·N) otherwise (d = σ(P−E)): one
    // division, and a select instead of a branch on the (unpredictable) sign.
    let d = side.sign_f64() * (mark - entry) as f64;
    let notional = grid.notional_f64(qty, mark);
    let (num, den) = if d > 0.0 { (notional, equity) } else { (equity, notional) };
    Some(d * num / ((entry as f64).abs() * den))
}

/// Binance's terms for an isolated position (wallet W = margin M, in cash units):
/// (u⁺, max(one quote unit, W), MM, e = W + u), or `None` when bankrupt (e <= 0).
fn binance_terms(
    grid: &Grid,
    tiers: &Tiers,
    side: Side,
    qty: i64,
    entry: i64,
    margin: i128,
    mark: i64,
) -> Option<(i128, i128, i128, i128)> {
    let u = side.sign_i128() * grid.value(qty, mark - entry);
    let equity = margin + u;
    if equity <= 0 {
        return None;
    }
    let one = crate::core::units::fixed::pow10i(grid.cash_decimals);
    Some((u.max(0), margin.max(one), tiers.maintenance(grid.notional(qty, mark)), equity))
}

/// Binance: `pnl% = max(0,u)/max(1,W)`, `ratio = MM/(W+u)`, score `pnl%·ratio`.
#[inline]
pub fn binance_score(grid: &Grid, tiers: &Tiers, side: Side, qty: i64, entry: i64, margin: i128, mark: i64) -> Option<f64> {
    let (gain, wallet, mm, equity) = binance_terms(grid, tiers, side, qty, entry, margin, mark)?;
    Some(gain as f64 * mm as f64 / (wallet as f64 * equity as f64))
}

fn binance_exact(grid: &Grid, tiers: &Tiers, side: Side, qty: i64, entry: i64, margin: i128, mark: i64) -> Option<Fraction> {
    let (gain, wallet, mm, equity) = binance_terms(grid, tiers, side, qty, entry, margin, mark)?;
    let num = (gain as u128).checked_mul(mm as u128)?;
    let den = (wallet as u128).checked_mul(equity as u128)?;
    Some(Fraction { sign: (num > 0) as i8, num, den })
}

/// Leverage `N / e` of a profitable position as integers; `None` unless in profit.
fn leverage_terms(grid: &Grid, side: Side, qty: i64, entry: i64, margin: i128, mark: i64) -> Option<(i128, i128)> {
    let u = side.sign_i128() * grid.value(qty, mark - entry);
    (u > 0).then(|| (grid.notional(qty, mark), margin + u))
}

/// Hyperliquid's score `a·b / (c·d)` in integers: longs `P·N / (E·e)`, shorts `E·N / (P·e)`;
/// `None` unless the position is in profit (and so not bankrupt). In an inverse market
/// `P/E = |y_E|/|y|`.
fn hyperliquid_terms(grid: &Grid, side: Side, qty: i64, entry: i64, margin: i128, mark: i64) -> Option<(i128, i128, i128, i128)> {
    let u = side.sign_i128() * grid.value(qty, mark - entry);
    if u <= 0 {
        return None;
    }
    let (equity, notional) = (margin + u, grid.notional(qty, mark));
    if equity <= 0 {
        return None;
    }
    let (p, e) = if grid.inverse { (entry.abs() as i128, mark.abs() as i128) } else { (mark as i128, entry as i128) };
    Some(if side == Side::Long { (p, notional, e, equity) } else { (e, notional, p, equity) })
}

/// Isolated equity `M + σ·q·(P − E)` as f64, or `None` when it is <= 0 (decided exactly:
/// in i64 when nothing overflows, else in i128).
#[inline]
pub fn equity_f64(grid: &Grid, side: Side, qty: i64, entry: i64, margin: i128, mark: i64) -> Option<f64> {
    let fast = qty
        .checked_mul(mark - entry)
        .and_then(|v| v.checked_mul(grid.factor as i64))
        .and_then(|v| v.checked_mul(side.sign_i64()))
        .and_then(|v| i64::try_from(margin).ok()?.checked_add(v));
    match fast {
        Some(e) if e > 0 => Some(e as f64),
        Some(_) => None,
        None => {
            let e = margin + side.sign_i128() * grid.value(qty, mark - entry);
            (e > 0).then_some(e as f64)
        }
    }
}

/// Total order key for a score: larger score first. Maps an f64 to a u64 whose ascending
/// order is the score's descending order (scores are finite; -0.0 equals 0.0).
#[inline]
pub fn desc_key(score: f64) -> u64 {
    let s = if score == 0.0 { 0.0 } else { score };
    let bits = s.to_bits();
    let asc = if bits >> 63 == 1 { !bits } else { bits | (1 << 63) };
    !asc
}

/// The score a `desc_key` came from (0.0 for either zero).
#[inline]
pub fn key_score(key: u64) -> f64 {
    let asc = !key;
    f64::from_bits(if asc >> 63 == 1 { asc & !(1 << 63) } else { !asc })
}

/// Lights from an exact rank: `6 − ⌈5·r/n⌉` (5 = first 20 %).
#[inline]
pub fn lights(rank: u64, n: u64) -> u8 {
    (6 - (5 * rank).div_ceil(n)) as u8
}

/// `lights` and `lights_by_quantity` without a division, for `0 < part <= whole <= u64::MAX / 5`:
/// `⌈5·part/whole⌉ = 1 + #{j ∈ 1..=4 : j·whole < 5·part}`, so `6 − ⌈…⌉` is 5 minus four comparisons.
#[inline(always)]
pub fn lights_le(part: u64, whole: u64) -> u8 {
    let p5 = 5 * part;
    5 - ((whole < p5) as u8 + (2 * whole < p5) as u8 + (3 * whole < p5) as u8 + (4 * whole < p5) as u8)
}

/// Lights from a cumulative quantity: `6 − ⌈5·cum/total⌉` for `0 < cum <= total`, exactly.
#[inline]
pub fn lights_by_quantity(cum: i128, total: i128) -> u8 {
    (6 - (5 * cum + total - 1) / total) as u8
}

/// How a queue's percentile and lights are computed (docs/model.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lights {
    /// By count: percentile `r/n` of the rank `r` among `n` queued positions.
    Count,
    /// By cumulative quantity (BitMEX's worked example): percentile = lots of the queue up to
    /// and including this position / lots of the whole queue; positions with exactly equal
    /// scores share the percentile at the end of their tie group.
    Quantity,
}

impl Lights {
    pub fn parse(name: &str) -> Result<Lights> {
        match name {
            "count" => Ok(Lights::Count),
            "quantity" => Ok(Lights::Quantity),
            other => Err(AdlError::config("lights", format!("{other:?} is not one of: count, quantity"))),
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Lights::Count => "count",
            Lights::Quantity => "quantity",
        }
    }
}

/// Percentile and lights of each position of one queue, in queue order: `lots[i]` is what
/// the `i`-th holds and `tie(i)` says whether it has exactly the score of the `(i+1)`-th.
pub fn queue_lights(method: Lights, lots: &[i64], tie: impl Fn(usize) -> bool) -> Vec<(f64, u8)> {
    let n = lots.len();
    match method {
        Lights::Count => (1..=n as u64).map(|r| (r as f64 / n as f64, lights(r, n as u64))).collect(),
        Lights::Quantity => {
            let total: i128 = lots.iter().map(|&l| l as i128).sum();
            let mut out = Vec::with_capacity(n);
            let (mut start, mut cum) = (0, 0i128);
            for (i, &held) in lots.iter().enumerate() {
                cum += held as i128;
                if i + 1 == n || !tie(i) {
                    let v = (cum as f64 / total as f64, lights_by_quantity(cum, total));
                    out.extend(std::iter::repeat_n(v, i + 1 - start));
                    start = i + 1;
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_floor_is_below_every_near_score() {
        // Scores a few ulps to NEAR·|c| on either side of c, and c itself: every one `near` c
        // is at or above near_floor(c); one 3·NEAR below is not near and may be below.
        for c in [0.64f64, -0.64, 1e-9, -1e-9, 3.0e5, -7.5e-3, 1.0] {
            for k in [-1.2e-12f64, -1e-12, -0.99e-12, -1e-15, 0.0, 1e-15, 1e-12] {
                let s = c + k * c.abs();
                if near(s, c) {
                    assert!(s >= near_floor(c), "{s} near {c} but below {}", near_floor(c));
                }
            }
            assert!(!near(c - 3e-12 * c.abs(), c));
            assert!(near_floor(c) < c);
        }
        assert_eq!(near_floor(0.0), 0.0); // only 0 is near 0
    }

    #[test]
    fn bitmex_hand_computed() {
        let g = Grid::new(0, 0, 0).unwrap();
        // short 10 @ 100, margin 20, mark 96: pnl% = 0.04, u = 40, e = 60, N = 960, ℓ = 16,
        // score = 0.04·16 = 0.64
        let s = bitmex_score(&g, Side::Short, 10, 100, 20, 96).unwrap();
        assert!((s - 0.64).abs() < 1e-12);
        // long 10 @ 100, margin 50, mark 96: pnl% = −0.04, e = 10, ℓ = 96, score = −0.04/96
        let s = bitmex_score(&g, Side::Long, 10, 100, 50, 96).unwrap();
        assert!((s + 0.04 / 96.0).abs() < 1e-15);
        // bankrupt: margin 40, e = 0
        assert_eq!(bitmex_score(&g, Side::Long, 10, 100, 40, 96), None);
    }

    #[test]
    fn exact_ties_are_ties() {
        // Mark 100. Short 1 @80 m21: pnl% = −1/4, e = 1, ℓ = 100: −1/400.
        // Short 1 @96 m10: pnl% = −1/24, e = 6, ℓ = 100/6: −1/400. Floats differ by an ulp.
        let g = Grid::new(0, 0, 0).unwrap();
        let a = Policy::Bitmex.exact_score(&g, &Tiers::flat(5_000), Side::Short, 1, 80, 21, 100).unwrap();
        let b = Policy::Bitmex.exact_score(&g, &Tiers::flat(5_000), Side::Short, 1, 96, 10, 100).unwrap();
        assert_eq!(a.cmp_value(&b), Ordering::Equal);
        let (fa, fb) = (bitmex_score(&g, Side::Short, 1, 80, 21, 100).unwrap(), bitmex_score(&g, Side::Short, 1, 96, 10, 100).unwrap());
        assert_eq!(cmp_desc(fa, fb, || Some(a.cmp_value(&b))), Ordering::Equal);
        // A winner beats both; a bigger loss ranks after.
        let w = Policy::Bitmex.exact_score(&g, &Tiers::flat(5_000), Side::Long, 1, 80, 21, 100).unwrap();
        assert_eq!(w.cmp_value(&a), Ordering::Greater);
        let worse = Policy::Bitmex.exact_score(&g, &Tiers::flat(5_000), Side::Short, 1, 80, 30, 100).unwrap(); // e = 10: −1/40
        assert_eq!(worse.cmp_value(&a), Ordering::Less);
    }

    #[test]
    fn binance_hand_computed() {
        // Whole units, cash in cents (one quote unit = 100). Mark 96, mmr 0.5 %.
        // Short 10 @100, margin 20: u = 40, W = 20, e = 60, MM = 0.005·960 = 4.80.
        // pnl% = 40/20 = 2, ratio = 4.8/60 = 0.08, score 0.16.
        let g = Grid::new(0, 0, 2).unwrap();
        let s = Policy::Binance.score(&g, &Tiers::flat(5_000), Side::Short, 10, 100, 2_000, 96).unwrap();
        assert!((s - 0.16).abs() < 1e-12, "{s}");
        // Margin 0.50 < one quote unit: pnl% = 40/max(1, 0.5) = 40, e = 40.50: score 40·4.8/40.5.
        let s = Policy::Binance.score(&g, &Tiers::flat(5_000), Side::Short, 10, 100, 50, 96).unwrap();
        assert!((s - 40.0 * 4.8 / 40.5).abs() < 1e-12, "{s}");
        // A loser scores 0; a bankrupt position is not eligible.
        assert_eq!(Policy::Binance.score(&g, &Tiers::flat(5_000), Side::Long, 10, 100, 5_000, 96), Some(0.0));
        assert_eq!(Policy::Binance.score(&g, &Tiers::flat(5_000), Side::Long, 10, 100, 4_100, 96), Some(0.0));
        assert_eq!(Policy::Binance.score(&g, &Tiers::flat(5_000), Side::Long, 10, 100, 3_000, 96), None);
        let zero = Policy::Binance.exact_score(&g, &Tiers::flat(5_000), Side::Long, 10, 100, 4_100, 96).unwrap();
        assert_eq!(zero.sign, 0);
    }

    #[test]
    fn wide_mul_is_exact() {
        assert_eq!(wide_mul(u128::MAX, u128::MAX), (u128::MAX - 1, 1));
        assert_eq!(wide_mul(1 << 64, 1 << 64), (1, 0));
        assert_eq!(wide_mul(3, 5), (0, 15));
    }

    #[test]
    fn desc_key_orders_descending() {
        let xs = [3.5, -1.0, 0.0, -0.0, 1e-300, -1e300, 2.0];
        let mut v: Vec<f64> = xs.to_vec();
        v.sort_by_key(|&x| desc_key(x));
        assert_eq!(v[0], 3.5);
        assert_eq!(v[6], -1e300);
        assert_eq!(desc_key(0.0), desc_key(-0.0));
        for x in xs {
            assert_eq!(key_score(desc_key(x)), if x == 0.0 { 0.0 } else { x });
        }
        for w in v.windows(2) {
            assert!(w[0] >= w[1]);
        }
    }

    #[test]
    fn lights_by_quantity_hand_computed() {
        // Six longs holding 10, 20, 30, 10, 10, 20 (total 100) in queue order: cumulative
        // 10, 30, 60, 70, 80, 100 → 6 − ⌈5·cum/100⌉ = 6 − ⌈0.5, 1.5, 3, 3.5, 4, 5⌉ = 5,4,3,2,2,1.
        let lots = [10, 20, 30, 10, 10, 20];
        let q: Vec<u8> = queue_lights(Lights::Quantity, &lots, |_| false).iter().map(|x| x.1).collect();
        assert_eq!(q, vec![5, 4, 3, 2, 2, 1]);
        // By count: 6 − ⌈5·r/6⌉ = 6 − ⌈0.83, 1.67, 2.5, 3.33, 4.17, 5⌉ = 5,4,3,2,1,1.
        let c: Vec<u8> = queue_lights(Lights::Count, &lots, |_| false).iter().map(|x| x.1).collect();
        assert_eq!(c, vec![5, 4, 3, 2, 1, 1]);
        // The 2nd and 3rd tie: both take the end of their group, cum 60 → 3 (percentile 0.6).
        let t = queue_lights(Lights::Quantity, &lots, |i| i == 1);
        assert_eq!(t.iter().map(|x| x.1).collect::<Vec<_>>(), vec![5, 3, 3, 2, 2, 1]);
        assert_eq!((t[1].0, t[2].0), (0.6, 0.6));
        // Boundaries are exact: cum 20 of 100 is 6 − 1 = 5, 21 of 100 is 4.
        assert_eq!((lights_by_quantity(20, 100), lights_by_quantity(21, 100)), (5, 4));
        assert_eq!((Policy::Bitmex.lights(), Policy::Binance.lights()), (Lights::Quantity, Lights::Count));
    }

    #[test]
    fn lights_without_division_match_the_quotient() {
        // Every (part, whole) with whole <= 60, then both ends of the u64 range it accepts.
        for whole in 1..=60u64 {
            for part in 1..=whole {
                assert_eq!(lights_le(part, whole), lights(part, whole), "{part}/{whole}");
            }
        }
        let max = u64::MAX / 5;
        for (part, whole) in [(1, max), (max / 5, max), (max / 5 + 1, max), (max - 1, max), (max, max), (1, 1)] {
            assert_eq!(lights_le(part, whole), lights_by_quantity(part as i128, whole as i128), "{part}/{whole}");
        }
    }

    #[test]
    fn lights_by_quintile() {
        assert_eq!(lights(1, 5), 5);
        assert_eq!(lights(5, 5), 1);
        assert_eq!(lights(2, 10), 5);
        assert_eq!(lights(3, 10), 4);
        assert_eq!(lights(1, 1), 1);
    }
}
