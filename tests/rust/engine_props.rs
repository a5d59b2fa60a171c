//! Property tests over random books and liquidation sequences: the docs/model.md §2 invariants
//! hold exactly after every operation, fills follow the queue, ranks match a full sort, and
//! a dry run equals the real run minus the apply.

use proptest::prelude::*;

use _adl::core::engine::AdlPrice;
use _adl::core::SolvencyBaseline;
#[path = "common.rs"]
mod common;

use _adl::core::Fraction;
use _adl::core::Tiers;
use _adl::core::Trigger;
use _adl::core::{Engine, FeeConvention, FillKind, MarketSpec, Policy, Request, Side};

const CASES: u32 = 1_000;

#[derive(Debug, Clone)]
struct Book {
    policy: Policy,
    /// An override of the policy's ADL price.
    adl_price: Option<AdlPrice>,
    /// Arm a fund-drop trigger (the fund is then bypassed once it falls below 95 % of its peak).
    armed_trigger: bool,
    /// (qty_decimals, price_decimals, cash_decimals)
    grid: (u32, u32, u32),
    rows: Vec<(u64, Side, f64, f64, f64)>,
    mark: f64,
    fund: f64,
    /// (row to try, fill price, force)
    /// (pick, fill price, force, severity cap in lots: `Engine::liquidate_capped`)
    ops: Vec<(usize, f64, bool, Option<i64>)>,
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::Bitmex),
        Just(Policy::Binance),
        Just(Policy::SizeProRata),
        Just(Policy::Hyperliquid),
        Just(Policy::Dydx),
        Just(Policy::WealthProRata),
        Just(Policy::LeveredProRata),
        Just(Policy::MinMaxLeverage),
        Just(Policy::CappedProRata)
    ]
}

fn adl_price() -> impl Strategy<Value = Option<AdlPrice>> {
    prop_oneof![Just(None), Just(Some(AdlPrice::Bankruptcy)), Just(Some(AdlPrice::Mark)), Just(Some(AdlPrice::MarkCapped))]
}

/// Distinct (account, side) rows.
fn unique<T>(rows: Vec<(u64, Side, T)>) -> impl Iterator<Item = (u64, Side, T)> {
    let mut seen = std::collections::HashSet::new();
    rows.into_iter().filter(move |r| seen.insert((r.0, r.1)))
}

/// A textbook book: whole lots and ticks, entries 80–120, marks 85–115, margins 0–2,000.
fn textbook() -> impl Strategy<Value = Book> {
    let row = (1u64..12, prop_oneof![Just(Side::Long), Just(Side::Short)], (1u32..60, 80u32..121, 0u32..200_000));
    let ops = prop::collection::vec((0usize..40, -6i64..7, any::<bool>(), prop::option::of(0i64..40)), 1..12);
    (policy(), adl_price(), any::<bool>(), prop::collection::vec(row, 1..40), 85u32..116, 0u32..5_000, ops).prop_map(
        |(policy, adl_price, armed_trigger, rows, mark, fund, ops)| {
            let rows = unique(rows).map(|(a, s, (q, e, m))| (a, s, q as f64, e as f64, m as f64 / 100.0)).collect();
            let ops = ops.into_iter().map(|(pick, off, force, cap)| (pick, (mark as i64 + off).max(1) as f64, force, cap)).collect();
            Book { policy, adl_price, armed_trigger, grid: (0, 0, 2), rows, mark: mark as f64, fund: fund as f64 / 100.0, ops }
        },
    )
}

/// Leverage settings venues offer.
const LEVERAGE: [f64; 11] = [1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 25.0, 50.0, 75.0, 100.0, 125.0];

/// A venue-like gapped book: a real price level (BTC 60,000 … 0.5) with its grid, entries
/// within ±10 % of it, margins from leverage 1–125×, and a mark that jumps 5–30 % up or down
/// (the case where the ADL price lies beyond solvent counterparties' own bankruptcy prices).
fn gapped() -> impl Strategy<Value = Book> {
    let level = prop_oneof![Just((60_000.0, 3u32, 1u32)), Just((3_000.0, 2, 2)), Just((150.0, 1, 3)), Just((0.5, 0, 5))];
    let row = (1u64..12, prop_oneof![Just(Side::Long), Just(Side::Short)], (1u32..60, 90u32..111, 0usize..LEVERAGE.len()));
    let ops = prop::collection::vec((0usize..40, -6i32..7, any::<bool>(), prop::option::of(0i64..40)), 1..12);
    let gap = (5u32..31, any::<bool>());
    (policy(), adl_price(), any::<bool>(), level, prop::collection::vec(row, 1..40), gap, 0u32..5_000, ops).prop_map(
        |(policy, adl_price, armed_trigger, (base, qd, pd), rows, (gap, up), fund, ops)| {
            let round = |x: f64, d: u32| (x * 10f64.powi(d as i32)).round() / 10f64.powi(d as i32);
            let rows = unique(rows)
                .map(|(a, s, (lots, pct, lev))| {
                    let (qty, entry) = (lots as f64 / 10f64.powi(qd as i32), round(base * pct as f64 / 100.0, pd));
                    (a, s, qty, entry, round(qty * entry / LEVERAGE[lev], 8))
                })
                .collect();
            let mark = round(base * if up { 1.0 + gap as f64 / 100.0 } else { 1.0 - gap as f64 / 100.0 }, pd);
            let ops =
                ops.into_iter().map(|(pick, off, force, cap)| (pick, round(mark * (1.0 + off as f64 / 100.0), pd), force, cap)).collect();
            Book { policy, adl_price, armed_trigger, grid: (qd, pd, 8), rows, mark, fund: fund as f64 * base / 10_000.0, ops }
        },
    )
}

fn book() -> impl Strategy<Value = Book> {
    prop_oneof![textbook(), gapped()]
}

fn engine(b: &Book) -> Engine {
    let (qd, pd, cd) = b.grid;
    let spec = MarketSpec::linear(qd, pd, 0.005);
    let mut e = Engine::new(b.policy, b.fund, cd, spec.clone()).unwrap();
    if let Some(price) = b.adl_price {
        e.adl_price = price;
    }
    if b.armed_trigger {
        e.set_trigger(Trigger::FundDrop { arm: 0.95, disarm: 0.99 });
    }
    let rows: Vec<common::Row> = b.rows.iter().map(|&(a, s, q, en, m)| (a, 0, s, q, en, m, false)).collect();
    e.load(common::columns(&rows).view(), &["X".to_string()], None, None).unwrap();
    e.set_marks(&[("X".to_string(), b.mark)], None).unwrap();
    e
}

/// docs/model.md §2 "no one is made insolvent by ADL" (`SolvencyBaseline::check`).
fn check_nobody_made_insolvent(before: &Engine, after: &Engine, results: &[_adl::core::Liquidation]) -> Result<(), TestCaseError> {
    SolvencyBaseline::of(before).check(after, results).map_err(TestCaseError::fail)
}

/// The incrementally updated index holds exactly the live eligible positions, in the order
/// a full sort of fresh scores gives, with lots-ahead sums matching their sizes.
fn check_index_is_current(e: &mut Engine, policy: Policy) -> Result<(), TestCaseError> {
    let g = e.market(0).grid;
    let mark = e.market(0).mark().unwrap();
    for side in Side::BOTH {
        let fresh: std::collections::HashMap<u32, (f64, i64)> = e
            .store()
            .iter()
            .filter(|(_, p)| p.side == side)
            .filter_map(|(slot, p)| {
                policy.score(&g, &Tiers::flat(5_000), p.side, p.qty, p.entry, p.margin, mark).map(|s| (slot, (s, p.qty)))
            })
            .collect();
        let store = e.store().clone();
        let idx = e.ranking(0, side).unwrap();
        let queue: Vec<(usize, u32)> = idx.queue().collect();
        prop_assert_eq!(queue.len(), fresh.len());
        let mut ahead = 0i64;
        let mut last = f64::INFINITY;
        for (i, &(pos, slot)) in queue.iter().enumerate() {
            let (s, q) = fresh.get(&slot).copied().expect("queued position is live and eligible");
            let kept = idx.score_at(pos);
            prop_assert_eq!(kept, s);
            // Exact ties (equal fractions whose floats differ by an ulp) are ordered exactly by
            // the index; `ranking_agrees_with_a_full_sort` checks that order.
            prop_assert!(kept <= last || (kept - last).abs() <= 1e-12 * last.abs(), "{} after {}", kept, last);
            last = kept;
            prop_assert_eq!(idx.rank_at(pos), i as u64 + 1);
            prop_assert_eq!(idx.lots_ahead(pos, &store), ahead);
            prop_assert_eq!(store.get(slot).qty, q);
            ahead += q;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_after_every_liquidation(b in book()) {
        let mut e = engine(&b);
        let v0 = e.totals().value();
        for &(pick, fill, force, cap) in &b.ops {
            let live: Vec<(u64, Side)> = e.store().iter().map(|(_, p)| (p.account, p.side)).collect();
            if live.is_empty() { break; }
            let (account, side) = live[pick % live.len()];
            let req = Request { account, market: 0, side, fill_price: Some(fill), force, partial: false };
            let before = e.totals();
            let held: std::collections::HashMap<(u64, Side), i64> = e.store().iter().map(|(_, p)| ((p.account, p.side), p.qty)).collect();
            let Ok(preview) = e.liquidate_capped(req, cap, true) else {
                // Refused (healthy and not forced): nothing changed.
                prop_assert_eq!(e.totals(), before);
                continue;
            };
            let pre = e.clone();
            let r = e.liquidate_capped(req, cap, false).unwrap();
            prop_assert_eq!(&preview, &r);
            prop_assert!(cap.is_none_or(|k| r.adl_lots <= k), "ADL'd {} lots over the cap {:?}", r.adl_lots, cap);
            check_nobody_made_insolvent(&pre, &e, std::slice::from_ref(&r))?;
            let after = e.totals();
            // Cash conserved at fixed marks, exactly.
            prop_assert_eq!(after.value(), v0);
            prop_assert!(after.fund >= 0);
            prop_assert!(after.bad_debt >= before.bad_debt);
            // Contracts: ADL removes equal lots from both sides; book fills only the bankrupt side.
            let book_lots: i128 = r.fills.iter().filter(|f| f.kind != FillKind::Adl).map(|f| f.lots as i128).sum();
            let adl_lots: i128 = r.fills.iter().filter(|f| f.kind == FillKind::Adl).map(|f| f.lots as i128).sum();
            let signed = side as i128 * book_lots;
            prop_assert_eq!((after.long_lots - after.short_lots) - (before.long_lots - before.short_lots), -signed);
            prop_assert_eq!(book_lots + adl_lots, held[&(account, side)] as i128);
            let mut last = f64::INFINITY;
            for f in r.fills.iter().filter(|f| f.kind == FillKind::Adl) {
                let cp = f.account.unwrap();
                prop_assert!(cp != account, "matched against itself");
                prop_assert_eq!(f.side, Some(side.opposite()));
                prop_assert!(f.lots <= held[&(cp, side.opposite())], "closed more than held");
                // Ranked policies fill in queue order; pro-rata fills carry no rank or score.
                match (b.policy.is_ranked(), f.score) {
                    (true, Some(s)) => {
                        prop_assert!(s <= last, "fills out of score order");
                        prop_assert!(last != f64::NEG_INFINITY, "a queue fill after the size fallback");
                        last = s;
                    }
                    // min_max_leverage: once the profitable queue is used up, the rest by size.
                    (true, None) if b.policy == Policy::MinMaxLeverage => last = f64::NEG_INFINITY,
                    (false, None) => prop_assert!(f.rank.is_none()),
                    other => prop_assert!(false, "rank/score {:?} under {:?}", other, b.policy),
                }
            }
            // At the bankruptcy price, bad debt only when nobody else was left to take the lots.
            if r.bad_debt > 0 && e.adl_price == AdlPrice::Bankruptcy {
                // (An armed trigger does not change that: it only bypasses the fund.)
                prop_assert!(r.fills.iter().any(|f| f.kind == FillKind::BadDebt));
            }
            check_index_is_current(&mut e, b.policy)?;
        }
    }

    #[test]
    fn ranking_agrees_with_a_full_sort(b in book()) {
        let mut e = engine(&b);
        for side in Side::BOTH {
            let mark = e.market(0).mark().unwrap();
            let g = e.market(0).grid;
            // Reference: exact score descending, then account, then slot.
            let mut expect: Vec<(Fraction, u64, u32, i64)> = e
                .store()
                .iter()
                .filter(|(_, p)| p.side == side)
                .filter_map(|(slot, p)| b.policy.exact_score(&g, &Tiers::flat(5_000), p.side, p.qty, p.entry, p.margin, mark).map(|s| (s, p.account, slot, p.qty)))
                .collect();
            expect.sort_by(|a, b| b.0.cmp_value(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            let store = e.store().clone();
            let idx = e.ranking(0, side).unwrap();
            let got: Vec<u32> = idx.queue().map(|(_, s)| s).collect();
            prop_assert_eq!(got, expect.iter().map(|x| x.2).collect::<Vec<_>>());
            let mut ahead = 0i64;
            for (i, (pos, _)) in idx.queue().enumerate() {
                prop_assert_eq!(idx.rank_at(pos), i as u64 + 1);
                prop_assert_eq!(idx.lots_ahead(pos, &store), ahead);
                ahead += expect[i].3;
            }
        }
    }
}

/// A two-market book where some accounts are cross (wallet from the accounts frame, no
/// position margin) and the rest isolated.
#[derive(Debug, Clone)]
struct CrossBookCase {
    policy: Policy,
    /// (account, market, side, qty, entry, isolated margin)
    rows: Vec<(u64, u32, Side, f64, f64, f64)>,
    /// Accounts 1..=cross_accounts are cross.
    cross_accounts: u64,
    wallets: Vec<f64>,
    marks: (f64, f64),
    fund: f64,
    /// (row to try, whole account?, force)
    ops: Vec<(usize, bool, bool)>,
}

fn cross_book() -> impl Strategy<Value = CrossBookCase> {
    let row = (1u64..10, 0u32..2, prop_oneof![Just(Side::Long), Just(Side::Short)], 1u32..40, 80u32..121, 0u32..200_000);
    let policy = prop_oneof![
        Just(Policy::Bitmex),
        Just(Policy::Binance),
        Just(Policy::Hyperliquid),
        Just(Policy::MinMaxLeverage),
        Just(Policy::SizeProRata),
        Just(Policy::LeveredProRata),
        Just(Policy::Dydx)
    ];
    let ops = prop::collection::vec((0usize..40, any::<bool>(), any::<bool>()), 1..10);
    (
        policy,
        prop::collection::vec(row, 1..30),
        0u64..10,
        prop::collection::vec(0u32..100_000, 9),
        (85u32..116, 85u32..116),
        0u32..3_000,
        ops,
    )
        .prop_map(|(policy, rows, cross_accounts, wallets, marks, fund, ops)| {
            let mut seen = std::collections::HashSet::new();
            let rows = rows
                .into_iter()
                .filter(|r| seen.insert((r.0, r.1, r.2)))
                .map(|(a, m, s, q, e, mg)| (a, m, s, q as f64, e as f64, if a <= cross_accounts { 0.0 } else { mg as f64 / 100.0 }))
                .collect();
            CrossBookCase {
                policy,
                rows,
                cross_accounts,
                wallets: wallets.into_iter().map(|w| w as f64 / 100.0).collect(),
                marks: (marks.0 as f64, marks.1 as f64),
                fund: fund as f64 / 100.0,
                ops,
            }
        })
}

fn cross_engine(b: &CrossBookCase) -> Engine {
    let spec = MarketSpec::linear(0, 0, 0.05);
    let mut e = Engine::new(b.policy, b.fund, 2, spec.clone()).unwrap();
    e.add_market("X", spec.clone()).unwrap();
    e.add_market("Y", MarketSpec { maintenance_rate: 0.02, ..spec.clone() }).unwrap();
    let rows: Vec<common::Row> = b.rows.iter().map(|&(a, m, s, q, en, mg)| (a, m, s, q, en, mg, a <= b.cross_accounts)).collect();
    let accounts: Vec<u64> = (1..=9).collect();
    e.load(common::columns(&rows).view(), &["X".to_string(), "Y".to_string()], Some((&accounts, &b.wallets)), None).unwrap();
    e.set_marks(&[("X".to_string(), b.marks.0), ("Y".to_string(), b.marks.1)], None).unwrap();
    e
}

/// The incrementally updated queues equal the ones a fresh rebuild gives.
fn check_queues_match_a_rebuild(e: &mut Engine, marks: (f64, f64)) -> Result<(), TestCaseError> {
    let mut fresh = e.clone();
    // With cross accounts present, setting the marks makes every queue stale.
    fresh.set_marks(&[("X".to_string(), marks.0), ("Y".to_string(), marks.1)], None).unwrap();
    for market in 0..2 {
        for side in Side::BOTH {
            let a: Vec<(u32, f64)> = {
                let idx = e.ranking(market, side).unwrap();
                idx.queue().map(|(pos, s)| (s, idx.score_at(pos))).collect()
            };
            let idx = fresh.ranking(market, side).unwrap();
            let b: Vec<(u32, f64)> = idx.queue().map(|(pos, s)| (s, idx.score_at(pos))).collect();
            prop_assert_eq!(a, b, "market {} side {}", market, side.name());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn cross_margin_conserves_value_and_keeps_queues_current(b in cross_book()) {
        let mut e = cross_engine(&b);
        let v0 = e.totals().value();
        for &(pick, whole_account, force) in &b.ops {
            let live: Vec<(u64, u32, Side, bool)> = e.store().iter().map(|(_, p)| (p.account, p.market, p.side, p.cross)).collect();
            if live.is_empty() { break; }
            let (account, market, side, cross) = live[pick % live.len()];
            let before = e.totals();
            let held: std::collections::HashMap<(u64, u32, Side), i64> =
                e.store().iter().map(|(_, p)| ((p.account, p.market, p.side), p.qty)).collect();
            let pre = e.clone();
            let results = if whole_account && cross {
                e.liquidate_account(account, force, false)
            } else {
                e.liquidate(Request { account, market, side, fill_price: None, force, partial: false }, false).map(|l| vec![l])
            };
            let Ok(results) = results else {
                prop_assert_eq!(e.totals(), before);
                continue;
            };
            let after = e.totals();
            prop_assert_eq!(after.value(), v0);
            prop_assert!(after.fund >= 0);
            check_nobody_made_insolvent(&pre, &e, &results)?;
            let mut adl = 0i128;
            for r in &results {
                for f in r.fills.iter().filter(|f| f.kind == FillKind::Adl) {
                    let cp = f.account.unwrap();
                    prop_assert!(cp != account, "matched against itself");
                    prop_assert!(f.lots <= held[&(cp, r.key.1, r.key.2.opposite())], "closed more than held");
                    adl += f.lots as i128;
                }
            }
            // ADL takes equal lots off both sides; book fills only the liquidated side's.
            let book: i128 = results.iter().flat_map(|r| r.fills.iter().filter(|f| f.kind != FillKind::Adl).map(move |f| r.key.2 as i128 * f.lots as i128)).sum();
            let book_lots: i128 = results.iter().flat_map(|r| r.fills.iter().filter(|f| f.kind != FillKind::Adl).map(|f| f.lots as i128)).sum();
            prop_assert_eq!((before.long_lots + before.short_lots) - (after.long_lots + after.short_lots), 2 * adl + book_lots);
            prop_assert_eq!((after.long_lots - after.short_lots) - (before.long_lots - before.short_lots), -book);
            // A liquidated cross account with nothing left holds no wallet.
            if whole_account && cross {
                prop_assert_eq!(e.cash_of(account), 0);
            }
            check_queues_match_a_rebuild(&mut e, b.marks)?;
        }
    }
}

proptest! {
    // 10^5 books per run (issue 5): small books, a whole cascade each, exact conservation.
    #![proptest_config(ProptestConfig { cases: 100_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn cascades_conserve_value_exactly_at_scale(b in book()) {
        let mut e = engine(&b);
        let v0 = e.totals().value();
        let oi0 = e.totals();
        // The cascade: every position in the book, in the drawn order, forced, as one batch.
        let mut keys: Vec<(u64, Side)> = e.store().iter().map(|(_, p)| (p.account, p.side)).collect();
        let shift = b.ops.first().map_or(0, |o| o.0) % keys.len().max(1);
        keys.rotate_left(shift);
        let reqs: Vec<Request> = keys
            .iter()
            .zip(b.ops.iter().cycle())
            .map(|(&(account, side), op)| Request { account, market: 0, side, fill_price: Some(op.1), force: true, partial: false })
            .collect();
        // One liquidation at a time, so each event's counterparties are checked against the
        // state it started from (equal to the batch: liquidate_many applies them in order).
        let batch = e.clone().liquidate_many(&reqs).unwrap();
        let mut out = Vec::with_capacity(reqs.len());
        for req in &reqs {
            if e.store().find(&(req.account, 0, req.side)).is_none() {
                out.push(None);
                continue;
            }
            let pre = e.clone();
            let r = e.liquidate(*req, false).unwrap();
            check_nobody_made_insolvent(&pre, &e, std::slice::from_ref(&r))?;
            out.push(Some(r));
        }
        prop_assert_eq!(&out, &batch);
        let t = e.totals();
        prop_assert_eq!(t.value(), v0);
        prop_assert!(t.fund >= 0);
        let adl: i128 = out.iter().flatten().flat_map(|l| &l.fills).filter(|f| f.kind == FillKind::Adl).map(|f| f.lots as i128).sum();
        let book: i128 = out.iter().flatten().flat_map(|l| l.fills.iter().filter(|f| f.kind != FillKind::Adl).map(move |f| l.key.2 as i128 * f.lots as i128)).sum();
        prop_assert_eq!(oi0.long_lots - t.long_lots - (oi0.short_lots - t.short_lots), book);
        prop_assert_eq!(oi0.long_lots + oi0.short_lots - t.long_lots - t.short_lots, 2 * adl + out.iter().flatten().flat_map(|l| &l.fills).filter(|f| f.kind != FillKind::Adl).map(|f| f.lots as i128).sum::<i128>());
        // Everything was liquidated (or closed as a counterparty): the book is empty.
        prop_assert_eq!((t.long_lots, t.short_lots), (0, 0));
    }
}

/// A two-market book with ADL and liquidation fees (either convention), inverse markets,
/// mark-price ADL, cross and isolated accounts at leverage 1–125× and marks that jump.
#[derive(Debug, Clone)]
struct FeeBook {
    policy: Policy,
    adl_price: AdlPrice,
    adl_fee: u32,
    bankruptcy_fee: bool,
    liquidation_fee: u32,
    inverse: bool,
    /// (account, market, side, qty, entry, leverage index)
    rows: Vec<(u64, u32, Side, u32, u32, usize)>,
    cross_accounts: u64,
    wallets: Vec<u32>,
    marks: (u32, u32),
    fund: u32,
    /// (pick, kind: 0 whole account / 1 at the mark / 2 at a fill price / 3 a mark jump, offset)
    ops: Vec<(usize, u8, i32)>,
}

fn fee_book() -> impl Strategy<Value = FeeBook> {
    let row = (1u64..10, 0u32..2, prop_oneof![Just(Side::Long), Just(Side::Short)], 1u32..40, 80u32..121, 0usize..LEVERAGE.len());
    (
        (policy(), prop_oneof![Just(AdlPrice::Bankruptcy), Just(AdlPrice::Mark), Just(AdlPrice::MarkCapped)]),
        (0u32..3000, any::<bool>(), 0u32..3000, any::<bool>()),
        prop::collection::vec(row, 1..30),
        0u64..10,
        prop::collection::vec(0u32..300, 9),
        (70u32..131, 70u32..131),
        0u32..20,
        prop::collection::vec((0usize..40, 0u8..4, -8i32..9), 1..10),
    )
        .prop_map(
            |(
                (policy, adl_price),
                (adl_fee, bankruptcy_fee, liquidation_fee, inverse),
                rows,
                cross_accounts,
                wallets,
                marks,
                fund,
                ops,
            )| {
                let mut seen = std::collections::HashSet::new();
                let rows = rows.into_iter().filter(|r| seen.insert((r.0, r.1, r.2))).collect();
                FeeBook {
                    policy,
                    adl_price,
                    adl_fee,
                    bankruptcy_fee,
                    liquidation_fee,
                    inverse,
                    rows,
                    cross_accounts,
                    wallets,
                    marks,
                    fund,
                    ops,
                }
            },
        )
}

fn fee_engine(b: &FeeBook) -> Option<Engine> {
    let base = if b.inverse {
        MarketSpec { inverse: true, multiplier: 100.0, ..MarketSpec::linear(0, 6, 0.01) }
    } else {
        MarketSpec::linear(0, 0, 0.01)
    };
    let spec = MarketSpec {
        adl_fee: b.adl_fee as f64 / 1e5,
        liquidation_fee: b.liquidation_fee as f64 / 1e5,
        fee_convention: if b.bankruptcy_fee { FeeConvention::Bankruptcy } else { FeeConvention::Surplus },
        ..base
    };
    let mut e = Engine::new(b.policy, b.fund as f64, 8, spec.clone()).ok()?;
    e.adl_price = b.adl_price;
    e.add_market("X", spec.clone()).unwrap();
    e.add_market("Y", MarketSpec { maintenance_rate: 0.02, ..spec.clone() }).unwrap();
    let rows: Vec<common::Row> = b
        .rows
        .iter()
        .map(|&(a, m, s, q, en, lev)| {
            let cross = a <= b.cross_accounts;
            // Notional in the settlement currency: q·100/P coin (inverse), q·P quote.
            let notional = if b.inverse { q as f64 * 100.0 / en as f64 } else { q as f64 * en as f64 };
            let margin = if cross { 0.0 } else { (notional / LEVERAGE[lev] * 1e6).round() / 1e6 };
            (a, m, s, q as f64, en as f64, margin, cross)
        })
        .collect();
    let accounts: Vec<u64> = (1..=9).collect();
    let scale = if b.inverse { 0.01 } else { 1.0 };
    let wallets: Vec<f64> = b.wallets.iter().map(|&w| w as f64 * scale).collect();
    e.load(common::columns(&rows).view(), &["X".to_string(), "Y".to_string()], Some((&accounts, &wallets)), None).ok()?;
    e.set_marks(&[("X".to_string(), b.marks.0 as f64), ("Y".to_string(), b.marks.1 as f64)], None).ok()?;
    Some(e)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Nobody is made insolvent by ADL with fees, inverse markets, mark-price ADL and cross
    /// accounts: isolated counterparties' cash never falls; a cross counterparty's TNC ends
    /// >= min(its TNC before, 0) (an isolated credit to an account already below zero raises it).
    #[test]
    fn nobody_is_made_insolvent_with_fees_inverse_markets_and_cross_accounts(b in fee_book()) {
        let Some(mut e) = fee_engine(&b) else { return Ok(()) };
        let v0 = e.totals().value();
        for &(pick, kind, off) in &b.ops {
            let live: Vec<(u64, u32, Side, bool)> = e.store().iter().map(|(_, p)| (p.account, p.market, p.side, p.cross)).collect();
            if live.is_empty() { break; }
            let liquidatable = e.liquidatable();
            let (account, market, side, cross) = if !liquidatable.is_empty() && pick % 4 != 0 {
                let p = e.store().get(liquidatable[pick % liquidatable.len()]);
                (p.account, p.market, p.side, p.cross)
            } else {
                live[pick % live.len()]
            };
            let mark = if market == 0 { b.marks.0 } else { b.marks.1 } as i32;
            if kind == 3 {
                let name = if market == 0 { "X" } else { "Y" };
                let _ = e.set_marks(&[(name.to_string(), (mark + off * 3).max(10) as f64)], None);
                continue;
            }
            let pre = e.clone();
            let results = if kind == 0 && cross {
                e.liquidate_account(account, true, false)
            } else {
                let fill_price = (kind == 2).then(|| (mark + off).max(10) as f64);
                e.liquidate(Request { account, market, side, fill_price, force: true, partial: false }, false).map(|r| vec![r])
            };
            let Ok(results) = results else { continue };
            prop_assert_eq!(e.totals().value(), pre.totals().value());
            check_nobody_made_insolvent(&pre, &e, &results)?;
        }
        let _ = v0;
    }
}

/// One operation on a cross book: a mark, a walk of one-tick moves (most stay inside the
/// accounts' bands, so the engine reads their totals lazily; some leave them), a
/// liquidation, an upsert, or ranking every queue (so that a later mark change elsewhere
/// finds current queues to re-key in place).
#[derive(Debug, Clone)]
enum CrossOp {
    Mark { market: u32, price: u32 },
    Walk { market: u32, steps: Vec<i8> },
    Liquidate { pick: usize, whole_account: bool, partial: bool },
    Upsert { account: u64, market: u32, side: Side, qty: u32, entry: u32, margin: u32, cash: Option<u32> },
    Rank,
}

fn cross_op() -> impl Strategy<Value = CrossOp> {
    prop_oneof![
        (0u32..2, 80u32..121).prop_map(|(market, price)| CrossOp::Mark { market, price }),
        (0u32..2, prop::collection::vec(-1i8..=1, 1..24)).prop_map(|(market, steps)| CrossOp::Walk { market, steps }),
        (0usize..40, any::<bool>(), any::<bool>()).prop_map(|(pick, whole_account, partial)| CrossOp::Liquidate {
            pick,
            whole_account,
            partial
        }),
        (
            1u64..10,
            0u32..2,
            prop_oneof![Just(Side::Long), Just(Side::Short)],
            1u32..40,
            80u32..121,
            0u32..200_000,
            prop::option::of(0u32..100_000)
        )
            .prop_map(|(account, market, side, qty, entry, margin, cash)| CrossOp::Upsert {
                account,
                market,
                side,
                qty,
                entry,
                margin,
                cash
            }),
        Just(CrossOp::Rank),
    ]
}

/// A fresh engine loaded from `e`'s positions and cash at its marks.
fn reloaded(e: &Engine, policy: Policy) -> Engine {
    let spec = MarketSpec::linear(0, 0, 0.05);
    let mut f = Engine::new(policy, 0.0, 2, spec.clone()).unwrap();
    f.add_market("X", spec.clone()).unwrap();
    f.add_market("Y", MarketSpec { maintenance_rate: 0.02, ..spec }).unwrap();
    // Grids of whole lots and whole ticks, cash in cents: every value converts back exactly.
    let rows: Vec<common::Row> = e
        .store()
        .iter()
        .map(|(_, p)| (p.account, p.market, p.side, p.qty as f64, p.entry as f64, p.margin as f64 / 100.0, p.cross))
        .collect();
    let (ids, cash): (Vec<u64>, Vec<f64>) = e.accounts_cash().iter().map(|(&a, &c)| (a, c as f64 / 100.0)).unzip();
    // Cash can be negative after a cross liquidation's loss; the accounts frame takes >= 0 only,
    // so the rest is set directly below through an upsert of no rows.
    let (pos, neg): (Vec<(u64, f64)>, Vec<(u64, f64)>) = ids.into_iter().zip(cash).partition(|&(_, c)| c >= 0.0);
    assert!(neg.is_empty(), "negative cash {neg:?}");
    let (ids, cash): (Vec<u64>, Vec<f64>) = pos.into_iter().unzip();
    f.load(common::columns(&rows).view(), &["X".to_string(), "Y".to_string()], Some((&ids, &cash)), None).unwrap();
    let marks: Vec<(String, f64)> = e.markets().iter().filter_map(|m| Some((m.name.clone(), m.mark? as f64))).collect();
    f.set_marks(&marks, None).unwrap();
    f
}

/// Every queue as (account, score) in order, rebuilding only stale ones.
fn queues(e: &mut Engine) -> Vec<Vec<(u64, f64)>> {
    let mut out = Vec::new();
    for market in 0..2u32 {
        if e.market(market).mark.is_none() {
            continue;
        }
        for side in Side::BOTH {
            let slots: Vec<(u32, f64)> = {
                let idx = e.ranking(market, side).unwrap();
                idx.queue().map(|(pos, s)| (s, idx.score_at(pos))).collect()
            };
            out.push(slots.into_iter().map(|(s, score)| (e.store().get(s).account, score)).collect());
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    /// The cross totals, the accounts below maintenance and every queue the engine keeps
    /// incrementally (a mark change moves only the accounts holding that market and re-keys
    /// their positions in the other market's queues) equal those of an engine loaded afresh
    /// from the same positions and cash at the same marks, after every operation.
    #[test]
    fn incremental_cross_state_equals_a_fresh_load(b in cross_book(), ops in prop::collection::vec(cross_op(), 1..16)) {
        let mut e = cross_engine(&b);
        for op in ops {
            match op {
                CrossOp::Mark { market, price } => {
                    let name = if market == 0 { "X" } else { "Y" };
                    e.set_marks(&[(name.to_string(), price as f64)], None).unwrap();
                }
                CrossOp::Walk { market, steps } => {
                    let name = if market == 0 { "X" } else { "Y" };
                    for step in steps {
                        let mark = e.market(market).mark.unwrap_or(100) + step as i64;
                        e.set_marks(&[(name.to_string(), mark.clamp(60, 140) as f64)], None).unwrap();
                    }
                }
                CrossOp::Liquidate { pick, whole_account, partial } => {
                    let live: Vec<(u64, u32, Side, bool)> = e.store().iter().map(|(_, p)| (p.account, p.market, p.side, p.cross)).collect();
                    if live.is_empty() { continue; }
                    let (account, market, side, cross) = live[pick % live.len()];
                    let _ = if whole_account && cross {
                        e.liquidate_account(account, true, partial).map(|_| ())
                    } else {
                        e.liquidate(Request { account, market, side, fill_price: None, force: true, partial }, false).map(|_| ())
                    };
                }
                CrossOp::Upsert { account, market, side, qty, entry, margin, cash } => {
                    let cross = account <= b.cross_accounts;
                    let row: common::Row = (account, market, side, qty as f64, entry as f64, if cross { 0.0 } else { margin as f64 / 100.0 }, cross);
                    let wallet = cash.map(|c| (vec![account], vec![c as f64 / 100.0]));
                    let accounts = wallet.as_ref().map(|(a, c)| (&a[..], &c[..]));
                    // A cross position may replace an isolated one of the same key and back.
                    let _ = e.upsert(common::columns(&[row]).view(), &["X".to_string(), "Y".to_string()], accounts, None);
                }
                CrossOp::Rank => {
                    queues(&mut e);
                }
            }
            if e.accounts_cash().values().any(|&c| c < 0) {
                break; // a fresh load takes no negative cash
            }
            let mut fresh = reloaded(&e, b.policy);
            let totals = |e: &Engine| -> std::collections::BTreeMap<u64, _> { e.cross_accounts().collect() };
            prop_assert_eq!(totals(&e), totals(&fresh));
            prop_assert_eq!(e.cross_below(), fresh.cross_below());
            let below: Vec<u64> = {
                let mut v: Vec<(i128, u64)> = e.cross_accounts().filter(|t| t.1.liquidatable()).map(|(a, t)| (t.tnc() - t.maintenance, a)).collect();
                v.sort();
                v.into_iter().map(|x| x.1).collect()
            };
            prop_assert_eq!(e.cross_below(), below);
            let (t, u) = (e.totals(), fresh.totals());
            prop_assert_eq!((t.cash, t.position_equity, t.long_lots, t.short_lots), (u.cash, u.position_equity, u.long_lots, u.short_lots));
            prop_assert_eq!(queues(&mut e), queues(&mut fresh));
        }
    }
}

/// A book for previews: a venue price level and grid, entries within ±10 % of the mark, 1–125×
/// leverage, some accounts cross (wallet 1.5× their positions' initial margin), tiers and a
/// liquidation fee reserved at bankruptcy on some; mostly at rest (nothing liquidatable at the
/// mark, where `adl_marks` skips trials it proves miss), sometimes already gapped 5–30 %.
#[derive(Debug, Clone)]
struct PreviewBook {
    policy: Policy,
    grid: (u32, u32),
    base: f64,
    /// (account, side, qty, entry, leverage, cross)
    rows: Vec<(u64, Side, f64, f64, f64, bool)>,
    mark: f64,
    fund: f64,
    tiers: bool,
    fee_at_bankruptcy: bool,
}

fn preview_book() -> impl Strategy<Value = PreviewBook> {
    let level = prop_oneof![Just((60_000.0, 3u32, 1u32)), Just((3_000.0, 2, 2)), Just((150.0, 1, 3)), Just((0.5, 0, 5))];
    let policy = prop_oneof![4 => Just(Policy::Bitmex), 1 => Just(Policy::Binance), 1 => Just(Policy::Hyperliquid)];
    let row = (1u64..12, prop_oneof![Just(Side::Long), Just(Side::Short)], (1u32..60, 90u32..111, 0usize..LEVERAGE.len()));
    let gap = prop_oneof![3 => Just(0i32), 1 => (5i32..31, any::<bool>()).prop_map(|(g, up)| if up { g } else { -g })];
    (policy, level, prop::collection::vec(row, 1..30), any::<bool>(), gap, 0u32..5_000, any::<bool>(), any::<bool>()).prop_map(
        |(policy, (base, qd, pd), rows, some_cross, gap, fund, tiers, fee_at_bankruptcy)| {
            let round = |x: f64, d: u32| (x * 10f64.powi(d as i32)).round() / 10f64.powi(d as i32);
            let rows = unique(rows)
                .map(|(a, s, (lots, pct, lev))| {
                    let (qty, entry) = (lots as f64 / 10f64.powi(qd as i32), round(base * pct as f64 / 100.0, pd));
                    (a, s, qty, entry, LEVERAGE[lev], some_cross && a % 3 == 0)
                })
                .collect();
            let mark = round(base * (1.0 + gap as f64 / 100.0), pd);
            PreviewBook { policy, grid: (qd, pd), base, rows, mark, fund: fund as f64 * base / 10_000.0, tiers, fee_at_bankruptcy }
        },
    )
}

fn preview_engine(b: &PreviewBook) -> Engine {
    let (qd, pd) = b.grid;
    let mut spec = MarketSpec::linear(qd, pd, 0.005);
    if b.tiers {
        // Rates rise with the notional (maintenance amounts keep MM continuous).
        let n = b.base * 10.0;
        spec.tiers = vec![
            _adl::core::TierSpec { floor: 0.0, rate: 0.005, amount: None },
            _adl::core::TierSpec { floor: n, rate: 0.01, amount: None },
            _adl::core::TierSpec { floor: 4.0 * n, rate: 0.025, amount: None },
        ];
    }
    if b.fee_at_bankruptcy {
        spec.liquidation_fee = 0.005;
        spec.fee_convention = FeeConvention::Bankruptcy;
    }
    let mut e = Engine::new(b.policy, b.fund, 8, spec).unwrap();
    let rows: Vec<common::Row> = b
        .rows
        .iter()
        .map(|&(a, s, q, en, lev, cross)| (a, 0, s, q, en, if cross { 0.0 } else { (q * en / lev * 1e8).round() / 1e8 }, cross))
        .collect();
    let mut wallets: std::collections::BTreeMap<u64, f64> = Default::default();
    for &(a, _, q, en, lev, cross) in &b.rows {
        if cross {
            *wallets.entry(a).or_default() += (1.5 * q * en / lev * 1e8).round() / 1e8;
        }
    }
    let (accounts, cash): (Vec<u64>, Vec<f64>) = wallets.into_iter().unzip();
    e.load(common::columns(&rows).view(), &["X".to_string()], Some((&accounts, &cash)), None).unwrap();
    e.set_marks(&[("X".to_string(), b.mark)], None).unwrap();
    e
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    /// `adl_marks` (trials the bound proves miss are skipped, a one-position gap stops once the
    /// position is reached) gives exactly what running every trial gives, for whole sides and
    /// for single positions, and changes nothing observable.
    #[test]
    fn preview_equals_running_every_trial(b in preview_book()) {
        let mut e = preview_engine(&b);
        let before = e.snapshot();
        for side in Side::BOTH {
            let fast = e.adl_marks(0, side, 0.02, 0.4, None);
            let brute = e.adl_marks_brute(0, side, 0.02, 0.4, None);
            prop_assert_eq!(format!("{fast:?}"), format!("{brute:?}"));
            let slots: Vec<u32> = e.market(0).members[side.slot()].iter().copied().take(6).collect();
            for slot in slots {
                let fast = e.adl_marks(0, side, 0.02, 0.4, Some(slot));
                let brute = e.adl_marks_brute(0, side, 0.02, 0.4, Some(slot));
                prop_assert_eq!(format!("{fast:?}"), format!("{brute:?}"), "slot {}", slot);
            }
        }
        prop_assert!(e.snapshot() == before);
    }
}

/// Band heaps large enough to be swept (the first mark leaves each one full, so the next band
/// filed starts a sweep that moves a few entries per band filed and drops the stale ones): a
/// long walk of both marks, accounts leaving their bands and some falling below maintenance,
/// keeps the cross state equal to a fresh load's.
#[test]
fn swept_band_heaps_keep_the_cross_state_of_a_fresh_load() {
    let spec = MarketSpec::linear(0, 0, 0.05);
    let mut e = Engine::new(Policy::Bitmex, 0.0, 2, spec.clone()).unwrap();
    e.add_market("X", spec.clone()).unwrap();
    e.add_market("Y", MarketSpec { maintenance_rate: 0.02, ..spec }).unwrap();
    let mut x = 5u64;
    let mut rnd = |k: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % k
    };
    // 6,000 cross accounts (more than a heap's 4,096 before it sweeps instead of growing),
    // each 5 lots at 100 in X and in Y, sides at random; wallets 30–90 against a maintenance
    // of 25 + 10: a few ticks' move takes some below it.
    let n = 6_000u64;
    let mut rows: Vec<common::Row> = Vec::new();
    for a in 1..=n {
        for m in 0..2 {
            let side = if rnd(2) == 0 { Side::Long } else { Side::Short };
            rows.push((a, m, side, 5.0, 100.0, 0.0, true));
        }
    }
    let ids: Vec<u64> = (1..=n).collect();
    let cash: Vec<f64> = (1..=n).map(|_| 30.0 + rnd(61) as f64).collect();
    let names = ["X".to_string(), "Y".to_string()];
    e.load(common::columns(&rows).view(), &names, Some((&ids, &cash)), None).unwrap();
    e.set_marks(&[("X".to_string(), 100.0), ("Y".to_string(), 100.0)], None).unwrap();
    for step in 0..120 {
        let name = &names[step % 2];
        let mark = e.market(step as u32 % 2).mark.unwrap() + rnd(7) as i64 - 3;
        e.set_marks(&[(name.clone(), mark.clamp(90, 110) as f64)], None).unwrap();
        if step % 10 == 9 {
            let fresh = reloaded(&e, Policy::Bitmex);
            let totals = |e: &Engine| -> std::collections::BTreeMap<u64, _> { e.cross_accounts().collect() };
            assert!(totals(&e) == totals(&fresh), "totals differ after step {step}");
            assert_eq!(e.cross_below(), fresh.cross_below(), "below maintenance after step {step}");
            assert!(!e.cross_below().is_empty());
        }
    }
}

/// A venue-like book for previews over two markets at different price levels: accounts trading
/// one or both, some in cross margin with a wallet of 1.5× their initial margin (so a cross
/// account's loss in one market can leave its other position bankrupt), 1–125× leverage,
/// tiers, liquidation fees (from the surplus or reserved at bankruptcy), an ADL fee, one shared
/// pool or one each, sometimes a trigger, every policy and ADL price.
#[derive(Debug, Clone)]
struct GapBook {
    policy: Policy,
    adl_price: Option<AdlPrice>,
    /// (account, market, side, lots, entry in % of the market's level, leverage index)
    rows: Vec<(u64, u32, Side, u32, u32, usize)>,
    cross: bool,
    /// The gap of market 0 from its level at the start (0: at rest), in %.
    gap: i32,
    funds: (u32, u32),
    own_pools: bool,
    tiers: bool,
    /// 0: no fee, 1: from the surplus, 2: reserved at bankruptcy.
    fee: u8,
    adl_fee: bool,
    trigger: bool,
}

fn gap_book() -> impl Strategy<Value = GapBook> {
    let row = (1u64..14, 0u32..2, prop_oneof![Just(Side::Long), Just(Side::Short)], 1u32..60, 90u32..111, 0usize..LEVERAGE.len());
    let gap = prop_oneof![4 => Just(0i32), 1 => (5i32..31, any::<bool>()).prop_map(|(g, up)| if up { g } else { -g })];
    // Mostly bitmex at the bankruptcy price, where the model's queue argument applies.
    let policy = prop_oneof![3 => Just(Policy::Bitmex), 2 => policy()];
    let adl_price = prop_oneof![3 => Just(None), 1 => adl_price()];
    (
        (policy, adl_price, prop::collection::vec(row, 1..48), any::<bool>(), gap),
        ((fund(), fund()), any::<bool>(), any::<bool>(), 0u8..3, prop::bool::weighted(0.2), prop::bool::weighted(0.15)),
    )
        .prop_map(|((policy, adl_price, rows, cross, gap), (funds, own_pools, tiers, fee, adl_fee, trigger))| {
            // One position per account and market, as in `venue_book` (a hedge now and then).
            let mut seen = std::collections::HashSet::new();
            let rows = rows
                .into_iter()
                .filter(|r| seen.insert((r.0, r.1, r.2)) && (r.0 % 4 == 0 || seen.insert((r.0, r.1, r.2.opposite()))))
                .collect();
            GapBook { policy, adl_price, rows, cross, gap, funds, own_pools, tiers, fee, adl_fee, trigger }
        })
}

/// A pool's balance: empty, or of the order of one position's deficit, or of many.
fn fund() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), 0u32..40, 0u32..400, 0u32..4_000]
}

/// Market 0: level 3,000 on a (0.01 lot, 0.01 tick) grid; market 1: level 0.5 on (1, 0.00001).
const GAP_LEVELS: [(f64, u32, u32); 2] = [(3_000.0, 2, 2), (0.5, 0, 5)];

fn gap_engine(b: &GapBook) -> Engine {
    let mut e = Engine::new(b.policy, b.funds.0 as f64, 8, MarketSpec::linear(2, 2, 0.005)).unwrap();
    if let Some(price) = b.adl_price {
        e.adl_price = price;
    }
    let names = ["X".to_string(), "Y".to_string()];
    for (i, &(level, qd, pd)) in GAP_LEVELS.iter().enumerate() {
        let mut spec = MarketSpec::linear(qd, pd, 0.005);
        if b.tiers {
            let n = level * 10.0;
            spec.tiers = vec![
                _adl::core::TierSpec { floor: 0.0, rate: 0.005, amount: None },
                _adl::core::TierSpec { floor: n, rate: 0.01, amount: None },
                _adl::core::TierSpec { floor: 4.0 * n, rate: 0.025, amount: None },
            ];
        }
        if b.fee > 0 {
            spec.liquidation_fee = 0.005;
            spec.fee_convention = if b.fee == 2 { FeeConvention::Bankruptcy } else { FeeConvention::Surplus };
        }
        if b.adl_fee {
            spec.adl_fee = 0.0005;
        }
        if b.own_pools && i == 1 {
            spec.fund_pool = "Y".to_string();
        }
        e.add_market(&names[i], spec).unwrap();
    }
    if b.own_pools {
        e.set_fund(b.funds.1 as f64, "Y").unwrap();
    }
    let round = |x: f64, d: u32| (x * 10f64.powi(d as i32)).round() / 10f64.powi(d as i32);
    let mut wallets: std::collections::BTreeMap<u64, f64> = Default::default();
    let rows: Vec<common::Row> = b
        .rows
        .iter()
        .map(|&(a, m, s, lots, pct, lev)| {
            let (level, qd, pd) = GAP_LEVELS[m as usize];
            // Entries against the position stop at 70 % of the way to maintenance (tiers
            // reach 2.5 %), as in `venue_book`: the book is at rest at its level.
            let room = 0.7 * (1.0 / LEVERAGE[lev] - 0.025).max(0.0);
            let drift = pct as f64 / 100.0 - 1.0;
            let drift = if s.sign_f64() * drift > room { s.sign_f64() * room } else { drift };
            let (q, en) = (lots as f64 / 10f64.powi(qd as i32), round(level * (1.0 + drift), pd));
            let initial = (q * en / LEVERAGE[lev] * 1e8).round() / 1e8;
            let cross = b.cross && a % 3 == 0;
            if cross {
                *wallets.entry(a).or_default() += (1.5 * initial * 1e8).round() / 1e8;
            }
            (a, m, s, q, en, if cross { 0.0 } else { initial }, cross)
        })
        .collect();
    let (accounts, cash): (Vec<u64>, Vec<f64>) = wallets.into_iter().unzip();
    e.load(common::columns(&rows).view(), &names, Some((&accounts, &cash)), None).unwrap();
    if b.trigger {
        e.set_trigger(Trigger::FundDrop { arm: 0.95, disarm: 0.99 });
    }
    let x = round(GAP_LEVELS[0].0 * (1.0 + b.gap as f64 / 100.0), GAP_LEVELS[0].2);
    e.set_marks(&[("X".to_string(), x), ("Y".to_string(), GAP_LEVELS[1].0)], None).unwrap();
    e
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    /// The gap model (docs/model.md §7) skips only trials that miss: `adl_marks` equals running
    /// every trial on venue-like books with cross accounts over two markets, for whole sides
    /// and single positions of each market, under every policy.
    #[test]
    fn preview_with_the_gap_model_equals_running_every_trial(b in gap_book()) {
        let mut e = gap_engine(&b);
        let before = (e.snapshot(), e.totals());
        for market in [0u32, 1] {
            for side in Side::BOTH {
                let fast = e.adl_marks(market, side, 0.02, 0.4, None);
                let brute = e.adl_marks_brute(market, side, 0.02, 0.4, None);
                prop_assert_eq!(format!("{fast:?}"), format!("{brute:?}"), "market {} side {:?}", market, side);
                let slots: Vec<u32> = e.market(market).members[side.slot()].iter().copied().take(4).collect();
                for slot in slots {
                    let fast = e.adl_marks(market, side, 0.02, 0.4, Some(slot));
                    let brute = e.adl_marks_brute(market, side, 0.02, 0.4, Some(slot));
                    prop_assert_eq!(format!("{fast:?}"), format!("{brute:?}"), "market {} side {:?} slot {}", market, side, slot);
                }
            }
        }
        // The trials ran on copies: nothing observable changed.
        prop_assert!(e.snapshot() == before.0, "a preview changed the snapshot");
        prop_assert_eq!(e.totals(), before.1);
    }
}
