//! Markets: grid, maintenance rate, mark, and the per-side member lists and ranking indexes.

use std::ops::{Deref, DerefMut};

use crate::core::book::position::{PositionStore, Side, NO_INDEX};
use crate::core::market::instrument::Instrument;
use crate::core::market::spec::MarketSpec;
use crate::core::market::tiers::Tiers;
use crate::core::policy::kernel;
use crate::core::policy::pro_rata_index::{ProRataIndex, Split, Terms};
use crate::core::policy::ranking::{Entry, QueueOrder, RankIndex, SlotLots};
use crate::core::policy::score::{desc_key, near, Fraction, Lights, Policy};
use crate::core::policy::scoring::Scoring;
use crate::core::units::error::Result;
use crate::core::units::fixed::Grid;

/// Queue order over the positions of one market at its mark.
struct MarketOrder<'a> {
    store: &'a PositionStore,
    grid: &'a Grid,
    tiers: &'a Tiers,
    scoring: &'a Scoring<'a>,
    mark: i64,
}

impl QueueOrder for MarketOrder<'_> {
    fn account(&self, slot: u32) -> u64 {
        self.store.get(slot).account
    }
    fn exact(&self, slot: u32) -> Option<Fraction> {
        // Unranked policies score every queued (eligible) position exactly 0: nothing to compute.
        if !self.scoring.policy.is_ranked() {
            return Some(Fraction { sign: 0, num: 0, den: 1 });
        }
        self.scoring.exact(self.grid, self.tiers, self.mark, &self.store.get(slot))
    }
}

/// A queued slot's lots, as the ranking index reads them: its `qty` in the store (the index
/// keeps only per-block sums; see `policy::ranking`).
impl SlotLots for PositionStore {
    fn lots(&self, slot: u32) -> i64 {
        self.qty(slot)
    }
}

/// One position of a queue indicator (docs/model.md §3).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueueRow {
    pub slot: u32,
    pub rank: u64,
    pub percentile: f64,
    pub lights: u8,
    pub score: f64,
    pub lots_ahead: i64,
}

/// An instrument with its ADL queues: the per-side member lists and ranking indexes. It
/// reads as its `Instrument` (grid, tiers, fees, mark) through `Deref`.
#[derive(Clone)]
pub struct Market {
    pub inst: Instrument,
    /// Slots of the live positions per side (0 long, 1 short).
    pub members: [Vec<u32>; 2],
    /// Ranking index per side; `None` when stale (marks moved or the book was replaced).
    index: [Option<RankIndex>; 2],
    /// Per side: `Some(cut)` when the index holds only the head of the queue (every eligible
    /// position whose score is above `cut`, and those near it); `None` when it is complete.
    cut: [Option<f64>; 2],
    /// Per side, the pro-rata policies' index of the same members (`None` with the ranking
    /// index, or when a key does not fit: the kernels then scan the side).
    pro_rata: [Option<ProRataIndex>; 2],
}

impl Deref for Market {
    type Target = Instrument;
    fn deref(&self) -> &Instrument {
        &self.inst
    }
}

impl DerefMut for Market {
    fn deref_mut(&mut self) -> &mut Instrument {
        &mut self.inst
    }
}

impl AsRef<Instrument> for Market {
    fn as_ref(&self) -> &Instrument {
        &self.inst
    }
}

impl Market {
    pub fn new(name: &str, spec: MarketSpec, cash_decimals: u32) -> Result<Market> {
        Ok(Market {
            inst: Instrument::new(name, spec, cash_decimals)?,
            members: [Vec::new(), Vec::new()],
            index: [None, None],
            cut: [None, None],
            pro_rata: [None, None],
        })
    }

    /// Heap bytes by part: member lists, ranking indexes, pro-rata indexes.
    pub fn footprint(&self) -> [(&'static str, usize); 3] {
        use crate::core::units::footprint::vec;
        let sum = |f: &dyn Fn(usize) -> usize| f(0) + f(1);
        [
            ("member lists", sum(&|s| vec(&self.members[s]))),
            ("ranking indexes", sum(&|s| self.index[s].as_ref().map_or(0, RankIndex::footprint))),
            ("pro-rata indexes", sum(&|s| self.pro_rata[s].as_ref().map_or(0, ProRataIndex::footprint))),
        ]
    }

    pub fn set_mark(&mut self, mark: i64) {
        if self.inst.mark != Some(mark) {
            self.inst.mark = Some(mark);
            self.invalidate();
        }
    }

    pub fn invalidate(&mut self) {
        self.index = [None, None];
        self.pro_rata = [None, None];
    }

    /// Makes the index of one side (0 long, 1 short) stale.
    pub fn invalidate_side(&mut self, side: usize) {
        self.index[side] = None;
        self.pro_rata[side] = None;
    }

    /// Adds a slot to its side's member list (the index of that side goes stale).
    pub fn add_member(&mut self, store: &mut PositionStore, slot: u32) {
        let s = store.get(slot).side.slot();
        store.set_member_pos(slot, self.members[s].len() as u32);
        self.members[s].push(slot);
        self.invalidate_side(s);
    }

    /// Removes a slot from its member list (swap-remove) and from the ranking index.
    pub fn remove_member(&mut self, store: &mut PositionStore, slot: u32) {
        let p = store.get(slot);
        let s = p.side.slot();
        let list = &mut self.members[s];
        list.swap_remove(p.member_pos as usize);
        if let Some(&moved) = list.get(p.member_pos as usize) {
            store.set_member_pos(moved, p.member_pos);
        }
        if let Some(idx) = self.index[s].as_mut() {
            if p.index_pos != NO_INDEX {
                idx.remove(p.index_pos as usize, p.qty);
            }
        }
        if let Some(pr) = self.pro_rata[s].as_mut() {
            pr.remove(p.index_pos);
        }
    }

    /// A position gave up `lots` lots but stays open (the store already holds its new size
    /// and margin): its lots leave the index. Its score is refreshed by `rescore_member`.
    pub fn shrink_member(&mut self, store: &PositionStore, slot: u32, lots: i64) {
        let p = store.get(slot);
        if let (Some(idx), true) = (self.index[p.side.slot()].as_mut(), p.index_pos != NO_INDEX) {
            idx.shrink(p.index_pos as usize, lots);
        }
    }

    /// Moves a position to its current score in its side's index (margin rounding or its
    /// cross account's totals may have changed it), or out of it when it is no longer
    /// eligible. A position that became eligible again makes the index stale.
    pub fn rescore_member(&mut self, store: &mut PositionStore, scoring: &Scoring<'_>, slot: u32) {
        let p = store.get(slot);
        let s = p.side.slot();
        let Some(idx) = self.index[s].as_mut() else { return };
        let mark = self.inst.mark.expect("an index exists only with a mark");
        let score = scoring.score(&self.inst.grid, &self.inst.tiers, mark, slot, &p);
        // Unranked policies score every eligible position 0: one still eligible keeps its place
        // (and is filed again in the pro-rata index, with its new size and account totals).
        if !scoring.policy.is_ranked() && score.is_some() && p.index_pos != NO_INDEX {
            if let Some(pr) = self.pro_rata[s].as_mut() {
                let terms = Terms { grid: &self.inst.grid, tiers: &self.inst.tiers, mark, scoring };
                if !pr.refile(store, slot, &terms) {
                    self.pro_rata[s] = None;
                }
            }
            return;
        }
        match (score, p.index_pos) {
            (None, NO_INDEX) => {}
            // Below the cut of a head-only index it stays out; above it, it joins the head.
            // A complete index it was not eligible for is stale.
            (Some(score), NO_INDEX) => match self.cut[s] {
                Some(cut) if score < cut && !near(score, cut) => {}
                Some(_) => self.admit(store, scoring, slot, score, mark),
                None => self.invalidate_side(s),
            },
            (None, pos) => {
                idx.remove(pos as usize, p.qty);
                store.set_index_pos(slot, NO_INDEX);
                if let Some(pr) = self.pro_rata[s].as_mut() {
                    pr.remove(p.index_pos);
                }
            }
            // Below the cut of a head-only index: positions left out may now rank before it.
            (Some(score), pos) if matches!(self.cut[s], Some(cut) if score < cut && !near(score, cut)) => {
                idx.remove(pos as usize, p.qty);
                store.set_index_pos(slot, NO_INDEX);
                if let Some(pr) = self.pro_rata[s].as_mut() {
                    pr.remove(p.index_pos);
                }
            }
            (Some(score), pos) => {
                let order = MarketOrder { store, grid: &self.inst.grid, tiers: &self.inst.tiers, scoring, mark };
                let mut moves = Vec::new();
                idx.rescore(pos as usize, score, &order, order.store, |s, at| moves.push((s, at)));
                for (s, at) in moves {
                    store.set_index_pos(s, at as u32);
                }
            }
        }
    }

    /// Files a position left out of its side's head-only index whose score rose above the
    /// cut (its cross account's totals moved, e.g. by an ADL fill in another market): the
    /// head is sorted again with it, from the scores it holds. Every position the head left
    /// out still ranks below the cut, so the head stays the top of the queue, in the order a
    /// rebuild would give it; a rebuild would score every member of the side again.
    fn admit(&mut self, store: &mut PositionStore, scoring: &Scoring<'_>, slot: u32, score: f64, mark: i64) {
        let p = store.get(slot);
        let s = p.side.slot();
        let idx = self.index[s].as_ref().expect("a head-only index");
        let mut entries: Vec<Entry> = Vec::with_capacity(idx.len() + 1);
        for (pos, at) in idx.slots() {
            let q = store.get(at);
            entries.push(Entry { slot: at, account: q.account, score: idx.score_at(pos), lots: q.qty });
        }
        entries.push(Entry { slot, account: p.account, score, lots: p.qty });
        self.index[s] = Some(self.sorted_index(store, scoring, entries, mark));
    }

    /// The index of `entries` in queue order, each slot's `index_pos` set to its place.
    fn sorted_index(&self, store: &mut PositionStore, scoring: &Scoring<'_>, entries: Vec<Entry>, mark: i64) -> RankIndex {
        let idx = RankIndex::build(entries, &MarketOrder { store, grid: &self.inst.grid, tiers: &self.inst.tiers, scoring, mark });
        for (pos, slot) in idx.slots() {
            store.set_index_pos(slot, pos as u32);
        }
        idx
    }

    /// The queue indicator of `side` from its current index, in queue order: (slot, rank,
    /// percentile, lights, score, lots queued ahead); `None` without an index or a mark.
    pub fn indicator(&self, store: &PositionStore, scoring: &Scoring<'_>, side: Side, method: Lights) -> Option<Vec<QueueRow>> {
        let (idx, mark) = (self.index[side.slot()].as_ref()?, self.inst.mark?);
        let order = MarketOrder { store, grid: &self.inst.grid, tiers: &self.inst.tiers, scoring, mark };
        let rows = idx.lights(method, &order, store).into_iter();
        Some(
            rows.map(|(pos, rank, percentile, lights, lots_ahead)| QueueRow {
                slot: idx.slot_at(pos),
                rank,
                percentile,
                lights,
                score: idx.score_at(pos),
                lots_ahead,
            })
            .collect(),
        )
    }

    /// The queue indicator of the position at ranking position `pos` of `side` (as
    /// `indicator` gives it); `None` without an index or a mark.
    pub fn queue_place(&self, store: &PositionStore, scoring: &Scoring<'_>, side: Side, pos: usize, method: Lights) -> Option<QueueRow> {
        let (idx, mark) = (self.index[side.slot()].as_ref()?, self.inst.mark?);
        let order = MarketOrder { store, grid: &self.inst.grid, tiers: &self.inst.tiers, scoring, mark };
        let (rank, percentile, lights, lots_ahead) = idx.place(pos, method, &order, store);
        Some(QueueRow { slot: idx.slot_at(pos), rank, percentile, lights, score: idx.score_at(pos), lots_ahead })
    }

    /// The complete ranking index of `side`, rebuilt first if stale or head-only. Requires a mark.
    pub fn index(&mut self, store: &mut PositionStore, scoring: &Scoring<'_>, side: Side) -> Result<&RankIndex> {
        let s = side.slot();
        if self.index[s].is_none() || self.cut[s].is_some() {
            self.build(store, scoring, side, None)?;
        }
        self.settle_pro_rata(side);
        Ok(self.index[s].as_ref().expect("built above"))
    }

    /// An index of `side` holding at least the head of the queue with `lots` lots (a current
    /// index will do unless it is a head holding fewer lots; a new one keeps only about the
    /// best `4·lots` lots). Scoring
    /// every position is O(n); sorting only the head avoids the O(n log n) full sort that a
    /// mark change would otherwise cost the next event.
    pub fn head_index(&mut self, store: &mut PositionStore, scoring: &Scoring<'_>, side: Side, lots: i64) -> Result<&RankIndex> {
        let s = side.slot();
        let shallow = self.cut[s].is_some() && self.index[s].as_ref().is_some_and(|i| i.total_lots() < lots);
        if self.index[s].is_none() || shallow {
            self.build(store, scoring, side, Some(lots))?;
        }
        Ok(self.index[s].as_ref().expect("built above"))
    }

    /// Whether the index of `side` holds only the head of the queue.
    pub fn is_head_only(&self, side: Side) -> bool {
        self.cut[side.slot()].is_some()
    }

    fn build(&mut self, store: &mut PositionStore, scoring: &Scoring<'_>, side: Side, head_lots: Option<i64>) -> Result<()> {
        let s = side.slot();
        let mark = self.mark()?;
        let mut entries = Vec::with_capacity(self.members[s].len());
        for &slot in &self.members[s] {
            store.set_index_pos(slot, NO_INDEX);
            let p = store.get(slot);
            if let Some(score) = scoring.score(&self.inst.grid, &self.inst.tiers, mark, slot, &p) {
                entries.push(Entry { slot, account: p.account, score, lots: p.qty });
            }
        }
        self.cut[s] = None;
        if let Some(lots) = head_lots {
            if let Some(cut) = keep_head(&mut entries, lots) {
                self.cut[s] = Some(cut);
            }
        }
        let idx = self.sorted_index(store, scoring, entries, mark);
        let split = match (scoring.policy, kernel::weighting(scoring.policy)) {
            (_, Some(w)) => Some(Split::Weighted(w)),
            (Policy::SizeProRata, None) => Some(Split::Size),
            _ => None,
        };
        self.pro_rata[s] = match split {
            Some(split) if self.cut[s].is_none() => {
                let terms = Terms { grid: &self.inst.grid, tiers: &self.inst.tiers, mark, scoring };
                ProRataIndex::build(split, store, idx.slots(), &terms)
            }
            _ => None,
        };
        self.index[s] = Some(idx);
        Ok(())
    }

    /// Sorts the refiles of `side`'s pro-rata index into its orders: before an event reads
    /// it (an unsettled index is left to the scan).
    pub fn settle_pro_rata(&mut self, side: Side) {
        if let Some(pr) = self.pro_rata[side.slot()].as_mut() {
            pr.settle();
        }
    }

    /// The pro-rata index of `side`, when current (see `pro_rata_index`).
    pub fn pro_rata(&self, side: Side) -> Option<&ProRataIndex> {
        self.pro_rata[side.slot()].as_ref()
    }

    /// The index of `side` if it is current (possibly head-only: see `is_head_only`).
    pub fn current_index(&self, side: Side) -> Option<&RankIndex> {
        self.index[side.slot()].as_ref()
    }
}

/// Keeps the best entries holding at least `4·lots` lots (and at least a sixteenth of them,
/// so that a cascade of events at the same marks rarely needs a deeper head) plus
/// every entry whose score is near the worst kept one (only the exact comparison can order
/// those). Returns the lowest kept score, or `None` when everything is kept.
fn keep_head(entries: &mut Vec<Entry>, lots: i64) -> Option<f64> {
    const MIN_KEEP: usize = 1_024;
    let n = entries.len();
    let want = lots.saturating_mul(4);
    let total: i64 = entries.iter().map(|e| e.lots).sum();
    if n <= 4 * MIN_KEEP || total <= want {
        return None;
    }
    let key = |e: &Entry| (desc_key(e.score), e.account, e.slot);
    let avg = (total as f64 / n as f64).max(1.0);
    let mut k = ((want as f64 / avg) * 2.0) as usize;
    k = k.clamp(MIN_KEEP.max(n / 16), n);
    loop {
        entries.select_nth_unstable_by_key(k - 1, key);
        let held: i64 = entries[..k].iter().map(|e| e.lots).sum();
        if held >= want || k == n {
            break;
        }
        k = (k * 2).min(n);
    }
    if k * 2 > n {
        return None; // most of the side: a complete index costs little more
    }
    let cut = entries[..k].iter().map(|e| e.score).fold(f64::INFINITY, f64::min);
    let mut rest = entries.split_off(k);
    rest.retain(|e| near(e.score, cut));
    entries.extend(rest);
    Some(entries.iter().map(|e| e.score).fold(f64::INFINITY, f64::min))
}
