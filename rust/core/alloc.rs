//! The order-book-independent matcher: given the eligible opposite side and a quantity,
//! choose who closes how much. Policies plug in through `Allocator`.

use crate::core::fixed::Grid;
use crate::core::position::{Position, PositionStore, NO_INDEX};
use crate::core::ranking::RankIndex;
use crate::core::scoring::Scoring;
use crate::core::tiers::Tiers;

/// What an allocator sees: the opposite side of one market.
pub struct OppositeSide<'a> {
    pub store: &'a PositionStore,
    /// Eligible positions in queue order (ranked policies; account order for the others).
    pub index: &'a RankIndex,
    /// Every position of the side, eligible or not (for the size fallback of `LeverageQueue`).
    pub members: &'a [u32],
    pub grid: &'a Grid,
    pub tiers: &'a Tiers,
    pub mark: i64,
    pub scoring: &'a Scoring<'a>,
}

/// One counterparty's share of an ADL event. `rank`/`score` are `None` for policies that
/// do not rank (pro-rata).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Take {
    pub slot: u32,
    pub lots: i64,
    pub rank: Option<u64>,
    pub score: Option<f64>,
}

pub trait Allocator {
    /// Chooses counterparties for up to `lots` lots, never the account `exclude`
    /// (no account is matched against itself). Σ take.lots <= lots; less only when the
    /// opposite side cannot absorb it all.
    fn allocate(&self, side: &OppositeSide<'_>, lots: i64, exclude: u64) -> Vec<Take>;
}

/// Ranked queue (BitMEX-style): highest score first, whole positions, partial last.
pub struct RankedQueue;

impl Allocator for RankedQueue {
    fn allocate(&self, side: &OppositeSide<'_>, lots: i64, exclude: u64) -> Vec<Take> {
        let mut takes = Vec::new();
        let mut left = lots;
        // The head of the queue has rank 1; every entry still queued counts, even ours.
        for (rank, (pos, slot)) in (1u64..).zip(side.index.queue()) {
            if left == 0 {
                break;
            }
            let p = side.store.get(slot);
            if p.account == exclude {
                continue;
            }
            let take = left.min(p.qty);
            takes.push(Take { slot, lots: take, rank: Some(rank), score: Some(side.index.score_at(pos)) });
            left -= take;
        }
        takes
    }
}

/// `min_max_leverage`: the ranked queue of profitable positions by leverage; if they cannot
/// absorb it all, the rest is split by size over the other opposite positions that are not
/// bankrupt (docs/model.md §4), and only then is there bad debt.
pub struct LeverageQueue;

impl Allocator for LeverageQueue {
    fn allocate(&self, side: &OppositeSide<'_>, lots: i64, exclude: u64) -> Vec<Take> {
        let mut takes = RankedQueue.allocate(side, lots, exclude);
        let left = lots - takes.iter().map(|t| t.lots).sum::<i64>();
        if left > 0 {
            let mut rest: Vec<(u32, &Position)> = side
                .members
                .iter()
                .map(|&slot| (slot, side.store.get(slot)))
                .filter(|(_, p)| p.index_pos == NO_INDEX && p.account != exclude)
                .filter(|(_, p)| side.scoring.equity(side.grid, side.tiers, side.mark, p) > 0)
                .collect();
            rest.sort_unstable_by_key(|(slot, p)| (p.account, *slot));
            let shares = pro_rata_shares(&rest.iter().map(|(_, p)| (p.account, p.qty)).collect::<Vec<_>>(), left);
            takes.extend(unranked_takes(&rest, shares));
        }
        takes
    }
}

/// Size pro-rata: every eligible opposite position closes `lots·q/Σq`, rounded to whole lots
/// by largest remainder (ties: lower account first). If the side holds no more than `lots`,
/// everyone closes fully.
pub struct SizeProRata;

impl Allocator for SizeProRata {
    fn allocate(&self, side: &OppositeSide<'_>, lots: i64, exclude: u64) -> Vec<Take> {
        let members = members(side, exclude);
        let shares = pro_rata_shares(&members.iter().map(|(_, p)| (p.account, p.qty)).collect::<Vec<_>>(), lots);
        unranked_takes(&members, shares)
    }
}

/// The opposite side's queued positions, never the account `exclude`, in index order.
fn members<'a>(side: &'a OppositeSide<'_>, exclude: u64) -> Vec<(u32, &'a Position)> {
    side.index.queue().map(|(_, slot)| (slot, side.store.get(slot))).filter(|(_, p)| p.account != exclude).collect()
}

/// Takes of unranked policies from per-member shares (members with no share are left out).
fn unranked_takes(members: &[(u32, &Position)], shares: Vec<i64>) -> Vec<Take> {
    members
        .iter()
        .zip(shares)
        .filter(|(_, share)| *share > 0)
        .map(|(m, share)| Take { slot: m.0, lots: share, rank: None, score: None })
        .collect()
}

/// Splits `lots` over holdings `(account, qty)` in proportion to qty: whole lots, largest
/// remainder first (ties: lower account, then earlier entry). Never more than a holding.
pub fn pro_rata_shares(holdings: &[(u64, i64)], lots: i64) -> Vec<i64> {
    let total: i128 = holdings.iter().map(|h| h.1 as i128).sum();
    if total <= lots as i128 {
        return holdings.iter().map(|h| h.1).collect();
    }
    let want = lots as i128;
    let mut shares: Vec<i64> = holdings.iter().map(|h| (want * h.1 as i128 / total) as i64).collect();
    let left = (lots - shares.iter().sum::<i64>()) as usize;
    if left > 0 {
        // Only the `left` largest remainders matter: select them, no full sort.
        let key = |i: usize| (std::cmp::Reverse(want * holdings[i].1 as i128 % total), holdings[i].0, i);
        let mut order: Vec<usize> = (0..holdings.len()).collect();
        order.select_nth_unstable_by_key(left - 1, |&i| key(i));
        for &i in &order[..left] {
            shares[i] += 1;
        }
    }
    shares
}

/// The fair allocators of docs/model.md §4 in contract space: profitable positions close lots in
/// proportion to a weight, water-filled so no one closes more than its cap; if they cannot
/// absorb it all, the rest is split by size over the other opposite positions.
pub struct WeightedProRata {
    pub weighting: Weighting,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weighting {
    /// Lots ∝ unrealised profit u⁺ (`wealth_pro_rata`), up to the whole position.
    Profit,
    /// Lots ∝ leverage × u⁺ (`levered_pro_rata`), up to the whole position.
    LeveredProfit,
    /// Lots ∝ size, up to the fraction `adl_cap` of it (`capped_pro_rata`): every position
    /// closes the same fraction η, or its cap when that is lower.
    CappedSize,
}

/// A position as a holding for `weighted_then_size`: (account, most lots it may close, weight);
/// weight 0 = not eligible (not in profit). `equity` is the position's (its account share if cross).
pub fn holding(p: &Position, grid: &Grid, mark: i64, equity: i128, weighting: Weighting) -> (u64, i64, f64) {
    let u = p.side as i128 * grid.value(p.qty, mark - p.entry);
    if u <= 0 {
        return (p.account, p.qty, 0.0);
    }
    match weighting {
        Weighting::Profit => (p.account, p.qty, u as f64),
        Weighting::LeveredProfit => (p.account, p.qty, u as f64 * grid.notional_f64(p.qty, mark) / equity as f64),
        Weighting::CappedSize => (p.account, (p.qty as i128 * p.cap_bp as i128 / 10_000) as i64, p.qty as f64),
    }
}

impl Allocator for WeightedProRata {
    fn allocate(&self, side: &OppositeSide<'_>, lots: i64, exclude: u64) -> Vec<Take> {
        let members = members(side, exclude);
        let holdings: Vec<(u64, i64, f64)> = members
            .iter()
            .map(|(_, p)| {
                let equity = side.scoring.equity(side.grid, side.tiers, side.mark, p);
                holding(p, side.grid, side.mark, equity, self.weighting)
            })
            .collect();
        unranked_takes(&members, weighted_then_size(&holdings, lots))
    }
}

/// Splits `lots` over holdings `(account, cap, weight)`: those with weight > 0 first, in
/// proportion to weight and never beyond their cap (water-filling), whole lots by largest
/// remainder (ties: lower account); what they cannot absorb goes to the zero-weight holdings
/// by size (`pro_rata_shares`).
pub fn weighted_then_size(holdings: &[(u64, i64, f64)], lots: i64) -> Vec<i64> {
    let mut shares = vec![0i64; holdings.len()];
    let weighted: Vec<usize> = (0..holdings.len()).filter(|&i| holdings[i].2 > 0.0).collect();
    let held: i64 = weighted.iter().map(|&i| holdings[i].1).sum();
    if held <= lots {
        for &i in &weighted {
            shares[i] = holdings[i].1;
        }
    } else {
        // Water level λ: Σ min(q, λ·w) = lots. Saturate whoever the level reaches and
        // recompute it for the rest, until nobody new saturates (a few O(n) rounds).
        let mut exact = vec![0f64; holdings.len()];
        let mut active = weighted.clone();
        let mut remaining = lots as f64;
        loop {
            let wsum: f64 = active.iter().map(|&i| holdings[i].2).sum();
            let level = remaining / wsum;
            let (full, rest): (Vec<usize>, Vec<usize>) = active.iter().partition(|&&i| holdings[i].1 as f64 <= level * holdings[i].2);
            if full.is_empty() {
                for &i in &rest {
                    exact[i] = (level * holdings[i].2).min(holdings[i].1 as f64);
                }
                break;
            }
            for &i in &full {
                exact[i] = holdings[i].1 as f64;
                remaining -= exact[i];
            }
            active = rest;
            if active.is_empty() {
                break;
            }
        }
        for &i in &weighted {
            shares[i] = (exact[i].floor() as i64).min(holdings[i].1);
        }
        // The largest remainders get the lots rounding left over (ties: lower account);
        // select them rather than sort everyone.
        let mut left = lots - shares.iter().sum::<i64>();
        let mut open: Vec<usize> = weighted.iter().copied().filter(|&i| shares[i] < holdings[i].1).collect();
        let key = |i: usize| (std::cmp::Reverse(((exact[i] - exact[i].floor()) * 1e15) as i64), holdings[i].0, i);
        while left > 0 && !open.is_empty() {
            let k = (left as usize).min(open.len());
            open.select_nth_unstable_by_key(k - 1, |&i| key(i));
            for &i in &open[..k] {
                shares[i] += 1;
            }
            left -= k as i64;
            open.retain(|&i| shares[i] < holdings[i].1);
        }
    }
    let left = lots - shares.iter().sum::<i64>();
    if left > 0 {
        let rest: Vec<usize> = (0..holdings.len()).filter(|&i| holdings[i].2 <= 0.0).collect();
        let extra = pro_rata_shares(&rest.iter().map(|&i| (holdings[i].0, holdings[i].1)).collect::<Vec<_>>(), left);
        for (&i, x) in rest.iter().zip(extra) {
            shares[i] += x;
        }
    }
    shares
}

/// dYdX: no ranking. Walk the opposite side in account order from a pseudo-random start
/// (from `seed` and the event id, so runs are reproducible), whole positions, the last one
/// partial, at most `MAX_ACCOUNTS` accounts; what they cannot absorb is left over.
pub struct DydxWalk {
    pub seed: u64,
    pub event: u64,
}

impl DydxWalk {
    pub const MAX_ACCOUNTS: usize = 500;
}

impl Allocator for DydxWalk {
    fn allocate(&self, side: &OppositeSide<'_>, lots: i64, exclude: u64) -> Vec<Take> {
        // The start is drawn over the index's raw positions (departed ones are skipped), so
        // the walk never collects the whole side.
        let start = start_of(self.seed, self.event, side.index.capacity());
        let mut takes = Vec::new();
        let mut left = lots;
        for (_, slot) in side.index.queue_from(start) {
            if left == 0 || takes.len() == Self::MAX_ACCOUNTS {
                break;
            }
            let p = side.store.get(slot);
            if p.account == exclude {
                continue;
            }
            let take = left.min(p.qty);
            takes.push(Take { slot, lots: take, rank: None, score: None });
            left -= take;
        }
        takes
    }
}

/// A reproducible start in `0..n` (splitmix64 of seed and event).
pub fn start_of(seed: u64, event: u64, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let mut z = seed ^ event.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % n as u64) as usize
}

/// Takes whole holdings `(id, qty)` circularly from `start` until `lots` are covered or
/// `max` holdings are used: (index, lots taken) in walk order.
pub fn walk_from<T>(holdings: &[(T, i64)], start: usize, lots: i64, max: usize) -> Vec<(usize, i64)> {
    let n = holdings.len();
    let mut left = lots;
    let mut out = Vec::new();
    for k in 0..n.min(max) {
        if left == 0 {
            break;
        }
        let i = (start + k) % n;
        let take = left.min(holdings[i].1);
        out.push((i, take));
        left -= take;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_remainder_by_hand() {
        // 10 lots over 3, 3, 4 (Σ 10... = all) and 7 lots over 5, 3, 2: exact 3.5, 2.1, 1.4
        // -> base 3, 2, 1 (6), one left to the largest remainder (0.5): 4, 2, 1.
        assert_eq!(pro_rata_shares(&[(1, 3), (2, 3), (3, 4)], 10), vec![3, 3, 4]);
        assert_eq!(pro_rata_shares(&[(1, 5), (2, 3), (3, 2)], 7), vec![4, 2, 1]);
        // Equal remainders go to the lower account: 1 lot over 1, 1 (accounts 9 and 4).
        assert_eq!(pro_rata_shares(&[(9, 1), (4, 1)], 1), vec![0, 1]);
        // More than the side holds: everyone closes fully.
        assert_eq!(pro_rata_shares(&[(1, 2), (2, 3)], 9), vec![2, 3]);
    }

    #[test]
    fn weighted_water_fill_by_hand() {
        // 10 lots, weights 1:1:2 over holdings 10, 10, 3: level λ with 10 = λ + λ + min(3, 2λ)
        // -> #3 saturates at 3, λ = 3.5: 3.5, 3.5, 3 -> floors 3, 3, 3 and the leftover lot
        // to the equal remainders' lower account: 4, 3, 3.
        assert_eq!(weighted_then_size(&[(1, 10, 1.0), (2, 10, 1.0), (3, 3, 2.0)], 10), vec![4, 3, 3]);
        // Profitable holdings absorb 5 of 8; the other 3 go by size to the zero-weight ones (2:1).
        assert_eq!(weighted_then_size(&[(1, 5, 2.0), (2, 6, 0.0), (3, 3, 0.0)], 8), vec![5, 2, 1]);
    }

    #[test]
    fn walk_wraps_and_stops_at_the_account_limit() {
        let h = [(1, 5), (2, 3), (3, 4)];
        // From index 1: 3 of #2, then 4 of #3, then 1 of #1 (wrapped).
        assert_eq!(walk_from(&h, 1, 8, 500), vec![(1, 3), (2, 4), (0, 1)]);
        // At most two accounts: 3 + 4 = 7 of 8; the last lot is left over.
        assert_eq!(walk_from(&h, 1, 8, 2), vec![(1, 3), (2, 4)]);
        // The start is reproducible and in range.
        assert_eq!(start_of(7, 3, 10), start_of(7, 3, 10));
        assert!((0..100).all(|e| start_of(42, e, 7) < 7));
        assert_ne!((0..20).map(|e| start_of(42, e, 1000)).collect::<Vec<_>>(), vec![start_of(42, 0, 1000); 20]);
    }
}
