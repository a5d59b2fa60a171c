//! The head-only index (built after a mark change from the best part of the queue) gives
//! exactly the fills of a complete index, under every policy, including when the head runs
//! out and the engine must fall back to the complete queue.

use _adl::core::OwnedColumns;
use _adl::core::{Engine, MarketSpec, Policy, Request, Side};

const SPEC: MarketSpec = MarketSpec::linear(0, 0, 0.005);

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 30,000 positions (half short, some of them losers; about 300k short lots) and 40
/// bankrupt longs, the last ten of 20,000 lots each.
fn engine(policy: Policy) -> (Engine, Vec<Request>) {
    let mut rng = 7u64;
    let n = 30_000usize;
    let (mut account, mut side, mut qty, mut entry, mut margin) = (vec![], vec![], vec![], vec![], vec![]);
    let mut reqs = vec![];
    for i in 0..n {
        let r = splitmix(&mut rng);
        account.push(i as u64 + 1);
        if i < 40 {
            // Bankrupt at 100: long @110 with 2 % margin; the last few hold a third of the shorts.
            let q = if i >= 30 { 20_000.0 } else { 1.0 + (r % 50) as f64 };
            side.push(1i8);
            qty.push(q);
            entry.push(110.0);
            margin.push(q * 110.0 * 0.02);
            reqs.push(Request { account: i as u64 + 1, market: 0, side: Side::Long, fill_price: None, force: false, partial: false });
        } else {
            side.push(if i % 2 == 0 { 1 } else { -1 });
            qty.push(1.0 + (r % 40) as f64);
            entry.push(90.0 + (r >> 8) as f64 % 21.0);
            margin.push(qty[i] * entry[i] / (2.0 + (r >> 16) as f64 % 40.0));
        }
    }
    // Every 7th account is cross: its margin becomes its wallet. A partly closed cross
    // counterparty's score drops (its leverage falls), possibly below a head's cut.
    let cross: Vec<u8> = (0..n).map(|i| (i >= 40 && i % 7 == 0) as u8).collect();
    let wallets: Vec<(u64, f64)> = (0..n).filter(|&i| cross[i] == 1).map(|i| (account[i], margin[i])).collect();
    for i in (0..n).filter(|&i| cross[i] == 1) {
        margin[i] = 0.0;
    }
    let (acc, cash): (Vec<u64>, Vec<f64>) = wallets.into_iter().unzip();
    let cols = OwnedColumns { account, market: vec![0; n], side, qty, entry, margin, adl_cap: Vec::new(), cross };
    let mut e = Engine::new(policy, 0.0, 2, SPEC.clone()).unwrap();
    e.load(cols.view(), &["X".to_string()], Some((&acc, &cash)), None).unwrap();
    (e, reqs)
}

#[test]
fn head_only_indexes_fill_exactly_like_complete_ones() {
    for policy in [Policy::Bitmex, Policy::Binance, Policy::Hyperliquid, Policy::MinMaxLeverage, Policy::SizeProRata, Policy::Dydx] {
        let (mut fast, reqs) = engine(policy);
        let (mut slow, _) = engine(policy);
        let mut head_only_seen = false;
        for (i, req) in reqs.iter().enumerate() {
            // A new mark every 5 events: the index goes stale, and later events at the same
            // marks eat into the head built for the first one (until it runs out).
            let mark = [("X".to_string(), 100.0 - (i / 5 % 3) as f64 * 0.5)];
            fast.set_marks(&mark, None).unwrap();
            slow.set_marks(&mark, None).unwrap();
            slow.ranking(0, Side::Short).unwrap(); // complete, before the event
            let a = fast.liquidate(*req, false).unwrap();
            head_only_seen |= fast.market(0).is_head_only(Side::Short);
            let b = slow.liquidate(*req, false).unwrap();
            assert_eq!(a, b, "{policy:?} event {i}");
        }
        assert_eq!(fast.totals(), slow.totals());
        assert_eq!(head_only_seen, policy.is_ranked(), "{policy:?}: head-only index used");
        assert_eq!(fast.snapshot(), slow.snapshot(), "{policy:?}");
    }
}

/// A cross counterparty partly closed by one event falls below the cut of the head-only
/// index; the next event at the same marks must still reach the better positions that the
/// head left out before it (review finding: it used to stay at the end of the head).
#[test]
fn a_counterparty_rescored_below_the_head_cut_leaves_the_head() {
    let n = 20_000usize;
    // Isolated shorts, 1 lot @110 at mark 100 (pnl% 1/11, u = 10), margin m from 5 to 105:
    // score (1/11)·100/(m + 10), from 0.079 to 0.606.
    let mut account: Vec<u64> = (0..n as u64).map(|i| 1_000 + i).collect();
    let mut side = vec![-1i8; n];
    let mut qty = vec![1.0; n];
    let mut entry = vec![110.0; n];
    // Distinct margins (no score ties), so the head built for the first event holds exactly
    // 7,543 entries (#1 and the 7,542 best isolated: 2·4·990 lots / the 1.05 average).
    let mut margin: Vec<f64> = (0..n).map(|i| 5.0 + i as f64 * 0.005).collect();
    let mut cross = vec![0u8; n];
    // Cross #1: short 1,000 @110, wallet 0: TNC = 10,000, ℓ = 10, score 0.909 (first).
    // Longs #2 (990 lots) and #3 (7,547 lots) @110 with 1 per lot: P_bk = 109, bankrupt.
    for (a, s, q, m, c) in [(1u64, -1i8, 1_000.0, 0.0, 1u8), (2, 1, 990.0, 990.0, 0), (3, 1, 7_547.0, 7_547.0, 0)] {
        account.push(a);
        side.push(s);
        qty.push(q);
        entry.push(110.0);
        margin.push(m);
        cross.push(c);
    }
    let market = vec![0; account.len()];
    let cols = OwnedColumns { account, market, side, qty, entry, margin, adl_cap: Vec::new(), cross };
    let make = || {
        let mut e = Engine::new(Policy::Bitmex, 0.0, 2, SPEC.clone()).unwrap();
        e.load(cols.view(), &["X".to_string()], Some((&[1], &[0.0])), None).unwrap();
        e.set_marks(&[("X".to_string(), 100.0)], None).unwrap();
        e
    };
    let (mut fast, mut slow) = (make(), make());
    for account in [2u64, 3] {
        let req = Request { account, market: 0, side: Side::Long, fill_price: None, force: false, partial: false };
        slow.ranking(0, Side::Short).unwrap();
        let (a, b) = (fast.liquidate(req, false).unwrap(), slow.liquidate(req, false).unwrap());
        assert_eq!(a, b, "event of #{account}");
    }
    // #1 kept 10 lots after the first event and is now near the bottom of the queue: the
    // second event (7,547 lots) never reaches it.
    assert_eq!(fast.store().get(fast.store().find(&(1, 0, Side::Short)).unwrap()).qty, 10);
}

/// A cross account's short in X, left out of X's head-only index, rises above the cut when
/// an ADL fill in Y lowers the account's TNC (its short in Y closes at the bankrupt long's
/// price, above the mark): it joins the head. Every event fills exactly as with complete
/// indexes rebuilt before each one, and the books end equal.
#[test]
fn a_cross_position_lifted_above_the_head_cut_joins_the_head() {
    let mut rng = 11u64;
    let (mut account, mut market, mut side, mut qty, mut entry, mut margin, mut cross) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut push = |a: u64, m: u32, s: i8, q: f64, e: f64, mg: f64, c: u8| {
        account.push(a);
        market.push(m);
        side.push(s);
        qty.push(q);
        entry.push(e);
        margin.push(mg);
        cross.push(c);
    };
    // X (market 0), mark 100: 12,000 isolated shorts, 1–40 lots @90–110 at 2–11× leverage.
    for i in 0..12_000u64 {
        let r = splitmix(&mut rng);
        let (q, e) = (1.0 + (r % 40) as f64, 90.0 + (r >> 8) as f64 % 21.0);
        push(10_000 + i, 0, -1, q, e, q * e / (2.0 + (r >> 16) as f64 % 10.0), 0);
    }
    // 600 cross accounts: a short in X (20–60 lots @102) and one in Y (20–100 lots @104, 4 a
    // lot in profit), on a wallet of 6–30 a lot of Y: a low leverage that leaves most of the
    // X shorts below the cut of the head built by the first X event (0.34). An ADL fill of q
    // lots in Y at 107.8 takes 7.8·q off TNC (from 4·q in profit to 3.8·q realised loss),
    // raising the X short's leverage, and some of them past the cut (25 in this run; a head
    // that ignored them fails at event 19).
    let mut wallets = vec![];
    for i in 0..600u64 {
        let r = splitmix(&mut rng);
        let qy = 20.0 + (r % 81) as f64;
        push(1_000 + i, 0, -1, 20.0 + (r >> 8) as f64 % 41.0, 102.0, 0.0, 1);
        push(1_000 + i, 1, -1, qy, 104.0, 0.0, 1);
        wallets.push((1_000 + i, qy * (6.0 + (r >> 16) as f64 % 25.0)));
    }
    // Bankrupt longs @110 with 2 % margin (bankruptcy price 107.8 > 100): 40 in X, 60 in Y,
    // X first (its head is built before any Y event).
    let mut reqs = vec![];
    for i in 0..100u64 {
        let r = splitmix(&mut rng);
        let (m, q) = if i % 5 == 0 || i % 5 == 4 { (0u32, 1.0 + (r % 50) as f64) } else { (1, 40.0 + (r % 200) as f64) };
        push(i + 1, m, 1, q, 110.0, q * 110.0 * 0.02, 0);
        reqs.push(Request { account: i + 1, market: m, side: Side::Long, fill_price: None, force: false, partial: false });
    }
    let (acc, cash): (Vec<u64>, Vec<f64>) = wallets.into_iter().unzip();
    let cols = OwnedColumns { account, market, side, qty, entry, margin, adl_cap: Vec::new(), cross };
    let make = || {
        let mut e = Engine::new(Policy::Bitmex, 0.0, 2, SPEC.clone()).unwrap();
        e.load(cols.view(), &["X".to_string(), "Y".to_string()], Some((&acc, &cash)), None).unwrap();
        e.set_marks(&[("X".to_string(), 100.0), ("Y".to_string(), 100.0)], None).unwrap();
        e
    };
    let (mut fast, mut slow) = (make(), make());
    let mut cross_fills_in_x = 0;
    for (i, req) in reqs.iter().enumerate() {
        slow.ranking(0, Side::Short).unwrap();
        slow.ranking(1, Side::Short).unwrap();
        let (a, b) = (fast.liquidate(*req, false).unwrap(), slow.liquidate(*req, false).unwrap());
        assert_eq!(a, b, "event {i}");
        cross_fills_in_x += a.fills.iter().filter(|f| f.market == 0 && f.account.is_some_and(|x| (1_000..1_600).contains(&x))).count();
        assert!(req.market == 1 || fast.market(0).is_head_only(Side::Short), "event {i}: X's index is a head");
    }
    // The X events reached cross shorts (those the Y events lifted into the head).
    assert!(cross_fills_in_x > 0);
    assert_eq!(fast.snapshot(), slow.snapshot());
}
