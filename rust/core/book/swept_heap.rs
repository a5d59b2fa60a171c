//! A max-heap that moves its entries a few per call, never all at once. The cross book files
//! each band in a per-market heap of up to a few hundred thousand entries, and leaves the
//! entry of a replaced band in place (skipped when popped). Two things used to touch every
//! entry inside one call: growing the heap's vector (a copy, and page faults on the new block:
//! 0.5–1.8 ms on the 1M venue book, the slowest liquidations by far, each the first band filed
//! in a market after its first mark left the heaps full) and clearing the stale entries. Both
//! now start a sweep: the entries move to a new heap with room to spare, a few per push, and
//! when the sweep was started by stale entries those are dropped on the way.

/// Entries a `sweep` call moves. Each call follows one push, so a sweep of `n` entries takes
/// `n / SWEEP` calls, and its new heap receives at most `n / SWEEP` pushes meanwhile.
pub const SWEEP: usize = 4;

/// A binary max-heap in a vector (`v[i] >= v[2i+1], v[2i+2]`). Unlike `BinaryHeap` its last
/// entry can be taken off in O(1) (a leaf: the rest stays a heap), which is how a sweep moves
/// entries: in memory order, with no sift.
#[derive(Clone, Debug, Default)]
struct Heap<T>(Vec<T>);

impl<T: Ord + Copy> Heap<T> {
    fn push(&mut self, x: T) {
        let mut i = self.0.len();
        self.0.push(x);
        while i > 0 && self.0[(i - 1) / 2] < x {
            self.0[i] = self.0[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        self.0[i] = x;
    }

    fn pop(&mut self) -> Option<T> {
        let top = *self.0.first()?;
        let last = self.0.pop().expect("non-empty");
        let (v, mut i) = (&mut self.0, 0);
        if v.is_empty() {
            return Some(top);
        }
        loop {
            let c = 2 * i + 1;
            if c >= v.len() {
                break;
            }
            let c = if c + 1 < v.len() && v[c + 1] > v[c] { c + 1 } else { c };
            if v[c] <= last {
                break;
            }
            v[i] = v[c];
            i = c;
        }
        v[i] = last;
        Some(top)
    }
}

/// A max-heap of `T`, with an optional sweep under way: the entries held when it began wait
/// in `unswept` (still seen by `peek` and `pop`) until `sweep` moves them.
#[derive(Clone, Debug)]
pub struct SweptHeap<T> {
    heap: Heap<T>,
    unswept: Heap<T>,
    /// Whether the sweep under way drops stale entries. One that only makes room moves them
    /// unchecked: a check reads the entry's account at random, which most of a sweep's cost
    /// would be (and a heap mostly stale starts a checking sweep of its own).
    checking: bool,
}

impl<T> Default for SweptHeap<T> {
    fn default() -> Self {
        SweptHeap { heap: Heap(Vec::new()), unswept: Heap(Vec::new()), checking: false }
    }
}

impl<T: Ord + Copy> SweptHeap<T> {
    /// Entries held, stale ones included.
    pub fn len(&self) -> usize {
        self.heap.0.len() + self.unswept.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pushes `x`, `live` being about how many entries are current. A sweep starts first
    /// when none is under way and either the heap is full (instead of a copy to a larger
    /// one) or stale entries pass half the live ones. Small heaps just grow.
    pub fn push(&mut self, x: T, live: usize) {
        let h = &self.heap.0;
        let full = h.len() == h.capacity() && h.len() >= 4096;
        let stale = h.len() > live + live / 2 + 32;
        if !self.sweeping() && (full || stale) {
            // Room for the entries kept, the pushes during the sweep, and half again.
            let room = if stale { live } else { h.len() } * 3 / 2 + h.len() / SWEEP + 64;
            self.unswept = std::mem::replace(&mut self.heap, Heap(Vec::with_capacity(room)));
            self.checking = stale;
        }
        self.heap.push(x);
    }

    /// The greatest entry, swept or not.
    pub fn peek(&self) -> Option<&T> {
        match (self.heap.0.first(), self.unswept.0.first()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn pop(&mut self) -> Option<T> {
        match (self.heap.0.first(), self.unswept.0.first()) {
            (Some(a), Some(b)) if b > a => self.unswept.pop(),
            (Some(_), _) => self.heap.pop(),
            _ => self.unswept.pop(),
        }
    }

    pub fn sweeping(&self) -> bool {
        !self.unswept.0.is_empty()
    }

    /// Moves up to `SWEEP` entries of the sweep under way into the heap, dropping those
    /// `live` rejects if the sweep checks. (An entry filed twice for one band stays twice:
    /// both are current.)
    pub fn sweep(&mut self, live: impl Fn(&T) -> bool) {
        for _ in 0..SWEEP {
            let Some(x) = self.unswept.0.pop() else { break };
            if !self.checking || live(&x) {
                self.heap.push(x);
            }
        }
        if self.unswept.0.is_empty() && self.unswept.0.capacity() > 0 {
            self.unswept = Heap(Vec::new()); // its block freed
        }
    }

    /// Room for `n` more pushes without a sweep (a market's first mark files every band).
    pub fn reserve(&mut self, n: usize) {
        self.heap.0.reserve(n);
    }

    /// Heap bytes (both blocks while a sweep is under way).
    pub fn footprint(&self) -> usize {
        (self.heap.0.capacity() + self.unswept.0.capacity()) * std::mem::size_of::<T>()
    }

    pub fn shrink_to_fit(&mut self) {
        self.heap.0.shrink_to_fit();
        self.unswept.0.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_drops_stale_entries_and_pops_stay_in_order() {
        let mut h = SweptHeap::default();
        for x in [5, 9, 1, 7, 7, 3, 8] {
            h.push(x, 100);
        }
        for x in 10..43 {
            h.push(2 * x, 100);
        }
        // Few entries for all the heap knows stale: it just grows.
        assert!(!h.sweeping());
        // 40 entries, 4 of them current: more than 4 + 2 + 32, so this push starts a sweep.
        h.push(1001, 4);
        assert!(h.sweeping());
        assert_eq!(h.len(), 41);
        let live = |x: &i32| x % 2 == 1; // even entries are stale
        h.sweep(live);
        assert!(h.len() < 41 && h.len() >= 37);
        while h.sweeping() {
            h.sweep(live);
        }
        // 1001 (pushed during the sweep) and the odd ones; the 7 filed twice stays twice.
        let mut out = Vec::new();
        while let Some(x) = h.pop() {
            out.push(x);
        }
        assert_eq!(out, vec![1001, 9, 7, 7, 5, 3, 1]);
    }

    #[test]
    fn pops_match_a_sorted_reference_through_sweeps() {
        // Random pushes, pops and sweeps (entries divisible by 7 are stale once pushed):
        // every pop returns the greatest entry held, stale ones possibly swept away.
        let mut h = SweptHeap::default();
        let mut held: std::collections::BTreeMap<u32, usize> = Default::default();
        let (mut count, mut live, mut swept) = (0usize, 0usize, 0usize);
        let mut x = 11u64;
        let mut rnd = |k: u64| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) % k
        };
        let stale = |v: u32| v % 7 == 0;
        for step in 0..300_000 {
            // Mostly pushes while growing, as many pops as pushes later.
            if rnd(10) < if step < 100_000 { 8 } else { 5 } {
                let v = rnd(1_000_000) as u32;
                live += !stale(v) as usize;
                h.push(v, live);
                *held.entry(v).or_default() += 1;
                count += 1;
                h.sweep(|&v| !stale(v));
            } else {
                let got = h.pop();
                // Stale entries above the one popped may have been swept: drop them here too.
                while let Some((&v, &n)) = held.last_key_value().filter(|&(&v, _)| Some(v) != got && stale(v)) {
                    held.remove(&v);
                    count -= n;
                }
                let want = held.last_key_value().map(|(&v, _)| v);
                assert_eq!(got, want);
                if let Some(v) = want {
                    let n = held.get_mut(&v).expect("held");
                    *n -= 1;
                    if *n == 0 {
                        held.remove(&v);
                    }
                    count -= 1;
                    live -= !stale(v) as usize;
                }
            }
            assert!(h.len() <= count);
            swept += h.sweeping() as usize;
        }
        assert!(swept > 10_000, "the heap grew past 4096 entries by sweeps");
    }
}
