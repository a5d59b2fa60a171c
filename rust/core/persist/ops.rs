//! The operations the log records and replays: `Op` (borrowing its inputs), `OwnedOp` (as
//! decoded), `Engine::apply` (the single entry point), and the record payload each encodes to
//! (`encode`, `decode`; the payload's first byte is the operation tag). The log file around
//! the payloads is `oplog`.

use crate::core::book::input::PositionColumns;
use crate::core::book::position::Side;
use crate::core::book::trigger::Trigger;
use crate::core::engine::undo::Undo;
use crate::core::engine::updates::UpsertStats;
use crate::core::engine::{Engine, Liquidation, Request};
use crate::core::market::MarketSpec;
use crate::core::persist::codec::{Reader, Writer};
use crate::core::persist::snapshot::{get_spec, put_spec};
use crate::core::units::error::Result;

/// Owned position columns (a `Load` or `Upsert` as logged or replayed).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OwnedColumns {
    pub account: Vec<u64>,
    pub market: Vec<u32>,
    pub side: Vec<i8>,
    pub qty: Vec<f64>,
    pub entry: Vec<f64>,
    pub margin: Vec<f64>,
    pub adl_cap: Vec<f64>,
    pub cross: Vec<u8>,
}

impl OwnedColumns {
    pub fn view(&self) -> PositionColumns<'_> {
        PositionColumns {
            account: &self.account,
            market: &self.market,
            side: &self.side,
            qty: &self.qty,
            entry: &self.entry,
            margin: &self.margin,
            adl_cap: &self.adl_cap,
            cross: &self.cross,
        }
    }
}

/// A state-changing operation, borrowing its inputs.
#[derive(Clone, Copy)]
pub enum Op<'a> {
    AddMarket {
        name: &'a str,
        spec: &'a MarketSpec,
    },
    /// `labels`: `None` for integer account ids, else the labels this load introduces
    /// (see `labels.rs`).
    Load {
        cols: PositionColumns<'a>,
        symbols: &'a [String],
        accounts: Option<(&'a [u64], &'a [f64])>,
        custom: Option<&'a [f64]>,
        labels: Option<&'a [String]>,
    },
    Upsert {
        cols: PositionColumns<'a>,
        symbols: &'a [String],
        accounts: Option<(&'a [u64], &'a [f64])>,
        custom: Option<&'a [f64]>,
        labels: Option<&'a [String]>,
    },
    /// `clock`: the zone when `ts` came as a datetime (`""` naive), else `None`.
    SetMarks {
        marks: &'a [(String, f64)],
        ts: Option<i64>,
        clock: Option<&'a str>,
    },
    SetFund {
        amount: f64,
        pool: &'a str,
    },
    SetTrigger {
        trigger: Trigger,
    },
    Liquidate {
        req: Request,
    },
    /// `Engine::liquidate_capped`: at most `max_adl` lots auto-deleveraged.
    LiquidateCapped {
        req: Request,
        max_adl: i64,
    },
    LiquidateMany {
        reqs: &'a [Request],
    },
    LiquidateAccount {
        account: u64,
        force: bool,
        partial: bool,
    },
    ClosePosition {
        account: u64,
        market: u32,
        side: Side,
        price: Option<f64>,
    },
    /// `Engine::set_keep_fills`.
    SetKeepFills {
        keep: bool,
    },
    /// `Engine::drain_events`.
    DrainEvents {
        upto: u64,
    },
}

/// What an operation returned.
#[derive(Clone, Debug, PartialEq)]
pub enum OpOutput {
    Done,
    MarketId(u32),
    Upserted(UpsertStats),
    Liquidated(Liquidation),
    Batch(Vec<Option<Liquidation>>),
    Account(Vec<Liquidation>),
    Closed(i128),
    /// Fill records dropped.
    Drained(usize),
}

impl Engine {
    /// Applies one operation (the single entry point the log records and replays). An
    /// operation that fails or panics changes nothing (`Engine::undoable`; a panic returns
    /// `AdlError::Internal`).
    pub fn apply(&mut self, op: Op<'_>) -> Result<OpOutput> {
        Ok(match op {
            // Liquidations note each step as they apply it.
            Op::Liquidate { req } => OpOutput::Liquidated(self.liquidate(req, false)?),
            Op::LiquidateCapped { req, max_adl } => OpOutput::Liquidated(self.liquidate_capped(req, Some(max_adl), false)?),
            Op::LiquidateMany { reqs } => OpOutput::Batch(self.liquidate_many(reqs)?),
            Op::LiquidateAccount { account, force, partial } => OpOutput::Account(self.liquidate_account(account, force, partial)?),
            // The fill log's switch and drain (not journaled: see `Undo`).
            Op::SetKeepFills { keep } => {
                self.set_keep_fills(keep);
                OpOutput::Done
            }
            Op::DrainEvents { upto } => OpOutput::Drained(self.drain_events(upto)?),
            _ => self.undoable(|e, undo| e.apply_noted(op, undo))?,
        })
    }

    /// The other operations, noting what they change in `undo`.
    fn apply_noted(&mut self, op: Op<'_>, undo: &mut Undo) -> Result<OpOutput> {
        let out = match op {
            Op::AddMarket { name, spec } => OpOutput::MarketId(self.add_market_noted(name, spec.clone(), undo)?),
            Op::Load { cols, symbols, accounts, custom, labels } => {
                self.with_labels(labels, &cols, accounts, |e| e.load_noted(cols, symbols, accounts, custom, undo))?;
                OpOutput::Done
            }
            Op::Upsert { cols, symbols, accounts, custom, labels } => {
                OpOutput::Upserted(self.with_labels(labels, &cols, accounts, |e| e.upsert_noted(cols, symbols, accounts, custom, undo))?)
            }
            Op::SetMarks { marks, ts, clock } => {
                self.set_marks_noted(marks, ts, undo)?;
                self.stamp_clock(clock);
                OpOutput::Done
            }
            Op::SetFund { amount, pool } => {
                self.set_fund_noted(amount, pool, undo)?;
                OpOutput::Done
            }
            Op::SetTrigger { trigger } => {
                self.set_trigger_noted(trigger, undo);
                OpOutput::Done
            }
            Op::ClosePosition { account, market, side, price } => {
                OpOutput::Closed(self.close_position_noted(account, market, side, price, undo)?)
            }
            Op::Liquidate { .. }
            | Op::LiquidateCapped { .. }
            | Op::LiquidateMany { .. }
            | Op::LiquidateAccount { .. }
            | Op::SetKeepFills { .. }
            | Op::DrainEvents { .. } => unreachable!("applied by `apply`"),
        };
        // The fault hook's step for an operation: after everything it changed.
        #[cfg(debug_assertions)]
        crate::core::engine::fault::step();
        Ok(out)
    }
}

fn put_cols(w: &mut Writer, c: &PositionColumns<'_>) {
    w.len(c.account.len());
    c.account.iter().for_each(|&x| w.u64(x));
    w.len(c.market.len());
    c.market.iter().for_each(|&x| w.u32(x));
    w.len(c.side.len());
    c.side.iter().for_each(|&x| w.u8(x as u8));
    w.f64s(c.qty);
    w.f64s(c.entry);
    w.f64s(c.margin);
    w.f64s(c.adl_cap);
    w.len(c.cross.len());
    c.cross.iter().for_each(|&x| w.u8(x));
}

fn get_cols(r: &mut Reader<'_>) -> Result<OwnedColumns> {
    let n = r.len(8)?;
    let account = (0..n).map(|_| r.u64()).collect::<Result<_>>()?;
    let n = r.len(4)?;
    let market = (0..n).map(|_| r.u32()).collect::<Result<_>>()?;
    let n = r.len(1)?;
    let side = (0..n).map(|_| r.u8().map(|b| b as i8)).collect::<Result<_>>()?;
    let (qty, entry, margin, adl_cap) = (r.f64s()?, r.f64s()?, r.f64s()?, r.f64s()?);
    let n = r.len(1)?;
    let cross = (0..n).map(|_| r.u8()).collect::<Result<_>>()?;
    Ok(OwnedColumns { account, market, side, qty, entry, margin, adl_cap, cross })
}

fn put_strings(w: &mut Writer, v: &[String]) {
    w.len(v.len());
    v.iter().for_each(|s| w.str(s));
}

fn get_strings(r: &mut Reader<'_>) -> Result<Vec<String>> {
    let n = r.len(8)?;
    (0..n).map(|_| r.str()).collect()
}

fn put_accounts(w: &mut Writer, a: Option<(&[u64], &[f64])>) {
    w.u8(a.is_some() as u8);
    let (acc, cash) = a.unwrap_or((&[], &[]));
    w.len(acc.len());
    acc.iter().for_each(|&x| w.u64(x));
    w.f64s(cash);
}

fn get_accounts(r: &mut Reader<'_>) -> Result<Option<(Vec<u64>, Vec<f64>)>> {
    let some = r.bool()?;
    let n = r.len(8)?;
    let acc = (0..n).map(|_| r.u64()).collect::<Result<Vec<u64>>>()?;
    let cash = r.f64s()?;
    Ok(some.then_some((acc, cash)))
}

fn put_opt_f64s(w: &mut Writer, v: Option<&[f64]>) {
    w.u8(v.is_some() as u8);
    w.f64s(v.unwrap_or(&[]));
}

fn get_opt_f64s(r: &mut Reader<'_>) -> Result<Option<Vec<f64>>> {
    let some = r.bool()?;
    let v = r.f64s()?;
    Ok(some.then_some(v))
}

fn put_request(w: &mut Writer, q: &Request) {
    w.u64(q.account);
    w.u32(q.market);
    w.u8(q.side.sign() as u8);
    w.opt_f64(q.fill_price);
    w.u8(q.force as u8);
    w.u8(q.partial as u8);
}

fn get_request(r: &mut Reader<'_>) -> Result<Request> {
    Ok(Request { account: r.u64()?, market: r.u32()?, side: get_side(r)?, fill_price: r.opt_f64()?, force: r.bool()?, partial: r.bool()? })
}

/// A side argument of a record. A code that is not a side fails as the operation failed on it
/// when it was written (`Side::try_from`'s error, not `Corrupt`): only a last record, left by a
/// crash before the failed operation was cut off, can hold one, and replay drops it.
fn get_side(r: &mut Reader<'_>) -> Result<Side> {
    Side::try_from(r.u8()? as i8)
}

/// Tag 0: the record of a full snapshot, always the log's first (operations are tags 1 to 16).
pub const TAG_SNAPSHOT: u8 = 0;

/// The payload of an operation record.
pub fn encode(op: &Op<'_>) -> Vec<u8> {
    let mut w = Writer::default();
    match op {
        Op::AddMarket { name, spec } => {
            w.u8(1);
            w.str(name);
            put_spec(&mut w, spec);
        }
        Op::Load { cols, symbols, accounts, custom, labels } | Op::Upsert { cols, symbols, accounts, custom, labels } => {
            let load = matches!(op, Op::Load { .. });
            // A labelled book has its own tags (2, 3 stay as version 3 wrote them).
            w.u8(match (load, labels.is_some()) {
                (true, false) => 2,
                (false, false) => 3,
                (true, true) => 11,
                (false, true) => 12,
            });
            put_cols(&mut w, cols);
            put_strings(&mut w, symbols);
            put_accounts(&mut w, *accounts);
            put_opt_f64s(&mut w, *custom);
            if let Some(new) = labels {
                put_strings(&mut w, new);
            }
        }
        Op::SetMarks { marks, ts, clock } => {
            w.u8(if clock.is_some() { 13 } else { 4 });
            w.len(marks.len());
            for (name, price) in marks.iter() {
                w.str(name);
                w.f64(*price);
            }
            w.opt_i64(*ts);
            if let Some(zone) = clock {
                w.str(zone);
            }
        }
        Op::SetFund { amount, pool } => {
            w.u8(5);
            w.f64(*amount);
            w.str(pool);
        }
        Op::SetTrigger { trigger } => {
            w.u8(6);
            let (code, window, arm, disarm) = match *trigger {
                Trigger::FundEmpty => (0, 0, 0.0, 0.0),
                Trigger::Drawdown { window, arm, disarm } => (1, window, arm, disarm),
                Trigger::FundDrop { arm, disarm } => (2, 0, arm, disarm),
                Trigger::SymbolDrawdown { window, arm, disarm, .. } => (3, window, arm, disarm),
            };
            w.u8(code);
            w.i64(window);
            w.f64(arm);
            w.f64(disarm);
            if let Trigger::SymbolDrawdown { min_balance, .. } = *trigger {
                w.i128(min_balance);
            }
        }
        Op::Liquidate { req } => {
            w.u8(7);
            put_request(&mut w, req);
        }
        Op::LiquidateCapped { req, max_adl } => {
            w.u8(14);
            put_request(&mut w, req);
            w.i64(*max_adl);
        }
        Op::LiquidateMany { reqs } => {
            w.u8(8);
            w.len(reqs.len());
            reqs.iter().for_each(|q| put_request(&mut w, q));
        }
        Op::LiquidateAccount { account, force, partial } => {
            w.u8(9);
            w.u64(*account);
            w.u8(*force as u8);
            w.u8(*partial as u8);
        }
        Op::ClosePosition { account, market, side, price } => {
            w.u8(10);
            w.u64(*account);
            w.u32(*market);
            w.u8(side.sign() as u8);
            w.opt_f64(*price);
        }
        Op::SetKeepFills { keep } => {
            w.u8(15);
            w.u8(*keep as u8);
        }
        Op::DrainEvents { upto } => {
            w.u8(16);
            w.u64(*upto);
        }
    }
    w.buf
}

/// A decoded operation that owns its data; `op()` borrows it back.
pub enum OwnedOp {
    AddMarket(String, MarketSpec),
    Load(OwnedColumns, Vec<String>, Option<(Vec<u64>, Vec<f64>)>, Option<Vec<f64>>, Option<Vec<String>>),
    Upsert(OwnedColumns, Vec<String>, Option<(Vec<u64>, Vec<f64>)>, Option<Vec<f64>>, Option<Vec<String>>),
    SetMarks(Vec<(String, f64)>, Option<i64>, Option<String>),
    SetFund(f64, String),
    SetTrigger(Trigger),
    Liquidate(Request),
    LiquidateCapped(Request, i64),
    LiquidateMany(Vec<Request>),
    LiquidateAccount(u64, bool, bool),
    ClosePosition(u64, u32, Side, Option<f64>),
    SetKeepFills(bool),
    DrainEvents(u64),
}

impl OwnedOp {
    pub fn op(&self) -> Op<'_> {
        fn acc(a: &Option<(Vec<u64>, Vec<f64>)>) -> Option<(&[u64], &[f64])> {
            a.as_ref().map(|(x, y)| (x.as_slice(), y.as_slice()))
        }
        match self {
            OwnedOp::AddMarket(name, spec) => Op::AddMarket { name, spec },
            OwnedOp::Load(c, s, a, k, l) => {
                Op::Load { cols: c.view(), symbols: s, accounts: acc(a), custom: k.as_deref(), labels: l.as_deref() }
            }
            OwnedOp::Upsert(c, s, a, k, l) => {
                Op::Upsert { cols: c.view(), symbols: s, accounts: acc(a), custom: k.as_deref(), labels: l.as_deref() }
            }
            OwnedOp::SetMarks(m, ts, z) => Op::SetMarks { marks: m, ts: *ts, clock: z.as_deref() },
            OwnedOp::SetFund(x, pool) => Op::SetFund { amount: *x, pool },
            OwnedOp::SetTrigger(t) => Op::SetTrigger { trigger: *t },
            OwnedOp::Liquidate(q) => Op::Liquidate { req: *q },
            OwnedOp::LiquidateCapped(q, k) => Op::LiquidateCapped { req: *q, max_adl: *k },
            OwnedOp::LiquidateMany(v) => Op::LiquidateMany { reqs: v },
            OwnedOp::LiquidateAccount(a, f, p) => Op::LiquidateAccount { account: *a, force: *f, partial: *p },
            OwnedOp::ClosePosition(a, m, s, p) => Op::ClosePosition { account: *a, market: *m, side: *s, price: *p },
            OwnedOp::SetKeepFills(k) => Op::SetKeepFills { keep: *k },
            OwnedOp::DrainEvents(u) => Op::DrainEvents { upto: *u },
        }
    }
}

pub fn decode(payload: &[u8]) -> Result<OwnedOp> {
    let mut r = Reader::new(payload, "log record");
    let op = match r.u8()? {
        1 => OwnedOp::AddMarket(r.str()?, get_spec(&mut r)?),
        t @ (2 | 3 | 11 | 12) => {
            let (c, s, a, k) = (get_cols(&mut r)?, get_strings(&mut r)?, get_accounts(&mut r)?, get_opt_f64s(&mut r)?);
            let l = if t > 10 { Some(get_strings(&mut r)?) } else { None };
            if t == 2 || t == 11 {
                OwnedOp::Load(c, s, a, k, l)
            } else {
                OwnedOp::Upsert(c, s, a, k, l)
            }
        }
        t @ (4 | 13) => {
            let n = r.len(16)?;
            let marks = (0..n).map(|_| Ok((r.str()?, r.f64()?))).collect::<Result<_>>()?;
            let ts = r.opt_i64()?;
            OwnedOp::SetMarks(marks, ts, if t == 13 { Some(r.str()?) } else { None })
        }
        5 => OwnedOp::SetFund(r.f64()?, r.str()?),
        6 => {
            let (code, window, arm, disarm) = (r.u8()?, r.i64()?, r.f64()?, r.f64()?);
            let t = match code {
                0 => Trigger::FundEmpty,
                1 => Trigger::Drawdown { window, arm, disarm },
                2 => Trigger::FundDrop { arm, disarm },
                3 => Trigger::SymbolDrawdown { window, arm, disarm, min_balance: r.i128()? },
                c => return Err(r.corrupt(format!("unknown trigger code {c}"))),
            };
            OwnedOp::SetTrigger(t.validated().map_err(|e| r.corrupt(e.to_string()))?)
        }
        7 => OwnedOp::Liquidate(get_request(&mut r)?),
        8 => {
            let n = r.len(23)?;
            OwnedOp::LiquidateMany((0..n).map(|_| get_request(&mut r)).collect::<Result<_>>()?)
        }
        9 => OwnedOp::LiquidateAccount(r.u64()?, r.bool()?, r.bool()?),
        10 => OwnedOp::ClosePosition(r.u64()?, r.u32()?, get_side(&mut r)?, r.opt_f64()?),
        14 => OwnedOp::LiquidateCapped(get_request(&mut r)?, r.i64()?),
        15 => OwnedOp::SetKeepFills(r.bool()?),
        16 => OwnedOp::DrainEvents(r.u64()?),
        t => return Err(r.corrupt(format!("unknown operation tag {t}"))),
    };
    if !r.is_empty() {
        return Err(r.corrupt("trailing bytes in a record"));
    }
    Ok(op)
}
