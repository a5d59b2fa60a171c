//! The order-book-independent matcher: given the eligible opposite side and a quantity,
//! choose who closes how much. Policies plug in through `Allocator`; the pro-rata policies
//! split with the arithmetic of `prorata`.

use ethnum::I256;

use crate::core::book::position::{Position, PositionStore, NO_INDEX};
use crate::core::market::tiers::Tiers;
use crate::core::policy::prorata::{holding, pro_rata_shares, weighted_then_size, Holding, Weighting};
use crate::core::policy::ranking::RankIndex;
use crate::core::policy::scoring::Scoring;
use crate::core::units::fixed::Grid;
use crate::core::units::side::Side;

/// What an allocator sees: the opposite side of one market.
pub struct OppositeSide<'a> {
    pub store: &'a PositionStore,
    /// Eligible positions in queue order (ranked policies; account order for the others).
    pub index: &'a RankIndex,
    /// Every position of the side, eligible or not (for the size fallback of `LeverageQueue`).
    pub members: &'a [u32],
    pub grid: &'a Grid,
    pub tiers: &'a Tiers,
    pub mark: i64,
    pub scoring: &'a Scoring<'a>,
    /// The event's ADL price: what each counterparty must be able to pay for.
    pub terms: AdlTerms,
}

/// The ADL price of an event, as the terms a counterparty's solvency is checked against
/// (docs/model.md §2 step 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdlTerms {
    /// At the mark: closing at the mark costs an eligible (solvent) counterparty nothing.
    Mark,
    /// At the bankruptcy price of `lots` bankrupt lots of `side` entered at `entry` ticks
    /// and carrying `margin` cash units: `P_bk = entry − side·margin/(lots·factor)` ticks.
    Bankruptcy { side: Side, entry: i64, lots: i64, margin: i128 },
}

/// Why a counterparty in the way of the queue was passed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassReason {
    /// Isolated: the ADL price lies beyond its own bankruptcy price, so closing would pay it
    /// negative cash (dYdX's "non-overlapping bankruptcy prices").
    BeyondBankruptcy,
    /// Cross: its account's net collateral (TNC) cannot pay for one lot at the ADL price.
    Collateral,
}

impl PassReason {
    pub fn name(&self) -> &'static str {
        match self {
            PassReason::BeyondBankruptcy => "beyond_bankruptcy",
            PassReason::Collateral => "collateral",
        }
    }
}

/// A counterparty passed over in an event; it keeps its place for later events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Passed {
    pub slot: u32,
    pub reason: PassReason,
}

/// What an allocator chose: the takes, and the counterparties it passed over on the way.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Allocation {
    pub takes: Vec<Take>,
    pub passed: Vec<Passed>,
}

impl Allocation {
    pub fn lots(&self) -> i64 {
        self.takes.iter().map(|t| t.lots).sum()
    }
}

impl OppositeSide<'_> {
    /// The most lots of `p` its holder can pay for at the ADL price (docs/model.md §2 step 4).
    ///
    /// Isolated, all lots or none: the cash it receives, `M_c + σ_c·q_c·(P_bk − E_c)`, must be
    /// >= 0. `P_bk` is off the grid; with the engine's margin split (the lots carry
    /// `⌊q_c·M/L⌋` or more) this is exactly `M_c + σ_c·value(q_c, E − E_c) + ⌊q_c·M/L⌋ >= 0`.
    ///
    /// Cross: each lot costs the account `D/L` against the mark, where `D` is the deficit at
    /// the mark of the `L` bankrupt lots, so at most `⌊TNC·L/D⌋` lots keep `TNC >= 0`. (The
    /// carried margin is rounded down, so k lots cost at most `⌈k·D/L⌉`, and an integer TNC
    /// covers that exactly when it covers `k·D/L`.)
    #[inline(always)]
    pub fn affordable(&self, p: &Position) -> Result<i64, PassReason> {
        let AdlTerms::Bankruptcy { side, entry, lots, margin } = self.terms else { return Ok(p.qty) };
        if p.cross {
            return self.cross_affordable(p, side, entry, lots, margin);
        }
        // X + ⌊q_c·M/L⌋ >= 0 with X an integer is X·L + q_c·M >= 0: no division on this
        // per-counterparty path (the products fit i128 for any real book; else divide). Kept
        // small and inline: the pro-rata loops run it once per opposite position.
        let own = p.margin + p.side.sign_i128() * self.grid.value(p.qty, entry - p.entry);
        let pays = match (i64::try_from(own), i64::try_from(margin)) {
            // Products of i64s are exact in i128 and their sum cannot overflow (< 2^127).
            (Ok(own), Ok(margin)) => own as i128 * lots as i128 + p.qty as i128 * margin as i128 >= 0,
            // Else the same products in 256 bits (a cross margin share can be near 2^125).
            _ => I256::from(own) * I256::from(lots) + I256::from(p.qty) * I256::from(margin) >= I256::ZERO,
        };
        if pays {
            Ok(p.qty)
        } else {
            Err(PassReason::BeyondBankruptcy)
        }
    }

    /// `affordable` of a cross position: at most `⌊TNC·L/D⌋` lots.
    #[cold]
    #[inline(never)]
    fn cross_affordable(&self, p: &Position, side: Side, entry: i64, lots: i64, margin: i128) -> Result<i64, PassReason> {
        let deficit = -(margin + side.sign_i128() * self.grid.value(lots, self.mark - entry));
        if deficit <= 0 {
            return Ok(p.qty);
        }
        let tnc = self.scoring.cross.totals(p.account).tnc();
        let cap = match tnc.checked_mul(lots as i128) {
            // ⌊x/D⌋ >= q exactly when x >= q·D (D > 0): the whole position, no division.
            Some(x) if (p.qty as i128).checked_mul(deficit).is_some_and(|need| x >= need) => p.qty as i128,
            Some(x) => x.div_euclid(deficit),
            // Beyond 128 bits: a cost per lot rounded up never overstates what TNC pays for.
            None => tnc / (deficit / lots as i128 + 1),
        };
        if cap > 0 {
            Ok(cap.min(p.qty as i128) as i64)
        } else {
            Err(PassReason::Collateral)
        }
    }

    /// `affordable` as a cap, recording the pass in `passed`.
    #[inline(always)]
    fn cap(&self, slot: u32, p: &Position, passed: &mut Vec<Passed>) -> i64 {
        self.affordable(p).unwrap_or_else(|reason| {
            passed.push(Passed { slot, reason });
            0
        })
    }
}

/// One counterparty's share of an ADL event. `rank`/`score` are `None` for policies that
/// do not rank (pro-rata).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Take {
    pub slot: u32,
    pub lots: i64,
    pub rank: Option<u64>,
    pub score: Option<f64>,
}

pub trait Allocator {
    /// Chooses counterparties for up to `lots` lots, never the account `exclude`
    /// (no account is matched against itself), and none beyond what it can pay for
    /// (`OppositeSide::affordable`). Σ take.lots <= lots; less only when the opposite side
    /// cannot absorb (or pay for) it all.
    fn allocate(&self, side: &OppositeSide<'_>, lots: i64, exclude: u64) -> Allocation;
}

/// Ranked queue (BitMEX-style): highest score first, whole positions, partial last.
pub struct RankedQueue;

impl Allocator for RankedQueue {
    fn allocate(&self, side: &OppositeSide<'_>, lots: i64, exclude: u64) -> Allocation {
        let mut out = Allocation::default();
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
            let take = left.min(side.cap(slot, &p, &mut out.passed));
            if take > 0 {
                out.takes.push(Take { slot, lots: take, rank: Some(rank), score: Some(side.index.score_at(pos)) });
                left -= take;
            }
        }
        out
    }
}

/// `min_max_leverage`: the ranked queue of profitable positions by leverage; if they cannot
/// absorb it all, the rest is split by size over the other opposite positions that are not
/// bankrupt (docs/model.md §4), and only then is there bad debt.
pub struct LeverageQueue;

impl Allocator for LeverageQueue {
    fn allocate(&self, side: &OppositeSide<'_>, lots: i64, exclude: u64) -> Allocation {
        let mut out = RankedQueue.allocate(side, lots, exclude);
        let left = lots - out.lots();
        if left > 0 {
            let mut rest: Vec<(u32, Position)> = side
                .members
                .iter()
                .map(|&slot| (slot, side.store.get(slot)))
                .filter(|(_, p)| p.index_pos == NO_INDEX && p.account != exclude)
                .filter(|(_, p)| side.scoring.eligible(side.grid, side.tiers, side.mark, p))
                .collect();
            rest.sort_unstable_by_key(|(slot, p)| (p.account, *slot));
            let holdings: Vec<Holding> =
                rest.iter().map(|(slot, p)| Holding::by_size(p.account, p.qty, side.cap(*slot, p, &mut out.passed))).collect();
            let slots: Vec<u32> = rest.iter().map(|r| r.0).collect();
            out.takes.extend(unranked_takes(&slots, &holdings, pro_rata_shares(&holdings, left)));
        }
        out
    }
}

/// Size pro-rata: every eligible opposite position closes `lots·q/Σq`, rounded to whole lots
/// by largest remainder (ties: lower account first). If the side holds no more than `lots`,
/// everyone closes fully.
pub struct SizeProRata;

impl Allocator for SizeProRata {
    fn allocate(&self, side: &OppositeSide<'_>, lots: i64, exclude: u64) -> Allocation {
        let (slots, holdings, passed) = holdings(side, exclude, |p, cap| Holding::by_size(p.account, p.qty, cap));
        Allocation { takes: unranked_takes(&slots, &holdings, pro_rata_shares(&holdings, lots)), passed }
    }
}

/// The opposite side's queued positions (never the account `exclude`) as slots and the
/// holdings `make` builds from each position and the lots it can pay for, and the ones
/// passed over (in account order). One pass that reads each position once, in member order:
/// that is the store's slot order, read nearly sequentially, where the index order of an
/// unranked policy (account order) is a random walk over the store, one or two cache misses
/// per position. The order does not change a split: `water_fill` decides every tie by
/// account, and a side holds one position per account.
fn holdings(side: &OppositeSide<'_>, exclude: u64, make: impl Fn(&Position, i64) -> Holding) -> (Vec<u32>, Vec<Holding>, Vec<Passed>) {
    let n = side.index.len();
    let (mut slots, mut holdings, mut passed) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::new());
    let mut queued = 0;
    for &slot in side.members {
        let p = side.store.get(slot);
        // A complete, current index holds exactly the members with an index position.
        if p.index_pos == NO_INDEX {
            continue;
        }
        debug_assert_eq!(side.index.slot_at(p.index_pos as usize), slot);
        queued += 1;
        if p.account != exclude {
            slots.push(slot);
            holdings.push(make(&p, side.cap(slot, &p, &mut passed)));
        }
    }
    if queued != n {
        // Not a complete index (never for the policies that call this): the queue itself.
        (slots, holdings, passed) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::new());
        for (_, slot) in side.index.queue() {
            let p = side.store.get(slot);
            if p.account != exclude {
                slots.push(slot);
                holdings.push(make(&p, side.cap(slot, &p, &mut passed)));
            }
        }
    }
    passed.sort_unstable_by_key(|x| side.store.get(x.slot).account);
    (slots, holdings, passed)
}

/// Takes of unranked policies from per-holding shares, in account order (holdings with no
/// share are left out).
fn unranked_takes(slots: &[u32], holdings: &[Holding], shares: Vec<i64>) -> Vec<Take> {
    let mut takes: Vec<(u64, Take)> = slots
        .iter()
        .zip(holdings)
        .zip(shares)
        .filter(|(_, share)| *share > 0)
        .map(|((&slot, h), lots)| (h.account, Take { slot, lots, rank: None, score: None }))
        .collect();
    takes.sort_unstable_by_key(|t| t.0);
    takes.into_iter().map(|t| t.1).collect()
}

/// The fair allocators of docs/model.md §4 in contract space: profitable positions close lots in
/// proportion to a weight, water-filled so no one closes more than its cap; if they cannot
/// absorb it all, the rest is split by size over the other opposite positions.
pub struct WeightedProRata {
    pub weighting: Weighting,
}

impl Allocator for WeightedProRata {
    fn allocate(&self, side: &OppositeSide<'_>, lots: i64, exclude: u64) -> Allocation {
        let (slots, holdings, passed) = holdings(side, exclude, |p, cap| {
            let equity = side.scoring.equity(side.grid, side.tiers, side.mark, p);
            holding(p, side.grid, side.mark, equity, self.weighting, cap)
        });
        Allocation { takes: unranked_takes(&slots, &holdings, weighted_then_size(&holdings, lots)), passed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::policy::score::Policy;

    /// The split before positions were read in member order: the queue walked in index
    /// (account) order, takes and passes in that order.
    fn in_queue_order(side: &OppositeSide<'_>, lots: i64, exclude: u64, weighting: Option<Weighting>) -> Allocation {
        let mut passed = Vec::new();
        let (mut slots, mut hs) = (Vec::new(), Vec::new());
        for (_, slot) in side.index.queue() {
            let p = side.store.get(slot);
            if p.account != exclude {
                let cap = side.cap(slot, &p, &mut passed);
                slots.push(slot);
                hs.push(match weighting {
                    None => Holding::by_size(p.account, p.qty, cap),
                    Some(w) => holding(&p, side.grid, side.mark, side.scoring.equity(side.grid, side.tiers, side.mark, &p), w, cap),
                });
            }
        }
        let shares = if weighting.is_some() { weighted_then_size(&hs, lots) } else { pro_rata_shares(&hs, lots) };
        let takes = slots.iter().zip(shares).filter(|t| t.1 > 0).map(|(&slot, lots)| Take { slot, lots, rank: None, score: None });
        Allocation { takes: takes.collect(), passed }
    }

    struct ByAccount<'a>(&'a PositionStore);

    impl crate::core::policy::ranking::QueueOrder for ByAccount<'_> {
        fn account(&self, slot: u32) -> u64 {
            self.0.get(slot).account
        }
        fn exact(&self, _: u32) -> Option<crate::core::policy::score::Fraction> {
            Some(crate::core::policy::score::Fraction { sign: 0, num: 0, den: 1 })
        }
    }

    #[test]
    fn member_order_splits_exactly_as_queue_order() {
        // Random sides (splitmix64): accounts scattered over the slots, small sizes so that
        // remainders tie often, margins from generous to below the ADL price's needs, some
        // members out of the index; every pro-rata split and its passes must be the same
        // whichever order the positions are read in.
        use crate::core::policy::ranking::Entry;
        let mut state = 7u64;
        let mut next = move |n: u64| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) % n
        };
        let grid = Grid::new(0, 0, 0).unwrap();
        let tiers = Tiers::flat(5_000);
        let cross = crate::core::book::cross::CrossBook::default();
        for round in 0..300 {
            let n = 1 + next(40) as usize;
            let mut store = PositionStore::with_capacity(n);
            let mut members = Vec::new();
            for i in 0..n {
                let qty = 1 + next(if round % 2 == 0 { 4 } else { 30 }) as i64;
                let entry = 90 + next(20) as i64;
                let p = Position {
                    account: next(1_000) * 1_000 + i as u64, // distinct, in no order
                    qty,
                    entry,
                    margin: next(qty as u64 * 12) as i128,
                    market: 0,
                    member_pos: members.len() as u32,
                    index_pos: NO_INDEX,
                    side: Side::Short,
                    cap_bp: 2_000 + next(8_001) as u16,
                    cross: false,
                };
                members.push(store.insert(p).unwrap());
            }
            let mark = 95 + next(10) as i64;
            let entries: Vec<Entry> = members
                .iter()
                .filter(|&&s| store.get(s).equity(&grid, mark) > 0 && next(8) != 0)
                .map(|&slot| Entry { slot, account: store.get(slot).account, score: 0.0, lots: store.get(slot).qty })
                .collect();
            let index = RankIndex::build(entries, &ByAccount(&store));
            for (pos, slot) in index.slots() {
                store.set_index_pos(slot, pos as u32);
            }
            let exclude = if next(3) == 0 { store.get(members[next(n as u64) as usize]).account } else { u64::MAX };
            for policy in [Policy::SizeProRata, Policy::WealthProRata, Policy::LeveredProRata, Policy::CappedProRata] {
                let scoring = Scoring { policy, cross: &cross, custom: &[] };
                let bankrupt_lots = 1 + next(60) as i64;
                let terms = if next(4) == 0 {
                    AdlTerms::Mark
                } else {
                    AdlTerms::Bankruptcy { side: Side::Long, entry: 100 + next(20) as i64, lots: bankrupt_lots, margin: next(400) as i128 }
                };
                let side = OppositeSide {
                    store: &store,
                    index: &index,
                    members: &members,
                    grid: &grid,
                    tiers: &tiers,
                    mark,
                    scoring: &scoring,
                    terms,
                };
                let lots = 1 + next(80) as i64;
                let (got, want) = match policy {
                    Policy::SizeProRata => (SizeProRata.allocate(&side, lots, exclude), in_queue_order(&side, lots, exclude, None)),
                    _ => {
                        let weighting = match policy {
                            Policy::WealthProRata => Weighting::Profit,
                            Policy::LeveredProRata => Weighting::LeveredProfit,
                            _ => Weighting::CappedSize,
                        };
                        (
                            WeightedProRata { weighting }.allocate(&side, lots, exclude),
                            in_queue_order(&side, lots, exclude, Some(weighting)),
                        )
                    }
                };
                assert_eq!(got, want, "round {round} {policy:?}");
            }
        }
    }

    #[test]
    fn the_cross_cap_without_division_is_the_floor() {
        // ⌊TNC·L/D⌋ capped at q, against the same floor taken by division, for TNC around
        // every boundary k·D/L (and non-positive ones, which pass the position over).
        use crate::core::book::cross::CrossBook;
        let grid = Grid::new(0, 0, 2).unwrap();
        let tiers = Tiers::flat(5_000);
        let index = RankIndex::default();
        let mut state = 5u64;
        let mut next = move |n: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        for _ in 0..20_000 {
            let (lots, qty) = (1 + next(50) as i64, 1 + next(40) as i64);
            let (entry, mark, margin) = (100, 90 + next(20) as i64, next(3_000) as i128);
            let deficit = -(margin + grid.value(lots, mark - entry));
            let wallet = next(4) as i128 * deficit.max(1) * qty as i128 / lots as i128 + next(7) as i128 - 3;
            let p = Position {
                account: 9,
                qty,
                entry: mark,
                margin: 0,
                market: 0,
                member_pos: 0,
                index_pos: 0,
                side: Side::Short,
                cap_bp: 10_000,
                cross: true,
            };
            // The account holds only this position, entered at the mark: TNC = its wallet.
            let mut store = PositionStore::default();
            let slot = store.insert(p).unwrap();
            // The instrument alone (the policy's markets build on this module).
            let mut market =
                crate::core::market::instrument::Instrument::new("X", crate::core::market::MarketSpec::linear(0, 0, 0.01), 2).unwrap();
            market.mark = Some(mark);
            let mut cross = CrossBook::default();
            cross.add(9, slot, 0, &mut Default::default());
            struct Only(crate::core::market::instrument::Instrument);
            impl AsRef<crate::core::market::instrument::Instrument> for Only {
                fn as_ref(&self) -> &crate::core::market::instrument::Instrument {
                    &self.0
                }
            }
            cross.refresh(9, wallet, &store, &[Only(market)]).unwrap();
            let scoring = Scoring { policy: Policy::SizeProRata, cross: &cross, custom: &[] };
            let terms = AdlTerms::Bankruptcy { side: Side::Long, entry, lots, margin };
            let side =
                OppositeSide { store: &store, index: &index, members: &[], grid: &grid, tiers: &tiers, mark, scoring: &scoring, terms };
            let tnc = cross.totals(9).tnc();
            let want = if deficit <= 0 {
                Ok(qty)
            } else {
                let cap = (tnc * lots as i128).div_euclid(deficit);
                if cap > 0 {
                    Ok(cap.min(qty as i128) as i64)
                } else {
                    Err(PassReason::Collateral)
                }
            };
            assert_eq!(side.affordable(&p), want, "tnc {tnc} lots {lots} deficit {deficit} qty {qty}");
        }
    }
}
