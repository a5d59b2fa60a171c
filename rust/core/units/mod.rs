//! Units: sides, fixed-point grids and exact rounding, errors, heap footprints. Depends on nothing else here.

pub mod error;
pub mod fixed;
pub mod footprint;
pub mod side;
