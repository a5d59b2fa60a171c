//! Rollback of a call that applies several liquidations in turn (`liquidate_many`,
//! `liquidate_account`). Each liquidation is planned and checked before it is applied, but it
//! can only be planned on the state the earlier ones left, so a later one can still fail (a
//! ledger amount beyond its range) after earlier ones were applied. `Undo` keeps the first
//! value of everything an applied liquidation changes, and puts it all back on error: the
//! call then changes nothing.
//!
//! What a liquidation changes (`Engine::apply_plan`, `settle`): the liquidated and the
//! counterparty positions (slots, key map, free list), their market's member lists, the cash
//! and cross totals of their accounts (the cross book is rebuilt), the market's fund pool and the fund history, the
//! ledgers, the event counter and the fill log. Ranking indexes and positions' index slots
//! are caches: rollback drops the indexes (rebuilt on first use, as after a restore), and
//! rebuilds the member lists of the markets it touched from the store, in slot order (as a
//! restore does; member order is not observable).

use rustc_hash::FxHashSet;

use crate::core::book::cross::CrossBook;
use crate::core::book::funds::Pool;
use crate::core::book::position::Position;
use crate::core::engine::Engine;

pub(crate) struct Undo {
    slots: Vec<(u32, Position)>,
    seen_slots: FxHashSet<u32>,
    free_len: usize,
    accounts: Vec<(u64, Option<i128>)>,
    seen_accounts: FxHashSet<u64>,
    pools: Vec<(u32, Pool)>,
    history_len: usize,
    markets: FxHashSet<u32>,
    ledgers: (i128, i128, i128, u64),
    events_len: usize,
    /// Whether anything was applied since `start`.
    dirty: bool,
}

impl Undo {
    /// Remembers the state before the first step.
    pub(crate) fn start(e: &Engine) -> Undo {
        Undo {
            slots: Vec::new(),
            seen_slots: FxHashSet::default(),
            free_len: e.store.raw().1.len(),
            accounts: Vec::new(),
            seen_accounts: FxHashSet::default(),
            pools: Vec::new(),
            history_len: e.funds.history().len(),
            markets: FxHashSet::default(),
            ledgers: (e.bad_debt, e.book_value, e.fees, e.next_event),
            events_len: e.events.len(),
            dirty: false,
        }
    }

    /// Remembers what one step will change, before it is applied: the positions at `slots`,
    /// the cash and cross totals of `accounts`, fund pool `pool` and market `market`.
    pub(crate) fn note(&mut self, e: &Engine, slots: &[u32], accounts: &[u64], pool: u32, market: u32) {
        self.dirty = true;
        for &s in slots {
            if self.seen_slots.insert(s) {
                self.slots.push((s, *e.store.get(s)));
            }
        }
        for &a in accounts {
            if self.seen_accounts.insert(a) {
                self.accounts.push((a, e.cash.get(&a).copied()));
            }
        }
        if !self.pools.iter().any(|(id, _)| *id == pool) {
            self.pools.push((pool, e.funds.pool(pool).clone()));
        }
        self.markets.insert(market);
    }

    /// Puts back everything the applied steps changed.
    pub(crate) fn rollback(self, e: &mut Engine) {
        if !self.dirty {
            return;
        }
        // Steps only free slots (pushed on the free list), so the list's old length restores it.
        e.store.restore(self.free_len, &self.slots);
        for (a, cash) in self.accounts {
            match cash {
                Some(c) => e.cash.insert(a, c),
                None => e.cash.remove(&a),
            };
        }
        for (id, pool) in self.pools {
            e.funds.put_pool(id, pool);
        }
        e.funds.truncate_history(self.history_len);
        (e.bad_debt, e.book_value, e.fees, e.next_event) = self.ledgers;
        e.events.truncate(self.events_len);
        for &id in &self.markets {
            e.markets[id as usize].members = [Vec::new(), Vec::new()];
        }
        let live: Vec<(u32, u32)> = e.store.iter().filter(|(_, p)| self.markets.contains(&p.market)).map(|(s, p)| (s, p.market)).collect();
        for (slot, market) in live {
            e.markets[market as usize].add_member(&mut e.store, slot);
        }
        // Every index may have moved (cross accounts span markets): all are caches. The cross
        // book is rebuilt from the positions and cash put back (they were within its limits).
        e.markets.iter_mut().for_each(|m| m.invalidate());
        e.cross = CrossBook::build(&e.cash, &e.store, &e.markets).expect("the cross totals before the call were within the limit");
    }
}
