//! A sorted list of keyed members that takes updates in bulk, for the pro-rata index: one ADL
//! event files hundreds of members again, and a B-tree pays a search and node edits for each
//! (a quarter of a pro-rata cascade's time).
//!
//! An update appends the member's new entry and leaves its old one in place, stale: each
//! member has a stamp per order (kept by the caller, bumped on every update) that only its
//! current entry carries. `settle` sorts what came in since the last call and merges it into
//! a small sorted run, and that run into the main one once the two hold an eighth as many
//! new or stale entries as the main run (so a merge's O(n) is paid once per n/8 updates).
//! Reads merge the two runs and skip stale entries.

use std::cmp::Ordering;

/// One filed member: its key, its place in the caller's member table, and the stamp its
/// entry was filed with (current while the table's stamp is the same).
#[derive(Clone, Copy, Debug)]
pub struct Entry<K> {
    pub key: K,
    pub pos: u32,
    pub stamp: u32,
}

#[derive(Clone, Debug)]
pub struct LazyOrder<K> {
    main: Vec<Entry<K>>,
    fresh: Vec<Entry<K>>,
    /// Unsorted, since the last `settle`.
    incoming: Vec<Entry<K>>,
    /// Entries retired since the last full merge (when to merge, not a count to rely on).
    stale: usize,
}

impl<K: Ord + Copy> LazyOrder<K> {
    pub fn new(mut entries: Vec<Entry<K>>) -> LazyOrder<K> {
        entries.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        entries.shrink_to_fit(); // (pushed one by one: up to twice the room)
        LazyOrder { main: entries, fresh: Vec::new(), incoming: Vec::new(), stale: 0 }
    }

    /// Files a member's new entry (its old one, if any, is retired by its new stamp).
    pub fn push(&mut self, key: K, pos: u32, stamp: u32) {
        self.incoming.push(Entry { key, pos, stamp });
    }

    /// Notes that an entry went stale.
    pub fn retire(&mut self) {
        self.stale += 1;
    }

    /// Whether every pushed entry is in the sorted runs (`iter` reads only those).
    pub fn is_settled(&self) -> bool {
        self.incoming.is_empty()
    }

    /// Sorts the entries pushed since the last call into the runs (see the module doc).
    pub fn settle(&mut self, current: impl Fn(&Entry<K>) -> bool) {
        if self.incoming.is_empty() {
            return;
        }
        self.incoming.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        self.fresh.retain(&current);
        merge_into(&mut self.fresh, &self.incoming);
        self.incoming.clear();
        if (self.fresh.len() + self.stale) * 8 > self.main.len() {
            self.main.retain(&current);
            merge_into(&mut self.main, &self.fresh);
            self.fresh.clear();
            self.stale = 0;
        }
    }

    /// Drops every stale entry (a member's stamp is about to start over).
    pub fn purge(&mut self, current: impl Fn(&Entry<K>) -> bool) {
        self.main.retain(&current);
        self.fresh.retain(&current);
        self.incoming.retain(&current);
        self.stale = 0;
    }

    /// Heap bytes of the runs.
    pub fn footprint(&self) -> usize {
        use crate::core::units::footprint::vec;
        vec(&self.main) + vec(&self.fresh) + vec(&self.incoming)
    }

    /// The current entries in key order (those settled: see `is_settled`).
    pub fn iter<F: Fn(&Entry<K>) -> bool>(&self, current: F) -> Iter<'_, K, F> {
        Iter { a: &self.main, b: &self.fresh, current }
    }
}

/// Merges the sorted `add` into the sorted `run` in place, from the back (no second buffer).
fn merge_into<K: Ord + Copy>(run: &mut Vec<Entry<K>>, add: &[Entry<K>]) {
    let (mut i, mut j) = (run.len(), add.len());
    run.extend_from_slice(add);
    let mut k = run.len();
    while j > 0 {
        k -= 1;
        if i > 0 && run[i - 1].key > add[j - 1].key {
            i -= 1;
            run[k] = run[i];
        } else {
            j -= 1;
            run[k] = add[j];
        }
    }
}

/// `LazyOrder::iter`: the two runs merged, stale entries skipped.
pub struct Iter<'a, K, F> {
    a: &'a [Entry<K>],
    b: &'a [Entry<K>],
    current: F,
}

impl<'a, K: Ord + Copy, F: Fn(&Entry<K>) -> bool> Iterator for Iter<'a, K, F> {
    type Item = &'a Entry<K>;

    fn next(&mut self) -> Option<&'a Entry<K>> {
        loop {
            let from_a = match (self.a.first(), self.b.first()) {
                (None, None) => return None,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(x), Some(y)) => x.key.cmp(&y.key) != Ordering::Greater,
            };
            let run = if from_a { &mut self.a } else { &mut self.b };
            let (e, rest) = run.split_first().expect("checked above");
            *run = rest;
            if (self.current)(e) {
                return Some(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_current_keys_in_order_through_updates() {
        // Members 0..200 keyed by a pseudo-random walk; each round updates some of them
        // (or removes them), settles, and the order must equal the current keys sorted.
        let mut state = 1u64;
        let mut next = move |n: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        let n = 200;
        let mut keys: Vec<Option<u64>> = (0..n).map(|_| Some(next(50))).collect();
        let mut stamps = vec![0u32; n];
        let entries = keys.iter().enumerate().map(|(i, k)| Entry { key: k.unwrap(), pos: i as u32, stamp: 0 }).collect();
        let mut order = LazyOrder::new(entries);
        for round in 0..300 {
            for _ in 0..next(if round % 7 == 0 { 150 } else { 12 }) {
                let i = next(n as u64) as usize;
                stamps[i] += 1;
                if keys[i].is_some() {
                    order.retire();
                }
                keys[i] = (next(9) != 0).then(|| next(50));
                if let Some(k) = keys[i] {
                    order.push(k, i as u32, stamps[i]);
                }
            }
            let current = |e: &Entry<u64>| stamps[e.pos as usize] == e.stamp;
            order.settle(current);
            let got: Vec<(u64, u32)> = order.iter(current).map(|e| (e.key, e.pos)).collect();
            let mut want: Vec<(u64, u32)> = keys.iter().enumerate().filter_map(|(i, k)| k.map(|k| (k, i as u32))).collect();
            want.sort_unstable();
            let mut got_sorted = got.clone();
            got_sorted.sort_unstable();
            assert_eq!(got_sorted, want, "round {round}: the current entries, each once");
            assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "round {round}: in key order");
            if round % 50 == 49 {
                order.purge(current);
                assert_eq!(order.main.len() + order.fresh.len(), want.len(), "a purge keeps only current entries");
            }
        }
    }
}
