//! ADL placed without applying it: the stateless `deleverage` on any book the engine models
//! (tiers, multipliers, inverse markets, cross accounts), answered by the engine's own side
//! queues and allocation kernel (`policy::kernel`) on an engine loaded for the call.
//! `stateless::deleverage` answers plain books in one pass over the columns; the tests check
//! that both place the same lots.

use rustc_hash::FxHashSet;

use crate::core::book::position::Side;
use crate::core::engine::Engine;
use crate::core::policy::alloc::{AdlTerms, OppositeSide, Take};
use crate::core::policy::kernel;
use crate::core::units::error::{AdlError, Result};

impl Engine {
    /// Places `lots` lots of a bankrupt `side` position of `market` against the opposite side
    /// at the ADL price `price` (ticks), as step 4 of the waterfall would: by the policy's
    /// kernel, passing over counterparties that cannot pay at that price. Nothing is applied
    /// (only the side's ranking index is built). Takes are in the kernel's order (queue
    /// order, or account order for the policies that rank nobody). The bankrupt position is
    /// in no account of the book, so nobody is excluded. Errors with `InsufficientLiquidity`
    /// when the side cannot take all the lots.
    pub fn adl_dry_run(&mut self, market: u32, side: Side, lots: i64, price: i64) -> Result<Vec<Take>> {
        if market as usize >= self.markets.len() {
            return Err(AdlError::config("symbol", format!("market code {market} out of range")));
        }
        if lots <= 0 {
            return Err(AdlError::config("qty", format!("{lots} lots: must be at least one lot")));
        }
        let mark = self.markets[market as usize].mark()?;
        self.ranking(market, side.opposite())?;
        let m = &self.markets[market as usize];
        let index = m.current_index(side.opposite()).expect("built above");
        let members = &m.members[side.opposite().slot()];
        // No account is excluded: the first id that holds nothing on this side stands in.
        let held: FxHashSet<u64> = members.iter().map(|&s| self.store.get(s).account).collect();
        let exclude = (0..).find(|a| !held.contains(a)).expect("n + 1 ids cannot all be among n positions");
        let scoring = self.scoring();
        // At the ADL price: the bankruptcy terms of lots entered there with no margin.
        let terms = AdlTerms::Bankruptcy { side, entry: price, lots, margin: 0 };
        let opposite = OppositeSide { store: &self.store, index, members, grid: &m.grid, tiers: &m.tiers, mark, scoring: &scoring, terms };
        let allocation =
            kernel::allocate(self.policy, &opposite, lots, exclude, self.seed, self.next_event, false, m.pro_rata(side.opposite()));
        let placed = allocation.lots();
        if placed < lots {
            let (requested, available) = (m.grid.qty_f64(lots), m.grid.qty_f64(placed));
            return Err(AdlError::InsufficientLiquidity { requested, available, missing: requested - available });
        }
        Ok(allocation.takes)
    }
}
