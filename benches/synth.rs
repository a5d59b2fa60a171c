//! Deterministic synthetic order books for the benches and `examples/load_memory.rs`
//! (included there with `#[path]`). No dependencies: splitmix64 + Box-Muller.
//!
//! One market "BTC-PERP" (qty 4 decimals, price 2, cash 8), mark 100. Rows alternate long /
//! short. Entries are lognormal around the mark (σ = 1 %), leverage is uniform in [2, 50],
//! margin = qty·entry/leverage, qty is lognormal (median 0.2, σ = 1) and rounded to lots.
//! The first `n_bankrupt` long rows are instead small positions that are bankrupt at the
//! mark (entry 103–104, 40x: bankruptcy price ≈ 100.4–101.4 > mark), so liquidating one
//! runs the fund (empty in the benches) and ADL against the short queue.
#![allow(dead_code)]

use _adl::core::OwnedColumns;
use _adl::core::PositionColumns;
use _adl::core::{Engine, MarketSpec, Policy, Request, Side};

pub const SYMBOL: &str = "BTC-PERP";
pub const MARK: f64 = 100.0;
/// Second mark used to invalidate the ranking index; every synthetic bankrupt row is
/// bankrupt at both marks.
pub const MARK_ALT: f64 = 100.01;
pub const SPEC: MarketSpec = MarketSpec::linear(4, 2, 0.005);
pub const CASH_DECIMALS: u32 = 8;
/// Quantity of each synthetic bankrupt long (about five average short positions).
pub const BANKRUPT_QTY: f64 = 1.5;

/// splitmix64.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    /// Uniform in [0, 1).
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Standard normal (Box-Muller, one value per call).
    #[inline]
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// The splitmix64 finaliser: a bijection on u64, so distinct row numbers give distinct,
/// scattered account ids.
#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn round_to(x: f64, decimals: i32) -> f64 {
    let s = 10f64.powi(decimals);
    (x * s).round() / s
}

/// A synthetic book (all rows in market code 0).
pub struct Book {
    pub columns: OwnedColumns,
    /// Accounts of the bankrupt longs (rows 0, 2, 4, …).
    pub bankrupt: Vec<u64>,
}

impl Book {
    /// `n` rows, `n_bankrupt` (<= n/2) of the longs bankrupt at the mark.
    pub fn generate(n: usize, n_bankrupt: usize, seed: u64) -> Book {
        assert!(n_bankrupt <= n / 2);
        let mut rng = Rng::new(seed);
        let mut b = Book {
            columns: OwnedColumns {
                account: Vec::with_capacity(n),
                market: vec![0; n],
                side: Vec::with_capacity(n),
                qty: Vec::with_capacity(n),
                entry: Vec::with_capacity(n),
                margin: Vec::with_capacity(n),
                adl_cap: Vec::new(),
                cross: Vec::new(),
            },
            bankrupt: Vec::with_capacity(n_bankrupt),
        };
        for i in 0..n {
            let account = mix(seed ^ (i as u64 + 1));
            let side: i8 = if i % 2 == 0 { 1 } else { -1 };
            let (qty, entry, lev) = if side == 1 && i / 2 < n_bankrupt {
                b.bankrupt.push(account);
                (BANKRUPT_QTY, round_to(103.0 + rng.uniform(), 2), 40.0)
            } else {
                let qty = round_to(0.2 * (1.0 * rng.normal()).exp(), 4).clamp(0.0001, 10_000.0);
                let entry = round_to(MARK * (0.01 * rng.normal()).exp(), 2).max(0.01);
                (qty, entry, 2.0 + 48.0 * rng.uniform())
            };
            b.columns.account.push(account);
            b.columns.side.push(side);
            b.columns.qty.push(qty);
            b.columns.entry.push(entry);
            b.columns.margin.push(qty * entry / lev);
        }
        b
    }

    pub fn len(&self) -> usize {
        self.columns.account.len()
    }

    pub fn cols(&self) -> PositionColumns<'_> {
        self.columns.view()
    }

    /// Σ qty of one side.
    pub fn open_interest(&self, side: i8) -> f64 {
        self.columns.side.iter().zip(&self.columns.qty).filter(|(&s, _)| s == side).map(|(_, &q)| q).sum()
    }

    /// Liquidation requests for the bankrupt longs, fill at the mark.
    pub fn bankrupt_requests(&self) -> Vec<Request> {
        self.bankrupt
            .iter()
            .map(|&account| Request { account, market: 0, side: Side::Long, fill_price: None, force: false, partial: false })
            .collect()
    }
}

pub fn symbols() -> Vec<String> {
    vec![SYMBOL.to_string()]
}

pub fn marks(mark: f64) -> Vec<(String, f64)> {
    vec![(SYMBOL.to_string(), mark)]
}

/// An empty engine: BitMEX ranking, empty insurance fund (so bankrupt positions go to ADL).
pub fn new_engine() -> Engine {
    Engine::new(Policy::Bitmex, 0.0, CASH_DECIMALS, SPEC.clone()).expect("engine")
}

/// An engine loaded with `book`, marked at `MARK`.
pub fn loaded_engine(book: &Book) -> Engine {
    let mut e = new_engine();
    e.load(book.cols(), &symbols(), None, None).expect("load");
    e.set_marks(&marks(MARK), None).expect("marks");
    e
}
