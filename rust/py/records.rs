//! Small results as frozen Python classes rather than dicts: attributes typed in the stubs,
//! `==`, a repr naming every field, pickling by value and `_asdict()` for a row. One macro
//! declares each, so no class restates that machinery.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyTuple, PyType};
use pyo3::IntoPyObjectExt;

use crate::core::book::trigger::{AdlState as TriggerState, Trigger};
use crate::core::engine::audit::{Wide, WideTotals};
use crate::core::engine::simulate::{SeverityRound as CoreRound, SeverityStart as CoreStart};
use crate::core::market::tiers::TierSpec;
use crate::core::market::{FeeConvention, MarketSpec as CoreSpec};
use crate::core::units::error::AdlError;

/// A frozen record class: `record! { /// doc  Name { field: Type, ... } }`. Its constructor
/// takes the fields in order (by position or keyword); `_fields` names them; `_asdict()` is
/// shallow (a nested record stays a record), as a namedtuple's is. Records compare by value and
/// are not hashable (several hold floats).
macro_rules! record {
    ($(#[doc = $doc:literal])* $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[doc = $doc])*
        #[pyclass(frozen, eq, get_all, from_py_object, module = "adl._adl")]
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name {
            $(pub $field: $ty),*
        }

        #[pymethods]
        impl $name {
            /// Every field, in order (the constructor pickling calls).
            #[new]
            #[allow(clippy::too_many_arguments)]
            fn new($($field: $ty),*) -> Self {
                $name { $($field),* }
            }

            /// The field names, in order.
            #[classattr]
            fn _fields(py: Python<'_>) -> PyResult<Py<PyTuple>> {
                Ok(PyTuple::new(py, [$(stringify!($field)),*])?.unbind())
            }

            /// The fields as a dict (a row of a frame, a JSON document).
            fn _asdict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
                let d = PyDict::new(py);
                $(d.set_item(stringify!($field), self.$field.clone())?;)*
                Ok(d)
            }

            fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
                let fields: Vec<String> = vec![$(
                    format!("{}={}", stringify!($field), self.$field.clone().into_bound_py_any(py)?.repr()?)
                ),*];
                Ok(format!("{}({})", stringify!($name), fields.join(", ")))
            }

            /// Pickling: the class and its fields.
            fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyType>, Bound<'py, PyTuple>)> {
                let (py, me) = (slf.py(), slf.get());
                let fields: Vec<Bound<'py, PyAny>> = vec![$(me.$field.clone().into_bound_py_any(py)?),*];
                Ok((slf.get_type(), PyTuple::new(py, fields)?))
            }
        }
    };
}

/// An exact integer of any size, as a Python `int` (ledger totals may pass `i128`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BigInt(Wide);

impl<'py> IntoPyObject<'py> for BigInt {
    type Target = PyInt;
    type Output = Bound<'py, PyInt>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyInt>> {
        // hi·2^64 + lo.
        let hi = self.0.hi.into_pyobject(py)?.call_method1("__lshift__", (64,))?;
        Ok(hi.call_method1("__add__", (self.0.lo,))?.cast_into::<PyInt>()?)
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for BigInt {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let (hi, lo): (i128, i128) = obj.call_method1("__divmod__", (1u128 << 64,))?.extract()?;
        Ok(BigInt(Wide { hi, lo }))
    }
}

record! {
    /// Exact ledger totals in cash units and open interest in lots (Python ints, however
    /// large): `cash + position_equity + fund + book_value + fees - bad_debt` is conserved at
    /// fixed marks.
    Totals {
        cash: BigInt,
        position_equity: BigInt,
        fund: BigInt,
        bad_debt: BigInt,
        book_value: BigInt,
        fees: BigInt,
        long_lots: BigInt,
        short_lots: BigInt,
    }
}

impl From<WideTotals> for Totals {
    fn from(t: WideTotals) -> Totals {
        Totals {
            cash: BigInt(t.cash),
            position_equity: BigInt(t.position_equity),
            fund: BigInt(t.fund),
            bad_debt: BigInt(t.bad_debt),
            book_value: BigInt(t.book_value),
            fees: BigInt(t.fees),
            long_lots: BigInt(t.long_lots),
            short_lots: BigInt(t.short_lots),
        }
    }
}

record! {
    /// A fund pool's ADL trigger as a venue's feed shows it: `trigger`, `state` (normal, soon
    /// inside the hysteresis band, armed), `armed`, and `level` (the drawdown ratio, or
    /// fund / peak; 0 for fund_empty).
    AdlState {
        trigger: String,
        state: String,
        armed: bool,
        level: f64,
    }
}

impl AdlState {
    pub fn of(trigger: Trigger, state: TriggerState, level: f64) -> AdlState {
        AdlState { trigger: trigger.name().into(), state: state.name().into(), armed: state == TriggerState::Armed, level }
    }
}

record! {
    /// One insurance-fund pool: `pool`, `balance` (quote units) and its trigger's `adl_state`.
    FundPool {
        pool: String,
        balance: f64,
        adl_state: AdlState,
    }
}

record! {
    /// Market parameters, each `None` where the engine's default holds (see `adl.Market`;
    /// `tiers`: `(floor, rate, amount or None)` rows). A flat `maintenance_rate` given
    /// without `tiers` replaces inherited tiers.
    MarketSpec {
        qty_decimals: Option<u32>,
        price_decimals: Option<u32>,
        maintenance_rate: Option<f64>,
        multiplier: Option<f64>,
        inverse: Option<bool>,
        tiers: Option<Vec<(f64, f64, Option<f64>)>>,
        liquidation_fee: Option<f64>,
        fee_convention: Option<String>,
        surplus_to_fund: Option<bool>,
        adl_fee: Option<f64>,
        fund_pool: Option<String>,
    }
}

impl MarketSpec {
    /// `base` with the parameters this spec sets.
    pub fn over(&self, base: &CoreSpec) -> Result<CoreSpec, AdlError> {
        let mut out = base.clone();
        macro_rules! set {
            ($($f:ident),*) => { $(if let Some(v) = self.$f.clone() { out.$f = v; })* };
        }
        set!(qty_decimals, price_decimals, maintenance_rate, multiplier, inverse, liquidation_fee, surplus_to_fund, adl_fee, fund_pool);
        if let Some(c) = &self.fee_convention {
            out.fee_convention = FeeConvention::parse(c)?;
        }
        match &self.tiers {
            Some(rows) => out.tiers = rows.iter().map(|&(floor, rate, amount)| TierSpec { floor, rate, amount }).collect(),
            // A flat rate given on its own replaces inherited tiers (the rate would be ignored).
            None if self.maintenance_rate.is_some() => out.tiers.clear(),
            None => {}
        }
        Ok(out)
    }

    /// Every parameter of `s`, set.
    pub fn full(s: &CoreSpec) -> MarketSpec {
        MarketSpec {
            qty_decimals: Some(s.qty_decimals),
            price_decimals: Some(s.price_decimals),
            maintenance_rate: Some(s.maintenance_rate),
            multiplier: Some(s.multiplier),
            inverse: Some(s.inverse),
            tiers: Some(s.tiers.iter().map(|t| (t.floor, t.rate, t.amount)).collect()),
            liquidation_fee: Some(s.liquidation_fee),
            fee_convention: Some(s.fee_convention.name().to_string()),
            surplus_to_fund: Some(s.surplus_to_fund),
            adl_fee: Some(s.adl_fee),
            fund_pool: Some(s.fund_pool.clone()),
        }
    }
}

record! {
    /// A severity round's start: `event, ts, market, account, side, lots` (Q_t), `deficit`
    /// (D_t), `mark, fill`, and the opposite side as `opposite_account, opposite_lots,
    /// opposite_profit` (one entry per account).
    SeverityStart {
        event: u64,
        ts: i64,
        market: u32,
        account: u64,
        side: i8,
        lots: i64,
        deficit: f64,
        mark: f64,
        fill: f64,
        opposite_account: Vec<u64>,
        opposite_lots: Vec<i64>,
        opposite_profit: Vec<f64>,
    }
}

impl From<&CoreStart> for SeverityStart {
    fn from(s: &CoreStart) -> SeverityStart {
        SeverityStart {
            event: s.event,
            ts: s.ts,
            market: s.market,
            account: s.account,
            side: s.side.sign(),
            lots: s.lots,
            deficit: s.deficit,
            mark: s.mark,
            fill: s.fill,
            opposite_account: s.opposite.iter().map(|o| o.0).collect(),
            opposite_lots: s.opposite.iter().map(|o| o.1).collect(),
            opposite_profit: s.opposite.iter().map(|o| o.2).collect(),
        }
    }
}

record! {
    /// A played severity round: its `start`, the `cap` the controller chose, `adl_lots`,
    /// `covered`, `bad_debt`, the ex-post `need` and `haircut`, and the lots ADL closed per
    /// account as `closed_account, closed_lots`.
    SeverityRound {
        start: SeverityStart,
        cap: i64,
        adl_lots: i64,
        covered: f64,
        bad_debt: f64,
        need: f64,
        haircut: f64,
        closed_account: Vec<u64>,
        closed_lots: Vec<i64>,
    }
}

impl From<&CoreRound> for SeverityRound {
    fn from(r: &CoreRound) -> SeverityRound {
        SeverityRound {
            start: SeverityStart::from(&r.start),
            cap: r.cap,
            adl_lots: r.adl_lots,
            covered: r.covered,
            bad_debt: r.bad_debt,
            need: r.need,
            haircut: r.haircut,
            closed_account: r.closed.iter().map(|c| c.0).collect(),
            closed_lots: r.closed.iter().map(|c| c.1).collect(),
        }
    }
}
