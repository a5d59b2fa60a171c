//! The ranking index of one (market, side): positions sorted by score, with Fenwick trees
//! over "still in the queue" and "lots held" so exact rank and lots-ahead queries cost
//! O(log n). Shrinking or closing a position updates the trees in place (no re-sort);
//! a mark change invalidates the whole index, which the engine rebuilds lazily.

use std::cmp::Ordering;

use crate::core::policy::score::{cmp_desc, desc_key, lights, lights_by_quantity, near, queue_lights, Fraction, Lights};

/// Marker in `order` for a position that has left the queue.
const GONE: u32 = u32::MAX;

/// Fenwick (binary indexed) tree; `T` is i32 for counts and i64 for lots.
#[derive(Clone, Default, Debug)]
struct Fenwick<T> {
    tree: Vec<T>,
}

impl<T: Copy + Default + std::ops::AddAssign + std::ops::Add<Output = T>> Fenwick<T> {
    /// O(n) construction from point values.
    fn from_values(values: impl Iterator<Item = T>) -> Fenwick<T> {
        let mut tree: Vec<T> = values.collect();
        let n = tree.len();
        for i in 0..n {
            let parent = i | (i + 1);
            if parent < n {
                let v = tree[i];
                tree[parent] += v;
            }
        }
        Fenwick { tree }
    }
    fn add(&mut self, mut i: usize, delta: T) {
        while i < self.tree.len() {
            self.tree[i] += delta;
            i |= i + 1;
        }
    }
    /// Sum of values at positions `< end`.
    fn prefix(&self, end: usize) -> T {
        let (mut i, mut s) = (end, T::default());
        while i > 0 {
            s += self.tree[i - 1];
            i &= i - 1;
        }
        s
    }
}

impl Fenwick<i32> {
    /// The smallest `end` with `prefix(end) > k`, minus one: the position of the `k`-th
    /// (0-based) unit, for non-negative values. `None` when the total is `<= k`.
    fn select(&self, k: i32) -> Option<usize> {
        let n = self.tree.len();
        let (mut pos, mut left) = (0usize, k + 1);
        let mut step = if n == 0 { 0 } else { 1 << (usize::BITS - 1 - n.leading_zeros()) };
        while step > 0 {
            if pos + step <= n && self.tree[pos + step - 1] < left {
                pos += step;
                left -= self.tree[pos - 1];
            }
            step >>= 1;
        }
        (pos < n).then_some(pos)
    }
}

/// What the index needs to know about a slot to order it: higher score first (near-ties
/// settled by the exact score), then ascending account, then ascending slot.
pub trait QueueOrder {
    fn account(&self, slot: u32) -> u64;
    fn exact(&self, slot: u32) -> Option<Fraction>;

    fn cmp(&self, (score_a, a): (f64, u32), (score_b, b): (f64, u32)) -> Ordering {
        cmp_desc(score_a, score_b, || Some(self.exact(a)?.cmp_value(&self.exact(b)?)))
            .then_with(|| self.account(a).cmp(&self.account(b)))
            .then(a.cmp(&b))
    }

    /// Whether two scores are exactly equal (as fractions where the policy has them).
    fn same_score(&self, (score_a, a): (f64, u32), (score_b, b): (f64, u32)) -> bool {
        cmp_desc(score_a, score_b, || Some(self.exact(a)?.cmp_value(&self.exact(b)?))) == Ordering::Equal
    }
}

/// Sorts `items` into queue order. The sort runs on plain integer keys (score as a total
/// order key, account, id); only runs of near-tied scores, which are rare, are then re-sorted
/// with the exact comparison. Runs are separated by gaps far larger than the float error,
/// so across runs the float order is the exact order.
pub fn sort_queue<T>(items: &mut [T], parts: impl Fn(&T) -> (f64, u64, u32), order: &impl QueueOrder) {
    items.sort_unstable_by_key(|t| {
        let (score, account, id) = parts(t);
        (desc_key(score), account, id)
    });
    let mut start = 0;
    for i in 1..=items.len() {
        if i == items.len() || !near(parts(&items[i - 1]).0, parts(&items[i]).0) {
            if i - start > 1 {
                items[start..i].sort_by(|x, y| {
                    let (px, py) = (parts(x), parts(y));
                    order.cmp((px.0, px.2), (py.0, py.2))
                });
            }
            start = i;
        }
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
    in_queue: Fenwick<i32>,
    lots: Fenwick<i64>,
    /// First position of `order` that may still be in the queue.
    head: usize,
    len: usize,
}

impl RankIndex {
    /// Heap bytes of the index.
    pub fn footprint(&self) -> usize {
        use crate::core::units::footprint::vec;
        vec(&self.order) + vec(&self.scores) + vec(&self.in_queue.tree) + vec(&self.lots.tree)
    }
    /// Sorts entries into queue order (see `QueueOrder`).
    pub fn build(mut entries: Vec<Entry>, order: &impl QueueOrder) -> RankIndex {
        sort_queue(&mut entries, |e| (e.score, e.account, e.slot), order);
        let in_queue = Fenwick::from_values(entries.iter().map(|_| 1i32));
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
    /// (position, slot) pairs in queue order.
    pub fn slots(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.order.iter().enumerate().filter(|(_, &s)| s != GONE).map(|(i, &s)| (i, s))
    }
    /// The slot at raw position `pos`.
    pub fn slot_at(&self, pos: usize) -> u32 {
        self.order[pos]
    }
    pub fn score_at(&self, pos: usize) -> f64 {
        self.scores[pos]
    }
    /// Exact 1-based rank of the position at `pos`.
    pub fn rank_at(&self, pos: usize) -> u64 {
        self.in_queue.prefix(pos) as u64 + 1
    }
    /// Lots held by everyone still queued.
    pub fn total_lots(&self) -> i64 {
        self.lots.prefix(self.order.len())
    }
    /// Lots held by everyone ahead of `pos`.
    pub fn lots_ahead(&self, pos: usize) -> i64 {
        self.lots.prefix(pos)
    }
    /// Rank, percentile and lights of every queued position, in queue order (docs/model.md
    /// §3): (raw position, rank, percentile, lights, lots queued ahead).
    pub fn lights(&self, method: Lights, order: &impl QueueOrder) -> Vec<(usize, u64, f64, u8, i64)> {
        let queued: Vec<(usize, u32)> = self.queue().collect();
        // One prefix query per position: its lots are the next one's lots ahead less its own.
        let ahead: Vec<i64> = queued.iter().map(|&(pos, _)| self.lots.prefix(pos)).chain([self.total_lots()]).collect();
        let lots: Vec<i64> = ahead.windows(2).map(|w| w[1] - w[0]).collect();
        let tie = |i: usize| {
            let ((a, sa), (b, sb)) = (queued[i], queued[i + 1]);
            order.same_score((self.scores[a], sa), (self.scores[b], sb))
        };
        let out = queue_lights(method, &lots, tie);
        queued.iter().zip(out).enumerate().map(|(i, (&(pos, _), (pct, l)))| (pos, i as u64 + 1, pct, l, ahead[i])).collect()
    }

    /// Rank, percentile, lights and lots queued ahead of the one queued position at `pos`,
    /// as `lights` gives them for the whole queue, in O(log n) (plus its exact-tie group).
    pub fn place(&self, pos: usize, method: Lights, order: &impl QueueOrder) -> (u64, f64, u8, i64) {
        let (rank, n, ahead) = (self.rank_at(pos), self.len as u64, self.lots.prefix(pos));
        match method {
            Lights::Count => (rank, rank as f64 / n as f64, lights(rank, n), ahead),
            Lights::Quantity => {
                // A tie group shares the light of its cumulative quantity through its last member.
                let mut last = pos;
                for next in (pos + 1..self.order.len()).filter(|&i| self.order[i] != GONE) {
                    if !order.same_score((self.scores[last], self.order[last]), (self.scores[next], self.order[next])) {
                        break;
                    }
                    last = next;
                }
                let (cum, total) = (self.lots.prefix(last + 1) as i128, self.total_lots() as i128);
                (rank, cum as f64 / total as f64, lights_by_quantity(cum, total), ahead)
            }
        }
    }

    /// Positions in queue order from the head.
    pub fn queue(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.order[self.head..].iter().enumerate().filter(|(_, &s)| s != GONE).map(move |(i, &s)| (i + self.head, s))
    }
    /// Queued (position, slot) pairs circularly from raw position `start` (taken modulo the
    /// index's size): a walk that may begin anywhere without collecting the queue first.
    pub fn queue_from(&self, start: usize) -> impl Iterator<Item = (usize, u32)> + '_ {
        let n = self.order.len();
        let start = if n == 0 { 0 } else { start % n };
        (start..n).chain(0..start).filter(move |&i| self.order[i] != GONE).map(move |i| (i, self.order[i]))
    }

    /// Raw position of the `k`-th (0-based) entry still queued, in O(log n).
    pub fn nth_queued(&self, k: usize) -> Option<usize> {
        self.in_queue.select(i32::try_from(k).ok()?)
    }

    /// Raw size of the index (queued and departed entries).
    pub fn capacity(&self) -> usize {
        self.order.len()
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
    /// `moved(slot, pos)` reports each new position.
    pub fn rescore(&mut self, pos: usize, score: f64, order: &impl QueueOrder, mut moved: impl FnMut(u32, usize)) {
        self.scores[pos] = score;
        let cmp = |idx: &RankIndex, a: usize, b: usize| order.cmp((idx.scores[a], idx.order[a]), (idx.scores[b], idx.order[b]));
        let mut cur = pos;
        // Towards the back while the next queued entry sorts first, else towards the front.
        while let Some(next) = (cur + 1..self.order.len()).find(|&i| self.order[i] != GONE) {
            if cmp(self, next, cur) != Ordering::Less {
                break;
            }
            self.swap(cur, next);
            moved(self.order[cur], cur);
            cur = next;
        }
        while let Some(prev) = (self.head..cur).rev().find(|&i| self.order[i] != GONE) {
            if cmp(self, prev, cur) != Ordering::Greater {
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

    /// Accounts by slot; no exact scores.
    struct Accounts(Vec<u64>);
    impl QueueOrder for Accounts {
        fn account(&self, slot: u32) -> u64 {
            self.0[slot as usize]
        }
        fn exact(&self, _: u32) -> Option<Fraction> {
            None
        }
    }

    #[test]
    fn orders_by_score_then_account_then_slot() {
        let idx = RankIndex::build(vec![e(0, 7, 1.0, 5), e(1, 3, 2.0, 1), e(2, 5, 1.0, 2), e(3, 5, 1.0, 4)], &Accounts(vec![7, 3, 5, 5]));
        let slots: Vec<u32> = idx.queue().map(|(_, s)| s).collect();
        assert_eq!(slots, vec![1, 2, 3, 0]);
        assert_eq!(idx.rank_at(3), 4);
        assert_eq!(idx.lots_ahead(3), 1 + 2 + 4);
    }

    #[test]
    fn rescore_moves_an_entry_to_its_place() {
        let accounts = Accounts(vec![1, 2, 3, 4]);
        let mut idx = RankIndex::build(vec![e(0, 1, 4.0, 1), e(1, 2, 3.0, 2), e(2, 3, 2.0, 3), e(3, 4, 1.0, 4)], &accounts);
        idx.remove(2, 3);
        let mut moved = vec![];
        // Slot 0 drops below slot 1 and the removed entry, ahead of slot 3.
        idx.rescore(0, 1.5, &accounts, |slot, pos| moved.push((slot, pos)));
        let q: Vec<u32> = idx.queue().map(|(_, s)| s).collect();
        assert_eq!(q, vec![1, 0, 3]);
        for (pos, slot) in idx.queue() {
            assert!(moved.iter().all(|&(s, p)| s != slot || p == pos));
        }
        assert_eq!(idx.lots_ahead(3), 2 + 1);
        // And back up to the front.
        let (pos0, _) = idx.queue().find(|&(_, s)| s == 0).unwrap();
        idx.rescore(pos0, 9.0, &accounts, |_, _| {});
        assert_eq!(idx.queue().map(|(_, s)| s).collect::<Vec<_>>(), vec![0, 1, 3]);
        assert_eq!(idx.rank_at(idx.queue().nth(2).unwrap().0), 3);
    }

    #[test]
    fn nth_queued_skips_departed_entries() {
        let mut idx = RankIndex::build((0..7).map(|i| e(i, i as u64, 10.0 - i as f64, 1)).collect(), &Accounts((0..7).collect()));
        idx.remove(0, 1);
        idx.remove(3, 1);
        idx.remove(4, 1);
        // Queued raw positions: 1, 2, 5, 6.
        let got: Vec<Option<usize>> = (0..5).map(|k| idx.nth_queued(k)).collect();
        assert_eq!(got, vec![Some(1), Some(2), Some(5), Some(6), None]);
        for (k, (pos, _)) in idx.queue().enumerate() {
            assert_eq!(idx.rank_at(pos), k as u64 + 1);
        }
    }

    #[test]
    fn remove_and_shrink_update_ranks() {
        let mut idx = RankIndex::build(vec![e(0, 1, 3.0, 10), e(1, 2, 2.0, 20), e(2, 3, 1.0, 30)], &Accounts(vec![1, 2, 3]));
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
