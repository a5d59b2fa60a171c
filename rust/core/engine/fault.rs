//! Fault injection for tests, compiled in debug builds only (`cargo test`, `maturin
//! develop`): `panic_at_step(n)` makes the n-th liquidation applied from now on, on this
//! thread, panic halfway (its positions changed, its ledgers not yet booked).

use std::cell::Cell;

thread_local! {
    static COUNTDOWN: Cell<u64> = const { Cell::new(0) };
}

/// Arms the fault for the `n`-th next step (0 disarms it).
pub fn panic_at_step(n: u64) {
    COUNTDOWN.with(|c| c.set(n));
}

pub(crate) fn step() {
    COUNTDOWN.with(|c| match c.get() {
        0 => {}
        1 => {
            c.set(0);
            panic!("injected fault");
        }
        n => c.set(n - 1),
    });
}
