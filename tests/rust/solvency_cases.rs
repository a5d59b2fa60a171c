//! Hand-computed gapped cases for solvency at the ADL price (docs/model.md §2 step 4): no
//! counterparty is made insolvent by ADL, under every policy. Whole lots, whole-quote ticks,
//! cash in cents; maintenance 0.5 %. Every number in the comments is exact.

#[path = "common.rs"]
mod common;

use _adl::core::Trigger;
use _adl::core::{Engine, FillKind, Liquidation, MarketSpec, PassReason, PassedOver, Policy, Request, Side};

const LONG: Side = Side::Long;
const SHORT: Side = Side::Short;

fn cents(x: f64) -> i128 {
    (x * 100.0).round() as i128
}

fn engine(policy: Policy, fund: f64, rows: &[common::Row], wallets: &[(u64, f64)], marks: &[(&str, f64)]) -> Engine {
    let spec = MarketSpec::linear(0, 0, 0.005);
    let mut e = Engine::new(policy, fund, 2, spec.clone()).unwrap();
    let names: Vec<String> = ["X", "Y"].iter().map(|s| s.to_string()).collect();
    for n in &names {
        e.add_market(n, spec.clone()).unwrap();
    }
    let (acc, cash): (Vec<u64>, Vec<f64>) = wallets.iter().copied().unzip();
    e.load(common::columns(rows).view(), &names, Some((&acc, &cash)), None).unwrap();
    let marks: Vec<(String, f64)> = marks.iter().map(|(s, m)| (s.to_string(), *m)).collect();
    e.set_marks(&marks, Some(1)).unwrap();
    e
}

fn liquidate_long_1(e: &mut Engine) -> Liquidation {
    let v0 = e.totals().value();
    let r = e.liquidate(Request { account: 1, market: 0, side: LONG, fill_price: None, force: false, partial: false }, false).unwrap();
    assert_eq!(e.totals().value(), v0, "value conserved");
    r
}

fn adl_fills(r: &Liquidation) -> Vec<(u64, i64)> {
    r.fills.iter().filter(|f| f.kind == FillKind::Adl).map(|f| (f.account.unwrap(), f.lots)).collect()
}

#[test]
fn the_issue_reproducer_passes_over_the_short_that_cannot_pay() {
    // Long 10 @100 m20, short 10 @88 m25; the mark gaps to 90. The long is bankrupt
    // (20 − 100 = −80), P_bk = 100 − 20/10 = 98. The short has equity 25 − 20 = 5 > 0 at 90,
    // but its own P_bk is 88 + 25/10 = 90.5 < 98: at 98 it would receive 25 + 10·(88 − 98)
    // = −75. It is passed over; the 10 lots close on the book at 90, bad debt 80.
    let rows = [(1, 0, LONG, 10.0, 100.0, 20.0, false), (2, 0, SHORT, 10.0, 88.0, 25.0, false)];
    let mut e = engine(Policy::Bitmex, 0.0, &rows, &[], &[("X", 90.0), ("Y", 1.0)]);
    let r = liquidate_long_1(&mut e);
    assert_eq!(adl_fills(&r), vec![]);
    assert_eq!(r.passed, vec![PassedOver { account: 2, side: SHORT, reason: PassReason::BeyondBankruptcy }]);
    assert_eq!((r.bad_debt, r.external_lots), (cents(80.0), 10));
    assert_eq!(e.cash_of(2), 0);
    assert!(e.store().find(&(2, 0, SHORT)).is_some(), "the short keeps its position and its place");
}

/// The gapped book shared by the per-policy cases. Mark 90 (from entries near 100), fund 0.
/// Bankrupt #1 long 10 @100 m20: P_bk = 98, deficit at 90 = 80.
/// Shorts (u at 90; e = equity; own P_bk; cash for all lots at 98):
///   #2 10 @95 m5:  u 50, e 55,  P_bk 95.5 -> 5 + 10·(95 − 98) = −25: cannot pay
///   #3 10 @100 m20: u 100, e 120, P_bk 102 -> 20 + 10·2 = 40
///   #4 5 @99 m10:  u 45, e 55,  P_bk 101 -> 10 + 5·1 = 15
/// Scores: bitmex pnl%·N/e: #2 (5/95)(900/55) = 0.861, #3 0.1·7.5 = 0.75, #4 (9/99)(450/55)
/// = 0.744; binance (u/W)·(MM/e): #2 10·4.5/55 = 0.818, #3 5·4.5/120 = 0.1875, #4 4.5·2.25/55
/// = 0.184; leverage N/e: #2 16.4, #4 8.18, #3 7.5.
fn gapped(policy: Policy) -> Engine {
    let rows = [
        (1, 0, LONG, 10.0, 100.0, 20.0, false),
        (2, 0, SHORT, 10.0, 95.0, 5.0, false),
        (3, 0, SHORT, 10.0, 100.0, 20.0, false),
        (4, 0, SHORT, 5.0, 99.0, 10.0, false),
    ];
    engine(policy, 0.0, &rows, &[], &[("X", 90.0), ("Y", 1.0)])
}

const PASSED_2: PassedOver = PassedOver { account: 2, side: SHORT, reason: PassReason::BeyondBankruptcy };

#[test]
fn ranked_queues_pass_over_the_head_that_cannot_pay() {
    // bitmex and binance: #2 heads the queue and is passed over; #3 takes all 10 at 98 and
    // receives its margin 20 + 10·(100 − 98) = 40.
    for policy in [Policy::Bitmex, Policy::Binance] {
        let mut e = gapped(policy);
        let r = liquidate_long_1(&mut e);
        assert_eq!(adl_fills(&r), vec![(3, 10)], "{policy:?}");
        assert_eq!(r.passed, vec![PASSED_2], "{policy:?}");
        assert_eq!((r.bad_debt, e.cash_of(3), e.cash_of(2)), (0, cents(40.0), 0), "{policy:?}");
        // Passed over, not removed: #2 still heads the queue for the next event.
        let idx = e.ranking(0, SHORT).unwrap();
        assert_eq!(idx.queue().count(), 2);
    }
    // min_max_leverage queues by leverage: #2 (passed), #4 takes 5, #3 the other 5 (cash:
    // #4 10 + 5·1 = 15; #3 half its margin 10 + 5·2 = 20).
    let mut e = gapped(Policy::MinMaxLeverage);
    let r = liquidate_long_1(&mut e);
    assert_eq!(adl_fills(&r), vec![(4, 5), (3, 5)]);
    assert_eq!(r.passed, vec![PASSED_2]);
    assert_eq!((e.cash_of(4), e.cash_of(3)), (cents(15.0), cents(20.0)));
}

#[test]
fn pro_rata_policies_split_over_those_who_can_pay() {
    // #2 is left out; 10 lots over #3 and #4.
    //   size / capped (size 10:5): 6.67, 3.33 -> 6, 3 + 1 to the larger remainder (#3): 7, 3.
    //   wealth (u 100:45): 6.90, 3.10 -> 7, 3.   levered (u·N/e 750:368.2): 6.71, 3.29 -> 7, 3.
    for policy in [Policy::SizeProRata, Policy::CappedProRata, Policy::WealthProRata, Policy::LeveredProRata] {
        let mut e = gapped(policy);
        let r = liquidate_long_1(&mut e);
        assert_eq!(adl_fills(&r), vec![(3, 7), (4, 3)], "{policy:?}");
        assert_eq!(r.passed, vec![PASSED_2], "{policy:?}");
        // #3: 7/10 of m20 = 14 + 7·2 = 28; #4: 3/5 of m10 = 6 + 3·1 = 9. Nobody below zero.
        assert_eq!((e.cash_of(3), e.cash_of(4), e.cash_of(2)), (cents(28.0), cents(9.0), 0), "{policy:?}");
    }
}

#[test]
fn the_dydx_walk_skips_the_subaccount_that_cannot_pay() {
    // Whatever the start, #2 never fills; #3 and #4 hold 15 >= 10 lots, so no bad debt.
    for seed in 0..16 {
        let mut e = gapped(Policy::Dydx);
        e.seed = seed;
        let r = liquidate_long_1(&mut e);
        let fills = adl_fills(&r);
        assert!(fills.iter().all(|f| f.0 != 2), "seed {seed}: {fills:?}");
        assert_eq!(fills.iter().map(|f| f.1).sum::<i64>(), 10);
        assert_eq!(r.bad_debt, 0);
        assert!(r.passed.is_empty() || r.passed == vec![PASSED_2]);
    }
}

#[test]
fn at_the_mark_everyone_eligible_can_pay() {
    // hyperliquid fills at the mark 90: #2 can pay there (equity 55 > 0) and heads the queue
    // ((E/P)·N/e: #2 (95/90)·900/55 = 17.3, #3 8.3). The long's loss beyond its margin, 80,
    // is bad debt (fund 0). #2 receives its margin 5 + 10·(95 − 90) = 55.
    let mut e = gapped(Policy::Hyperliquid);
    let r = liquidate_long_1(&mut e);
    assert_eq!(adl_fills(&r), vec![(2, 10)]);
    assert!(r.passed.is_empty());
    assert_eq!((r.bad_debt, e.cash_of(2)), (cents(80.0), cents(55.0)));
}

#[test]
fn a_cross_counterparty_takes_only_what_its_collateral_pays_for() {
    // #5 cross short 10 X @95, wallet 10: TNC = 10 + 50 = 60 at 90. Each lot closed at 98
    // instead of 90 costs it 8: at most ⌊60·10/80⌋ = 7 lots (TNC 60 − 56 = 4 >= 0). The
    // other 3 close on the book at 90 carrying 6 of margin: 6 − 30 = −24 of bad debt.
    let rows = [(1, 0, LONG, 10.0, 100.0, 20.0, false), (5, 0, SHORT, 10.0, 95.0, 0.0, true)];
    let mut e = engine(Policy::Bitmex, 0.0, &rows, &[(5, 10.0)], &[("X", 90.0), ("Y", 1.0)]);
    let r = liquidate_long_1(&mut e);
    assert_eq!(adl_fills(&r), vec![(5, 7)]);
    assert!(r.passed.is_empty());
    assert_eq!(r.bad_debt, cents(24.0));
    // Wallet 10 + 7·(95 − 98) = −11; 3 lots left with u = 15: TNC = 4.
    let (_, t) = e.cross_accounts().find(|(a, _)| *a == 5).unwrap();
    assert_eq!((t.wallet, t.tnc()), (cents(-11.0), cents(4.0)));
    // With wallet 0 and a loss on Y it cannot pay for a lot: TNC = 0 + 50 − 45 = 5 < 8.
    let rows = [(1, 0, LONG, 10.0, 100.0, 20.0, false), (5, 0, SHORT, 10.0, 95.0, 0.0, true), (5, 1, LONG, 1.0, 145.0, 0.0, true)];
    let mut e = engine(Policy::Bitmex, 0.0, &rows, &[(5, 0.0)], &[("X", 90.0), ("Y", 100.0)]);
    let r = liquidate_long_1(&mut e);
    assert_eq!(r.passed, vec![PassedOver { account: 5, side: SHORT, reason: PassReason::Collateral }]);
    assert_eq!(r.bad_debt, cents(80.0));
}

#[test]
fn a_cross_account_with_no_net_collateral_is_never_ranked() {
    // #5 cross: short 10 X @95 (u +50) and long 10 Y @100 at 90 (u −100), wallet 50: TNC = 0.
    // hyperliquid used to score it +inf (N over an account value of 0), first in queue.
    let rows = [
        (1, 0, LONG, 10.0, 100.0, 20.0, false),
        (3, 0, SHORT, 10.0, 100.0, 20.0, false),
        (5, 0, SHORT, 10.0, 95.0, 0.0, true),
        (5, 1, LONG, 10.0, 100.0, 0.0, true),
    ];
    for policy in [Policy::Hyperliquid, Policy::Bitmex, Policy::Binance, Policy::MinMaxLeverage, Policy::SizeProRata] {
        let mut e = engine(policy, 0.0, &rows, &[(5, 50.0)], &[("X", 90.0), ("Y", 90.0)]);
        let idx = e.ranking(0, SHORT).unwrap();
        let queued: Vec<u32> = idx.queue().map(|(_, s)| s).collect();
        let five = e.store().find(&(5, 0, SHORT)).unwrap();
        assert!(!queued.contains(&five), "{policy:?}");
        let r = liquidate_long_1(&mut e);
        assert_eq!(adl_fills(&r), vec![(3, 10)], "{policy:?}");
    }
}

#[test]
fn an_armed_trigger_still_pays_for_lots_nobody_takes() {
    // The reproducer with a fund of 1,000 that then drops to 100: a fund-drop trigger (arm
    // below 70 % of the peak) is armed, so the fund spares no counterparty; the only one
    // cannot pay, and the 10 lots' deficit of 80 is paid from the 100 before any bad debt.
    let rows = [(1, 0, LONG, 10.0, 100.0, 20.0, false), (2, 0, SHORT, 10.0, 88.0, 25.0, false)];
    let mut e = engine(Policy::Bitmex, 1_000.0, &rows, &[], &[("X", 90.0), ("Y", 1.0)]);
    e.set_trigger(Trigger::FundDrop { arm: 0.70, disarm: 0.90 });
    e.set_fund(100.0, "default").unwrap();
    assert!(e.funds().pool(0).trigger.armed);
    let r = liquidate_long_1(&mut e);
    assert_eq!((r.from_fund, r.bad_debt), (cents(80.0), 0));
    assert_eq!(e.fund(), cents(20.0));
}

#[test]
fn equal_pro_rata_remainders_go_to_the_lower_account_exactly() {
    // Long 6 @200 m594 at mark 100: e = −6, P_bk = 101. Shorts with margin 1,000 each:
    // #9 2 @104 (u 8), #6 4 @106 (u 24), #5 6 @108 (u 48). wealth_pro_rata: 6·(8, 24, 48)/80
    // = 0.6, 1.8, 3.6 -> 0, 1, 3 and two lots left: .8 (#6) and the tie .6 = .6 -> #5.
    let rows = [
        (100, 0, LONG, 6.0, 200.0, 594.0, false),
        (9, 0, SHORT, 2.0, 104.0, 1000.0, false),
        (6, 0, SHORT, 4.0, 106.0, 1000.0, false),
        (5, 0, SHORT, 6.0, 108.0, 1000.0, false),
    ];
    let mut e = engine(Policy::WealthProRata, 0.0, &rows, &[], &[("X", 100.0), ("Y", 1.0)]);
    let r = e.liquidate(Request { account: 100, market: 0, side: LONG, fill_price: None, force: false, partial: false }, false).unwrap();
    let mut got = adl_fills(&r);
    got.sort();
    assert_eq!(got, vec![(5, 4), (6, 2)]);
}

#[test]
fn a_partial_take_at_exactly_zero_cash_releases_its_margin_rounded_up() {
    // Cash in whole quote units (factor 1), mark 98. Long #1 2 @100 m1: e = 1 − 4 = −3,
    // P_bk = 100 − 1/2 = 99.5. Short #a 2 @99 m1 has own P_bk 99 + 1/2 = 99.5 = P_ADL: it
    // receives exactly 0 per lot, so it may take lots. Pro-rata gives it 1 of the 2 lots:
    // carried ⌊1·1/2⌋ = 0 and PnL 99 − 100 = −1, so released margin ⌊1/2⌋ = 0 would pay it −1;
    // released ⌈1/2⌉ = 1 pays it 0 (the unit moves within its own account).
    for policy in [Policy::SizeProRata, Policy::WealthProRata, Policy::CappedProRata, Policy::LeveredProRata] {
        for (a, b) in [(2u64, 3u64), (3, 2)] {
            let spec = MarketSpec::linear(0, 0, 0.005);
            let mut e = Engine::new(policy, 0.0, 0, spec.clone()).unwrap();
            let rows = [(1, 0, LONG, 2.0, 100.0, 1.0, false), (a, 0, SHORT, 2.0, 99.0, 1.0, false), (b, 0, SHORT, 2.0, 99.0, 100.0, false)];
            e.load(common::columns(&rows).view(), &["X".to_string()], None, None).unwrap();
            e.set_marks(&[("X".to_string(), 98.0)], None).unwrap();
            let r = liquidate_long_1(&mut e);
            assert_eq!(r.adl_lots, 2, "{policy:?}");
            assert!(e.cash_of(a) >= 0 && e.cash_of(b) >= 0, "{policy:?} a={a}: {} {}", e.cash_of(a), e.cash_of(b));
        }
    }
}
