//! The one place that maps a policy to its allocation kernel: which kernel closes the lots,
//! how pro-rata policies weigh, which policies may allocate from the head of their queue,
//! and which one falls back to size. The engine's waterfall and `Engine::adl_dry_run` (the
//! stateless calls on any book) allocate through `allocate`; the one-pass column path of
//! `stateless.rs` (plain books) takes the weighting and the fallback rule from here and runs
//! the same scoring, queue order and split functions (`alloc`, `prorata`, `dydx`) over its columns.

use crate::core::policy::alloc::{Allocation, Allocator, LeverageQueue, OppositeSide, RankedQueue, SizeProRata, WeightedProRata};
use crate::core::policy::dydx::DydxWalk;
use crate::core::policy::pro_rata_index::ProRataIndex;
use crate::core::policy::prorata::Weighting;
use crate::core::policy::score::Policy;

/// The weighting of a pro-rata policy that splits by something other than size, then by size
/// (`prorata::weighted_then_size`); `None` for every other policy.
pub fn weighting(policy: Policy) -> Option<Weighting> {
    match policy {
        Policy::WealthProRata => Some(Weighting::Profit),
        Policy::LeveredProRata => Some(Weighting::LeveredProfit),
        Policy::CappedProRata => Some(Weighting::CappedSize),
        _ => None,
    }
}

/// Whether the policy's kernel can start from an index of the queue's head only: queue
/// policies can; pro-rata splits and the dYdX walk see the whole side.
pub fn allocates_from_head(policy: Policy) -> bool {
    matches!(policy, Policy::Bitmex | Policy::Binance | Policy::Hyperliquid | Policy::Custom | Policy::MinMaxLeverage)
}

/// Whether lots the queue cannot place are split by size over the side's other positions
/// (`min_max_leverage`, docs/model.md §4) instead of going on to step 5.
pub fn falls_back_to_size(policy: Policy) -> bool {
    policy == Policy::MinMaxLeverage
}

/// Allocates `lots` over `side` by `policy`, never to `exclude` (the bankrupt account).
/// `seed` and `event` draw the dYdX walk's start; `head_only` says the index holds only the
/// head of the queue, so the size fallback cannot run yet (the caller asks for a complete
/// index when the head runs out). `pro_rata`, the side's current pro-rata index, lets the
/// pro-rata policies visit only the positions an event reaches (the same split exactly;
/// debug builds check it against the scan of the whole side).
#[allow(clippy::too_many_arguments)]
pub fn allocate(
    policy: Policy,
    side: &OppositeSide<'_>,
    lots: i64,
    exclude: u64,
    seed: u64,
    event: u64,
    head_only: bool,
    pro_rata: Option<&ProRataIndex>,
) -> Allocation {
    // A pro-rata index filing every queued position (else it is not current: scan).
    if let Some(fast) = pro_rata.filter(|pr| pr.len() == side.index.len()).and_then(|pr| pr.allocate(side, lots, exclude)) {
        #[cfg(debug_assertions)]
        assert_eq!(fast, scan(policy, side, lots, exclude, seed, event, head_only), "the pro-rata index splits as the scan");
        return fast;
    }
    scan(policy, side, lots, exclude, seed, event, head_only)
}

/// `allocate` by the kernels themselves (the pro-rata ones scan the whole side).
pub fn scan(policy: Policy, side: &OppositeSide<'_>, lots: i64, exclude: u64, seed: u64, event: u64, head_only: bool) -> Allocation {
    match (policy, weighting(policy)) {
        (_, Some(weighting)) => WeightedProRata { weighting }.allocate(side, lots, exclude),
        (Policy::SizeProRata, None) => SizeProRata.allocate(side, lots, exclude),
        (Policy::Dydx, None) => DydxWalk { seed, event }.allocate(side, lots, exclude),
        (p, None) if falls_back_to_size(p) && !head_only => LeverageQueue.allocate(side, lots, exclude),
        _ => RankedQueue.allocate(side, lots, exclude),
    }
}
