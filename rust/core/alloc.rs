//! The order-book-independent matcher: given the eligible opposite side and a quantity,
//! choose who closes how much. Policies plug in through `Allocator`.

use crate::core::position::PositionStore;
use crate::core::ranking::RankIndex;

/// What an allocator sees: the opposite side of one market.
pub struct OppositeSide<'a> {
    pub store: &'a PositionStore,
    /// Eligible positions in queue order (ranked policies).
    pub index: &'a RankIndex,
}

/// One counterparty's share of an ADL event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Take {
    pub slot: u32,
    /// Position of the counterparty in the ranking index.
    pub index_pos: usize,
    pub lots: i64,
    pub rank: u64,
    pub score: f64,
}

pub trait Allocator {
    /// Chooses counterparties for up to `lots` lots, never the account `exclude`
    /// (no account is matched against itself). Σ take.lots <= lots; less only when the
    /// opposite side cannot absorb it all.
    fn allocate(&self, side: &OppositeSide<'_>, lots: i64, exclude: u64) -> Vec<Take>;
}

/// Ranked queue (BitMEX-style): highest score first, whole positions, partial last.
pub struct RankedQueue;

impl Allocator for RankedQueue {
    fn allocate(&self, side: &OppositeSide<'_>, lots: i64, exclude: u64) -> Vec<Take> {
        let mut takes = Vec::new();
        let mut left = lots;
        // The head of the queue has rank 1; every entry still queued counts, even ours.
        for (rank, (pos, slot)) in (1u64..).zip(side.index.queue()) {
            if left == 0 {
                break;
            }
            let p = side.store.get(slot);
            if p.account == exclude {
                continue;
            }
            let take = left.min(p.qty);
            takes.push(Take { slot, index_pos: pos, lots: take, rank, score: side.index.score_at(pos) });
            left -= take;
        }
        takes
    }
}
