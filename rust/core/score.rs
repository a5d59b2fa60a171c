//! Ranking policies: who is deleveraged first (DOMAIN.md §3). Higher score = earlier.

use crate::core::error::{AdlError, Result};
use crate::core::fixed::Grid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// BitMEX (also Bybit, Poloniex, MEXC): `pnl%·ℓ` for winners, `pnl%/ℓ` for losers.
    Bitmex,
}

impl Policy {
    pub fn parse(name: &str) -> Result<Policy> {
        match name {
            "bitmex" => Ok(Policy::Bitmex),
            other => Err(AdlError::config("policy", format!("unknown policy {other:?}; expected one of: bitmex"))),
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            Policy::Bitmex => "bitmex",
        }
    }

    /// Score of an isolated position at `mark` (all in fixed point), or `None` when it
    /// cannot be chosen (bankrupt: equity <= 0).
    #[inline]
    pub fn score(&self, grid: &Grid, side: i8, qty: i64, entry: i64, margin: i64, mark: i64) -> Option<f64> {
        match self {
            Policy::Bitmex => bitmex_score(grid, side, qty, entry, margin, mark),
        }
    }
}

/// BitMEX: `pnl% = σ(P−E)/E`, `ℓ = N/e`; score `pnl%·ℓ` if `pnl% > 0` else `pnl%/ℓ`.
#[inline]
pub fn bitmex_score(grid: &Grid, side: i8, qty: i64, entry: i64, margin: i64, mark: i64) -> Option<f64> {
    let equity = margin as i128 + side as i128 * grid.value(qty, mark - entry);
    if equity <= 0 {
        return None;
    }
    let pnl_pct = side as f64 * (mark - entry) as f64 / entry as f64;
    let leverage = grid.value(qty, mark) as f64 / equity as f64;
    Some(if pnl_pct > 0.0 { pnl_pct * leverage } else { pnl_pct / leverage })
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

/// Lights from an exact rank: `6 − ⌈5·r/n⌉` (5 = first 20 %).
#[inline]
pub fn lights(rank: u64, n: u64) -> u8 {
    (6 - (5 * rank).div_ceil(n)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmex_hand_computed() {
        let g = Grid::new(0, 0, 0).unwrap();
        // short 10 @ 100, margin 20, mark 96: pnl% = 0.04, u = 40, e = 60, N = 960, ℓ = 16,
        // score = 0.04·16 = 0.64
        let s = bitmex_score(&g, -1, 10, 100, 20, 96).unwrap();
        assert!((s - 0.64).abs() < 1e-12);
        // long 10 @ 100, margin 50, mark 96: pnl% = −0.04, e = 10, ℓ = 96, score = −0.04/96
        let s = bitmex_score(&g, 1, 10, 100, 50, 96).unwrap();
        assert!((s + 0.04 / 96.0).abs() < 1e-15);
        // bankrupt: margin 40, e = 0
        assert_eq!(bitmex_score(&g, 1, 10, 100, 40, 96), None);
    }

    #[test]
    fn desc_key_orders_descending() {
        let xs = [3.5, -1.0, 0.0, -0.0, 1e-300, -1e300, 2.0];
        let mut v: Vec<f64> = xs.to_vec();
        v.sort_by_key(|&x| desc_key(x));
        assert_eq!(v[0], 3.5);
        assert_eq!(v[6], -1e300);
        assert_eq!(desc_key(0.0), desc_key(-0.0));
        for w in v.windows(2) {
            assert!(w[0] >= w[1]);
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
