//! Insurance funds (docs/model.md §7): by default one fund shared by every market; a market may
//! instead draw on a named pool (one per market, or one per group of markets, like Bybit's
//! shared pools). Each pool has its own ADL trigger state and a history of its balance
//! (for the drawdown trigger and for reports).

use rustc_hash::FxHashMap;

use crate::core::book::trigger::{Trigger, TriggerState};

pub use crate::core::market::spec::DEFAULT_POOL;

#[derive(Clone, Debug)]
pub struct Pool {
    pub name: String,
    /// Balance in cash units (never negative).
    pub balance: i128,
    pub trigger: TriggerState,
}

/// Why a pool's balance changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Set by the caller (`set_fund`).
    Set,
    /// A liquidation paid in (surplus, fees) or drew on it (deficits).
    Liquidation,
}

impl Change {
    pub fn name(&self) -> &'static str {
        match self {
            Change::Set => "set",
            Change::Liquidation => "liquidation",
        }
    }
}

/// One balance change of a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub ts: Option<i64>,
    /// The liquidation's event id (`None` for `Change::Set`).
    pub event: Option<u64>,
    pub pool: u32,
    pub change: Change,
    /// Balance after the change, in cash units.
    pub balance: i128,
}

#[derive(Clone, Debug)]
pub struct Funds {
    pools: Vec<Pool>,
    ids: FxHashMap<String, u32>,
    history: Vec<Record>,
}

impl Funds {
    /// The default pool holding `balance`.
    pub fn new(trigger: Trigger, balance: i128) -> Funds {
        let mut f = Funds { pools: Vec::new(), ids: FxHashMap::default(), history: Vec::new() };
        f.add(DEFAULT_POOL, trigger, balance);
        f
    }

    /// The id of pool `name`, added empty (with `trigger`) if it does not exist.
    pub fn add(&mut self, name: &str, trigger: Trigger, balance: i128) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        self.pools.push(Pool { name: name.to_string(), balance, trigger: TriggerState::new(trigger, balance) });
        let id = (self.pools.len() - 1) as u32;
        self.ids.insert(name.to_string(), id);
        id
    }

    pub fn id(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }
    pub fn pool(&self, id: u32) -> &Pool {
        &self.pools[id as usize]
    }
    pub fn history(&self) -> &[Record] {
        &self.history
    }
    /// Σ balances.
    pub fn total(&self) -> i128 {
        self.pools.iter().map(|p| p.balance).sum()
    }
    /// What the pool can pay for one liquidation in market `market`: nothing while its
    /// trigger is armed (ADL bypasses it), and under a drawdown trigger at most down to the
    /// arming level (`TriggerState::available`).
    pub fn available(&self, id: u32, market: u32) -> i128 {
        let p = &self.pools[id as usize];
        p.trigger.available(p.balance, market)
    }

    /// Sets a pool's balance (`amount >= 0`, checked by the caller) and records it.
    pub fn set(&mut self, id: u32, amount: i128, ts: Option<i64>) {
        self.apply(id, amount, ts, None, Change::Set);
    }

    /// Adds `delta` (the caller has checked it leaves the pool >= 0) after a liquidation in
    /// market `market`. `needed_adl`: the fund did not cover the whole event (ADL fills or
    /// bad debt); if the drawdown cap held it back, the trigger arms.
    pub fn credit(&mut self, id: u32, market: u32, delta: i128, ts: Option<i64>, event: u64, needed_adl: bool) {
        let p = &mut self.pools[id as usize];
        let capped = needed_adl && p.trigger.available(p.balance, market) < p.balance;
        p.balance += delta;
        p.trigger.observe_event(ts, p.balance, market, delta, capped);
        self.history.push(Record { ts, event: Some(event), pool: id, change: Change::Liquidation, balance: p.balance });
    }

    fn apply(&mut self, id: u32, balance: i128, ts: Option<i64>, event: Option<u64>, change: Change) {
        let p = &mut self.pools[id as usize];
        p.balance = balance;
        p.trigger.observe(ts, balance);
        self.history.push(Record { ts, event, pool: id, change, balance });
    }

    /// Lets every pool's trigger see the clock (a mark update with a timestamp).
    pub fn observe(&mut self, ts: Option<i64>) {
        for p in &mut self.pools {
            p.trigger.observe(ts, p.balance);
        }
    }

    /// Replaces every pool's trigger (its history starts from the current balance).
    pub fn set_trigger(&mut self, trigger: Trigger, ts: Option<i64>) {
        for p in &mut self.pools {
            p.trigger = TriggerState::new(trigger, p.balance);
            p.trigger.observe(ts, p.balance);
        }
    }

    /// Puts a pool back as it was and drops later history (`undo::Undo`).
    pub(crate) fn put_pool(&mut self, id: u32, pool: Pool) {
        self.pools[id as usize] = pool;
    }
    /// Drops pools added after the first `len` (`undo::Undo`).
    pub(crate) fn truncate_pools(&mut self, len: usize) {
        for p in self.pools.drain(len.min(self.pools.len())..) {
            self.ids.remove(&p.name);
        }
    }
    pub(crate) fn truncate_history(&mut self, len: usize) {
        self.history.truncate(len);
    }

    /// Restores pools and history from a snapshot (the caller validated them).
    pub(crate) fn from_parts(pools: Vec<Pool>, history: Vec<Record>) -> Funds {
        let ids = pools.iter().enumerate().map(|(i, p)| (p.name.clone(), i as u32)).collect();
        Funds { pools, ids, history }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_are_separate_and_recorded() {
        let mut f = Funds::new(Trigger::FundEmpty, 100);
        let btc = f.add("BTC", Trigger::FundEmpty, 0);
        assert_eq!(f.add("BTC", Trigger::FundEmpty, 5), btc); // already there: unchanged
        f.set(btc, 50, Some(1));
        f.credit(0, 0, -30, Some(2), 7, false);
        assert_eq!((f.pool(0).balance, f.pool(btc).balance, f.total()), (70, 50, 120));
        let h = f.history();
        assert_eq!(h.len(), 2);
        assert_eq!((h[1].pool, h[1].event, h[1].balance, h[1].change), (0, Some(7), 70, Change::Liquidation));
    }

    #[test]
    fn an_armed_pool_pays_nothing_and_the_others_still_do() {
        let mut f = Funds::new(Trigger::FundDrop { arm: 0.7, disarm: 0.9 }, 100);
        let eth = f.add("ETH", Trigger::FundDrop { arm: 0.7, disarm: 0.9 }, 100);
        f.credit(eth, 0, -40, None, 0, false); // 60 % of its peak
        assert_eq!((f.available(0, 0), f.available(eth, 0)), (100, 0));
    }
}
