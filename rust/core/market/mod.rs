//! The market layer: what an instrument is (spec, grids, maintenance tiers, fees), without
//! any position or queue state. Depends on `units`.

pub mod fees;
pub mod instrument;
pub mod spec;
pub mod tiers;

pub use spec::{FeeConvention, MarketSpec, NO_POOL};
