//! When ADL bypasses the insurance fund (docs/model.md §5). `FundEmpty` (most venues) never
//! arms: ADL starts when the fund cannot cover a deficit. `Drawdown` (Bybit) and `FundDrop`
//! (Bitget) arm on the fund's history with hysteresis; while armed, the fund pays nothing.
//! Time is the caller's (`ts` given with marks), never the wall clock.

use std::collections::VecDeque;

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
}

impl Trigger {
    /// A trigger by name with the venues' defaults for thresholds left `None`: drawdown over
    /// 8 hours of the caller's clock in milliseconds (`window`), -30 % / -25 %; fund drop
    /// 70 % / 90 % of the peak.
    pub fn parse(name: &str, window: Option<i64>, arm: Option<f64>, disarm: Option<f64>) -> crate::core::error::Result<Trigger> {
        let bad = |msg: String| crate::core::error::AdlError::config("trigger", msg);
        let t = match name {
            "fund_empty" => Trigger::FundEmpty,
            "drawdown" => {
                Trigger::Drawdown { window: window.unwrap_or(8 * 3_600_000), arm: arm.unwrap_or(-0.30), disarm: disarm.unwrap_or(-0.25) }
            }
            "fund_drop" => Trigger::FundDrop { arm: arm.unwrap_or(0.70), disarm: disarm.unwrap_or(0.90) },
            other => return Err(bad(format!("{other:?} is not one of: fund_empty, drawdown, fund_drop"))),
        };
        t.validated()
    }

    /// The trigger if its parameters are usable (also for triggers read back from bytes).
    pub fn validated(self) -> crate::core::error::Result<Trigger> {
        let bad = |msg: String| crate::core::error::AdlError::config("trigger", msg);
        match self {
            Trigger::Drawdown { window, arm, disarm } if !(window > 0 && arm < disarm && (-1.0..0.0).contains(&arm)) => {
                Err(bad(format!("drawdown needs window > 0 and -1 <= arm ({arm}) < disarm ({disarm}) < 0; window {window}")))
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

#[derive(Clone, Debug)]
pub struct TriggerState {
    pub trigger: Trigger,
    pub armed: bool,
    /// Fund samples (ts, fund) with decreasing fund: the front is the window's maximum.
    pub(crate) window_max: VecDeque<(i64, i128)>,
    pub(crate) peak: i128,
    pub(crate) last_ts: i64,
}

impl TriggerState {
    pub fn new(trigger: Trigger, fund: i128) -> TriggerState {
        let mut s = TriggerState { trigger, armed: false, window_max: VecDeque::new(), peak: 0, last_ts: 0 };
        s.observe(None, fund);
        s
    }

    /// Records the fund at `ts` (the last time if `None`) and updates `armed`.
    pub fn observe(&mut self, ts: Option<i64>, fund: i128) {
        let ts = ts.unwrap_or(self.last_ts).max(self.last_ts);
        self.last_ts = ts;
        self.peak = self.peak.max(fund);
        while self.window_max.back().is_some_and(|&(_, f)| f <= fund) {
            self.window_max.pop_back();
        }
        self.window_max.push_back((ts, fund));
        if let Trigger::Drawdown { window, .. } = self.trigger {
            while self.window_max.front().is_some_and(|&(t, _)| t < ts.saturating_sub(window)) {
                self.window_max.pop_front();
            }
        }
        let (level, arm, disarm) = self.level(fund);
        if level < arm {
            self.armed = true;
        } else if level > disarm || (matches!(self.trigger, Trigger::FundDrop { .. }) && level >= disarm) {
            self.armed = false;
        }
    }

    /// The trigger's measure and thresholds: drawdown ratio or fund / peak.
    fn level(&self, fund: i128) -> (f64, f64, f64) {
        match self.trigger {
            Trigger::FundEmpty => (0.0, f64::NEG_INFINITY, f64::NEG_INFINITY),
            Trigger::Drawdown { arm, disarm, .. } => {
                let max = self.window_max.front().map_or(fund, |&(_, f)| f);
                let ratio = if max > 0 { (fund - max) as f64 / max as f64 } else { 0.0 };
                (ratio, arm, disarm)
            }
            Trigger::FundDrop { arm, disarm } => {
                let share = if self.peak > 0 { fund as f64 / self.peak as f64 } else { 1.0 };
                (share, arm, disarm)
            }
        }
    }

    /// Normal, soon (inside the hysteresis band) or armed, for the current fund.
    pub fn state(&self, fund: i128) -> (AdlState, f64) {
        let (level, _, disarm) = self.level(fund);
        let state = if self.armed {
            AdlState::Armed
        } else if !matches!(self.trigger, Trigger::FundEmpty) && level < disarm {
            AdlState::Soon
        } else {
            AdlState::Normal
        };
        (state, level)
    }
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
