//! An index of one market side for the pro-rata policies, so that an ADL event visits only
//! the positions that can receive a lot or are passed over, not the whole side.
//!
//! A pro-rata split of `L` lots over a side of total weight `W` gives most positions no whole
//! lot: only those with `L·w >= W` (at most `L` of them) get a floor share or can saturate
//! their cap, and the lots rounding leaves go to the largest remainders, which outside those
//! are `L·w` itself, so the next positions in weight order. Three ordered sets answer that:
//!
//! - the weighted positions by weight (descending, then account: the split's tie order), with
//!   the weight total and count;
//! - isolated positions by `n/q = (M − σ·value(q, E))/q`: at a bankruptcy price the step-4
//!   rule (`OppositeSide::affordable`) passes a position over exactly when `n/q` is below a
//!   threshold of the event, so the passed ones are a prefix of this order;
//! - cross positions by their account's TNC: one is passed over exactly when `TNC·L < D`, a
//!   prefix again.
//!
//! The index mirrors the ranking index of the side (same members) and is kept current by the
//! same calls (`Market::remove_member`, `Market::rescore_member`); it is dropped whenever the
//! ranking index goes stale. `allocate` returns the exact split of `alloc::SizeProRata` or
//! `alloc::WeightedProRata` (the oracle, compared in debug builds), or `None` when the event
//! falls outside its domain (the side holds no more than the lots), for the oracle to answer.

use std::cmp::{Ordering, Reverse};
use std::collections::BTreeSet;

use ethnum::U256;
use rustc_hash::FxHashSet;

use crate::core::book::position::{Position, PositionStore, NO_INDEX};
use crate::core::market::tiers::Tiers;
use crate::core::policy::alloc::{AdlTerms, Allocation, OppositeSide, Passed, Take};
use crate::core::policy::prorata::{holding, Holding, Weighting};
use crate::core::policy::scoring::Scoring;
use crate::core::units::fixed::Grid;

/// How a pro-rata policy weighs: by size, or by `alloc::Weighting`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Size,
    Weighted(Weighting),
}

/// `n/q` of an isolated position as `k + r/q` (`0 <= r < q`), ordered exactly. Packed to
/// 8-byte alignment: 40 bytes, not 48 (one per isolated position, twice: set and `filed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, packed(8))]
struct Solvency {
    whole: i128,
    rem: i64,
    qty: i64,
    slot: u32,
}

impl Ord for Solvency {
    fn cmp(&self, o: &Self) -> Ordering {
        // r/q against r'/q': r·q' against r'·q, both below 2^126. (Fields copied out: a
        // packed field cannot be borrowed.)
        let (a, b) = (*self, *o);
        let (wa, wb, sa, sb) = (a.whole, b.whole, a.slot, b.slot);
        wa.cmp(&wb).then_with(|| (a.rem as i128 * b.qty as i128).cmp(&(b.rem as i128 * a.qty as i128))).then(sa.cmp(&sb))
    }
}

impl PartialOrd for Solvency {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// Where a member is filed, to find it again when it changes or leaves. Packed to 8-byte
/// alignment: 72 bytes, not 96 (one per position of the side).
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(8))]
struct Filed {
    slot: u32,
    /// 0 when not in the weighted set (weight 0 or a cap of 0 lots).
    weight: u128,
    risk: Risk,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Risk {
    Isolated(Solvency),
    Cross(Tnc),
}

/// A cross account's TNC, aligned to 8 bytes so that `Risk` is (an i128 would align it to 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, packed(8))]
struct Tnc(i128);

/// The pro-rata index of one market side.
#[derive(Clone, Debug)]
pub struct ProRataIndex {
    split: Split,
    by_weight: BTreeSet<(Reverse<u128>, u64, u32)>,
    weight_sum: U256,
    isolated: BTreeSet<Solvency>,
    cross: BTreeSet<(i128, u32)>,
    /// Members by their place in the side's ranking index (`Position::index_pos`, which an
    /// unranked index never moves while it lives).
    filed: Vec<Option<Filed>>,
    live: usize,
}

/// What the index needs to file a position at a mark.
pub struct Terms<'a> {
    pub grid: &'a Grid,
    pub tiers: &'a Tiers,
    pub mark: i64,
    pub scoring: &'a Scoring<'a>,
}

impl Terms<'_> {
    /// The position as the split sees it when it can pay for `affordable` lots.
    fn holding(&self, split: Split, p: &Position, affordable: i64) -> Holding {
        match split {
            Split::Size => Holding::by_size(p.account, p.qty, affordable),
            Split::Weighted(w) => {
                let equity = self.scoring.equity(self.grid, self.tiers, self.mark, p);
                holding(p, self.grid, self.mark, equity, w, affordable)
            }
        }
    }

    /// How `p` is filed; `None` when its solvency key does not fit 128 bits.
    fn file(&self, split: Split, slot: u32, p: &Position) -> Option<Filed> {
        let h = self.holding(split, p, p.qty);
        let weight = if h.weight > 0 && h.cap > 0 { h.weight } else { 0 };
        let risk = if p.cross {
            Risk::Cross(Tnc(self.scoring.cross.totals(p.account).tnc()))
        } else {
            let value = (p.qty as i128).checked_mul(p.entry as i128)?.checked_mul(self.grid.factor)?;
            let n = p.margin.checked_sub(p.side.sign_i128().checked_mul(value)?)?;
            let q = p.qty as i128;
            Risk::Isolated(Solvency { whole: n.div_euclid(q), rem: n.rem_euclid(q) as i64, qty: p.qty, slot })
        };
        Some(Filed { slot, weight, risk })
    }
}

impl ProRataIndex {
    /// Heap bytes of the index (its B-trees estimated: `footprint::btree`).
    pub fn footprint(&self) -> usize {
        use crate::core::units::footprint::{btree, vec};
        btree::<(Reverse<u128>, u64, u32)>(self.by_weight.len())
            + btree::<Solvency>(self.isolated.len())
            + btree::<(i128, u32)>(self.cross.len())
            + vec(&self.filed)
    }
    /// The index of the members `slots` (the side's ranking index, all eligible, as (place,
    /// slot)); `None` when a key does not fit (the oracle then serves the side).
    pub fn build(
        split: Split,
        store: &PositionStore,
        slots: impl Iterator<Item = (usize, u32)>,
        terms: &Terms<'_>,
    ) -> Option<ProRataIndex> {
        let (mut by_weight, mut isolated, mut cross) = (Vec::new(), Vec::new(), Vec::new());
        let mut filed = Vec::new();
        let mut live = 0;
        let mut weight_sum = U256::ZERO;
        for (pos, slot) in slots {
            let p = store.get(slot);
            let f = terms.file(split, slot, p)?;
            if f.weight > 0 {
                by_weight.push((Reverse(f.weight), p.account, slot));
                weight_sum += U256::from(f.weight);
            }
            match f.risk {
                Risk::Isolated(s) => isolated.push(s),
                Risk::Cross(tnc) => cross.push((tnc.0, slot)),
            }
            if filed.len() <= pos {
                filed.resize(pos + 1, None);
            }
            filed[pos] = Some(f);
            live += 1;
        }
        // Sorted first: `BTreeSet::from_iter` then builds in bulk.
        by_weight.sort_unstable();
        isolated.sort_unstable();
        cross.sort_unstable();
        Some(ProRataIndex {
            split,
            by_weight: by_weight.into_iter().collect(),
            weight_sum,
            isolated: isolated.into_iter().collect(),
            cross: cross.into_iter().collect(),
            filed,
            live,
        })
    }

    /// Members filed.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Takes the position at ranking place `pos` out (it left the side's ranking index).
    pub fn remove(&mut self, store: &PositionStore, pos: u32) {
        let Some(f) = self.filed.get_mut(pos as usize).and_then(Option::take) else { return };
        self.live -= 1;
        if f.weight > 0 {
            self.by_weight.remove(&(Reverse(f.weight), store.get(f.slot).account, f.slot));
            self.weight_sum -= U256::from(f.weight);
        }
        match f.risk {
            Risk::Isolated(s) => self.isolated.remove(&s),
            Risk::Cross(tnc) => self.cross.remove(&(tnc.0, f.slot)),
        };
    }

    /// Files the position at `slot` again with its current size, margin and account totals;
    /// `false` when its key does not fit (the caller drops the index).
    /// Only the orders whose key moved are touched (a cross account's TNC moves without its
    /// positions' weights; a size split's weight without the cross order).
    pub fn refile(&mut self, store: &PositionStore, slot: u32, terms: &Terms<'_>) -> bool {
        let p = store.get(slot);
        let Some(f) = terms.file(self.split, slot, p) else { return false };
        let at = p.index_pos as usize;
        if self.filed.len() <= at {
            self.filed.resize(at + 1, None);
        }
        let old = self.filed[at].replace(f);
        self.live += old.is_none() as usize;
        let (old_weight, old_risk) = old.map_or((0, None), |o| (o.weight, Some(o.risk)));
        if old_weight != f.weight {
            if old_weight > 0 {
                self.by_weight.remove(&(Reverse(old_weight), p.account, slot));
                self.weight_sum -= U256::from(old_weight);
            }
            if f.weight > 0 {
                self.by_weight.insert((Reverse(f.weight), p.account, slot));
                self.weight_sum += U256::from(f.weight);
            }
        }
        if old_risk != Some(f.risk) {
            match old_risk {
                Some(Risk::Isolated(s)) => self.isolated.remove(&s),
                Some(Risk::Cross(tnc)) => self.cross.remove(&(tnc.0, slot)),
                None => false,
            };
            match f.risk {
                Risk::Isolated(s) => self.isolated.insert(s),
                Risk::Cross(tnc) => self.cross.insert((tnc.0, slot)),
            };
        }
        true
    }

    /// The exact split of `lots` over `side` (see the module doc), never to `exclude`, or
    /// `None` when the side's active positions number no more than `lots`.
    pub fn allocate(&self, side: &OppositeSide<'_>, lots: i64, exclude: u64) -> Option<Allocation> {
        let terms = Terms { grid: side.grid, tiers: side.tiers, mark: side.mark, scoring: side.scoring };
        let passed = self.passed(side, exclude);
        let skip: FxHashSet<u32> = passed.iter().map(|x| x.slot).collect();
        // The active weighted positions: all filed less those passed over and `exclude`.
        let mut weight = self.weight_sum;
        let mut count = self.by_weight.len();
        let weight_of = |slot: u32| self.filed.get(side.store.get(slot).index_pos as usize).copied().flatten().map_or(0, |f| f.weight);
        // `exclude`'s own position on this side, if it holds one.
        let excluded = side.members.first().and_then(|&any| {
            let p = side.store.get(any);
            side.store.find(&(exclude, p.market, p.side)).filter(|&s| side.store.get(s).index_pos != NO_INDEX)
        });
        for w in passed.iter().map(|x| x.slot).chain(excluded).map(weight_of).filter(|&w| w > 0) {
            weight -= U256::from(w);
            count -= 1;
        }
        // Each active position can take a lot, so more of them than lots hold more than the
        // lots: the water-fill allocates them all and no size fallback runs. Else the oracle.
        if count as u128 <= lots as u128 {
            return None;
        }
        let mut walk = self
            .by_weight
            .iter()
            .filter(|(_, account, slot)| *account != exclude && !skip.contains(slot))
            .map(|&(Reverse(w), _, slot)| (slot, w));
        // Positions that may saturate or get a whole lot (`R·w >= W`), with their holdings.
        let mut head: Vec<(u32, Holding)> = Vec::new();
        let mut saturated = vec![];
        let mut next = walk.next();
        let mut r = lots;
        let reaches = |r: i64, w: u128, weight: U256| U256::from(r as u128) * U256::from(w) >= weight;
        loop {
            while let Some((slot, w)) = next.filter(|&(_, w)| reaches(r, w, weight)) {
                let p = side.store.get(slot);
                // Every refused position was found by `passed` (else the orders are not
                // current: let the scan answer).
                debug_assert!(side.affordable(p).is_ok(), "a refused position in the walk: the solvency orders are stale");
                let Ok(cap) = side.affordable(p) else { return None };
                let h = terms.holding(self.split, p, cap);
                debug_assert_eq!(h.weight, w, "the filed weight is current");
                head.push((slot, h));
                next = walk.next();
            }
            // Saturate whoever the level `r/W` reaches (`cap·W <= r·w`), as `alloc::water_fill`.
            let before = head.len();
            let level = (U256::from(r as u128), weight);
            head.retain(|&(slot, h)| {
                if U256::from(h.cap as u128) * level.1 <= level.0 * U256::from(h.weight) {
                    saturated.push((slot, h));
                    false
                } else {
                    true
                }
            });
            if head.len() == before {
                break;
            }
            for &(_, h) in &saturated[saturated.len() - (before - head.len())..] {
                r -= h.cap;
                weight -= U256::from(h.weight);
            }
        }
        let mut shares: Vec<(u32, u64, i64)> = saturated.iter().map(|&(slot, h)| (slot, h.account, h.cap)).collect();
        // Floor shares and remainders of the head; after it, remainders `r·w` in walk order.
        let rw = |w: u128| U256::from(r as u128) * U256::from(w);
        let mut rems: Vec<(U256, u64, u32, i64)> = Vec::with_capacity(head.len());
        let mut left = r;
        for &(slot, h) in &head {
            let x = rw(h.weight);
            let q = x / weight;
            let share = q.as_i64();
            left -= share;
            rems.push((x - q * weight, h.account, slot, share));
        }
        let extra = left as usize;
        rems.extend(next.into_iter().chain(walk).take(extra).map(|(slot, w)| (rw(w), side.store.get(slot).account, slot, 0)));
        if extra > 0 {
            rems.select_nth_unstable_by_key(extra - 1, |&(rem, account, _, _)| (Reverse(rem), account));
            rems[..extra].iter_mut().for_each(|x| x.3 += 1);
        }
        shares.extend(rems.into_iter().filter(|x| x.3 > 0).map(|(_, account, slot, share)| (slot, account, share)));
        shares.sort_unstable_by_key(|x| x.1);
        let takes = shares.into_iter().map(|(slot, _, lots)| Take { slot, lots, rank: None, score: None }).collect();
        Some(Allocation { takes, passed })
    }

    /// The side's positions passed over at the event's terms, in account order: the prefix
    /// of each solvency order that `OppositeSide::affordable` refuses (it is monotone there).
    fn passed(&self, side: &OppositeSide<'_>, exclude: u64) -> Vec<Passed> {
        let mut passed = Vec::new();
        if side.terms == AdlTerms::Mark {
            return passed;
        }
        // Whether the walk goes on: the position at `slot` is refused (and noted, unless it
        // is `exclude`'s), or the rest of its order can pay.
        let mut refused = |slot: u32| {
            let p = side.store.get(slot);
            match side.affordable(p) {
                Ok(_) => false,
                Err(reason) => {
                    if p.account != exclude {
                        passed.push(Passed { slot, reason });
                    }
                    true
                }
            }
        };
        let _ = self.isolated.iter().all(|s| refused(s.slot));
        let _ = self.cross.iter().all(|&(_, slot)| refused(slot));
        passed.sort_unstable_by_key(|x| side.store.get(x.slot).account);
        passed
    }
}

#[cfg(test)]
mod sizes {
    use super::*;

    #[test]
    fn filed_records_are_packed() {
        // Solvency: whole 16 + rem 8 + qty 8 + slot 4, padded to 8: 40. Risk: 40 and its tag,
        // padded to 8: 48. Filed: slot 4 + weight 16 + risk 48 = 68, padded to 8: 72; `None`
        // takes a spare value of the tag.
        assert_eq!(std::mem::size_of::<Solvency>(), 40);
        assert_eq!(std::mem::size_of::<Risk>(), 48);
        assert_eq!((std::mem::size_of::<Filed>(), std::mem::size_of::<Option<Filed>>()), (72, 72));
    }
}
