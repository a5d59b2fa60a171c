//! The pure-Rust ADL core: no Python here. `cargo test` builds and tests it alone.

pub mod alloc;
pub mod audit;
pub mod codec;
pub mod cross;
pub mod dydx;
pub mod engine;
pub mod error;
pub mod fees;
pub mod files;
pub mod fixed;
pub mod funds;
pub mod input;
pub mod labels;
pub mod market;
pub mod oplog;
pub mod partial;
pub mod position;
pub mod preview;
pub mod ranking;
pub mod score;
pub mod scoring;
pub mod simulate;
pub mod snapshot;
pub mod stateless;
pub mod tiers;
pub mod trigger;
pub mod undo;
pub mod updates;
pub mod views;

pub use alloc::PassReason;
pub use engine::{Engine, Fill, FillKind, Liquidation, PassedOver, Request, Totals};
pub use error::{AdlError, Result};
pub use market::{FeeConvention, MarketSpec};
pub use score::Policy;
pub use tiers::TierSpec;
