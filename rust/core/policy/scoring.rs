//! Scores of the engine's positions. Isolated positions use `Policy::score` as it is; cross
//! positions use their account's values (docs/model.md §3, §6); `custom` takes the caller's
//! score of each position (eligibility stays "not bankrupt").

use crate::core::book::cross::{terms, CrossBook};
use crate::core::book::position::Position;
use crate::core::market::tiers::Tiers;
use crate::core::policy::score::{Fraction, Policy};
use crate::core::units::fixed::{pow10i, Grid};

/// What scoring an engine position needs beyond the position and its market.
#[derive(Clone, Copy)]
pub struct Scoring<'a> {
    pub policy: Policy,
    pub cross: &'a CrossBook,
    /// Custom scores by slot (policy `custom`; empty otherwise).
    pub custom: &'a [f64],
}

/// A cross position's account terms for the score formulas.
enum CrossTerms {
    /// Score the position as if isolated with this margin.
    Margin(i128),
    /// An exact fraction `num/den` (account-level scores), `None` when not eligible.
    Ratio(Option<(i128, i128)>),
}

impl<'a> Scoring<'a> {
    /// The scoring view of an engine: over the three fields it reads, so it can be held
    /// beside mutable borrows of the engine's other fields (its markets and positions).
    pub fn new(policy: Policy, cross: &'a CrossBook, custom: &'a [f64]) -> Scoring<'a> {
        Scoring { policy, cross, custom }
    }

    /// A cross position's account terms; a cross account is eligible
    /// only while its TNC > 0, under every policy (docs/model.md §3).
    fn cross_terms(&self, grid: &Grid, tiers: &Tiers, mark: i64, p: &Position) -> CrossTerms {
        let t = self.cross.totals(p.account);
        let tnc = t.tnc();
        if tnc <= 0 {
            return CrossTerms::Ratio(None);
        }
        let u = p.upnl(grid, mark);
        match self.policy {
            // Account level: pnl% = max(0, Σu)/max(1, W), ratio = TMMR/TNC.
            Policy::Binance => {
                let one = pow10i(grid.cash_decimals);
                CrossTerms::Ratio((tnc > 0).then(|| (t.upnl.max(0) * t.maintenance, t.wallet.max(one) * tnc)))
            }
            // Account leverage ΣN/TNC, profitable positions only.
            Policy::MinMaxLeverage => CrossTerms::Ratio((tnc > 0 && u > 0).then_some((t.notional, tnc))),
            // N / account value: a margin that makes the equity the whole TNC.
            Policy::Hyperliquid => CrossTerms::Margin(tnc - u),
            // BitMEX's ℓ = mark value / (mark value − bankrupt value) = N/TNC_i, eligibility:
            // `CrossBook::effective_margin` from the totals read above.
            _ => {
                let (_, mm, n) = terms(p, grid, tiers, Some(mark));
                CrossTerms::Margin(t.share(mm, n) - u)
            }
        }
    }

    /// The queue score of the position at `slot`, or `None` when it cannot be chosen.
    #[inline]
    pub fn score(&self, grid: &Grid, tiers: &Tiers, mark: i64, slot: u32, p: &Position) -> Option<f64> {
        let margin = if p.cross {
            match self.cross_terms(grid, tiers, mark, p) {
                CrossTerms::Margin(m) => m,
                CrossTerms::Ratio(r) => return r.map(|(n, d)| n as f64 / d as f64),
            }
        } else {
            p.margin
        };
        let s = self.policy.score(grid, tiers, p.side, p.qty, p.entry, margin, mark)?;
        Some(if self.policy == Policy::Custom { self.custom[slot as usize] } else { s })
    }

    /// The same score as an exact fraction (for near-ties), when it has one.
    pub fn exact(&self, grid: &Grid, tiers: &Tiers, mark: i64, p: &Position) -> Option<Fraction> {
        let margin = if p.cross {
            match self.cross_terms(grid, tiers, mark, p) {
                CrossTerms::Margin(m) => m,
                CrossTerms::Ratio(r) => {
                    let (n, d) = r?;
                    return Some(Fraction { sign: (n > 0) as i8, num: n.unsigned_abs(), den: d.unsigned_abs() });
                }
            }
        } else {
            p.margin
        };
        self.policy.exact_score(grid, tiers, p.side, p.qty, p.entry, margin, mark)
    }

    /// Whether the position can be a counterparty at all: not bankrupt, and (cross) its
    /// account's TNC > 0.
    pub fn eligible(&self, grid: &Grid, tiers: &Tiers, mark: i64, p: &Position) -> bool {
        if !p.cross {
            return p.equity(grid, mark) > 0;
        }
        // `CrossBook::equity` from one read of the totals.
        let (t, (_, mm, n)) = (self.cross.totals(p.account), terms(p, grid, tiers, Some(mark)));
        t.share(mm, n) > 0 && t.tnc() > 0
    }

    /// Equity of a position at `mark`: `M + u` isolated, the account share cross.
    pub fn equity(&self, grid: &Grid, tiers: &Tiers, mark: i64, p: &Position) -> i128 {
        if p.cross {
            self.cross.equity(p, grid, tiers, mark)
        } else {
            p.equity(grid, mark)
        }
    }
}
