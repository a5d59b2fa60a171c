//! Resident memory of the engine per position: `cargo run --release --example load_memory [ROWS]`.
//!
//! Builds the synthetic input columns (default 10M rows, see `benches/synth.rs`), then reads
//! VmRSS from /proc/self/status after the inputs exist, after `Engine::load`, and after both
//! ranking indexes are built. The inputs (37 bytes/row) stay allocated throughout, so the
//! growth from the first reading is the engine's own memory. Linux only.

use std::time::Instant;

use _adl::core::Side;

#[path = "../benches/synth.rs"]
mod synth;

/// A field of /proc/self/status in bytes (`VmRSS`, `VmHWM`, …).
fn status_bytes(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = s.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("{field} not in /proc/self/status"));
    let kb: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("kB value");
    kb * 1024
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn main() {
    let n: usize = std::env::args().nth(1).map(|a| a.parse().expect("ROWS")).unwrap_or(10_000_000);
    let base = status_bytes("VmRSS:");

    let book = synth::Book::generate(n, 0, 0x00AD_1BE7);
    let after_inputs = status_bytes("VmRSS:");
    println!("rows: {n}");
    println!("baseline RSS:             {:>9.1} MiB", mib(base));
    println!("input columns:            {:>9.1} MiB  ({:.1} bytes/row)", mib(after_inputs - base), (after_inputs - base) as f64 / n as f64);

    let mut eng = synth::new_engine();
    let t = Instant::now();
    eng.load(book.cols(), &synth::symbols(), None, None).expect("load");
    let load_s = t.elapsed().as_secs_f64();
    let after_load = status_bytes("VmRSS:");
    let peak_load = status_bytes("VmHWM:");

    eng.set_marks(&synth::marks(synth::MARK), None).expect("marks");
    let t = Instant::now();
    let longs = eng.ranking(0, Side::Long).expect("long index").len();
    let shorts = eng.ranking(0, Side::Short).expect("short index").len();
    let index_s = t.elapsed().as_secs_f64();
    let after_index = status_bytes("VmRSS:");
    let peak_index = status_bytes("VmHWM:");

    let per = |b: u64| (b - after_inputs) as f64 / n as f64;
    println!(
        "engine after load:        {:>9.1} MiB  ({:.1} bytes/position)  load {:.2} s",
        mib(after_load - after_inputs),
        per(after_load),
        load_s
    );
    println!(
        "engine after both indexes:{:>9.1} MiB  ({:.1} bytes/position)  build {:.2} s ({longs} long + {shorts} short ranked)",
        mib(after_index - after_inputs),
        per(after_index),
        index_s
    );
    println!(
        "peak (VmHWM) over inputs: {:>9.1} MiB during load ({:.1} bytes/position), {:.1} MiB by the end ({:.1} bytes/position)",
        mib(peak_load - after_inputs),
        per(peak_load),
        mib(peak_index - after_inputs),
        per(peak_index)
    );
    println!("target: <= 128 bytes/position -> {}", if per(after_index) <= 128.0 { "met" } else { "NOT met" });
    std::hint::black_box(&eng);
}
