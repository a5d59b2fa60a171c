//! Fixed-point grids: quantities in whole lots, prices in ticks, cash in cash units.
//!
//! A market has `qty_decimals` (lot = 10^-qd of the base asset) and `price_decimals`
//! (tick = 10^-pd quote). The engine has one `cash_decimals` (cash unit = 10^-cd quote)
//! with `cd >= qd + pd`, so `lots * ticks * 10^(cd-qd-pd)` is an exact cash amount:
//! every PnL and margin transfer is an integer and nothing needs rounding except
//! margin splits (see `split_floor`).

use crate::core::units::error::{AdlError, Result};

/// Largest quantity (lots) or price (ticks) accepted: 1e15 keeps `lots * ticks * factor`
/// (factor <= 1e8) below `i128::MAX` (1.7e38).
pub const MAX_GRID: i64 = 1_000_000_000_000_000;
/// Largest cash amount (cash units) accepted on input for balances and the fund.
pub const MAX_CASH: i128 = 1_000_000_000_000_000_000_000_000; // 1e24
/// Largest magnitude of any ledger amount the engine holds (account cash, fund pools, bad
/// debt, book value, fees): 10^30 cash units, what snapshots accept. A call that would take
/// one beyond is refused, so every state the engine reaches can be saved and restored.
pub const LEDGER_LIMIT: i128 = MAX_CASH * 1_000_000;

/// `x + y` as a ledger amount (`x` one, `y` a change of it): within `±LEDGER_LIMIT`, else
/// refused with an overflow error naming `what`. The one check every ledger change goes
/// through; callers write the sum it returns.
pub fn ledger(x: i128, y: i128, what: &str) -> Result<i128> {
    x.checked_add(y).filter(|v| v.abs() <= LEDGER_LIMIT).ok_or_else(|| AdlError::overflow(what))
}
/// Largest isolated margin (cash units): the ledgers' range (10^30; 10^12 quote at
/// `cash_decimals=18`). Margins are stored in i128; a call that would leave one beyond
/// (a partial close at a profit) is refused.
pub const MAX_MARGIN: i128 = LEDGER_LIMIT;
/// The largest f64 not above `MAX_MARGIN` (10^30 is not a double; the nearest one is above it):
/// a margin input `x·10^cd` is accepted up to here, so its rounded integer fits `MAX_MARGIN`.
pub const MAX_MARGIN_F64: f64 = 9.999_999_999_999_999e29;
/// Maintenance rates are held in parts per million.
pub const RATE_SCALE: i64 = 1_000_000;
/// Largest value factor 10^(cd-qd-pd) allowed.
pub const MAX_FACTOR_DECIMALS: u32 = 8;

/// 10^n as f64 for n <= 30 (exact for n <= 22; larger values are correctly rounded).
pub fn pow10f(n: u32) -> f64 {
    10f64.powi(n as i32)
}

/// 10^n as i128.
pub fn pow10i(n: u32) -> i128 {
    10i128.pow(n)
}

/// An integral `v` (within i128) as i128. Through i64 when it fits: x86-64 has no direct
/// f64 → i128 instruction, and the software routine costs more than validating the row.
#[inline(always)]
pub fn integral_to_i128(v: f64) -> i128 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if v.abs() < TWO_63 {
        v as i64 as i128
    } else {
        v as i128
    }
}

/// Rounds `x * scale` to the nearest integer, ties to even.
/// `None` for NaN, infinities and values beyond `limit`.
#[inline]
pub fn round_to_grid(x: f64, scale: f64, limit: f64) -> Option<f64> {
    let r = round_half_even(x * scale);
    // NaN fails the comparison; infinities exceed the limit.
    (r.abs() <= limit).then_some(r)
}

/// Nearest integer, ties to even, without branches on the value (rounding is the hot part
/// of input validation; data-dependent branches and a libm call cost several times more).
/// Adding and subtracting 1.5·2^52 leaves exactly the rounded value for |v| < 2^51; at
/// and beyond 2^52 every double is an integer already.
#[inline]
fn round_half_even(v: f64) -> f64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52
    const TWO_51: f64 = 2_251_799_813_685_248.0;
    if v.abs() < TWO_51 {
        (v + MAGIC) - MAGIC
    } else if v.abs() < 2.0 * TWO_51 {
        // 2^51 <= |v| < 2^52: at most a half left; rare, so a branch is fine.
        let t = v.trunc();
        if (v - t).abs() == 0.5 && (t / 2.0).fract() != 0.0 {
            t + v.signum()
        } else {
            t
        }
    } else {
        v
    }
}

/// The grid of one market inside an engine.
///
/// An *inverse* market (BitMEX's XBTUSD: a contract is `multiplier` quote units, worth
/// `q·multiplier/P` of the base coin, in which margin and PnL settle) holds prices as ticks of
/// `y = −1/P` on a grid of `10^-price_decimals`. `y` rises with `P`, so a long still gains
/// `σ·q·(y − y_E)` and every linear formula (PnL, bankruptcy and liquidation prices, queue
/// order, the waterfall) holds unchanged; only notionals are `|q·y|` and the conversion of
/// prices at the boundary differs. Valuation in `y` ticks is exact, so conservation stays
/// exact; the one rounding is of each price to the `y` grid, as linear prices round to ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    pub qty_decimals: u32,
    pub price_decimals: u32,
    pub cash_decimals: u32,
    pub inverse: bool,
    /// Cash units per (lot * tick): 10^(cd - qd - pd).
    pub factor: i128,
    /// 10^qd, 10^pd, 10^cd as floats (precomputed: the conversions run per row).
    pub qty_scale: f64,
    pub price_scale: f64,
    pub cash_scale: f64,
}

impl Grid {
    pub fn new(qty_decimals: u32, price_decimals: u32, cash_decimals: u32) -> Result<Grid> {
        Grid::with_multiplier(qty_decimals, price_decimals, cash_decimals, 1.0)
    }

    /// An inverse market's grid (see the type's doc): `price_decimals` are those of `1/P`.
    pub fn inverse(qty_decimals: u32, price_decimals: u32, cash_decimals: u32, multiplier: f64) -> Result<Grid> {
        Ok(Grid { inverse: true, ..Grid::with_multiplier(qty_decimals, price_decimals, cash_decimals, multiplier)? })
    }

    /// A grid whose contract is `multiplier` units of the base asset (a linear contract:
    /// value `q·multiplier·P`). The multiplier must be `m·10^-md` with a whole `m` and
    /// `md <= 8`, and `lot·tick·multiplier` an exact cash amount of at most 10^8 units.
    pub fn with_multiplier(qty_decimals: u32, price_decimals: u32, cash_decimals: u32, multiplier: f64) -> Result<Grid> {
        if cash_decimals > 18 || qty_decimals > 18 || price_decimals > 18 {
            return Err(AdlError::config("decimals", "each of qty/price/cash decimals must be <= 18"));
        }
        let (m, md) = decimal_parts(multiplier).ok_or_else(|| {
            AdlError::config("multiplier", format!("{multiplier} must be > 0 with at most {MAX_FACTOR_DECIMALS} decimals"))
        })?;
        let sum = qty_decimals + price_decimals + md;
        let factor = match cash_decimals.checked_sub(sum) {
            Some(d) if d <= MAX_FACTOR_DECIMALS => m.checked_mul(pow10i(d)).filter(|&f| f <= pow10i(MAX_FACTOR_DECIMALS)),
            _ => None,
        };
        let Some(factor) = factor else {
            return Err(AdlError::config(
                "cash_decimals",
                format!(
                    "cash_decimals ({cash_decimals}) must lie in [qty_decimals + price_decimals + multiplier decimals, +{MAX_FACTOR_DECIMALS}] = [{sum}, {}], and lot*tick*multiplier be at most 10^{MAX_FACTOR_DECIMALS} cash units, so that it is an exact cash amount",
                    sum + MAX_FACTOR_DECIMALS
                ),
            ));
        };
        Ok(Grid {
            qty_decimals,
            price_decimals,
            cash_decimals,
            inverse: false,
            factor,
            qty_scale: pow10f(qty_decimals),
            price_scale: pow10f(price_decimals),
            cash_scale: pow10f(cash_decimals),
        })
    }

    /// A grid for engine-wide cash amounts only (its lots and ticks are never valued, so
    /// the factor limit of market grids does not apply).
    pub fn cash_only(cash_decimals: u32) -> Result<Grid> {
        if cash_decimals > 18 {
            return Err(AdlError::config("cash_decimals", "must be <= 18"));
        }
        Ok(Grid { factor: pow10i(cash_decimals), cash_decimals, cash_scale: pow10f(cash_decimals), ..Grid::new(0, 0, 0)? })
    }

    /// Quantity in lots; `None` when not finite or beyond range.
    pub fn lots(&self, qty: f64) -> Option<i64> {
        round_to_grid(qty, self.qty_scale, MAX_GRID as f64).map(|v| v as i64)
    }
    /// Price in ticks (of `−1/P` in an inverse market); `None` when not finite or beyond
    /// range. A price that is no price (<= 0, or too large for an inverse grid) gives ticks
    /// that `is_price` rejects.
    pub fn ticks(&self, price: f64) -> Option<i64> {
        if !self.inverse {
            return round_to_grid(price, self.price_scale, MAX_GRID as f64).map(|v| v as i64);
        }
        if price.is_nan() {
            return None;
        }
        if price <= 0.0 {
            return Some(0);
        }
        round_to_grid(-1.0 / price, self.price_scale, MAX_GRID as f64).map(|v| v as i64)
    }
    /// Whether `ticks` (from `ticks(price)`) stand for `price` within 1 bp. Always on a linear
    /// grid; on an inverse grid a coarse `price_decimals` moves prices (41,000 at 6 decimals
    /// is −24 ticks of 1e-6, i.e. 41,666.67), which must be refused, not silently used.
    #[inline]
    pub fn resolves(&self, price: f64, ticks: i64) -> bool {
        !self.inverse || ticks == 0 || ((-self.price_scale / ticks as f64) - price).abs() <= 1e-4 * price
    }

    /// The least `price_decimals` that resolves `price` on an inverse grid within 1 bp: the
    /// rounding moves `1/P` by at most half a tick, `0.5·P/10^pd <= 1e-4`.
    pub fn inverse_decimals_for(price: f64) -> u32 {
        (5_000.0 * price).log10().ceil().max(0.0) as u32
    }

    /// `ticks` before rounding: `P·10^pd` (linear), `−10^pd/P` (inverse).
    #[inline]
    pub fn ticks_f64(&self, price: f64) -> f64 {
        if self.inverse {
            -self.price_scale / price
        } else {
            price * self.price_scale
        }
    }
    /// The signed value of `lots` at a price, in the settlement currency: `q·m·P` (linear),
    /// `−q·m/P` (inverse). Its differences are PnL; its magnitude is the notional.
    #[inline]
    pub fn value_at_f64(&self, lots: i64, price: f64) -> f64 {
        lots as f64 * self.ticks_f64(price) * self.factor as f64 / self.cash_scale
    }
    /// Whether ticks stand for a price: > 0 (linear), < 0 (inverse).
    #[inline]
    pub fn is_price(&self, ticks: i64) -> bool {
        if self.inverse {
            ticks < 0
        } else {
            ticks > 0
        }
    }
    /// A price-space bound in ticks clamped to the prices there are (a liquidation price
    /// below 0, or beyond an infinite price in an inverse market).
    #[inline]
    pub fn clamp_price(&self, ticks: f64) -> f64 {
        if self.inverse {
            ticks.min(0.0)
        } else {
            ticks.max(0.0)
        }
    }
    /// Cash in cash units; `None` when not finite or beyond range.
    pub fn cash(&self, amount: f64) -> Option<i128> {
        round_to_grid(amount, self.cash_scale, MAX_CASH as f64).map(integral_to_i128)
    }
    /// An isolated margin in cash units; `None` when not finite or beyond `MAX_MARGIN`.
    pub fn margin(&self, amount: f64) -> Option<i128> {
        round_to_grid(amount, self.cash_scale, MAX_MARGIN_F64).map(integral_to_i128)
    }

    /// Exact cash value of `lots * ticks`.
    #[inline]
    pub fn value(&self, lots: i64, ticks: i64) -> i128 {
        lots as i128 * ticks as i128 * self.factor
    }

    /// Notional `|q·P|` (linear) or `|q·y| = q/P` (inverse) in cash units.
    #[inline]
    pub fn notional(&self, lots: i64, ticks: i64) -> i128 {
        self.value(lots, ticks).abs()
    }
    /// +1 linear, −1 inverse: the sign of `value(q, P)` for a price.
    #[inline]
    pub fn price_sign(&self) -> i128 {
        if self.inverse {
            -1
        } else {
            1
        }
    }

    /// `value` as f64, through i64 when the product fits (the common case: i128 to f64 is a
    /// slow software conversion).
    #[inline]
    pub fn value_f64(&self, lots: i64, ticks: i64) -> f64 {
        match lots.checked_mul(ticks).and_then(|v| v.checked_mul(self.factor as i64)) {
            Some(v) => v as f64,
            None => self.value(lots, ticks) as f64,
        }
    }

    /// `notional` as f64.
    #[inline]
    pub fn notional_f64(&self, lots: i64, ticks: i64) -> f64 {
        self.value_f64(lots, ticks).abs()
    }

    pub fn qty_f64(&self, lots: i64) -> f64 {
        lots as f64 / self.qty_scale
    }
    /// The price that `ticks` (possibly fractional) stand for; an inverse market's ticks
    /// at or above 0 are an infinite price.
    pub fn price_f64(&self, ticks: f64) -> f64 {
        if !self.inverse {
            ticks / self.price_scale
        } else if ticks >= 0.0 {
            f64::INFINITY
        } else {
            -self.price_scale / ticks
        }
    }
    pub fn cash_f64(&self, units: i128) -> f64 {
        units as f64 / self.cash_scale
    }
}

/// `x = m·10^-d` with whole `m > 0` and the fewest decimals `d <= 8`; `None` if there is none.
fn decimal_parts(x: f64) -> Option<(i128, u32)> {
    if !(x.is_finite() && x > 0.0 && x <= 1e12) {
        return None;
    }
    (0..=MAX_FACTOR_DECIMALS).find_map(|d| {
        let scaled = x * pow10f(d);
        let m = scaled.round();
        ((scaled - m).abs() <= 1e-9 * scaled.max(1.0) && m >= 1.0).then_some((m as i128, d))
    })
}

/// Cash-to-float conversion for engine-wide amounts.
pub fn cash_to_f64(units: i128, cash_decimals: u32) -> f64 {
    units as f64 / pow10f(cash_decimals)
}

/// `floor(a * b / c)` for `a, b >= 0, c > 0` without overflowing the product when it fits i128.
#[inline]
pub fn mul_div_floor(a: i128, b: i128, c: i128) -> i128 {
    debug_assert!(c > 0);
    (a * b).div_euclid(c)
}

/// `ceil(a * b / c)` for `c > 0`.
#[inline]
pub fn mul_div_ceil(a: i128, b: i128, c: i128) -> i128 {
    debug_assert!(c > 0);
    -((-(a * b)).div_euclid(c))
}

/// The maintenance margin `ceil(notional * rate_ppm / 1e6)` without forming `notional * rate`
/// (which could exceed i128 for the largest notionals).
#[inline]
pub fn maintenance(notional: i128, rate_ppm: i64) -> i128 {
    // The same formula in u64 for notionals below 2^63 (every real one): i128 division is a
    // library call, several times slower, and cross totals compute this for every position
    // whose mark moved. `q·rate < 2^63/10^6·10^6` and `r·rate < 10^12` both fit.
    if (0..1i128 << 63).contains(&notional) && (0..RATE_SCALE).contains(&rate_ppm) {
        let (n, rate, scale) = (notional as u64, rate_ppm as u64, RATE_SCALE as u64);
        return ((n / scale) * rate + (n % scale * rate).div_ceil(scale)) as i128;
    }
    let scale = RATE_SCALE as i128;
    let (q, r) = (notional / scale, notional % scale);
    q * rate_ppm as i128 + mul_div_ceil(r, rate_ppm as i128, scale)
}

/// The share of `total` that belongs to `part` of `whole`, rounded down. Splitting a margin
/// this way step by step (part of what is left) hands the last part exactly what remains,
/// so the pieces always add up to the total.
/// Exact for any i128 total (a cross margin share can be near 2^125): when `total·part` passes
/// i128, `total = q·whole + r` with `0 <= r < whole` gives `q·part + floor(r·part/whole)`, each
/// term within range (`|q·part| < |total|`, `r·part < whole²`).
#[inline]
pub fn split_floor(total: i128, part: i64, whole: i64) -> i128 {
    if part >= whole {
        return total;
    }
    let (p, w) = (part as i128, whole as i128);
    match total.checked_mul(p) {
        Some(x) => x.div_euclid(w),
        None => total.div_euclid(w) * p + (total.rem_euclid(w) * p).div_euclid(w),
    }
}

/// Like `split_floor` but rounded up (used where rounding up favours the fund).
#[inline]
pub fn split_ceil(total: i128, part: i64, whole: i64) -> i128 {
    if part >= whole {
        return total;
    }
    let (p, w) = (part as i128, whole as i128);
    match total.checked_mul(p) {
        Some(x) => -((-x).div_euclid(w)),
        None => total.div_euclid(w) * p + (total.rem_euclid(w) * p + w - 1).div_euclid(w),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_sum_beyond_the_limit_or_i128_is_refused() {
        assert_eq!(ledger(LEDGER_LIMIT - 5, 5, "x").unwrap(), LEDGER_LIMIT);
        assert_eq!(ledger(-LEDGER_LIMIT + 5, -5, "x").unwrap(), -LEDGER_LIMIT);
        assert!(matches!(ledger(LEDGER_LIMIT, 1, "fees"), Err(AdlError::Overflow { ref context }) if context == "fees"));
        assert!(ledger(-LEDGER_LIMIT, -1, "x").is_err());
        assert!(ledger(i128::MAX, 1, "x").is_err()); // beyond i128: refused, no panic
    }

    #[test]
    fn the_margin_bound_is_the_last_double_within_the_ledger_range() {
        // 1e30 as a double is 10^30 + 19,884,624,838,656: above the bound. The one below it,
        // 10^30 − 120,852,863,516,672, is the last accepted.
        assert_eq!(MAX_MARGIN_F64 as i128, 1_000_000_000_000_000_000_000_000_000_000 - 120_852_863_516_672);
        assert!(MAX_MARGIN_F64.next_up() as i128 > MAX_MARGIN);
        let g = Grid::new(4, 6, 18).unwrap();
        assert_eq!(g.margin(999_999_999_999.999_9), Some(MAX_MARGIN_F64 as i128));
        assert_eq!(g.margin(1e12), None);
        // 10^9 quote is 10^27 units; as a double product 10^27 + 13,287,555,072 (10^27 is not a double).
        assert_eq!(g.margin(1e9), Some(1_000_000_000_000_000_013_287_555_072));
        assert_eq!(g.margin(1e3), Some(1_000_000_000_000_000_000_000));
    }

    #[test]
    fn splits_of_totals_whose_product_passes_i128() {
        // total = 2^125 + 7, part 3, whole 10^15 − 1: total·part passes i128 (2^127).
        let (t, p, w) = ((1i128 << 125) + 7, 3i64, 999_999_999_999_999i64);
        let exact = ethnum::I256::from(t) * ethnum::I256::from(p);
        let w256 = ethnum::I256::from(w);
        let floor = exact.div_euclid(w256);
        assert_eq!(ethnum::I256::from(split_floor(t, p, w)), floor);
        assert_eq!(ethnum::I256::from(split_ceil(t, p, w)), floor + 1); // not a multiple of w
        let neg = (-exact).div_euclid(w256);
        assert_eq!(ethnum::I256::from(split_floor(-t, p, w)), neg);
        assert_eq!(ethnum::I256::from(split_ceil(-t, p, w)), neg + 1);
        // Small totals take the direct path: 10·3/4 = 7.5.
        assert_eq!((split_floor(10, 3, 4), split_ceil(10, 3, 4), split_floor(-10, 3, 4), split_ceil(-10, 3, 4)), (7, 8, -8, -7));
    }

    #[test]
    fn rounds_to_nearest_not_truncates() {
        let g = Grid::new(4, 4, 8).unwrap();
        assert_eq!(g.lots(0.12346), Some(1235)); // 1234.6 rounds up
        assert_eq!(g.lots(0.29999999), Some(3000)); // truncation would give 2999
        assert_eq!(g.ticks(96.0), Some(960_000));
        assert_eq!(g.lots(f64::NAN), None);
        assert_eq!(g.lots(1e12), None); // 1e16 lots > MAX_GRID
    }

    #[test]
    fn rounding_is_to_nearest_ties_to_even() {
        let cases = [
            (0.5, 0.0),
            (1.5, 2.0),
            (2.5, 2.0),
            (2.4999999, 2.0),
            (-0.5, -0.0),
            (-1.5, -2.0),
            (-2.6, -3.0),
            (1e15 + 0.5, 1e15),
            (2251799813685249.5, 2251799813685250.0),
            (3e15 + 0.5, 3e15),
            (1e300, 1e300),
        ];
        for (v, want) in cases {
            assert_eq!(round_half_even(v), want, "{v}");
        }
        assert_eq!(round_to_grid(f64::NAN, 1.0, 10.0), None);
        assert_eq!(round_to_grid(f64::INFINITY, 1.0, 10.0), None);
        assert_eq!(round_to_grid(10.4, 1.0, 10.0), Some(10.0));
        assert_eq!(round_to_grid(10.5, 1.0, 10.0), Some(10.0));
        assert_eq!(round_to_grid(10.6, 1.0, 10.0), None);
    }

    #[test]
    fn value_is_exact_cash() {
        // 2 lots of 0.0001 at 96.5 quote = 0.0193 quote = 1_930_000 units of 1e-8.
        let g = Grid::new(4, 4, 8).unwrap();
        assert_eq!(g.value(2, 965_000), 1_930_000);
        // 2 lots of 0.01 at 96.50 = 1.93 quote = 193_000_000 units (factor 1e4).
        let g2 = Grid::new(2, 2, 8).unwrap();
        assert_eq!(g2.value(2, 9_650), 193_000_000);
    }

    #[test]
    fn multiplier_scales_the_value() {
        // 3 contracts of 0.001 BTC at 60,000.0 = 180 quote = 18,000,000 units of 1e-5 (qd 0, pd 1).
        let g = Grid::with_multiplier(0, 1, 5, 0.001).unwrap();
        assert_eq!(g.factor, 10); // lot·tick·multiplier = 0.1·0.001 = 1e-4 quote = 10 units
        assert_eq!(g.value(3, 600_000), 18_000_000);
        // A multiplier of 100 (an index contract): 2 lots at 50.00 = 10,000 quote.
        let g = Grid::with_multiplier(0, 2, 2, 100.0).unwrap();
        assert_eq!(g.value(2, 5_000), 1_000_000);
        assert!(Grid::with_multiplier(0, 1, 3, 0.001).is_err()); // 0.0001 quote is not a cash amount
        assert!(Grid::with_multiplier(0, 0, 0, 0.0).is_err());
        assert!(Grid::with_multiplier(0, 0, 8, 1e-9).is_err());
        assert!(Grid::with_multiplier(0, 0, 0, 1e9).is_err()); // factor above 10^8
    }

    #[test]
    fn grid_rejects_inexact_cash() {
        assert!(Grid::new(6, 6, 8).is_err());
        assert!(Grid::new(0, 0, 9).is_err()); // factor 1e9 > 1e8
    }

    #[test]
    fn maintenance_rounds_up_without_overflow() {
        // 0.5 % of 1001 units = 5.005 -> 6
        assert_eq!(maintenance(1001, 5_000), 6);
        assert_eq!(maintenance(1000, 5_000), 5);
        let big = 100_000_000_000_000_000_000_000_000_000_000_000i128; // 1e35
        assert_eq!(maintenance(big, 5_000), big / 200);
    }

    #[test]
    fn maintenance_u64_path_equals_the_i128_formula() {
        let wide = |n: i128, r: i64| (n / 1_000_000) * r as i128 + mul_div_ceil(n % 1_000_000, r as i128, 1_000_000);
        // Around the u64 path's edge (2^63) and the rounding boundaries of a 10^6 block.
        let edge = 1i128 << 63;
        for n in [0, 1, 999_999, 1_000_000, 1_000_001, 123_456_789_012, edge - 1_000_001, edge - 1, edge, edge + 1] {
            for r in [0, 1, 5_000, 999_999] {
                assert_eq!(maintenance(n, r), wide(n, r), "n = {n}, rate = {r} ppm");
            }
        }
        // 2^63 − 1 at 999,999 ppm: 9,223,372,036,854,775,807 − 9,223,372,036,854.775807
        // = 9,223,362,813,482,738,952.22…, rounded up.
        assert_eq!(maintenance(edge - 1, 999_999), 9_223_362_813_482_738_953);
    }

    #[test]
    fn splits_telescope() {
        // Splitting 10 units over 3 lots one lot at a time gives 3, 3, 4.
        let (mut left, mut lots) = (10i128, 3i64);
        let mut parts = vec![];
        while lots > 0 {
            let p = split_floor(left, 1, lots);
            parts.push(p);
            left -= p;
            lots -= 1;
        }
        assert_eq!(parts, vec![3, 3, 4]);
        assert_eq!(split_ceil(10, 1, 3), 4);
    }
}
