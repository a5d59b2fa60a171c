//! The book layer: positions and their store, input columns, cross-margin accounts and the
//! heap their bands are filed in, insurance funds and their trigger, partial closes. Depends
//! on `units` and `market`.

pub mod account_index;
pub mod cross;
pub mod cross_account;
pub mod cross_bounds;
pub mod cross_sums;
pub mod cross_totals;
pub mod funds;
pub mod input;
pub mod partial;
pub mod position;
pub mod swept_heap;
pub mod trigger;
