//! When ADL bypasses the insurance fund (docs/model.md §5). `FundEmpty` (most venues) never
//! arms: ADL starts when the fund cannot cover a deficit. `Drawdown` (Bybit, pool form) and
//! `FundDrop` (Bitget) arm on the fund's history with hysteresis; while armed, the fund pays
//! nothing. A drawdown trigger also caps the fund within one event at its arming level: the
//! fund pays down to that level and ADL covers the rest (Bybit's example: a 350K loss against
//! a 1M fund at its 8 h maximum: the fund pays 300K, ADL 50K). `SymbolDrawdown` is Bybit's
//! own form: the drawdown of each symbol's PnL against the pool's 8 h maximum balance, only
//! while the pool holds more than a minimum balance.
//! Time is the caller's (`ts` given with marks), never the wall clock. Thresholds are held
//! to the ppm (`arm_ppm`) wherever an amount is decided, so caps are exact integers.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trigger {
    FundEmpty,
    /// ratio = (F − max F over the last `window`)/max; arms below `arm` (−0.30), disarms above
    /// `disarm` (−0.25).
    Drawdown {
        window: i64,
        arm: f64,
        disarm: f64,
    },
    /// Arms when F < `arm`·peak (0.70), disarms when F >= `disarm`·peak (0.90).
    FundDrop {
        arm: f64,
        disarm: f64,
    },
    /// Bybit per symbol: `ratio = (symbol PnL − its max over the window) / the pool's max
    /// balance over the window`, where a symbol's PnL is the sum of what its liquidations
    /// paid into (+) or drew from (−) the pool; a symbol arms below `arm` and disarms above
    /// `disarm`, and only while the pool holds more than `min_balance` (cash units; Bybit's
    /// `adlTriggerThreshold`). At or below it the fund pays until empty.
    SymbolDrawdown {
        window: i64,
        arm: f64,
        disarm: f64,
        min_balance: i128,
    },
}

/// A threshold in ppm (−0.30 → −300,000).
fn ppm(x: f64) -> i128 {
    (x * 1e6).round() as i128
}

impl Trigger {
    /// A trigger by name with the venues' defaults for thresholds left `None`: drawdown over
    /// 8 hours of the caller's clock in milliseconds (`window`), -30 % / -25 %; fund drop
    /// 70 % / 90 % of the peak. `min_balance` (cash units, default 0) is for `symbol_drawdown`.
    pub fn parse(
        name: &str,
        window: Option<i64>,
        arm: Option<f64>,
        disarm: Option<f64>,
        min_balance: Option<i128>,
    ) -> crate::core::units::error::Result<Trigger> {
        let bad = |msg: String| crate::core::units::error::AdlError::config("trigger", msg);
        let (window, arm_dd, disarm_dd) = (window.unwrap_or(8 * 3_600_000), arm.unwrap_or(-0.30), disarm.unwrap_or(-0.25));
        let t = match name {
            "fund_empty" => Trigger::FundEmpty,
            "drawdown" => Trigger::Drawdown { window, arm: arm_dd, disarm: disarm_dd },
            "symbol_drawdown" => Trigger::SymbolDrawdown { window, arm: arm_dd, disarm: disarm_dd, min_balance: min_balance.unwrap_or(0) },
            "fund_drop" => Trigger::FundDrop { arm: arm.unwrap_or(0.70), disarm: disarm.unwrap_or(0.90) },
            other => return Err(bad(format!("{other:?} is not one of: fund_empty, drawdown, symbol_drawdown, fund_drop"))),
        };
        if min_balance.is_some() && !matches!(t, Trigger::SymbolDrawdown { .. }) {
            return Err(crate::core::units::error::AdlError::config(
                "trigger_min_balance",
                "only the symbol_drawdown trigger takes a minimum balance",
            ));
        }
        t.validated()
    }

    /// The trigger if its parameters are usable (also for triggers read back from bytes).
    pub fn validated(self) -> crate::core::units::error::Result<Trigger> {
        let bad = |msg: String| crate::core::units::error::AdlError::config("trigger", msg);
        match self {
            Trigger::Drawdown { window, arm, disarm } | Trigger::SymbolDrawdown { window, arm, disarm, .. }
                if !(window > 0 && arm < disarm && (-1.0..0.0).contains(&arm) && disarm < 0.0) =>
            {
                Err(bad(format!("drawdown needs window > 0 and -1 <= arm ({arm}) < disarm ({disarm}) < 0; window {window}")))
            }
            Trigger::SymbolDrawdown { min_balance, .. } if min_balance < 0 => {
                Err(crate::core::units::error::AdlError::config("trigger_min_balance", format!("{min_balance} must be >= 0")))
            }
            Trigger::FundDrop { arm, disarm } if !(0.0 < arm && arm < disarm && disarm <= 1.0) => {
                Err(bad(format!("fund_drop needs 0 < arm ({arm}) < disarm ({disarm}) <= 1")))
            }
            t => Ok(t),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Trigger::FundEmpty => "fund_empty",
            Trigger::Drawdown { .. } => "drawdown",
            Trigger::FundDrop { .. } => "fund_drop",
            Trigger::SymbolDrawdown { .. } => "symbol_drawdown",
        }
    }

    /// The window of a drawdown trigger (the caller's clock units), `None` for the others.
    pub fn window(&self) -> Option<i64> {
        match *self {
            Trigger::Drawdown { window, .. } | Trigger::SymbolDrawdown { window, .. } => Some(window),
            _ => None,
        }
    }
}

/// What a venue's feed shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdlState {
    Normal,
    /// Past the disarm threshold but not armed yet (inside the hysteresis band).
    Soon,
    Armed,
}

impl AdlState {
    pub fn name(&self) -> &'static str {
        match self {
            AdlState::Normal => "normal",
            AdlState::Soon => "soon",
            AdlState::Armed => "armed",
        }
    }
}

/// A running maximum over a sliding window of the caller's clock: samples (ts, value) with
/// decreasing value, so the front is the window's maximum.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WindowMax(pub(crate) VecDeque<(i64, i128)>);

impl WindowMax {
    fn push(&mut self, ts: i64, v: i128, window: Option<i64>) {
        while self.0.back().is_some_and(|&(_, f)| f <= v) {
            self.0.pop_back();
        }
        self.0.push_back((ts, v));
        self.expire(ts, window);
    }
    fn expire(&mut self, ts: i64, window: Option<i64>) {
        if let Some(w) = window {
            // The newest sample always stays: it is the current value.
            while self.0.len() > 1 && self.0.front().is_some_and(|&(t, _)| t < ts.saturating_sub(w)) {
                self.0.pop_front();
            }
        }
    }
    fn max_or(&self, v: i128) -> i128 {
        self.0.front().map_or(v, |&(_, f)| f)
    }
}

/// One symbol's drawdown state under `Trigger::SymbolDrawdown`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SymbolState {
    /// Σ of what the symbol's liquidations paid into (+) or drew from (−) the pool.
    pub pnl: i128,
    pub(crate) window_max: WindowMax,
    pub armed: bool,
}

#[derive(Clone, Debug)]
pub struct TriggerState {
    pub trigger: Trigger,
    pub armed: bool,
    /// The fund's maximum over the window (`Drawdown`, `SymbolDrawdown`).
    pub(crate) window_max: WindowMax,
    pub(crate) peak: i128,
    pub(crate) last_ts: i64,
    /// Per market id (`SymbolDrawdown` only).
    pub(crate) symbols: FxHashMap<u32, SymbolState>,
}

impl TriggerState {
    pub fn new(trigger: Trigger, fund: i128) -> TriggerState {
        let mut s =
            TriggerState { trigger, armed: false, window_max: WindowMax::default(), peak: 0, last_ts: 0, symbols: FxHashMap::default() };
        s.observe(None, fund);
        s
    }

    /// Records the fund at `ts` (the last time if `None`) and updates `armed`.
    pub fn observe(&mut self, ts: Option<i64>, fund: i128) {
        let ts = ts.unwrap_or(self.last_ts).max(self.last_ts);
        self.last_ts = ts;
        self.peak = self.peak.max(fund);
        let window = self.trigger.window();
        self.window_max.push(ts, fund, window);
        if let Trigger::SymbolDrawdown { arm, disarm, min_balance, .. } = self.trigger {
            let pool_max = self.window_max.max_or(fund);
            for sym in self.symbols.values_mut() {
                sym.window_max.expire(ts, window);
                let drop = sym.pnl - sym.window_max.max_or(sym.pnl); // <= 0
                if fund <= min_balance || pool_max <= 0 || drop * 1_000_000 > ppm(disarm) * pool_max {
                    sym.armed = false;
                } else if drop * 1_000_000 < ppm(arm) * pool_max {
                    sym.armed = true;
                }
            }
            return;
        }
        let (level, arm, disarm) = self.level(fund);
        if level < arm {
            self.armed = true;
        } else if level > disarm || (matches!(self.trigger, Trigger::FundDrop { .. }) && level >= disarm) {
            self.armed = false;
        }
    }

    /// Records a liquidation of market `market` that changed the fund by `delta` to `fund`.
    /// `capped`: the event needed ADL (or left bad debt) while the drawdown cap held the fund
    /// back, which arms the trigger (ADL has started; it stops at the disarm level).
    pub fn observe_event(&mut self, ts: Option<i64>, fund: i128, market: u32, delta: i128, capped: bool) {
        if let Trigger::SymbolDrawdown { .. } = self.trigger {
            let window = self.trigger.window();
            let at = ts.unwrap_or(self.last_ts).max(self.last_ts);
            let sym = self.symbols.entry(market).or_default();
            if sym.window_max.0.is_empty() {
                sym.window_max.push(at, sym.pnl, window); // the PnL before its first event
            }
            sym.pnl += delta;
            sym.window_max.push(at, sym.pnl, window);
        }
        self.observe(ts, fund);
        if capped {
            match self.trigger {
                Trigger::Drawdown { .. } => self.armed = true,
                Trigger::SymbolDrawdown { .. } => self.symbols.entry(market).or_default().armed = true,
                _ => {}
            }
        }
    }

    /// What the fund (holding `fund`) may pay for one liquidation of market `market`: nothing
    /// while armed; under a drawdown trigger, at most down to its arming level, rounded in the
    /// fund's favour (`Drawdown`: `fund − ⌈(1 + arm)·max⌉`; `SymbolDrawdown`: the amount that
    /// keeps the symbol's ratio at `arm`, `⌊(pnl − max pnl) − arm·pool max⌋`, unless the pool
    /// is at or below its minimum balance).
    pub fn available(&self, fund: i128, market: u32) -> i128 {
        let room = match self.trigger {
            Trigger::FundEmpty => fund,
            _ if self.armed => 0,
            Trigger::FundDrop { .. } => fund,
            Trigger::Drawdown { arm, .. } => {
                let max = self.window_max.max_or(fund);
                fund - ceil_div((1_000_000 + ppm(arm)) * max, 1_000_000)
            }
            Trigger::SymbolDrawdown { arm, min_balance, .. } => {
                let sym = self.symbols.get(&market);
                if fund <= min_balance {
                    fund
                } else if sym.is_some_and(|s| s.armed) {
                    0
                } else {
                    let drop = sym.map_or(0, |s| s.pnl - s.window_max.max_or(s.pnl));
                    let pool_max = self.window_max.max_or(fund);
                    (drop * 1_000_000 - ppm(arm) * pool_max).div_euclid(1_000_000)
                }
            }
        };
        room.clamp(0, fund.max(0))
    }

    /// The trigger's measure and thresholds: drawdown ratio (the worst symbol's under
    /// `SymbolDrawdown`) or fund / peak.
    fn level(&self, fund: i128) -> (f64, f64, f64) {
        match self.trigger {
            Trigger::FundEmpty => (0.0, f64::NEG_INFINITY, f64::NEG_INFINITY),
            Trigger::Drawdown { arm, disarm, .. } => {
                let max = self.window_max.max_or(fund);
                let ratio = if max > 0 { (fund - max) as f64 / max as f64 } else { 0.0 };
                (ratio, arm, disarm)
            }
            Trigger::SymbolDrawdown { arm, disarm, .. } => {
                let max = self.window_max.max_or(fund);
                let worst = self.symbols.values().map(|s| s.pnl - s.window_max.max_or(s.pnl)).min().unwrap_or(0);
                (if max > 0 { worst as f64 / max as f64 } else { 0.0 }, arm, disarm)
            }
            Trigger::FundDrop { arm, disarm } => {
                let share = if self.peak > 0 { fund as f64 / self.peak as f64 } else { 1.0 };
                (share, arm, disarm)
            }
        }
    }

    /// Normal, soon (inside the hysteresis band) or armed, for the current fund (under
    /// `SymbolDrawdown`: armed when any symbol is).
    pub fn state(&self, fund: i128) -> (AdlState, f64) {
        let (level, _, disarm) = self.level(fund);
        let armed = self.armed || self.symbols.values().any(|s| s.armed);
        let state = if armed {
            AdlState::Armed
        } else if !matches!(self.trigger, Trigger::FundEmpty) && level < disarm {
            AdlState::Soon
        } else {
            AdlState::Normal
        };
        (state, level)
    }
}

/// `⌈a/b⌉` for `b > 0`.
fn ceil_div(a: i128, b: i128) -> i128 {
    -((-a).div_euclid(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawdown_arms_below_minus_30_and_disarms_above_minus_25() {
        let mut t = TriggerState::new(Trigger::Drawdown { window: 100, arm: -0.30, disarm: -0.25 }, 1000);
        t.observe(Some(10), 760); // -24 %
        assert_eq!(t.state(760).0, AdlState::Normal);
        t.observe(Some(20), 720); // -28 %: in the band
        assert_eq!(t.state(720).0, AdlState::Soon);
        t.observe(Some(30), 690); // -31 %: armed
        assert!(t.armed);
        t.observe(Some(40), 740); // -26 %: still armed (hysteresis)
        assert!(t.armed);
        t.observe(Some(50), 760); // -24 %: disarmed
        assert!(!t.armed);
        // After the window the old maximum no longer counts: 690 vs a max of 760 = -9 %.
        t.observe(Some(160), 690);
        assert!(!t.armed);
        assert_eq!(t.state(690).0, AdlState::Normal);
    }

    #[test]
    fn fund_drop_uses_the_peak() {
        let mut t = TriggerState::new(Trigger::FundDrop { arm: 0.70, disarm: 0.90 }, 100);
        t.observe(None, 200); // new peak
        t.observe(None, 139); // 69.5 % of 200
        assert!(t.armed);
        t.observe(None, 179);
        assert!(t.armed);
        t.observe(None, 180); // 90 %: disarmed
        assert!(!t.armed);
    }

    #[test]
    fn fund_empty_never_arms() {
        let mut t = TriggerState::new(Trigger::FundEmpty, 100);
        t.observe(Some(5), 0);
        assert!(!t.armed);
        assert_eq!(t.state(0).0, AdlState::Normal);
    }
}
