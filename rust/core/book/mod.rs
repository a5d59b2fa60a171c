//! The book layer: positions and their store, input columns, cross-margin accounts, insurance
//! funds and their trigger, partial closes. Depends on `units` and `market`.

pub mod cross;
pub mod cross_bounds;
pub mod cross_totals;
pub mod funds;
pub mod input;
pub mod partial;
pub mod position;
pub mod trigger;
