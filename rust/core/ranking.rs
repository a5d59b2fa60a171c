//! The ranking index of one (market, side): positions sorted by score, with Fenwick trees
//! over "still in the queue" and "lots held" so exact rank and lots-ahead queries cost
//! O(log n). Shrinking or closing a position updates the trees in place (no re-sort);
//! a mark change invalidates the whole index, which the engine rebuilds lazily.

use crate::core::score::desc_key;

/// Marker in `order` for a position that has left the queue.
const GONE: u32 = u32::MAX;

/// Fenwick (binary indexed) tree over i64.
#[derive(Clone, Default, Debug)]
struct Fenwick {
    tree: Vec<i64>,
}

impl Fenwick {
    /// O(n) construction from point values.
    fn from_values(values: impl Iterator<Item = i64>) -> Fenwick {
        let mut tree: Vec<i64> = values.collect();
        let n = tree.len();
        for i in 0..n {
            let parent = i | (i + 1);
            if parent < n {
                tree[parent] += tree[i];
            }
        }
        Fenwick { tree }
    }
    fn add(&mut self, mut i: usize, delta: i64) {
        while i < self.tree.len() {
            self.tree[i] += delta;
            i |= i + 1;
        }
    }
    /// Sum of values at positions `< end`.
    fn prefix(&self, end: usize) -> i64 {
        let (mut i, mut s) = (end, 0);
        while i > 0 {
            s += self.tree[i - 1];
            i &= i - 1;
        }
        s
    }
}

/// One entry handed to `RankIndex::build`.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub slot: u32,
    pub account: u64,
    pub score: f64,
    pub lots: i64,
}

#[derive(Clone, Default, Debug)]
pub struct RankIndex {
    /// Slots in queue order (`GONE` once a position has left).
    order: Vec<u32>,
    scores: Vec<f64>,
    in_queue: Fenwick,
    lots: Fenwick,
    /// First position of `order` that may still be in the queue.
    head: usize,
    len: usize,
}

impl RankIndex {
    /// Sorts entries by (score descending, account ascending, slot ascending).
    /// Returns the index and, for each entry in queue order, its slot and position, so the
    /// caller can record where each slot sits.
    pub fn build(mut entries: Vec<Entry>) -> RankIndex {
        entries.sort_unstable_by_key(|e| (desc_key(e.score), e.account, e.slot));
        let in_queue = Fenwick::from_values(entries.iter().map(|_| 1));
        let lots = Fenwick::from_values(entries.iter().map(|e| e.lots));
        RankIndex {
            order: entries.iter().map(|e| e.slot).collect(),
            scores: entries.iter().map(|e| e.score).collect(),
            in_queue,
            lots,
            head: 0,
            len: entries.len(),
        }
    }

    /// Number of positions still in the queue.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Slot at queue position `pos`, or `None` if it has left.
    pub fn slot_at(&self, pos: usize) -> Option<u32> {
        match self.order[pos] {
            GONE => None,
            s => Some(s),
        }
    }
    /// (position, slot) pairs in queue order.
    pub fn slots(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.order.iter().enumerate().filter(|(_, &s)| s != GONE).map(|(i, &s)| (i, s))
    }
    pub fn score_at(&self, pos: usize) -> f64 {
        self.scores[pos]
    }
    /// Exact 1-based rank of the position at `pos`.
    pub fn rank_at(&self, pos: usize) -> u64 {
        self.in_queue.prefix(pos) as u64 + 1
    }
    /// Lots held by everyone ahead of `pos`.
    pub fn lots_ahead(&self, pos: usize) -> i64 {
        self.lots.prefix(pos)
    }
    /// Positions in queue order from the head.
    pub fn queue(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.order[self.head..].iter().enumerate().filter(|(_, &s)| s != GONE).map(move |(i, &s)| (i + self.head, s))
    }
    /// A position at `pos` gave up `lots` lots but stays in the queue.
    pub fn shrink(&mut self, pos: usize, lots: i64) {
        self.lots.add(pos, -lots);
    }
    /// Lots held by the entry at `pos`.
    fn lots_at(&self, pos: usize) -> i64 {
        self.lots.prefix(pos + 1) - self.lots.prefix(pos)
    }

    /// Gives the entry at `pos` a new score and moves it (by swaps with its queued
    /// neighbours) to where (score desc, account, slot) puts it. A partial close changes a
    /// score only by margin rounding, so it rarely moves and then only a few places.
    /// `account` is the tie-break of a slot; `moved(slot, pos)` reports each new position.
    pub fn rescore(&mut self, pos: usize, score: f64, account: impl Fn(u32) -> u64, mut moved: impl FnMut(u32, usize)) {
        self.scores[pos] = score;
        let key = |idx: &RankIndex, p: usize| (desc_key(idx.scores[p]), account(idx.order[p]), idx.order[p]);
        let mut cur = pos;
        // Towards the back while the next queued entry sorts first, else towards the front.
        while let Some(next) = (cur + 1..self.order.len()).find(|&i| self.order[i] != GONE) {
            if key(self, next) >= key(self, cur) {
                break;
            }
            self.swap(cur, next);
            moved(self.order[cur], cur);
            cur = next;
        }
        while let Some(prev) = (self.head..cur).rev().find(|&i| self.order[i] != GONE) {
            if key(self, prev) <= key(self, cur) {
                break;
            }
            self.swap(prev, cur);
            moved(self.order[cur], cur);
            cur = prev;
        }
        if cur != pos {
            moved(self.order[cur], cur);
        }
    }

    /// Swaps two queued entries.
    fn swap(&mut self, a: usize, b: usize) {
        let (la, lb) = (self.lots_at(a), self.lots_at(b));
        self.order.swap(a, b);
        self.scores.swap(a, b);
        self.lots.add(a, lb - la);
        self.lots.add(b, la - lb);
    }

    /// A position holding `lots` lots at `pos` leaves the queue.
    pub fn remove(&mut self, pos: usize, lots: i64) {
        debug_assert!(self.order[pos] != GONE);
        self.order[pos] = GONE;
        self.in_queue.add(pos, -1);
        self.lots.add(pos, -lots);
        self.len -= 1;
        while self.head < self.order.len() && self.order[self.head] == GONE {
            self.head += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(slot: u32, account: u64, score: f64, lots: i64) -> Entry {
        Entry { slot, account, score, lots }
    }

    #[test]
    fn orders_by_score_then_account_then_slot() {
        let idx = RankIndex::build(vec![e(0, 7, 1.0, 5), e(1, 3, 2.0, 1), e(2, 5, 1.0, 2), e(3, 5, 1.0, 4)]);
        let slots: Vec<u32> = idx.queue().map(|(_, s)| s).collect();
        assert_eq!(slots, vec![1, 2, 3, 0]);
        assert_eq!(idx.rank_at(3), 4);
        assert_eq!(idx.lots_ahead(3), 1 + 2 + 4);
    }

    #[test]
    fn rescore_moves_an_entry_to_its_place() {
        let mut idx = RankIndex::build(vec![e(0, 1, 4.0, 1), e(1, 2, 3.0, 2), e(2, 3, 2.0, 3), e(3, 4, 1.0, 4)]);
        idx.remove(2, 3);
        let mut moved = vec![];
        // Slot 0 drops below slot 1 and the removed entry, ahead of slot 3.
        idx.rescore(0, 1.5, |s| s as u64 + 1, |slot, pos| moved.push((slot, pos)));
        let q: Vec<u32> = idx.queue().map(|(_, s)| s).collect();
        assert_eq!(q, vec![1, 0, 3]);
        for (pos, slot) in idx.queue() {
            assert!(moved.iter().all(|&(s, p)| s != slot || p == pos));
        }
        assert_eq!(idx.lots_ahead(3), 2 + 1);
        // And back up to the front.
        let (pos0, _) = idx.queue().find(|&(_, s)| s == 0).unwrap();
        idx.rescore(pos0, 9.0, |s| s as u64 + 1, |_, _| {});
        assert_eq!(idx.queue().map(|(_, s)| s).collect::<Vec<_>>(), vec![0, 1, 3]);
        assert_eq!(idx.rank_at(idx.queue().nth(2).unwrap().0), 3);
    }

    #[test]
    fn remove_and_shrink_update_ranks() {
        let mut idx = RankIndex::build(vec![e(0, 1, 3.0, 10), e(1, 2, 2.0, 20), e(2, 3, 1.0, 30)]);
        idx.shrink(0, 4);
        assert_eq!(idx.lots_ahead(2), 6 + 20);
        idx.remove(0, 6);
        assert_eq!(idx.rank_at(1), 1);
        assert_eq!(idx.rank_at(2), 2);
        assert_eq!(idx.lots_ahead(2), 20);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.queue().next(), Some((1, 1)));
    }
}
