//! The fuzzed program, shared by the libFuzzer target and `tests/rust/fuzz_corpus.rs` (which
//! runs it on seeded random inputs under plain `cargo test`).
//!
//! After every operation: the fund is never negative and bad debt never falls; a liquidation
//! or close leaves `cash + position equity + fund + book value − bad debt` exactly unchanged
//! (marks are fixed within an operation); an ADL fill never matches an account with itself
//! and never takes more than the counterparty held; each liquidation's fills add up to the
//! position's size; nobody is made insolvent by ADL (an isolated counterparty's cash never
//! falls, a cross counterparty's TNC stays >= 0); the snapshot restores byte for byte, and the
//! restored engine's freshly built queues equal the live, incrementally updated ones.

use std::sync::atomic::{AtomicU64, Ordering};

use _adl::core::engine::{AdlPrice, FillKind, Liquidation};
use _adl::core::SolvencyBaseline;
use _adl::core::Trigger;
use _adl::core::{Engine, FeeConvention, MarketSpec, Policy, Request, Side, TierSpec, Totals};
use _adl::core::{Op, OpOutput, OwnedColumns};

/// Operations executed by this process (reported every 2^20).
pub static OPS: AtomicU64 = AtomicU64::new(0);

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn below(&mut self, n: u32) -> u32 {
        (u16::from_le_bytes([self.byte(), self.byte()]) as u32) % n
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const POLICIES: [Policy; 9] = [
    Policy::Bitmex,
    Policy::Binance,
    Policy::SizeProRata,
    Policy::Hyperliquid,
    Policy::Dydx,
    Policy::WealthProRata,
    Policy::LeveredProRata,
    Policy::MinMaxLeverage,
    Policy::CappedProRata,
];
const SPEC: MarketSpec = MarketSpec::linear(0, 0, 0.05);
const ACCOUNTS: u64 = 8;

/// A market with fees, tiers and a multiplier chosen by the input (docs/model.md §7). `unit`
/// scales cash amounts (1 quote unit linear, 0.01 coin in the inverse world).
fn venue_spec(u: &mut Bytes<'_>, base: MarketSpec, unit: f64) -> MarketSpec {
    let b = u.byte();
    let tiers = match b % 3 {
        0 => Vec::new(),
        1 => vec![TierSpec { floor: 0.0, rate: 0.01, amount: None }, TierSpec { floor: 1_000.0 * unit, rate: 0.05, amount: None }],
        _ => vec![
            TierSpec { floor: 0.0, rate: 0.02, amount: None },
            TierSpec { floor: 500.0 * unit, rate: 0.04, amount: Some(10.0 * unit) }, // the continuous amount, given
            TierSpec { floor: 3_000.0 * unit, rate: 0.10, amount: None },
        ],
    };
    MarketSpec {
        multiplier: base.multiplier * [1.0, 0.1, 10.0][(b / 3 % 3) as usize],
        tiers,
        liquidation_fee: [0.0, 0.005, 0.02][(b / 9 % 3) as usize],
        fee_convention: if b & 32 != 0 { FeeConvention::Bankruptcy } else { FeeConvention::Surplus },
        surplus_to_fund: b & 64 == 0,
        adl_fee: if b & 128 != 0 { 0.001 } else { 0.0 },
        // The default pool or pool "Y": shared by both markets, or one each.
        fund_pool: if u.byte().is_multiple_of(2) { String::new() } else { "Y".to_string() },
        ..base
    }
}

/// `n` rows with distinct keys; accounts up to `n_cross` are cross (no own margin).
fn random_rows(u: &mut Bytes<'_>, n: u32, n_cross: u64, unit: f64) -> OwnedColumns {
    let mut r = OwnedColumns::default();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..n {
        let account = 1 + u.below(ACCOUNTS as u32) as u64;
        let market = u.below(2);
        let side = if u.byte() % 2 == 0 { 1 } else { -1 };
        if !seen.insert((account, market, side)) {
            continue;
        }
        let cross = account <= n_cross;
        r.account.push(account);
        r.market.push(market);
        r.side.push(side);
        r.qty.push(1.0 + u.below(40) as f64);
        r.entry.push(80.0 + u.below(41) as f64);
        r.margin.push(if cross { 0.0 } else { u.below(20_000) as f64 / 100.0 * unit });
        r.cross.push(cross as u8);
    }
    r
}

fn symbols() -> Vec<String> {
    vec!["X".to_string(), "Y".to_string()]
}

fn random_marks(u: &mut Bytes<'_>) -> Vec<(String, f64)> {
    vec![("X".to_string(), 70.0 + u.below(61) as f64), ("Y".to_string(), 70.0 + u.below(61) as f64)]
}

/// A live position chosen by the input, as a request.
fn pick(e: &Engine, u: &mut Bytes<'_>) -> Option<Request> {
    let live: Vec<(u64, u32, Side)> = e.store().iter().map(|(_, p)| (p.account, p.market, p.side)).collect();
    if live.is_empty() {
        return None;
    }
    let (account, market, side) = live[u.below(live.len() as u32) as usize];
    let g = e.market(market).grid;
    let mark = e.market(market).mark.unwrap_or_else(|| g.ticks(100.0).expect("a price"));
    // Up to ±6 % around a mark of about 100 (an inverse tick of 1e-6 is 0.01 % of 1/100).
    let offset = (u.below(13) as i64 - 6) * if g.inverse { 100 } else { 1 };
    let ticks = mark + offset;
    let fill_price = (u.byte() % 3 != 0 && g.is_price(ticks)).then(|| g.price_f64(ticks as f64));
    let flags = u.byte();
    Some(Request { account, market, side, fill_price, force: flags % 2 == 0, partial: flags & 2 != 0 })
}

/// Fill-level checks of one liquidation against the sizes held before it.
/// (`exact`: the position was not shrunk by an earlier liquidation of the same batch.)
fn check_liquidation(l: &Liquidation, held: &std::collections::HashMap<(u64, u32, Side), i64>, exact: bool) {
    let (account, market, side) = l.key;
    let total: i64 = l.fills.iter().map(|f| f.lots).sum::<i64>() + l.remaining_lots;
    let had = held[&(account, market, side)];
    assert!(if exact { total == had } else { total <= had }, "fills do not add up to the position");
    assert!(l.remaining_lots == 0 || l.fills.iter().all(|f| f.kind == FillKind::External), "a partial close went past the book");
    for f in l.fills.iter().filter(|f| f.kind == FillKind::Adl) {
        let cp = f.account.expect("an ADL fill has a counterparty");
        assert_ne!(cp, account, "matched against itself");
        assert!(f.lots <= held[&(cp, market, side.opposite())], "closed more than held");
    }
}

fn check_state(e: &mut Engine, before: &Totals, conserving: bool) {
    let t = e.totals();
    assert!(t.fund >= 0, "negative fund");
    assert!(t.bad_debt >= before.bad_debt, "bad debt fell");
    if conserving {
        assert_eq!(t.value(), before.value(), "value not conserved");
    }
    for (_, p) in e.store().iter() {
        assert!(p.qty > 0);
        assert!(if p.cross { p.margin == 0 } else { p.margin >= 0 }, "bad margin");
    }
    let snap = e.snapshot();
    let mut fresh = Engine::restore(&snap).expect("own snapshot restores");
    assert_eq!(fresh.snapshot(), snap, "snapshot round trip");
    for market in 0..e.markets().len() as u32 {
        if e.market(market).mark.is_none() {
            continue;
        }
        for side in Side::BOTH {
            let live: Vec<(u32, f64)> = {
                let idx = e.ranking(market, side).expect("ranking");
                idx.queue().map(|(pos, s)| (s, idx.score_at(pos))).collect()
            };
            let idx = fresh.ranking(market, side).expect("ranking");
            let rebuilt: Vec<(u32, f64)> = idx.queue().map(|(pos, s)| (s, idx.score_at(pos))).collect();
            assert_eq!(live, rebuilt, "incremental queue differs from a rebuild");
        }
    }
}

pub fn run(data: &[u8]) {
    let mut u = Bytes(data);
    let policy = POLICIES[u.byte() as usize % POLICIES.len()];
    // One world in four is inverse: coin-margined markets, cash in 1e-8 coin, reciprocal
    // prices on a 1e-6 grid and 100 quote units a contract (about one coin at prices near 100).
    let inverse = u.byte().is_multiple_of(4);
    let (cash_decimals, unit) = if inverse { (8, 0.01) } else { (2, 1.0) };
    let spec = if inverse { MarketSpec { inverse: true, price_decimals: 6, multiplier: 100.0, ..SPEC.clone() } } else { SPEC.clone() };
    let fund = u.below(5_000) as f64 / 100.0 * unit;
    let mut e = Engine::new(policy, fund, cash_decimals, spec.clone()).expect("engine");
    e.adl_price = match u.byte() % 4 {
        0 => AdlPrice::Mark,
        1 => AdlPrice::MarkCapped,
        _ => AdlPrice::Bankruptcy,
    };
    match u.byte() % 6 {
        0 | 1 => e.set_trigger(Trigger::FundDrop { arm: 0.9, disarm: 0.95 }),
        // Drawdown triggers cap the fund within an event (pool-wide, or per symbol above a
        // minimum pool balance).
        2 => e.set_trigger(Trigger::Drawdown { window: 50, arm: -0.3, disarm: -0.25 }),
        3 => e.set_trigger(Trigger::SymbolDrawdown { window: 50, arm: -0.3, disarm: -0.25, min_balance: u.below(2_000) as i128 }),
        _ => {}
    }
    e.add_market("X", venue_spec(&mut u, spec.clone(), unit)).expect("market");
    e.add_market("Y", venue_spec(&mut u, MarketSpec { maintenance_rate: 0.02, ..spec.clone() }, unit)).expect("market");
    let n_cross = u.below(ACCOUNTS as u32 + 1) as u64;
    let n = u.below(24);
    let book = random_rows(&mut u, n, n_cross, unit);
    let accounts: Vec<u64> = (1..=ACCOUNTS).collect();
    let wallets: Vec<f64> = (0..ACCOUNTS).map(|_| u.below(30_000) as f64 / 100.0 * unit).collect();
    e.apply(Op::Load { cols: book.view(), symbols: &symbols(), accounts: Some((&accounts, &wallets)), custom: None, labels: None })
        .expect("load");
    e.apply(Op::SetMarks { marks: &random_marks(&mut u), ts: Some(0), clock: None }).expect("marks");

    let mut steps = 0;
    while !u.is_empty() && steps < 64 {
        steps += 1;
        let before = e.totals();
        let held: std::collections::HashMap<(u64, u32, Side), i64> =
            e.store().iter().map(|(_, p)| ((p.account, p.market, p.side), p.qty)).collect();
        let solvency = SolvencyBaseline::of(&e);
        let reqs: Vec<Request>;
        let marks: Vec<(String, f64)>;
        let extra: OwnedColumns;
        let (op, conserving) = match u.byte() % 8 {
            0 => {
                marks = random_marks(&mut u);
                (Op::SetMarks { marks: &marks, ts: Some(steps), clock: None }, false)
            }
            1 => match pick(&e, &mut u) {
                Some(req) => (Op::Liquidate { req }, true),
                None => continue,
            },
            // A severity cap (docs/severity.md): at most `max_adl` lots ADL'd, the rest to the book.
            7 => match pick(&e, &mut u) {
                Some(req) => (Op::LiquidateCapped { req, max_adl: u.below(40) as i64 }, true),
                None => continue,
            },
            2 => {
                let k = 1 + u.below(3);
                reqs = (0..k).filter_map(|_| pick(&e, &mut u)).collect();
                (Op::LiquidateMany { reqs: &reqs }, true)
            }
            3 => {
                let (account, flags) = (1 + u.below(ACCOUNTS as u32) as u64, u.byte());
                (Op::LiquidateAccount { account, force: flags % 2 == 0, partial: flags & 2 != 0 }, true)
            }
            4 => {
                let k = 1 + u.below(3);
                extra = random_rows(&mut u, k, n_cross, unit);
                (
                    Op::Upsert {
                        cols: extra.view(),
                        symbols: &["X".to_string(), "Y".to_string()],
                        accounts: None,
                        custom: None,
                        labels: None,
                    },
                    false,
                )
            }
            5 => match pick(&e, &mut u) {
                Some(r) => (Op::ClosePosition { account: r.account, market: r.market, side: r.side, price: r.fill_price }, true),
                None => continue,
            },
            // The fill log: a drain to a cursor up to one past the next event (refused), or the switch.
            6 if u.byte() % 4 == 0 => match u.byte() % 3 {
                0 => (Op::SetKeepFills { keep: u.byte() % 2 == 0 }, false),
                _ => (Op::DrainEvents { upto: e.drained_upto() + u.below(4) as u64 }, false),
            },
            _ => (Op::SetFund { amount: u.below(5_000) as f64 / 100.0 * unit, pool: ["default", "Y"][u.below(2) as usize] }, false),
        };
        // A dry run first: it must change nothing and predict the real run exactly.
        let cap = if let Op::LiquidateCapped { max_adl, .. } = op { Some(max_adl) } else { None };
        let preview = match op {
            Op::Liquidate { req } | Op::LiquidateCapped { req, .. } => {
                let snap = e.snapshot();
                let p = e.liquidate_capped(req, cap, true).ok();
                assert_eq!(e.snapshot(), snap, "a dry run changed the engine");
                p
            }
            _ => None,
        };
        let snap = e.snapshot();
        match e.apply(op) {
            Err(_) => {
                assert_eq!(e.snapshot(), snap, "a failed operation changed the engine");
                assert!(preview.is_none(), "the dry run succeeded where the real run failed");
            }
            Ok(out) => {
                OPS.fetch_add(1, Ordering::Relaxed);
                match &out {
                    OpOutput::Liquidated(l) => {
                        check_liquidation(l, &held, true);
                        assert!(cap.is_none_or(|k| l.adl_lots <= k), "ADL went past the cap");
                        if l.remaining_lots > 0 {
                            let (account, market, side) = l.key;
                            let (eq, mm) = e.health(e.store().find(&(account, market, side)).expect("kept")).expect("health");
                            assert!(eq >= mm, "a partial close left the position below maintenance");
                        }
                        assert_eq!(preview.as_ref(), Some(l), "the dry run differs from the real run");
                    }
                    OpOutput::Account(ls) => ls.iter().for_each(|l| check_liquidation(l, &held, true)),
                    OpOutput::Batch(ls) => ls.iter().flatten().for_each(|l| check_liquidation(l, &held, false)),
                    _ => {}
                }
                let ls: Vec<&Liquidation> = match &out {
                    OpOutput::Liquidated(l) => vec![l],
                    OpOutput::Account(ls) => ls.iter().collect(),
                    OpOutput::Batch(ls) => ls.iter().flatten().collect(),
                    _ => Vec::new(),
                };
                if let Err(broken) = solvency.check(&e, ls.iter().copied()) {
                    panic!("{broken}");
                }
                // Liquidations and closes of a cross account move its wallet into the
                // position; every other op here is valued at fixed marks too.
                check_state(&mut e, &before, conserving);
            }
        }
    }
    let n = OPS.load(Ordering::Relaxed);
    if n >> 20 != (n.saturating_sub(steps as u64)) >> 20 {
        eprintln!("adl fuzz: {n} operations checked");
    }
}
