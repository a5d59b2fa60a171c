//! The book's updates: `load` (replace the whole book), `upsert` (insert or replace positions, set
//! account cash) and `close_position`. Each validates everything first and then applies, so
//! an error changes nothing.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::core::book::cross::{beyond, bounded_totals, CrossBook};
use crate::core::book::input::{parse_price, parse_row, PositionColumns, Row};
use crate::core::book::position::{Position, PositionStore, Side};
use crate::core::engine::undo::{Book, Undo};
use crate::core::engine::Engine;
use crate::core::policy::queues::Market;
use crate::core::policy::score::Policy;
use crate::core::units::error::{AdlError, Checked, Result};
use crate::core::units::fixed::{ledger, Grid};

/// What an upsert did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpsertStats {
    pub inserted: usize,
    pub replaced: usize,
    pub accounts: usize,
}

impl Engine {
    /// Inserts positions whose key (account, symbol, side) is new and replaces the size,
    /// entry, margin, margin mode and cap of those that exist. `accounts` (account, cash) sets
    /// the cash of the accounts it lists. Markets not known yet are created with the default
    /// spec. Under policy `custom`, `custom` gives each row's score. All or nothing.
    pub fn upsert(
        &mut self,
        cols: PositionColumns<'_>,
        symbols: &[String],
        accounts: Option<(&[u64], &[f64])>,
        custom: Option<&[f64]>,
    ) -> Result<UpsertStats> {
        self.undoable(|e, undo| e.upsert_noted(cols, symbols, accounts, custom, undo))
    }

    pub(crate) fn upsert_noted(
        &mut self,
        cols: PositionColumns<'_>,
        symbols: &[String],
        accounts: Option<(&[u64], &[f64])>,
        custom: Option<&[f64]>,
        undo: &mut Undo,
    ) -> Result<UpsertStats> {
        cols.check_shape(symbols.len())?;
        let custom = self.check_custom(custom, cols.len())?;
        // Market ids, with the new markets numbered after the existing ones (created below).
        let mut new_markets = Vec::new();
        let mut code_to_id = Vec::with_capacity(symbols.len());
        for name in symbols {
            let id = match self.market_ids.get(name) {
                Some(&id) => id,
                None => match new_markets.iter().position(|m: &Market| &m.name == name) {
                    Some(i) => (self.markets.len() + i) as u32,
                    None => {
                        new_markets.push(Market::new(name, self.default_spec.clone(), self.cash_decimals)?);
                        (self.markets.len() + new_markets.len() - 1) as u32
                    }
                },
            };
            code_to_id.push(id);
        }
        let grid_of = |id: u32| {
            let i = id as usize;
            if i < self.markets.len() {
                &self.markets[i].grid
            } else {
                &new_markets[i - self.markets.len()].grid
            }
        };
        let name_of = |id: u32| {
            let i = id as usize;
            if i < self.markets.len() {
                self.markets[i].name.clone()
            } else {
                new_markets[i - self.markets.len()].name.clone()
            }
        };
        let mut rows: Vec<(u32, Row)> = Vec::with_capacity(cols.len());
        let mut first_row: FxHashMap<(u64, u32, Side), usize> = FxHashMap::default();
        for row in 0..cols.len() {
            let id = code_to_id[cols.market_of(row) as usize];
            let r = parse_row(grid_of(id), row, cols.side[row], cols.qty[row], cols.entry[row], cols.margin[row])?;
            let account = cols.account[row];
            if let Some(first) = first_row.insert((account, id, r.side), row) {
                return Err(AdlError::DuplicateKey { account, symbol: name_of(id), side: r.side, row, first_row: first });
            }
            rows.push((id, r));
        }
        let cash = match accounts {
            Some((acc, amounts)) => self.parse_accounts(acc, amounts)?,
            None => FxHashMap::default(),
        };
        self.check_cross_after(&cols, &rows, &new_markets, &cash)?;

        // Note what will change: the replaced positions and the free slots the new ones take
        // (the end of the free list: `insert` pops it); cash and cross totals of the wallets
        // set and of the accounts whose cross positions change; the rows' markets.
        // (Each row's existing slot is looked up once, here, and used again below.)
        let found: Vec<Option<u32>> =
            rows.iter().enumerate().map(|(row, &(id, r))| self.store.find(&(cols.account[row], id, r.side))).collect();
        let mut slots = Vec::with_capacity(rows.len());
        let mut accounts: Vec<u64> = cash.keys().copied().collect();
        for (row, &old) in found.iter().enumerate() {
            slots.extend(old);
            if cols.is_cross(row) || old.is_some_and(|s| self.store.get(s).cross) {
                accounts.push(cols.account[row]);
            }
        }
        let free = self.store.free_slots();
        let pops = (rows.len() - slots.len()).min(free.len());
        slots.extend_from_slice(&free[free.len() - pops..]);
        undo.note_upsert(self, &slots, pops);
        undo.note_accounts(self, &accounts);
        undo.note_markets(rows.iter().map(|(id, _)| *id));

        // Apply.
        let mut stats = UpsertStats { accounts: cash.len(), ..UpsertStats::default() };
        let first_new = self.markets.len();
        self.markets.extend(new_markets);
        self.resolve_pools();
        for i in first_new..self.markets.len() {
            self.market_ids.insert(self.markets[i].name.clone(), i as u32);
        }
        let mut touched: FxHashSet<u64> = FxHashSet::default();
        for (row, (id, r)) in rows.into_iter().enumerate() {
            let account = cols.account[row];
            let fresh = cols.position(row, r, id);
            let slot = match found[row] {
                Some(slot) => {
                    let old = self.store.get(slot);
                    self.markets[id as usize].remove_member(&mut self.store, slot);
                    if old.cross {
                        self.cross.remove(account, slot, old.market, &mut self.cash);
                        touched.insert(account);
                    }
                    self.store.set(slot, fresh);
                    stats.replaced += 1;
                    slot
                }
                None => {
                    stats.inserted += 1;
                    self.store.insert(fresh).expect("key checked absent")
                }
            };
            self.markets[id as usize].add_member(&mut self.store, slot);
            if fresh.cross {
                self.cross.add(account, slot, id, &mut self.cash);
                touched.insert(account);
            }
            if let Some(&s) = custom.get(row) {
                let i = slot as usize;
                if i >= self.custom.len() {
                    self.custom.resize(i + 1, 0.0);
                }
                self.custom[i] = s;
            }
            // The fault hook's step: one per row applied (a panic halfway through the rows).
            #[cfg(debug_assertions)]
            crate::core::engine::fault::step();
        }
        for (a, c) in cash {
            self.put_cash(a, c);
            touched.insert(a);
        }
        self.refresh_cross(touched.into_iter()).expect("checked by check_cross_after");
        Ok(stats)
    }

    /// The cross accounts an upsert touches, as they will be (rows replace the positions
    /// with their keys, `cash` sets wallets), must stay within `cross::CROSS_LIMIT`.
    fn check_cross_after(
        &self,
        cols: &PositionColumns<'_>,
        rows: &[(u32, Row)],
        new: &[Market],
        cash: &FxHashMap<u64, i128>,
    ) -> Result<()> {
        let market = |id: u32| {
            let i = id as usize;
            if i < self.markets.len() {
                &self.markets[i]
            } else {
                &new[i - self.markets.len()]
            }
        };
        let mut fresh: FxHashMap<u64, Vec<Position>> = FxHashMap::default();
        let mut replaced: FxHashSet<(u64, u32, Side)> = FxHashSet::default();
        let mut touched: FxHashSet<u64> = cash.keys().copied().collect();
        for (row, &(id, r)) in rows.iter().enumerate() {
            let p = cols.position(row, r, id);
            replaced.insert((p.account, id, p.side));
            touched.insert(p.account);
            if p.cross {
                fresh.entry(p.account).or_default().push(p);
            }
        }
        for a in touched {
            let kept =
                self.cross.slots(a).iter().map(|&s| self.store.get(s)).filter(|p| !replaced.contains(&(p.account, p.market, p.side)));
            let all: Vec<Position> = kept.chain(fresh.get(&a).into_iter().flatten().copied()).collect();
            let wallet = cash.get(&a).copied().unwrap_or_else(|| self.cash_of(a));
            if !all.is_empty() && bounded_totals(wallet, all.iter().map(|p| (p, &market(p.market).inst))).is_none() {
                return Err(beyond(a));
            }
        }
        Ok(())
    }

    /// Closes a position outside ADL (the trader's own close) at `price` (None = the mark):
    /// its margin and PnL at that price go to the account's cash, the book takes the lots.
    /// Returns the cash credited (negative when the close realises a loss beyond the margin).
    pub fn close_position(&mut self, account: u64, market: u32, side: Side, price: Option<f64>) -> Result<i128> {
        self.undoable(|e, undo| e.close_position_noted(account, market, side, price, undo))
    }

    pub(crate) fn close_position_noted(
        &mut self,
        account: u64,
        market: u32,
        side: Side,
        price: Option<f64>,
        undo: &mut Undo,
    ) -> Result<i128> {
        if market as usize >= self.markets.len() {
            return Err(AdlError::UnknownMarket { symbol: format!("#{market}") });
        }
        let slot = self.store.find(&(account, market, side)).ok_or_else(|| AdlError::UnknownPosition {
            account,
            symbol: self.markets[market as usize].name.clone(),
            side,
        })?;
        let m = &self.markets[market as usize];
        let mark = m.mark()?;
        let fill = match price {
            Some(x) => parse_price(&m.grid, "price", 0, x)?,
            None => mark,
        };
        let p = self.store.get(slot);
        let s = p.side.sign_i128();
        let credit = p.margin.add_c(s * m.grid.value(p.qty, fill - p.entry), "close credit")?;
        let book = s * m.grid.value(p.qty, mark - fill);
        let cash = ledger(self.cash_of(account), credit, "account cash")?;
        let book_value = ledger(self.book_value, book, "book value")?;
        undo.note_slots(self, &[slot]);
        undo.note_accounts(self, &[account]);
        undo.note_markets([market]);
        self.markets[market as usize].remove_member(&mut self.store, slot);
        self.store.remove(slot);
        self.put_cash(account, cash);
        self.book_value = book_value;
        if p.cross {
            self.cross.remove(account, slot, market, &mut self.cash);
        }
        // The credit moved the wallet of any cross positions the account still holds (within
        // `LEDGER_LIMIT`, far below `CROSS_LIMIT`; the positions left are a subset at the same marks).
        self.refresh_cross(std::iter::once(account)).expect("a wallet within the ledger limit");
        Ok(credit)
    }

    /// Recomputes the totals of these cross accounts and rescores their positions.
    /// Callers check first that the totals stay within `cross::CROSS_LIMIT`.
    pub(crate) fn refresh_cross(&mut self, accounts: impl Iterator<Item = u64>) -> Result<()> {
        let mut slots = Vec::new();
        for a in accounts {
            let cash = self.cash_of(a);
            self.cross.refresh(a, cash, &self.store, &self.markets)?;
            slots.extend_from_slice(self.cross.slots(a));
        }
        let (markets, store, scoring) = self.book_mut();
        for s in slots {
            let m = store.get(s).market as usize;
            markets[m].rescore_member(store, &scoring, s);
        }
        Ok(())
    }
}

impl Engine {
    /// Replaces the book. `symbols[code]` names the market of each code in `cols.market`;
    /// unknown markets are created with the default spec. `accounts` (account, cash), when
    /// given, replaces all account cash (a cross account's wallet); otherwise every account
    /// starts at zero cash. `custom` gives each row's score under policy `custom`.
    pub fn load(
        &mut self,
        cols: PositionColumns<'_>,
        symbols: &[String],
        accounts: Option<(&[u64], &[f64])>,
        custom: Option<&[f64]>,
    ) -> Result<()> {
        self.undoable(|e, undo| e.load_noted(cols, symbols, accounts, custom, undo))
    }

    /// Custom scores: required (finite, one per row) under policy `custom`, refused otherwise.
    pub(crate) fn check_custom(&self, custom: Option<&[f64]>, n: usize) -> Result<Vec<f64>> {
        match (self.policy, custom) {
            (Policy::Custom, Some(s)) => {
                if s.len() != n {
                    return Err(AdlError::config("score", format!("column has {} rows, positions have {n}", s.len())));
                }
                if let Some(row) = s.iter().position(|x| !x.is_finite()) {
                    return Err(AdlError::value("score", row, format!("{} is not a finite score", s[row])));
                }
                Ok(s.to_vec())
            }
            (Policy::Custom, None) => Err(AdlError::config("score", "policy custom needs a score for every position")),
            (_, Some(_)) => {
                Err(AdlError::config("score", format!("scores are given but the policy is {}, not custom", self.policy.name())))
            }
            (_, None) => Ok(Vec::new()),
        }
    }

    pub(crate) fn parse_accounts(&self, acc: &[u64], amounts: &[f64]) -> Result<FxHashMap<u64, i128>> {
        if acc.len() != amounts.len() {
            return Err(AdlError::config("cash", "accounts and cash columns differ in length"));
        }
        let g = Grid::cash_only(self.cash_decimals)?;
        let mut cash = FxHashMap::with_capacity_and_hasher(acc.len(), Default::default());
        let mut first_row = FxHashMap::default();
        for (row, (&a, &x)) in acc.iter().zip(amounts).enumerate() {
            let v = match g.cash(x) {
                Some(v) if v >= 0 => v,
                _ => return Err(AdlError::value("cash", row, format!("{x} must be a finite amount >= 0 within the fixed-point range"))),
            };
            if let Some(first) = first_row.insert(a, row) {
                return Err(AdlError::value("account", row, format!("duplicate account {a} (first seen at row {first})")));
            }
            cash.insert(a, v);
        }
        Ok(cash)
    }
}

impl Engine {
    /// `load`: the new book is staged and swapped in whole; the old one goes to `undo`.
    pub(crate) fn load_noted(
        &mut self,
        cols: PositionColumns<'_>,
        symbols: &[String],
        accounts: Option<(&[u64], &[f64])>,
        custom: Option<&[f64]>,
        undo: &mut Undo,
    ) -> Result<()> {
        cols.check_shape(symbols.len())?;
        let custom = self.check_custom(custom, cols.len())?;
        // Markets are staged so a failure changes nothing.
        let mut markets = self.markets.clone();
        let mut ids = self.market_ids.clone();
        let mut code_to_id = Vec::with_capacity(symbols.len());
        for name in symbols {
            let id = match ids.get(name) {
                Some(&id) => id,
                None => {
                    markets.push(Market::new(name, self.default_spec.clone(), self.cash_decimals)?);
                    let id = (markets.len() - 1) as u32;
                    ids.insert(name.clone(), id);
                    id
                }
            };
            code_to_id.push(id);
        }
        for m in markets.iter_mut() {
            m.members = [Vec::new(), Vec::new()];
            m.invalidate();
        }
        let cash = match accounts {
            Some((acc, amounts)) => self.parse_accounts(acc, amounts)?,
            None => FxHashMap::default(),
        };
        let n = cols.len();
        let mut store = PositionStore::with_capacity(n);
        for row in 0..n {
            let id = code_to_id[cols.market_of(row) as usize];
            let m = &markets[id as usize];
            let r = parse_row(&m.grid, row, cols.side[row], cols.qty[row], cols.entry[row], cols.margin[row])?;
            let account = cols.account[row];
            let inserted = store.insert(cols.position(row, r, id));
            if let Err(first) = inserted {
                // Slots are handed out in row order while loading, so a slot is its row.
                return Err(AdlError::DuplicateKey { account, symbol: m.name.clone(), side: r.side, row, first_row: first as usize });
            }
        }
        for slot in 0..n as u32 {
            let m = store.get(slot).market as usize;
            markets[m].add_member(&mut store, slot);
        }
        // Grown by doubling: up to half of each list was spare.
        markets.iter_mut().flat_map(|m| m.members.iter_mut()).for_each(Vec::shrink_to_fit);
        let mut cash = cash;
        let cross = CrossBook::build(&mut cash, &store, &markets)?;
        undo.note_replaced_book(Book {
            markets: std::mem::replace(&mut self.markets, markets),
            market_ids: std::mem::replace(&mut self.market_ids, ids),
            store: std::mem::replace(&mut self.store, store),
            cash: std::mem::replace(&mut self.cash, cash),
            cross: std::mem::replace(&mut self.cross, cross),
            custom: std::mem::replace(&mut self.custom, custom),
        });
        self.resolve_pools();
        Ok(())
    }
}
