//! Criterion benches of the core on seeded synthetic books (see `synth.rs`).
//!
//! `cargo bench --bench adl_bench` runs them all (a few minutes on 2 cores); pass a filter,
//! e.g. `cargo bench --bench adl_bench -- engine/next_event`, to run some. Besides criterion's
//! estimates, the `engine` group prints per-event latency percentiles of the next-event path.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput};

use _adl::core::Grid;
use _adl::core::Lights;
use _adl::core::{deleverage, rank, MarketTable};
use _adl::core::{Engine, Policy, Request, Side};

mod synth;
use synth::{Book, CASH_DECIMALS, MARK, MARK_ALT, SPEC};

const ROWS_1M: usize = 1_000_000;
const ROWS_10M: usize = 10_000_000;
/// Bankrupt longs prepared in the 1M book: one per next-event iteration, 1000 per cascade.
const BANKRUPT: usize = 10_000;
const SEED: u64 = 0x00AD_1BE7;

fn grid() -> Grid {
    Grid::new(SPEC.qty_decimals, SPEC.price_decimals, CASH_DECIMALS).expect("grid")
}

fn stateless(c: &mut Criterion) {
    let book = Book::generate(ROWS_1M, BANKRUPT, SEED);
    let grids = [grid()];
    let names = synth::symbols();
    let table = MarketTable { grids: &grids, marks: &[MARK], rates: &[SPEC.maintenance_rate], names: &names };
    let cols = book.cols();

    let mut g = c.benchmark_group("rank");
    g.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(ROWS_1M as u64));
    // The bitmex preset's lights go by cumulative quantity; `by_count/1M` is the same ranking
    // with lights by count (every other preset's method).
    g.bench_function("1M", |b| {
        b.iter(|| black_box(rank(black_box(&cols), &table, Policy::Bitmex, None, Policy::Bitmex.lights()).unwrap()))
    });
    g.bench_function("by_count/1M", |b| b.iter(|| black_box(rank(black_box(&cols), &table, Policy::Bitmex, None, Lights::Count).unwrap())));
    g.finish();

    // A bankrupt long of 1 % of the short open interest, closed against the short queue.
    let qty = (book.open_interest(-1) * 0.01 * 1e4).round() / 1e4;
    let fills = deleverage(&cols, &table, Policy::Bitmex, 0, Side::Long, qty, 100.5, 0, None).unwrap();
    println!("deleverage/1M: qty {qty:.4} = 1% of short OI, {} fills", fills.len());
    let mut g = c.benchmark_group("deleverage");
    g.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(ROWS_1M as u64));
    g.bench_function("1M", |b| {
        b.iter(|| black_box(deleverage(black_box(&cols), &table, Policy::Bitmex, 0, Side::Long, qty, 100.5, 0, None).unwrap()))
    });
    // The same close split by size over every short that can pay at 100.5.
    let fills = deleverage(&cols, &table, Policy::SizeProRata, 0, Side::Long, qty, 100.5, 0, None).unwrap();
    println!("deleverage/size_pro_rata/1M: {} fills", fills.len());
    g.bench_function("size_pro_rata/1M", |b| {
        b.iter(|| black_box(deleverage(black_box(&cols), &table, Policy::SizeProRata, 0, Side::Long, qty, 100.5, 0, None).unwrap()))
    });
    g.finish();
}

/// The 1M book loaded and marked, with the short-side ranking index built.
fn prepared_engine(book: &Book) -> Engine {
    let mut e = synth::loaded_engine(book);
    e.ranking(0, Side::Short).expect("short index");
    e
}

/// Latency of single real liquidations (fresh engine, index built, fixed marks), timed
/// one by one with `Instant`, printed as percentiles.
fn next_event_latency(label: &str, prepared: &Engine, reqs: &[Request]) {
    let mut eng = prepared.clone();
    let mut ns = Vec::with_capacity(reqs.len());
    let mut fills = 0usize;
    let mut adl_fills = 0usize;
    for r in reqs {
        let t = Instant::now();
        let res = eng.liquidate(*r, false);
        let dt = t.elapsed();
        let res = res.expect("liquidate");
        ns.push(dt.as_nanos() as u64);
        fills += res.fills.len();
        adl_fills += res.fills.iter().filter(|f| f.kind == _adl::core::FillKind::Adl).count();
        drop(black_box(res));
    }
    ns.sort_unstable();
    let pct = |p: f64| ns[((ns.len() as f64 * p).ceil() as usize).clamp(1, ns.len()) - 1] as f64 / 1e3;
    let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1e3;
    println!(
        "{label} latency over {} events (Instant, per event): \
         p50 {:.2} µs, p90 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.2} µs, mean {:.2} µs; \
         {:.2} fills/event ({:.2} ADL)",
        ns.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        *ns.last().unwrap() as f64 / 1e3,
        mean,
        fills as f64 / reqs.len() as f64,
        adl_fills as f64 / reqs.len() as f64,
    );
}

fn engine_1m(c: &mut Criterion) {
    let book = Book::generate(ROWS_1M, BANKRUPT, SEED);
    let reqs = book.bankrupt_requests();
    let prepared = prepared_engine(&book);
    next_event_latency("engine/next_event_same_marks/1M", &prepared, &reqs);
    // The same book with every 10th short cross margined (its margin moved to its wallet).
    let mut cross_eng = synth::new_engine();
    let cross: Vec<u8> = (0..book.len()).map(|i| (i % 20 == 1) as u8).collect();
    let margin: Vec<f64> = book.columns.margin.iter().zip(&cross).map(|(&m, &c)| if c == 1 { 0.0 } else { m }).collect();
    let wallets: (Vec<u64>, Vec<f64>) =
        (0..book.len()).filter(|&i| cross[i] == 1).map(|i| (book.columns.account[i], book.columns.margin[i])).unzip();
    let cols = _adl::core::PositionColumns { margin: &margin, cross: &cross, ..book.cols() };
    cross_eng.load(cols, &synth::symbols(), Some((&wallets.0, &wallets.1)), None).expect("load");
    cross_eng.set_marks(&synth::marks(MARK), None).expect("marks");
    cross_eng.ranking(0, Side::Short).expect("short index");
    next_event_latency("engine/next_event_same_marks/1M, 5% of positions cross", &cross_eng, &reqs);
    let t = Instant::now();
    cross_eng.set_marks(&synth::marks(MARK_ALT), None).expect("marks");
    let refresh = t.elapsed();
    let t = Instant::now();
    black_box(cross_eng.liquidate(reqs[0], true).expect("event"));
    println!(
        "engine/first_event_after_mark_change/1M, 5% cross: set_marks {:.2} ms (refreshes 50k cross accounts), event {:.2} ms (index rebuild)",
        refresh.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64() * 1e3
    );

    let mut g = c.benchmark_group("engine");

    // 3. A mark change invalidates both indexes; the next liquidation rebuilds the
    //    opposite side's (500k shorts) and plans the fills. dry_run keeps the book as is.
    g.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(ROWS_1M as u64));
    {
        let mut eng = prepared.clone();
        let (m_a, m_b) = (synth::marks(MARK_ALT), synth::marks(MARK));
        let req = reqs[0];
        let mut flip = false;
        g.bench_function(BenchmarkId::new("first_event_after_mark_change", "1M"), |b| {
            b.iter(|| {
                flip = !flip;
                eng.set_marks(if flip { &m_a } else { &m_b }, None).unwrap();
                black_box(eng.liquidate(req, true).unwrap())
            })
        });
    }

    // 4. Marks fixed, index built: one real liquidation per iteration, a different bankrupt
    //    long each time; a fresh copy of the prepared engine (outside the timing) when the
    //    10k prepared positions run out.
    g.sample_size(50).sampling_mode(SamplingMode::Auto).warm_up_time(Duration::from_secs(2));
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    {
        let mut eng = prepared.clone();
        let mut next = 0usize;
        g.bench_function(BenchmarkId::new("next_event_same_marks", "1M"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    if next == reqs.len() {
                        eng = prepared.clone();
                        next = 0;
                    }
                    let chunk = left.min(reqs.len() - next);
                    let batch = &reqs[next..next + chunk];
                    let t = Instant::now();
                    for r in batch {
                        black_box(eng.liquidate(*r, false).unwrap());
                    }
                    total += t.elapsed();
                    next += chunk;
                    left -= chunk;
                }
                total
            })
        });
    }

    // 5. A cascade: 1000 liquidations in one batch at fixed marks.
    g.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(1000));
    {
        let cascade = &reqs[..1000];
        g.bench_function(BenchmarkId::new("cascade_1000", "1M"), |b| {
            b.iter_batched(
                || prepared.clone(),
                |mut eng| {
                    let out = eng.liquidate_many(cascade).unwrap();
                    (eng, out) // dropped outside the timing
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// Every policy on the same 1M book: one ADL event (a dry run, so every iteration plans the
/// same event at fixed marks with the index built). Ranked policies walk the queue's head;
/// pro-rata ones touch every opposite position (the fills per event are printed).
fn policies_1m(c: &mut Criterion) {
    let book = Book::generate(ROWS_1M, BANKRUPT, SEED);
    let req = book.bankrupt_requests()[0];
    let mut g = c.benchmark_group("policy_event");
    g.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(1));
    for policy in [
        Policy::Bitmex,
        Policy::Binance,
        Policy::Hyperliquid,
        Policy::MinMaxLeverage,
        Policy::Dydx,
        Policy::SizeProRata,
        Policy::WealthProRata,
        Policy::LeveredProRata,
    ] {
        let mut eng = Engine::new(policy, 0.0, CASH_DECIMALS, SPEC.clone()).expect("engine");
        eng.load(book.cols(), &synth::symbols(), None, None).expect("load");
        eng.set_marks(&synth::marks(MARK), None).expect("marks");
        let fills = eng.liquidate(req, true).expect("event").fills.len();
        println!("policy_event/{}/1M: {fills} fills per event", policy.name());
        g.bench_function(BenchmarkId::new(policy.name(), "1M"), |b| b.iter(|| black_box(eng.liquidate(req, true).unwrap())));
    }
    g.finish();
}

fn engine_load_10m(c: &mut Criterion) {
    let book = Book::generate(ROWS_10M, 0, SEED);
    let cols = book.cols();
    let symbols = synth::symbols();
    let mut g = c.benchmark_group("engine");
    g.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(30));
    g.throughput(Throughput::Elements(ROWS_10M as u64));
    g.bench_function(BenchmarkId::new("load", "10M"), |b| {
        b.iter_batched(
            synth::new_engine,
            |mut eng| {
                eng.load(cols, &symbols, None, None).unwrap();
                eng // dropped outside the timing
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// `preview(account=…)` of one long (`Engine::adl_marks` with `only`, 0.5 % grid up to 50 %)
/// on a 100k isolated book at rest (the synthetic rows not liquidatable at the mark), for
/// longs at the head, 10 % and 50 % down the queue. Setup and the brute-force reference
/// (every trial run in full, printed once) run only when this id is selected.
fn preview_100k(c: &mut Criterion) {
    let mut g = c.benchmark_group("preview");
    g.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_millis(100));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("account/100k", |b| {
        let book = Book::generate(100_000, 0, SEED);
        let all = synth::loaded_engine(&book);
        let liquidatable: std::collections::HashSet<u32> = all.liquidatable().into_iter().collect();
        let keep: Vec<usize> = (0..book.len())
            .filter(|&i| {
                let c = &book.columns;
                !liquidatable.contains(&all.store().find(&(c.account[i], 0, Side::of(c.side[i]).expect("a side"))).expect("row"))
            })
            .collect();
        let c = &book.columns;
        let pick = |v: &[f64]| keep.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        let (account, side): (Vec<u64>, Vec<i8>) = keep.iter().map(|&i| (c.account[i], c.side[i])).unzip();
        let (qty, entry, margin) = (pick(&c.qty), pick(&c.entry), pick(&c.margin));
        let cols = _adl::core::PositionColumns {
            account: &account,
            market: &[],
            side: &side,
            qty: &qty,
            entry: &entry,
            margin: &margin,
            adl_cap: &[],
            cross: &[],
        };
        let mut eng = synth::new_engine();
        eng.load(cols, &synth::symbols(), None, None).expect("load");
        eng.set_marks(&synth::marks(MARK), None).expect("marks");
        let queue: Vec<u32> = eng.ranking(0, Side::Long).expect("index").queue().map(|(_, slot)| slot).collect();
        let members = [queue[0], queue[queue.len() / 10], queue[queue.len() / 2]];
        for (at, &slot) in ["head", "10 %", "50 %"].iter().zip(&members) {
            let t = Instant::now();
            let fast = eng.adl_marks(0, Side::Long, 0.005, 0.5, Some(slot)).expect("preview");
            let fast_t = t.elapsed();
            let t = Instant::now();
            let brute = eng.adl_marks_brute(0, Side::Long, 0.005, 0.5, Some(slot)).expect("preview");
            let brute_t = t.elapsed();
            assert_eq!(fast, brute);
            println!(
                "preview/account/100k ({} rows at rest), long at the {at} of the queue: adl_marks {:.3} s, every trial run {:.3} s (mark {:?})",
                keep.len(),
                fast_t.as_secs_f64(),
                brute_t.as_secs_f64(),
                fast[0].1
            );
        }
        let mut next = 0;
        b.iter(|| {
            next = (next + 1) % members.len();
            black_box(eng.adl_marks(0, Side::Long, 0.005, 0.5, Some(members[next])).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, stateless, engine_1m, policies_1m, engine_load_10m, preview_100k);
criterion_main!(benches);
