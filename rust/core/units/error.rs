//! One error type for the core. Every fallible call validates before it mutates, so an
//! error always means "nothing changed".

use crate::core::units::side::Side;

pub type Result<T> = std::result::Result<T, AdlError>;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdlError {
    /// A value of an input column is invalid (NaN, out of range, wrong sign, bad code...).
    #[error("{field}[row {row}]: {message}")]
    InvalidValue { field: String, row: usize, message: String },
    /// A parameter (not a column) is invalid.
    #[error("{field}: {message}")]
    InvalidParameter { field: String, message: String },
    /// Two rows share an engine key (account, symbol, side).
    #[error("duplicate position (account={account}, symbol={symbol}, side={}) at row {row} (first seen at row {first_row})", side.name())]
    DuplicateKey { account: u64, symbol: String, side: Side, row: usize, first_row: usize },
    #[error("unknown position (account={account}, symbol={symbol}, side={})", side.name())]
    UnknownPosition { account: u64, symbol: String, side: Side },
    #[error("unknown market {symbol:?}")]
    UnknownMarket { symbol: String },
    #[error("market {symbol:?} has no mark price; call set_marks first")]
    NoMark { symbol: String },
    #[error("position (account={account}, symbol={symbol}, side={}) is above maintenance (equity {equity} >= maintenance {maintenance}); pass force=True to liquidate anyway", side.name())]
    NotLiquidatable { account: u64, symbol: String, side: Side, equity: f64, maintenance: f64 },
    #[error("insufficient ADL liquidity: requested {requested}, the opposite side holds {available} eligible, missing {missing}")]
    InsufficientLiquidity { requested: f64, available: f64, missing: f64 },
    #[error("arithmetic overflow in {context}: the values exceed the fixed-point range")]
    Overflow { context: String },
    /// A snapshot or operation log is truncated, corrupted or of an unknown version.
    #[error("corrupt {what}: {message}")]
    Corrupt { what: String, message: String },
    /// Reading or writing a file failed.
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    /// An error about one row of a batch whose own error does not name the row.
    #[error("row {row}: {source}")]
    Row { row: usize, source: Box<AdlError> },
    /// A bug: a panic inside the core, caught before it could leave a half-applied state.
    #[error("internal error (please report): {message}")]
    Internal { message: String },
}

impl AdlError {
    pub fn value(field: &str, row: usize, message: impl Into<String>) -> AdlError {
        AdlError::InvalidValue { field: field.to_string(), row, message: message.into() }
    }
    pub fn config(field: &str, message: impl Into<String>) -> AdlError {
        AdlError::InvalidParameter { field: field.to_string(), message: message.into() }
    }
    pub fn overflow(context: &str) -> AdlError {
        AdlError::Overflow { context: context.to_string() }
    }
}

/// Checked arithmetic on i128 cash that reports overflow as an error instead of panicking.
pub trait Checked: Sized {
    fn add_c(self, other: Self, ctx: &str) -> Result<Self>;
    fn sub_c(self, other: Self, ctx: &str) -> Result<Self>;
}

impl Checked for i128 {
    #[inline]
    fn add_c(self, other: i128, ctx: &str) -> Result<i128> {
        self.checked_add(other).ok_or_else(|| AdlError::overflow(ctx))
    }
    #[inline]
    fn sub_c(self, other: i128, ctx: &str) -> Result<i128> {
        self.checked_sub(other).ok_or_else(|| AdlError::overflow(ctx))
    }
}

/// The message of a caught panic.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".to_string())
}
