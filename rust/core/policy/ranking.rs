//! The ranking index of one (market, side): positions sorted by score, with exact rank and
//! lots-ahead queries in O(log n + BLOCK). Shrinking or closing a position updates it in
//! place (no re-sort); a mark change invalidates the whole index, which the engine rebuilds
//! lazily.
//!
//! Per entry the index keeps only the slot (4 bytes) and the score (8 bytes). Queued counts
//! and lots are kept per block of `BLOCK` consecutive entries, in Fenwick trees over the
//! blocks (12/`BLOCK` bytes per entry). A query adds up the blocks before the entry's own and
//! scans its block up to the entry (or takes the blocks through its own and scans back from
//! the block's end, whichever is shorter): departed entries (`GONE`) are skipped, and a
//! queued entry's lots are read from the position store (`SlotLots`: the position's `qty`).
//!
//! **Invariant:** whenever the index is read, each block's lots are the sum of
//! `SlotLots::lots` over its queued entries (and its count is the number of them). The
//! callers keep it (`policy::queues::Market` and the engine's apply step):
//! - a fill that leaves a position open lowers the store's `qty` and calls `shrink` with
//!   the same lots before anything reads the index (`Engine::apply_plan`);
//! - a position leaves the queue by `remove` with the `qty` the store holds at that moment,
//!   before the store drops it (`Market::remove_member`, `Market::rescore_member`);
//! - `rescore` moves entries between blocks, with their lots, and never changes a `qty`;
//! - any other change to a position (an upsert replacing it, `load`, rollback, a snapshot
//!   restore) makes its side's index stale, and the index is rebuilt from the store.
//!
//! Debug builds check the invariant whenever `lights` walks a whole queue.

use std::cmp::Ordering;

use crate::core::policy::score::{cmp_desc, desc_key, lights, lights_by_quantity, near, queue_lights, Fraction, Lights};

/// Marker in `order` for a position that has left the queue.
const GONE: u32 = u32::MAX;

/// Entries per block of the count and lots trees: a query scans at most half a block of
/// `order` (reading the store for the queued entries), and the trees cost 12/`BLOCK` bytes
/// per entry (0.19 here). Blocks of 32 took 0.19 bytes more per entry and measured the same
/// on the 1M venue book (per-account reads, interleaved liquidations, the cascade).
const BLOCK: usize = 64;

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
    fn total(&self) -> T {
        self.prefix(self.tree.len())
    }
}

impl Fenwick<i32> {
    /// For non-negative values: the position holding the `k`-th (0-based) unit, and that
    /// unit's 0-based index among the position's own units. `None` when the total is `<= k`.
    fn select(&self, k: i32) -> Option<(usize, i32)> {
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
        // Here prefix(pos) = k + 1 − left, so the unit is the (left − 1)-th of position `pos`.
        (pos < n).then_some((pos, left - 1))
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

/// The lots a queued slot holds now: the position store's `qty` (see the module's invariant).
pub trait SlotLots {
    fn lots(&self, slot: u32) -> i64;
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
    /// Per block of `BLOCK` entries of `order`: how many are still queued.
    in_queue: Fenwick<i32>,
    /// Per block: the lots its queued entries hold.
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
    /// Sorts entries into queue order (see `QueueOrder`). Each entry's `lots` must be what
    /// `SlotLots` gives for its slot.
    pub fn build(mut entries: Vec<Entry>, order: &impl QueueOrder) -> RankIndex {
        sort_queue(&mut entries, |e| (e.score, e.account, e.slot), order);
        let in_queue = Fenwick::from_values(entries.chunks(BLOCK).map(|b| b.len() as i32));
        let lots = Fenwick::from_values(entries.chunks(BLOCK).map(|b| b.iter().map(|e| e.lots).sum()));
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
    /// The sum of `f(slot)` over the queued entries ahead of `pos`, where `blocks(b)` is its
    /// sum over the blocks before block `b`: the blocks before `pos`'s own plus its queued
    /// entries before `pos`, or the blocks through its own less its queued entries from `pos`
    /// on, whichever scan of the block is shorter.
    fn ahead(&self, pos: usize, blocks: impl Fn(usize) -> i64, f: impl Fn(u32) -> i64) -> i64 {
        let (block, start) = (pos / BLOCK, pos - pos % BLOCK);
        let end = (start + BLOCK).min(self.order.len());
        let sum = |slots: &[u32]| slots.iter().filter(|&&s| s != GONE).map(|&s| f(s)).sum::<i64>();
        if pos - start <= end - pos {
            blocks(block) + sum(&self.order[start..pos])
        } else {
            blocks(block + 1) - sum(&self.order[pos..end])
        }
    }
    /// Exact 1-based rank of the position at `pos`.
    pub fn rank_at(&self, pos: usize) -> u64 {
        self.ahead(pos, |b| self.in_queue.prefix(b) as i64, |_| 1) as u64 + 1
    }
    /// Lots held by everyone still queued.
    pub fn total_lots(&self) -> i64 {
        self.lots.total()
    }
    /// Lots held by everyone ahead of `pos`.
    pub fn lots_ahead(&self, pos: usize, lots: &impl SlotLots) -> i64 {
        self.ahead(pos, |b| self.lots.prefix(b), |s| lots.lots(s))
    }
    /// Rank, percentile and lights of every queued position, in queue order (docs/model.md
    /// §3): (raw position, rank, percentile, lights, lots queued ahead).
    pub fn lights(&self, method: Lights, order: &impl QueueOrder, lots: &impl SlotLots) -> Vec<(usize, u64, f64, u8, i64)> {
        let queued: Vec<(usize, u32)> = self.queue().collect();
        let held: Vec<i64> = queued.iter().map(|&(_, slot)| lots.lots(slot)).collect();
        let tie = |i: usize| {
            let ((a, sa), (b, sb)) = (queued[i], queued[i + 1]);
            order.same_score((self.scores[a], sa), (self.scores[b], sb))
        };
        let out = queue_lights(method, &held, tie);
        let mut ahead = 0i64;
        let rows = queued.iter().zip(&held).zip(out).enumerate().map(|(i, ((&(pos, _), &h), (pct, l)))| {
            ahead += h;
            (pos, i as u64 + 1, pct, l, ahead - h)
        });
        let rows: Vec<_> = rows.collect();
        debug_assert_eq!(ahead, self.total_lots(), "the block lots are out of step with the store");
        rows
    }

    /// Rank, percentile, lights and lots queued ahead of the one queued position at `pos`,
    /// as `lights` gives them for the whole queue, in O(log n + BLOCK) (plus its exact-tie
    /// group).
    pub fn place(&self, pos: usize, method: Lights, order: &impl QueueOrder, lots: &impl SlotLots) -> (u64, f64, u8, i64) {
        let (rank, n, ahead) = (self.rank_at(pos), self.len as u64, self.lots_ahead(pos, lots));
        match method {
            Lights::Count => (rank, rank as f64 / n as f64, lights(rank, n), ahead),
            Lights::Quantity => {
                // A tie group shares the light of its cumulative quantity through its last member.
                let (mut last, mut cum) = (pos, ahead as i128 + lots.lots(self.order[pos]) as i128);
                for next in (pos + 1..self.order.len()).filter(|&i| self.order[i] != GONE) {
                    if !order.same_score((self.scores[last], self.order[last]), (self.scores[next], self.order[next])) {
                        break;
                    }
                    last = next;
                    cum += lots.lots(self.order[next]) as i128;
                }
                let total = self.total_lots() as i128;
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

    /// Raw position of the `k`-th (0-based) entry still queued, in O(log n + BLOCK).
    pub fn nth_queued(&self, k: usize) -> Option<usize> {
        let (block, within) = self.in_queue.select(i32::try_from(k).ok()?)?;
        let start = block * BLOCK;
        let queued = self.order[start..].iter().take(BLOCK).enumerate().filter(|(_, &s)| s != GONE);
        queued.map(|(i, _)| start + i).nth(within as usize)
    }

    /// Raw size of the index (queued and departed entries).
    pub fn capacity(&self) -> usize {
        self.order.len()
    }

    /// A position at `pos` gave up `lots` lots but stays in the queue (its store `qty` is
    /// lowered by the same lots before the index is read again).
    pub fn shrink(&mut self, pos: usize, lots: i64) {
        self.lots.add(pos / BLOCK, -lots);
    }

    /// Gives the entry at `pos` a new score and moves it (by swaps with its queued
    /// neighbours) to where (score desc, account, slot) puts it. A partial close changes a
    /// score only by margin rounding, so it rarely moves and then only a few places.
    /// `moved(slot, pos)` reports each new position.
    pub fn rescore(&mut self, pos: usize, score: f64, order: &impl QueueOrder, lots: &impl SlotLots, mut moved: impl FnMut(u32, usize)) {
        self.scores[pos] = score;
        let cmp = |idx: &RankIndex, a: usize, b: usize| order.cmp((idx.scores[a], idx.order[a]), (idx.scores[b], idx.order[b]));
        let mut cur = pos;
        // Towards the back while the next queued entry sorts first, else towards the front.
        while let Some(next) = (cur + 1..self.order.len()).find(|&i| self.order[i] != GONE) {
            if cmp(self, next, cur) != Ordering::Less {
                break;
            }
            self.swap(cur, next, lots);
            moved(self.order[cur], cur);
            cur = next;
        }
        while let Some(prev) = (self.head..cur).rev().find(|&i| self.order[i] != GONE) {
            if cmp(self, prev, cur) != Ordering::Greater {
                break;
            }
            self.swap(prev, cur, lots);
            moved(self.order[cur], cur);
            cur = prev;
        }
        if cur != pos {
            moved(self.order[cur], cur);
        }
    }

    /// Swaps two queued entries; across blocks, their lots change blocks with them.
    fn swap(&mut self, a: usize, b: usize, lots: &impl SlotLots) {
        let (block_a, block_b) = (a / BLOCK, b / BLOCK);
        if block_a != block_b {
            let (la, lb) = (lots.lots(self.order[a]), lots.lots(self.order[b]));
            self.lots.add(block_a, lb - la);
            self.lots.add(block_b, la - lb);
        }
        self.order.swap(a, b);
        self.scores.swap(a, b);
    }

    /// A position holding `lots` lots at `pos` leaves the queue.
    pub fn remove(&mut self, pos: usize, lots: i64) {
        debug_assert!(self.order[pos] != GONE);
        self.order[pos] = GONE;
        self.in_queue.add(pos / BLOCK, -1);
        self.lots.add(pos / BLOCK, -lots);
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

    /// Accounts and lots (the store's `qty`) by slot; no exact scores.
    struct Book {
        accounts: Vec<u64>,
        qty: Vec<i64>,
    }
    impl QueueOrder for Book {
        fn account(&self, slot: u32) -> u64 {
            self.accounts[slot as usize]
        }
        fn exact(&self, _: u32) -> Option<Fraction> {
            None
        }
    }
    impl SlotLots for Book {
        fn lots(&self, slot: u32) -> i64 {
            self.qty[slot as usize]
        }
    }
    /// The book of `entries` (slots 0..n in any order).
    fn book_of(entries: &[Entry]) -> Book {
        let mut b = Book { accounts: vec![0; entries.len()], qty: vec![0; entries.len()] };
        for x in entries {
            (b.accounts[x.slot as usize], b.qty[x.slot as usize]) = (x.account, x.lots);
        }
        b
    }

    #[test]
    fn orders_by_score_then_account_then_slot() {
        let entries = vec![e(0, 7, 1.0, 5), e(1, 3, 2.0, 1), e(2, 5, 1.0, 2), e(3, 5, 1.0, 4)];
        let book = book_of(&entries);
        let idx = RankIndex::build(entries, &book);
        let slots: Vec<u32> = idx.queue().map(|(_, s)| s).collect();
        assert_eq!(slots, vec![1, 2, 3, 0]);
        assert_eq!(idx.rank_at(3), 4);
        assert_eq!(idx.lots_ahead(3, &book), 1 + 2 + 4);
    }

    #[test]
    fn rescore_moves_an_entry_to_its_place() {
        let entries = vec![e(0, 1, 4.0, 1), e(1, 2, 3.0, 2), e(2, 3, 2.0, 3), e(3, 4, 1.0, 4)];
        let book = book_of(&entries);
        let mut idx = RankIndex::build(entries, &book);
        idx.remove(2, 3);
        let mut moved = vec![];
        // Slot 0 drops below slot 1 and the removed entry, ahead of slot 3.
        idx.rescore(0, 1.5, &book, &book, |slot, pos| moved.push((slot, pos)));
        let q: Vec<u32> = idx.queue().map(|(_, s)| s).collect();
        assert_eq!(q, vec![1, 0, 3]);
        for (pos, slot) in idx.queue() {
            assert!(moved.iter().all(|&(s, p)| s != slot || p == pos));
        }
        assert_eq!(idx.lots_ahead(3, &book), 2 + 1);
        // And back up to the front.
        let (pos0, _) = idx.queue().find(|&(_, s)| s == 0).unwrap();
        idx.rescore(pos0, 9.0, &book, &book, |_, _| {});
        assert_eq!(idx.queue().map(|(_, s)| s).collect::<Vec<_>>(), vec![0, 1, 3]);
        assert_eq!(idx.rank_at(idx.queue().nth(2).unwrap().0), 3);
    }

    #[test]
    fn nth_queued_skips_departed_entries() {
        let entries: Vec<Entry> = (0..7).map(|i| e(i, i as u64, 10.0 - i as f64, 1)).collect();
        let mut idx = RankIndex::build(entries, &book_of(&[]));
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
        let entries = vec![e(0, 1, 3.0, 10), e(1, 2, 2.0, 20), e(2, 3, 1.0, 30)];
        let mut book = book_of(&entries);
        let mut idx = RankIndex::build(entries, &book);
        book.qty[0] -= 4;
        idx.shrink(0, 4);
        assert_eq!(idx.lots_ahead(2, &book), 6 + 20);
        idx.remove(0, 6);
        assert_eq!(idx.rank_at(1), 1);
        assert_eq!(idx.rank_at(2), 2);
        assert_eq!(idx.lots_ahead(2, &book), 20);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.queue().next(), Some((1, 1)));
    }

    /// The plain per-entry index the blocked one must agree with: raw positions holding a
    /// slot (or nothing once it left) and a score; counts and lots summed entry by entry.
    struct Plain {
        order: Vec<Option<u32>>,
        scores: Vec<f64>,
    }

    impl Plain {
        fn queued(&self) -> Vec<(usize, u32)> {
            self.order.iter().enumerate().filter_map(|(i, s)| s.map(|s| (i, s))).collect()
        }
        /// Rescoring keeps the departed entries where they are and sorts the queued ones
        /// into the unique (score desc, account, slot) order.
        fn rescore(&mut self, pos: usize, score: f64, book: &Book) {
            self.scores[pos] = score;
            let at: Vec<usize> = self.queued().into_iter().map(|(i, _)| i).collect();
            let mut items: Vec<(u32, f64)> = at.iter().map(|&i| (self.order[i].unwrap(), self.scores[i])).collect();
            items.sort_by(|x, y| book.cmp((x.1, x.0), (y.1, y.0)));
            for (&i, (slot, score)) in at.iter().zip(items) {
                (self.order[i], self.scores[i]) = (Some(slot), score);
            }
        }
        /// (raw position, rank, percentile, lights, lots ahead) of every queued entry.
        fn lights(&self, method: Lights, book: &Book) -> Vec<(usize, u64, f64, u8, i64)> {
            let q = self.queued();
            let lots: Vec<i64> = q.iter().map(|&(_, s)| book.qty[s as usize]).collect();
            let tie = |i: usize| book.same_score((self.scores[q[i].0], q[i].1), (self.scores[q[i + 1].0], q[i + 1].1));
            let out = queue_lights(method, &lots, tie);
            let ahead = lots.iter().scan(0, |sum, &l| {
                *sum += l;
                Some(*sum - l)
            });
            q.iter().zip(out).zip(ahead).enumerate().map(|(i, ((&(pos, _), (pct, l)), a))| (pos, i as u64 + 1, pct, l, a)).collect()
        }
    }

    fn check(idx: &RankIndex, plain: &Plain, book: &Book, at: &[usize]) {
        let queued = plain.queued();
        assert_eq!(idx.queue().collect::<Vec<_>>(), queued);
        assert_eq!(idx.slots().collect::<Vec<_>>(), queued);
        assert_eq!(idx.len(), queued.len());
        assert_eq!(idx.total_lots(), queued.iter().map(|&(_, s)| book.qty[s as usize]).sum::<i64>());
        for method in [Lights::Count, Lights::Quantity] {
            let rows = plain.lights(method, book);
            assert_eq!(idx.lights(method, book, book), rows);
            for (k, &(pos, rank, pct, light, ahead)) in rows.iter().enumerate() {
                assert_eq!(idx.place(pos, method, book, book), (rank, pct, light, ahead));
                if method == Lights::Count {
                    assert_eq!((idx.rank_at(pos), idx.lots_ahead(pos, book)), (rank, ahead));
                    assert_eq!(idx.nth_queued(k), Some(pos));
                    assert_eq!(at[idx.slot_at(pos) as usize], pos, "a move not reported");
                }
            }
        }
        assert_eq!(idx.nth_queued(queued.len()), None);
    }

    /// Random builds, shrinks, removals and rescores of indexes spanning up to five
    /// blocks (and exactly one or two), with many exactly tied scores: the blocked index
    /// answers every query as the plain per-entry one does.
    #[test]
    fn blocked_index_agrees_with_a_plain_one() {
        let mut state = 0x5eed_u64;
        let mut rnd = |n: u64| {
            // splitmix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % n.max(1)
        };
        for case in 0..48 {
            let n = match case % 4 {
                0 => [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK][case / 4 % 6],
                _ => rnd(5 * BLOCK as u64) as usize,
            };
            // Scores from a small set (exact ties, settled by account then slot).
            let mut entries: Vec<Entry> =
                (0..n as u32).map(|s| e(s, rnd(n as u64 / 2 + 1), rnd(40) as f64 - 8.0, 1 + rnd(40) as i64)).collect();
            let mut book = book_of(&entries);
            for i in (1..n).rev() {
                entries.swap(i, rnd(i as u64 + 1) as usize);
            }
            let mut idx = RankIndex::build(entries.clone(), &book);
            let mut plain = Plain { order: idx.order.iter().map(|&s| Some(s)).collect(), scores: idx.scores.clone() };
            let mut at = vec![usize::MAX; n];
            for (pos, slot) in idx.queue() {
                at[slot as usize] = pos;
            }
            check(&idx, &plain, &book, &at);
            for _ in 0..rnd(2 * n as u64 + 1) {
                let queued = plain.queued();
                if queued.is_empty() {
                    break;
                }
                let (pos, slot) = queued[rnd(queued.len() as u64) as usize];
                match rnd(3) {
                    0 if book.qty[slot as usize] > 1 => {
                        let lots = 1 + rnd(book.qty[slot as usize] as u64 - 1) as i64;
                        book.qty[slot as usize] -= lots;
                        idx.shrink(pos, lots);
                    }
                    1 => {
                        idx.remove(pos, book.qty[slot as usize]);
                        plain.order[pos] = None;
                        // What the store holds for a freed slot must never be read.
                        book.qty[slot as usize] = 1 << 40;
                    }
                    _ => {
                        let score = rnd(40) as f64 - 8.0;
                        idx.rescore(pos, score, &book, &book, |s, p| at[s as usize] = p);
                        plain.rescore(pos, score, &book);
                    }
                }
                check(&idx, &plain, &book, &at);
            }
        }
    }
}
