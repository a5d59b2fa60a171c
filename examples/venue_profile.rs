//! CPU time of the venue-book workloads of `benches/venue_book.py` in Rust, for profiling
//! (`perf record`) without Python. The book comes from CSV files that `adl.venue_book` writes:
//!
//! ```text
//! import adl, polars as pl
//! text = lambda f: f.with_columns(pl.col("side", "margin_mode").cast(pl.Utf8))
//! v = adl.venue_book(N, seed=1)
//! text(v.positions).write_csv(f"DIR/pos{N}.csv")
//! v.accounts.write_csv(f"DIR/acc{N}.csv")
//! adl.crash_path(start=v.marks, drop=0.1, steps=1000, duration=10, rebound=0.3, seed=1).write_csv(f"DIR/path{N}.csv")
//! text(adl.venue_book(N, seed=1, cross_share=0.0).positions).write_csv(f"DIR/pos{N}iso.csv")
//! ```
//!
//! `cargo run --profile bench --example venue_profile DIR N [cascade|iso|marks|interleaved SYMBOL [ROUNDS]|preview K]`:
//! the 1,000-step cascade (35 % cross, or the same positions all isolated), the path's marks
//! alone, ROUNDS (default 50) rounds of one symbol's mark ±0.1 % then ten forced liquidations
//! in it (p99.9 and max need a few hundred rounds to differ), or the
//! preview (`adl_marks`, step 0.5 %, up to 50 %, fund 1,000,000) of K random positions and
//! one engine copy.
//! `cascade` and `iso` take the policy as a fifth argument (default `bitmex`), and the number
//! of the path's steps to run as a sixth (default all; fewer for callgrind).
//! `memory [POLICY [iso]]` counts the heap bytes the engine holds per position after the load
//! and after every market side's queue is built (a pro-rata policy's index included; no fill
//! log is kept), then the engine's own breakdown by structure (`Engine::footprint`); `iso`
//! loads the same positions all isolated (the difference is the cross structures).
//! `reads [K]` ranks every market side, then times the whole-book indicator and
//! `account_view` (an account's positions with their queue places) of K (default 2,000)
//! random accounts, as `benches/venue_book.py` part (c) does from Python.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use _adl::core::OwnedColumns;
use _adl::core::{Engine, MarketSpec, Policy, Request, Side};
use _adl::core::{Simulation, Slippage};

const SYMBOLS: [(&str, u32, u32); 5] = [("BTC", 3, 1), ("DOGE", 0, 5), ("ETH", 3, 2), ("SOL", 2, 3), ("XRP", 0, 4)];

/// The system allocator, counting the bytes live on the heap once `COUNT` is set (`memory`
/// only: the timed modes pay one plain load per call).
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicBool = AtomicBool::new(false);

fn count(delta: isize) {
    if COUNT.load(Ordering::Relaxed) {
        LIVE.fetch_add(delta as usize, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size() as isize);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(-(l.size() as isize));
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, size: usize) -> *mut u8 {
        count(size as isize - l.size() as isize);
        System.realloc(p, l, size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, out: *mut Timespec) -> i32;
}

/// CPU time of this thread in seconds (Linux `CLOCK_THREAD_CPUTIME_ID`): the machine is
/// shared, so wall time would count other processes' turns.
fn cpu() -> f64 {
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `t` is a valid timespec; clock 3 is CLOCK_THREAD_CPUTIME_ID on Linux.
    assert_eq!(unsafe { clock_gettime(3, &mut t) }, 0);
    t.sec as f64 + t.nsec as f64 * 1e-9
}

/// A stopwatch of CPU time.
struct Watch(f64);
impl Watch {
    fn start() -> Watch {
        Watch(cpu())
    }
    fn secs(&self) -> f64 {
        cpu() - self.0
    }
}

fn read(path: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines().skip(1).map(|l| l.split(',').map(str::to_string).collect()).collect()
}

fn engine(dir: &str, n: usize, isolated: bool, policy: Policy) -> (Engine, BTreeMap<String, f64>) {
    engine_counted(dir, n, isolated, policy).0
}

/// `engine`, and the heap bytes the engine took over its load and first marks (the inputs,
/// still live, are not counted).
fn engine_counted(dir: &str, n: usize, isolated: bool, policy: Policy) -> ((Engine, BTreeMap<String, f64>), usize) {
    let mut e = Engine::new(policy, 0.0, 8, MarketSpec::linear(4, 4, 0.005)).unwrap();
    for (s, q, p) in SYMBOLS {
        e.add_market(s, MarketSpec::linear(q, p, 0.005)).unwrap();
    }
    let rows = read(&format!("{dir}/pos{n}{}.csv", if isolated { "iso" } else { "" }));
    let names: Vec<String> = SYMBOLS.iter().map(|s| s.0.to_string()).collect();
    let code = |s: &str| names.iter().position(|x| x == s).unwrap() as u32;
    let cols = OwnedColumns {
        account: rows.iter().map(|r| r[0].parse().unwrap()).collect(),
        market: rows.iter().map(|r| code(&r[1])).collect(),
        side: rows.iter().map(|r| if r[2] == "long" { 1 } else { -1 }).collect(),
        qty: rows.iter().map(|r| r[3].parse().unwrap()).collect(),
        entry: rows.iter().map(|r| r[4].parse().unwrap()).collect(),
        margin: rows.iter().map(|r| r[5].parse().unwrap()).collect(),
        adl_cap: Vec::new(),
        cross: rows.iter().map(|r| (r[6] == "cross") as u8).collect(),
    };
    let acc = read(&format!("{dir}/acc{n}.csv"));
    let ids: Vec<u64> = acc.iter().map(|r| r[0].parse().unwrap()).collect();
    let cash: Vec<f64> = acc.iter().map(|r| r[1].parse().unwrap()).collect();
    let accounts = if isolated { None } else { Some((&ids[..], &cash[..])) };
    let before = LIVE.load(Ordering::Relaxed);
    e.load(cols.view(), &names, accounts, None).unwrap();
    let marks: BTreeMap<String, f64> = [("BTC", 60_000.0), ("ETH", 3_000.0), ("SOL", 150.0), ("DOGE", 0.15), ("XRP", 0.5)]
        .iter()
        .map(|&(s, m)| (s.to_string(), m))
        .collect();
    let list: Vec<(String, f64)> = marks.iter().map(|(s, &m)| (s.clone(), m)).collect();
    e.set_marks(&list, Some(0)).unwrap();
    let grown = LIVE.load(Ordering::Relaxed).wrapping_sub(before);
    ((e, marks), grown)
}

/// Heap bytes per position the engine holds after the load, and after every side's queue.
fn memory(dir: &str, n: usize, policy: Policy, isolated: bool) {
    COUNT.store(true, Ordering::Relaxed);
    let ((mut e, _), loaded) = engine_counted(dir, n, isolated, policy);
    e.set_keep_fills(false);
    let before = LIVE.load(Ordering::Relaxed);
    let names: Vec<String> = SYMBOLS.iter().map(|s| s.0.to_string()).collect();
    for s in &names {
        let m = e.market_id(s).unwrap();
        for side in [Side::Long, Side::Short] {
            e.ranking(m, side).unwrap();
        }
    }
    let queues = LIVE.load(Ordering::Relaxed).wrapping_sub(before);
    let (positions, cross) = (e.store().len(), e.store().iter().filter(|(_, p)| p.cross).count());
    let per = |b: usize| b as f64 / positions as f64;
    println!(
        "memory {}{} n={n}: {positions} positions ({cross} cross): load {:.1} B/position, queues {:.1} B/position, total {:.1} B/position",
        policy.name(),
        if isolated { " isolated" } else { "" },
        per(loaded),
        per(queues),
        per(loaded + queues)
    );
    let parts = e.footprint();
    for (name, bytes) in &parts {
        println!("  {name:<28} {:6.1} B/position", per(*bytes));
    }
    println!("  {:<28} {:6.1} B/position", "sum of the parts", per(parts.iter().map(|p| p.1).sum()));
}

fn cascade(dir: &str, n: usize, isolated: bool, policy: Policy, steps_run: usize) {
    let (mut e, _) = engine(dir, n, isolated, policy);
    e.set_keep_fills(false);
    let path = read(&format!("{dir}/path{n}.csv"));
    let mut steps: BTreeMap<i64, Vec<(u32, f64)>> = BTreeMap::new();
    for r in &path {
        let m = e.market_id(&r[1]).unwrap();
        steps.entry(r[0].parse().unwrap()).or_default().push((m, r[2].parse().unwrap()));
    }
    let mut sim = Simulation::new(e, Slippage { bps_per_million: 5.0, window: 60_000, max_bps: 500.0 }).unwrap();
    let t = Watch::start();
    let (mut liquidations, mut fills, mut lots) = (0, 0, 0);
    for (ts, marks) in steps.iter().take(steps_run) {
        let out = sim.step(marks, *ts, &[]).unwrap();
        liquidations += out.liquidations.len();
        fills += out.adl_fills;
        lots += out.liquidations.iter().map(|(l, _, _)| l.adl_lots).sum::<i64>();
    }
    let secs = t.secs();
    let kind = if isolated { "isolated" } else { "venue" };
    println!("cascade {kind} {} n={n}: {secs:.3} s, {liquidations} liquidations, {fills} ADL fills, {lots} ADL lots", policy.name());
}

/// Only the path's marks, no liquidations.
fn marks_only(dir: &str, n: usize) {
    let (mut e, _) = engine(dir, n, false, Policy::Bitmex);
    let path = read(&format!("{dir}/path{n}.csv"));
    let mut steps: BTreeMap<i64, Vec<(String, f64)>> = BTreeMap::new();
    for r in &path {
        steps.entry(r[0].parse().unwrap()).or_default().push((r[1].clone(), r[2].parse().unwrap()));
    }
    let cross = e.store().iter().filter(|(_, p)| p.cross).count();
    let t = Watch::start();
    for (ts, marks) in &steps {
        e.set_marks(marks, Some(*ts)).unwrap();
    }
    let dt = t.secs();
    println!(
        "marks only n={n}: {} steps, {cross} cross positions: {:.3} s, {:.1} ns per cross position and step",
        steps.len(),
        dt,
        dt / steps.len() as f64 / cross as f64 * 1e9
    );
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn interleaved(dir: &str, n: usize, symbol: &str, rounds: usize) {
    let (mut e, marks) = engine(dir, n, false, Policy::Bitmex);
    let market = e.market_id(symbol).unwrap();
    let mut picks: Vec<(u64, Side, bool)> =
        e.store().iter().filter(|(_, p)| p.market == market).map(|(_, p)| (p.account, p.side, p.cross)).collect();
    // A fixed shuffle.
    let mut x = 0x9E37_79B9u64;
    for i in (1..picks.len()).rev() {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        picks.swap(i, (x >> 33) as usize % (i + 1));
    }
    let (mut set, mut first, mut others, mut liquidations) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut done = std::collections::HashSet::new();
    for r in 0..rounds {
        let mut list: Vec<(String, f64)> = marks.iter().map(|(s, &m)| (s.clone(), m)).collect();
        let mark = marks[symbol] * (1.0 + if r % 2 == 0 { 0.001 } else { -0.001 });
        list.iter_mut().find(|(s, _)| s == symbol).unwrap().1 = mark;
        let t = Watch::start();
        e.set_marks(&list, None).unwrap();
        let dt_marks = t.secs();
        set.push(dt_marks);
        for (i, &(account, side, cross)) in picks[r * 10..(r + 1) * 10].iter().enumerate() {
            if done.contains(&account) {
                continue;
            }
            let t = Watch::start();
            let ok = if cross {
                done.insert(account);
                e.liquidate_account(account, true, false).is_ok()
            } else {
                e.liquidate(Request { account, market, side, fill_price: None, force: true, partial: false }, false).is_ok()
            };
            let dt = t.secs();
            if !ok {
                continue;
            }
            liquidations.push(dt);
            if i == 0 {
                first.push(dt_marks + dt);
            } else {
                others.push(dt);
            }
        }
    }
    println!(
        "interleaved {symbol} n={n}: set_marks p50 {:.3} ms, +first p50 {:.3} ms, others p99 {:.1} µs (p99.9 {:.1} µs, \
         max {:.1} µs; the first ones included, max {:.1} µs)",
        quantile(&mut set, 0.5) * 1e3,
        quantile(&mut first, 0.5) * 1e3,
        quantile(&mut others, 0.99) * 1e6,
        quantile(&mut others, 0.999) * 1e6,
        quantile(&mut others, 1.0) * 1e6,
        liquidations.iter().fold(0.0f64, |a, &b| a.max(b)) * 1e6
    );
}

/// `adl_marks` of `k` random positions (a fixed shuffle), one at a time, and what one copy
/// of the engine costs (each trial runs on one).
fn preview(dir: &str, n: usize, k: usize) {
    let (mut e, _) = engine(dir, n, false, Policy::Bitmex);
    // As `benches/venue_book.py` part (c): an insurance fund of 1,000,000.
    e.set_fund(1e6, "default").unwrap();
    let t = Watch::start();
    let copy = e.clone();
    let dt_clone = t.secs();
    drop(copy);
    let mut slots: Vec<u32> = e.store().iter().map(|(s, _)| s).collect();
    let mut x = 0x9E37_79B9u64;
    for i in (1..slots.len()).rev() {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        slots.swap(i, (x >> 33) as usize % (i + 1));
    }
    let mut times = Vec::new();
    for &slot in slots.iter().take(k) {
        let p = e.store().get(slot);
        let t = Watch::start();
        let found = e.adl_marks(p.market, p.side, 0.005, 0.5, Some(slot)).unwrap();
        times.push(t.secs());
        println!("  {} {:?} cross={} -> {:?}: {:.3} s", e.market(p.market).name, p.side, p.cross, found[0].1, times.last().unwrap());
    }
    println!("preview n={n}: engine copy {:.3} s; adl_marks of one position p50 {:.3} s over {k}", dt_clone, quantile(&mut times, 0.5));
}

/// The per-request read of one account (its positions with their queue places) and the
/// whole-book indicator, once every side is ranked.
fn reads(dir: &str, n: usize, k: usize) {
    let (mut e, _) = engine(dir, n, false, Policy::Bitmex);
    let markets: Vec<u32> = SYMBOLS.iter().map(|s| e.market_id(s.0).unwrap()).collect();
    for &m in &markets {
        for side in [Side::Long, Side::Short] {
            e.ranking(m, side).unwrap();
        }
    }
    let t = Watch::start();
    let rows: usize =
        markets.iter().flat_map(|&m| [Side::Long, Side::Short].map(|s| (m, s))).map(|(m, s)| e.indicator(m, s).unwrap().len()).sum();
    let dt_indicator = t.secs();
    let mut accounts: Vec<u64> = e.store().iter().map(|(_, p)| p.account).collect();
    accounts.sort_unstable();
    accounts.dedup();
    let mut x = 0x9E37_79B9u64;
    for i in (1..accounts.len()).rev() {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        accounts.swap(i, (x >> 33) as usize % (i + 1));
    }
    let (mut times, mut queued) = (Vec::new(), 0);
    for &a in accounts.iter().take(k) {
        let t = Watch::start();
        let view = e.account_view(a).unwrap();
        times.push(t.secs());
        queued += view.positions.iter().filter(|p| p.queue.is_some()).count();
    }
    println!(
        "reads n={n}: indicator of every side {:.1} ms ({rows} rows); account_view p50 {:.2} µs, p99 {:.2} µs over {} accounts ({queued} queue places)",
        dt_indicator * 1e3,
        quantile(&mut times, 0.5) * 1e6,
        quantile(&mut times, 0.99) * 1e6,
        times.len()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (dir, n) = (&args[1], args[2].parse().unwrap());
    match args.get(3).map(String::as_str).unwrap_or("cascade") {
        "cascade" | "iso" => {
            let policy = Policy::parse(args.get(4).map_or("bitmex", String::as_str)).unwrap();
            let steps = args.get(5).map_or(usize::MAX, |k| k.parse().unwrap());
            cascade(dir, n, args.get(3).is_some_and(|a| a == "iso"), policy, steps)
        }
        "interleaved" => interleaved(dir, n, &args[4], args.get(5).map_or(50, |r| r.parse().expect("rounds"))),
        "marks" => marks_only(dir, n),
        "reads" => reads(dir, n, args.get(4).map_or(2_000, |k| k.parse().unwrap())),
        "preview" => preview(dir, n, args.get(4).map_or(5, |k| k.parse().unwrap())),
        "memory" => {
            let policy = Policy::parse(args.get(4).map_or("bitmex", String::as_str)).unwrap();
            memory(dir, n, policy, args.get(5).is_some_and(|a| a == "iso"))
        }
        other => panic!("unknown mode {other}"),
    }
}
