//! What a liquidation produces and the engine keeps: requests, fills, outcomes, totals and the
//! append-only fill log (docs/model.md §5).

use crate::core::book::position::{Key, Side};
use crate::core::policy::alloc::PassReason;

/// How a fill was executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillKind {
    /// Closed against the external order book at the fill price.
    External,
    /// Auto-deleveraged against a counterparty.
    Adl,
    /// Closed against the book with no counterparty left; its deficit beyond the fund is bad debt.
    BadDebt,
}

impl FillKind {
    pub fn name(&self) -> &'static str {
        match self {
            FillKind::External => "external",
            FillKind::Adl => "adl",
            FillKind::BadDebt => "bad_debt",
        }
    }
}

/// One fill record (docs/model.md §5). `account`/`side` are the counterparty's; `None` when the
/// book took the lots.
#[derive(Clone, Debug, PartialEq)]
pub struct Fill {
    pub event: u64,
    pub ts: Option<i64>,
    pub market: u32,
    pub bankrupt_account: u64,
    pub bankrupt_side: Side,
    pub account: Option<u64>,
    pub side: Option<Side>,
    pub lots: i64,
    /// Price in quote units (the exact effective price of the transfer).
    pub price: f64,
    pub rank: Option<u64>,
    pub score: Option<f64>,
    pub kind: FillKind,
    /// The counterparty's entry price (quote units) for ADL fills: with `price` it gives the
    /// profit the counterparty gave up.
    pub entry: Option<f64>,
}

/// The outcome of one liquidation. Cash amounts in cash units.
#[derive(Clone, Debug, PartialEq)]
pub struct Liquidation {
    pub event: u64,
    pub key: Key,
    pub fills: Vec<Fill>,
    /// Paid into the fund (remaining equity when the book paid at least the bankruptcy price).
    pub to_fund: i128,
    /// Paid out of the fund to cover deficits.
    pub from_fund: i128,
    pub bad_debt: i128,
    pub adl_lots: i64,
    pub external_lots: i64,
    /// Positions whose open orders a venue would cancel: the liquidated one and every counterparty.
    pub cancel_orders: Vec<Key>,
    /// The liquidation fee (part of `to_fund`).
    pub fee: i128,
    /// What was left after the close, returned to the trader's cash (`surplus_to_fund = false`).
    pub returned: i128,
    /// ADL fees the counterparties paid to the venue.
    pub adl_fees: i128,
    /// Lots the position still holds (> 0 after a partial liquidation).
    pub remaining_lots: i64,
    /// Counterparties the queue passed over because they could not pay at the ADL price
    /// (docs/model.md §2 step 4), in the order they were met. They keep their place.
    pub passed: Vec<PassedOver>,
}

/// A counterparty passed over in an event: its position and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassedOver {
    pub account: u64,
    pub side: Side,
    pub reason: PassReason,
}

/// A liquidation request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Request {
    pub account: u64,
    pub market: u32,
    pub side: Side,
    /// Price the external book gives for the whole quantity; `None` = mark.
    pub fill_price: Option<f64>,
    pub force: bool,
    /// Close only the fewest lots that bring an isolated position back to maintenance
    /// (`partial::partial_close`); the whole position when no part will do.
    pub partial: bool,
}

/// Ledger totals, for audits and conservation checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Totals {
    pub cash: i128,
    pub position_equity: i128,
    pub fund: i128,
    pub bad_debt: i128,
    /// Value passed to the external book: Σ σ·q·(P − F) over book fills.
    pub book_value: i128,
    pub long_lots: i128,
    pub short_lots: i128,
    /// ADL fees paid to the venue.
    pub fees: i128,
}

impl Totals {
    /// What the invariant of docs/model.md §2 conserves at fixed marks (fees paid to the venue
    /// included): cash + position equity + fund + book value + fees − bad debt.
    pub fn value(&self) -> i128 {
        self.cash + self.position_equity + self.fund + self.book_value + self.fees - self.bad_debt
    }
}

/// The log of fills, in event order, in fixed-size chunks so that appending never copies the
/// history (a growing Vec would stall one event for milliseconds when it doubles). Its front
/// can be drained (`Engine::drain_events`), so the first chunk may be short.
#[derive(Clone, Default)]
pub struct EventLog {
    chunks: std::collections::VecDeque<Vec<Fill>>,
    len: usize,
}

impl EventLog {
    const CHUNK: usize = 4096;

    pub(crate) fn push(&mut self, f: Fill) {
        debug_assert!(self.last().is_none_or(|l| l.event <= f.event), "fills in event order");
        match self.chunks.back_mut() {
            Some(c) if c.len() < Self::CHUNK => c.push(f),
            _ => {
                let mut c = Vec::with_capacity(Self::CHUNK);
                c.push(f);
                self.chunks.push_back(c);
            }
        }
        self.len += 1;
    }
    pub fn len(&self) -> usize {
        self.len
    }
    /// Keeps the first `len` fills (`undo::Undo`).
    pub(crate) fn truncate(&mut self, len: usize) {
        while self.len > len {
            let last = self.chunks.back_mut().expect("fills left to cut");
            let cut = (self.len - len).min(last.len());
            last.truncate(last.len() - cut);
            self.len -= cut;
            if last.is_empty() {
                self.chunks.pop_back();
            }
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn iter(&self) -> impl Iterator<Item = &Fill> {
        self.chunks.iter().flatten()
    }
    pub fn last(&self) -> Option<&Fill> {
        self.chunks.back().and_then(|c| c.last())
    }
    /// The fills of events `>= event`, found by binary search (chunks, then within one).
    pub fn since(&self, event: u64) -> impl Iterator<Item = &Fill> {
        let first = self.chunks.partition_point(|c| c.last().is_some_and(|f| f.event < event));
        let skip = self.chunks.get(first).map_or(0, |c| c.partition_point(|f| f.event < event));
        self.chunks.range(first..).flatten().skip(skip)
    }
    /// Drops the fills of events `< event`; returns how many.
    pub(crate) fn drain_before(&mut self, event: u64) -> usize {
        let before = self.len;
        while let Some(front) = self.chunks.front_mut() {
            let k = front.partition_point(|f| f.event < event);
            self.len -= k;
            if k < front.len() {
                front.drain(..k);
                break;
            }
            self.chunks.pop_front();
        }
        before - self.len
    }
}

#[cfg(test)]

mod tests {
    use super::*;

    fn fill(event: u64, k: i64) -> Fill {
        Fill {
            event,
            ts: None,
            market: 0,
            bankrupt_account: event,
            bankrupt_side: Side::Long,
            account: Some(k as u64),
            side: Some(Side::Short),
            lots: k,
            price: 1.0,
            rank: None,
            score: None,
            kind: FillKind::Adl,
            entry: None,
        }
    }

    #[test]
    fn the_chunked_log_drains_reads_and_truncates_as_a_vec_would() {
        // Events of 0..=9 fills each (some with none) across many 4,096-fill chunks, checked
        // against a plain Vec after every drain, read and undo-style truncation.
        let (mut log, mut model) = (EventLog::default(), Vec::new());
        let mut event = 0u64;
        let mut state = 11u64;
        let mut next = |n: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        for round in 0..400 {
            for _ in 0..next(60) {
                for k in 0..next(10) as i64 {
                    log.push(fill(event, k));
                    model.push(fill(event, k));
                }
                event += 1;
            }
            match round % 4 {
                0 => {
                    let upto = model.first().map_or(0, |f: &Fill| f.event) + next(40);
                    let dropped = log.drain_before(upto);
                    let keep = model.partition_point(|f| f.event < upto);
                    model.drain(..keep);
                    assert_eq!(dropped, keep, "round {round}");
                }
                1 => {
                    let len = model.len() - next(model.len() as u64 + 1) as usize;
                    log.truncate(len);
                    model.truncate(len);
                }
                _ => {}
            }
            assert_eq!(log.len(), model.len());
            assert!(log.iter().eq(model.iter()), "round {round}");
            assert_eq!(log.last(), model.last());
            for since in [0, event / 2, event.saturating_sub(3), event, event + 1] {
                let want: Vec<&Fill> = model.iter().filter(|f| f.event >= since).collect();
                assert!(log.since(since).eq(want.into_iter()), "round {round} since {since}");
            }
        }
        assert!(event > 8_000 && log.len() > 0, "several chunks were used");
    }
}
