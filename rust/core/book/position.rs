//! Positions in fixed point and the store that keys them by (account, market, side).

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashMap};

use crate::core::market::fees::close_fee;
use crate::core::market::instrument::Instrument;
use crate::core::market::spec::FeeConvention;
use crate::core::market::tiers::Tiers;
use crate::core::units::fixed::Grid;
pub use crate::core::units::side::Side;

/// Marker for "not in any ranking index".
pub const NO_INDEX: u32 = u32::MAX;

/// One position, as the engine reads it. The store keeps it packed (`Packed`, 48 bytes). 56
/// bytes itself: packed to 8-byte alignment so that the i128 margin costs 8 bytes more, not 16
/// (rollback notes hold copies); fields are read and written by value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(packed(8))]
pub struct Position {
    pub account: u64,
    /// Whole lots; 0 marks a free slot.
    pub qty: i64,
    /// Average entry price in ticks.
    pub entry: i64,
    /// Isolated margin in cash units, within `[0, MAX_MARGIN]` (`fixed.rs`) on input; as wide
    /// as the ledgers (i128), so large collateral at `cash_decimals=18` is not capped.
    pub margin: i128,
    pub market: u32,
    /// Where this slot sits in its market-side member list.
    pub member_pos: u32,
    /// Where this slot sits in its market-side ranking index (`NO_INDEX` if not ranked).
    pub index_pos: u32,
    pub side: Side,
    /// ADL cap β in basis points (policy `capped_pro_rata`; 10,000 = no cap).
    pub cap_bp: u16,
    /// Cross margin (docs/model.md §6): the position holds no margin of its own (`margin` is 0)
    /// and shares its account's wallet (the account's free cash). See `cross::CrossBook`.
    pub cross: bool,
}

impl Position {
    /// Unrealised PnL at `mark` in cash units: `σ·q·(P − E)`.
    #[inline]
    pub fn upnl(&self, grid: &Grid, mark: i64) -> i128 {
        self.side.sign_i128() * grid.value(self.qty, mark - self.entry)
    }
    /// Isolated equity `M + u`.
    #[inline]
    pub fn equity(&self, grid: &Grid, mark: i64) -> i128 {
        self.margin + self.upnl(grid, mark)
    }
    /// Maintenance margin of the position's notional `q·P` (by tier), in cash units.
    #[inline]
    pub fn maintenance(&self, grid: &Grid, mark: i64, tiers: &Tiers) -> i128 {
        tiers.maintenance(grid.notional(self.qty, mark))
    }
    /// Bankruptcy price `E − σ·M/q` in ticks (not on the grid in general).
    pub fn bankruptcy_ticks(&self, grid: &Grid) -> f64 {
        self.entry as f64 - self.side.sign_f64() * self.margin as f64 / (self.qty as f64 * grid.factor as f64)
    }
    /// Liquidation price (equity = maintenance) in ticks; with one tier at rate `mmr`:
    /// long `(q·E − M)/(q·(1 − mmr))`, short `(q·E + M)/(q·(1 + mmr))`.
    pub fn liquidation_ticks(&self, grid: &Grid, tiers: &Tiers) -> f64 {
        tiers.liquidation_ticks(grid, self.side, self.qty, self.entry, self.margin as f64)
    }
}

/// Key of a position in the engine.
pub type Key = (u64, u32, Side);

/// The key of a position.
fn key_of(p: &Packed) -> Key {
    (p.account, p.market, p.side)
}

fn hash(key: &Key) -> u64 {
    FxBuildHasher.hash_one(key)
}

/// `Packed::margin` of a margin that does not fit an i64 (or is `i64::MIN` itself): the
/// exact value is in `PositionStore::wide`.
const WIDE: i64 = i64::MIN;

/// A position as the store keeps it: 48 bytes where `Position` takes 56, since the store
/// holds millions. The margin is an i64 (every margin below 9.2·10^18 cash units); a wider one
/// (possible up to `MAX_MARGIN` = 10^30, e.g. at `cash_decimals=18`) is kept exactly beside.
#[derive(Clone, Copy)]
struct Packed {
    account: u64,
    qty: i64,
    entry: i64,
    margin: i64,
    market: u32,
    member_pos: u32,
    index_pos: u32,
    cap_bp: u16,
    side: Side,
    cross: bool,
}

impl Packed {
    /// A new slot before its position is written.
    const EMPTY: Packed = Packed {
        account: 0,
        qty: 0,
        entry: 0,
        margin: 0,
        market: 0,
        member_pos: 0,
        index_pos: NO_INDEX,
        cap_bp: 0,
        side: Side::Long,
        cross: false,
    };
}

/// Slots by key: a hash table of slot numbers alone (4 bytes each; a map holding the keys
/// took 24), each key read from its slot.
#[derive(Default, Clone)]
struct KeyIndex(HashTable<u32>);

impl KeyIndex {
    fn with_capacity(n: usize) -> KeyIndex {
        KeyIndex(HashTable::with_capacity(n))
    }
    fn get(&self, slots: &[Packed], key: &Key) -> Option<u32> {
        self.0.find(hash(key), |&s| key_of(&slots[s as usize]) == *key).copied()
    }
    /// Files `slot` under its position's key (which no other slot holds).
    fn insert_new(&mut self, slots: &[Packed], slot: u32) {
        let h = hash(&key_of(&slots[slot as usize]));
        self.0.insert_unique(h, slot, |&s| hash(&key_of(&slots[s as usize])));
    }
    /// Forgets `slot`, filed under its position's key.
    fn remove(&mut self, slots: &[Packed], slot: u32) {
        if let Ok(e) = self.0.find_entry(hash(&key_of(&slots[slot as usize])), |&s| s == slot) {
            e.remove();
        }
    }
}

/// Slab of positions with a key index; freed slots are reused.
#[derive(Default, Clone)]
pub struct PositionStore {
    slots: Vec<Packed>,
    /// Margins of the slots whose `Packed::margin` is `WIDE`.
    wide: FxHashMap<u32, i128>,
    free: Vec<u32>,
    by_key: KeyIndex,
}

impl PositionStore {
    pub fn with_capacity(n: usize) -> Self {
        PositionStore { slots: Vec::with_capacity(n), wide: FxHashMap::default(), free: Vec::new(), by_key: KeyIndex::with_capacity(n) }
    }
    pub fn len(&self) -> usize {
        self.by_key.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_key.0.is_empty()
    }
    pub fn find(&self, key: &Key) -> Option<u32> {
        self.by_key.get(&self.slots, key)
    }
    /// The position in `slot` (qty 0 for a free slot).
    #[inline]
    pub fn get(&self, slot: u32) -> Position {
        let k = self.slots[slot as usize];
        let margin = if k.margin == WIDE { self.wide[&slot] } else { k.margin as i128 };
        Position {
            account: k.account,
            qty: k.qty,
            entry: k.entry,
            margin,
            market: k.market,
            member_pos: k.member_pos,
            index_pos: k.index_pos,
            side: k.side,
            cap_bp: k.cap_bp,
            cross: k.cross,
        }
    }
    /// Lots of the position in `slot`, without reading the rest.
    #[inline]
    pub fn qty(&self, slot: u32) -> i64 {
        self.slots[slot as usize].qty
    }
    /// Replaces the position in `slot` by `p`, which has the same key.
    pub fn set(&mut self, slot: u32, p: Position) {
        // (A free slot, or qty 0, would leave the key index behind: `insert` and `remove` do those.)
        debug_assert!(
            self.slots[slot as usize].qty > 0 && p.qty > 0 && key_of(&self.slots[slot as usize]) == (p.account, p.market, p.side)
        );
        self.write(slot, p);
    }
    #[inline]
    pub fn set_index_pos(&mut self, slot: u32, pos: u32) {
        self.slots[slot as usize].index_pos = pos;
    }
    #[inline]
    pub fn set_member_pos(&mut self, slot: u32, pos: u32) {
        self.slots[slot as usize].member_pos = pos;
    }
    /// Packs `p` into `slot` (which exists), keeping a margin beyond i64 in `wide`.
    fn write(&mut self, slot: u32, p: Position) {
        let margin = match i64::try_from(p.margin) {
            Ok(m) if m != WIDE => {
                if !self.wide.is_empty() {
                    self.wide.remove(&slot);
                }
                m
            }
            _ => {
                self.wide.insert(slot, p.margin);
                WIDE
            }
        };
        let (account, qty, entry, market, member_pos, index_pos, side, cap_bp, cross) =
            (p.account, p.qty, p.entry, p.market, p.member_pos, p.index_pos, p.side, p.cap_bp, p.cross);
        self.slots[slot as usize] = Packed { account, qty, entry, margin, market, member_pos, index_pos, cap_bp, side, cross };
    }
    /// A free slot holding nothing: qty 0, margin 0.
    fn clear(&mut self, slot: u32) {
        let k = &mut self.slots[slot as usize];
        k.qty = 0;
        if k.margin == WIDE {
            k.margin = 0;
            self.wide.remove(&slot);
        }
    }
    /// Inserts a new position, or returns the slot that already holds its key.
    pub fn insert(&mut self, p: Position) -> Result<u32, u32> {
        if let Some(s) = self.find(&(p.account, p.market, p.side)) {
            return Err(s);
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Packed::EMPTY);
                (self.slots.len() - 1) as u32
            }
        };
        self.write(slot, p);
        self.by_key.insert_new(&self.slots, slot);
        Ok(slot)
    }
    /// Frees a slot (its position is gone).
    pub fn remove(&mut self, slot: u32) {
        self.by_key.remove(&self.slots, slot);
        self.clear(slot);
        self.free.push(slot);
    }
    /// Puts back positions as they were (`undo::Undo`): slots past `len` dropped, the free
    /// list cut to its old length `free_len` (calls that free slots push on it) or, when the
    /// call took slots from its end, to `free_len − tail.len()` and `tail` put back; and each
    /// slot in `old` with its old position and key. Keys of positions the call created or
    /// changed are removed first.
    pub(crate) fn restore(&mut self, len: usize, free_len: usize, tail: Option<&[u32]>, old: &[(u32, Position)]) {
        for s in (len..self.slots.len()).chain(old.iter().map(|&(s, _)| s as usize)) {
            let p = self.slots[s];
            if p.qty > 0 && self.find(&key_of(&p)) == Some(s as u32) {
                self.by_key.remove(&self.slots, s as u32);
            }
        }
        for s in len..self.slots.len() {
            self.clear(s as u32);
        }
        self.slots.truncate(len);
        match tail {
            Some(t) => {
                self.free.truncate(free_len - t.len());
                self.free.extend_from_slice(t);
            }
            None => self.free.truncate(free_len),
        }
        for &(slot, p) in old {
            self.write(slot, p);
            if p.qty > 0 {
                // Another slot filed under the key gives way, as a map's insert would.
                if let Some(other) = self.find(&(p.account, p.market, p.side)) {
                    self.by_key.remove(&self.slots, other);
                }
                self.by_key.insert_new(&self.slots, slot);
            }
        }
    }
    /// Number of slots, free ones included.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }
    /// The free list (slots holding qty 0), most recently freed last.
    pub fn free_slots(&self) -> &[u32] {
        &self.free
    }
    /// Every slot in order (free ones hold qty 0), for snapshots.
    pub fn all(&self) -> impl Iterator<Item = Position> + '_ {
        (0..self.slots.len() as u32).map(|s| self.get(s))
    }
    /// Rebuilds a store from `all()` and `free_slots()`; `None` when two live slots share a
    /// key or the free list does not name exactly the free slots.
    pub fn from_raw(slots: Vec<Position>, free: Vec<u32>) -> Option<PositionStore> {
        let mut store = PositionStore::with_capacity(slots.len());
        for (i, p) in slots.into_iter().enumerate() {
            store.slots.push(Packed::EMPTY);
            store.write(i as u32, p);
            if p.qty > 0 {
                if store.find(&(p.account, p.market, p.side)).is_some() {
                    return None;
                }
                store.by_key.insert_new(&store.slots, i as u32);
            }
        }
        let mut seen = vec![false; store.slots.len()];
        for &f in &free {
            let ok = store.slots.get(f as usize).is_some_and(|p| p.qty == 0) && !std::mem::replace(&mut seen[f as usize], true);
            if !ok {
                return None;
            }
        }
        store.free = free;
        (store.free.len() + store.by_key.0.len() == store.slots.len()).then_some(store)
    }
    /// Heap bytes by part: the slots (wide margins included), the free list and the key index.
    pub fn footprint(&self) -> [(&'static str, usize); 3] {
        use crate::core::units::footprint::{table, vec};
        let slots = vec(&self.slots) + table::<(u32, i128)>(self.wide.capacity());
        [("positions", slots), ("free slots", vec(&self.free)), ("key index", table::<u32>(self.by_key.0.capacity()))]
    }
    /// Live positions with their slots, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, Position)> + '_ {
        (0..self.slots.len() as u32).filter(|&s| self.slots[s as usize].qty > 0).map(|s| (s, self.get(s)))
    }
}

/// Terms of an isolated position that depend on its instrument's fee convention.
impl Instrument {
    /// The estimated fee to close an isolated position at its bankruptcy price (`fees::close_fee`),
    /// part of its maintenance under `FeeConvention::Bankruptcy` (Bybit); 0 under `Surplus` and
    /// for cross positions (their maintenance is the account's TMMR by tier only).
    pub fn close_fee(&self, p: &Position) -> i128 {
        match self.spec.fee_convention {
            FeeConvention::Bankruptcy if !p.cross => close_fee(&self.grid, p.side, p.qty, p.entry, p.margin, self.liquidation_fee_ppm),
            _ => 0,
        }
    }

    /// Maintenance of an isolated position at `mark`: by tier, plus the estimated fee to
    /// close under `FeeConvention::Bankruptcy`, so that it is liquidatable (`e < MM + fee`)
    /// no later than bankrupt (`e <= fee`; Bybit's "maintenance includes the fee to close").
    pub fn maintenance(&self, p: &Position, mark: i64) -> i128 {
        p.maintenance(&self.grid, mark, &self.tiers) + self.close_fee(p)
    }

    /// Liquidation price of an isolated position in ticks (`e = maintenance`): the fee to
    /// close is constant in the mark, so it is the price of the margin less that fee.
    pub fn liquidation_ticks(&self, p: &Position) -> f64 {
        let fee = self.close_fee(p) as f64;
        self.tiers.liquidation_ticks(&self.grid, p.side, p.qty, p.entry, p.margin as f64 - fee)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Grid {
        Grid::new(0, 0, 0).unwrap()
    }

    #[test]
    fn stored_position_is_48_bytes() {
        assert_eq!(std::mem::size_of::<Packed>(), 48);
        assert_eq!(std::mem::size_of::<Position>(), 56);
    }

    #[test]
    fn equity_and_prices() {
        // long 10 @ 100 with margin 50; mark 96: u = 10·(96−100) = −40, e = 10.
        let p = Position {
            account: 1,
            qty: 10,
            entry: 100,
            margin: 50,
            market: 0,
            member_pos: 0,
            index_pos: NO_INDEX,
            side: Side::Long,
            cap_bp: 10_000,
            cross: false,
        };
        assert_eq!(p.upnl(&grid(), 96), -40);
        assert_eq!(p.equity(&grid(), 96), 10);
        // bankruptcy: 100 − 50/10 = 95
        assert_eq!(p.bankruptcy_ticks(&grid()), 95.0);
        // liquidation at mmr 0.5 %: (1000 − 50)/(10·0.995) = 95.477...
        assert!((p.liquidation_ticks(&grid(), &Tiers::flat(5_000)) - 950.0 / 9.95).abs() < 1e-9);
        // maintenance at 96: ceil(0.005·960) = ceil(4.8) = 5
        assert_eq!(p.maintenance(&grid(), 96, &Tiers::flat(5_000)), 5);
    }

    #[test]
    fn store_reuses_slots() {
        let mut s = PositionStore::default();
        let p = Position {
            account: 1,
            qty: 1,
            entry: 1,
            margin: 0,
            market: 0,
            member_pos: 0,
            index_pos: NO_INDEX,
            side: Side::Long,
            cap_bp: 10_000,
            cross: false,
        };
        let a = s.insert(p).unwrap();
        assert_eq!(s.insert(p), Err(a));
        s.remove(a);
        assert!(s.find(&(1, 0, Side::Long)).is_none());
        let b = s.insert(Position { account: 2, ..p }).unwrap();
        assert_eq!(a, b);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn wide_margins_are_kept_exactly() {
        let p = Position {
            account: 1,
            qty: 5,
            entry: 7,
            margin: 0,
            market: 0,
            member_pos: 3,
            index_pos: 4,
            side: Side::Short,
            cap_bp: 9_000,
            cross: false,
        };
        // 10^30 (MAX_MARGIN), 2^63 (one past i64) and i64::MIN (the marker) are held beside
        // the slots; 2^63 − 1 fits.
        let big = 1_000_000_000_000_000_000_000_000_000_000i128;
        let mut s = PositionStore::default();
        let a = s.insert(Position { margin: big, ..p }).unwrap();
        let b = s.insert(Position { account: 2, margin: 1 << 63, ..p }).unwrap();
        let c = s.insert(Position { account: 3, margin: i64::MIN as i128, ..p }).unwrap();
        let d = s.insert(Position { account: 4, margin: i64::MAX as i128, ..p }).unwrap();
        assert_eq!(s.get(a), Position { margin: big, ..p });
        assert_eq!((s.get(b).margin, s.get(c).margin, s.get(d).margin), (1 << 63, i64::MIN as i128, i64::MAX as i128));
        assert_eq!(s.wide.len(), 3);
        // Narrowed in place, freed, restored: the side map follows.
        s.set(a, Position { margin: 12, ..p });
        assert_eq!((s.get(a).margin, s.wide.len()), (12, 2));
        s.remove(b);
        assert_eq!(s.wide.len(), 1);
        let e = s.insert(Position { account: 5, margin: 40, ..p }).unwrap();
        assert_eq!((e, s.get(e).margin), (b, 40));
        let old = [(a, Position { margin: big, ..p })];
        s.restore(s.slot_count(), s.free_slots().len(), None, &old);
        assert_eq!((s.get(a).margin, s.wide.len()), (big, 2));
        // A snapshot's slots round-trip, wide margins included.
        let t = PositionStore::from_raw(s.all().collect(), s.free_slots().to_vec()).unwrap();
        assert!((0..s.slot_count() as u32).all(|i| t.get(i) == s.get(i)));
        assert_eq!(t.find(&(3, 0, Side::Short)), Some(c));
    }
}
