//! `deleverage`: the fills of one ADL event on plain columns, by the policy's kernel: a
//! streaming top-k of the queue, the size fallback, or the unranked splits and the dYdX walk.

use std::collections::BinaryHeap;

use crate::core::book::input::{parse_price, PositionColumns};
use crate::core::book::position::Side;
use crate::core::engine::stateless::{in_chunks, Context, Key, MarketTable};
use crate::core::policy::dydx::{distinct_accounts, start_of, walk_from, DydxWalk};
use crate::core::policy::kernel;
use crate::core::policy::prorata::{pro_rata_shares, weighted_then_size, Holding};
use crate::core::policy::ranking::sort_queue;
use crate::core::policy::score::{near, near_floor, Policy};
use crate::core::units::error::{AdlError, Result};
use crate::core::units::fixed::Grid;

/// One ADL fill of the stateless `deleverage`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatelessFill {
    pub row: u32,
    pub lots: i64,
    pub rank: u32,
    pub score: f64,
}

/// The best candidates seen so far that are needed to cover `want` lots, in float-score
/// order: a max-heap on the key (its top is the worst kept), trimmed whenever the others
/// already cover `want`. Candidates within a near-tie of the worst kept are never dropped,
/// so the exact order (see `cmp_desc`) can be settled among them at the end.
struct TopQueue {
    heap: BinaryHeap<(Key, i64, u64, bool)>,
    held: i128,
    want: i128,
    available: i128,
}

impl TopQueue {
    fn new(want: i64) -> TopQueue {
        TopQueue { heap: BinaryHeap::new(), held: 0, want: want as i128, available: 0 }
    }

    #[inline]
    fn offer(&mut self, key: Key, lots: i64, score: f64, pays: bool) {
        self.available += lots as i128;
        if self.held >= self.want {
            if let Some(top) = self.heap.peek() {
                if key >= top.0 && !near(score, f64::from_bits(top.2)) {
                    return;
                }
            }
        }
        self.heap.push((key, lots, score.to_bits(), pays));
        self.held += lots as i128;
        self.trim();
    }

    /// Drops the worst candidates while the rest still covers `want`. A near-tie cluster at
    /// the bottom goes only as a whole (its exact order is settled later).
    fn trim(&mut self) {
        while let Some(&top) = self.heap.peek() {
            if self.held - (top.1 as i128) < self.want {
                return;
            }
            self.heap.pop();
            match self.heap.peek() {
                Some(next) if near(f64::from_bits(next.2), f64::from_bits(top.2)) => {
                    self.heap.push(top);
                    self.trim_cluster();
                    return;
                }
                _ => self.held -= top.1 as i128,
            }
        }
    }

    /// The rare case: the worst candidates are near-tied. Drop them all or keep them all.
    #[cold]
    fn trim_cluster(&mut self) {
        let worst = f64::from_bits(self.heap.peek().expect("non-empty").2);
        let mut cluster = Vec::new();
        let mut lots = 0i128;
        while let Some(&c) = self.heap.peek() {
            if !near(f64::from_bits(c.2), worst) {
                break;
            }
            lots += c.1 as i128;
            cluster.push(c);
            self.heap.pop();
        }
        if self.held - lots >= self.want {
            self.held -= lots;
            self.trim();
        } else {
            self.heap.extend(cluster);
        }
    }
}

/// Candidates for ADL fills: (queue key, lots, score bits, whether the row can pay at the
/// ADL price). The last is decided while the row is at hand, so the fills read no column.
type Candidates = Vec<(Key, i64, u64, bool)>;

/// Sorts candidates by key and drops those after the prefix that covers `want` lots,
/// keeping any near-tie of the last needed one (their exact order is settled later).
fn keep_covering_prefix(cands: &mut Candidates, want: i64) {
    cands.sort_unstable_by_key(|c| c.0);
    let mut held = 0i128;
    if let Some(last) = cands.iter().position(|c| {
        held += c.1 as i128;
        held >= want as i128
    }) {
        let edge = f64::from_bits(cands[last].2);
        let end = cands[last + 1..].iter().position(|c| !near(f64::from_bits(c.2), edge)).map_or(cands.len(), |p| last + 1 + p);
        cands.truncate(end);
    }
}

/// Closes `qty` of a bankrupt `side` position in market `market` against the opposite side,
/// in queue order (whole positions, partial last). Σ lots = qty in lots exactly.
/// One streaming pass keeps only the candidates that can be needed, so the cost is
/// O(n + k log k) for k fills, with no sort of the whole side.
#[allow(clippy::too_many_arguments)]
pub fn deleverage(
    cols: &PositionColumns<'_>,
    markets: &MarketTable<'_>,
    policy: Policy,
    market: u32,
    side: Side,
    qty: f64,
    price: f64,
    seed: u64,
    custom: Option<&[f64]>,
) -> Result<Vec<StatelessFill>> {
    if market as usize >= markets.grids.len() {
        return Err(AdlError::config("symbol", format!("market code {market} out of range")));
    }
    let g = markets.grids[market as usize];
    let want = match g.lots(qty) {
        Some(l) if l > 0 => l,
        _ => return Err(AdlError::config("qty", format!("{qty} must be > 0 (at least one lot) and finite"))),
    };
    let adl = parse_price(&g, "price", 0, price).map_err(|_| AdlError::config("price", format!("{price} must be a finite price > 0")))?;
    let ctx = Context::new(cols, markets, policy, custom)?;
    // The opposite side by its code (see `Context::score_rows`).
    let opposite = side.opposite().sign();
    let wanted = |m: u32, code: i8| (m == market) & (code == opposite);
    if !policy.is_ranked() {
        return unranked_fills(&ctx, &wanted, want, &g, seed, adl);
    }
    let parts = in_chunks(cols.len(), |range| -> Result<(Candidates, i128)> {
        // Fast path: a cut estimated from a sample keeps about 2x what the chunk needs,
        // in a plain Vec. If the cut proves too strict, the chunk runs again with the heap.
        if let Some(cut) = ctx.sample_cut(range.clone(), &wanted, want) {
            let (mut kept, mut held, mut available) = (Vec::new(), 0i128, 0i128);
            // Rows below the cut's near-floor can never be kept: counted, not handed on.
            let below = ctx.score_rows_above(range.clone(), wanted, near_floor(cut.1), |s| {
                available += s.lots as i128;
                if s.key <= cut.0 || near(s.score, cut.1) {
                    kept.push((s.key, s.lots, s.score.to_bits(), ctx.scored_pays(&s, adl)));
                    held += s.lots as i128;
                }
            })?;
            available += below;
            if held >= want as i128 || held == available {
                keep_covering_prefix(&mut kept, want);
                return Ok((kept, available));
            }
        }
        let mut top = TopQueue::new(want);
        ctx.score_rows(range, wanted, |s| top.offer(s.key, s.lots, s.score, ctx.scored_pays(&s, adl)))?;
        Ok((top.heap.into_sorted_vec(), top.available))
    });
    let mut cands = Vec::new();
    let mut available = 0i128;
    for part in parts {
        let (kept, avail) = part?;
        available += avail;
        cands.extend(kept);
    }
    if available < want as i128 && !kernel::falls_back_to_size(policy) {
        // Short even counting everyone: report what the rows that can pay hold.
        let mut payers = 0i64;
        ctx.score_rows(0..cols.len(), wanted, |s| payers += if ctx.scored_pays(&s, adl) { s.lots } else { 0 })?;
        let (req, avail) = (g.qty_f64(want), g.qty_f64(payers));
        return Err(AdlError::InsufficientLiquidity { requested: req, available: avail, missing: req - avail });
    }
    // Each chunk's candidates come sorted by key, which is the order `sort_queue` sorts by
    // before it settles near-ties: a stable sort merges those runs in O(n log chunks), and
    // `sort_queue` then finds them sorted, instead of sorting them all again.
    cands.sort_by_key(|c| c.0);
    sort_queue(&mut cands, |c| (f64::from_bits(c.2), c.0.account, c.0.row), &ctx);
    let (mut fills, mut left, passed) = queue_fills(&cands, want);
    if left > 0 && passed {
        // Rows that cannot pay at the ADL price were passed over, and the kept prefix may
        // not cover the rest: walk the whole side (rare; O(n log n)).
        cands.clear();
        ctx.score_rows(0..cols.len(), wanted, |s| cands.push((s.key, s.lots, s.score.to_bits(), ctx.scored_pays(&s, adl))))?;
        sort_queue(&mut cands, |c| (f64::from_bits(c.2), c.0.account, c.0.row), &ctx);
        (fills, left, _) = queue_fills(&cands, want);
    }
    if left > 0 {
        if !kernel::falls_back_to_size(policy) {
            let (req, avail) = (g.qty_f64(want), g.qty_f64(want - left));
            return Err(AdlError::InsufficientLiquidity { requested: req, available: avail, missing: req - avail });
        }
        // min_max_leverage: every profitable row that can pay is taken (all were candidates).
        let queued: Vec<u32> = cands.iter().map(|c| c.0.row).collect();
        fills.extend(size_fallback(cols, markets, &wanted, &queued, (want, left), &g, adl)?);
    }
    Ok(fills)
}

/// Fills of the sorted candidates in queue order (whole rows, partial last), passing over
/// rows that cannot pay at the ADL price; the rank counts every queued row. Returns the
/// fills, the lots left and whether any row was passed over.
fn queue_fills(cands: &Candidates, want: i64) -> (Vec<StatelessFill>, i64, bool) {
    let mut fills = Vec::new();
    let mut left = want;
    let mut passed = false;
    for (i, &(key, lots, score, pays)) in cands.iter().enumerate() {
        if left == 0 {
            break;
        }
        if !pays {
            passed = true;
            continue;
        }
        let take = left.min(lots);
        fills.push(StatelessFill { row: key.row, lots: take, rank: i as u32 + 1, score: f64::from_bits(score) });
        left -= take;
    }
    (fills, left, passed)
}

/// The rest of a `min_max_leverage` event once the profitable queue is used up: split by
/// size over the other opposite rows that are not bankrupt (docs/model.md §4), in account order.
fn size_fallback(
    cols: &PositionColumns<'_>,
    markets: &MarketTable<'_>,
    wanted: &impl Fn(u32, i8) -> bool,
    queued: &[u32],
    (want, left): (i64, i64),
    g: &Grid,
    adl: i64,
) -> Result<Vec<StatelessFill>> {
    let queued: rustc_hash::FxHashSet<u32> = queued.iter().copied().collect();
    let ctx = Context::new(cols, markets, Policy::SizeProRata, None)?;
    let mut rows: Vec<(u64, u32, i64)> = Vec::new();
    ctx.score_rows(0..cols.len(), wanted, |s| {
        if !queued.contains(&s.key.row) && ctx.scored_pays(&s, adl) {
            rows.push((s.key.account, s.key.row, s.lots));
        }
    })?;
    rows.sort_unstable();
    let shares = pro_rata_shares(&rows.iter().map(|r| Holding::by_size(r.0, r.2, r.2)).collect::<Vec<_>>(), left);
    let got: i64 = shares.iter().sum();
    if got < left {
        let (req, avail) = (g.qty_f64(want), g.qty_f64(want - left + got));
        return Err(AdlError::InsufficientLiquidity { requested: req, available: avail, missing: req - avail });
    }
    Ok(rows
        .iter()
        .zip(shares)
        .filter(|(_, l)| *l > 0)
        .map(|(r, lots)| StatelessFill { row: r.1, lots, rank: 0, score: f64::NAN })
        .collect())
}

/// `deleverage` for the policies that rank nobody (`rank` 0 and `score` NaN in the fills):
/// size pro-rata splits by size, fills in account order, over the rows that can pay at the
/// ADL price; dYdX walks from a start drawn from the seed (event 0) uniformly over the
/// accounts on the side, visiting at most 500 of them, those that cannot pay skipped but
/// counted; fills in walk order. Rows are in account order.
fn unranked_fills(
    ctx: &Context<'_>,
    wanted: &impl Fn(u32, i8) -> bool,
    want: i64,
    g: &Grid,
    seed: u64,
    adl: i64,
) -> Result<Vec<StatelessFill>> {
    let takes: Vec<(u64, u32, i64)> = if ctx.policy == Policy::Dydx {
        // dYdX's candidates include those that cannot pay (skipped in the walk, counted).
        let mut rows: Vec<(u64, u32, i64)> = Vec::new();
        let mut pays = rustc_hash::FxHashSet::default();
        ctx.score_rows(0..ctx.cols.len(), wanted, |s| {
            rows.push((s.key.account, s.key.row, s.lots));
            if ctx.scored_pays(&s, adl) {
                pays.insert(s.key.row);
            }
        })?;
        rows.sort_unstable();
        let holdings: Vec<(u64, i64)> = rows.iter().map(|r| (r.0, r.2)).collect();
        let start = start_of(seed, 0, distinct_accounts(&holdings));
        let walk = walk_from(&holdings, start, want, DydxWalk::MAX_ACCOUNTS, |i| pays.contains(&rows[i].1));
        walk.into_iter().map(|(i, lots)| (rows[i].0, rows[i].1, lots)).collect()
    } else {
        let weighting = kernel::weighting(ctx.policy);
        // One pass over the rows that can pay, in row order. The split does not depend on
        // the order (ties go to the lower account, then the earlier row, and rows of one
        // account stay in row order), so only the fills are sorted into account order.
        let (mut rows, mut holdings) = (Vec::new(), Vec::new());
        ctx.score_rows(0..ctx.cols.len(), wanted, |s| {
            if ctx.scored_pays(&s, adl) {
                rows.push(s.key.row);
                holdings.push(match weighting {
                    Some(w) => ctx.holding(&s, w),
                    None => Holding::by_size(s.key.account, s.lots, s.lots),
                });
            }
        })?;
        let shares = match weighting {
            Some(_) => weighted_then_size(&holdings, want),
            None => pro_rata_shares(&holdings, want),
        };
        // Account order by one integer key (account, index, lots): the index grows with the
        // row, and the lots ride along (0 when they need more than 32 bits: then read from
        // `shares`), so the fills are read off the sorted keys. A size split fills most of a
        // large side, so this sort and the reads after it are a large share of the call.
        let mut order: Vec<u128> = (0..shares.len())
            .filter(|&i| shares[i] > 0)
            .map(|i| (holdings[i].account as u128) << 64 | (i as u128) << 32 | u32::try_from(shares[i]).unwrap_or(0) as u128)
            .collect();
        order.sort_unstable();
        order
            .into_iter()
            .map(|k| {
                let i = (k >> 32) as u32 as usize;
                let lots = match k as u32 {
                    0 => shares[i],
                    small => small as i64,
                };
                ((k >> 64) as u64, rows[i], lots)
            })
            .collect()
    };
    let got: i128 = takes.iter().map(|t| t.2 as i128).sum();
    if got < want as i128 {
        let (req, avail) = (g.qty_f64(want), g.qty_f64(got as i64));
        return Err(AdlError::InsufficientLiquidity { requested: req, available: avail, missing: req - avail });
    }
    Ok(takes.into_iter().map(|(_, row, lots)| StatelessFill { row, lots, rank: 0, score: f64::NAN }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::engine::stateless::tests::{cols, table};

    #[test]
    fn deleverage_partial_last_and_shortfall() {
        let (g, names) = table();
        let t = MarketTable { grids: &g, marks: &[96.0], rates: &[0.005], names: &names };
        // A bankrupt long of 15: row0 (rank 1) closes 10, row1 closes 5; row2 is bankrupt.
        let f = deleverage(&cols(), &t, Policy::Bitmex, 0, Side::Long, 15.0, 95.0, 0, None).unwrap();
        let got: Vec<(u32, i64, u32)> = f.iter().map(|x| (x.row, x.lots, x.rank)).collect();
        assert_eq!(got, vec![(0, 10, 1), (1, 5, 2)]);
        // Only 20 lots are eligible.
        match deleverage(&cols(), &t, Policy::Bitmex, 0, Side::Long, 25.0, 95.0, 0, None) {
            Err(AdlError::InsufficientLiquidity { missing, .. }) => assert_eq!(missing, 5.0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_sparse_market_gives_the_fills_of_its_rows_alone() {
        // Market 0's rows (the 250k fixture) alone, and the same rows as every 6th row of a
        // two-market book (market 1 on the same grid, so blocks hold a sixth of wanted rows
        // at most and are collected, not scored in place): the same fills, rows mapped.
        use crate::core::engine::stateless::tests::{one_market, two_chunk_rows};
        let (account, side, qty, entry, margin) = two_chunk_rows();
        let n = account.len() / 4;
        let (g, _) = table();
        let names = ["X".to_string(), "Y".to_string()];
        let t1 = MarketTable { grids: &g, marks: &[100.0], rates: &[0.005], names: &names[..1] };
        let alone = one_market(&account[..n], &side[..n], &qty[..n], &entry[..n], &margin[..n]);
        let want = deleverage(&alone, &t1, Policy::Bitmex, 0, Side::Long, 700.0, 99.0, 0, None).unwrap();
        assert!(want.len() > 20);
        // Row i of market 0 sits at 6i; rows 6i+1..6i+5 are market 1 (a copy of row i).
        let spread = |v: &[f64]| (0..6 * n).map(|r| v[r / 6]).collect::<Vec<_>>();
        let (q, e, m) = (spread(&qty[..n]), spread(&entry[..n]), spread(&margin[..n]));
        let acc: Vec<u64> = (0..6 * n).map(|r| account[r / 6]).collect();
        let sd: Vec<i8> = (0..6 * n).map(|r| side[r / 6]).collect();
        let market: Vec<u32> = (0..6 * n as u32).map(|r| (r % 6 != 0) as u32).collect();
        let both = PositionColumns { market: &market, ..one_market(&acc, &sd, &q, &e, &m) };
        let grids = [g[0], g[0]];
        let t2 = MarketTable { grids: &grids, marks: &[100.0, 100.0], rates: &[0.005, 0.005], names: &names };
        let got = deleverage(&both, &t2, Policy::Bitmex, 0, Side::Long, 700.0, 99.0, 0, None).unwrap();
        let mapped: Vec<StatelessFill> = want.iter().map(|f| StatelessFill { row: 6 * f.row, ..*f }).collect();
        assert_eq!(got, mapped);
    }

    #[test]
    fn top_queue_keeps_exactly_what_covers_the_want() {
        let k = |score: u64, row: u32| Key { score, account: 0, row };
        let mut q = TopQueue::new(10);
        for (i, (score, lots)) in [(5, 4), (1, 3), (9, 100), (2, 5), (3, 1), (0, 2)].into_iter().enumerate() {
            q.offer(k(score, i as u32), lots, -(score as f64), true);
        }
        // Queue order by key: 0 (2 lots), 1 (3), 2 (5) cover 10; everything else is dropped.
        let mut kept: Vec<u64> = q.heap.into_vec().into_iter().map(|c| c.0.score).collect();
        kept.sort();
        assert_eq!(kept, vec![0, 1, 2]);
        assert_eq!(q.available, 115);
    }
}
