//! Core results as Python values: fill columns, liquidation outcomes, result dicts built
//! outside the engine lock, per-request view rows.

use super::Columns;
use crate::core::book::input::PositionColumns;
use crate::core::book::position::{Key, Side};
use crate::core::engine::views::PositionView;
use crate::core::engine::{Engine as CoreEngine, Fill, FillKind, Liquidation};
use numpy::{IntoPyArray, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A struct of column vectors that becomes a dict of NumPy arrays, one per field, named as
/// the field: `columns!(Name { field: ElementType, ... })`.
macro_rules! columns {
    ($(#[doc = $doc:literal])* $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Default)]
        pub(super) struct $name {
            $(pub(super) $field: Vec<$ty>),*
        }

        impl $name {
            pub(super) fn into_dict<'py>(self, py: pyo3::Python<'py>) -> pyo3::PyResult<pyo3::Bound<'py, pyo3::types::PyDict>> {
                use numpy::IntoPyArray;
                use pyo3::types::PyDictMethods;
                let d = pyo3::types::PyDict::new(py);
                $(d.set_item(stringify!($field), self.$field.into_pyarray(py))?;)*
                Ok(d)
            }
        }
    };
}
pub(super) use columns;

columns! {
    /// Column vectors of fill records.
    FillColumns {
        event: u64,
        ts: i64,
        has_ts: bool,
        market: u32,
        bankrupt_account: u64,
        bankrupt_side: i8,
        account: u64,
        side: i8,
        qty: f64,
        price: f64,
        rank: u32,
        score: f64,
        kind: u8,
    }
}

impl FillColumns {
    pub(super) fn push(&mut self, e: &CoreEngine, f: &Fill) {
        self.event.push(f.event);
        self.ts.push(f.ts.unwrap_or(0));
        self.has_ts.push(f.ts.is_some());
        self.market.push(f.market);
        self.bankrupt_account.push(f.bankrupt_account);
        self.bankrupt_side.push(f.bankrupt_side.sign());
        self.account.push(f.account.unwrap_or(0));
        self.side.push(f.side.map_or(0, Side::sign));
        self.qty.push(e.market(f.market).grid.qty_f64(f.lots));
        self.price.push(f.price);
        self.rank.push(f.rank.unwrap_or(0) as u32);
        self.score.push(f.score.unwrap_or(f64::NAN));
        self.kind.push(match f.kind {
            FillKind::External => 0,
            FillKind::Adl => 1,
            FillKind::BadDebt => 2,
        });
    }
}

/// Summed outcome of one or more liquidations, ready for Python.
#[derive(Default)]
pub(super) struct Outcome {
    fills: FillColumns,
    events: Vec<u64>,
    pub(super) skipped: Vec<usize>,
    to_fund: i128,
    from_fund: i128,
    bad_debt: i128,
    adl_qty: f64,
    external_qty: f64,
    remaining_qty: f64,
    fee: i128,
    returned: i128,
    adl_fees: i128,
    cancel: Vec<Key>,
    /// Counterparties passed over: (event, account, market, side, reason).
    passed: Vec<(u64, u64, u32, i8, &'static str)>,
    /// Market names by code, read under the same lock as the outcome.
    pub(super) names: Vec<String>,
}

impl Outcome {
    pub(super) fn add(&mut self, e: &CoreEngine, l: &Liquidation) {
        for f in &l.fills {
            self.fills.push(e, f);
        }
        let g = &e.market(l.key.1).grid;
        self.events.push(l.event);
        self.to_fund += l.to_fund;
        self.from_fund += l.from_fund;
        self.bad_debt += l.bad_debt;
        self.adl_qty += g.qty_f64(l.adl_lots);
        self.external_qty += g.qty_f64(l.external_lots);
        self.remaining_qty += g.qty_f64(l.remaining_lots);
        self.fee += l.fee;
        self.returned += l.returned;
        self.adl_fees += l.adl_fees;
        self.cancel.extend(l.cancel_orders.iter().copied());
        self.passed.extend(l.passed.iter().map(|x| (l.event, x.account, l.key.1, x.side.sign(), x.reason.name())));
    }

    pub(super) fn into_py(self, py: Python<'_>, cash: impl Fn(i128) -> f64) -> PyResult<LiquidationOutcome> {
        let array = |v: Vec<u64>| -> Py<PyAny> { v.into_pyarray(py).into_any().unbind() };
        Ok(LiquidationOutcome {
            to_fund: cash(self.to_fund),
            from_fund: cash(self.from_fund),
            bad_debt: cash(self.bad_debt),
            adl_qty: self.adl_qty,
            external_qty: self.external_qty,
            remaining_qty: self.remaining_qty,
            fee: cash(self.fee),
            returned: cash(self.returned),
            adl_fees: cash(self.adl_fees),
            events: self.events,
            skipped: self.skipped,
            cancel_account: array(self.cancel.iter().map(|k| k.0).collect()),
            cancel_market: self.cancel.iter().map(|k| k.1).collect::<Vec<_>>().into_pyarray(py).into_any().unbind(),
            cancel_side: self.cancel.iter().map(|k| k.2.sign()).collect::<Vec<_>>().into_pyarray(py).into_any().unbind(),
            fills: self.fills.into_dict(py)?.into_any().unbind(),
            passed: self.passed,
            names: self.names,
        })
    }
}

/// What one or more liquidations did, summed (cash in quote units, quantities in contracts);
/// `fills` are columns of fill records, `cancel_*` the positions whose orders a venue cancels,
/// `passed` the counterparties passed over as (event, account code, market, side, reason).
#[pyclass(frozen, get_all, module = "adl._adl")]
pub struct LiquidationOutcome {
    to_fund: f64,
    from_fund: f64,
    bad_debt: f64,
    adl_qty: f64,
    external_qty: f64,
    remaining_qty: f64,
    fee: f64,
    returned: f64,
    adl_fees: f64,
    events: Vec<u64>,
    skipped: Vec<usize>,
    cancel_account: Py<PyAny>,
    cancel_market: Py<PyAny>,
    cancel_side: Py<PyAny>,
    fills: Py<PyAny>,
    passed: Vec<(u64, u64, u32, i8, &'static str)>,
    names: Vec<String>,
}

pub(super) type Array<'py, T> = Option<PyReadonlyArray1<'py, T>>;

pub(super) type Setter = Box<dyn for<'py> FnOnce(&Bound<'py, PyDict>) -> PyResult<()> + Send>;

/// A result dict built in two steps: values computed under the engine lock with the GIL
/// released, then turned into Python objects once the lock is gone.
#[derive(Default)]
pub(super) struct Dict(Vec<Setter>);

impl Dict {
    pub(super) fn item<V>(&mut self, key: &'static str, v: V)
    where
        V: for<'py> IntoPyObject<'py> + Send + 'static,
    {
        self.0.push(Box::new(move |d| d.set_item(key, v)));
    }
    pub(super) fn array<T: numpy::Element + Send + 'static>(&mut self, key: &'static str, v: Vec<T>) {
        self.0.push(Box::new(move |d| d.set_item(key, v.into_pyarray(d.py()))));
    }
    pub(super) fn build(self, py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
        let d = PyDict::new(py);
        for set in self.0 {
            set(&d)?;
        }
        Ok(d)
    }
}

pub(super) type BookInputs<'a> = (PositionColumns<'a>, Option<(&'a [u64], &'a [f64])>, Option<&'a [f64]>);

/// The borrowed inputs of `load` and `upsert`: position columns (with their margin modes),
/// accounts (account, cash) and custom scores.
pub(super) fn book_inputs<'a>(
    columns: &'a Columns<'_>,
    acc_account: &'a Array<'_, u64>,
    acc_cash: &'a Array<'_, f64>,
    margin_mode: &'a Array<'_, u8>,
    scores: &'a Array<'_, f64>,
) -> PyResult<BookInputs<'a>> {
    let mut view = columns.view()?;
    if let Some(m) = margin_mode {
        view.cross = m.as_slice()?;
    }
    let accounts = match (acc_account, acc_cash) {
        (Some(a), Some(c)) => Some((a.as_slice()?, c.as_slice()?)),
        _ => None,
    };
    Ok((view, accounts, scores.as_ref().map(|s| s.as_slice()).transpose()?))
}

/// A position's place in the ADL queue: rank, percentile, lights, score, notional queued ahead.
pub(super) type QueuePlace = (u64, f64, u8, f64, f64);

/// See `Engine::position_view` (Python).
pub(super) type ViewRow = (u64, String, i8, f64, f64, f64, bool, Option<f64>, Option<f64>, Option<f64>, Option<f64>, Option<QueuePlace>);

pub(super) type AccountRow = (f64, f64, Option<(f64, f64)>, Vec<ViewRow>);

pub(super) fn view_row(e: &CoreEngine, v: &PositionView) -> ViewRow {
    let (p, m) = (&v.position, e.market(v.position.market));
    let price = |x: f64| m.grid.price_f64(x);
    let queue = v.queue.and_then(|q| Some((q.rank, q.percentile, q.lights, q.score, e.cash_f64(e.notional_ahead(p.market, &q)?))));
    (
        p.account,
        m.name.clone(),
        p.side.sign(),
        m.grid.qty_f64(p.qty),
        m.grid.price_f64(p.entry as f64),
        e.cash_f64(p.margin),
        p.cross,
        v.health.map(|h| e.cash_f64(h.0)),
        v.health.map(|h| e.cash_f64(h.1)),
        v.prices.map(|x| price(x.0)),
        v.prices.map(|x| price(x.1)),
        queue,
    )
}
