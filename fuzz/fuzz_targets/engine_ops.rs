//! Coverage-guided fuzzing of the engine: the input bytes become a book and a stream of
//! operations (marks, liquidations, batches, cross accounts, upserts, closes, fund changes),
//! and the docs/model.md §2 invariants are checked after every operation (see `ops.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../ops.rs"]
mod ops;

fuzz_target!(|data: &[u8]| {
    ops::run(data);
});
