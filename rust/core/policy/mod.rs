//! The policy layer: ADL scores, ranking indexes, side queues and the allocation kernels.
//! Depends on `units`, `market` and `book`.

pub mod alloc;
pub mod dydx;
pub mod kernel;
pub mod lazy_order;
pub mod pro_rata_index;
#[cfg(test)]
mod pro_rata_tests;
pub mod prorata;
pub mod queues;
pub mod ranking;
pub mod score;
pub mod scoring;
