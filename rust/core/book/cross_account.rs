//! One cross account's record in the cross book (`cross::CrossBook`): its positions and its
//! bands in a single boxed slice of 4-byte words, and its cash (the account's wallet; the
//! engine's cash map holds only accounts without cross positions). 48 bytes. The book holds
//! hundreds of thousands of them; legs change at most once per fill, bands once per
//! revaluation, so rebuilding the slice on a change costs less than keeping spare room.

use crate::core::book::cross_bounds::Band;

#[derive(Clone, Default)]
pub(crate) struct CrossAccount {
    pub id: u64,
    /// Its positions' slots, then where each is in its market's member list, then each one's
    /// market (`n` words each); then per band its market and its low and high marks (two
    /// words each, low word first).
    words: Box<[u32]>,
    n: u32,
    /// The bands are only the markets with a mark in which every move revalues it.
    pub eager: bool,
    /// Whether the account has a cash entry (`cash` is its value; an account may hold
    /// positions and no entry). Two words, not an i128: 8-byte alignment keeps the record 48.
    has_cash: bool,
    cash: [u64; 2],
}

fn join(lo: u32, hi: u32) -> i64 {
    (((hi as u64) << 32) | lo as u64) as i64
}

fn split(x: i64) -> [u32; 2] {
    [x as u64 as u32, ((x as u64) >> 32) as u32]
}

impl CrossAccount {
    pub fn new(id: u64) -> CrossAccount {
        CrossAccount { id, ..CrossAccount::default() }
    }
    pub fn len(&self) -> usize {
        self.n as usize
    }
    /// Its cash entry, if it has one.
    pub fn cash(&self) -> Option<i128> {
        self.has_cash.then(|| ((self.cash[1] as u128) << 64 | self.cash[0] as u128) as i128)
    }
    pub fn set_cash(&mut self, cash: Option<i128>) {
        let x = cash.unwrap_or(0) as u128;
        (self.has_cash, self.cash) = (cash.is_some(), [x as u64, (x >> 64) as u64]);
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    pub fn slots(&self) -> &[u32] {
        &self.words[..self.len()]
    }
    pub fn at(&self) -> &[u32] {
        &self.words[self.len()..2 * self.len()]
    }
    pub fn markets(&self) -> &[u32] {
        &self.words[2 * self.len()..3 * self.len()]
    }
    /// Moves leg `j` to place `at` in its market's member list.
    pub fn set_at(&mut self, j: usize, at: u32) {
        let n = self.len();
        self.words[n + j] = at;
    }
    pub fn bands(&self) -> impl Iterator<Item = Band> + '_ {
        self.words[3 * self.len()..].chunks_exact(5).map(|w| (w[0], join(w[1], w[2]), join(w[3], w[4])))
    }
    /// Heap bytes.
    pub fn footprint(&self) -> usize {
        std::mem::size_of_val(&*self.words)
    }

    /// The legs' blocks with `edit` applied to each, then the bands: a new slice.
    fn rebuild(&mut self, n: usize, mut edit: impl FnMut(usize, &mut Vec<u32>), bands: &[u32]) {
        let old = self.len();
        let mut words = Vec::with_capacity(3 * n + bands.len());
        for block in 0..3 {
            words.extend_from_slice(&self.words[block * old..(block + 1) * old]);
            edit(block, &mut words);
        }
        words.extend_from_slice(bands);
        (self.words, self.n) = (words.into_boxed_slice(), n as u32);
    }

    pub fn push(&mut self, slot: u32, at: u32, market: u32) {
        let bands = self.words[3 * self.len()..].to_vec();
        let new = [slot, at, market];
        self.rebuild(self.len() + 1, |block, w| w.push(new[block]), &bands);
    }

    /// Removes leg `k` as `Vec::swap_remove` does in each block; its `at`.
    pub fn swap_remove(&mut self, k: usize) -> u32 {
        let n = self.len();
        let at = self.at()[k];
        let bands = self.words[3 * n..].to_vec();
        self.rebuild(
            n - 1,
            |_, w| {
                let last = w.pop().expect("a leg to remove");
                if k < n - 1 {
                    let start = w.len() - (n - 1);
                    w[start + k] = last;
                }
            },
            &bands,
        );
        at
    }

    pub fn set_bands(&mut self, bands: &[Band], eager: bool) {
        let words: Vec<u32> = bands
            .iter()
            .flat_map(|&(m, lo, hi)| {
                let (lo, hi) = (split(lo), split(hi));
                [m, lo[0], lo[1], hi[0], hi[1]]
            })
            .collect();
        self.rebuild(self.len(), |_, _| {}, &words);
        self.eager = eager;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legs_and_bands_share_one_slice() {
        // 48 bytes: id 8, a boxed slice 16, the leg count 4, two flags, padded to 8, and the
        // cash in two words 16.
        assert_eq!(std::mem::size_of::<CrossAccount>(), 48);
        let mut a = CrossAccount::new(7);
        assert_eq!(a.cash(), None);
        for c in [Some(-1), Some(i128::MAX), Some(i128::MIN), Some(0), None] {
            a.set_cash(c);
            assert_eq!(a.cash(), c);
        }
        a.push(10, 0, 1);
        a.push(11, 5, 2);
        a.set_bands(&[(1, -3, 1 << 40), (2, 97, 103)], false);
        a.push(12, 9, 1);
        assert_eq!((a.slots(), a.at(), a.markets()), (&[10, 11, 12][..], &[0, 5, 9][..], &[1, 2, 1][..]));
        assert_eq!(a.bands().collect::<Vec<_>>(), vec![(1, -3, 1 << 40), (2, 97, 103)]);
        // Swap-remove the first leg: the last takes its place in every block.
        assert_eq!(a.swap_remove(0), 0);
        assert_eq!((a.slots(), a.at(), a.markets()), (&[12, 11][..], &[9, 5][..], &[1, 2][..]));
        a.set_at(1, 4);
        assert_eq!(a.at(), &[9, 4]);
        assert_eq!(a.bands().count(), 2);
        // 2 legs × 3 words + 2 bands × 5 words = 16 words.
        assert_eq!(a.footprint(), 64);
        a.swap_remove(1);
        a.swap_remove(0);
        a.set_bands(&[], false);
        assert!(a.is_empty() && a.footprint() == 0);
    }
}
