//! Hand-computed venue-realism cases (docs/model.md §7): liquidation fees under both
//! conventions, ADL fees, tiered maintenance, contract multipliers and partial liquidation.
//! Whole lots and whole-quote ticks; cash in cents unless stated, so every number in the
//! comments is exact.

#[path = "common.rs"]
mod common;

use _adl::core::{Engine, FeeConvention, FillKind, Liquidation, MarketSpec, Policy, Request, Side};
use _adl::core::{TierSpec, Tiers};
use common::{columns, Row};

const LONG: Side = Side::Long;
const SHORT: Side = Side::Short;

fn engine(spec: MarketSpec, cash_decimals: u32, fund: f64, rows: &[Row], mark: f64) -> Engine {
    let mut e = Engine::new(Policy::Bitmex, fund, cash_decimals, spec.clone()).unwrap();
    e.add_market("X", spec).unwrap();
    e.load(columns(rows).view(), &["X".to_string()], None, None).unwrap();
    e.set_marks(&[("X".to_string(), mark)], Some(1)).unwrap();
    e
}

fn liquidate(e: &mut Engine, account: u64, side: Side, fill: Option<f64>, partial: bool) -> Liquidation {
    let before = e.totals().value();
    let req = Request { account, market: 0, side, fill_price: fill, force: true, partial };
    let l = e.liquidate(req, false).unwrap();
    // docs/model.md §2 conservation at fixed marks, fees included.
    assert_eq!(e.totals().value(), before);
    l
}

fn slot(e: &Engine, account: u64, side: Side) -> u32 {
    e.store().find(&(account, 0, side)).unwrap()
}

/// Long 10 @ 100 with margin 100 (bankrupt at 90); a short counterparty 10 @ 100, margin 1,000.
const BOOK: [Row; 2] = [(1, 0, LONG, 10.0, 100.0, 100.0, false), (2, 0, SHORT, 10.0, 100.0, 1_000.0, false)];

#[test]
fn surplus_fee_to_fund_and_rest_to_trader() {
    // Mark 94: e = 100 − 60 = 40 < MM ceil(0.05·940) = 47. The book fills at 94: the surplus is
    // 40 and the 1 % fee on N_F = 940 is 9.40; the trader gets back 30.60.
    let spec = MarketSpec { liquidation_fee: 0.01, surplus_to_fund: false, ..MarketSpec::linear(0, 0, 0.05) };
    let mut e = engine(spec.clone(), 2, 0.0, &BOOK, 94.0);
    let l = liquidate(&mut e, 1, LONG, None, false);
    assert_eq!((l.fee, l.to_fund, l.returned), (940, 940, 3_060));
    assert_eq!(e.cash_of(1), 3_060);
    // The venue keeps the surplus (BitMEX): all 40 to the fund, of which 9.40 is the fee.
    let mut e = engine(MarketSpec { surplus_to_fund: true, ..spec.clone() }, 2, 0.0, &BOOK, 94.0);
    let l = liquidate(&mut e, 1, LONG, None, false);
    assert_eq!((l.fee, l.to_fund, l.returned), (940, 4_000, 0));
    // A 5 % fee (47) is capped at the surplus (40); nothing is left to return.
    let mut e = engine(MarketSpec { liquidation_fee: 0.05, ..spec }, 2, 0.0, &BOOK, 94.0);
    let l = liquidate(&mut e, 1, LONG, None, false);
    assert_eq!((l.fee, l.to_fund, l.returned), (4_000, 4_000, 0));
}

#[test]
fn fee_in_the_bankruptcy_price() {
    // Fee 1 %, included in the bankruptcy price: reserved fee ceil(0.01·(1,000 − 100)/0.99)
    // = ceil(9.0909) = 9.10, so P_bk = 100 − (100 − 9.10)/10 = 90.91 (the formula
    // (q·E − M)/(q·(1 − r)) = 900/9.9 = 90.909 rounded up to the cent in the fund's favour).
    let spec = MarketSpec { liquidation_fee: 0.01, fee_convention: FeeConvention::Bankruptcy, ..MarketSpec::linear(0, 0, 0.05) };
    let mut e = engine(spec, 2, 0.0, &BOOK, 90.0);
    let (bk, _) = e.prices(slot(&e, 1, LONG)).unwrap();
    assert!((bk - 90.91).abs() < 1e-9, "{bk}");
    // Mark 90, empty fund: all 10 lots are deleveraged at 90.91. The counterparty gains
    // 10·(100 − 90.91) = 90.90 plus its released margin 1,000; the fund gets the fee 9.10 and
    // the bankrupt account ends at 0.
    let l = liquidate(&mut e, 1, LONG, None, false);
    assert_eq!((l.fee, l.to_fund, l.from_fund, l.bad_debt, l.adl_lots), (910, 910, 0, 0, 10));
    let adl = l.fills.iter().find(|f| f.kind == FillKind::Adl).unwrap();
    assert!((adl.price - 90.91).abs() < 1e-9);
    assert_eq!(e.cash_of(2), 109_090);
    assert_eq!(e.cash_of(1), 0);
    assert_eq!(e.fund(), 910);
}

#[test]
fn maintenance_includes_the_fee_to_close_under_the_bankruptcy_convention() {
    // Bybit: maintenance = MM by tier + the estimated fee to close at the bankruptcy price, so
    // a position is liquidatable no later than bankrupt. Long 10 @ 100, margin 100, MMR 0.5 %,
    // fee 1 %: fee to close ceil(0.01·(1,000 − 100)/0.99) = ceil(9.0909) = 9.10, so
    // P_bk = (1,000 − 100)/(10·0.99) = 90.909 → 90.91.
    let spec = MarketSpec { liquidation_fee: 0.01, fee_convention: FeeConvention::Bankruptcy, ..MarketSpec::linear(0, 1, 0.005) };
    let mut e = engine(spec.clone(), 2, 0.0, &BOOK, 90.9);
    let s = slot(&e, 1, LONG);
    // Mark 90.9 is below P_bk: e = 100 − 10·9.1 = 9.00 <= fee 9.10. MM by tier alone is
    // ceil(0.005·909) = 4.55 <= 9.00 (not liquidatable: the defect); with the fee 4.55 + 9.10
    // = 13.65 > 9.00.
    assert_eq!(e.health(s).unwrap(), (900, 455 + 910));
    assert_eq!(e.liquidatable(), vec![s]);
    // Liquidation price: the margin less the fee, (1,000 − 90.90)/(10·0.995) = 91.3668 (above
    // P_bk = 90.91; without the fee it would be 900/9.95 = 90.452, below P_bk).
    let (bk, liq) = e.prices(s).unwrap();
    assert!((bk - 909.1).abs() < 1e-9 && (liq - 913.668_341_708_5).abs() < 1e-6, "{bk} {liq}");
    // At mark 91.4 (above the liquidation price): e = 14.00 >= 4.57 + 9.10 = 13.67.
    e.set_marks(&[("X".to_string(), 91.4)], Some(2)).unwrap();
    assert_eq!(e.health(s).unwrap(), (1_400, 457 + 910));
    assert!(e.liquidatable().is_empty());
    // The surplus convention keeps maintenance by tier only: 900/9.95 = 90.452.
    let e = engine(MarketSpec { fee_convention: FeeConvention::Surplus, ..spec }, 2, 0.0, &BOOK, 90.9);
    let s = slot(&e, 1, LONG);
    assert_eq!(e.health(s).unwrap(), (900, 455));
    assert!((e.prices(s).unwrap().1 - 904.522_613_065_3).abs() < 1e-6);
}

#[test]
fn adl_fee_is_charged_to_the_counterparty() {
    // No liquidation fee; ADL fee 0.1 % (Bybit's taker fee, say). Mark 89, bankruptcy 90: the
    // counterparty closes 10 lots at 90, notional 900, fee 0.90. It gets 1,000 + 100 − 0.90.
    let spec = MarketSpec { adl_fee: 0.001, ..MarketSpec::linear(0, 0, 0.05) };
    let mut e = engine(spec, 2, 0.0, &BOOK, 89.0);
    let l = liquidate(&mut e, 1, LONG, None, false);
    assert_eq!((l.adl_fees, l.adl_lots), (90, 10));
    assert_eq!(e.cash_of(2), 109_910);
    assert_eq!(e.totals().fees, 90);
}

/// Binance BTCUSDT's first brackets: 0.4 % to 50k, 0.5 % (amount 50) to 500k, then 1 %.
fn binance_tiers() -> Vec<TierSpec> {
    vec![
        TierSpec { floor: 0.0, rate: 0.004, amount: None },
        TierSpec { floor: 50_000.0, rate: 0.005, amount: Some(50.0) },
        TierSpec { floor: 500_000.0, rate: 0.01, amount: None },
    ]
}

#[test]
fn tiered_maintenance_liquidation_price_and_health() {
    let spec = MarketSpec { tiers: binance_tiers(), ..MarketSpec::linear(0, 0, 0.005) };
    // Long 2 @ 50,000 with margin 5,000: N = 95,400 at 47,700 is in the second tier.
    let rows = [(1, 0, LONG, 2.0, 50_000.0, 5_000.0, false), (2, 0, SHORT, 2.0, 50_000.0, 20_000.0, false)];
    let mut e = engine(spec, 2, 0.0, &rows, 47_700.0);
    // Liquidation price (2·50,000 − 5,000 − 50)/(2·(1 − 0.005)) = 94,950/1.99 = 47,713.57.
    let (_, liq) = e.prices(slot(&e, 1, LONG)).unwrap();
    assert!((liq - 94_950.0 / 1.99).abs() < 1e-6, "{liq}");
    // At 47,700: e = 5,000 − 4,600 = 400 < MM = 0.005·95,400 − 50 = 427.
    assert_eq!(e.health(slot(&e, 1, LONG)).unwrap(), (40_000, 42_700));
    assert_eq!(e.liquidatable(), vec![slot(&e, 1, LONG)]);
    // At 47,720: e = 440 >= MM = 477.20 − 50 = 427.20.
    e.set_marks(&[("X".to_string(), 47_720.0)], Some(2)).unwrap();
    assert!(e.liquidatable().is_empty());
}

#[test]
fn tiered_maintenance_in_the_binance_score() {
    let g = _adl::core::Grid::new(0, 0, 2).unwrap();
    let tiers = Tiers::new(0.0, &binance_tiers(), &_adl::core::Grid::cash_only(2).unwrap()).unwrap();
    // Short 2 @ 50,000, margin 10,000, mark 47,700: u = 4,600, e = 14,600, N = 95,400 and
    // MM = 427 (second tier; a flat 0.5 % would say 477). Score u·MM/(W·e) = 4,600·427/(10,000·14,600).
    let s = Policy::Binance.score(&g, &tiers, SHORT, 2, 50_000, 1_000_000, 47_700).unwrap();
    assert!((s - 4_600.0 * 427.0 / (10_000.0 * 14_600.0)).abs() < 1e-15, "{s}");
    let flat = Policy::Binance.score(&g, &Tiers::flat(5_000), SHORT, 2, 50_000, 1_000_000, 47_700).unwrap();
    assert!((flat - 4_600.0 * 477.0 / (10_000.0 * 14_600.0)).abs() < 1e-15, "{flat}");
}

#[test]
fn multiplier_contracts() {
    // 1,000 contracts of 0.001 BTC (1 BTC) long @ 60,000.0 with margin 6,000; prices in
    // tenths, cash in 1e-4 quote (0 + 1 + 3 decimals: lot·tick·multiplier = 1e-4 quote).
    let spec = MarketSpec { multiplier: 0.001, ..MarketSpec::linear(0, 1, 0.005) };
    let rows = [(1, 0, LONG, 1_000.0, 60_000.0, 6_000.0, false), (2, 0, SHORT, 1_000.0, 60_000.0, 20_000.0, false)];
    let mut e = engine(spec, 4, 0.0, &rows, 54_500.0);
    // Bankruptcy 60,000 − 6,000/1 = 54,000; liquidation (60,000 − 6,000)/0.995 = 54,271.36.
    let (bk, liq) = e.prices(slot(&e, 1, LONG)).map(|(b, l)| (b / 10.0, l / 10.0)).unwrap(); // ticks of 0.1
    assert!((bk - 54_000.0).abs() < 1e-9 && (liq - 54_000.0 / 0.995).abs() < 1e-6, "{bk} {liq}");
    // At 54,500: u = 1·(54,500 − 60,000) = −5,500, e = 500, MM = 0.005·54,500 = 272.50.
    assert_eq!(e.health(slot(&e, 1, LONG)).unwrap(), (5_000_000, 2_725_000));
    // At 53,900 the book fills at the mark, 100 below bankruptcy: the deficit 1·100 = 100 is
    // deleveraged: the short gains 1·(60,000 − 54,000) = 6,000 on top of its margin.
    e.set_marks(&[("X".to_string(), 53_900.0)], Some(2)).unwrap();
    let l = liquidate(&mut e, 1, LONG, None, false);
    assert_eq!(l.adl_lots, 1_000);
    assert_eq!(e.cash_of(2), 260_000_000);
}

#[test]
fn partial_liquidation_closes_the_fewest_lots() {
    // Long 100 @ 100, margin 600, mmr 5 %, mark 95: e = 100 < MM = 475. Closing 79 at the
    // mark keeps e = 100 and leaves MM = ceil(0.05·95·21) = 100; the margin drops by the
    // realised loss 5·79 to 205. Cash in whole quote units.
    let rows = [(1, 0, LONG, 100.0, 100.0, 600.0, false), (2, 0, SHORT, 100.0, 100.0, 10_000.0, false)];
    let mut e = engine(MarketSpec::linear(0, 0, 0.05), 0, 0.0, &rows, 95.0);
    let l = liquidate(&mut e, 1, LONG, None, true);
    assert_eq!((l.external_lots, l.remaining_lots, l.adl_lots, l.to_fund), (79, 21, 0, 0));
    let p = e.store().get(slot(&e, 1, LONG));
    assert_eq!((p.qty, p.margin), (21, 205));
    assert!(e.liquidatable().is_empty());
    // With a 1 % liquidation fee the fee must fit too: 99 lots (fee ceil(94.05) = 95, margin
    // left 600 − 495 − 95 = 10 = MM of the last lot).
    let spec = MarketSpec { liquidation_fee: 0.01, ..MarketSpec::linear(0, 0, 0.05) };
    let mut e = engine(spec, 0, 0.0, &rows, 95.0);
    let l = liquidate(&mut e, 1, LONG, None, true);
    assert_eq!((l.external_lots, l.remaining_lots, l.fee, l.to_fund), (99, 1, 95, 95));
    assert_eq!({ e.store().get(slot(&e, 1, LONG)).margin }, 10);
    // A bankrupt position (e <= 0) cannot be saved by a partial close: the whole waterfall runs.
    let mut e = engine(MarketSpec::linear(0, 0, 0.05), 0, 0.0, &rows, 80.0);
    let l = liquidate(&mut e, 1, LONG, None, true);
    assert_eq!((l.remaining_lots, l.adl_lots), (0, 100));
}

#[test]
fn partial_liquidation_down_to_a_lower_tier() {
    // 1 % to 5,000 notional, 10 % above. Long 100 @ 100, margin 600, mark 98: e = 400 < MM =
    // 980 − 450 = 530. Closing 14 leaves N = 8,428 and MM = ceil(842.8) − 450 = 393 <= 400
    // (13 would leave MM 403).
    let tiers = vec![TierSpec { floor: 0.0, rate: 0.01, amount: None }, TierSpec { floor: 5_000.0, rate: 0.10, amount: None }];
    let spec = MarketSpec { tiers, ..MarketSpec::linear(0, 0, 0.01) };
    let rows = [(1, 0, LONG, 100.0, 100.0, 600.0, false), (2, 0, SHORT, 100.0, 100.0, 10_000.0, false)];
    let mut e = engine(spec, 0, 0.0, &rows, 98.0);
    let l = liquidate(&mut e, 1, LONG, None, true);
    assert_eq!((l.external_lots, l.remaining_lots), (14, 86));
    assert_eq!(e.health(slot(&e, 1, LONG)).unwrap(), (400, 393));
}

/// Markets X and Y with their fund pools; in each a long 10 @ 100 with margin 100 (bankrupt
/// at 90) and a short counterparty; marks 89, so each liquidation at the mark has a deficit
/// of 1 per lot.
fn pooled(x_pool: &str, y_pool: &str) -> Engine {
    let spec = MarketSpec::linear(0, 0, 0.05);
    let mut e = Engine::new(Policy::Bitmex, 0.0, 2, spec.clone()).unwrap();
    e.add_market("X", MarketSpec { fund_pool: x_pool.to_string(), ..spec.clone() }).unwrap();
    e.add_market("Y", MarketSpec { fund_pool: y_pool.to_string(), ..spec }).unwrap();
    let rows = [
        (1, 0, LONG, 10.0, 100.0, 100.0, false),
        (2, 0, SHORT, 10.0, 100.0, 1_000.0, false),
        (3, 1, LONG, 10.0, 100.0, 100.0, false),
        (4, 1, SHORT, 10.0, 100.0, 1_000.0, false),
    ];
    e.load(columns(&rows).view(), &["X".to_string(), "Y".to_string()], None, None).unwrap();
    e.set_marks(&[("X".to_string(), 89.0), ("Y".to_string(), 89.0)], Some(7)).unwrap();
    e
}

fn liquidate_in(e: &mut Engine, account: u64, market: u32) -> Liquidation {
    let before = e.totals().value();
    let l = e.liquidate(Request { account, market, side: LONG, fill_price: None, force: false, partial: false }, false).unwrap();
    assert_eq!(e.totals().value(), before);
    l
}

#[test]
fn each_pool_covers_only_its_own_markets() {
    use _adl::core::Change;
    // X has its own pool of 100; Y draws on the empty default pool.
    let mut e = pooled("X", "");
    e.set_fund(100.0, "X").unwrap();
    let x = liquidate_in(&mut e, 1, 0);
    assert_eq!((x.from_fund, x.external_lots, x.adl_lots), (1_000, 10, 0));
    let y = liquidate_in(&mut e, 3, 1);
    assert_eq!((y.from_fund, y.adl_lots), (0, 10));
    let pools: Vec<(&str, i128)> = e.funds().pools().iter().map(|p| (p.name.as_str(), p.balance)).collect();
    assert_eq!(pools, vec![("default", 0), ("X", 9_000)]);
    // History: the caller's set, then one record per liquidation with the balance after it.
    let h: Vec<(u32, Change, Option<u64>, i128)> = e.funds().history().iter().map(|r| (r.pool, r.change, r.event, r.balance)).collect();
    assert_eq!(h, vec![(1, Change::Set, None, 10_000), (1, Change::Liquidation, Some(0), 9_000), (0, Change::Liquidation, Some(1), 0)]);
    assert!(e.funds().history().iter().all(|r| r.ts == Some(7)));
}

#[test]
fn a_shared_pool_is_drawn_down_by_every_market_in_it() {
    // Both markets share pool "S" holding 15: X takes 10, Y then gets 5 lots covered and
    // deleverages the other 5.
    let mut e = pooled("S", "S");
    e.set_fund(15.0, "S").unwrap();
    liquidate_in(&mut e, 1, 0);
    let y = liquidate_in(&mut e, 3, 1);
    assert_eq!((y.from_fund, y.external_lots, y.adl_lots), (500, 5, 5));
    assert_eq!(e.fund(), 0);
    // The pools and their history survive a snapshot.
    let copy = Engine::restore(&e.snapshot()).unwrap();
    assert_eq!(copy.funds().history(), e.funds().history());
    assert_eq!(copy.market(1).pool, e.market(1).pool);
}

#[test]
fn each_pool_has_its_own_trigger() {
    use _adl::core::Trigger;
    // Fund-drop triggers (arm below 70 % of the peak): pool X falls to 60 % and is bypassed,
    // the default pool (untouched) still pays.
    let mut e = pooled("X", "");
    e.set_trigger(Trigger::FundDrop { arm: 0.7, disarm: 0.9 });
    e.set_fund(100.0, "X").unwrap();
    e.set_fund(100.0, "default").unwrap();
    e.set_fund(60.0, "X").unwrap();
    let x = liquidate_in(&mut e, 1, 0);
    assert_eq!((x.from_fund, x.adl_lots), (0, 10));
    let y = liquidate_in(&mut e, 3, 1);
    assert_eq!((y.from_fund, y.adl_lots), (1_000, 0));
}

#[test]
fn preview_finds_the_mark_that_starts_deleveraging() {
    // Prices in tenths, cash in thousandths; mark 100, empty fund, mmr 5 %.
    // Shorts: A 10 @ 100 margin 100 (bankrupt at 110), B 10 @ 100 margin 200 (bankrupt at 120).
    // Longs: L2 10 @ 90 margin 100 ranks first (at 111: pnl% 21/90, leverage 1,110/310:
    // score 0.84), L1 10 @ 100 margin 1,000 second (0.11·1,110/1,110 = 0.11).
    let rows = [
        (1, 0, SHORT, 10.0, 100.0, 100.0, false),
        (2, 0, SHORT, 10.0, 100.0, 200.0, false),
        (11, 0, LONG, 10.0, 100.0, 1_000.0, false),
        (12, 0, LONG, 10.0, 90.0, 100.0, false),
    ];
    let mut e = engine(MarketSpec::linear(0, 1, 0.05), 3, 0.0, &rows, 100.0);
    let before = e.snapshot();
    // A gap to 110 closes A at its bankruptcy price (no deficit); any mark above deleverages
    // its 10 lots, all against L2. B's 10 more lots reach L1 only above 120. On the 1 % grid:
    // L2 at 111, L1 at 121 (ticks of 0.1).
    let mut got = e.adl_marks(0, LONG, 0.01, 0.5, None).unwrap();
    got.sort();
    let (l1, l2) = (slot(&e, 11, LONG), slot(&e, 12, LONG));
    let mut want = vec![(l1, Some(1_210)), (l2, Some(1_110))];
    want.sort();
    assert_eq!(got, want);
    // Narrowed for one position: the first tick above 110.
    assert_eq!(e.adl_marks(0, LONG, 0.01, 0.5, Some(l2)).unwrap(), vec![(l2, Some(1_101))]);
    // Shorts: L2 is bankrupt below 80 (L1 only at 0), so on the grid at 79 its 10 lots go to
    // the first short: A (pnl% 0.21, leverage 790/310) before B (790/410). B is never reached.
    let mut shorts = e.adl_marks(0, SHORT, 0.01, 0.5, None).unwrap();
    shorts.sort();
    let mut want = vec![(slot(&e, 1, SHORT), Some(790)), (slot(&e, 2, SHORT), None)];
    want.sort();
    assert_eq!(shorts, want);
    // Nothing observable changed.
    assert_eq!(e.snapshot(), before);
}

/// A preview after a liquidation (a fill log, moved ledgers), on a book with cross accounts
/// whose trials deleverage: the gap's copies leave the engine as it was, byte for byte.
#[test]
fn preview_changes_nothing_observable() {
    // X and Y marked 100 (tenths; cash in thousandths), empty fund, mmr 5 %. Long 20 (5 @ 110,
    // margin 20) is bankrupt at 106 and is liquidated first: its 5 lots are deleveraged.
    // Cross 5 (wallet 150) is short 10 in X and long 5 in Y: shorts' losses in a gap
    // reach its wallet, and its Y long is liquidated with it.
    let rows: [Row; 7] = [
        (1, 0, SHORT, 10.0, 100.0, 100.0, false),
        (2, 0, SHORT, 10.0, 100.0, 200.0, false),
        (5, 0, SHORT, 10.0, 100.0, 0.0, true),
        (5, 1, LONG, 5.0, 100.0, 0.0, true),
        (6, 1, SHORT, 5.0, 100.0, 500.0, false),
        (11, 0, LONG, 10.0, 100.0, 1_000.0, false),
        (12, 0, LONG, 10.0, 90.0, 100.0, false),
    ];
    let mut rows = rows.to_vec();
    rows.push((20, 0, LONG, 5.0, 110.0, 20.0, false));
    let spec = MarketSpec::linear(0, 1, 0.05);
    let mut e = Engine::new(Policy::Bitmex, 0.0, 3, spec.clone()).unwrap();
    e.add_market("X", spec.clone()).unwrap();
    e.add_market("Y", spec).unwrap();
    e.load(columns(&rows).view(), &["X".to_string(), "Y".to_string()], Some((&[5], &[150.0])), None).unwrap();
    e.set_marks(&[("X".to_string(), 100.0), ("Y".to_string(), 100.0)], Some(1)).unwrap();
    let first = liquidate(&mut e, 20, LONG, None, false);
    assert_eq!(first.adl_lots, 5);
    assert!(e.liquidatable().is_empty());
    let fills = |e: &Engine| e.events().iter().cloned().collect::<Vec<_>>();
    let before = (e.snapshot(), e.totals(), fills(&e), e.next_event());
    assert!(!before.2.is_empty());
    let mut found = vec![];
    for side in [LONG, SHORT] {
        let fast = e.adl_marks(0, side, 0.01, 0.5, None).unwrap();
        assert_eq!(fast, e.adl_marks_brute(0, side, 0.01, 0.5, None).unwrap(), "{side:?}");
        for &(slot, _) in &fast {
            let one = e.adl_marks(0, side, 0.01, 0.5, Some(slot)).unwrap();
            assert_eq!(one, e.adl_marks_brute(0, side, 0.01, 0.5, Some(slot)).unwrap(), "{side:?} {slot}");
        }
        found.extend(fast);
    }
    // Trials deleveraged someone (the comparison above is not between two empty answers).
    assert!(found.iter().any(|f| f.1.is_some()), "{found:?}");
    assert!(before.0 == e.snapshot(), "the snapshot changed");
    assert_eq!((before.1, before.2, before.3), (e.totals(), fills(&e), e.next_event()));
}

/// XBTUSD-like inverse market: a contract is 1 USD (multiplier 1), worth 1/P BTC; cash in
/// satoshis (8 decimals) and reciprocal prices on a 1e-8 grid, so 1/50,000 = 2,000 ticks.
fn inverse_spec(multiplier: f64) -> MarketSpec {
    MarketSpec { inverse: true, multiplier, ..MarketSpec::linear(0, 8, 0.005) }
}

#[test]
fn inverse_contract_prices_pnl_and_adl() {
    // Long 10,000 contracts @ 50,000 (0.2 BTC) with margin 0.02 BTC; a short the same size
    // with margin 0.1 BTC. All amounts in satoshis below.
    let rows = [(1, 0, LONG, 10_000.0, 50_000.0, 0.02, false), (2, 0, SHORT, 10_000.0, 50_000.0, 0.1, false)];
    let mut e = engine(inverse_spec(1.0), 8, 0.0, &rows, 40_000.0);
    let long = slot(&e, 1, LONG);
    // Bankruptcy 1/P = 1/E + M/q = 2e-5 + 2e-6: P = 45,454.5454…; liquidation (BitMEX)
    // M + q(1/E − 1/P) = mmr·q/P: P = 10,050/0.22 = 45,681.8181….
    let (bk, liq) = e.prices(long).map(|(b, l)| (e.market(0).grid.price_f64(b), e.market(0).grid.price_f64(l))).unwrap();
    assert!((bk - 1e5 / 2.2).abs() < 1e-6 && (liq - 10_050.0 / 0.22).abs() < 1e-6, "{bk} {liq}");
    // At 40,000: PnL q(1/E − 1/P) = 10,000·(2e-5 − 2.5e-5) = −0.05 BTC; equity −0.03 BTC;
    // maintenance 0.5 % of q/P = 0.25 BTC.
    assert_eq!(e.health(long).unwrap(), (-3_000_000, 125_000));
    // The short's BitMEX score: PnL % q(1/P − 1/E)/(q/E) = 25 %, leverage N/e = 0.25/0.15
    // (equity 0.1 + 0.05 BTC): score 0.25·5/3.
    let idx = e.ranking(0, SHORT).unwrap();
    let score = idx.score_at(idx.queue().next().unwrap().0);
    assert!((score - 0.25 * 25.0 / 15.0).abs() < 1e-12, "{score}");
    // Empty fund, fill at the mark: all 10,000 contracts are deleveraged at the bankruptcy
    // price. The short gains q(1/P_bk − 1/E) = 0.02 BTC, plus its margin back.
    let l = liquidate(&mut e, 1, LONG, None, false);
    assert_eq!(l.adl_lots, 10_000);
    let adl = l.fills.iter().find(|f| f.kind == FillKind::Adl).unwrap();
    assert!((adl.price - 1e5 / 2.2).abs() < 1e-6, "{}", adl.price);
    assert_eq!(e.cash_of(2), 12_000_000);
    assert_eq!(e.cash_of(1), 0);
}

#[test]
fn inverse_multiplier_and_unreachable_prices() {
    // 100 contracts of 100 USD are the same 10,000 USD: the same equity and maintenance.
    let rows = [(1, 0, LONG, 100.0, 50_000.0, 0.02, false), (2, 0, SHORT, 100.0, 50_000.0, 0.5, false)];
    let e = engine(inverse_spec(100.0), 8, 0.0, &rows, 40_000.0);
    assert_eq!(e.health(slot(&e, 1, LONG)).unwrap(), (-3_000_000, 125_000));
    // A short with 0.5 BTC of margin can lose at most q/E = 0.2 BTC however high the price:
    // its bankruptcy price is infinite.
    let (bk, _) = e.prices(slot(&e, 2, SHORT)).unwrap();
    assert_eq!(e.market(0).grid.price_f64(bk), f64::INFINITY);
}

#[test]
fn partial_liquidation_of_a_cross_account() {
    // Account 1 is cross: wallet 600, long 100 @ 100 at mark 95 (5 %): TNC = 600 − 500 = 100
    // < TMMR = 475, as the isolated case with margin 600. Closing 79 at the mark takes the
    // loss 5·79 out of the wallet (205 left): TNC = 205 − 105 = 100 >= TMMR = ceil(99.75).
    let rows = [(1, 0, LONG, 100.0, 100.0, 0.0, true), (2, 0, SHORT, 100.0, 100.0, 10_000.0, false)];
    let mut e = Engine::new(Policy::Bitmex, 0.0, 0, MarketSpec::linear(0, 0, 0.05)).unwrap();
    e.load(columns(&rows).view(), &["X".to_string()], Some((&[1], &[600.0])), None).unwrap();
    e.set_marks(&[("X".to_string(), 95.0)], Some(1)).unwrap();
    let before = e.totals().value();
    let out = e.liquidate_account(1, false, true).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].external_lots, out[0].remaining_lots), (79, 21));
    assert_eq!(e.cash_of(1), 205);
    assert_eq!(e.store().get(slot(&e, 1, LONG)).qty, 21);
    assert!(e.liquidatable().is_empty());
    assert_eq!(e.totals().value(), before);
}

#[test]
fn preview_skips_cross_accounts_it_cannot_value() {
    // Account 1 is cross in X (marked) and Y (no mark yet): a venue could not liquidate it, so
    // the gap trials leave it alone instead of failing.
    let rows = [(1, 0, LONG, 10.0, 100.0, 0.0, true), (1, 1, LONG, 1.0, 100.0, 0.0, true), (2, 0, SHORT, 10.0, 100.0, 1_000.0, false)];
    let mut e = Engine::new(Policy::Bitmex, 0.0, 2, MarketSpec::linear(0, 0, 0.05)).unwrap();
    e.load(columns(&rows).view(), &["X".to_string(), "Y".to_string()], Some((&[1], &[60.0])), None).unwrap();
    e.set_marks(&[("X".to_string(), 100.0)], Some(1)).unwrap();
    let got = e.adl_marks(0, SHORT, 0.01, 0.5, None).unwrap();
    assert_eq!(got, vec![(slot(&e, 2, SHORT), None)]);
}

/// Pool "P" shared by X and Y; whole units (cash decimals 0). Longs at 10 with margin equal to
/// their size (bankrupt at 9) and a solvent short counterparty per market; marks 8, so each
/// liquidation at the mark has a deficit of exactly 1 per lot: its loss is its size.
fn drawdown_book(trigger: _adl::core::Trigger, longs: &[(u64, u32, f64)]) -> Engine {
    let spec = MarketSpec { fund_pool: "P".to_string(), ..MarketSpec::linear(0, 0, 0.005) };
    let mut e = Engine::new(Policy::Bitmex, 0.0, 0, spec.clone()).unwrap();
    e.add_market("X", spec.clone()).unwrap();
    e.add_market("Y", spec).unwrap();
    e.set_trigger(trigger);
    let mut rows: Vec<Row> = longs.iter().map(|&(a, m, q)| (a, m, LONG, q, 10.0, q, false)).collect();
    rows.push((90, 0, SHORT, 1e6, 10.0, 1e6, false));
    rows.push((91, 1, SHORT, 1e6, 10.0, 1e6, false));
    e.load(columns(&rows).view(), &["X".to_string(), "Y".to_string()], None, None).unwrap();
    e.set_marks(&[("X".to_string(), 8.0), ("Y".to_string(), 8.0)], Some(1_000)).unwrap();
    e.set_fund(1_000_000.0, "P").unwrap();
    e
}

fn pool_armed(e: &Engine) -> bool {
    e.adl_state("P").unwrap().1 == _adl::core::AdlState::Armed
}

#[test]
fn drawdown_caps_the_fund_within_one_event() {
    use _adl::core::Trigger;
    let dd = Trigger::parse("drawdown", None, None, None, None).unwrap();
    // Bybit's example: a 350K loss against a fund of 1M at its 8 h maximum. The fund pays
    // down to the -30 % level, 1M − ⌈0.7·1M⌉ = 300K (300,000 lots at 1 each), and ADL covers
    // the other 50,000 lots; the cap arms the trigger.
    let mut e = drawdown_book(dd, &[(1, 0, 350_000.0), (2, 0, 10.0)]);
    let l = liquidate_in(&mut e, 1, 0);
    assert_eq!((l.from_fund, l.external_lots, l.adl_lots, l.bad_debt), (300_000, 300_000, 50_000, 0));
    assert_eq!(e.fund(), 700_000);
    assert!(pool_armed(&e));
    // Armed: the next event is deleveraged whole.
    let l = liquidate_in(&mut e, 2, 0);
    assert_eq!((l.from_fund, l.adl_lots), (0, 10));
    // Without the cap (fund_empty) the fund pays all 350K.
    let mut e = drawdown_book(Trigger::FundEmpty, &[(1, 0, 350_000.0)]);
    let l = liquidate_in(&mut e, 1, 0);
    assert_eq!((l.from_fund, l.adl_lots), (350_000, 0));
    // A loss within the cap is paid in full and does not arm: 250K leaves 750K (-25 %).
    let mut e = drawdown_book(dd, &[(1, 0, 250_000.0)]);
    let l = liquidate_in(&mut e, 1, 0);
    assert_eq!((l.from_fund, l.adl_lots), (250_000, 0));
    assert!(!pool_armed(&e));
    // One event can no longer drain 89 % of the fund: an 890K loss gets 300K.
    let mut e = drawdown_book(dd, &[(1, 0, 890_000.0)]);
    let l = liquidate_in(&mut e, 1, 0);
    assert_eq!((l.from_fund, l.adl_lots), (300_000, 590_000));
}

#[test]
fn symbol_drawdown_measures_each_symbol_against_the_pool_maximum() {
    use _adl::core::Trigger;
    // Bybit per symbol: ratio = (symbol PnL − its 8 h max) / pool 8 h max balance (1M here);
    // a symbol may draw on the pool down to ratio −30 %, i.e. 300K of its own drawdown.
    let sd = Trigger::parse("symbol_drawdown", None, None, None, Some(0)).unwrap();
    let book = [(1, 0, 200_000.0), (2, 1, 250_000.0), (3, 0, 150_000.0)];
    let mut e = drawdown_book(sd, &book);
    // X loses 200K: room 0 + 300K; paid in full (X ratio −20 %), fund 800K.
    let l = liquidate_in(&mut e, 1, 0);
    assert_eq!((l.from_fund, l.adl_lots), (200_000, 0));
    // Y loses 250K: its own room is 300K, so it is paid in full although the pool is now 45 %
    // below its maximum (the pool-wide form would have paid 800K − 700K = 100K). Fund 550K.
    let l = liquidate_in(&mut e, 2, 1);
    assert_eq!((l.from_fund, l.adl_lots), (250_000, 0));
    assert!(!pool_armed(&e));
    // X loses 150K more: room (−200K − 0) + 300K = 100K; ADL covers 50K and X arms.
    let l = liquidate_in(&mut e, 3, 0);
    assert_eq!((l.from_fund, l.external_lots, l.adl_lots), (100_000, 100_000, 50_000));
    assert_eq!(e.fund(), 450_000);
    assert!(pool_armed(&e));
    assert!((e.adl_state("P").unwrap().2 + 0.3).abs() < 1e-12); // X: −300K / 1M
                                                                // The state survives a snapshot.
    let copy = Engine::restore(&e.snapshot()).unwrap();
    assert_eq!(copy.adl_state("P").unwrap(), e.adl_state("P").unwrap());
    // Only while the pool holds more than the minimum balance (adlTriggerThreshold): with 600K,
    // the third event finds 550K in the pool, so the fund pays all 150K (fund empty rule).
    let sd = Trigger::parse("symbol_drawdown", None, None, None, Some(600_000)).unwrap();
    let mut e = drawdown_book(sd, &book);
    liquidate_in(&mut e, 1, 0);
    liquidate_in(&mut e, 2, 1);
    let l = liquidate_in(&mut e, 3, 0);
    assert_eq!((l.from_fund, l.adl_lots), (150_000, 0));
    assert_eq!(e.fund(), 400_000);
}
