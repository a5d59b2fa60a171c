//! The `Engine` class: a frozen Python object guarding the core engine with a mutex that
//! is taken inside the detached section (never lock, then detach).
//! Over 600 lines: PyO3 takes one `#[pymethods]` block per class (without its
//! `multiple-pymethods` feature), so reads and mutations cannot go to separate files.

use std::sync::{Mutex, MutexGuard};

use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

pub use super::convert::LiquidationOutcome;
use super::convert::{book_inputs, view_row, AccountRow, Dict, FillColumns, Outcome, ViewRow};
use super::records::{AdlState, FundPool, MarketSpec, Totals};
use super::{run, Columns};
use crate::core::book::funds::Change;
use crate::core::book::funds::Pool;
use crate::core::book::input::{check_side, parse_price};
use crate::core::book::position::Side;
use crate::core::book::trigger::Trigger;
use crate::core::engine::{AdlPrice, Engine as CoreEngine, Request};
use crate::core::market::MarketSpec as CoreSpec;
use crate::core::persist::oplog::{Journal, OpLog, SyncPolicy};
use crate::core::persist::ops::{Op, OpOutput};
use crate::core::policy::score::{Lights, Policy};
use crate::core::units::error::AdlError;

#[pyclass(frozen, module = "adl._adl")]
pub struct Engine {
    /// The engine and its optional operation log: every state change goes through
    /// `Journal::apply`, so a logged engine logs it.
    inner: Mutex<Journal>,
}

impl Engine {
    fn wrap(e: CoreEngine) -> Engine {
        Engine { inner: Mutex::new(Journal::new(e)) }
    }

    pub(crate) fn from_core(e: CoreEngine) -> Engine {
        Engine::wrap(e)
    }

    /// A copy of the core engine (without the log).
    pub(crate) fn core_clone(&self) -> CoreEngine {
        self.lock().engine.clone()
    }

    /// Runs a read-only `f` on the engine with the GIL released (the lock may be held by a
    /// long call in another thread; other Python threads keep running meanwhile).
    fn read<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&Journal) -> Result<T, AdlError> + Send) -> PyResult<T> {
        run(py, || f(&self.lock()))
    }

    fn lock(&self) -> Locked<'_> {
        // A panic inside a mutating call is undone by the engine (`Engine::undoable`) before
        // it unwinds any further, so a poisoned lock still guards a valid state.
        Locked(self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The locked journal. A panic that unwinds through it (and is then turned into
/// `AdlError` by `run`) may have stopped a read halfway through rebuilding a ranking index,
/// a cache: every index is dropped then (rebuilt on first use).
struct Locked<'a>(MutexGuard<'a, Journal>);

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.engine.drop_caches();
        }
    }
}

impl std::ops::Deref for Locked<'_> {
    type Target = Journal;
    fn deref(&self) -> &Journal {
        &self.0
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Journal {
        &mut self.0
    }
}

/// A batch error that does not name its row (unknown position, no mark, not liquidatable)
/// with the first row that fails the same checks.
fn in_row(e: &CoreEngine, reqs: &[Request], err: AdlError) -> AdlError {
    if matches!(err, AdlError::InvalidValue { .. } | AdlError::DuplicateKey { .. } | AdlError::Row { .. }) {
        return err;
    }
    match reqs.iter().enumerate().find(|(row, q)| e.check(q, *row).is_err()) {
        Some((row, _)) => AdlError::Row { row, source: Box::new(err) },
        None => err,
    }
}

/// Market names by code.
fn market_names(e: &CoreEngine) -> Vec<String> {
    e.markets().iter().map(|m| m.name.clone()).collect()
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (policy, insurance_fund, cash_decimals, spec, adl_price=None, seed=0, trigger="fund_empty", trigger_window=None, trigger_arm=None, trigger_disarm=None, trigger_min_balance=None, lights=None, keep_fills=true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        policy: &str,
        insurance_fund: f64,
        cash_decimals: u32,
        spec: &MarketSpec,
        adl_price: Option<&str>,
        seed: u64,
        trigger: &str,
        trigger_window: Option<i64>,
        trigger_arm: Option<f64>,
        trigger_disarm: Option<f64>,
        trigger_min_balance: Option<f64>,
        lights: Option<&str>,
        keep_fills: bool,
    ) -> PyResult<Self> {
        let policy = Policy::parse(policy)?;
        let mut e = CoreEngine::new(policy, insurance_fund, cash_decimals, spec.over(&CoreSpec::default())?)?;
        if let Some(mode) = adl_price {
            e.adl_price = AdlPrice::parse(mode)?;
        }
        if let Some(method) = lights {
            e.lights = Lights::parse(method)?;
        }
        e.seed = seed;
        e.set_keep_fills(keep_fills);
        let min_balance = trigger_min_balance.map(|x| CoreEngine::cash_param(x, cash_decimals, "trigger_min_balance")).transpose()?;
        e.set_trigger(Trigger::parse(trigger, trigger_window, trigger_arm, trigger_disarm, min_balance)?);
        Ok(Engine::wrap(e))
    }

    /// The price of ADL fills in use: the policy's unless the constructor overrode it.
    #[getter]
    fn adl_price(&self) -> &'static str {
        self.lock().engine.adl_price.name()
    }

    /// How queue lights are bucketed: "count" or "quantity".
    #[getter]
    fn lights(&self) -> &'static str {
        self.lock().engine.lights.name()
    }

    /// A market: the engine's defaults with the parameters given in `spec`.
    #[pyo3(signature = (symbol, spec=None))]
    fn add_market(&self, py: Python<'_>, symbol: String, spec: Option<MarketSpec>) -> PyResult<u32> {
        run(py, || {
            let mut j = self.lock();
            let spec = match &spec {
                Some(s) => s.over(j.engine.default_spec())?,
                None => j.engine.default_spec().clone(),
            };
            match j.apply(Op::AddMarket { name: &symbol, spec: &spec })? {
                OpOutput::MarketId(id) => Ok(id),
                other => unreachable!("add_market returned {other:?}"),
            }
        })
    }

    /// The parameters of markets added without them (every one set).
    fn default_spec(&self, py: Python<'_>) -> PyResult<MarketSpec> {
        self.read(py, |j| Ok(MarketSpec::full(j.engine.default_spec())))
    }

    /// Markets as columns: symbol, qty_decimals, price_decimals, maintenance_rate, mark (NaN = none).
    fn markets<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.read(py, |j| {
            let ms = j.engine.markets();
            let mut d = Dict::default();
            d.item("symbol", ms.iter().map(|m| m.name.clone()).collect::<Vec<_>>());
            d.item("qty_decimals", ms.iter().map(|m| m.spec.qty_decimals).collect::<Vec<_>>());
            d.item("price_decimals", ms.iter().map(|m| m.spec.price_decimals).collect::<Vec<_>>());
            d.item("maintenance_rate", ms.iter().map(|m| m.tiers.base_rate_ppm() as f64 / 1e6).collect::<Vec<_>>());
            d.item("multiplier", ms.iter().map(|m| m.spec.multiplier).collect::<Vec<_>>());
            d.item("inverse", ms.iter().map(|m| m.spec.inverse).collect::<Vec<_>>());
            d.item("tiers", ms.iter().map(|m| m.tiers.tiers().len()).collect::<Vec<_>>());
            d.item("liquidation_fee", ms.iter().map(|m| m.liquidation_fee_ppm as f64 / 1e6).collect::<Vec<_>>());
            d.item("fee_convention", ms.iter().map(|m| m.spec.fee_convention.name()).collect::<Vec<_>>());
            d.item("surplus_to_fund", ms.iter().map(|m| m.spec.surplus_to_fund).collect::<Vec<_>>());
            d.item("adl_fee", ms.iter().map(|m| m.adl_fee_ppm as f64 / 1e6).collect::<Vec<_>>());
            d.item("fund_pool", ms.iter().map(|m| m.pool_name().to_string()).collect::<Vec<_>>());
            d.item("mark", ms.iter().map(|m| m.mark.map_or(f64::NAN, |t| m.grid.price_f64(t as f64))).collect::<Vec<_>>());
            Ok(d)
        })?
        .build(py)
    }

    /// Market names by code (the codes of every frame the engine returns).
    fn symbols(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.read(py, |j| Ok(market_names(&j.engine)))
    }

    /// Gap marks that start deleveraging the positions of one market side (see
    /// `CoreEngine::adl_marks`): account and mark (NaN = none within `max_move`).
    #[pyo3(signature = (symbol, side, step, max_move, account=None))]
    fn adl_marks<'py>(
        &self,
        py: Python<'py>,
        symbol: String,
        side: i8,
        step: f64,
        max_move: f64,
        account: Option<u64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        run(py, || {
            let mut j = self.lock();
            let e = &mut j.engine;
            let side = Side::try_from(side)?;
            let market = e.market_id(&symbol)?;
            let only = match account {
                Some(a) => Some(e.store().find(&(a, market, side)).ok_or(AdlError::UnknownPosition {
                    account: a,
                    symbol: symbol.clone(),
                    side,
                })?),
                None => None,
            };
            let found = e.adl_marks(market, side, step, max_move, only)?;
            let g = e.market(market).grid;
            let mut d = Dict::default();
            d.array("account", found.iter().map(|&(slot, _)| e.store().get(slot).account).collect());
            d.array("mark", found.iter().map(|&(_, m)| m.map_or(f64::NAN, |t| g.price_f64(t as f64))).collect());
            Ok(d)
        })?
        .build(py)
    }

    /// A market's maintenance tiers in quote units: floor, rate, maintenance amount.
    fn tiers<'py>(&self, py: Python<'py>, symbol: String) -> PyResult<Bound<'py, PyDict>> {
        self.read(py, |j| {
            let e = &j.engine;
            let t = e.market(e.market_id(&symbol)?).tiers.tiers();
            let mut d = Dict::default();
            d.item("floor", t.iter().map(|t| e.cash_f64(t.floor)).collect::<Vec<_>>());
            d.item("rate", t.iter().map(|t| t.rate_ppm as f64 / 1e6).collect::<Vec<_>>());
            d.item("maintenance_amount", t.iter().map(|t| e.cash_f64(t.amount)).collect::<Vec<_>>());
            Ok(d)
        })?
        .build(py)
    }

    /// `margin_mode`: per row 0 isolated / 1 cross (None = all isolated); `scores`: per row
    /// (policy custom).
    #[pyo3(signature = (columns, names, acc_account=None, acc_cash=None, margin_mode=None, scores=None, labels=None))]
    #[allow(clippy::too_many_arguments)]
    fn load<'py>(
        &self,
        py: Python<'py>,
        columns: Columns<'py>,
        names: Vec<String>,
        acc_account: Option<PyReadonlyArray1<'py, u64>>,
        acc_cash: Option<PyReadonlyArray1<'py, f64>>,
        margin_mode: Option<PyReadonlyArray1<'py, u8>>,
        scores: Option<PyReadonlyArray1<'py, f64>>,
        labels: Option<Vec<String>>,
    ) -> PyResult<()> {
        let (view, accounts, custom) = book_inputs(&columns, &acc_account, &acc_cash, &margin_mode, &scores)?;
        let labels = labels.as_deref();
        run(py, || self.lock().apply(Op::Load { cols: view, symbols: &names, accounts, custom, labels }).map(drop))
    }

    /// `clock`: the zone of a datetime `ts` ("" naive), None for an integer clock.
    #[pyo3(signature = (names, prices, ts=None, clock=None))]
    fn set_marks(&self, py: Python<'_>, names: Vec<String>, prices: Vec<f64>, ts: Option<i64>, clock: Option<String>) -> PyResult<()> {
        let marks: Vec<(String, f64)> = names.into_iter().zip(prices).collect();
        let clock = clock.as_deref();
        run(py, || self.lock().apply(Op::SetMarks { marks: &marks, ts, clock }).map(drop))
    }

    /// Account labels from code `start` on (labels are only ever appended).
    #[pyo3(signature = (start=0))]
    fn labels(&self, py: Python<'_>, start: usize) -> PyResult<Vec<String>> {
        self.read(py, |j| Ok(j.engine.labels().names().get(start..).unwrap_or_default().to_vec()))
    }

    /// How many account labels the engine has (0: integer ids).
    fn label_count(&self, py: Python<'_>) -> PyResult<usize> {
        self.read(py, |j| Ok(j.engine.labels().len()))
    }

    /// The clock's zone when `ts` came as datetimes ("" naive); None for integers.
    fn clock(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.read(py, |j| Ok(j.engine.clock().map(str::to_string)))
    }

    /// How far a `set_marks` ts may jump ahead of the clock (`None`: one drawdown window).
    #[getter]
    fn max_ts_step(&self, py: Python<'_>) -> PyResult<Option<i64>> {
        self.read(py, |j| Ok(j.max_ts_step))
    }

    fn set_max_ts_step(&self, py: Python<'_>, step: Option<i64>) -> PyResult<()> {
        run(py, || {
            self.lock().max_ts_step = step;
            Ok(())
        })
    }

    #[getter]
    fn insurance_fund(&self, py: Python<'_>) -> PyResult<f64> {
        self.read(py, |j| Ok(j.engine.cash_f64(j.engine.fund())))
    }

    /// The ADL trigger's state: trigger name, state (normal / soon / armed), armed, and its
    /// measure (drawdown ratio, or fund / peak; 0 for fund_empty).
    #[pyo3(signature = (pool="default"))]
    fn adl_state(&self, py: Python<'_>, pool: &str) -> PyResult<AdlState> {
        let (trigger, state, level) = self.read(py, |j| j.engine.adl_state(pool))?;
        Ok(AdlState::of(trigger, state, level))
    }

    #[getter]
    fn bad_debt(&self, py: Python<'_>) -> PyResult<f64> {
        self.read(py, |j| Ok(j.engine.cash_f64(j.engine.bad_debt())))
    }

    #[pyo3(signature = (amount, pool="default"))]
    fn set_insurance_fund(&self, py: Python<'_>, amount: f64, pool: &str) -> PyResult<()> {
        run(py, || self.lock().apply(Op::SetFund { amount, pool }).map(drop))
    }

    /// Fund pools: name, balance, and the trigger's state (as `adl_state` gives it).
    fn funds(&self, py: Python<'_>) -> PyResult<Vec<FundPool>> {
        self.read(py, |j| {
            let e = &j.engine;
            let pool = |p: &Pool| {
                let (state, level) = p.trigger.state(p.balance);
                FundPool { pool: p.name.clone(), balance: e.cash_f64(p.balance), adl_state: AdlState::of(p.trigger.trigger, state, level) }
            };
            Ok(e.funds().pools().iter().map(pool).collect())
        })
    }

    /// Every change of a fund pool's balance: ts (has_ts), event (-1 = set by the caller),
    /// pool id, change (0 set, 1 liquidation), balance.
    fn fund_history<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.read(py, |j| {
            let e = &j.engine;
            let h = e.funds().history();
            let mut d = Dict::default();
            d.array("ts", h.iter().map(|r| r.ts.unwrap_or(0)).collect());
            d.array("has_ts", h.iter().map(|r| r.ts.is_some()).collect());
            d.array("event", h.iter().map(|r| r.event.map_or(-1, |v| v as i64)).collect());
            d.array("pool", h.iter().map(|r| r.pool).collect());
            d.array("change", h.iter().map(|r| (r.change == Change::Liquidation) as u8).collect());
            d.array("balance", h.iter().map(|r| e.cash_f64(r.balance)).collect());
            d.item("names", e.funds().pools().iter().map(|p| p.name.clone()).collect::<Vec<_>>());
            Ok(d)
        })?
        .build(py)
    }

    /// Exact ledger totals in cash units (as Python ints, however large) plus open interest in lots.
    fn totals(&self, py: Python<'_>) -> PyResult<Totals> {
        self.read(py, |j| Ok(j.engine.wide_totals().into()))
    }

    #[pyo3(signature = (account, symbol, side, fill_price=None, force=false, dry_run=false, partial=false, max_adl=None))]
    #[allow(clippy::too_many_arguments)]
    fn liquidate<'py>(
        &self,
        py: Python<'py>,
        account: u64,
        symbol: String,
        side: i8,
        fill_price: Option<f64>,
        force: bool,
        dry_run: bool,
        partial: bool,
        max_adl: Option<f64>,
    ) -> PyResult<LiquidationOutcome> {
        let (out, cd) = run(py, || {
            let mut j = self.lock();
            let market = j.engine.market_id(&symbol)?;
            // The cap in contracts, in whole lots rounded down (a cap is never exceeded): the
            // nearest lot, less one when that is above `q` (0.6 of a whole lot is 0 lots).
            let grid = j.engine.market(market).grid;
            let cap = match max_adl {
                None => None,
                Some(q) => match grid.lots(q) {
                    Some(k) if k >= 0 && q >= 0.0 => Some(if grid.qty_f64(k) > q * (1.0 + 1e-12) { k - 1 } else { k }),
                    _ => return Err(AdlError::config("max_adl", format!("{q} must be a finite quantity >= 0"))),
                },
            };
            let req = Request { account, market, side: check_side(side, Some(0))?, fill_price, force, partial };
            // A dry run changes nothing, so it is not logged.
            let l = if dry_run {
                j.engine.liquidate_capped(req, cap, true)?
            } else {
                let op = match cap {
                    Some(max_adl) => Op::LiquidateCapped { req, max_adl },
                    None => Op::Liquidate { req },
                };
                match j.apply(op)? {
                    OpOutput::Liquidated(l) => l,
                    other => unreachable!("liquidate returned {other:?}"),
                }
            };
            let mut out = Outcome::default();
            out.add(&j.engine, &l);
            out.names = market_names(&j.engine);
            Ok((out, j.engine.cash_decimals()))
        })?;
        out.into_py(py, |x| crate::core::units::fixed::cash_to_f64(x, cd))
    }

    /// Every cross position of an account, at the marks (see `CoreEngine::liquidate_account`).
    #[pyo3(signature = (account, force=false, partial=false))]
    fn liquidate_account<'py>(&self, py: Python<'py>, account: u64, force: bool, partial: bool) -> PyResult<LiquidationOutcome> {
        let (out, cd) = run(py, || {
            let mut j = self.lock();
            let OpOutput::Account(ls) = j.apply(Op::LiquidateAccount { account, force, partial })? else { unreachable!() };
            let mut out = Outcome::default();
            for l in &ls {
                out.add(&j.engine, l);
            }
            out.names = market_names(&j.engine);
            Ok((out, j.engine.cash_decimals()))
        })?;
        out.into_py(py, |x| crate::core::units::fixed::cash_to_f64(x, cd))
    }

    /// A batch; `fill_price` NaN means "at the mark".
    #[pyo3(signature = (account, market, side, fill_price, names, force=false, partial=false))]
    #[allow(clippy::too_many_arguments)]
    fn liquidate_many<'py>(
        &self,
        py: Python<'py>,
        account: PyReadonlyArray1<'py, u64>,
        market: PyReadonlyArray1<'py, u32>,
        side: PyReadonlyArray1<'py, i8>,
        fill_price: PyReadonlyArray1<'py, f64>,
        names: Vec<String>,
        force: bool,
        partial: bool,
    ) -> PyResult<LiquidationOutcome> {
        let (account, market, side, fill_price) = (account.as_slice()?, market.as_slice()?, side.as_slice()?, fill_price.as_slice()?);
        let (out, cd) = run(py, || {
            let mut j = self.lock();
            let ids: Vec<u32> = names.iter().map(|n| j.engine.market_id(n)).collect::<Result<_, AdlError>>()?;
            // Market codes first, then each row's checks in row order: a bad side code is
            // reported only if no earlier row fails the core's checks (as before sides were typed).
            let mut codes = Vec::with_capacity(account.len());
            for row in 0..account.len() {
                let code = market[row] as usize;
                let Some(&id) = ids.get(code) else {
                    return Err(AdlError::value("symbol", row, format!("market code {code} out of range")));
                };
                codes.push(id);
            }
            let mut reqs = Vec::with_capacity(account.len());
            for (row, &id) in codes.iter().enumerate() {
                let side = match check_side(side[row], Some(row)) {
                    Ok(side) => side,
                    Err(bad) => {
                        j.engine.check_batch(&reqs).map_err(|e| in_row(&j.engine, &reqs, e))?;
                        return Err(bad);
                    }
                };
                let px = fill_price[row];
                reqs.push(Request { account: account[row], market: id, side, fill_price: (!px.is_nan()).then_some(px), force, partial });
            }
            let results = match j.apply(Op::LiquidateMany { reqs: &reqs }) {
                Ok(OpOutput::Batch(results)) => results,
                Ok(other) => unreachable!("liquidate_many returned {other:?}"),
                Err(e) => return Err(in_row(&j.engine, &reqs, e)),
            };
            let mut out = Outcome::default();
            for (row, r) in results.iter().enumerate() {
                match r {
                    Some(l) => out.add(&j.engine, l),
                    None => out.skipped.push(row),
                }
            }
            out.names = market_names(&j.engine);
            Ok((out, j.engine.cash_decimals()))
        })?;
        out.into_py(py, |x| crate::core::units::fixed::cash_to_f64(x, cd))
    }

    /// Inserts or replaces positions and sets listed accounts' cash (all or nothing).
    #[pyo3(signature = (columns, names, acc_account=None, acc_cash=None, margin_mode=None, scores=None, labels=None))]
    #[allow(clippy::too_many_arguments)]
    fn upsert<'py>(
        &self,
        py: Python<'py>,
        columns: Columns<'py>,
        names: Vec<String>,
        acc_account: Option<PyReadonlyArray1<'py, u64>>,
        acc_cash: Option<PyReadonlyArray1<'py, f64>>,
        margin_mode: Option<PyReadonlyArray1<'py, u8>>,
        scores: Option<PyReadonlyArray1<'py, f64>>,
        labels: Option<Vec<String>>,
    ) -> PyResult<(usize, usize, usize)> {
        let (view, accounts, custom) = book_inputs(&columns, &acc_account, &acc_cash, &margin_mode, &scores)?;
        let labels = labels.as_deref();
        run(py, || match self.lock().apply(Op::Upsert { cols: view, symbols: &names, accounts, custom, labels })? {
            OpOutput::Upserted(s) => Ok((s.inserted, s.replaced, s.accounts)),
            other => unreachable!("upsert returned {other:?}"),
        })
    }

    /// Closes a position at `price` (None = mark); returns the cash credited.
    #[pyo3(signature = (account, symbol, side, price=None))]
    fn close_position(&self, py: Python<'_>, account: u64, symbol: String, side: i8, price: Option<f64>) -> PyResult<f64> {
        run(py, || {
            let mut j = self.lock();
            let market = j.engine.market_id(&symbol)?;
            let side = check_side(side, Some(0))?;
            match j.apply(Op::ClosePosition { account, market, side, price })? {
                OpOutput::Closed(c) => Ok(j.engine.cash_f64(c)),
                other => unreachable!("close_position returned {other:?}"),
            }
        })
    }

    #[getter]
    fn policy(&self, py: Python<'_>) -> PyResult<&'static str> {
        self.read(py, |j| Ok(j.engine.policy().name()))
    }

    /// The whole state as bytes (versioned, checksummed).
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self.read(py, |j| Ok(j.engine.snapshot()))?;
        Ok(PyBytes::new(py, &bytes))
    }

    #[staticmethod]
    fn restore(py: Python<'_>, data: &[u8]) -> PyResult<Engine> {
        let data = data.to_vec();
        run(py, move || CoreEngine::restore(&data)).map(Engine::wrap)
    }

    /// Pickle support: the snapshot bytes.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let py = slf.py();
        let restore = slf.get_type().getattr("restore")?;
        Ok((restore, (slf.get().snapshot(py)?,)))
    }

    /// Writes a snapshot to `path` atomically (temporary file, fsync, rename).
    fn save(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        self.read(py, |j| j.engine.save(&path))
    }

    #[staticmethod]
    fn open(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Engine> {
        run(py, move || CoreEngine::open(&path)).map(Engine::wrap)
    }

    /// Starts an operation log at `path` (replacing any file there) holding the current
    /// state; `sync`: always / group / none.
    #[pyo3(signature = (path, sync="always", group_ms=10))]
    fn log_to(&self, py: Python<'_>, path: std::path::PathBuf, sync: &str, group_ms: u64) -> PyResult<()> {
        let policy = SyncPolicy::parse(sync, group_ms)?;
        run(py, || {
            let mut j = self.lock();
            let log = OpLog::create(&path, &j.engine, policy, j.log.as_ref())?;
            j.log = Some(log);
            Ok(())
        })
    }

    /// Stops logging (after a final sync).
    fn close_log(&self, py: Python<'_>) -> PyResult<()> {
        run(py, || {
            let mut j = self.lock();
            // A failed log has already reported its error; closing it just detaches it.
            match j.log.take() {
                Some(mut log) if log.failed.is_none() => log.sync(),
                _ => Ok(()),
            }
        })
    }

    /// Forces the log to disk.
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        run(py, || self.lock().log.as_mut().map_or(Ok(()), |l| l.sync()))
    }

    /// (operations logged, operations known durable), or None when not logging.
    fn log_status(&self, py: Python<'_>) -> PyResult<Option<(u64, u64)>> {
        self.read(py, |j| Ok(j.log.as_ref().map(|l| (l.seq, l.durable_seq))))
    }

    /// Rebuilds an engine from a log: (engine, operations replayed, torn bytes dropped).
    #[staticmethod]
    fn replay(py: Python<'_>, path: std::path::PathBuf) -> PyResult<(Engine, u64, u64)> {
        let (e, info) = run(py, move || crate::core::persist::oplog::replay(&path))?;
        Ok((Engine::wrap(e), info.ops, info.dropped_bytes))
    }

    /// Fill records held of the events with id >= `since` (in event order).
    #[pyo3(signature = (since=0))]
    fn events<'py>(&self, py: Python<'py>, since: u64) -> PyResult<Bound<'py, PyDict>> {
        let (cols, names) = self.read(py, |j| {
            let e = &j.engine;
            let mut c = FillColumns::default();
            for f in e.events().since(since) {
                c.push(e, f);
            }
            Ok((c, market_names(e)))
        })?;
        let d = cols.into_dict(py)?;
        d.set_item("names", names)?;
        Ok(d)
    }

    /// Drops the fill records of events with id < `upto` (a logged operation); returns how many.
    fn drain_events(&self, py: Python<'_>, upto: u64) -> PyResult<usize> {
        run(py, || match self.lock().apply(Op::DrainEvents { upto })? {
            OpOutput::Drained(n) => Ok(n),
            other => unreachable!("drain_events returned {other:?}"),
        })
    }

    /// Whether events keep their fill records.
    #[getter]
    fn keep_fills(&self, py: Python<'_>) -> PyResult<bool> {
        self.read(py, |j| Ok(j.engine.keep_fills()))
    }

    /// Switches the fill records of later events on or off (a logged operation).
    fn set_keep_fills(&self, py: Python<'_>, keep: bool) -> PyResult<()> {
        run(py, || self.lock().apply(Op::SetKeepFills { keep }).map(drop))
    }

    /// The fills of events below this id were drained (0 = never).
    #[getter]
    fn drained_upto(&self, py: Python<'_>) -> PyResult<u64> {
        self.read(py, |j| Ok(j.engine.drained_upto()))
    }

    /// Open positions in slot order with equity, maintenance and prices (NaN without a mark).
    /// `which = "all"` or `"liquidatable"` (then worst first).
    #[pyo3(signature = (which="all"))]
    fn positions<'py>(&self, py: Python<'py>, which: &str) -> PyResult<Bound<'py, PyDict>> {
        self.read(py, |j| {
            let e = &j.engine;
            let slots: Vec<u32> = match which {
                "all" => e.store().iter().map(|(s, _)| s).collect(),
                "liquidatable" => e.liquidatable(),
                other => return Err(AdlError::config("which", format!("{other:?} is not one of: all, liquidatable"))),
            };
            let n = slots.len();
            let (mut account, mut market, mut side) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
            let (mut qty, mut entry, mut margin) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
            let mut cross = Vec::with_capacity(n);
            let (mut equity, mut maint, mut bk, mut liq) =
                (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
            for slot in slots {
                let p = e.store().get(slot);
                let m = e.market(p.market);
                account.push(p.account);
                market.push(p.market);
                side.push(p.side.sign());
                qty.push(m.grid.qty_f64(p.qty));
                entry.push(m.grid.price_f64(p.entry as f64));
                margin.push(e.cash_f64(p.margin));
                cross.push(p.cross);
                match e.health(slot) {
                    Ok((eq, mm)) => {
                        equity.push(e.cash_f64(eq));
                        maint.push(e.cash_f64(mm));
                    }
                    Err(_) => {
                        equity.push(f64::NAN);
                        maint.push(f64::NAN);
                    }
                }
                let (b, l) = e.prices(slot).unwrap_or((f64::NAN, f64::NAN));
                bk.push(m.grid.price_f64(b));
                liq.push(m.grid.price_f64(l));
            }
            let mut d = Dict::default();
            d.array("account", account);
            d.array("market", market);
            d.array("side", side);
            d.array("qty", qty);
            d.array("entry_price", entry);
            d.array("margin", margin);
            d.array("cross", cross);
            d.array("equity", equity);
            d.array("maintenance", maint);
            d.array("bankruptcy_price", bk);
            d.array("liquidation_price", liq);
            // The names of the market codes above, read under the same lock.
            d.item("names", market_names(e));
            Ok(d)
        })?
        .build(py)
    }

    /// Free cash (a cross account's wallet) and equity (cash + Σ position equity `M + u` at the
    /// marks; margin only without a mark) per account.
    fn accounts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.read(py, |j| {
            let e = &j.engine;
            let rows = e.account_rows();
            let mut d = Dict::default();
            d.array("account", rows.iter().map(|r| r.0).collect());
            d.array("cash", rows.iter().map(|r| e.cash_f64(r.1)).collect());
            d.array("equity", rows.iter().map(|r| e.cash_f64(r.2)).collect());
            d.array("positions", rows.iter().map(|r| r.3).collect());
            Ok(d)
        })?
        .build(py)
    }

    /// ADL of `qty` of a bankrupt `side` position of `symbol` at the ADL price `price`, placed
    /// by the policy's kernel without applying anything (`Engine::adl_dry_run`): the takes'
    /// account codes, quantities, ranks (0 when the policy ranks nobody) and scores (NaN).
    fn adl_dry_run<'py>(&self, py: Python<'py>, symbol: String, side: i8, qty: f64, price: f64) -> PyResult<Bound<'py, PyDict>> {
        run(py, || {
            let mut j = self.lock();
            let e = &mut j.engine;
            let market = e.market_id(&symbol)?;
            let grid = e.market(market).grid;
            let lots = match grid.lots(qty) {
                Some(l) if l > 0 => l,
                _ => return Err(AdlError::config("qty", format!("{qty} must be > 0 (at least one lot) and finite"))),
            };
            let price = parse_price(&grid, "price", 0, price)
                .map_err(|_| AdlError::config("price", format!("{price} must be a finite price > 0")))?;
            let takes = e.adl_dry_run(market, Side::try_from(side)?, lots, price)?;
            let mut d = Dict::default();
            d.array("account", takes.iter().map(|t| e.store().get(t.slot).account).collect());
            d.array("qty", takes.iter().map(|t| grid.qty_f64(t.lots)).collect());
            d.array("rank", takes.iter().map(|t| t.rank.unwrap_or(0) as u32).collect());
            d.array("score", takes.iter().map(|t| t.score.unwrap_or(f64::NAN)).collect());
            Ok(d)
        })?
        .build(py)
    }

    /// Queue indicator for every open position in a market with a mark: exact rank within
    /// its (market, side), percentile, lights, score and notional queued ahead.
    fn indicator<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        run(py, || {
            let mut j = self.lock();
            let e = &mut j.engine;
            let rows = e.indicator_rows()?;
            let mut d = Dict::default();
            d.item("names", market_names(e));
            d.array("account", rows.iter().map(|r| r.account).collect());
            d.array("market", rows.iter().map(|r| r.market).collect());
            d.array("side", rows.iter().map(|r| r.side.sign()).collect());
            d.array("score", rows.iter().map(|r| r.place.score).collect());
            d.array("rank", rows.iter().map(|r| r.place.rank as u32).collect());
            d.array("percentile", rows.iter().map(|r| r.place.percentile).collect());
            d.array("lights", rows.iter().map(|r| r.place.lights).collect());
            d.array("notional_ahead", rows.iter().map(|r| e.cash_f64(r.notional_ahead)).collect());
            Ok(d)
        })?
        .build(py)
    }

    /// One position as its holder sees it (`Engine.position`), as a tuple `adl.engine` names:
    /// (account, symbol, side, qty, entry, margin, cross, equity, maintenance, bankruptcy
    /// price, liquidation price, (rank, percentile, lights, score, notional ahead) or None).
    fn position_view(&self, py: Python<'_>, account: u64, symbol: String, side: i8) -> PyResult<ViewRow> {
        run(py, || {
            let mut j = self.lock();
            let market = j.engine.market_id(&symbol)?;
            let v = j.engine.position_view(account, market, check_side(side, Some(0))?)?;
            Ok(view_row(&j.engine, &v))
        })
    }

    /// One account (`Engine.account`): (cash, equity, (TNC, TMMR) or None, position rows).
    fn account_view(&self, py: Python<'_>, account: u64) -> PyResult<AccountRow> {
        run(py, || {
            let mut j = self.lock();
            let a = j.engine.account_view(account)?;
            let e = &j.engine;
            let cross = a.cross.map(|t| (e.cash_f64(t.tnc()), e.cash_f64(t.maintenance)));
            Ok((e.cash_f64(a.cash), e.cash_f64(a.equity), cross, a.positions.iter().map(|v| view_row(e, v)).collect()))
        })
    }
}
