//! PyO3 bindings (feature `python`). Columns arrive as read-only NumPy views of Polars
//! columns and leave as NumPy arrays that own Rust buffers; the Python package wraps them
//! into Polars frames. Every call runs detached from the interpreter and turns a panic
//! into `adl.AdlError`.

mod convert;
mod engine;
mod errors;
mod records;
mod simulate;

use std::panic::{catch_unwind, AssertUnwindSafe};

use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use convert::Dict;

use crate::core::book::input::PositionColumns;
use crate::core::book::position::Side;
use crate::core::engine::stateless::{self, MarketTable};
use crate::core::policy::score::{Lights, Policy};
use crate::core::units::error::Result as CoreResult;
use crate::core::units::fixed::Grid;

/// Runs `f` without the GIL; maps core errors and panics to Python exceptions.
pub(crate) fn run<T: Send>(py: Python<'_>, f: impl FnOnce() -> CoreResult<T> + Send) -> PyResult<T> {
    match py.detach(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(r) => r.map_err(PyErr::from),
        Err(panic) => Err(errors::internal(crate::core::units::error::panic_message(panic.as_ref()))),
    }
}

/// Borrowed position columns, passed from Python as one tuple of read-only NumPy views:
/// (account u64, market u32, side i8, qty f64, entry f64, margin f64, adl_cap f64 (may be empty)).
#[derive(FromPyObject)]
pub(crate) struct Columns<'py>(
    PyReadonlyArray1<'py, u64>,
    PyReadonlyArray1<'py, u32>,
    PyReadonlyArray1<'py, i8>,
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, f64>,
    PyReadonlyArray1<'py, f64>,
);

impl Columns<'_> {
    pub(crate) fn view(&self) -> PyResult<PositionColumns<'_>> {
        Ok(PositionColumns {
            account: self.0.as_slice()?,
            market: self.1.as_slice()?,
            side: self.2.as_slice()?,
            qty: self.3.as_slice()?,
            entry: self.4.as_slice()?,
            margin: self.5.as_slice()?,
            adl_cap: self.6.as_slice()?,
            cross: &[],
        })
    }
}

/// Markets of a stateless call, as one tuple: (symbols, marks, qty_decimals, price_decimals,
/// maintenance rates, cash_decimals), one entry per market code.
#[derive(FromPyObject)]
struct Markets(Vec<String>, Vec<f64>, Vec<u32>, Vec<u32>, Vec<f64>, u32);

impl Markets {
    fn grids(&self) -> CoreResult<Vec<Grid>> {
        self.2.iter().zip(&self.3).map(|(&q, &p)| Grid::new(q, p, self.5)).collect()
    }
}

#[pyfunction]
#[pyo3(signature = (columns, markets, policy, scores=None, lights=None))]
fn rank<'py>(
    py: Python<'py>,
    columns: Columns<'py>,
    markets: Markets,
    policy: &str,
    scores: Option<PyReadonlyArray1<'py, f64>>,
    lights: Option<&str>,
) -> PyResult<Bound<'py, PyDict>> {
    let view = columns.view()?;
    let policy = Policy::parse(policy)?;
    let method = lights.map(Lights::parse).transpose()?.unwrap_or(policy.lights());
    let custom = scores.as_ref().map(|s| s.as_slice()).transpose()?;
    run(py, || {
        let g = markets.grids()?;
        let table = MarketTable { grids: &g, marks: &markets.1, rates: &markets.4, names: &markets.0 };
        let r = stateless::rank(&view, &table, policy, custom, method)?;
        let mut d = Dict::default();
        d.array("score", r.score);
        d.array("rank", r.rank);
        d.array("percentile", r.percentile);
        d.array("lights", r.lights);
        Ok(d)
    })?
    .build(py)
}

#[allow(clippy::too_many_arguments)]
#[pyfunction]
#[pyo3(signature = (columns, markets, policy, target_market, bankrupt_side, adl_qty, price, seed, scores=None))]
fn deleverage<'py>(
    py: Python<'py>,
    columns: Columns<'py>,
    markets: Markets,
    policy: &str,
    target_market: u32,
    bankrupt_side: i8,
    adl_qty: f64,
    price: f64,
    seed: u64,
    scores: Option<PyReadonlyArray1<'py, f64>>,
) -> PyResult<Bound<'py, PyDict>> {
    let view = columns.view()?;
    let policy = Policy::parse(policy)?;
    let custom = scores.as_ref().map(|s| s.as_slice()).transpose()?;
    run(py, || {
        let g = markets.grids()?;
        let t = MarketTable { grids: &g, marks: &markets.1, rates: &markets.4, names: &markets.0 };
        let side = Side::try_from(bankrupt_side)?;
        let fills = stateless::deleverage(&view, &t, policy, target_market, side, adl_qty, price, seed, custom)?;
        let g = g[target_market as usize];
        let mut d = Dict::default();
        d.array("row", fills.iter().map(|f| f.row).collect());
        d.array("qty", fills.iter().map(|f| g.qty_f64(f.lots)).collect());
        d.array("rank", fills.iter().map(|f| f.rank).collect());
        d.array("score", fills.iter().map(|f| f.score).collect());
        Ok(d)
    })?
    .build(py)
}

/// Whether `policy` ranks positions (a queue) rather than splitting or walking the side.
#[pyfunction]
fn ranks(policy: &str) -> PyResult<bool> {
    Ok(Policy::parse(policy)?.is_ranked())
}

/// Debug builds only (`maturin develop`): the n-th liquidation applied from now on, on this
/// thread, panics halfway (tests of the panic path; see `core::engine::fault`).
#[cfg(debug_assertions)]
#[pyfunction]
fn _panic_at_step(n: u64) {
    crate::core::engine::fault::panic_at_step(n);
}

#[pymodule]
mod _adl {
    #[pymodule_export]
    use super::deleverage;
    #[pymodule_export]
    use super::engine::Engine;
    #[pymodule_export]
    use super::engine::LiquidationOutcome;
    #[pymodule_export]
    use super::rank;
    #[pymodule_export]
    use super::ranks;
    #[pymodule_export]
    use super::records::{AdlState, FundPool, MarketSpec, SeverityRound, SeverityStart, Totals};
    #[pymodule_export]
    use super::simulate::Simulation;

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::PyModuleMethods;
        // Set as an attribute, not exported (`__all__`, the stubs): it exists in debug builds only.
        #[cfg(debug_assertions)]
        {
            use pyo3::types::PyAnyMethods;
            m.setattr("_panic_at_step", pyo3::wrap_pyfunction!(super::_panic_at_step, m)?)?;
            if let Ok(all) = m.getattr("__all__") {
                let _ = all.call_method1("remove", ("_panic_at_step",));
            }
        }
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
