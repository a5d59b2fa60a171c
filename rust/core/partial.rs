//! Partial liquidation (DOMAIN.md §7): venues first close only part of a position, enough to
//! bring it back to maintenance (usually by dropping it to a lower risk-limit tier), and
//! close it whole only when no part will do. The closed lots' PnL at the fill price and
//! the liquidation fee are charged to the position's own margin, which it keeps (a cross
//! position's: its account's wallet; the search then runs on the position with its
//! liquidation margin, `CrossBook::liquidation_margin`, so that "equity >= maintenance" is
//! the account's `TNC >= TMMR`).

use crate::core::fees::fee_on;
use crate::core::fixed::Grid;
use crate::core::position::Position;
use crate::core::tiers::Tiers;

/// The fewest lots `k` (`1 <= k < q`) whose close at `fill` leaves a position at or above
/// maintenance at `mark` (with a margin `>= 0` if `keep_margin`), and the margin after it;
/// `None` when only a full close will do.
pub fn partial_close(
    p: &Position,
    grid: &Grid,
    tiers: &Tiers,
    fee_ppm: i64,
    mark: i64,
    fill: i64,
    keep_margin: bool,
) -> Option<(i64, i64)> {
    let q = p.qty;
    if q < 2 {
        return None;
    }
    let s = p.side as i128;
    let margin_after = |k: i64| p.margin as i128 + s * grid.value(k, fill - p.entry) - fee_on(grid.notional(k, fill), fee_ppm);
    // min(equity − maintenance, margin) of what is left after closing k lots.
    let slack = |k: i64| {
        let (rest, margin) = (q - k, margin_after(k));
        let excess = margin + s * grid.value(rest, mark - p.entry) - tiers.maintenance(grid.notional(rest, mark));
        if keep_margin {
            excess.min(margin)
        } else {
            excess
        }
    };
    // Maintenance is convex in the notional (rates never fall), so `slack` is concave in k:
    // it rises to a peak and then falls (each lot closed saves its maintenance and costs its
    // fee and slippage). Find the peak, then the first k before it with slack >= 0.
    let (mut lo, mut hi) = (1, q - 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if slack(mid + 1) >= slack(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if slack(lo) < 0 {
        return None;
    }
    let (mut first, mut last) = (1, lo);
    while first < last {
        let mid = first + (last - first) / 2;
        if slack(mid) >= 0 {
            last = mid;
        } else {
            first = mid + 1;
        }
    }
    Some((first, i64::try_from(margin_after(first)).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::position::{LONG, NO_INDEX};

    fn long(qty: i64, entry: i64, margin: i64) -> Position {
        Position { account: 1, qty, entry, margin, market: 0, member_pos: 0, index_pos: NO_INDEX, side: LONG, cap_bp: 10_000, cross: false }
    }

    #[test]
    fn closes_the_fewest_lots() {
        let g = Grid::new(0, 0, 0).unwrap();
        // Long 100 @ 100, margin 600, mark 95: e = 600 − 500 = 100, MM at 5 % = 475.
        // Closing k at 95 keeps e = 100 and needs 0.05·95·(100 − k) <= 100: k >= 78.95 → 79
        // (MM of 21 lots = ceil(99.75) = 100). Margin left 600 − 5·79 = 205.
        let t = Tiers::flat(50_000);
        assert_eq!(partial_close(&long(100, 100, 600), &g, &t, 0, 95, 95, true), Some((79, 205)));
        // With a 1 % fee on the closed notional each lot closed costs 0.95 and saves 4.75 of
        // maintenance: 100 − ceil(0.95k) >= ceil(4.75(100 − k)) first at k = 99 (fee 95 leaves
        // equity 5 = MM of the last lot; at 98 the fee 94 leaves 6 < 10). Margin left
        // 600 − 5·99 − 95 = 10. The brute force over every k agrees.
        let p = long(100, 100, 600);
        let got = partial_close(&p, &g, &t, 10_000, 95, 95, true).unwrap();
        let brute = (1..100)
            .find(|&k| {
                let m = 600 - 5 * k as i128 - fee_on(95 * k as i128, 10_000);
                let rest = 100 - k;
                m >= 0 && m - 5 * rest as i128 >= t.maintenance(95 * rest as i128)
            })
            .unwrap();
        assert_eq!(got, (99, 10));
        assert_eq!(got.0, brute);
        // Bankrupt (e <= 0): no partial close helps.
        assert_eq!(partial_close(&long(100, 100, 400), &g, &t, 0, 95, 95, true), None);
        // One lot: nothing to keep.
        assert_eq!(partial_close(&long(1, 100, 6), &g, &t, 0, 95, 95, true), None);
    }

    #[test]
    fn a_lower_tier_is_enough() {
        use crate::core::tiers::TierSpec;
        let g = Grid::new(0, 0, 0).unwrap();
        // 1 % up to 5,000 notional, 10 % above (amount 450 keeps MM continuous).
        let spec = [TierSpec { floor: 0.0, rate: 0.01, amount: None }, TierSpec { floor: 5_000.0, rate: 0.10, amount: None }];
        let t = Tiers::new(0.0, &spec, &Grid::cash_only(0).unwrap()).unwrap();
        // Long 100 @ 100, margin 600, mark 98: e = 400, N = 9,800, MM = 980 − 450 = 530 > 400.
        // Closing 8 leaves N = 9,016, MM 451.6 → 452 > 400; closing 11 leaves 8,722: MM 423 > 400;
        // 14 leaves 8,428: MM 393 <= 400. So k = 14 (13 leaves 8,526: MM 403 > 400).
        assert_eq!(partial_close(&long(100, 100, 600), &g, &t, 0, 98, 98, true), Some((14, 600 - 2 * 14)));
    }
}
