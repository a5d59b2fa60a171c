//! The pro-rata index (`pro_rata_index`) against the scan of the whole side, on venue-like
//! sides kept current through the market's own calls (a module of its own: the test needs the
//! markets, which build on the index).

use crate::core::book::cross::CrossBook;
use crate::core::book::position::NO_INDEX;
use crate::core::book::position::{Position, PositionStore};
use crate::core::market::MarketSpec;
use crate::core::policy::alloc::{AdlTerms, OppositeSide, Take};
use crate::core::policy::alloc::{Allocator, SizeProRata, WeightedProRata};
use crate::core::policy::pro_rata_index::Split;
use crate::core::policy::prorata::Weighting;
use crate::core::policy::queues::Market;
use crate::core::policy::score::Policy;
use crate::core::policy::scoring::Scoring;
use crate::core::units::side::Side;

/// splitmix64 draws in `0..n`.
fn rng(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed;
    move |n: u64| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

const LEVERAGE: [i64; 9] = [1, 2, 3, 5, 10, 20, 50, 100, 125];

/// Compares the index's split of events on one venue-like short side (entries ±30 %
/// around the mark, 1–125× leverage, a share of cross accounts, sizes drawn from few
/// values so that weights and remainders tie exactly) with the scan of the whole side,
/// for every pro-rata policy: bankrupt longs gapped 5–30 % past their bankruptcy price
/// (some counterparties passed over), at the mark, excluded accounts; and after the side
/// changes between events (positions shrink, leave, cross wallets move), as in a cascade.
#[test]
fn the_index_splits_exactly_as_the_scan() {
    let mut next = rng(11);
    let (mut fast_events, mut events) = (0, 0);
    for round in 0..160 {
        let (policy, split) = [
            (Policy::SizeProRata, Split::Size),
            (Policy::WealthProRata, Split::Weighted(Weighting::Profit)),
            (Policy::LeveredProRata, Split::Weighted(Weighting::LeveredProfit)),
            (Policy::CappedProRata, Split::Weighted(Weighting::CappedSize)),
        ][round % 4];
        let mut market = Market::new("X", MarketSpec::linear(0, 0, 0.005), 2).unwrap();
        let mark = 10_000i64;
        market.set_mark(mark);
        let grid = market.grid;
        let mut store = PositionStore::default();
        let mut cross = CrossBook::default();
        let mut wallets = Vec::new();
        let n = 20 + next(if round % 3 == 0 { 600 } else { 120 }) as usize;
        let sizes = [1, 2, 3, 5, 8, 13, 40, 100];
        for i in 0..n {
            let qty = if round % 2 == 0 { sizes[next(sizes.len() as u64) as usize] } else { 1 + next(500) as i64 };
            let entry = mark * (70 + next(61) as i64) / 100;
            let notional = grid.notional(qty, entry);
            let margin = notional / LEVERAGE[next(9) as usize] as i128 + next(3) as i128;
            let account = 1 + next(1_000_000) * 1_000 + i as u64;
            let is_cross = next(3) == 0;
            let p = Position {
                account,
                qty,
                entry,
                margin: if is_cross { 0 } else { margin },
                market: 0,
                member_pos: 0,
                index_pos: NO_INDEX,
                side: Side::Short,
                cap_bp: 2_000 + next(8_001) as u16,
                cross: is_cross,
            };
            let slot = store.insert(p).unwrap();
            market.add_member(&mut store, slot);
            if is_cross {
                cross.add(account, slot, 0, &mut Default::default());
                wallets.push((account, margin));
            }
        }
        for &(a, w) in &wallets {
            cross.refresh(a, w, &store, std::slice::from_ref(&market)).unwrap();
        }
        for _ in 0..6 {
            let scoring = Scoring { policy, cross: &cross, custom: &[] };
            market.index(&mut store, &scoring, Side::Short).unwrap();
            let index = market.current_index(Side::Short).unwrap();
            let pr = market.pro_rata(Side::Short).expect("pro-rata policies get the index");
            assert_eq!(pr.len(), index.len());
            // A bankrupt long entered near the mark, its bankruptcy price 5-30 % above it.
            let most = if next(4) == 0 { n as u64 * 3 } else { 60 };
            let lots = 1 + next(most) as i64;
            let entry = mark * (95 + next(20) as i64) / 100;
            let p_bk = mark * (105 + next(26) as i64) / 100;
            let margin = grid.value(lots, entry - p_bk).max(0);
            let terms = if next(5) == 0 { AdlTerms::Mark } else { AdlTerms::Bankruptcy { side: Side::Long, entry, lots, margin } };
            let members = &market.members[1];
            let exclude = if next(3) == 0 { store.get(members[next(members.len() as u64) as usize]).account } else { 0 };
            let side = OppositeSide { store: &store, index, members, grid: &grid, tiers: &market.tiers, mark, scoring: &scoring, terms };
            // The scan of the whole side (what `kernel::scan` runs for these policies).
            let want = match split {
                Split::Size => SizeProRata.allocate(&side, lots, exclude),
                Split::Weighted(weighting) => WeightedProRata { weighting }.allocate(&side, lots, exclude),
            };
            events += 1;
            if let Some(got) = pr.allocate(&side, lots, exclude) {
                fast_events += 1;
                assert_eq!(got, want, "round {round} {policy:?} lots {lots}");
            }
            // The side changes as a cascade changes it: some takes shrink or close their
            // positions, a cross wallet moves, then the index is filed again in place.
            let takes: Vec<Take> = want.takes.iter().take(1 + next(8) as usize).copied().collect();
            for t in takes {
                let c = store.get(t.slot);
                let lots = t.lots.min(c.qty);
                if lots == c.qty {
                    market.remove_member(&mut store, t.slot);
                    store.remove(t.slot);
                    if c.cross {
                        cross.remove(c.account, t.slot, 0, &mut Default::default());
                    }
                } else {
                    store.set(t.slot, Position { qty: c.qty - lots, margin: c.margin - c.margin * lots as i128 / c.qty as i128, ..c });
                    market.shrink_member(&store, t.slot, lots);
                    if c.cross {
                        cross.refresh(c.account, next(1_000_000) as i128, &store, std::slice::from_ref(&market)).unwrap();
                    }
                    let scoring = Scoring { policy, cross: &cross, custom: &[] };
                    market.rescore_member(&mut store, &scoring, t.slot);
                }
            }
        }
    }
    // Most events are answered by the index (the others hold no more positions than lots).
    assert!(fast_events * 2 > events, "{fast_events} of {events} events");
}
