//! The operation log: every state-changing operation that returned, so that `replay`
//! rebuilds the same engine after a crash.
//!
//! File format (little-endian): magic `ADLLOG\0\0`, version `u32`; then records, each a
//! 12-byte header `len: u32`, `crc32(payload): u32`, `crc32(the 8 bytes before): u32`, then
//! `payload` (`len` bytes). The payload's first byte is the operation tag. The first record is
//! always a full snapshot (tag 0, the state when the log was opened); the others are
//! operations (`Op`). A record is written with one `write` call, before its operation runs;
//! if the operation fails the record is cut off again (`Journal::apply`).
//!
//! Sync policy: `Always` fsyncs every record before its operation runs (acknowledged =
//! returned); `Group(ms)` fsyncs when the last sync is at least `ms` old, and on `sync()`
//! (acknowledged = covered by a sync: `durable_seq`); `Never` leaves it to the OS (survives
//! a process crash, not a power loss).
//!
//! Replay: the header checksum makes every record self-checking, so damage anywhere before
//! the last record is an error (`Corrupt`). Only the end may be dropped, and is reported:
//! a record cut short (its header intact, or fewer than 12 bytes left), a last record whose
//! payload fails its checksum, zeros after the last record, or a last operation that fails
//! (the process died between writing it and cutting it off).
//!
//! One writer per log: the file is locked (`flock`, exclusive) while an `OpLog` holds it.

use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::core::book::input::PositionColumns;
use crate::core::book::trigger::Trigger;
use crate::core::engine::undo::Undo;
use crate::core::engine::updates::UpsertStats;
use crate::core::engine::{Engine, Liquidation, Request};
use crate::core::market::MarketSpec;
use crate::core::persist::codec::{crc32, Reader, Writer};
use crate::core::persist::files;
use crate::core::persist::snapshot::{get_spec, put_spec};
use crate::core::units::error::{AdlError, Result};

pub const LOG_MAGIC: &[u8; 8] = b"ADLLOG\0\0";
/// Version 4 added the records of labelled books (tags 11, 12) and of datetime marks (13);
/// version 5 those of the fill log (tags 15 `SetKeepFills`, 16 `DrainEvents`) and version 5
/// snapshots. Version 3 and 4 logs hold none of them and read unchanged.
pub const LOG_VERSION: u32 = 5;
const OLDEST_LOG_VERSION: u32 = 3;
/// No record is larger than this (a corrupt length cannot make replay allocate more).
const MAX_RECORD: usize = 1 << 34;

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
        side: i8,
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
    w.u8(q.side as u8);
    w.opt_f64(q.fill_price);
    w.u8(q.force as u8);
    w.u8(q.partial as u8);
}

fn get_request(r: &mut Reader<'_>) -> Result<Request> {
    Ok(Request { account: r.u64()?, market: r.u32()?, side: r.u8()? as i8, fill_price: r.opt_f64()?, force: r.bool()?, partial: r.bool()? })
}

const TAG_SNAPSHOT: u8 = 0;

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
            w.u8(*side as u8);
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
    ClosePosition(u64, u32, i8, Option<f64>),
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
        10 => OwnedOp::ClosePosition(r.u64()?, r.u32()?, r.u8()? as i8, r.opt_f64()?),
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

/// When appended records are forced to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    Always,
    Group(Duration),
    Never,
}

impl SyncPolicy {
    pub fn parse(name: &str, group_ms: u64) -> Result<SyncPolicy> {
        match name {
            "always" => Ok(SyncPolicy::Always),
            "group" => Ok(SyncPolicy::Group(Duration::from_millis(group_ms))),
            "none" => Ok(SyncPolicy::Never),
            other => Err(AdlError::config("sync", format!("{other:?} is not one of: always, group, none"))),
        }
    }
}

/// An open log being appended to. The file is locked (`flock`, exclusive) for as long as
/// this value lives: one writer per log.
pub struct OpLog {
    file: File,
    path: PathBuf,
    sync: SyncPolicy,
    last_sync: Instant,
    /// Bytes in the file (where the next record starts).
    len: u64,
    /// Operations appended (the snapshot record not counted).
    pub seq: u64,
    /// Operations known to be on disk.
    pub durable_seq: u64,
    /// Why the log can no longer be trusted to hold every operation (a write, sync or
    /// rollback failed); while set, the journal refuses operations until a new log is started.
    pub failed: Option<String>,
}

/// Header of a record: `len: u32`, `crc32(payload): u32`, `crc32(len, payload crc): u32`.
pub const RECORD_HEADER: usize = 12;

fn record(payload: &[u8]) -> Vec<u8> {
    let mut w = Writer { buf: Vec::with_capacity(RECORD_HEADER + payload.len()) };
    w.u32(payload.len() as u32);
    w.u32(crc32(payload));
    let head = crc32(&w.buf);
    w.u32(head);
    w.buf.extend_from_slice(payload);
    w.buf
}

/// An appended record not yet known to be applied (see `Journal::apply`).
pub struct Pending {
    start: u64,
    synced: bool,
}

impl OpLog {
    /// Starts a log at `path` holding `engine`'s snapshot. The file is written beside and
    /// renamed into place, so an existing log is replaced only once the new one is durable.
    /// Refused when `path` is not a regular file or another engine holds its lock; `held` is
    /// the caller's current log (its own lock does not count against it).
    pub fn create(path: &Path, engine: &Engine, sync: SyncPolicy, held: Option<&OpLog>) -> Result<OpLog> {
        let mut w = Writer::default();
        w.buf.extend_from_slice(LOG_MAGIC);
        w.u32(LOG_VERSION);
        let mut snap = vec![TAG_SNAPSHOT];
        snap.extend_from_slice(&engine.snapshot());
        if snap.len() > MAX_RECORD || snap.len() > u32::MAX as usize {
            return Err(AdlError::config("log", "the engine snapshot is too large for one log record (4 GiB)"));
        }
        w.buf.extend_from_slice(&record(&snap));
        let file = files::replace(path, &w.buf, true, held.map(|l| &l.file))?;
        Ok(OpLog {
            file,
            path: path.to_path_buf(),
            sync,
            last_sync: Instant::now(),
            len: w.buf.len() as u64,
            seq: 0,
            durable_seq: 0,
            failed: None,
        })
    }

    fn refused(&self) -> Result<()> {
        match &self.failed {
            None => Ok(()),
            Some(why) => Err(AdlError::Io {
                path: self.path.display().to_string(),
                message: format!("the log failed earlier ({why}); operations are refused until log_to starts a new log"),
            }),
        }
    }

    /// Writes one operation's record (before the operation is applied) and syncs per the
    /// policy. On failure nothing of the record is left in the file and the log is marked
    /// failed (an fsync error may have lost earlier unsynced records too).
    pub fn append(&mut self, op: &Op<'_>) -> Result<Pending> {
        self.refused()?;
        let payload = encode(op);
        if payload.len() > u32::MAX as usize {
            return Err(AdlError::config("log", "operation too large for one log record (4 GiB)"));
        }
        let start = self.len;
        let written = self.file.write_all(&record(&payload));
        let synced = match self.sync {
            SyncPolicy::Always => true,
            SyncPolicy::Group(every) => self.last_sync.elapsed() >= every,
            SyncPolicy::Never => false,
        };
        let result = written.and_then(|()| if synced { self.file.sync_data() } else { Ok(()) });
        if let Err(e) = result {
            let err = files::io_err(&self.path, e);
            self.failed = Some(err.to_string());
            self.rollback(start);
            return Err(err);
        }
        self.len = start + RECORD_HEADER as u64 + payload.len() as u64;
        if synced {
            self.last_sync = Instant::now();
        }
        Ok(Pending { start, synced })
    }

    /// The operation of `p` was applied: it counts as logged (and durable if synced).
    pub fn commit(&mut self, p: Pending) {
        self.seq += 1;
        if p.synced {
            self.durable_seq = self.seq;
        }
    }

    /// Removes a record whose operation was refused (or a partly written one). If that
    /// fails the log is marked failed: the next record would follow a failed operation.
    pub fn rollback(&mut self, start: u64) {
        let cut = self.file.set_len(start).and_then(|()| self.file.seek(SeekFrom::Start(start)).map(drop));
        match cut {
            Ok(()) => self.len = start,
            Err(e) => {
                self.failed.get_or_insert_with(|| format!("could not remove a refused operation's record: {e}"));
            }
        }
    }

    /// Undoes `p` (its operation failed).
    pub fn abort(&mut self, p: Pending) {
        self.rollback(p.start);
    }

    /// Forces everything appended so far to disk.
    pub fn sync(&mut self) -> Result<()> {
        self.refused()?;
        if let Err(e) = self.file.sync_data() {
            let err = files::io_err(&self.path, e);
            self.failed = Some(err.to_string());
            return Err(err);
        }
        self.last_sync = Instant::now();
        self.durable_seq = self.seq;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What a replay found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayInfo {
    /// Operations replayed after the snapshot.
    pub ops: u64,
    /// Bytes of a torn last record that were dropped.
    pub dropped_bytes: u64,
}

/// Rebuilds the engine a log describes.
pub fn replay(path: &Path) -> Result<(Engine, ReplayInfo)> {
    let data = fs::read(path).map_err(|e| files::io_err(path, e))?;
    replay_bytes(&data)
}

pub fn replay_bytes(data: &[u8]) -> Result<(Engine, ReplayInfo)> {
    let mut r = Reader::new(data, "log");
    if r.bytes(8)? != LOG_MAGIC {
        return Err(r.corrupt("not an adl log (bad magic)"));
    }
    let v = r.u32()?;
    if !(OLDEST_LOG_VERSION..=LOG_VERSION).contains(&v) {
        return Err(r.corrupt(format!("log format version {v}, this build reads versions {OLDEST_LOG_VERSION} to {LOG_VERSION}")));
    }
    let corrupt = |message: String| AdlError::Corrupt { what: "log".into(), message };
    let mut pos = 12usize;
    let mut engine: Option<Engine> = None;
    let mut info = ReplayInfo::default();
    while pos < data.len() {
        let rest = &data[pos..];
        // Only the end of the file may be dropped: a record cut short, a last record whose
        // payload fails its checksum, or zeros a crash left after the last record.
        let torn = |info: &mut ReplayInfo| info.dropped_bytes = rest.len() as u64;
        if rest.len() < RECORD_HEADER {
            torn(&mut info);
            break;
        }
        let word = |i: usize| u32::from_le_bytes(rest[4 * i..4 * i + 4].try_into().expect("4 bytes"));
        let (len, crc, head) = (word(0) as usize, word(1), word(2));
        // The header checks itself, so a damaged length cannot pass for a cut-short record.
        if crc32(&rest[..8]) != head {
            if rest.iter().all(|&b| b == 0) {
                torn(&mut info);
                break;
            }
            return Err(corrupt(format!("damaged record header at byte {pos}")));
        }
        if len == 0 {
            return Err(corrupt(format!("empty record at byte {pos}")));
        }
        let end = RECORD_HEADER + len;
        if rest.len() < end {
            torn(&mut info);
            break;
        }
        let payload = &rest[RECORD_HEADER..end];
        let last = rest.len() == end;
        if crc32(payload) != crc {
            if last {
                torn(&mut info);
                break;
            }
            return Err(corrupt(format!("checksum mismatch in the record at byte {pos}, with data after it")));
        }
        match engine.as_mut() {
            None => {
                if payload.first() != Some(&TAG_SNAPSHOT) {
                    return Err(corrupt("the first record is not a snapshot".into()));
                }
                // A log's snapshot is of its own format version or older (a log of an older
                // version holding a newer snapshot is damage, e.g. a flipped version bit).
                let snap = &payload[1..];
                let snap_version = snap.get(8..12).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")));
                if snap_version.is_some_and(|sv| sv > v) {
                    return Err(corrupt(format!("a version {v} log holds a version {} snapshot", snap_version.unwrap_or(0))));
                }
                engine = Some(Engine::restore(snap)?);
            }
            Some(e) => {
                let op = decode(payload)?;
                // Records are written before their operation runs and removed if it fails;
                // a crash in between leaves a failing operation as the last record.
                match e.apply(op.op()) {
                    Ok(_) => info.ops += 1,
                    Err(_) if last => {
                        torn(&mut info);
                        break;
                    }
                    Err(err) => return Err(corrupt(format!("operation {} failed on replay: {err}", info.ops + 1))),
                }
            }
        }
        pos += end;
    }
    let engine = engine.ok_or_else(|| corrupt("no snapshot record".into()))?;
    Ok((engine, info))
}

/// An engine with an optional log: every operation through `apply` that succeeds is logged.
pub struct Journal {
    pub engine: Engine,
    pub log: Option<OpLog>,
    /// Set when an operation panicked and the state before it could not be recovered
    /// (no log to replay): every later operation is refused.
    pub poisoned: Option<String>,
    /// How far a `set_marks` ts may jump ahead of the clock (`Engine::check_ts_step`).
    pub max_ts_step: Option<i64>,
}

impl Journal {
    pub fn new(engine: Engine) -> Journal {
        Journal { engine, log: None, poisoned: None, max_ts_step: None }
    }

    /// Logs, then applies. The record is written (and synced per the policy) before the
    /// operation runs, and removed if the operation fails, so the log holds exactly the
    /// operations that returned: a failed write changes nothing and raises, and a log that
    /// failed refuses every later operation until a new one is started.
    ///
    /// A panic inside the operation (a bug) is undone by the engine itself
    /// (`Engine::undoable`): the call returns `Internal` and changes nothing, and the engine
    /// goes on. Only a panic that escapes that (in the rollback itself) reaches the last
    /// resort here: with a log, the engine is rebuilt from it (the state before the call);
    /// without one, the engine refuses every later operation.
    pub fn apply(&mut self, op: Op<'_>) -> Result<OpOutput> {
        if let Some(why) = &self.poisoned {
            return Err(AdlError::Internal {
                message: format!("an earlier operation panicked ({why}); restore a snapshot or replay a log"),
            });
        }
        if let Op::SetMarks { ts, .. } = op {
            self.engine.check_ts_step(ts, self.max_ts_step)?;
        }
        let pending = match self.log.as_mut() {
            Some(log) => Some(log.append(&op)?),
            None => None,
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.engine.apply(op)));
        match (result, self.log.as_mut(), pending) {
            (Ok(Ok(out)), Some(log), Some(p)) => {
                log.commit(p);
                Ok(out)
            }
            (Ok(Ok(out)), _, _) => Ok(out),
            (Ok(Err(e)), log, p) => {
                if let (Some(log), Some(p)) = (log, p) {
                    log.abort(p);
                }
                Err(e)
            }
            (Err(panic), log, p) => {
                let message = crate::core::units::error::panic_message(panic.as_ref());
                let recovered = match (log, p) {
                    (Some(log), Some(p)) => {
                        log.abort(p);
                        let again = if log.failed.is_none() { replay(log.path()).ok() } else { None };
                        again.map(|(e, _)| self.engine = e).is_some()
                    }
                    _ => false,
                };
                if !recovered {
                    self.poisoned = Some(message.clone());
                }
                let outcome =
                    if recovered { "the state before the call was rebuilt from the log" } else { "the engine refuses further operations" };
                Err(AdlError::Internal { message: format!("{message}; {outcome}") })
            }
        }
    }
}
