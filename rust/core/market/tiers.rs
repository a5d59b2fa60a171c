//! Maintenance margin by risk-limit tier (Binance's "leverage brackets"): a position whose
//! notional `N` lies in tier `k` (`floor_k <= N < floor_k+1`) needs
//! `MM = ceil(N·rate_k) − amount_k`, where `amount_k` (Binance's "maintenance amount",
//! `cum`) makes `MM` continuous at every floor. A flat rate is one tier from 0.

use crate::core::units::error::{AdlError, Result};
use crate::core::units::fixed::{maintenance, Grid, RATE_SCALE};
use crate::core::units::side::Side;

/// A tier as the user gives it, in quote units.
#[derive(Clone, Debug, PartialEq)]
pub struct TierSpec {
    /// Lowest notional of the tier (the first tier's is 0).
    pub floor: f64,
    /// Maintenance-margin rate of the tier, e.g. 0.005.
    pub rate: f64,
    /// Maintenance amount; `None` computes the one that keeps `MM` continuous.
    pub amount: Option<f64>,
}

/// One tier in the engine's units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tier {
    /// Notional floor in cash units.
    pub floor: i128,
    pub rate_ppm: i64,
    /// Maintenance amount in cash units.
    pub amount: i128,
}

/// The tiers of a market, floors increasing from 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tiers(Vec<Tier>);

/// A rate in ppm, rounded to the nearest ppm; `field` names it in the error.
pub fn rate_ppm(field: &str, rate: f64) -> Result<i64> {
    // Checked after rounding: 0.9999996 would round to 1,000,000 ppm, a 100 % rate.
    let ppm = (rate * RATE_SCALE as f64).round();
    if !rate.is_finite() || rate < 0.0 || ppm >= RATE_SCALE as f64 {
        return Err(AdlError::config(field, format!("{rate} must be in [0, 1) (below 0.9999995 in ppm)")));
    }
    Ok(ppm as i64)
}

impl Tiers {
    /// One tier: `MM = ceil(N·rate)`.
    pub fn flat(rate_ppm: i64) -> Tiers {
        Tiers(vec![Tier { floor: 0, rate_ppm, amount: 0 }])
    }

    /// Tiers from the user's table (empty: a flat `rate`). Checked: the first floor is 0,
    /// floors increase, rates do not decrease (so `MM` is convex and every liquidation
    /// price is unique), and `MM` never falls at a floor.
    pub fn new(rate: f64, specs: &[TierSpec], cash: &Grid) -> Result<Tiers> {
        let flat = rate_ppm("maintenance_rate", rate)?;
        if specs.is_empty() {
            return Ok(Tiers::flat(flat));
        }
        let bad = |k: usize, msg: String| AdlError::config("tiers", format!("tier {k}: {msg}"));
        let mut tiers: Vec<Tier> = Vec::with_capacity(specs.len());
        for (k, s) in specs.iter().enumerate() {
            let floor =
                cash.cash(s.floor).filter(|&f| f >= 0).ok_or_else(|| bad(k, format!("floor {} is not a notional >= 0", s.floor)))?;
            let rate_ppm = rate_ppm("tiers", s.rate).map_err(|_| bad(k, format!("rate {} must be in [0, 1)", s.rate)))?;
            let continuous = match tiers.last() {
                None => 0,
                Some(prev) => prev.amount + maintenance(floor, rate_ppm) - maintenance(floor, prev.rate_ppm),
            };
            let amount = match s.amount {
                None => continuous,
                Some(a) => cash.cash(a).filter(|&a| a >= 0).ok_or_else(|| bad(k, format!("amount {a} is not an amount >= 0")))?,
            };
            match tiers.last() {
                None if floor != 0 || amount != 0 => return Err(bad(0, "the first tier starts at notional 0 with amount 0".into())),
                Some(prev) if floor <= prev.floor => return Err(bad(k, "floors must increase".into())),
                Some(prev) if rate_ppm < prev.rate_ppm => return Err(bad(k, "rates must not decrease".into())),
                // Within one cash unit of continuous (published amounts are rounded): a fall
                // would make maintenance non-monotone, a jump up non-convex (liquidation
                // prices would not be unique, nor the fewest lots of a partial close).
                Some(_) if (amount - continuous).abs() > 1 => {
                    return Err(bad(
                        k,
                        format!(
                            "amount {} breaks the continuity of maintenance at the floor (expected {})",
                            s.amount.unwrap_or(0.0),
                            cash.cash_f64(continuous)
                        ),
                    ))
                }
                _ => {}
            }
            tiers.push(Tier { floor, rate_ppm, amount });
        }
        Ok(Tiers(tiers))
    }

    pub fn tiers(&self) -> &[Tier] {
        &self.0
    }

    /// The tier holding `notional`.
    #[inline]
    pub fn tier(&self, notional: i128) -> &Tier {
        let k = self.0.partition_point(|t| t.floor <= notional);
        &self.0[k.saturating_sub(1)]
    }

    /// Maintenance margin of a notional, in cash units (never negative).
    #[inline]
    pub fn maintenance(&self, notional: i128) -> i128 {
        // A flat rate (the common case, on every score and health check): no search.
        if let [only] = self.0.as_slice() {
            return maintenance(notional, only.rate_ppm);
        }
        let t = self.tier(notional);
        (maintenance(notional, t.rate_ppm) - t.amount).max(0)
    }

    /// The rate of the first tier (the flat rate when there is one tier).
    pub fn base_rate_ppm(&self) -> i64 {
        self.0[0].rate_ppm
    }

    /// Liquidation price in ticks (equity = maintenance) of an isolated position with margin
    /// `margin` (cash units): in tier `(r, c)`, `M + σ·q·f·(P − E) = r·π·q·f·P − c` with `π`
    /// the grid's price sign (notional `π·q·f·P`), so `P = (σ·q·f·E − M − c) / (q·f·(σ − π·r))`;
    /// the tier is the one whose notional range holds the notional at `P`.
    pub fn liquidation_ticks(&self, grid: &Grid, side: Side, qty: i64, entry: i64, margin: f64) -> f64 {
        let s = side.sign_f64();
        let pi = grid.price_sign() as f64;
        let qf = qty as f64 * grid.factor as f64;
        let solve = |t: &Tier| {
            let r = t.rate_ppm as f64 / RATE_SCALE as f64;
            (s * qf * entry as f64 - margin - t.amount as f64) / (qf * (s - pi * r))
        };
        let n = self.0.len();
        for (k, t) in self.0.iter().enumerate() {
            let p = grid.clamp_price(solve(t));
            let notional = pi * qf * p;
            let below_next = k + 1 == n || notional < self.0[k + 1].floor as f64;
            if notional >= t.floor as f64 && below_next {
                return p;
            }
        }
        // Only float rounding at a floor gets here: that floor's price solves both tiers.
        grid.clamp_price(solve(self.tier((pi * qf * grid.clamp_price(solve(&self.0[0]))) as i128)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cash() -> Grid {
        Grid::cash_only(0).unwrap()
    }

    /// Binance BTCUSDT brackets (first three): 0–50k at 0.4 %, 50k–500k at 0.5 % (amount
    /// 50), 500k–... at 1 % (amount 2,550).
    fn binance() -> Tiers {
        let spec = [
            TierSpec { floor: 0.0, rate: 0.004, amount: None },
            TierSpec { floor: 50_000.0, rate: 0.005, amount: Some(50.0) },
            TierSpec { floor: 500_000.0, rate: 0.01, amount: None },
        ];
        Tiers::new(0.0, &spec, &cash()).unwrap()
    }

    #[test]
    fn binance_amounts_and_maintenance() {
        let t = binance();
        // The computed amount is Binance's: 50 + 500,000·(1 % − 0.5 %) = 2,550.
        assert_eq!(t.tiers()[2].amount, 2_550);
        assert_eq!(t.maintenance(40_000), 160); // 0.4 %
        assert_eq!(t.maintenance(50_000), 200); // 250 − 50: continuous with 0.4 %·50k
        assert_eq!(t.maintenance(100_000), 450); // 500 − 50
        assert_eq!(t.maintenance(600_000), 3_450); // 6,000 − 2,550
    }

    #[test]
    fn liquidation_price_picks_the_tier() {
        let t = binance();
        let g = Grid::new(0, 0, 0).unwrap();
        // Long 2 @ 50,000 (N = 100k, tier 2), margin 5,000: P = (100,000 − 5,000 − 50)/(2·0.995)
        // = 47,713.57, notional 95,427 stays in tier 2.
        let p = t.liquidation_ticks(&g, Side::Long, 2, 50_000, 5_000.0);
        assert!((p - 94_950.0 / 1.99).abs() < 1e-6, "{p}");
        // Short 1 @ 40,000, margin 4,000, tier 1: P = (40,000 + 4,000)/(1.004) = 43,824.7.
        let p = t.liquidation_ticks(&g, Side::Short, 1, 40_000, 4_000.0);
        assert!((p - 44_000.0 / 1.004).abs() < 1e-6, "{p}");
    }

    #[test]
    fn bad_tables_are_refused() {
        let c = cash();
        let t = |v: Vec<(f64, f64, Option<f64>)>| {
            let s: Vec<TierSpec> = v.into_iter().map(|(floor, rate, amount)| TierSpec { floor, rate, amount }).collect();
            Tiers::new(0.0, &s, &c)
        };
        assert!(t(vec![(10.0, 0.01, None)]).is_err()); // does not start at 0
        assert!(t(vec![(0.0, 0.01, None), (0.0, 0.02, None)]).is_err()); // floors not increasing
        assert!(t(vec![(0.0, 0.02, None), (100.0, 0.01, None)]).is_err()); // rate falls
        assert!(t(vec![(0.0, 0.01, None), (100.0, 0.02, Some(5.0))]).is_err()); // MM drops 2 → −3
        assert!(t(vec![(0.0, f64::NAN, None)]).is_err());
        assert!(t(vec![(0.0, 0.01, None), (1_000.0, 0.02, Some(0.0))]).is_err()); // MM jumps 10 → 20
        assert!(t(vec![(0.0, 0.9999996, None)]).is_err()); // rounds to 100 %
        assert!(rate_ppm("x", 0.9999994).is_ok());
        assert!(t(vec![(0.0, 0.01, None), (100.0, 0.02, Some(0.5))]).is_ok());
    }
}
