//! PyO3 bindings (feature `python`). Columns arrive as read-only NumPy views of Polars
//! columns and leave as NumPy arrays that own Rust buffers; the Python package wraps them
//! into Polars frames. Every call runs detached from the interpreter and turns a panic
//! into `adl.AdlError`.

mod engine;
mod errors;

use std::panic::{catch_unwind, AssertUnwindSafe};

use numpy::{IntoPyArray, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::core::error::Result as CoreResult;
use crate::core::fixed::Grid;
use crate::core::input::PositionColumns;
use crate::core::score::Policy;
use crate::core::stateless::{self, MarketTable};

/// Runs `f` without the GIL; maps core errors and panics to Python exceptions.
pub(crate) fn run<T: Send>(py: Python<'_>, f: impl FnOnce() -> CoreResult<T> + Send) -> PyResult<T> {
    match py.detach(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(r) => r.map_err(errors::to_py),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string());
            Err(errors::internal(msg))
        }
    }
}

/// Borrowed position columns (read-only NumPy views).
pub(crate) struct Columns<'py> {
    account: PyReadonlyArray1<'py, u64>,
    market: PyReadonlyArray1<'py, u32>,
    side: PyReadonlyArray1<'py, i8>,
    qty: PyReadonlyArray1<'py, f64>,
    entry: PyReadonlyArray1<'py, f64>,
    margin: PyReadonlyArray1<'py, f64>,
}

impl<'py> Columns<'py> {
    pub(crate) fn view(&self) -> PyResult<PositionColumns<'_>> {
        Ok(PositionColumns {
            account: self.account.as_slice()?,
            market: self.market.as_slice()?,
            side: self.side.as_slice()?,
            qty: self.qty.as_slice()?,
            entry: self.entry.as_slice()?,
            margin: self.margin.as_slice()?,
        })
    }
}

fn grids(qty_decimals: &[u32], price_decimals: &[u32], cash_decimals: u32) -> CoreResult<Vec<Grid>> {
    qty_decimals.iter().zip(price_decimals).map(|(&q, &p)| Grid::new(q, p, cash_decimals)).collect()
}

#[allow(clippy::too_many_arguments)]
#[pyfunction]
#[pyo3(signature = (account, market, side, qty, entry, margin, names, marks, qty_decimals, price_decimals, cash_decimals, policy))]
fn rank<'py>(
    py: Python<'py>,
    account: PyReadonlyArray1<'py, u64>,
    market: PyReadonlyArray1<'py, u32>,
    side: PyReadonlyArray1<'py, i8>,
    qty: PyReadonlyArray1<'py, f64>,
    entry: PyReadonlyArray1<'py, f64>,
    margin: PyReadonlyArray1<'py, f64>,
    names: Vec<String>,
    marks: Vec<f64>,
    qty_decimals: Vec<u32>,
    price_decimals: Vec<u32>,
    cash_decimals: u32,
    policy: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let cols = Columns { account, market, side, qty, entry, margin };
    let view = cols.view()?;
    let policy = Policy::parse(policy).map_err(errors::to_py)?;
    let r = run(py, || {
        let g = grids(&qty_decimals, &price_decimals, cash_decimals)?;
        stateless::rank(&view, &MarketTable { grids: &g, marks: &marks, names: &names }, policy)
    })?;
    let d = PyDict::new(py);
    d.set_item("score", r.score.into_pyarray(py))?;
    d.set_item("rank", r.rank.into_pyarray(py))?;
    d.set_item("percentile", r.percentile.into_pyarray(py))?;
    d.set_item("lights", r.lights.into_pyarray(py))?;
    Ok(d)
}

#[allow(clippy::too_many_arguments)]
#[pyfunction]
#[pyo3(signature = (account, market, side, qty, entry, margin, names, marks, qty_decimals, price_decimals, cash_decimals, policy, target_market, bankrupt_side, adl_qty, price))]
fn deleverage<'py>(
    py: Python<'py>,
    account: PyReadonlyArray1<'py, u64>,
    market: PyReadonlyArray1<'py, u32>,
    side: PyReadonlyArray1<'py, i8>,
    qty: PyReadonlyArray1<'py, f64>,
    entry: PyReadonlyArray1<'py, f64>,
    margin: PyReadonlyArray1<'py, f64>,
    names: Vec<String>,
    marks: Vec<f64>,
    qty_decimals: Vec<u32>,
    price_decimals: Vec<u32>,
    cash_decimals: u32,
    policy: &str,
    target_market: u32,
    bankrupt_side: i8,
    adl_qty: f64,
    price: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let cols = Columns { account, market, side, qty, entry, margin };
    let view = cols.view()?;
    let policy = Policy::parse(policy).map_err(errors::to_py)?;
    let (fills, qd) = run(py, || {
        let g = grids(&qty_decimals, &price_decimals, cash_decimals)?;
        let t = MarketTable { grids: &g, marks: &marks, names: &names };
        let f = stateless::deleverage(&view, &t, policy, target_market, bankrupt_side, adl_qty, price)?;
        Ok((f, g.get(target_market as usize).copied()))
    })?;
    let g = qd.expect("deleverage checked the market code");
    let d = PyDict::new(py);
    d.set_item("row", fills.iter().map(|f| f.row).collect::<Vec<_>>().into_pyarray(py))?;
    d.set_item("qty", fills.iter().map(|f| g.qty_f64(f.lots)).collect::<Vec<_>>().into_pyarray(py))?;
    d.set_item("rank", fills.iter().map(|f| f.rank).collect::<Vec<_>>().into_pyarray(py))?;
    d.set_item("score", fills.iter().map(|f| f.score).collect::<Vec<_>>().into_pyarray(py))?;
    Ok(d)
}

#[pymodule]
mod _adl {
    #[pymodule_export]
    use super::deleverage;
    #[pymodule_export]
    use super::engine::Engine;
    #[pymodule_export]
    use super::rank;

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::PyModuleMethods;
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
