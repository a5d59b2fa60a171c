//! Core errors become the Python classes of `adl.errors` (one mapping, here).

use pyo3::types::PyAnyMethods;
use pyo3::IntoPyObject;
use pyo3::PyErr;

use crate::core::units::error::AdlError as CoreError;

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

impl From<CoreError> for PyErr {
    fn from(e: CoreError) -> PyErr {
        to_py(e)
    }
}

fn to_py(e: CoreError) -> PyErr {
    let msg = e.to_string();
    match e {
        CoreError::InvalidValue { field, row, .. } => exc::InvalidInputError::new_err((msg, field, Some(row))),
        CoreError::InvalidParameter { field, .. } => exc::InvalidInputError::new_err((msg, field, None::<usize>)),
        CoreError::DuplicateKey { row, .. } => exc::InvalidInputError::new_err((msg, "account, symbol, side".to_string(), Some(row))),
        CoreError::Overflow { .. } => exc::InvalidInputError::new_err((msg, "value".to_string(), None::<usize>)),
        CoreError::UnknownPosition { account, symbol, side } => {
            exc::UnknownPositionError::new_err((msg, account, symbol, side.name().to_string()))
        }
        CoreError::UnknownMarket { symbol } => exc::UnknownMarketError::new_err((msg, symbol)),
        CoreError::NoMark { .. } => exc::InvalidInputError::new_err((msg, "mark".to_string(), None::<usize>)),
        CoreError::NotLiquidatable { .. } => exc::NotLiquidatableError::new_err((msg,)),
        CoreError::Corrupt { what, .. } => exc::CorruptDataError::new_err((msg, what)),
        CoreError::Io { path, .. } => exc::StorageError::new_err((msg, path)),
        CoreError::Internal { .. } => exc::AdlError::new_err((msg,)),
        CoreError::Row { row, source } => {
            // The row's own error class, its message prefixed with the row, and `row` set.
            let err = to_py(*source);
            pyo3::Python::attach(|py| {
                let v = err.value(py);
                let mut args: Vec<pyo3::Bound<'_, pyo3::PyAny>> = v.getattr("args").and_then(|a| a.extract()).unwrap_or_default();
                if let Some(first) = args.first_mut() {
                    *first = pyo3::types::PyString::new(py, &msg).into_any();
                }
                // InvalidInputError reads its row from args[2]; the others get an attribute.
                if v.setattr("row", row).is_err() && args.len() > 2 {
                    let Ok(r) = row.into_pyobject(py);
                    args[2] = r.into_any();
                }
                if let Ok(t) = pyo3::types::PyTuple::new(py, args) {
                    let _ = v.setattr("args", t);
                }
            });
            err
        }
        CoreError::InsufficientLiquidity { requested, available, missing } => {
            exc::InsufficientLiquidityError::new_err((msg, requested, available, missing))
        }
    }
}
