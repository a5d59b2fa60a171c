//! Core errors become the Python classes of `adl.errors` (one mapping, here).

use pyo3::PyErr;

use crate::core::error::AdlError as CoreError;
use crate::core::position::side_name;

mod exc {
    pyo3::import_exception!(adl.errors, AdlError);
    pyo3::import_exception!(adl.errors, InvalidInputError);
    pyo3::import_exception!(adl.errors, UnknownPositionError);
    pyo3::import_exception!(adl.errors, UnknownMarketError);
    pyo3::import_exception!(adl.errors, NotLiquidatableError);
    pyo3::import_exception!(adl.errors, InsufficientLiquidityError);
    pyo3::import_exception!(adl.errors, CorruptDataError);
    pyo3::import_exception!(adl.errors, StorageError);
}

pub fn internal(msg: String) -> PyErr {
    exc::AdlError::new_err(format!("internal error (please report): {msg}"))
}

pub fn to_py(e: CoreError) -> PyErr {
    let msg = e.to_string();
    match e {
        CoreError::InvalidValue { field, row, .. } => exc::InvalidInputError::new_err((msg, field, Some(row))),
        CoreError::InvalidParameter { field, .. } => exc::InvalidInputError::new_err((msg, field, None::<usize>)),
        CoreError::DuplicateKey { row, .. } => exc::InvalidInputError::new_err((msg, "account, symbol, side".to_string(), Some(row))),
        CoreError::Overflow { .. } => exc::InvalidInputError::new_err((msg, "value".to_string(), None::<usize>)),
        CoreError::UnknownPosition { account, symbol, side } => {
            exc::UnknownPositionError::new_err((msg, account, symbol, side_name(side).to_string()))
        }
        CoreError::UnknownMarket { symbol } => exc::UnknownMarketError::new_err((msg, symbol)),
        CoreError::NoMark { .. } => exc::InvalidInputError::new_err((msg, "mark".to_string(), None::<usize>)),
        CoreError::NotLiquidatable { .. } => exc::NotLiquidatableError::new_err((msg,)),
        CoreError::Corrupt { what, .. } => exc::CorruptDataError::new_err((msg, what)),
        CoreError::Io { path, .. } => exc::StorageError::new_err((msg, path)),
        CoreError::Internal { .. } => exc::AdlError::new_err((msg,)),
        CoreError::InsufficientLiquidity { requested, available, missing } => {
            exc::InsufficientLiquidityError::new_err((msg, requested, available, missing))
        }
    }
}
