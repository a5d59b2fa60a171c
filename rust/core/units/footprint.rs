//! Heap bytes held by containers, for the engine's memory breakdown (`Engine::footprint`):
//! what each structure asks of the allocator (capacity, not length), without the
//! allocator's own per-block overhead.

use std::mem::size_of;

/// Bytes of a vector's buffer.
pub fn vec<T>(v: &Vec<T>) -> usize {
    v.capacity() * size_of::<T>()
}

/// Bytes of a hashbrown table (std's maps included) of `capacity` entries of type `T`:
/// `capacity` is 7/8 of a power-of-two number of buckets from 8 up, each bucket an entry and
/// a control byte, plus one group of control bytes.
pub fn table<T>(capacity: usize) -> usize {
    let buckets = match capacity {
        0 => return 0,
        1..=3 => 4,
        4..=7 => 8,
        c => c / 7 * 8,
    };
    buckets * (size_of::<T>() + 1) + 16
}

/// Bytes of a B-tree set or map of `len` entries of type `T`, estimated as built in bulk
/// from sorted entries (nodes of 11 entries, full, plus parent links and one internal node
/// of 12 child pointers per 12 leaves: about 2 bytes per entry); inserts leave nodes about
/// two thirds full, so an index grown by inserts takes up to half as much again.
pub fn btree<T>(len: usize) -> usize {
    len * (size_of::<T>() + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_of_a_million_slots_takes_two_million_buckets() {
        // 1,000,000 entries need more than 2^20 · 7/8 = 917,504: 2^21 buckets, whose
        // capacity is 2^21 · 7/8 = 1,835,008; each bucket holds 4 bytes and a control byte.
        let t: hashbrown::HashTable<u32> = hashbrown::HashTable::with_capacity(1_000_000);
        assert_eq!(t.capacity(), 1_835_008);
        assert_eq!(table::<u32>(t.capacity()), (1 << 21) * 5 + 16);
    }
}
