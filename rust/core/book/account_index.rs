//! Account id to a dense index (the cross book's account records). Exchanges number accounts
//! densely, so while the ids stay below four times the count plus a margin the index is a
//! vector by id (4 bytes per id); otherwise a hash map (about 23 bytes per entry at its
//! usual load).

use rustc_hash::FxHashMap;

/// No entry for this id.
const NONE: u32 = u32::MAX;
/// Ids below this stay dense whatever the count.
const SLACK: u64 = 1 << 16;

#[derive(Clone, Debug)]
pub enum AccountIndex {
    Dense { by_id: Vec<u32>, len: usize },
    Sparse(FxHashMap<u64, u32>),
}

impl Default for AccountIndex {
    fn default() -> Self {
        AccountIndex::Dense { by_id: Vec::new(), len: 0 }
    }
}

impl AccountIndex {
    #[inline]
    pub fn get(&self, id: u64) -> Option<u32> {
        match self {
            AccountIndex::Dense { by_id, .. } => by_id.get(usize::try_from(id).ok()?).copied().filter(|&i| i != NONE),
            AccountIndex::Sparse(m) => m.get(&id).copied(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            AccountIndex::Dense { len, .. } => *len,
            AccountIndex::Sparse(m) => m.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Files `id` (not yet filed) at `index`.
    pub fn insert(&mut self, id: u64, index: u32) {
        if let AccountIndex::Dense { by_id, len } = self {
            if id < SLACK.max(4 * (*len as u64 + 1)) {
                let i = id as usize;
                if by_id.len() <= i {
                    by_id.resize(i + 1, NONE); // capacity grows by doubling; `shrink_to_fit` trims it
                }
                by_id[i] = index;
                *len += 1;
                return;
            }
            // Too sparse for a vector: every entry moves to a map.
            let m = by_id.iter().enumerate().filter(|(_, &x)| x != NONE).map(|(id, &x)| (id as u64, x)).collect();
            *self = AccountIndex::Sparse(m);
        }
        if let AccountIndex::Sparse(m) = self {
            m.insert(id, index);
        }
    }

    pub fn remove(&mut self, id: u64) {
        match self {
            AccountIndex::Dense { by_id, len } => {
                if let Some(x) = by_id.get_mut(id as usize).filter(|x| **x != NONE) {
                    *x = NONE;
                    *len -= 1;
                }
            }
            AccountIndex::Sparse(m) => {
                m.remove(&id);
            }
        }
    }

    /// Every id filed (in id order when dense, in no order otherwise).
    pub fn ids(&self) -> Box<dyn Iterator<Item = u64> + '_> {
        match self {
            AccountIndex::Dense { by_id, .. } => Box::new(by_id.iter().enumerate().filter(|(_, &x)| x != NONE).map(|(id, _)| id as u64)),
            AccountIndex::Sparse(m) => Box::new(m.keys().copied()),
        }
    }

    pub fn shrink_to_fit(&mut self) {
        if let AccountIndex::Dense { by_id, .. } = self {
            by_id.shrink_to_fit();
        }
    }

    /// Heap bytes.
    pub fn footprint(&self) -> usize {
        use crate::core::units::footprint::{table, vec};
        match self {
            AccountIndex::Dense { by_id, .. } => vec(by_id),
            AccountIndex::Sparse(m) => table::<(u64, u32)>(m.capacity()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_ids_in_a_vector_sparse_ones_in_a_map() {
        let mut x = AccountIndex::default();
        for id in 1..=1000u64 {
            x.insert(id, id as u32 * 2);
        }
        assert!(matches!(x, AccountIndex::Dense { .. }));
        assert_eq!((x.get(7), x.get(0), x.get(1001), x.len()), (Some(14), None, None, 1000));
        x.remove(7);
        x.remove(7);
        assert_eq!((x.get(7), x.len()), (None, 999));
        // 2^40 is beyond 4·(999 + 1) and 2^16: the index turns into a map, entries kept.
        x.insert(1 << 40, 5);
        assert!(matches!(x, AccountIndex::Sparse(_)));
        assert_eq!((x.get(1 << 40), x.get(8), x.get(7), x.len()), (Some(5), Some(16), None, 1000));
        let mut ids: Vec<u64> = x.ids().collect();
        ids.sort_unstable();
        assert_eq!((ids[0], ids[1], ids[999]), (1, 2, 1 << 40));
    }
}
