//! Rollback of a mutating call that fails or panics after it changed something, so that the
//! call changes nothing (`Engine::undoable`; `Engine::apply` runs every operation under it).
//!
//! Liquidations are planned and checked before they are applied, but a batch
//! (`liquidate_many`, `liquidate_account`) can only plan each one on the state the earlier
//! ones left, so a later one can still fail (a ledger amount beyond its range) after earlier
//! ones were applied; and any call can panic halfway (a bug). `Undo` keeps the first value
//! of everything the call is about to change, and puts it all back.
//!
//! What it keeps, each noted by the call before it changes it (cheap: the things touched,
//! not copies of the book):
//! - positions at the noted slots, the store's length and free list (liquidations only free
//!   slots, so the free list's old length restores it; `upsert` takes slots from its end, so
//!   it keeps the entries it may take);
//! - the cash of the noted accounts (the cross book is rebuilt from what is put back);
//! - the noted fund pools, the pool count and the fund history's length;
//! - the market count (new markets are dropped again), noted markets as they were (a
//!   redefined one), all marks when a call sets marks, the clock, the labels' count;
//! - the ledgers, the event counter and the fill log's length; the custom scores an upsert
//!   overwrites.
//!
//! Ranking indexes and positions' index slots are caches: rollback drops every index (they
//! are rebuilt on first use, as after a restore), rebuilds the member lists of the markets
//! it touched from the store, in slot order (as a restore does; member order is not
//! observable), and rebuilds the cross book from the restored cash, positions and marks
//! (its sums and lists are a function of those).

use rustc_hash::{FxHashMap, FxHashSet};

use crate::core::book::cross::CrossBook;
use crate::core::book::funds::Pool;
use crate::core::book::position::{Position, PositionStore};
use crate::core::engine::Engine;
use crate::core::policy::queues::Market;
use crate::core::units::error::{AdlError, Result};

/// The book `load` replaces: moved here rather than dropped, so undoing a load copies nothing.
pub(crate) struct Book {
    pub markets: Vec<Market>,
    pub market_ids: FxHashMap<String, u32>,
    pub store: PositionStore,
    pub cash: FxHashMap<u64, i128>,
    pub cross: CrossBook,
    pub custom: Vec<f64>,
}

impl Engine {
    /// Runs a mutating call keeping nothing to roll back (`Undo::off`): only on a copy of the
    /// engine that is dropped when the call fails (a preview trial, where each call would
    /// otherwise copy the fund pool it notes). A panic still becomes an error.
    pub(crate) fn unnoted<T>(&mut self, f: impl FnOnce(&mut Engine, &mut Undo) -> Result<T>) -> Result<T> {
        let mut undo = Undo::off(self);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self, &mut undo))).unwrap_or_else(|panic| {
            let message = crate::core::units::error::panic_message(panic.as_ref());
            Err(AdlError::Internal { message: format!("{message}; in a preview trial") })
        })
    }
}

pub(crate) struct Undo {
    book: Option<Book>,
    slots: Vec<(u32, Position)>,
    seen_slots: FxHashSet<u32>,
    slots_len: usize,
    free_len: usize,
    /// The end of the free list, when the call may take slots from it (`insert` pops it).
    free_tail: Option<Vec<u32>>,
    accounts: Vec<(u64, Option<i128>)>,
    seen_accounts: FxHashSet<u64>,
    pools: Vec<(u32, Pool)>,
    pools_len: usize,
    history_len: usize,
    /// Markets whose member lists the call changes.
    markets: FxHashSet<u32>,
    markets_len: usize,
    /// Markets as they were before the call replaced them (`add_market` redefining one).
    replaced_markets: Vec<(u32, Market)>,
    /// Every market's mark, when the call sets marks.
    marks: Option<Vec<Option<i64>>>,
    /// The custom scores' length and the scores at the slots the call writes, when it does.
    custom: Option<(usize, Vec<(u32, f64)>)>,
    ledgers: (i128, i128, i128, u64),
    ts: Option<i64>,
    /// Whether the clock's zone was set (it is set once, by the first datetime marks).
    had_clock: bool,
    labels_len: usize,
    events_len: usize,
    /// Whether anything was noted since `start` (nothing to undo otherwise).
    dirty: bool,
    /// Notes nothing (`Engine::unnoted`: a call on a copy that is dropped if it fails).
    off: bool,
}

impl Undo {
    /// Remembers the state before the call: the sizes of what only grows, the ledgers.
    pub(crate) fn start(e: &Engine) -> Undo {
        Undo {
            book: None,
            slots: Vec::new(),
            seen_slots: FxHashSet::default(),
            slots_len: e.store.slot_count(),
            free_len: e.store.free_slots().len(),
            free_tail: None,
            accounts: Vec::new(),
            seen_accounts: FxHashSet::default(),
            pools: Vec::new(),
            pools_len: e.funds.pools().len(),
            history_len: e.funds.history().len(),
            markets: FxHashSet::default(),
            markets_len: e.markets.len(),
            replaced_markets: Vec::new(),
            marks: None,
            custom: None,
            ledgers: (e.bad_debt, e.book_value, e.fees, e.next_event),
            ts: e.ts,
            had_clock: e.clock.is_some(),
            labels_len: e.labels.len(),
            events_len: e.events.len(),
            dirty: false,
            off: false,
        }
    }

    /// An `Undo` that notes nothing and must never be rolled back (`Engine::unnoted`).
    pub(crate) fn off(e: &Engine) -> Undo {
        Undo { off: true, ..Undo::start(e) }
    }

    /// The book a `load` replaced.
    pub(crate) fn note_replaced_book(&mut self, book: Book) {
        self.dirty = true;
        if self.book.is_none() {
            self.book = Some(book);
        }
    }

    /// Remembers what one liquidation step will change, before it is applied: the positions
    /// at `slots`, the cash and cross totals of `accounts` (each list without repeats: one
    /// event's positions and accounts), fund pool `pool` and market `market`.
    pub(crate) fn note(&mut self, e: &Engine, slots: &[u32], accounts: &[u64], pool: u32, market: u32) {
        if self.off {
            return;
        }
        // The first note of a call keeps its lists as they are (a pro-rata event's hundreds of
        // counterparties, not hashed one by one); later ones are checked against them.
        if self.slots.is_empty() && self.accounts.is_empty() {
            self.dirty = true;
            debug_assert!(slots.iter().collect::<FxHashSet<_>>().len() == slots.len(), "repeated slots");
            debug_assert!(accounts.iter().collect::<FxHashSet<_>>().len() == accounts.len(), "repeated accounts");
            self.slots.extend(slots.iter().filter(|&&s| (s as usize) < self.slots_len).map(|&s| (s, e.store.get(s))));
            self.accounts.extend(accounts.iter().map(|&a| (a, e.cash_entry(a))));
        } else {
            self.note_slots(e, slots);
            self.note_accounts(e, accounts);
        }
        self.note_pool(e, pool);
        self.markets.insert(market);
    }

    pub(crate) fn note_slots(&mut self, e: &Engine, slots: &[u32]) {
        self.dirty = true;
        // Every slot kept so far is in the set (a first `note` or `note_upsert` kept theirs
        // without it; the kept slots are distinct, so the counts tell).
        if self.seen_slots.len() != self.slots.len() {
            self.seen_slots.extend(self.slots.iter().map(|x| x.0));
        }
        for &s in slots {
            if (s as usize) < self.slots_len && self.seen_slots.insert(s) {
                self.slots.push((s, e.store.get(s)));
            }
        }
    }

    pub(crate) fn note_accounts(&mut self, e: &Engine, accounts: &[u64]) {
        self.dirty = true;
        if self.seen_accounts.len() != self.accounts.len() {
            self.seen_accounts.extend(self.accounts.iter().map(|x| x.0));
        }
        for &a in accounts {
            if self.seen_accounts.insert(a) {
                self.accounts.push((a, e.cash_entry(a)));
            }
        }
    }

    pub(crate) fn note_pool(&mut self, e: &Engine, pool: u32) {
        self.dirty = true;
        if (pool as usize) < self.pools_len && !self.pools.iter().any(|(id, _)| *id == pool) {
            self.pools.push((pool, e.funds.pool(pool).clone()));
        }
    }

    /// Every pool (a call that lets every trigger see the clock, or replaces the triggers).
    pub(crate) fn note_all_pools(&mut self, e: &Engine) {
        (0..self.pools_len as u32).for_each(|id| self.note_pool(e, id));
    }

    /// Markets whose member lists change (rebuilt from the store on rollback).
    pub(crate) fn note_markets(&mut self, markets: impl IntoIterator<Item = u32>) {
        self.dirty = true;
        self.markets.extend(markets);
    }

    /// A market the call replaces whole.
    pub(crate) fn note_replaced_market(&mut self, e: &Engine, id: u32) {
        self.dirty = true;
        if (id as usize) < self.markets_len && !self.replaced_markets.iter().any(|(i, _)| *i == id) {
            self.replaced_markets.push((id, e.markets[id as usize].clone()));
        }
    }

    /// Every mark (cross totals are refreshed from them on rollback).
    pub(crate) fn note_marks(&mut self, e: &Engine) {
        self.dirty = true;
        if self.marks.is_none() {
            self.marks = Some(e.markets.iter().map(|m| m.mark).collect());
        }
    }

    /// What an upsert will change in the store: the positions at `slots` (distinct: those
    /// it replaces and the free slots it takes), the last `pops` entries of the free list,
    /// and the custom scores at those slots (policy `custom`). Noted once per call.
    pub(crate) fn note_upsert(&mut self, e: &Engine, slots: &[u32], pops: usize) {
        self.dirty = true;
        debug_assert!(self.slots.is_empty() && self.free_tail.is_none());
        self.slots.extend(slots.iter().filter(|&&s| (s as usize) < self.slots_len).map(|&s| (s, e.store.get(s))));
        let free = e.store.free_slots();
        self.free_tail = Some(free[free.len().saturating_sub(pops)..].to_vec());
        let old = slots.iter().filter_map(|&s| e.custom.get(s as usize).map(|&v| (s, v))).collect();
        self.custom = Some((e.custom.len(), old));
    }

    /// Puts back everything the call changed.
    pub(crate) fn rollback(self, e: &mut Engine) {
        debug_assert!(!self.off, "an Undo that noted nothing rolled back");
        let grew = e.markets.len() != self.markets_len
            || e.store.slot_count() != self.slots_len
            || e.funds.pools().len() != self.pools_len
            || e.labels.len() != self.labels_len;
        if !self.dirty && !grew {
            return;
        }
        let restored_book = self.book.is_some();
        if let Some(b) = self.book {
            (e.markets, e.market_ids, e.store, e.cash, e.cross, e.custom) = (b.markets, b.market_ids, b.store, b.cash, b.cross, b.custom);
        }
        e.store.restore(self.slots_len, self.free_len, self.free_tail.as_deref(), &self.slots);
        // Every cash entry in the map while accounts are put back; the cross accounts' go
        // back to their records below.
        e.cross.release_cash(&mut e.cash);
        for (a, cash) in self.accounts {
            match cash {
                Some(c) => e.cash.insert(a, c),
                None => e.cash.remove(&a),
            };
        }
        e.funds.truncate_pools(self.pools_len);
        for (id, pool) in self.pools {
            e.funds.put_pool(id, pool);
        }
        e.funds.truncate_history(self.history_len);
        for name in e.markets[self.markets_len.min(e.markets.len())..].iter().map(|m| m.name.clone()).collect::<Vec<_>>() {
            e.market_ids.remove(&name);
        }
        e.markets.truncate(self.markets_len);
        for (id, m) in self.replaced_markets {
            e.markets[id as usize] = m;
        }
        if let Some((len, old)) = self.custom {
            e.custom.truncate(len);
            for (slot, v) in old {
                e.custom[slot as usize] = v;
            }
        }
        (e.bad_debt, e.book_value, e.fees, e.next_event) = self.ledgers;
        e.ts = self.ts;
        if !self.had_clock {
            e.clock = None;
        }
        e.labels.truncate(self.labels_len);
        e.events.truncate(self.events_len);
        let markets: FxHashSet<u32> = self.markets.into_iter().filter(|&id| (id as usize) < self.markets_len).collect();
        for &id in &markets {
            e.markets[id as usize].members = [Vec::new(), Vec::new()];
        }
        let live: Vec<(u32, u32)> = e.store.iter().filter(|(_, p)| markets.contains(&p.market)).map(|(s, p)| (s, p.market)).collect();
        for (slot, market) in live {
            e.markets[market as usize].add_member(&mut e.store, slot);
        }
        if let Some(marks) = self.marks {
            for (m, mark) in e.markets.iter_mut().zip(marks) {
                m.mark = mark;
            }
        }
        // Every index may have moved (cross accounts span markets): all are caches. The cross
        // book is rebuilt from the positions, cash and marks put back (they were within its
        // limits); a replaced book comes back with its own.
        e.markets.iter_mut().for_each(|m| m.invalidate());
        if restored_book {
            e.cross.adopt_cash(&mut e.cash);
        } else {
            e.cross = CrossBook::build(&mut e.cash, &e.store, &e.markets).expect("the cross totals before the call were within the limit");
        }
    }
}
