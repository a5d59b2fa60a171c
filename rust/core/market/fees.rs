//! Liquidation and ADL fees (docs/model.md §7). Rates are in ppm; every fee is rounded up (in
//! the favour of the fund or the venue, like every other rounding) and never exceeds what
//! the payer has.

use crate::core::units::fixed::{maintenance, Grid, RATE_SCALE};
use crate::core::units::side::Side;

/// `ceil(amount·rate)` for `amount >= 0`; 0 for a negative amount.
#[inline]
pub fn fee_on(amount: i128, rate_ppm: i64) -> i128 {
    if amount <= 0 || rate_ppm == 0 {
        0
    } else {
        maintenance(amount, rate_ppm)
    }
}

/// The fee reserved out of an isolated margin when the fee is part of the bankruptcy price
/// (`FeeConvention::Bankruptcy`): the fee to close `qty` lots at the price where margin less
/// fee is exactly lost, `r·N_bk = r·(N_E − πσM)/(1 − πσr)` with `π` the grid's price sign
/// (+1 linear: `N = q·P`; −1 inverse: `N = −q·y`), rounded up and capped at the margin.
/// Linear, `E − σ(M − fee)/q` is then long `(q·E − M)/(q·(1 − r))`, short `(q·E + M)/(q·(1 + r))`.
pub fn reserved_fee(grid: &Grid, side: Side, qty: i64, entry: i64, margin: i128, rate_ppm: i64) -> i128 {
    if margin <= 0 {
        return 0;
    }
    close_fee(grid, side, qty, entry, margin, rate_ppm).min(margin)
}

/// The estimated fee to close at the bankruptcy price, `ceil(r·N_bk)` with
/// `N_bk = max(0, N_E − πσM)/(1 − πσr)`, not capped at the margin: the part of maintenance
/// that the fee-at-bankruptcy convention (Bybit) adds, so a position is liquidatable no later
/// than it is bankrupt (`reserved_fee <= close_fee`).
pub fn close_fee(grid: &Grid, side: Side, qty: i64, entry: i64, margin: i128, rate_ppm: i64) -> i128 {
    let ps = grid.price_sign() * side.sign_i128();
    let num = grid.notional(qty, entry) - ps * margin;
    if rate_ppm == 0 || num <= 0 {
        return 0;
    }
    let den = RATE_SCALE as i128 - ps * rate_ppm as i128;
    let r = rate_ppm as i128;
    // ceil(num·r/den) without forming num·r when it would not fit.
    match num.checked_mul(r) {
        Some(x) => -((-x).div_euclid(den)),
        None => (num as f64 * r as f64 / den as f64).ceil() as i128,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fee_rounds_up() {
        assert_eq!(fee_on(1_001, 500), 1); // 0.05 % of 1,001 = 0.5005 → 1
        assert_eq!(fee_on(0, 500), 0);
        assert_eq!(fee_on(-5, 500), 0);
        assert_eq!(fee_on(1_000_000, 0), 0);
    }

    #[test]
    fn reserved_fee_by_hand() {
        let g = Grid::new(0, 0, 0).unwrap();
        // Long 10 @ 100, margin 100, fee 1 %: P_bk = (1,000 − 100)/(10·0.99) = 90.909…, the fee
        // r·q·P_bk = 9.0909… → 10.
        assert_eq!(reserved_fee(&g, Side::Long, 10, 100, 100, 10_000), 10);
        // Short 10 @ 100, margin 100: P_bk = 1,100/(10·1.01) = 108.91, fee 10.891 → 11.
        assert_eq!(reserved_fee(&g, Side::Short, 10, 100, 100, 10_000), 11);
        // No fee rate, or margin that already covers the whole notional: nothing reserved.
        assert_eq!(reserved_fee(&g, Side::Long, 10, 100, 100, 0), 0);
        assert_eq!(reserved_fee(&g, Side::Long, 10, 100, 1_000, 10_000), 0);
    }
}
