//! Where an account's cash lives: a cross account's in its cross record (its wallet, beside
//! its totals), any other account's in the engine's cash map. One entry per account, so a
//! cross account costs no map entry; `CrossBook::add`/`remove` move the entry when an account
//! gains its first or loses its last cross position.

use rustc_hash::FxHashMap;

use crate::core::engine::Engine;

impl Engine {
    pub fn cash_of(&self, account: u64) -> i128 {
        self.cash_entry(account).unwrap_or(0)
    }

    /// The account's cash entry (`None`: it never had one).
    pub fn cash_entry(&self, account: u64) -> Option<i128> {
        match self.cross.cash(account) {
            Some(c) => c,
            None => self.cash.get(&account).copied(),
        }
    }

    /// Sets the account's cash entry where it lives.
    pub(crate) fn put_cash(&mut self, account: u64, cash: i128) {
        if !self.cross.set_cash(account, cash) {
            self.cash.insert(account, cash);
        }
    }

    /// Every cash entry: accounts without cross positions, then cross accounts.
    pub fn cash_entries(&self) -> impl Iterator<Item = (u64, i128)> + '_ {
        self.cash.iter().map(|(&a, &c)| (a, c)).chain(self.cross.cash_entries())
    }

    /// Every cash entry, by account.
    pub fn accounts_cash(&self) -> FxHashMap<u64, i128> {
        self.cash_entries().collect()
    }
}
