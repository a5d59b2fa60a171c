//! `adl`: exchange auto-deleveraging. The core (`core`) is plain Rust; the Python bindings
//! (`py`) are compiled only with the `python` feature, which maturin turns on.

pub mod core;

#[cfg(feature = "python")]
mod py;
