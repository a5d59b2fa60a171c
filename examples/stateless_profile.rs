//! Timing loop of the stateless `deleverage` (bitmex) for profiling without Python. The book is
//! the one of `benches/stateless_deleverage.py`, written as raw little-endian columns:
//!
//! ```text
//! import sys; sys.path.insert(0, "benches"); import stateless_deleverage as b
//! df = b.make_book(1_000_000); qty, price = b.event(df)
//! for c in ["account", "side", "qty", "entry_price", "margin"]: df[c].to_numpy().tofile(f"DIR/{c}.bin")
//! open("DIR/event.txt", "w").write(f"{qty} {price}\n")
//! ```
//!
//! `cargo run --profile bench --example stateless_profile DIR [ITERATIONS]`: prints the best and
//! median wall time and the CPU time per call (all threads).

use _adl::core::{deleverage, Grid, MarketTable, Policy, PositionColumns, Side};

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}
extern "C" {
    fn clock_gettime(clock: i32, t: *mut Timespec) -> i32;
}

fn cpu_seconds() -> f64 {
    const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: a valid clock id and a pointer to a live Timespec.
    unsafe { clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.sec as f64 + t.nsec as f64 * 1e-9
}

fn read<T, const W: usize>(dir: &str, name: &str, f: fn([u8; W]) -> T) -> Vec<T> {
    let bytes = std::fs::read(format!("{dir}/{name}.bin")).expect("column file");
    bytes.chunks_exact(W).map(|c| f(c.try_into().expect("width"))).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = &args[1];
    let iterations: usize = args.get(2).map_or(200, |s| s.parse().expect("iterations"));
    let account = read(dir, "account", u64::from_le_bytes);
    let side = read(dir, "side", i8::from_le_bytes);
    let qty = read(dir, "qty", f64::from_le_bytes);
    let entry = read(dir, "entry_price", f64::from_le_bytes);
    let margin = read(dir, "margin", f64::from_le_bytes);
    let event = std::fs::read_to_string(format!("{dir}/event.txt")).expect("event.txt");
    let (q, price) = event.trim().split_once(' ').map(|(a, b)| (a.parse::<f64>().unwrap(), b.parse::<f64>().unwrap())).unwrap();
    let cols = PositionColumns {
        account: &account,
        market: &[],
        side: &side,
        qty: &qty,
        entry: &entry,
        margin: &margin,
        adl_cap: &[],
        cross: &[],
    };
    let grids = [Grid::new(4, 2, 8).unwrap()];
    let names = ["X".to_string()];
    let table = MarketTable { grids: &grids, marks: &[100.0], rates: &[0.005], names: &names };
    let call = || deleverage(&cols, &table, Policy::Bitmex, 0, Side::Long, q, price, 0, None).unwrap();
    let fills = call();
    let lots: i64 = fills.iter().map(|f| f.lots).sum();
    let check = fills.iter().fold(0u64, |h, f| h.wrapping_mul(1_000_003).wrapping_add(f.row as u64 ^ (f.lots as u64) << 32));
    println!("{} rows, qty {q} at {price}: {} fills, {lots} lots, checksum {check:016x}", account.len(), fills.len());
    let mut walls = Vec::with_capacity(iterations);
    let cpu0 = cpu_seconds();
    for _ in 0..iterations {
        let t = std::time::Instant::now();
        std::hint::black_box(call());
        walls.push(t.elapsed().as_secs_f64());
    }
    let cpu = (cpu_seconds() - cpu0) / iterations as f64;
    walls.sort_by(f64::total_cmp);
    println!(
        "best {:.3} ms, median {:.3} ms, CPU {:.3} ms per call ({iterations} calls)",
        walls[0] * 1e3,
        walls[iterations / 2] * 1e3,
        cpu * 1e3
    );
}
