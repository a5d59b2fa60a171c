//! The cascade simulator never leaves a liquidatable position behind: after every step the
//! engine's full scan (`liquidatable`) finds nothing, along random walks with rebounds, with
//! isolated and cross accounts, under several policies.

use _adl::core::OwnedColumns;
use _adl::core::{Engine, FillKind, MarketSpec, Policy};
use _adl::core::{Simulation, Slippage};

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn run(policy: Policy, seed: u64, gap: bool) {
    let mut rng = seed;
    let spec = MarketSpec::linear(2, 2, 0.01);
    let n = 3_000usize;
    let (mut account, mut market, mut side, mut qty, mut entry, mut margin, mut cross) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut wallets = std::collections::BTreeMap::new();
    for i in 0..n {
        let r = splitmix(&mut rng);
        let acc = 1 + (r % 2_500);
        if account
            .iter()
            .zip(&market)
            .zip(&side)
            .any(|((&a, &m), &s)| a == acc && m == (r >> 20) as u32 % 2 && s == if i % 2 == 0 { 1 } else { -1 })
        {
            continue;
        }
        let is_cross = acc.is_multiple_of(10);
        account.push(acc);
        market.push((r >> 20) as u32 % 2);
        side.push(if i % 2 == 0 { 1i8 } else { -1 });
        let q = 0.01 * (1 + (r >> 8) % 500) as f64;
        let e = 100.0 + ((r >> 32) % 400) as f64 / 100.0 - 2.0;
        let lev = 2.0 + ((r >> 40) % 48) as f64;
        qty.push(q);
        entry.push(e);
        margin.push(if is_cross { 0.0 } else { ((q * e / lev) * 100.0).round() / 100.0 });
        cross.push(is_cross as u8);
        if is_cross {
            *wallets.entry(acc).or_insert(0.0) += ((q * e / lev) * 100.0).round() / 100.0;
        }
    }
    let cols = OwnedColumns { account, market, side, qty, entry, margin, adl_cap: Vec::new(), cross };
    let mut e = Engine::new(policy, 100.0, 6, spec.clone()).unwrap();
    let acc: Vec<u64> = wallets.keys().copied().collect();
    let cash: Vec<f64> = wallets.values().copied().collect();
    e.load(cols.view(), &["X".to_string(), "Y".to_string()], Some((&acc, &cash)), None).unwrap();
    let mut sim = Simulation::new(e, Slippage { bps_per_million: 50.0, window: 5, max_bps: 200.0 }).unwrap();
    let mut marks = [100.0f64, 100.0];
    let mut adl_fills = 0;
    for step in 0..300i64 {
        for m in marks.iter_mut() {
            // A drift down, then up, with noise; on the 0.01 grid.
            let drift = if step < 150 { -0.06 } else { 0.05 };
            *m = ((*m + drift + ((splitmix(&mut rng) % 41) as f64 - 20.0) / 100.0) * 100.0).round() / 100.0;
            // A gap of 8 % in one step: past the bankruptcy price of the most levered.
            if gap && step == 60 {
                *m = (*m * 92.0).round() / 100.0;
            }
        }
        let out = sim.step(&[(0, marks[0]), (1, marks[1])], step, &[f64::NAN, f64::NAN]).unwrap();
        // The step drops each liquidation's fills once tallied, and counts them.
        assert!(out.liquidations.iter().all(|(l, _, _)| l.fills.is_empty() && l.cancel_orders.is_empty()));
        adl_fills += out.adl_fills;
        let left = sim.engine.liquidatable();
        assert!(left.is_empty(), "{policy:?} seed {seed} step {step}: {} liquidatable left", left.len());
        assert!(sim.engine.fund() >= 0);
    }
    // The engine's own log (kept by default) has every fill the steps counted.
    let logged = sim.engine.events().iter().filter(|f| f.kind == FillKind::Adl).count() as u64;
    assert_eq!(adl_fills, logged, "{policy:?} seed {seed}");
    // The gap deleverages (63,028 to 137,435 fills in the pro-rata runs).
    assert!(!gap || adl_fills > 0, "{policy:?} seed {seed}: no ADL");
}

#[test]
fn no_liquidatable_position_survives_a_step() {
    for (i, policy) in [Policy::Bitmex, Policy::SizeProRata, Policy::Hyperliquid, Policy::MinMaxLeverage].into_iter().enumerate() {
        run(policy, 11 + i as u64, false);
    }
}

/// Every pro-rata policy through a cascade with a gap, isolated and cross accounts: each
/// event's split by the pro-rata index is checked against the scan of the whole side by the
/// kernel itself in debug builds (`kernel::allocate`), most events being small against the
/// side (the index's domain).
#[test]
fn pro_rata_cascades_split_as_the_scan() {
    let policies = [Policy::SizeProRata, Policy::WealthProRata, Policy::LeveredProRata, Policy::CappedProRata];
    for (i, policy) in policies.into_iter().enumerate() {
        run(policy, 31 + i as u64, true);
    }
}
