//! An instrument: its name, spec, grids, maintenance tiers, fee rates, pool and mark.
//! No queue state (that is `policy::queues::Market`).

use crate::core::market::spec::{MarketSpec, DEFAULT_POOL, NO_POOL};
use crate::core::market::tiers::{rate_ppm, Tiers};
use crate::core::units::error::{AdlError, Result};
use crate::core::units::fixed::Grid;

#[derive(Clone)]
pub struct Instrument {
    pub name: String,
    pub spec: MarketSpec,
    pub grid: Grid,
    /// Maintenance margin by tier.
    pub tiers: Tiers,
    /// Fee rates in ppm.
    pub liquidation_fee_ppm: i64,
    pub adl_fee_ppm: i64,
    /// Its insurance-fund pool (`NO_POOL` until the engine resolves `spec.fund_pool`).
    pub pool: u32,
    pub mark: Option<i64>,
}

impl Instrument {
    pub fn new(name: &str, spec: MarketSpec, cash_decimals: u32) -> Result<Instrument> {
        let grid = if spec.inverse {
            Grid::inverse(spec.qty_decimals, spec.price_decimals, cash_decimals, spec.multiplier)?
        } else {
            Grid::with_multiplier(spec.qty_decimals, spec.price_decimals, cash_decimals, spec.multiplier)?
        };
        Ok(Instrument {
            name: name.to_string(),
            tiers: Tiers::new(spec.maintenance_rate, &spec.tiers, &Grid::cash_only(cash_decimals)?)?,
            liquidation_fee_ppm: rate_ppm("liquidation_fee", spec.liquidation_fee)?,
            adl_fee_ppm: rate_ppm("adl_fee", spec.adl_fee)?,
            pool: NO_POOL,
            spec,
            grid,
            mark: None,
        })
    }

    /// The pool name this market draws on.
    pub fn pool_name(&self) -> &str {
        if self.spec.fund_pool.is_empty() {
            DEFAULT_POOL
        } else {
            &self.spec.fund_pool
        }
    }

    pub fn mark(&self) -> Result<i64> {
        self.mark.ok_or_else(|| AdlError::NoMark { symbol: self.name.clone() })
    }
}

impl AsRef<Instrument> for Instrument {
    fn as_ref(&self) -> &Instrument {
        self
    }
}
