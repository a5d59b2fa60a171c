//! The fuzz target's program (`fuzz/ops.rs`) on seeded random inputs, so that plain
//! `cargo test` exercises every invariant it checks; `cargo fuzz run engine_ops` explores
//! further, guided by coverage.

#[path = "../../fuzz/ops.rs"]
mod ops;

#[test]
fn random_operation_streams_keep_every_invariant() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let inputs: usize = std::env::var("ADL_FUZZ_INPUTS").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000);
    for _ in 0..inputs {
        let len = 16 + (next() % 400) as usize;
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        ops::run(&data);
    }
    let n = ops::OPS.load(std::sync::atomic::Ordering::Relaxed);
    assert!(n > inputs as u64 * 5, "too few operations succeeded: {n}");
    eprintln!("{n} operations checked over {inputs} inputs");
}
