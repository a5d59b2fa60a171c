//! The pure-Rust ADL core: no Python here. `cargo test` builds and tests it alone.
//!
//! Layers, each depending only on those above it in this list (`tests/rust/layers.rs`
//! fails on an upward or cyclic import):
//! - `units`: sides, fixed-point grids and exact rounding, errors;
//! - `market`: instruments (spec, grids, maintenance tiers, fees), no position state;
//! - `book`: positions, input columns, cross accounts, funds and the trigger;
//! - `policy`: scores, ranking indexes, side queues, allocation kernels;
//! - `engine`: the stateful engine (waterfall, records, views, simulation) and the stateless calls;
//! - `persist`: codec, snapshots, the operation log.

// In layer order (rustfmt keeps groups separated by blank lines in place).
pub mod units;

pub mod market;

pub mod book;

pub mod policy;

pub mod engine;

pub mod persist;

pub use book::funds::Change;
pub use book::input::PositionColumns;
pub use book::trigger::{AdlState, Trigger};
pub use engine::audit::SolvencyBaseline;
pub use engine::simulate::{Simulation, Slippage};
pub use engine::stateless::{deleverage, rank, MarketTable};
pub use engine::views::IndicatorRow;
pub use engine::{Engine, Fill, FillKind, Liquidation, PassedOver, Request, Totals};
pub use market::tiers::{TierSpec, Tiers};
pub use market::{FeeConvention, MarketSpec};
pub use persist::oplog::{replay, replay_bytes, Journal, OpLog, ReplayInfo, SyncPolicy};
pub use persist::ops::{Op, OpOutput, OwnedColumns};
pub use policy::alloc::PassReason;
pub use policy::score::{AdlPrice, Fraction, Lights, Policy};
pub use units::error::{AdlError, Result};
pub use units::fixed::Grid;
pub use units::side::Side;
