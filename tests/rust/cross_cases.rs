//! Hand-computed cross-margin (docs/model.md §6) and custom-score cases. Whole lots, whole-quote
//! ticks, cash in cents. Market X: maintenance 10 %, mark 90. Market Y: maintenance 6 %,
//! mark 200. Every number in the comments is exact.

use _adl::core::{AdlError, Engine, FillKind, MarketSpec, Policy, Request, Side, Totals};

const LONG: Side = Side::Long;
const SHORT: Side = Side::Short;
const X: u32 = 0;
const Y: u32 = 1;

#[path = "common.rs"]
mod common;
use common::{columns, Row};

fn engine(policy: Policy, rows: &[Row], wallets: &[(u64, f64)], custom: Option<&[f64]>) -> Result<Engine, AdlError> {
    let spec = MarketSpec::linear(0, 0, 0.1);
    let mut e = Engine::new(policy, 0.0, 2, spec.clone()).unwrap();
    e.add_market("X", spec.clone()).unwrap();
    e.add_market("Y", MarketSpec { maintenance_rate: 0.06, ..spec.clone() }).unwrap();
    let cols = columns(rows);
    let acc: Vec<u64> = wallets.iter().map(|w| w.0).collect();
    let cash: Vec<f64> = wallets.iter().map(|w| w.1).collect();
    e.load(cols.view(), &["X".to_string(), "Y".to_string()], Some((&acc, &cash)), custom)?;
    e.set_marks(&[("X".to_string(), 90.0), ("Y".to_string(), 200.0)], Some(1))?;
    Ok(e)
}

fn value(t: &Totals) -> i128 {
    t.value()
}

fn cents(x: f64) -> i128 {
    (x * 100.0).round() as i128
}

/// Account 1 is cross with wallet 50: long 10 X @100 (u = −100, MM = 90) and short 5 Y @200
/// (u = 0, MM = 0.06·1,000 = 60). TNC = 50 − 100 = −50, TMMR = 150: bankrupt.
/// Shares: X −50·90/150 = −30, Y −50·60/150 = −20. Effective margins: X −30 + 100 = 70
/// (P_bk = 100 − 70/10 = 93), Y −20 − 0 = −20 (P_bk = 200 + (−20)/5 = 196).
/// Counterparties: #2 isolated short 10 X @100 m100; #3 isolated long 5 Y @190 m100.
fn bankrupt_cross_account() -> Engine {
    engine(
        Policy::Bitmex,
        &[
            (1, X, LONG, 10.0, 100.0, 0.0, true),
            (1, Y, SHORT, 5.0, 200.0, 0.0, true),
            (2, X, SHORT, 10.0, 100.0, 100.0, false),
            (3, Y, LONG, 5.0, 190.0, 100.0, false),
        ],
        &[(1, 50.0)],
        None,
    )
    .unwrap()
}

#[test]
fn cross_health_and_prices_spread_net_collateral_by_maintenance() {
    let e = bankrupt_cross_account();
    let x = e.store().find(&(1, X, LONG)).unwrap();
    let y = e.store().find(&(1, Y, SHORT)).unwrap();
    assert_eq!(e.health(x).unwrap(), (cents(-30.0), cents(90.0)));
    assert_eq!(e.health(y).unwrap(), (cents(-20.0), cents(60.0)));
    let (bk_x, liq_x) = e.prices(x).unwrap();
    let (bk_y, _) = e.prices(y).unwrap();
    assert!((bk_x - 93.0).abs() < 1e-12 && (bk_y - 196.0).abs() < 1e-12, "{bk_x} {bk_y}");
    // X's liquidation mark with Y held: W + u_Y − MM_Y = 50 − 60 = −10 as margin:
    // (10·100 + 10)/(10·0.9) = 112.22…; there u_X = 122.2, TNC = 172.2 = 112.2 + 60 = TMMR.
    assert!((liq_x - 1010.0 / 9.0).abs() < 1e-9, "{liq_x}");
    // Both positions are liquidatable (the account is), the isolated ones are not.
    let mut slots = e.liquidatable();
    slots.sort_unstable();
    assert_eq!(slots, {
        let mut v = vec![x, y];
        v.sort_unstable();
        v
    });
}

#[test]
fn liquidating_a_cross_account_closes_each_position_at_its_cross_bankruptcy_price() {
    let mut e = bankrupt_cross_account();
    let before = value(&e.totals());
    let out = e.liquidate_account(1, false, false).unwrap();
    // X first (maintenance 90 > 60): 70 leaves the wallet (50 → −20); ADL 10 lots at 93
    // against #2, who gets margin 100 + 10·(100 − 93) = 170.
    assert_eq!(out.len(), 2);
    let fx = &out[0].fills;
    assert_eq!((fx.len(), fx[0].kind, fx[0].account, fx[0].lots), (1, FillKind::Adl, Some(2), 10));
    assert!((fx[0].price - 93.0).abs() < 1e-12);
    // Then Y: the account's TNC is −20 with TMMR 60, so Y's share is −20 and its margin −20
    // (the wallet goes back to 0); ADL 5 lots at 196 against #3: 100 + 5·(196 − 190) = 130.
    let fy = &out[1].fills;
    assert_eq!((fy.len(), fy[0].kind, fy[0].account, fy[0].lots), (1, FillKind::Adl, Some(3), 5));
    assert!((fy[0].price - 196.0).abs() < 1e-12);
    assert_eq!((e.cash_of(1), e.cash_of(2), e.cash_of(3)), (0, cents(170.0), cents(130.0)));
    assert_eq!((e.fund(), e.bad_debt()), (0, 0));
    let t = e.totals();
    assert_eq!(value(&t), before);
    assert_eq!((t.long_lots, t.short_lots), (0, 0));
    assert!(e.liquidate_account(1, false, false).is_err(), "no cross position left");
}

#[test]
fn a_healthy_cross_account_is_refused_unless_forced() {
    // Wallet 175: TNC = 75 < TMMR = 150 is liquidatable; wallet 300: TNC = 200 is not.
    let rows = [(1, X, LONG, 10.0, 100.0, 0.0, true), (1, Y, SHORT, 5.0, 200.0, 0.0, true), (2, X, SHORT, 10.0, 100.0, 100.0, false)];
    let mut e = engine(Policy::Bitmex, &rows, &[(1, 300.0)], None).unwrap();
    let err =
        e.liquidate(Request { account: 1, market: X, side: LONG, fill_price: None, force: false, partial: false }, false).unwrap_err();
    assert!(matches!(err, AdlError::NotLiquidatable { equity, maintenance, .. } if equity == 200.0 && maintenance == 150.0), "{err}");
    assert!(e.liquidate_account(1, false, false).is_err());
    // Liquidatable but solvent: shares X 75·90/150 = 45, Y 30. At the marks the book pays
    // more than the bankruptcy prices, so both close there and 45 + 30 goes to the fund.
    let mut e = engine(Policy::Bitmex, &rows, &[(1, 175.0)], None).unwrap();
    let before = value(&e.totals());
    let out = e.liquidate_account(1, false, false).unwrap();
    assert_eq!(out.iter().map(|l| l.to_fund).collect::<Vec<_>>(), vec![cents(45.0), cents(30.0)]);
    assert!(out.iter().all(|l| l.fills.len() == 1 && l.fills[0].kind == FillKind::External));
    assert_eq!((e.cash_of(1), e.fund()), (0, cents(75.0)));
    assert_eq!(value(&e.totals()), before);
}

/// Shorts of X that can take an ADL: #5 cross (short 10 X @100 and long 10 Y @200, wallet
/// 110), #6 isolated short 10 X @100 m50. #5: u_X = 100, N_X = 900, MM_X = 90; Y: u = 0,
/// N = 2,000, MM = 120. TNC = 210 = TMMR (not liquidatable); X's share 210·90/210 = 90.
/// #7, the bankrupt one: isolated long 10 X @100 m50 (e = −50, P_bk = 95).
fn queue_rows() -> Vec<Row> {
    vec![
        (5, X, SHORT, 10.0, 100.0, 0.0, true),
        (5, Y, LONG, 10.0, 200.0, 0.0, true),
        (6, X, SHORT, 10.0, 100.0, 50.0, false),
        (7, X, LONG, 10.0, 100.0, 50.0, false),
    ]
}

fn short_queue(e: &mut Engine) -> Vec<(u64, f64)> {
    let idx = e.ranking(X, SHORT).unwrap();
    let q: Vec<(usize, u32)> = idx.queue().collect();
    q.into_iter().map(|(pos, slot)| (e.store().get(slot).account, e.market(X).current_index(SHORT).unwrap().score_at(pos))).collect()
}

#[test]
fn cross_scores_use_account_values() {
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12 * b.abs().max(1.0);
    // bitmex: pnl% = 0.1 for both. #5: ℓ = N/TNC_X = 900/90 = 10 → 1.0; #6: ℓ = 900/150 = 6 → 0.6.
    let mut e = engine(Policy::Bitmex, &queue_rows(), &[(5, 110.0)], None).unwrap();
    let q = short_queue(&mut e);
    assert_eq!(q.iter().map(|r| r.0).collect::<Vec<_>>(), vec![5, 6]);
    assert!(close(q[0].1, 1.0) && close(q[1].1, 0.6), "{q:?}");
    // binance, account level for #5: Σu⁺/W · TMMR/TNC = 100/110 · 210/210 = 0.909…;
    // #6 isolated: 100/50 · 90/150 = 1.2.
    let mut e = engine(Policy::Binance, &queue_rows(), &[(5, 110.0)], None).unwrap();
    let q = short_queue(&mut e);
    assert_eq!(q.iter().map(|r| r.0).collect::<Vec<_>>(), vec![6, 5]);
    assert!(close(q[0].1, 1.2) && close(q[1].1, 100.0 / 110.0), "{q:?}");
    // hyperliquid (E/P)·(N/account value): #6 (10/9)·(900/150) = 6.67, #5 (10/9)·(900/210) = 4.76.
    let mut e = engine(Policy::Hyperliquid, &queue_rows(), &[(5, 110.0)], None).unwrap();
    let q = short_queue(&mut e);
    assert!(close(q[0].1, 100.0 / 90.0 * 6.0) && close(q[1].1, 100.0 / 90.0 * 900.0 / 210.0), "{q:?}");
    // min_max_leverage, account leverage: #5 ΣN/TNC = 2,900/210 = 13.8 before #6's 900/150 = 6.
    let mut e = engine(Policy::MinMaxLeverage, &queue_rows(), &[(5, 110.0)], None).unwrap();
    let q = short_queue(&mut e);
    assert_eq!(q.iter().map(|r| r.0).collect::<Vec<_>>(), vec![5, 6]);
    assert!(close(q[0].1, 2900.0 / 210.0), "{q:?}");
}

#[test]
fn a_cross_counterparty_is_paid_into_its_wallet_and_rescored() {
    let mut e = engine(Policy::Bitmex, &queue_rows(), &[(5, 110.0)], None).unwrap();
    let before = value(&e.totals());
    let r = e.liquidate(Request { account: 7, market: X, side: LONG, fill_price: None, force: false, partial: false }, false).unwrap();
    // 10 lots at 95 against #5 (first): no margin of its own, PnL 10·(100 − 95) = 50 to the wallet.
    assert_eq!(r.fills.iter().map(|f| (f.account, f.lots)).collect::<Vec<_>>(), vec![(Some(5), 10)]);
    assert_eq!(e.cash_of(5), cents(160.0));
    assert_eq!(value(&e.totals()), before);
    // #5 keeps long 10 Y: TNC = 160 ≥ TMMR = 120, so nothing of it is liquidatable; on Y's
    // long queue its score is 0/ℓ = 0 with ℓ = 2,000/160.
    assert!(e.liquidatable().is_empty());
    let idx = e.ranking(Y, LONG).unwrap();
    assert_eq!(idx.len(), 1);
    assert_eq!(idx.score_at(idx.queue().next().unwrap().0), 0.0);
}

#[test]
fn custom_scores_order_the_engine_queue_and_bankrupt_positions_stay_out() {
    // Shorts of X at mark 90, custom scores 1, 3, 2 and 9 for a bankrupt one (short 10 @80 m50:
    // e = 50 − 100 = −50). Queue: #12 (3), #13 (2), #11 (1).
    let rows = [
        (11, X, SHORT, 10.0, 100.0, 50.0, false),
        (12, X, SHORT, 10.0, 100.0, 50.0, false),
        (13, X, SHORT, 10.0, 100.0, 50.0, false),
        (14, X, SHORT, 10.0, 80.0, 50.0, false),
        (15, X, LONG, 25.0, 100.0, 100.0, false),
    ];
    let scores = [1.0, 3.0, 2.0, 9.0, 0.0];
    let mut e = engine(Policy::Custom, &rows, &[], Some(&scores)).unwrap();
    assert_eq!(short_queue(&mut e), vec![(12, 3.0), (13, 2.0), (11, 1.0)]);
    // Long 25 @100 m100 at 90: e = −150, P_bk = 96. ADL 10 + 10 + 5 in that order.
    let r = e.liquidate(Request { account: 15, market: X, side: LONG, fill_price: None, force: false, partial: false }, false).unwrap();
    assert_eq!(
        r.fills.iter().map(|f| (f.account.unwrap(), f.lots, f.score.unwrap())).collect::<Vec<_>>(),
        vec![(12, 10, 3.0), (13, 10, 2.0), (11, 5, 1.0)]
    );
    // The caller's scores are required under `custom` and refused otherwise.
    assert!(matches!(engine(Policy::Custom, &rows, &[], None), Err(AdlError::InvalidParameter { ref field, .. }) if field == "score"));
    assert!(
        matches!(engine(Policy::Bitmex, &rows, &[], Some(&scores)), Err(AdlError::InvalidParameter { ref field, .. }) if field == "score")
    );
    let bad = [1.0, f64::NAN, 2.0, 9.0, 0.0];
    assert!(
        matches!(engine(Policy::Custom, &rows, &[], Some(&bad)), Err(AdlError::InvalidValue { ref field, row: 1, .. }) if field == "score")
    );
}

#[test]
fn a_cross_row_with_its_own_margin_is_rejected() {
    let rows = [(1, X, LONG, 10.0, 100.0, 0.0, true), (1, Y, SHORT, 5.0, 200.0, 20.0, true)];
    let err = engine(Policy::Bitmex, &rows, &[(1, 50.0)], None).err().unwrap();
    assert!(matches!(err, AdlError::InvalidValue { ref field, row: 1, .. } if field == "margin"), "{err}");
}

#[test]
fn an_isolated_credit_refreshes_the_wallet_of_cross_positions() {
    // #5 is cross (short 10 X @100 with wallet 110) and also isolated short 5 Y @210 m50.
    // #7 bankrupt long 10 Y @205 m20 at mark 200: ADL at P_bk = 203 against #5's Y short,
    // credit 50 + 5·(210 − 203) = 85 and then the rest (5 lots) is bad debt. The credit is
    // in #5's wallet, so its cross totals must show it at once.
    let rows = [(5, X, SHORT, 10.0, 100.0, 0.0, true), (5, Y, SHORT, 5.0, 210.0, 50.0, false), (7, Y, LONG, 10.0, 205.0, 20.0, false)];
    let mut e = engine(Policy::Bitmex, &rows, &[(5, 110.0)], None).unwrap();
    let x = e.store().find(&(5, X, SHORT)).unwrap();
    let before = e.health(x).unwrap().0;
    e.liquidate(Request { account: 7, market: Y, side: LONG, fill_price: None, force: false, partial: false }, false).unwrap();
    assert_eq!(e.cash_of(5), cents(110.0 + 85.0));
    // X's share of TNC is the whole TNC now (the Y position is isolated): 195 + 100 = 295.
    assert_eq!(e.health(x).unwrap().0, cents(295.0));
    assert!(e.health(x).unwrap().0 > before);
}
