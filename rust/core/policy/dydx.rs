//! dYdX v4's deleveraging walk (docs/model.md §3, §5), after dydxprotocol/v4-chain
//! `protocol/x/clob/keeper/deleveraging.go` (`OffsetSubaccountPerpetualPosition`): no
//! ranking. Its candidates are the subaccounts holding a position on the opposite side; the
//! walk starts at an index drawn uniformly over that list (`pseudoRand.Intn(numSubaccounts)`)
//! and goes round it in order, closing whole positions and the last one partly, for at most
//! `MaxDeleveragingSubaccountsToIterate` = 500 iterations: every subaccount looked at counts,
//! also one that is skipped (bankruptcy prices that do not overlap). What is left stays open
//! until the next block (the engine books it as bad debt).
//!
//! adl's candidates are the side's queued positions in account order, less the bankrupt
//! account's own leg on that side (hedge mode; a dYdX subaccount holds one position per
//! market, so it is never in its own list). The start is drawn over exactly those, so neither
//! positions that have left the index nor that leg skew it.

use crate::core::book::position::NO_INDEX;
use crate::core::policy::alloc::{Allocation, Allocator, OppositeSide, PassReason, Passed, Take};
use crate::core::policy::ranking::RankIndex;

/// The dYdX allocator: a walk from a reproducible pseudo-random start (from `seed` and the
/// event id).
pub struct DydxWalk {
    pub seed: u64,
    pub event: u64,
}

impl DydxWalk {
    /// dYdX's `MaxDeleveragingSubaccountsToIterate`.
    pub const MAX_ACCOUNTS: usize = 500;
}

impl Allocator for DydxWalk {
    fn allocate(&self, side: &OppositeSide<'_>, lots: i64, exclude: u64) -> Allocation {
        let index = side.index;
        // The bankrupt account's own queued position on this side, if any.
        let own = side.members.first().and_then(|&m| {
            let p = side.store.get(m);
            let slot = side.store.find(&(exclude, p.market, p.side))?;
            let pos = side.store.get(slot).index_pos;
            (pos != NO_INDEX).then_some(pos as usize)
        });
        let Some(start) = start_position(index, own, start_of(self.seed, self.event, candidates(index, own))) else {
            return Allocation::default();
        };
        let walk = index.queue_from(start).filter(|&(pos, _)| Some(pos) != own).map(|(_, slot)| {
            let p = side.store.get(slot);
            (slot, p.account, p.qty)
        });
        // Offsetting accounts that cannot pay at the ADL price are skipped (dYdX's
        // "bankruptcy prices do not overlap"), and still count as visited. dYdX offsets
        // min(remaining, position) or nothing: a cross account whose collateral pays for
        // only part of that is skipped too.
        let mut passed = Vec::new();
        let takes = walk_candidates(walk, lots, Self::MAX_ACCOUNTS, |slot, want| match side.affordable(&side.store.get(slot)) {
            Ok(cap) if cap >= want => want,
            other => {
                passed.push(Passed { slot, reason: other.err().unwrap_or(PassReason::Collateral) });
                0
            }
        });
        Allocation { takes: takes.into_iter().map(|(slot, lots)| Take { slot, lots, rank: None, score: None }).collect(), passed }
    }
}

/// Number of candidates: the queued positions less the bankrupt account's own one.
fn candidates(index: &RankIndex, own: Option<usize>) -> usize {
    index.len() - own.is_some() as usize
}

/// Raw index position of the `k`-th candidate (0-based, in queue order, the bankrupt
/// account's own position at raw position `own` left out); `None` when there is none.
pub fn start_position(index: &RankIndex, own: Option<usize>, k: usize) -> Option<usize> {
    if k >= candidates(index, own) {
        return None;
    }
    let own_rank = own.map(|pos| index.rank_at(pos) as usize - 1);
    index.nth_queued(if own_rank.is_some_and(|r| r <= k) { k + 1 } else { k })
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

/// Walks `candidates` (id, account, lots held) in the order given, each taking
/// `payable(id, min(held, lots left))` lots (0: skipped), until `lots` are covered or `max`
/// accounts have been visited; skipped accounts count as visited (dYdX counts every
/// iteration), and consecutive entries of one account count once. (id, lots) in walk order.
pub fn walk_candidates<I: Copy, A: PartialEq + Copy>(
    candidates: impl Iterator<Item = (I, A, i64)>,
    lots: i64,
    max: usize,
    mut payable: impl FnMut(I, i64) -> i64,
) -> Vec<(I, i64)> {
    let mut left = lots;
    let mut out = Vec::new();
    let (mut visited, mut last) = (0usize, None);
    for (id, account, held) in candidates {
        if left == 0 {
            break;
        }
        if last != Some(account) {
            if visited == max {
                break;
            }
            visited += 1;
            last = Some(account);
        }
        let take = payable(id, left.min(held)).clamp(0, left.min(held));
        if take > 0 {
            out.push((id, take));
            left -= take;
        }
    }
    out
}

/// The stateless walk over holdings `(account, lots)` in account order: the start is the
/// `start`-th distinct account (drawn uniformly over `0..distinct_accounts`), then as
/// `walk_candidates`, holdings for which `pays` is false skipped (and counted). (holding
/// index, lots) in walk order.
pub fn walk_from<T: PartialEq + Copy>(
    holdings: &[(T, i64)],
    start: usize,
    lots: i64,
    max: usize,
    pays: impl Fn(usize) -> bool,
) -> Vec<(usize, i64)> {
    let n = holdings.len();
    let first = (0..n).filter(|&i| i == 0 || holdings[i].0 != holdings[i - 1].0).nth(start).unwrap_or(0);
    let order = (first..n).chain(0..first).map(|i| (i, holdings[i].0, holdings[i].1));
    walk_candidates(order, lots, max, |i, want| if pays(i) { want } else { 0 })
}

/// Number of distinct accounts in holdings sorted by account.
pub fn distinct_accounts<T: PartialEq>(holdings: &[(T, i64)]) -> usize {
    (0..holdings.len()).filter(|&i| i == 0 || holdings[i].0 != holdings[i - 1].0).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::policy::ranking::{Entry, QueueOrder};
    use crate::core::policy::score::Fraction;

    struct Accounts;
    impl QueueOrder for Accounts {
        fn account(&self, slot: u32) -> u64 {
            slot as u64
        }
        fn exact(&self, _: u32) -> Option<Fraction> {
            None
        }
    }

    #[test]
    fn walk_wraps_and_stops_at_the_account_limit() {
        let h = [(1, 5), (2, 3), (3, 4)];
        // From the second account: 3 of #2, then 4 of #3, then 1 of #1 (wrapped).
        assert_eq!(walk_from(&h, 1, 8, 500, |_| true), vec![(1, 3), (2, 4), (0, 1)]);
        // At most two accounts: 3 + 4 = 7 of 8; the last lot is left over.
        assert_eq!(walk_from(&h, 1, 8, 2, |_| true), vec![(1, 3), (2, 4)]);
        // Two rows of one account are one visit and one start: accounts 1, 2 (rows 1-2), 3.
        let h = [(1, 5), (2, 3), (2, 1), (3, 4)];
        assert_eq!(distinct_accounts(&h), 3);
        assert_eq!(walk_from(&h, 2, 8, 2, |_| true), vec![(3, 4), (0, 4)]);
        assert_eq!(walk_from(&h, 1, 9, 1, |_| true), vec![(1, 3), (2, 1)]);
        // The start is reproducible and in range.
        assert_eq!(start_of(7, 3, 10), start_of(7, 3, 10));
        assert!((0..100).all(|e| start_of(42, e, 7) < 7));
        assert_ne!((0..20).map(|e| start_of(42, e, 1000)).collect::<Vec<_>>(), vec![start_of(42, 0, 1000); 20]);
    }

    #[test]
    fn skipped_accounts_count_toward_the_limit() {
        // 600 accounts of one lot each, 1,000 lots wanted. Everyone pays: 500 visited, 500 lots.
        let cands = || (0..600u32).map(|i| (i, i as u64, 1i64));
        assert_eq!(walk_candidates(cands(), 1_000, 500, |_, w| w).len(), 500);
        // Every even account cannot pay: still 500 visited, so only the 250 odd ones among the
        // first 500 take a lot (not 500 odd ones out of 1,000 looked at).
        let got = walk_candidates(cands(), 1_000, 500, |i, w| if i % 2 == 0 { 0 } else { w });
        assert_eq!(got.len(), 250);
        assert_eq!(got.last(), Some(&(499, 1)));
        // A candidate may pay for part of what it holds; the walk moves on for the rest.
        let got = walk_candidates([(0u32, 1u64, 10i64), (1, 2, 10)].into_iter(), 12, 500, |i, w| if i == 0 { 4 } else { w });
        assert_eq!(got, vec![(0, 4), (1, 8)]);
    }

    #[test]
    fn the_start_is_uniform_over_live_candidates() {
        // Seven queued positions (slots = accounts 0..7); 0, 3 and 4 have left the index and
        // the bankrupt account holds slot 5. Candidates: 1, 2, 6 in queue order, each the start
        // for exactly one draw k in 0..3, and a draw k >= 3 has no start.
        let entries: Vec<Entry> = (0..7).map(|i| Entry { slot: i, account: i as u64, score: 0.0, lots: 1 }).collect();
        let mut idx = RankIndex::build(entries, &Accounts);
        for pos in [0, 3, 4] {
            idx.remove(pos, 1);
        }
        let own = Some(5);
        assert_eq!(candidates(&idx, own), 3);
        let starts: Vec<Option<usize>> = (0..4).map(|k| start_position(&idx, own, k)).collect();
        assert_eq!(starts, vec![Some(1), Some(2), Some(6), None]);
        // Without the bankrupt account's leg in the side: 1, 2, 5, 6.
        let starts: Vec<Option<usize>> = (0..4).map(|k| start_position(&idx, None, k)).collect();
        assert_eq!(starts, vec![Some(1), Some(2), Some(5), Some(6)]);
        // start_of is uniform enough that each of 3 candidates starts 1/3 of 30,000 events
        // within 3 %.
        let mut count = [0usize; 3];
        for event in 0..30_000 {
            count[start_of(11, event, 3)] += 1;
        }
        assert!(count.iter().all(|&c| (9_700..=10_300).contains(&c)), "{count:?}");
    }
}
