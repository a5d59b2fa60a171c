//! The `Simulation` class: a cascade over a price path on a copy of an engine.

use std::sync::Mutex;

use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::convert::{columns, Dict};
use super::engine::Engine;
use super::records::{SeverityRound, SeverityStart};
use super::run;
use crate::core::engine::simulate::{
    SeverityHook, SeverityRound as CoreRound, SeverityStart as CoreStart, Simulation as CoreSimulation, Slippage,
};
use crate::core::units::error::AdlError;

#[pyclass(frozen, module = "adl._adl")]
pub struct Simulation {
    inner: Mutex<CoreSimulation>,
}

columns! {
    /// Per-step columns of a run.
    StepColumns {
        ts: i64,
        fund: f64,
        fund_min: f64,
        bad_debt: f64,
        liquidations: u32,
        liquidated_notional: f64,
        adl_notional: f64,
    }
}

columns! {
    /// Per-liquidation columns of a run.
    LiquidationColumns {
        ts: i64,
        event: u64,
        market: u32,
        account: u64,
        side: i8,
        qty: f64,
        mark: f64,
        fill_price: f64,
        to_fund: f64,
        from_fund: f64,
        bad_debt: f64,
        adl_qty: f64,
        external_qty: f64,
    }
}

#[pymethods]
impl Simulation {
    /// A simulation on a copy of `engine` (its book, accounts, fund and policy).
    #[new]
    #[pyo3(signature = (engine, bps_per_million, window, max_bps, keep_fills=true))]
    fn new(py: Python<'_>, engine: &Engine, bps_per_million: f64, window: i64, max_bps: f64, keep_fills: bool) -> PyResult<Self> {
        let mut core = engine.core_clone();
        core.set_keep_fills(keep_fills);
        let sim = run(py, move || CoreSimulation::new(core, Slippage { bps_per_million, window, max_bps }))?;
        Ok(Simulation { inner: Mutex::new(sim) })
    }

    /// Runs steps: `step_ts[i]` with the marks `market[offsets[i]..offsets[i+1]]`,
    /// `mark[...]` (market ids of the engine); `later[i·n_markets + m]` is market m's mark Δ
    /// after step i (NaN: unknown).
    ///
    /// `severity(start, previous)`, when given, is called at every liquidation that reaches
    /// ADL with the round's start and the previous round (`SeverityStart`, `SeverityRound`) and returns
    /// the most lots to deleverage; an exception it raises ends the run and is raised again.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (step_ts, offsets, market, mark, later, severity=None))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        step_ts: PyReadonlyArray1<'py, i64>,
        offsets: PyReadonlyArray1<'py, u64>,
        market: PyReadonlyArray1<'py, u32>,
        mark: PyReadonlyArray1<'py, f64>,
        later: PyReadonlyArray1<'py, f64>,
        severity: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (step_ts, offsets, market, mark, later) =
            (step_ts.as_slice()?, offsets.as_slice()?, market.as_slice()?, mark.as_slice()?, later.as_slice()?);
        // The controller's own exception, kept to be raised as it was.
        let raised: Mutex<Option<PyErr>> = Mutex::new(None);
        let mut call = |start: &CoreStart, previous: Option<&CoreRound>| -> Result<i64, AdlError> {
            let Some(f) = severity.as_ref() else { return Ok(i64::MAX) };
            Python::attach(|py| f.call1(py, (SeverityStart::from(start), previous.map(SeverityRound::from)))?.extract::<i64>(py)).map_err(
                |e| {
                    *raised.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    AdlError::config("severity", "the controller raised")
                },
            )
        };
        let hooked = severity.is_some();
        let result = run(py, || {
            if offsets.len() != step_ts.len() + 1
                || offsets.last().is_some_and(|&o| o as usize != market.len())
                || market.len() != mark.len()
            {
                return Err(AdlError::config("prices", "step offsets do not match the price columns"));
            }
            let mut sim = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let n_markets = sim.engine.markets().len() as u32;
            if later.len() != step_ts.len() * n_markets as usize {
                return Err(AdlError::config("horizon", "later marks must give one mark per step and market"));
            }
            let (mut steps, mut c) = (StepColumns::default(), LiquidationColumns::default());
            for (i, &ts) in step_ts.iter().enumerate() {
                let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
                if a > b {
                    return Err(AdlError::config("prices", "step offsets are not increasing"));
                }
                let marks: Vec<(u32, f64)> = market[a..b].iter().copied().zip(mark[a..b].iter().copied()).collect();
                if let Some(&(m, _)) = marks.iter().find(|m| m.0 >= n_markets) {
                    return Err(AdlError::config("symbol", format!("market code {m} out of range")));
                }
                let nm = n_markets as usize;
                let mut running = sim.engine.fund();
                let hook: Option<&mut SeverityHook<'_>> = if hooked { Some(&mut call) } else { None };
                let out = sim.step_with(&marks, ts, &later[i * nm..(i + 1) * nm], hook)?;
                let e = &sim.engine;
                let (mut liquidated, mut adl) = (0.0, 0.0);
                // The fund's low point within the step: payouts come before surpluses.
                let mut low = running;
                for (l, mk, fill) in &out.liquidations {
                    let g = &e.market(l.key.1).grid;
                    let qty = g.qty_f64(l.adl_lots + l.external_lots);
                    liquidated += g.value_at_f64(l.adl_lots + l.external_lots, *mk).abs();
                    adl += g.value_at_f64(l.adl_lots, *mk).abs();
                    c.ts.push(ts);
                    c.event.push(l.event);
                    c.market.push(l.key.1);
                    c.account.push(l.key.0);
                    c.side.push(l.key.2.sign());
                    c.qty.push(qty);
                    c.mark.push(*mk);
                    c.fill_price.push(*fill);
                    c.to_fund.push(e.cash_f64(l.to_fund));
                    c.from_fund.push(e.cash_f64(l.from_fund));
                    c.bad_debt.push(e.cash_f64(l.bad_debt));
                    c.adl_qty.push(g.qty_f64(l.adl_lots));
                    c.external_qty.push(g.qty_f64(l.external_lots));
                    low = low.min(running - l.from_fund);
                    running += l.to_fund - l.from_fund;
                }
                steps.ts.push(ts);
                steps.fund.push(e.cash_f64(e.fund()));
                steps.fund_min.push(e.cash_f64(low));
                steps.bad_debt.push(e.cash_f64(e.bad_debt()));
                steps.liquidations.push(out.liquidations.len() as u32);
                steps.liquidated_notional.push(liquidated);
                steps.adl_notional.push(adl);
            }
            Ok((steps, c))
        });
        if let Some(e) = raised.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        let (steps, liquidations) = result?;
        let d = PyDict::new(py);
        d.set_item("steps", steps.into_dict(py)?)?;
        d.set_item("liquidations", liquidations.into_dict(py)?)?;
        Ok(d)
    }

    /// Per counterparty account: what ADL took so far (see `core::engine::simulate::Tally`).
    fn tally<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let sim = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<(u64, crate::core::engine::simulate::Tally)> = sim.tally.iter().map(|(&a, &t)| (a, t)).collect();
        drop(sim);
        rows.sort_unstable_by_key(|r| r.0);
        let mut d = Dict::default();
        d.array("account", rows.iter().map(|r| r.0).collect());
        d.array("adl_qty", rows.iter().map(|r| r.1.qty).collect());
        d.array("adl_notional", rows.iter().map(|r| r.1.notional).collect());
        d.array("profit_taken", rows.iter().map(|r| r.1.profit_taken).collect());
        d.array("need", rows.iter().map(|r| r.1.need).collect());
        d.array("haircut", rows.iter().map(|r| r.1.haircut).collect());
        d.build(py)
    }

    /// The severity rounds played so far.
    fn rounds(&self) -> Vec<SeverityRound> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).rounds.iter().map(SeverityRound::from).collect()
    }

    /// A copy of the simulated engine, for its fills, positions and accounts.
    fn engine(&self) -> Engine {
        Engine::from_core(self.inner.lock().unwrap_or_else(|p| p.into_inner()).engine.clone())
    }
}
