//! Units: sides, fixed-point grids and exact rounding, errors. Depends on nothing else here.

pub mod error;
pub mod fixed;
pub mod side;
