//! What a venue states about a market: grids, maintenance, fees, and its fund pool.

use crate::core::market::tiers::TierSpec;
use crate::core::units::error::{AdlError, Result};

/// User-facing market parameters. `MarketSpec::linear` gives the textbook market: a flat
/// maintenance rate, contract = one unit of the base asset, no fees.
#[derive(Clone, Debug, PartialEq)]
pub struct MarketSpec {
    /// Lot = 10^-qty_decimals contracts. Default 4 (0.0001).
    pub qty_decimals: u32,
    /// Price grid = 10^-price_decimals of the quote. Default 4 (0.0001).
    pub price_decimals: u32,
    /// Maintenance-margin rate, e.g. 0.005 (used when `tiers` is empty).
    pub maintenance_rate: f64,
    /// Base-asset units per contract (a linear contract's value is `q·multiplier·P`); in an
    /// inverse market, quote units per contract (value `q·multiplier/P` of the base coin).
    pub multiplier: f64,
    /// An inverse contract (BitMEX's XBTUSD): margin, PnL and cash in the base coin, prices
    /// held as `−1/P` on a grid of `10^-price_decimals` (see `fixed::Grid`).
    pub inverse: bool,
    /// Risk-limit tiers by notional; empty: one tier at `maintenance_rate`.
    pub tiers: Vec<TierSpec>,
    /// Liquidation fee: a rate on the liquidated notional, paid to the insurance fund.
    pub liquidation_fee: f64,
    /// Where the liquidation fee comes from (see `FeeConvention`).
    pub fee_convention: FeeConvention,
    /// Whether what is left after a close at or better than the bankruptcy price (less the
    /// liquidation fee) goes to the insurance fund (BitMEX, Binance, Bybit) or back to the trader.
    pub surplus_to_fund: bool,
    /// ADL fee: a rate on the notional each counterparty closes at the ADL price, charged to
    /// the counterparty and paid to the venue (0 on Binance and Bitget; the maker fee on Bybit).
    pub adl_fee: f64,
    /// The insurance-fund pool the market draws on (`funds::Funds`); empty: the default pool.
    pub fund_pool: String,
}

/// How a venue takes its liquidation fee (docs/model.md §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeeConvention {
    /// Out of what is left after the close (BitMEX, Binance): when the book pays at least the
    /// bankruptcy price the fund takes `min(surplus, fee·N_F)`; otherwise there is no fee.
    Surplus,
    /// In the bankruptcy price (Bybit): the fee to close at the bankruptcy price is reserved
    /// out of the margin first, so the position is bankrupt while it still holds the fee:
    /// long `P_bk = (q·E − M)/(q·(1 − fee))`, short `(q·E + M)/(q·(1 + fee))`.
    Bankruptcy,
}

impl FeeConvention {
    pub fn parse(name: &str) -> Result<FeeConvention> {
        match name {
            "surplus" => Ok(FeeConvention::Surplus),
            "bankruptcy" => Ok(FeeConvention::Bankruptcy),
            other => Err(AdlError::config("fee_convention", format!("{other:?} is not one of: surplus, bankruptcy"))),
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            FeeConvention::Surplus => "surplus",
            FeeConvention::Bankruptcy => "bankruptcy",
        }
    }
}

impl MarketSpec {
    /// A linear market with a flat maintenance rate and no fees.
    pub const fn linear(qty_decimals: u32, price_decimals: u32, maintenance_rate: f64) -> MarketSpec {
        MarketSpec {
            qty_decimals,
            price_decimals,
            maintenance_rate,
            multiplier: 1.0,
            inverse: false,
            tiers: Vec::new(),
            liquidation_fee: 0.0,
            fee_convention: FeeConvention::Surplus,
            surplus_to_fund: true,
            adl_fee: 0.0,
            fund_pool: String::new(),
        }
    }
}

impl Default for MarketSpec {
    fn default() -> Self {
        MarketSpec::linear(4, 4, 0.005)
    }
}

/// A market whose pool is not resolved yet.
pub const NO_POOL: u32 = u32::MAX;

/// Name of the pool every market uses unless told otherwise.
pub const DEFAULT_POOL: &str = "default";
