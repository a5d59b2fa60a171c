//! Hand-computed liquidation cases. Engines here use whole lots and whole-quote ticks with
//! cash in cents (qty_decimals 0, price_decimals 0, cash_decimals 2), so every number in the
//! comments is exact. Mark 96, maintenance 0.5 % unless stated.

#[path = "common.rs"]
mod common;

use _adl::core::{AdlError, Engine, FillKind, MarketSpec, PassReason, PassedOver, Policy, Request, Side};

const LONG: Side = Side::Long;
const SHORT: Side = Side::Short;

/// (account, side, qty, entry, margin)
type Row = (u64, Side, f64, f64, f64);

fn engine(fund: f64, rows: &[Row]) -> Engine {
    engine_with(Policy::Bitmex, fund, rows)
}

fn engine_with(policy: Policy, fund: f64, rows: &[Row]) -> Engine {
    let spec = MarketSpec::linear(0, 0, 0.005);
    let mut e = Engine::new(policy, fund, 2, spec.clone()).unwrap();
    load(&mut e, rows).unwrap();
    e.set_marks(&[("X".to_string(), 96.0)], Some(1)).unwrap();
    e
}

fn load(e: &mut Engine, rows: &[Row]) -> Result<(), AdlError> {
    let rows: Vec<common::Row> = rows.iter().map(|&(a, s, q, en, m)| (a, 0, s, q, en, m, false)).collect();
    e.load(common::columns(&rows).view(), &["X".to_string()], None, None)
}

fn req(account: u64, side: Side, fill: Option<f64>) -> Request {
    Request { account, market: 0, side, fill_price: fill, force: false, partial: false }
}

fn cents(x: f64) -> i128 {
    (x * 100.0).round() as i128
}

#[test]
fn queue_partial_last_fill_and_losers_after_winners() {
    // Bankrupt long 30 @100, margin 60: equity at 96 = 60 − 120 = −60; P_bk = 100 − 60/30 = 98.
    // Shorts: #2 10@100 m20: e = 60, ℓ = 960/60 = 16, score 0.04·16 = 0.64      (rank 1)
    //         #3 10@100 m60: e = 100, ℓ = 9.6, score 0.384                       (rank 2)
    //         #4 20@95 m100: pnl% = −1/95, e = 100 − 20 = 80, ℓ = 24, score < 0 (rank 3, a loser)
    let mut e = engine(
        0.0,
        &[(1, LONG, 30.0, 100.0, 60.0), (2, SHORT, 10.0, 100.0, 20.0), (3, SHORT, 10.0, 100.0, 60.0), (4, SHORT, 20.0, 95.0, 100.0)],
    );
    let before = e.totals().value();
    let r = e.liquidate(req(1, LONG, None), false).unwrap();
    // Fund is empty: all 30 lots go to ADL at 98: 10 + 10 + 10 (partial of #4's 20).
    let got: Vec<(Option<u64>, i64, f64, Option<u64>)> = r.fills.iter().map(|f| (f.account, f.lots, f.price, f.rank)).collect();
    assert_eq!(got, vec![(Some(2), 10, 98.0, Some(1)), (Some(3), 10, 98.0, Some(2)), (Some(4), 10, 98.0, Some(3))]);
    assert!(r.fills.iter().all(|f| f.kind == FillKind::Adl));
    assert_eq!((r.adl_lots, r.external_lots, r.to_fund, r.from_fund, r.bad_debt), (30, 0, 0, 0, 0));
    // Cash: #2 gets margin 20 + 10·(100 − 98) = 40; #3: 60 + 20 = 80;
    // #4: half its margin 50 + 10·(95 − 98) = 20, and keeps 10 @95 with margin 50.
    assert_eq!(e.cash_of(2), cents(40.0));
    assert_eq!(e.cash_of(3), cents(80.0));
    assert_eq!(e.cash_of(4), cents(20.0));
    assert_eq!(e.cash_of(1), 0);
    let slot = e.store().find(&(4, 0, SHORT)).unwrap();
    assert_eq!((e.store().get(slot).qty, e.store().get(slot).margin), (10, 5_000));
    assert!(e.store().find(&(1, 0, LONG)).is_none());
    let t = e.totals();
    assert_eq!(t.value(), before);
    assert_eq!((t.long_lots, t.short_lots), (0, 10));
}

#[test]
fn book_above_bankruptcy_pays_surplus_to_fund() {
    // Long 10 @100, m44: e = 4 < MM = 0.005·960 = 4.80. Book fills at 97:
    // d = σ(P_bk − F) = 95.6 − 97 < 0, surplus 44 + 10·(97 − 100) = 14 to the fund.
    let mut e = engine(0.0, &[(1, LONG, 10.0, 100.0, 44.0), (2, SHORT, 10.0, 100.0, 500.0)]);
    let before = e.totals().value();
    let r = e.liquidate(req(1, LONG, Some(97.0)), false).unwrap();
    assert_eq!(r.fills.len(), 1);
    assert_eq!((r.fills[0].kind, r.fills[0].lots, r.fills[0].price), (FillKind::External, 10, 97.0));
    assert_eq!((r.to_fund, r.from_fund, r.adl_lots), (cents(14.0), 0, 0));
    assert_eq!(e.fund(), cents(14.0));
    // The book bought at 97 what was worth 96: value passed to the book = 10·(96 − 97) = −10.
    assert_eq!(e.totals().book_value, cents(-10.0));
    assert_eq!(e.totals().value(), before);
}

#[test]
fn fund_covers_whole_lots_and_adl_takes_the_rest() {
    // Long 10 @100, m44, book at 95: deficit 44 + 10·(95 − 100) = −6, 0.60 per lot.
    // Fund 3 covers ⌊3/0.6⌋ = 5 lots: pays −(ceil(44·5/10) + 5·(95 − 100)) = −(22 − 25) = 3.
    // ADL 5 lots at P_bk = 95.6 against #2 (short 10 @100, m500): credit = 250 + 5·4.4 = 272.
    let mut e = engine(3.0, &[(1, LONG, 10.0, 100.0, 44.0), (2, SHORT, 10.0, 100.0, 500.0)]);
    let before = e.totals().value();
    let r = e.liquidate(req(1, LONG, Some(95.0)), false).unwrap();
    assert_eq!((r.external_lots, r.adl_lots, r.from_fund, r.to_fund, r.bad_debt), (5, 5, cents(3.0), 0, 0));
    assert_eq!(r.fills[0].kind, FillKind::External);
    assert_eq!((r.fills[1].kind, r.fills[1].account, r.fills[1].lots), (FillKind::Adl, Some(2), 5));
    assert!((r.fills[1].price - 95.6).abs() < 1e-12);
    assert_eq!(e.fund(), 0);
    assert_eq!(e.cash_of(2), cents(272.0));
    assert_eq!(e.totals().value(), before);
}

#[test]
fn bad_debt_when_the_opposite_side_runs_out() {
    // As above, but the only short holds 2 lots (m100). Fund 3 covers 5 lots (carrying 22 of
    // margin); ADL 2 of the other 5 carries ⌊22·2/5⌋ = 8.80 → #2 gets 100 + 8.80.
    // The last 3 lots close on the book at 95 with 13.20 of margin: 13.20 − 15 = −1.80,
    // the fund has nothing left, so bad debt = 1.80.
    let mut e = engine(3.0, &[(1, LONG, 10.0, 100.0, 44.0), (2, SHORT, 2.0, 100.0, 100.0)]);
    let before = e.totals().value();
    let r = e.liquidate(req(1, LONG, Some(95.0)), false).unwrap();
    let kinds: Vec<(FillKind, i64)> = r.fills.iter().map(|f| (f.kind, f.lots)).collect();
    assert_eq!(kinds, vec![(FillKind::External, 5), (FillKind::Adl, 2), (FillKind::BadDebt, 3)]);
    assert_eq!((r.from_fund, r.bad_debt), (cents(3.0), cents(1.8)));
    assert_eq!(e.cash_of(2), cents(108.8));
    assert_eq!(e.bad_debt(), cents(1.8));
    assert_eq!(e.fund(), 0);
    let t = e.totals();
    assert_eq!(t.value(), before);
    // OI: ADL removed 2 lots from each side; book fills removed 8 more longs.
    assert_eq!((t.long_lots, t.short_lots), (0, 0));
}

#[test]
fn hedge_mode_account_is_never_matched_against_itself() {
    // #1 holds long 10 @100 m44 and short 5 @100 m10 (e = 30, ℓ = 16, score 0.64: rank 1).
    // #2 short 10 @100 m50: e = 90, score 0.04·960/90 = 0.4267: rank 2.
    let mut e = engine(0.0, &[(1, LONG, 10.0, 100.0, 44.0), (1, SHORT, 5.0, 100.0, 10.0), (2, SHORT, 10.0, 100.0, 50.0)]);
    let before = e.totals().value();
    let r = e.liquidate(req(1, LONG, Some(95.0)), false).unwrap();
    assert_eq!(r.fills.len(), 1);
    assert_eq!((r.fills[0].account, r.fills[0].lots, r.fills[0].rank), (Some(2), 10, Some(2)));
    assert!(e.store().find(&(1, 0, SHORT)).is_some());
    assert_eq!(e.totals().value(), before);
}

#[test]
fn refuses_healthy_positions_unless_forced() {
    let mut e = engine(0.0, &[(1, LONG, 10.0, 100.0, 45.0), (2, SHORT, 10.0, 100.0, 500.0)]);
    // e = 5 >= MM 4.80
    assert!(matches!(e.liquidate(req(1, LONG, None), false), Err(AdlError::NotLiquidatable { .. })));
    let r = e.liquidate(Request { force: true, ..req(1, LONG, None) }, false).unwrap();
    assert_eq!(r.to_fund, cents(5.0));
}

#[test]
fn dry_run_equals_real_run_minus_apply() {
    let rows = [(1, LONG, 30.0, 100.0, 60.0), (2, SHORT, 10.0, 100.0, 20.0), (3, SHORT, 25.0, 100.0, 60.0)];
    let mut e = engine(1.0, &rows);
    let t0 = e.totals();
    let preview = e.liquidate(req(1, LONG, Some(95.5)), true).unwrap();
    assert_eq!(e.totals(), t0);
    assert!(e.store().find(&(1, 0, LONG)).is_some());
    let real = e.liquidate(req(1, LONG, Some(95.5)), false).unwrap();
    assert_eq!(preview, real);
}

#[test]
fn errors_leave_the_engine_unchanged() {
    let mut e = engine(5.0, &[(1, LONG, 10.0, 100.0, 44.0), (2, SHORT, 10.0, 100.0, 500.0)]);
    let t0 = e.totals();
    // Duplicate key in a new book.
    let err = load(&mut e, &[(7, LONG, 1.0, 1.0, 1.0), (7, LONG, 2.0, 1.0, 1.0)]).unwrap_err();
    assert!(matches!(err, AdlError::DuplicateKey { row: 1, first_row: 0, .. }));
    // A bad value in row 1.
    let err = load(&mut e, &[(7, LONG, 1.0, 1.0, 1.0), (8, SHORT, 1.0, f64::NAN, 1.0)]).unwrap_err();
    assert!(err.to_string().starts_with("entry_price[row 1]"), "{err}");
    // Unknown position, bad fill price, NaN mark.
    assert!(matches!(e.liquidate(req(9, LONG, None), false), Err(AdlError::UnknownPosition { .. })));
    assert!(e.liquidate(req(1, LONG, Some(-1.0)), false).is_err());
    assert!(e.set_marks(&[("X".into(), f64::NAN)], None).is_err());
    assert!(e.set_marks(&[("Y".into(), 1.0)], None).is_err());
    // A batch with one bad row applies nothing.
    let batch = [req(1, LONG, Some(95.0)), req(3, LONG, None)];
    assert!(e.liquidate_many(&batch).is_err());
    assert_eq!(e.totals(), t0);
    assert_eq!(e.store().len(), 2);
    assert!(e.events().is_empty());
}

#[test]
fn batch_skips_positions_closed_by_earlier_adl() {
    // Mark 104. #1 short 10 @100 m30: e = 30 − 40 = −10 (bankrupt).
    // #2 long 5 @100 m1: e = 21, pnl% 0.04, ℓ = 520/21: score 0.99, first in the long queue.
    // #3 long 20 @110 m170: e = 50, a loser: second.
    // The batch liquidates #1 and then #2 (forced: #2 is healthy). #1's ADL closes all of
    // #2 and 5 lots of #3, so #2's row is skipped.
    let spec = MarketSpec::linear(0, 0, 0.005);
    let mut e = Engine::new(Policy::Bitmex, 0.0, 2, spec.clone()).unwrap();
    load(&mut e, &[(1, SHORT, 10.0, 100.0, 30.0), (2, LONG, 5.0, 100.0, 1.0), (3, LONG, 20.0, 110.0, 170.0)]).unwrap();
    e.set_marks(&[("X".into(), 104.0)], None).unwrap();
    let before = e.totals().value();
    let batch = [req(1, SHORT, None), Request { force: true, ..req(2, LONG, None) }];
    let out = e.liquidate_many(&batch).unwrap();
    let first = out[0].as_ref().unwrap();
    let got: Vec<(Option<u64>, i64)> = first.fills.iter().map(|f| (f.account, f.lots)).collect();
    assert_eq!(got, vec![(Some(2), 5), (Some(3), 5)]);
    assert!(out[1].is_none(), "#2 was closed by ADL before its turn");
    assert_eq!(e.events().len(), 2);
    assert_eq!(e.totals().value(), before);
}

#[test]
fn size_pro_rata_splits_by_size_with_largest_remainder() {
    // Bankrupt long 7 @100, m28: equity at 96 = 0, P_bk = 96. The shorts hold 5, 3 and 2
    // (#4 short 1 @90 m1 is bankrupt: e = 1 - 6 < 0, never a counterparty; #9 is the
    // bankrupt account's own short and is excluded). Shares of 7 over 5/3/2 = 3.5, 2.1,
    // 1.4 -> 3, 2, 1 + the leftover lot to the largest remainder (#1): 4, 2, 1.
    let rows = [
        (9, LONG, 7.0, 100.0, 28.0),
        (9, SHORT, 50.0, 100.0, 500.0),
        (1, SHORT, 5.0, 100.0, 50.0),
        (2, SHORT, 3.0, 100.0, 30.0),
        (3, SHORT, 2.0, 100.0, 20.0),
        (4, SHORT, 1.0, 90.0, 1.0),
    ];
    let mut e = engine_with(Policy::SizeProRata, 0.0, &rows);
    let before = e.totals().value();
    let r = e.liquidate(Request { force: true, ..req(9, LONG, Some(95.0)) }, false).unwrap();
    let got: Vec<(Option<u64>, i64, Option<u64>)> = r.fills.iter().map(|f| (f.account, f.lots, f.rank)).collect();
    assert_eq!(got, vec![(Some(1), 4, None), (Some(2), 2, None), (Some(3), 1, None)]);
    assert!(r.fills.iter().all(|f| f.kind == FillKind::Adl && f.price == 96.0 && f.score.is_none()));
    // #1 closes 4 of 5 at 96 from 100: released 40 of its 50 margin, + 4·4 = 16 -> 56.
    assert_eq!(e.cash_of(1), cents(56.0));
    assert_eq!(e.totals().value(), before);
}

#[test]
fn hyperliquid_profitable_only_at_the_mark_with_the_loss_beyond_margin_to_fund_then_bad_debt() {
    // Mark 96. Bankrupt long #9 10 @100, m30: e = -10, P_bk = 97. Book at 95: deficit
    // 30 - 50 = -20, 2 per lot; fund 4 covers 2 lots (pays -(6 - 10) = 4), leaving 0.
    // Eligible shorts (in profit only): #3 5 @98 m10: (98/96)·(480/20) = 24.5 (rank 1);
    // #1 10 @100 m20: (100/96)·(960/60) = 16.67 (rank 2); #2 10 @95 is losing: never.
    // 8 lots at the mark 96: #3 all 5 (credit 10 + 5·2 = 20), #1 3 (credit 6 + 3·4 = 18).
    // The bankrupt lots are worth 24 + 8·(96 - 100) = -8 at the mark: the empty fund pays
    // nothing, bad debt 8 = σ·8·(P_bk - mark).
    let rows = [(9, LONG, 10.0, 100.0, 30.0), (1, SHORT, 10.0, 100.0, 20.0), (2, SHORT, 10.0, 95.0, 50.0), (3, SHORT, 5.0, 98.0, 10.0)];
    let mut e = engine_with(Policy::Hyperliquid, 4.0, &rows);
    let before = e.totals().value();
    let r = e.liquidate(req(9, LONG, Some(95.0)), false).unwrap();
    type Seen = (FillKind, Option<u64>, i64, f64, Option<u64>);
    let got: Vec<Seen> = r.fills.iter().map(|f| (f.kind, f.account, f.lots, f.price, f.rank)).collect();
    assert_eq!(
        got,
        vec![
            (FillKind::External, None, 2, 95.0, None),
            (FillKind::Adl, Some(3), 5, 96.0, Some(1)),
            (FillKind::Adl, Some(1), 3, 96.0, Some(2))
        ]
    );
    assert_eq!((r.from_fund, r.bad_debt, r.to_fund), (cents(4.0), cents(8.0), 0));
    assert_eq!((e.cash_of(3), e.cash_of(1)), (cents(20.0), cents(18.0)));
    assert_eq!(e.totals().value(), before);
}

#[test]
fn dydx_walks_whole_positions_from_a_seeded_start_in_account_order() {
    // Shorts #1..#4 hold 4, 3, 2, 5 (account order); #9's own short is not a candidate (dYdX
    // lists other subaccounts only). A bankrupt long of 6 lots walks from the seeded start,
    // drawn over the 4 candidates: whole positions, the last one partial.
    let rows = [
        (9, LONG, 6.0, 100.0, 24.0),
        (9, SHORT, 1.0, 100.0, 10.0),
        (1, SHORT, 4.0, 100.0, 40.0),
        (2, SHORT, 3.0, 100.0, 30.0),
        (3, SHORT, 2.0, 100.0, 20.0),
        (4, SHORT, 5.0, 100.0, 50.0),
    ];
    // The candidates in account order.
    let queue = [(1u64, 4i64), (2, 3), (3, 2), (4, 5)];
    for seed in [0u64, 1, 7, 12345] {
        let mut e = engine_with(Policy::Dydx, 0.0, &rows);
        e.seed = seed;
        let before = e.totals().value();
        let r = e.liquidate(Request { force: true, ..req(9, LONG, Some(95.0)) }, false).unwrap();
        let start = _adl::core::policy::dydx::start_of(seed, 0, queue.len());
        let mut want = vec![];
        let mut left = 6;
        for k in 0..queue.len() {
            let (account, qty) = queue[(start + k) % queue.len()];
            if left == 0 {
                break;
            }
            want.push((Some(account), qty.min(left)));
            left -= qty.min(left);
        }
        let got: Vec<(Option<u64>, i64)> = r.fills.iter().map(|f| (f.account, f.lots)).collect();
        assert_eq!(got, want, "seed {seed}");
        assert!(r.fills.iter().all(|f| f.rank.is_none() && f.price == 96.0));
        assert_eq!(e.totals().value(), before);
    }
}

#[test]
fn dydx_start_is_uniform_over_live_candidates() {
    // Shorts #1..#6 hold one lot each and #9 (the bankrupt long's own hedge leg) one. A first
    // bankrupt long (#8, 3 lots) closes three shorts whole: they leave the index, which is
    // kept (same marks). #9's long (2 lots) then starts at each of the 3 live candidates other
    // than #9's own leg equally often; the old draw over the index's raw size (7, with the
    // departed entries and #9's leg) gave the entry after a gap 2 to 4 times its share.
    let mut rows = vec![(8, LONG, 3.0, 100.0, 12.0), (9, LONG, 2.0, 100.0, 8.0), (9, SHORT, 1.0, 100.0, 10.0)];
    rows.extend((1..=6).map(|a| (a, SHORT, 1.0, 100.0, 10.0)));
    let mut e = engine_with(Policy::Dydx, 0.0, &rows);
    e.liquidate(Request { force: true, ..req(8, LONG, Some(95.0)) }, false).unwrap();
    let live: Vec<u64> = (1..=6).filter(|&a| e.store().find(&(a, 0, SHORT)).is_some()).collect();
    assert_eq!(live.len(), 3);
    let mut first = std::collections::BTreeMap::new();
    for seed in 0..3_000u64 {
        e.seed = seed;
        let r = e.liquidate(Request { force: true, ..req(9, LONG, Some(95.0)) }, true).unwrap();
        let f = r.fills.iter().find(|f| f.kind == FillKind::Adl).unwrap();
        assert_ne!(f.account, Some(9));
        *first.entry(f.account.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(first.keys().copied().collect::<Vec<_>>(), live);
    // 1,000 expected each; ±100 is 3.9 standard deviations of a fair draw (σ = 25.8), and
    // far inside the old skew (a third of the draws or more moved between candidates).
    assert!(first.values().all(|&c| (900..=1_100).contains(&c)), "{first:?}");
}

#[test]
fn dydx_visits_at_most_500_accounts_skipped_ones_included() {
    // Long #1000 1,000 @ 100 margin 2,000: P_bk = 98; the book fills at 95 and the fund is
    // empty, so ADL closes at 98. Shorts #1..#600 hold one lot each; odd accounts @ 100 margin
    // 10 gain 2 at 98 (they can pay), even ones @ 90 margin 7 (equity 1 at mark 96, own
    // P_bk 97) would receive 7 + (90 − 98) = −1 (passed over). Visiting 500 accounts in a row
    // from any start meets 250 of each: 250 ADL lots, 250 passed over, 750 lots to the book.
    let mut rows = vec![(1000, LONG, 1000.0, 100.0, 2000.0)];
    rows.extend((1..=600u64).map(|a| if a % 2 == 1 { (a, SHORT, 1.0, 100.0, 10.0) } else { (a, SHORT, 1.0, 90.0, 7.0) }));
    for seed in [0u64, 1, 2, 99] {
        let mut e = engine_with(Policy::Dydx, 0.0, &rows);
        e.seed = seed;
        let r = e.liquidate(Request { force: true, ..req(1000, LONG, Some(95.0)) }, false).unwrap();
        assert_eq!((r.adl_lots, r.passed.len(), r.external_lots), (250, 250, 750), "seed {seed}");
        assert!(r.passed.iter().all(|p| p.account % 2 == 0));
    }
}

#[test]
fn dydx_offsets_the_whole_amount_or_skips() {
    use _adl::core::PassReason;
    // #1 long 10 @ 100 margin 20 at mark 90: P_bk = 98. #5 cross short 10 @ 95, wallet 10:
    // TNC = 10 + 50 = 60, and each lot closed at 98 instead of 90 costs it 8, so it can pay
    // for 7 of the 10 lots. A ranked queue takes 7; dYdX offsets min(remaining, position) = 10
    // or nothing (the subaccount update would fail), so it skips #5 and the 10 lots go to the
    // book: 20 + 10·(90 − 100) = −80 of bad debt.
    let rows = [(1, 0, LONG, 10.0, 100.0, 20.0, false), (5, 0, SHORT, 10.0, 95.0, 0.0, true)];
    for (policy, adl, bad) in [(Policy::Bitmex, 7, 24.0), (Policy::Dydx, 0, 80.0)] {
        let mut e = Engine::new(policy, 0.0, 2, MarketSpec::linear(0, 0, 0.005)).unwrap();
        e.load(common::columns(&rows).view(), &["X".to_string()], Some((&[5], &[10.0])), None).unwrap();
        e.set_marks(&[("X".to_string(), 90.0)], Some(1)).unwrap();
        let r = e.liquidate(req(1, LONG, None), false).unwrap();
        assert_eq!((r.adl_lots, r.bad_debt), (adl, cents(bad)), "{policy:?}");
        if policy == Policy::Dydx {
            assert_eq!(r.passed.iter().map(|p| (p.account, p.reason)).collect::<Vec<_>>(), vec![(5, PassReason::Collateral)]);
        }
    }
}

#[test]
fn min_max_leverage_queues_winners_by_leverage_then_splits_the_rest_by_size() {
    // Long 40 @100 m100 at 96: e = −60, P_bk = 97.5. Shorts:
    //   #2 10 @100 m20: u = 40, e = 60, ℓ = 960/60 = 16        (queue 2nd)
    //   #3 10 @100 m10: u = 40, e = 50, ℓ = 19.2                (queue 1st)
    //   #4 30 @95 m60: u = −30, e = 30 (a loser)                (size fallback)
    //   #5 10 @94 m10: u = −20, e = −10 (bankrupt: never)
    // The queue takes #3 10 and #2 10; the other 20 lots would go by size to #4, but #4's own
    // bankruptcy price is 95 + 60/30 = 97 < 97.5: closing there would pay it 20·(95 − 97.5)
    // + 40 = −10. It is passed over and the 20 lots close on the book at 96 with their
    // margin 50: 50 + 20·(96 − 100) = −30 of bad debt (the fund is empty).
    let mut e = engine_with(
        Policy::MinMaxLeverage,
        0.0,
        &[
            (1, LONG, 40.0, 100.0, 100.0),
            (2, SHORT, 10.0, 100.0, 20.0),
            (3, SHORT, 10.0, 100.0, 10.0),
            (4, SHORT, 30.0, 95.0, 60.0),
            (5, SHORT, 10.0, 94.0, 10.0),
        ],
    );
    let before = e.totals().value();
    let r = e.liquidate(req(1, LONG, None), false).unwrap();
    let got: Vec<(Option<u64>, i64, Option<u64>)> = r.fills.iter().map(|f| (f.account, f.lots, f.rank)).collect();
    assert_eq!(got, vec![(Some(3), 10, Some(1)), (Some(2), 10, Some(2)), (None, 20, None)]);
    assert_eq!((r.adl_lots, r.bad_debt), (20, cents(30.0)));
    assert_eq!(r.passed, vec![PassedOver { account: 4, side: SHORT, reason: PassReason::BeyondBankruptcy }]);
    assert_eq!(e.cash_of(4), 0);
    assert_eq!(e.totals().value(), before);
}

#[test]
fn indicator_lights_by_count_or_by_quantity() {
    use _adl::core::Lights;
    // Six longs holding 10, 20, 30, 10, 10, 20, queued by the caller's scores 6..1 (accounts
    // 1..6). By quantity: cumulative 10, 30, 60, 70, 80, 100 of 100 → 5, 4, 3, 2, 2, 1; by count
    // 6 − ⌈5·r/6⌉ → 5, 4, 3, 2, 1, 1.
    let rows: Vec<Row> =
        [10.0, 20.0, 30.0, 10.0, 10.0, 20.0].iter().enumerate().map(|(i, &q)| (i as u64 + 1, LONG, q, 100.0, 100.0)).collect();
    let mut e = Engine::new(Policy::Custom, 0.0, 2, MarketSpec::linear(0, 0, 0.005)).unwrap();
    assert_eq!(e.lights, Lights::Count);
    let cols = common::columns(&rows.iter().map(|&(a, s, q, en, m)| (a, 0, s, q, en, m, false)).collect::<Vec<_>>());
    e.load(cols.view(), &["X".to_string()], None, Some(&[6.0, 5.0, 4.0, 3.0, 2.0, 1.0])).unwrap();
    e.set_marks(&[("X".to_string(), 100.0)], None).unwrap();
    let lights = |e: &mut Engine| e.indicator(0, LONG).unwrap().iter().map(|r| r.lights).collect::<Vec<u8>>();
    assert_eq!(lights(&mut e), vec![5, 4, 3, 2, 1, 1]);
    e.lights = Lights::Quantity;
    assert_eq!(lights(&mut e), vec![5, 4, 3, 2, 2, 1]);
    let rows = e.indicator(0, LONG).unwrap();
    assert_eq!(rows.iter().map(|r| (r.rank, r.lots_ahead)).collect::<Vec<_>>(), vec![(1, 0), (2, 10), (3, 30), (4, 60), (5, 70), (6, 80)]);
    assert_eq!(rows[2].percentile, 0.6);
    // The method survives a snapshot; the bitmex preset buckets by quantity.
    assert_eq!(Engine::restore(&e.snapshot()).unwrap().lights, Lights::Quantity);
    assert_eq!(Engine::new(Policy::Bitmex, 0.0, 2, MarketSpec::linear(0, 0, 0.005)).unwrap().lights, Lights::Quantity);
}

#[test]
fn one_position_and_one_account_reads_by_hand() {
    // The book of the first case at mark 96. Short queue (bitmex, lights by quantity): #2 (10
    // lots, score 0.64), #3 (10, 0.384), #4 (20, < 0); total 40 lots. #3: rank 2, 10 lots
    // ahead, cumulative 20/40 = 0.5, lights 6 − ⌈5·20/40⌉ = 3.
    let rows = [(1, LONG, 30.0, 100.0, 60.0), (2, SHORT, 10.0, 100.0, 20.0), (3, SHORT, 10.0, 100.0, 60.0), (4, SHORT, 20.0, 95.0, 100.0)];
    let mut e = engine(0.0, &rows);
    let v = e.position_view(3, 0, SHORT).unwrap();
    let q = v.queue.unwrap();
    assert_eq!((q.rank, q.percentile, q.lights, q.lots_ahead), (2, 0.5, 3, 10));
    // equity 60 + 10·(100 − 96) = 100; maintenance 0.5 %·960 = 4.80; P_bk = 100 + 60/10 = 106;
    // liquidation: 60 + 10·(100 − P) = 0.05·P, P = 1060/10.05.
    assert_eq!(v.health, Some((cents(100.0), cents(4.8))));
    let (bk, liq) = v.prices.unwrap();
    assert_eq!(bk, 106.0);
    assert!((liq - 1060.0 / 10.05).abs() < 1e-9);
    // The bankrupt long (equity 60 − 120 = −60) is not queued.
    let v = e.position_view(1, 0, LONG).unwrap();
    assert_eq!((v.queue, v.health), (None, Some((cents(-60.0), cents(14.4)))));
    // #4: no free cash; equity 100 + 20·(95 − 96) = 80; lights 6 − ⌈5·40/40⌉ = 1.
    let a = e.account_view(4).unwrap();
    assert_eq!((a.cash, a.equity, a.cross, a.positions.len()), (0, cents(80.0), None, 1));
    assert_eq!(a.positions[0].queue.unwrap().lights, 1);
    assert!(matches!(e.position_view(4, 0, LONG), Err(AdlError::UnknownPosition { .. })));
    assert!(e.account_view(99).is_err());
}

#[test]
fn one_position_reads_agree_with_the_whole_queue_indicator() {
    // Ties included: #5 and #6 hold the same position, so they share a light by quantity.
    let rows = [
        (1, LONG, 30.0, 100.0, 60.0),
        (2, SHORT, 10.0, 100.0, 20.0),
        (3, SHORT, 10.0, 100.0, 60.0),
        (4, SHORT, 20.0, 95.0, 100.0),
        (5, SHORT, 7.0, 99.0, 30.0),
        (6, SHORT, 7.0, 99.0, 30.0),
        (7, LONG, 5.0, 90.0, 40.0),
        (8, LONG, 9.0, 93.0, 80.0),
    ];
    for policy in [Policy::Bitmex, Policy::Binance, Policy::Hyperliquid, Policy::MinMaxLeverage] {
        let mut e = engine_with(policy, 0.0, &rows);
        for side in [LONG, SHORT] {
            let rows = e.indicator(0, side).unwrap();
            for row in rows {
                let p = e.store().get(row.slot);
                assert_eq!(e.position_view(p.account, 0, side).unwrap().queue, Some(row), "{policy:?}");
            }
        }
        // The whole-book rows: longs' queue then shorts', each in queue order, with the notional
        // queued ahead at the mark 96 (one lot = one contract; cash in cents: 96·100 a lot).
        let mut by_side = Vec::new();
        for side in [LONG, SHORT] {
            for row in e.indicator(0, side).unwrap() {
                by_side.push((e.store().get(row.slot).account, side, row));
            }
        }
        let whole = e.indicator_rows().unwrap();
        assert_eq!(whole.iter().map(|r| (r.account, r.side, r.place)).collect::<Vec<_>>(), by_side, "{policy:?}");
        assert!(whole.iter().all(|r| r.market == 0 && r.notional_ahead == r.place.lots_ahead as i128 * 9_600), "{policy:?}");
        assert!(whole.iter().any(|r| r.place.lots_ahead > 0), "{policy:?}");
    }
    let mut e = engine_with(Policy::SizeProRata, 0.0, &rows);
    assert_eq!(e.position_view(2, 0, SHORT).unwrap().queue, None);
    assert_eq!(e.indicator_rows().unwrap(), vec![]);
}

#[test]
fn severity_cap_deleverages_at_most_the_cap_and_books_the_rest_at_the_fill_price() {
    // The book of the first case: bankrupt long #1 30 @100 m60, P_bk = 98; shorts #2 (rank 1),
    // #3 (rank 2), #4 (a loser). The book fills at 95: each lot leaves 98 − 95 = 3 of deficit.
    let rows = [(1, LONG, 30.0, 100.0, 60.0), (2, SHORT, 10.0, 100.0, 20.0), (3, SHORT, 10.0, 100.0, 60.0), (4, SHORT, 20.0, 95.0, 100.0)];
    let mut e = engine(0.0, &rows);
    let before = e.totals().value();
    let r = e.liquidate_capped(req(1, LONG, Some(95.0)), Some(15), false).unwrap();
    // 15 lots to ADL at 98 in queue order: all 10 of #2, 5 of #3's 10.
    let got: Vec<(Option<u64>, i64, f64, FillKind)> = r.fills.iter().map(|f| (f.account, f.lots, f.price, f.kind)).collect();
    assert_eq!(got, vec![(Some(2), 10, 98.0, FillKind::Adl), (Some(3), 5, 98.0, FillKind::Adl), (None, 15, 95.0, FillKind::BadDebt)]);
    // The other 15 close at 95 with their margin 30: 30 + 15·(95 − 100) = −45 = 15·3, no fund: bad debt 45.
    assert_eq!((r.adl_lots, r.external_lots, r.from_fund, r.bad_debt), (15, 15, 0, cents(45.0)));
    // #2: 20 + 10·(100 − 98) = 40. #3: half its margin 30 + 5·2 = 40, keeps 5 @100 with 30.
    assert_eq!((e.cash_of(2), e.cash_of(3), e.cash_of(4), e.cash_of(1)), (cents(40.0), cents(40.0), 0, 0));
    let slot = e.store().find(&(3, 0, SHORT)).unwrap();
    assert_eq!((e.store().get(slot).qty, e.store().get(slot).margin), (5, 3_000));
    let t = e.totals();
    assert_eq!(t.value(), before);
    assert_eq!((t.long_lots, t.short_lots), (0, 25));
    assert_eq!(e.bad_debt(), cents(45.0));

    // With a fund of 10: it covers Q_f = 3 lots (pays 6 − 15 → 9; 4 would cost 12), leaving 1.
    // 15 of the 27 lots are ADL'd; the last 12 carry 24 of margin: 24 − 60 = −36, the fund's
    // leftover 1 pays, bad debt 35. From the fund 9 + 1 = 10.
    let mut e = engine(10.0, &rows);
    let before = e.totals().value();
    let r = e.liquidate_capped(req(1, LONG, Some(95.0)), Some(15), false).unwrap();
    assert_eq!((r.adl_lots, r.external_lots, r.from_fund, r.bad_debt), (15, 15, cents(10.0), cents(35.0)));
    assert_eq!((e.fund(), e.totals().value()), (0, before));

    // Cap 0: every lot past the fund goes to the book (30·3 = 90 of bad debt); a cap at or above
    // Q − Q_f is no cap; a dry run predicts the real run; a negative cap is refused unchanged.
    let mut e = engine(0.0, &rows);
    let r = e.liquidate_capped(req(1, LONG, Some(95.0)), Some(0), false).unwrap();
    assert_eq!((r.adl_lots, r.external_lots, r.bad_debt), (0, 30, cents(90.0)));
    let mut a = engine(0.0, &rows);
    let mut b = engine(0.0, &rows);
    let dry = a.liquidate_capped(req(1, LONG, Some(95.0)), Some(40), true).unwrap();
    let capped = a.liquidate_capped(req(1, LONG, Some(95.0)), Some(40), false).unwrap();
    let plain = b.liquidate(req(1, LONG, Some(95.0)), false).unwrap();
    assert_eq!((dry.fills.clone(), dry.bad_debt), (capped.fills.clone(), capped.bad_debt));
    assert_eq!((capped.fills, capped.bad_debt, capped.adl_lots), (plain.fills, plain.bad_debt, 30));
    let mut e = engine(0.0, &rows);
    let snap = e.snapshot();
    assert!(matches!(e.liquidate_capped(req(1, LONG, None), Some(-1), false), Err(AdlError::InvalidParameter { .. })));
    assert_eq!(e.snapshot(), snap);
}

#[test]
fn adl_dry_run_places_the_lots_the_waterfall_places_and_changes_nothing() {
    // The book of `queue_partial_last_fill_and_losers_after_winners`: 30 lots at P_bk 98 go to
    // #2 (10), #3 (10) and #4 (10 of 20), ranks 1-3. The dry run places the same lots at 98
    // (ticks, price_decimals 0) with nothing applied; 50 lots are more than the side holds (40).
    let rows = [(1, LONG, 30.0, 100.0, 60.0), (2, SHORT, 10.0, 100.0, 20.0), (3, SHORT, 10.0, 100.0, 60.0), (4, SHORT, 20.0, 95.0, 100.0)];
    for policy in [Policy::Bitmex, Policy::SizeProRata, Policy::Dydx, Policy::MinMaxLeverage, Policy::WealthProRata] {
        let mut e = engine_with(policy, 0.0, &rows);
        let before = e.totals();
        let takes = e.adl_dry_run(0, LONG, 30, 98).unwrap();
        assert_eq!(e.totals(), before, "{policy:?}: a dry run applies nothing");
        let dry: Vec<(u64, i64, Option<u64>)> = takes.iter().map(|t| (e.store().get(t.slot).account, t.lots, t.rank)).collect();
        let r = e.liquidate(req(1, LONG, None), false).unwrap();
        let wet: Vec<(u64, i64, Option<u64>)> = r.fills.iter().filter_map(|f| Some((f.account?, f.lots, f.rank))).collect();
        assert_eq!(dry, wet, "{policy:?}");
    }
    let mut e = engine(0.0, &rows);
    assert!(matches!(e.adl_dry_run(0, LONG, 50, 98), Err(AdlError::InsufficientLiquidity { .. })));
    // A side that is not one cannot reach the call: it is refused where it is parsed.
    assert!(matches!(Side::try_from(2i8), Err(AdlError::InvalidParameter { .. })));
}
