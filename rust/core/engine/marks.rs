//! Marks and the clock: `set_marks` moves marks (cross accounts whose band a moved mark
//! leaves are revalued by difference, the others read exactly on use; their positions in
//! other queues are re-keyed in place or left to rebuild), and `check_ts_step` keeps a stray
//! timestamp from jumping the clock.

use crate::core::book::input::parse_mark;
use crate::core::book::position::Side;
use crate::core::engine::undo::Undo;
use crate::core::engine::Engine;
use crate::core::policy::queues::Market;
use crate::core::units::error::{AdlError, Result};
use rustc_hash::FxHashMap;

/// Most positions of one queue that a mark change elsewhere re-keys in place (or a 64th of
/// the queue, if more); beyond it the queue is rebuilt on use.
const REKEY_MAX: usize = 64;

impl Engine {
    /// Sets marks (all validated first). Marks of other markets are unchanged.
    pub fn set_marks(&mut self, marks: &[(String, f64)], ts: Option<i64>) -> Result<()> {
        self.undoable(|e, undo| e.set_marks_noted(marks, ts, undo))
    }

    pub(crate) fn set_marks_noted(&mut self, marks: &[(String, f64)], ts: Option<i64>, undo: &mut Undo) -> Result<()> {
        // The clock only moves forward (the drawdown window and fill stamps read it).
        if let (Some(new), Some(now)) = (ts, self.ts) {
            if new < now {
                return Err(AdlError::config("ts", format!("{new} is before the engine's clock {now}; ts must not go backwards")));
            }
        }
        let mut parsed = Vec::with_capacity(marks.len());
        for (name, price) in marks {
            let id = self.market_id(name)?;
            parsed.push((id, parse_mark(&self.markets[id as usize].grid, name, *price)?));
        }
        // Marks, cross totals (from the marks), the clock and every pool's trigger window.
        undo.note_marks(self);
        undo.note_all_pools(self);
        self.set_mark_ticks(&parsed, ts).map_err(|e| AdlError::config("marks", e.to_string()))
    }

    /// Refuses a `ts` more than `max_step` ahead of the engine's clock (`None`: one window of
    /// a drawdown trigger, unbounded under the other triggers). One stray future `ts` would
    /// otherwise move the clock there for good: every later real `ts` is before it (refused),
    /// and the trigger's window, stuck at that time, would never slide. Beyond one window
    /// nothing of the window's history is left, so a real gap that long is one the caller
    /// knows of (and allows with `max_step`). Checked at the door (`oplog::Journal`), not on
    /// replay: a logged `set_marks` was accepted when it ran.
    pub fn check_ts_step(&self, ts: Option<i64>, max_step: Option<i64>) -> Result<()> {
        let limit = max_step.or_else(|| self.funds.pool(0).trigger.trigger.window());
        if let (Some(new), Some(now), Some(limit)) = (ts, self.ts, limit) {
            if new.saturating_sub(now) > limit {
                return Err(AdlError::config(
                    "ts",
                    format!("{new} is more than max_ts_step = {limit} ahead of the engine's clock {now} (a stray future ts would hold the clock there)"),
                ));
            }
        }
        Ok(())
    }

    /// Sets validated marks (market id, ticks): what `set_marks` does after parsing. Refused,
    /// changing nothing, when a cross account's sums would pass `cross::CROSS_LIMIT`.
    pub(crate) fn set_mark_ticks(&mut self, marks: &[(u32, i64)], ts: Option<i64>) -> Result<()> {
        let before: Vec<(u32, Option<i64>)> = marks.iter().map(|&(id, _)| (id, self.markets[id as usize].mark)).collect();
        for &(id, t) in marks {
            self.markets[id as usize].set_mark(t);
        }
        // The markets whose mark moved, each once with its first mark before the call.
        let mut moved: Vec<(u32, Option<i64>)> =
            before.iter().copied().filter(|&(id, old)| self.markets[id as usize].mark != old).collect();
        moved.sort_by_key(|&(id, _)| id);
        moved.dedup_by_key(|&mut (id, _)| id);
        if !self.cross.is_empty() && !moved.is_empty() {
            let changed: Vec<u32> = moved.iter().map(|&(id, _)| id).collect();
            match self.cross.remark(&changed, &self.markets) {
                Ok(()) => self.rekey_cross(&changed),
                Err(e) => {
                    // Back to the old marks (their indexes went stale: caches, rebuilt on use).
                    for &(id, mark) in before.iter().rev() {
                        self.markets[id as usize].mark = mark;
                    }
                    return Err(e);
                }
            }
        }
        if ts.is_some() {
            self.ts = ts;
        }
        self.funds.observe(self.ts);
        Ok(())
    }

    /// Cross positions in markets whose mark did not move but whose accounts' totals did (the
    /// accounts holding a `changed` market): their scores moved. A queue with few of them
    /// re-keys them in place; one with many goes stale (rebuilt on use, as after a mark
    /// change of its own market).
    fn rekey_cross(&mut self, changed: &[u32]) {
        let current = |(i, m): (usize, &Market)| {
            changed.binary_search(&(i as u32)).is_err() && (m.current_index(Side::Long).is_some() || m.current_index(Side::Short).is_some())
        };
        if !self.markets.iter().enumerate().any(current) {
            return; // every queue the touched accounts are in is stale already
        }
        let mut by_side: FxHashMap<(u32, usize), Vec<u32>> = FxHashMap::default();
        for a in self.cross.accounts_in(changed) {
            for &slot in self.cross.slots(a) {
                let p = self.store.get(slot);
                if changed.binary_search(&p.market).is_err() && self.markets[p.market as usize].current_index(p.side).is_some() {
                    by_side.entry((p.market, p.side.slot())).or_default().push(slot);
                }
            }
        }
        let mut rekey = Vec::new();
        for ((market, side), mut slots) in by_side {
            let m = &mut self.markets[market as usize];
            let queued = m.current_index(Side::of_slot(side)).map_or(0, |i| i.len());
            if slots.len() > REKEY_MAX.max(queued / 64) {
                m.invalidate_side(side);
                continue;
            }
            slots.sort_unstable();
            for &slot in &slots {
                self.cross.sync_account(self.store.get(slot).account); // read below
            }
            rekey.push((market, slots));
        }
        let (markets, store, scoring) = self.book_mut();
        for (market, slots) in rekey {
            for slot in slots {
                markets[market as usize].rescore_member(store, &scoring, slot);
            }
        }
    }
}
