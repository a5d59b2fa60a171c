//! Stateless calls on columns: rank every row, or deleverage one quantity against a side.
//! Each validates every row inside the same pass that scores it.

use crate::core::error::{AdlError, Result};
use crate::core::fixed::Grid;
use crate::core::input::{parse_price, parse_row, PositionColumns};
use crate::core::position::{side_slot, Side};
use crate::core::score::{desc_key, lights, Policy};

/// Per-market parameters for a stateless call, indexed by market code.
pub struct MarketTable<'a> {
    pub grids: &'a [Grid],
    /// Mark per market code, as a float price.
    pub marks: &'a [f64],
    pub names: &'a [String],
}

impl MarketTable<'_> {
    fn mark_ticks(&self) -> Result<Vec<i64>> {
        self.grids
            .iter()
            .zip(self.marks)
            .zip(self.names)
            .map(|((g, &m), name)| crate::core::input::parse_mark(g, name, m))
            .collect()
    }
}

/// Output of `rank`, one value per input row. `rank == 0` means "not eligible" (and then
/// `score`/`percentile` are NaN and `lights` is 0).
#[derive(Debug, Default, PartialEq)]
pub struct Ranked {
    pub score: Vec<f64>,
    pub rank: Vec<u32>,
    pub percentile: Vec<f64>,
    pub lights: Vec<u8>,
}

/// Sort key of a candidate: (score descending, account, row).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    score: u64,
    account: u64,
    row: u32,
}

/// Validates and scores every row; calls `keep(row, side, market, key, lots)` for each
/// eligible one and returns the scores (NaN when not eligible).
fn score_rows(
    cols: &PositionColumns<'_>,
    markets: &MarketTable<'_>,
    policy: Policy,
    mut keep: impl FnMut(usize, Side, u32, Key, i64),
) -> Result<Vec<f64>> {
    cols.check_shape(markets.grids.len())?;
    if markets.marks.len() != markets.grids.len() || markets.names.len() != markets.grids.len() {
        return Err(AdlError::config("mark", "one mark per market is required"));
    }
    let marks = markets.mark_ticks()?;
    let mut scores = vec![f64::NAN; cols.len()];
    for row in 0..cols.len() {
        let code = cols.market[row];
        let g = &markets.grids[code as usize];
        let r = parse_row(g, row, cols.side[row], cols.qty[row], cols.entry[row], cols.margin[row])?;
        if let Some(score) = policy.score(g, r.side, r.lots, r.entry, r.margin, marks[code as usize]) {
            scores[row] = score;
            let key = Key { score: desc_key(score), account: cols.account[row], row: row as u32 };
            keep(row, r.side, code, key, r.lots);
        }
    }
    Ok(scores)
}

/// Ranks every row within its (market, side): exact rank, percentile `r/n` and lights.
/// Ties: ascending account, then row order.
pub fn rank(cols: &PositionColumns<'_>, markets: &MarketTable<'_>, policy: Policy) -> Result<Ranked> {
    if cols.len() > u32::MAX as usize {
        return Err(AdlError::config("positions", "at most 2^32 - 1 rows"));
    }
    let mut groups: Vec<Vec<Key>> = vec![Vec::new(); markets.grids.len() * 2];
    let score = score_rows(cols, markets, policy, |_, side, code, key, _| {
        groups[code as usize * 2 + side_slot(side)].push(key);
    })?;
    let n = cols.len();
    let mut out = Ranked { score, rank: vec![0; n], percentile: vec![f64::NAN; n], lights: vec![0; n] };
    for mut group in groups {
        group.sort_unstable();
        let total = group.len() as u64;
        for (i, key) in group.iter().enumerate() {
            let r = i as u64 + 1;
            let row = key.row as usize;
            out.rank[row] = r as u32;
            out.percentile[row] = r as f64 / total as f64;
            out.lights[row] = lights(r, total);
        }
    }
    Ok(out)
}

/// One ADL fill of the stateless `deleverage`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatelessFill {
    pub row: u32,
    pub lots: i64,
    pub rank: u32,
    pub score: f64,
}

/// Closes `qty` of a bankrupt `side` position in market `market` against the opposite side,
/// in queue order (whole positions, partial last). Σ lots = qty in lots exactly.
/// Only the queue's prefix that is needed gets sorted (expected O(n + k log k)).
pub fn deleverage(
    cols: &PositionColumns<'_>,
    markets: &MarketTable<'_>,
    policy: Policy,
    market: u32,
    side: Side,
    qty: f64,
    price: f64,
) -> Result<Vec<StatelessFill>> {
    if side != 1 && side != -1 {
        return Err(AdlError::config("side", format!("{side} is not a side (expected long/short)")));
    }
    if market as usize >= markets.grids.len() {
        return Err(AdlError::config("symbol", format!("market code {market} out of range")));
    }
    let g = &markets.grids[market as usize];
    let want = match g.lots(qty) {
        Some(l) if l > 0 => l,
        _ => return Err(AdlError::config("qty", format!("{qty} must be > 0 (at least one lot) and finite"))),
    };
    parse_price(g, "price", 0, price).map_err(|_| AdlError::config("price", format!("{price} must be a finite price > 0")))?;
    let mut cands: Vec<(Key, i64)> = Vec::new();
    let mut available: i128 = 0;
    let scores = score_rows(cols, markets, policy, |_, s, code, key, lots| {
        if code == market && s == -side {
            cands.push((key, lots));
            available += lots as i128;
        }
    })?;
    if available < want as i128 {
        let (req, avail) = (g.qty_f64(want), g.qty_f64(available as i64));
        return Err(AdlError::InsufficientLiquidity { requested: req, available: avail, missing: req - avail });
    }
    // Grow the selected prefix until it holds enough lots, then sort just that prefix.
    let mut k = 64.min(cands.len());
    loop {
        if k < cands.len() {
            cands.select_nth_unstable_by_key(k - 1, |c| c.0);
        }
        let held: i128 = cands[..k].iter().map(|c| c.1 as i128).sum();
        if held >= want as i128 || k == cands.len() {
            break;
        }
        k = (k * 4).min(cands.len());
    }
    let prefix = &mut cands[..k];
    prefix.sort_unstable_by_key(|c| c.0);
    let mut fills = Vec::new();
    let mut left = want;
    for (i, (key, lots)) in prefix.iter().enumerate() {
        if left == 0 {
            break;
        }
        let take = left.min(*lots);
        fills.push(StatelessFill { row: key.row, lots: take, rank: i as u32 + 1, score: scores[key.row as usize] });
        left -= take;
    }
    Ok(fills)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_hand_computed() {
        // One market, grid 1/1/1 (lots and ticks are units). Mark 96.
        // row0 short 10 @100 margin 20: score 0.64 (see score.rs)
        // row1 short 10 @100 margin 60: e = 100, ℓ = 9.6, score 0.384
        // row2 short 10 @ 90 margin 10: pnl% = −6/90, e = 10−60 < 0: bankrupt, no rank
        // row3 long 1 @ 90 margin 5: pnl% = 6/90, e = 11, ℓ = 96/11, score = 0.5818
        let g = [Grid::new(0, 0, 0).unwrap()];
        let names = ["X".to_string()];
        let t = MarketTable { grids: &g, marks: &[96.0], names: &names };
        let cols = PositionColumns {
            account: &[1, 2, 3, 4],
            market: &[0, 0, 0, 0],
            side: &[-1, -1, -1, 1],
            qty: &[10.0, 10.0, 10.0, 1.0],
            entry: &[100.0, 100.0, 90.0, 90.0],
            margin: &[20.0, 60.0, 10.0, 5.0],
        };
        let r = rank(&cols, &t, Policy::Bitmex).unwrap();
        assert_eq!(r.rank, vec![1, 2, 0, 1]);
        // lights = 6 − ⌈5·r/n⌉: shorts n = 2 → 3 and 1; the lone long → 1.
        assert_eq!(r.lights, vec![3, 1, 0, 1]);
        assert_eq!(r.percentile[1], 1.0);
        assert!(r.score[2].is_nan());
    }

    #[test]
    fn deleverage_partial_last_and_shortfall() {
        let g = [Grid::new(0, 0, 0).unwrap()];
        let names = ["X".to_string()];
        let t = MarketTable { grids: &g, marks: &[96.0], names: &names };
        let cols = PositionColumns {
            account: &[1, 2, 3, 4],
            market: &[0, 0, 0, 0],
            side: &[-1, -1, -1, 1],
            qty: &[10.0, 10.0, 10.0, 1.0],
            entry: &[100.0, 100.0, 90.0, 90.0],
            margin: &[20.0, 60.0, 10.0, 5.0],
        };
        // A bankrupt long of 15: row0 (rank 1) closes 10, row1 closes 5; row2 is bankrupt.
        let f = deleverage(&cols, &t, Policy::Bitmex, 0, 1, 15.0, 95.0).unwrap();
        let got: Vec<(u32, i64, u32)> = f.iter().map(|x| (x.row, x.lots, x.rank)).collect();
        assert_eq!(got, vec![(0, 10, 1), (1, 5, 2)]);
        // Only 20 lots are eligible.
        match deleverage(&cols, &t, Policy::Bitmex, 0, 1, 25.0, 95.0) {
            Err(AdlError::InsufficientLiquidity { missing, .. }) => assert_eq!(missing, 5.0),
            other => panic!("{other:?}"),
        }
    }
}
