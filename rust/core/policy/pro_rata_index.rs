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
//! ranking index goes stale. The orders take an event's refiles in bulk (`lazy_order`), and
//! are settled (`settle`) before the next event reads them. `allocate` returns the exact
//! split of `alloc::SizeProRata` or `alloc::WeightedProRata` (the oracle, compared in debug
//! builds), or `None` when the event falls outside its domain (a weighted split whose
//! profitable positions cannot absorb the lots, so that the rest goes by size to the others),
//! for the oracle to answer.

use std::cmp::{Ordering, Reverse};

use ethnum::U256;
use rustc_hash::FxHashSet;

use crate::core::book::position::{Position, PositionStore, NO_INDEX};
use crate::core::market::tiers::Tiers;
use crate::core::policy::alloc::{AdlTerms, Allocation, OppositeSide, Passed, Take};
use crate::core::policy::lazy_order::{Entry, LazyOrder};
use crate::core::policy::prorata::{holding, water_fill, Holding, Weighting};
use crate::core::policy::scoring::Scoring;
use crate::core::units::fixed::Grid;

/// How a pro-rata policy weighs: by size, or by `alloc::Weighting`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Size,
    Weighted(Weighting),
}

/// `n/q` of an isolated position as `k + r/q` (`0 <= r < q`), ordered (and equal) exactly
/// by value: positions with equal `n/q` are passed over alike, so their order is free.
/// Packed to 8-byte alignment: 32 bytes, and its order's entries 40, not 48.
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(8))]
struct Solvency {
    whole: i128,
    rem: i64,
    qty: i64,
}

impl Ord for Solvency {
    fn cmp(&self, o: &Self) -> Ordering {
        // r/q against r'/q': r·q' against r'·q, both below 2^126. (Fields copied out: a
        // packed field cannot be borrowed.)
        let (a, b) = (*self, *o);
        let (wa, wb) = (a.whole, b.whole);
        wa.cmp(&wb).then_with(|| (a.rem as i128 * b.qty as i128).cmp(&(b.rem as i128 * a.qty as i128)))
    }
}

impl PartialEq for Solvency {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}

impl Eq for Solvency {}

impl PartialOrd for Solvency {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// A member's keys as filed, to tell which orders a refile moves. Packed to 8-byte
/// alignment: 56 bytes, not 64 (one per position of the side).
#[derive(Clone, Copy, Debug)]
#[repr(C, packed(8))]
struct Filed {
    /// 0 when not in the weighted order (weight 0 or a cap of 0 lots).
    weight: u128,
    risk: Risk,
}

/// A member's slot and its stamps in the weight order and its risk order (the entry carrying
/// the same stamp is its current one: `lazy_order`). Kept after it leaves, so that a later
/// refile goes on from its stamps.
#[derive(Clone, Copy, Debug, Default)]
struct Member {
    slot: u32,
    stamps: [u32; 2],
}

const WEIGHT: usize = 0;
const RISK: usize = 1;

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
    /// By weight (descending), then account.
    by_weight: LazyOrder<(Reverse<u128>, u64)>,
    weight_sum: U256,
    weighted: usize,
    isolated: LazyOrder<Solvency>,
    cross: LazyOrder<i128>,
    /// Members by their place in the side's ranking index (`Position::index_pos`, which an
    /// unranked index never moves while it lives); the orders' entries name them by it.
    filed: Vec<Option<Filed>>,
    members: Vec<Member>,
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
    fn file(&self, split: Split, p: &Position) -> Option<Filed> {
        let h = self.holding(split, p, p.qty);
        let weight = if h.weight > 0 && h.cap > 0 { h.weight } else { 0 };
        let risk = if p.cross {
            Risk::Cross(Tnc(self.scoring.cross.totals(p.account).tnc()))
        } else {
            let value = (p.qty as i128).checked_mul(p.entry as i128)?.checked_mul(self.grid.factor)?;
            let n = p.margin.checked_sub(p.side.sign_i128().checked_mul(value)?)?;
            let q = p.qty as i128;
            Risk::Isolated(Solvency { whole: n.div_euclid(q), rem: n.rem_euclid(q) as i64, qty: p.qty })
        };
        Some(Filed { weight, risk })
    }
}

/// Whether `e` is its member's current entry in order `k`.
#[inline]
fn current<K>(members: &[Member], k: usize, e: &Entry<K>) -> bool {
    members[e.pos as usize].stamps[k] == e.stamp
}

impl ProRataIndex {
    /// Heap bytes of the index.
    pub fn footprint(&self) -> usize {
        use crate::core::units::footprint::vec;
        self.by_weight.footprint() + self.isolated.footprint() + self.cross.footprint() + vec(&self.filed) + vec(&self.members)
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
        let (mut filed, mut members) = (Vec::new(), Vec::new());
        let mut weight_sum = U256::ZERO;
        for (pos, slot) in slots {
            let p = store.get(slot);
            let f = terms.file(split, &p)?;
            let at = pos as u32;
            if f.weight > 0 {
                by_weight.push(Entry { key: (Reverse(f.weight), p.account), pos: at, stamp: 0 });
                weight_sum += U256::from(f.weight);
            }
            match f.risk {
                Risk::Isolated(s) => isolated.push(Entry { key: s, pos: at, stamp: 0 }),
                Risk::Cross(tnc) => cross.push(Entry { key: tnc.0, pos: at, stamp: 0 }),
            }
            if filed.len() <= pos {
                filed.resize(pos + 1, None);
                members.resize(pos + 1, Member::default());
            }
            filed[pos] = Some(f);
            members[pos].slot = slot;
        }
        filed.shrink_to_fit();
        members.shrink_to_fit();
        Some(ProRataIndex {
            split,
            weighted: by_weight.len(),
            by_weight: LazyOrder::new(by_weight),
            weight_sum,
            isolated: LazyOrder::new(isolated),
            cross: LazyOrder::new(cross),
            live: filed.iter().flatten().count(),
            filed,
            members,
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
    pub fn remove(&mut self, pos: u32) {
        let Some(f) = self.filed.get_mut(pos as usize).and_then(Option::take) else { return };
        self.live -= 1;
        if f.weight > 0 {
            self.weighted -= 1;
            self.weight_sum -= U256::from(f.weight);
            self.by_weight.retire();
            self.restamp(pos as usize, WEIGHT);
        }
        self.retire_risk(f.risk);
        self.restamp(pos as usize, RISK);
    }

    /// Files the position at `slot` again with its current size, margin and account totals;
    /// `false` when its key does not fit (the caller drops the index).
    /// Only the orders whose key moved are touched (a cross account's TNC moves without its
    /// positions' weights; a size split's weight without the cross order; a proportional
    /// close often leaves `n/q` as it was).
    pub fn refile(&mut self, store: &PositionStore, slot: u32, terms: &Terms<'_>) -> bool {
        let p = store.get(slot);
        let Some(f) = terms.file(self.split, &p) else { return false };
        let at = p.index_pos as usize;
        if self.filed.len() <= at {
            self.filed.resize(at + 1, None);
            self.members.resize(at + 1, Member::default());
        }
        self.members[at].slot = slot;
        let old = self.filed[at].replace(f);
        self.live += old.is_none() as usize;
        let (old_weight, old_risk) = old.map_or((0, None), |o| (o.weight, Some(o.risk)));
        if old_weight != f.weight {
            if old_weight > 0 {
                self.weighted -= 1;
                self.weight_sum -= U256::from(old_weight);
                self.by_weight.retire();
            }
            let stamp = self.restamp(at, WEIGHT);
            if f.weight > 0 {
                self.weighted += 1;
                self.weight_sum += U256::from(f.weight);
                self.by_weight.push((Reverse(f.weight), p.account), at as u32, stamp);
            }
        }
        if old_risk != Some(f.risk) {
            if let Some(r) = old_risk {
                self.retire_risk(r);
            }
            let stamp = self.restamp(at, RISK);
            match f.risk {
                Risk::Isolated(s) => self.isolated.push(s, at as u32, stamp),
                Risk::Cross(tnc) => self.cross.push(tnc.0, at as u32, stamp),
            }
        }
        true
    }

    /// Sorts the refiles since the last call into the orders (before an event reads them).
    pub fn settle(&mut self) {
        let m = &self.members;
        self.by_weight.settle(|e| current(m, WEIGHT, e));
        self.isolated.settle(|e| current(m, RISK, e));
        self.cross.settle(|e| current(m, RISK, e));
    }

    fn is_settled(&self) -> bool {
        self.by_weight.is_settled() && self.isolated.is_settled() && self.cross.is_settled()
    }

    /// Retires the member's entry in order `k` (a new one gets the new stamp). Before its
    /// stamp wraps, the order's stale entries are dropped, so none can match it again.
    fn restamp(&mut self, at: usize, k: usize) -> u32 {
        let stamp = self.members[at].stamps[k];
        if stamp == u32::MAX {
            let m = &self.members;
            match k {
                WEIGHT => self.by_weight.purge(|e| current(m, k, e)),
                _ => {
                    self.isolated.purge(|e| current(m, k, e));
                    self.cross.purge(|e| current(m, k, e));
                }
            }
        }
        self.members[at].stamps[k] = stamp.wrapping_add(1);
        stamp.wrapping_add(1)
    }

    /// Counts a retired risk entry in its order.
    fn retire_risk(&mut self, r: Risk) {
        match r {
            Risk::Isolated(_) => self.isolated.retire(),
            Risk::Cross(_) => self.cross.retire(),
        }
    }

    /// The exact split of `lots` over `side` (see the module doc), never to `exclude`, or
    /// `None` outside its domain (see the module doc) or when the index holds refiles not yet
    /// settled (`settle`).
    pub fn allocate(&self, side: &OppositeSide<'_>, lots: i64, exclude: u64) -> Option<Allocation> {
        if !self.is_settled() {
            return None;
        }
        let terms = Terms { grid: side.grid, tiers: side.tiers, mark: side.mark, scoring: side.scoring };
        let passed = self.passed(side, exclude);
        let skip: FxHashSet<u32> = passed.iter().map(|x| x.slot).collect();
        // The active weighted positions: all filed less those passed over and `exclude`.
        let mut weight = self.weight_sum;
        let mut count = self.weighted;
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
        let m = &self.members;
        let mut walk = self
            .by_weight
            .iter(|e| current(m, WEIGHT, e))
            .map(|e| (e.key, m[e.pos as usize].slot))
            .filter(|&((_, account), slot)| account != exclude && !skip.contains(&slot))
            .map(|((Reverse(w), account), slot)| (slot, w, account));
        // Each active position can take a lot, so more of them than lots hold more than the
        // lots: the water-fill allocates them all and no size fallback runs. Else there are
        // no more of them than lots: split over them all (`small_side`).
        if count as u128 <= lots as u128 {
            return self.small_side(side, &terms, walk.map(|(slot, _, _)| slot), lots, passed);
        }
        // Positions that may saturate or get a whole lot (`R·w >= W`), with their holdings.
        let mut head: Vec<(u32, Holding)> = Vec::new();
        let mut saturated = vec![];
        let mut next = walk.next();
        let mut r = lots;
        let reaches = |r: i64, w: u128, weight: U256| U256::from(r as u128) * U256::from(w) >= weight;
        loop {
            while let Some((slot, w, _)) = next.filter(|&(_, w, _)| reaches(r, w, weight)) {
                let p = side.store.get(slot);
                // Every refused position was found by `passed` (else the orders are not
                // current: let the scan answer).
                debug_assert!(side.affordable(&p).is_ok(), "a refused position in the walk: the solvency orders are stale");
                let Ok(cap) = side.affordable(&p) else { return None };
                let h = terms.holding(self.split, &p, cap);
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
        // (The account from the key: no read of the position.)
        rems.extend(next.into_iter().chain(walk).take(extra).map(|(slot, w, account)| (rw(w), account, slot, 0)));
        if extra > 0 {
            rems.select_nth_unstable_by_key(extra - 1, |&(rem, account, _, _)| (Reverse(rem), account));
            rems[..extra].iter_mut().for_each(|x| x.3 += 1);
        }
        shares.extend(rems.into_iter().filter(|x| x.3 > 0).map(|(_, account, slot, share)| (slot, account, share)));
        shares.sort_unstable_by_key(|x| x.1);
        let takes = shares.into_iter().map(|(slot, _, lots)| Take { slot, lots, rank: None, score: None }).collect();
        Some(Allocation { takes, passed })
    }

    /// The split when the active weighted positions (`active`, at most `lots` of them) are
    /// all in it: the exact water-fill over them. A weighted split whose positions cannot
    /// absorb the lots goes on by size over the side's others (not in the orders): `None`.
    fn small_side(
        &self,
        side: &OppositeSide<'_>,
        terms: &Terms<'_>,
        active: impl Iterator<Item = u32>,
        lots: i64,
        passed: Vec<Passed>,
    ) -> Option<Allocation> {
        let mut slots = Vec::new();
        let mut holdings = Vec::new();
        for slot in active {
            let p = side.store.get(slot);
            debug_assert!(side.affordable(&p).is_ok(), "a refused position in the walk: the solvency orders are stale");
            let Ok(cap) = side.affordable(&p) else { return None };
            slots.push(slot);
            holdings.push(terms.holding(self.split, &p, cap));
        }
        let shares = water_fill(&holdings, lots);
        if matches!(self.split, Split::Weighted(_)) && shares.iter().sum::<i64>() < lots {
            return None;
        }
        // A side holds one position per account, so account order is the takes' order.
        let mut takes: Vec<(u64, Take)> = (slots.into_iter().zip(&holdings).zip(shares))
            .filter(|&(_, lots)| lots > 0)
            .map(|((slot, h), lots)| (h.account, Take { slot, lots, rank: None, score: None }))
            .collect();
        takes.sort_unstable_by_key(|t| t.0);
        Some(Allocation { takes: takes.into_iter().map(|t| t.1).collect(), passed })
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
            match side.affordable(&p) {
                Ok(_) => false,
                Err(reason) => {
                    if p.account != exclude {
                        passed.push(Passed { slot, reason });
                    }
                    true
                }
            }
        };
        let m = &self.members;
        let _ = self.isolated.iter(|e| current(m, RISK, e)).all(|e| refused(m[e.pos as usize].slot));
        let _ = self.cross.iter(|e| current(m, RISK, e)).all(|e| refused(m[e.pos as usize].slot));
        passed.sort_unstable_by_key(|x| side.store.get(x.slot).account);
        passed
    }
}

// The sizes the packing comments state.
const _: () = assert!(std::mem::size_of::<Filed>() == 56 && std::mem::size_of::<Entry<Solvency>>() == 40);
