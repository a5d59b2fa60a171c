//! Engine snapshots: the whole state as versioned, checksummed bytes.
//!
//! Format (little-endian): magic `ADLSNAP\0`, version `u32`, payload length `u64`, CRC-32 of
//! the payload `u32`, then the payload: configuration (policy, ADL price, seed, lights, cash decimals,
//! default market), trigger state, markets (name, grid, rate, mark), the position store
//! slot by slot (free slots included, so slots and hence tie order survive), account cash,
//! custom scores, account labels and the clock's zone (version 4; `labels.rs`), the fill log's
//! settings (version 5: whether fills are kept, and the drain cursor), ledgers (fund, bad
//! debt, book value, next event id, clock) and the fill log. Version 5 also holds each
//! position's margin in 16 bytes (i128; 8 before). Version 3 and 4 snapshots still restore
//! (no labels and an integer clock before 4; 8-byte margins, fills kept and never drained
//! before 5).
//! Ranking indexes are caches: they are rebuilt on first use and order exactly as before
//! (score, then account: one account has one position per market side).

use rustc_hash::FxHashMap;

use crate::core::book::cross::CrossBook;
use crate::core::book::funds::{Change, Funds, Pool, Record, DEFAULT_POOL};
use crate::core::book::position::{Position, PositionStore, Side, NO_INDEX};
use crate::core::book::trigger::{SymbolState, Trigger, TriggerState, WindowMax};
use crate::core::engine::labels::Labels;
use crate::core::engine::{AdlPrice, Engine, EventLog, Fill, FillKind};
use crate::core::market::tiers::TierSpec;
use crate::core::market::{FeeConvention, MarketSpec};
use crate::core::persist::codec::{crc32, Reader, Writer};
use crate::core::policy::score::{Lights, Policy};
use crate::core::units::error::{AdlError, Result};
use crate::core::units::fixed::{LEDGER_LIMIT, MAX_GRID, MAX_MARGIN};

pub const MAGIC: &[u8; 8] = b"ADLSNAP\0";
pub const VERSION: u32 = 5;
/// The oldest snapshot version `restore` reads.
pub const OLDEST_VERSION: u32 = 3;
const HEADER: usize = 8 + 4 + 8 + 4;

/// Wraps a payload with the header.
pub fn seal(magic: &[u8; 8], version: u32, payload: &[u8]) -> Vec<u8> {
    let mut w = Writer { buf: Vec::with_capacity(HEADER + payload.len()) };
    w.buf.extend_from_slice(magic);
    w.u32(version);
    w.len(payload.len());
    w.u32(crc32(payload));
    w.buf.extend_from_slice(payload);
    w.buf
}

/// Checks the header and checksum and returns the payload.
pub fn unseal<'a>(magic: &[u8; 8], version: u32, data: &'a [u8], what: &'static str) -> Result<&'a [u8]> {
    unseal_any(magic, version..=version, data, what).map(|(_, p)| p)
}

/// `unseal` for a range of versions; returns the version with the payload.
pub fn unseal_any<'a>(
    magic: &[u8; 8],
    versions: std::ops::RangeInclusive<u32>,
    data: &'a [u8],
    what: &'static str,
) -> Result<(u32, &'a [u8])> {
    let mut r = Reader::new(data, what);
    if r.bytes(8)? != magic {
        return Err(r.corrupt("not an adl file (bad magic)"));
    }
    let v = r.u32()?;
    if !versions.contains(&v) {
        let known = if versions.start() == versions.end() {
            format!("version {}", versions.start())
        } else {
            format!("versions {} to {}", versions.start(), versions.end())
        };
        return Err(r.corrupt(format!("format version {v}, this build reads {known}")));
    }
    let n = r.u64()? as usize;
    let crc = r.u32()?;
    let payload = r.bytes(n)?;
    if !r.is_empty() {
        return Err(r.corrupt("trailing bytes after the payload"));
    }
    if crc32(payload) != crc {
        return Err(r.corrupt("checksum mismatch"));
    }
    Ok((v, payload))
}

fn adl_price_code(p: AdlPrice) -> u8 {
    match p {
        AdlPrice::Bankruptcy => 0,
        AdlPrice::Mark => 1,
        AdlPrice::MarkCapped => 2,
    }
}

fn kind_code(k: FillKind) -> u8 {
    match k {
        FillKind::External => 0,
        FillKind::Adl => 1,
        FillKind::BadDebt => 2,
    }
}

pub fn put_spec(w: &mut Writer, s: &MarketSpec) {
    w.u32(s.qty_decimals);
    w.u32(s.price_decimals);
    w.f64(s.maintenance_rate);
    w.f64(s.multiplier);
    w.u8(s.inverse as u8);
    w.len(s.tiers.len());
    for t in &s.tiers {
        w.f64(t.floor);
        w.f64(t.rate);
        w.u8(t.amount.is_some() as u8);
        w.f64(t.amount.unwrap_or(0.0));
    }
    w.f64(s.liquidation_fee);
    w.u8((s.fee_convention == FeeConvention::Bankruptcy) as u8);
    w.u8(s.surplus_to_fund as u8);
    w.f64(s.adl_fee);
    w.str(&s.fund_pool);
}

pub fn get_spec(r: &mut Reader<'_>) -> Result<MarketSpec> {
    let (qty_decimals, price_decimals, maintenance_rate, multiplier, inverse) = (r.u32()?, r.u32()?, r.f64()?, r.f64()?, r.bool()?);
    let n = r.len(25)?;
    let tiers = (0..n)
        .map(|_| {
            let (floor, rate, has, amount) = (r.f64()?, r.f64()?, r.bool()?, r.f64()?);
            Ok(TierSpec { floor, rate, amount: has.then_some(amount) })
        })
        .collect::<Result<_>>()?;
    let liquidation_fee = r.f64()?;
    let fee_convention = if r.bool()? { FeeConvention::Bankruptcy } else { FeeConvention::Surplus };
    let (surplus_to_fund, adl_fee, fund_pool) = (r.bool()?, r.f64()?, r.str()?);
    Ok(MarketSpec {
        qty_decimals,
        price_decimals,
        maintenance_rate,
        multiplier,
        inverse,
        tiers,
        liquidation_fee,
        fee_convention,
        surplus_to_fund,
        adl_fee,
        fund_pool,
    })
}

fn put_trigger(w: &mut Writer, t: &TriggerState) {
    match t.trigger {
        Trigger::FundEmpty => w.u8(0),
        Trigger::Drawdown { window, arm, disarm } => {
            w.u8(1);
            w.i64(window);
            w.f64(arm);
            w.f64(disarm);
        }
        Trigger::FundDrop { arm, disarm } => {
            w.u8(2);
            w.f64(arm);
            w.f64(disarm);
        }
        Trigger::SymbolDrawdown { window, arm, disarm, min_balance } => {
            w.u8(3);
            w.i64(window);
            w.f64(arm);
            w.f64(disarm);
            w.i128(min_balance);
        }
    }
    w.u8(t.armed as u8);
    put_window(w, &t.window_max);
    w.i128(t.peak);
    w.i64(t.last_ts);
    if let Trigger::SymbolDrawdown { .. } = t.trigger {
        let mut symbols: Vec<(&u32, &SymbolState)> = t.symbols.iter().collect();
        symbols.sort_unstable_by_key(|s| *s.0);
        w.len(symbols.len());
        for (&market, s) in symbols {
            w.u32(market);
            w.i128(s.pnl);
            w.u8(s.armed as u8);
            put_window(w, &s.window_max);
        }
    }
}

fn put_window(w: &mut Writer, m: &WindowMax) {
    w.len(m.0.len());
    for &(ts, f) in &m.0 {
        w.i64(ts);
        w.i128(f);
    }
}

fn get_window(r: &mut Reader<'_>) -> Result<WindowMax> {
    let n = r.len(24)?;
    Ok(WindowMax((0..n).map(|_| Ok((r.i64()?, r.i128()?))).collect::<Result<_>>()?))
}

fn get_trigger(r: &mut Reader<'_>, fund: i128) -> Result<TriggerState> {
    let trigger = match r.u8()? {
        0 => Trigger::FundEmpty,
        1 => Trigger::Drawdown { window: r.i64()?, arm: r.f64()?, disarm: r.f64()? },
        2 => Trigger::FundDrop { arm: r.f64()?, disarm: r.f64()? },
        3 => Trigger::SymbolDrawdown { window: r.i64()?, arm: r.f64()?, disarm: r.f64()?, min_balance: r.i128()? },
        c => return Err(r.corrupt(format!("unknown trigger code {c}"))),
    };
    let trigger = trigger.validated().map_err(|e| r.corrupt(e.to_string()))?;
    let mut t = TriggerState::new(trigger, fund);
    t.armed = r.bool()?;
    t.window_max = get_window(r)?;
    t.peak = r.i128()?;
    t.last_ts = r.i64()?;
    if let Trigger::SymbolDrawdown { .. } = trigger {
        let n = r.len(45)?;
        for _ in 0..n {
            let market = r.u32()?;
            let s = SymbolState { pnl: r.i128()?, armed: r.bool()?, window_max: get_window(r)? };
            if t.symbols.insert(market, s).is_some() {
                return Err(r.corrupt(format!("trigger state of market {market} twice")));
            }
        }
    }
    Ok(t)
}

fn put_funds(w: &mut Writer, f: &Funds) {
    w.len(f.pools().len());
    for p in f.pools() {
        w.str(&p.name);
        w.i128(p.balance);
        put_trigger(w, &p.trigger);
    }
    w.len(f.history().len());
    for h in f.history() {
        w.opt_i64(h.ts);
        w.opt_u64(h.event);
        w.u32(h.pool);
        w.u8((h.change == Change::Liquidation) as u8);
        w.i128(h.balance);
    }
}

fn get_funds(r: &mut Reader<'_>) -> Result<Funds> {
    let n = r.len(40)?;
    let mut pools: Vec<Pool> = Vec::with_capacity(n);
    for k in 0..n {
        let (name, balance) = (r.str()?, r.i128()?);
        if !(0..=LEDGER_LIMIT).contains(&balance) {
            return Err(r.corrupt(format!("fund pool {name:?} holds {balance}")));
        }
        if (k == 0) != (name == DEFAULT_POOL) || pools.iter().any(|p| p.name == name) {
            return Err(r.corrupt(format!("fund pool {name:?} out of place or twice")));
        }
        let trigger = get_trigger(r, balance)?;
        pools.push(Pool { name, balance, trigger });
    }
    if pools.is_empty() {
        return Err(r.corrupt("no default fund pool"));
    }
    let m = r.len(40)?;
    let mut history = Vec::with_capacity(m);
    for _ in 0..m {
        let (ts, event, pool) = (r.opt_i64()?, r.opt_u64()?, r.u32()?);
        let change = if r.bool()? { Change::Liquidation } else { Change::Set };
        let balance = r.i128()?;
        if pool as usize >= pools.len() || !(0..=LEDGER_LIMIT).contains(&balance) {
            return Err(r.corrupt("fund history names an unknown pool or a bad balance"));
        }
        history.push(Record { ts, event, pool, change, balance });
    }
    Ok(Funds::from_parts(pools, history))
}

fn put_fill(w: &mut Writer, f: &Fill) {
    w.u64(f.event);
    w.opt_i64(f.ts);
    w.u32(f.market);
    w.u64(f.bankrupt_account);
    w.u8(f.bankrupt_side.sign() as u8);
    w.opt_u64(f.account);
    w.u8(f.side.map_or(0, Side::sign) as u8);
    w.i64(f.lots);
    w.f64(f.price);
    w.opt_u64(f.rank);
    w.opt_f64(f.score);
    w.u8(kind_code(f.kind));
    w.opt_f64(f.entry);
}

/// The side of a code read from a snapshot (+1 long, −1 short); any other code is damage.
fn side_of(r: &Reader<'_>, code: i8) -> Result<Side> {
    Side::of(code).ok_or_else(|| r.corrupt(format!("{code} is not a side")))
}

fn get_side(r: &mut Reader<'_>) -> Result<Side> {
    let code = r.u8()? as i8;
    side_of(r, code)
}

fn get_fill(r: &mut Reader<'_>) -> Result<Fill> {
    let event = r.u64()?;
    let ts = r.opt_i64()?;
    let market = r.u32()?;
    let bankrupt_account = r.u64()?;
    let bankrupt_side = get_side(r)?;
    let account = r.opt_u64()?;
    // 0: the book took the lots (no counterparty).
    let side = match r.u8()? as i8 {
        0 => None,
        code => Some(side_of(r, code)?),
    };
    let lots = r.i64()?;
    let price = r.f64()?;
    let rank = r.opt_u64()?;
    let score = r.opt_f64()?;
    let kind = match r.u8()? {
        0 => FillKind::External,
        1 => FillKind::Adl,
        2 => FillKind::BadDebt,
        c => return Err(r.corrupt(format!("unknown fill kind {c}"))),
    };
    let entry = r.opt_f64()?;
    Ok(Fill { event, ts, market, bankrupt_account, bankrupt_side, account, side, lots, price, rank, score, kind, entry })
}

impl Engine {
    /// Writes `snapshot()` to `path` atomically: a temporary file with a unique name beside
    /// it, fsynced, then renamed over `path`, then the directory fsynced (a crash leaves the
    /// old file or the new one, never a mix; concurrent saves never share a temporary file).
    /// A `path` that is a symlink or not a regular file is refused.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        crate::core::persist::files::replace(path, &self.snapshot(), false, None).map(drop)
    }

    /// An engine from a file written by `save`.
    pub fn open(path: &std::path::Path) -> Result<Engine> {
        let data = std::fs::read(path).map_err(|e| AdlError::Io { path: path.display().to_string(), message: e.to_string() })?;
        Engine::restore(&data)
    }

    /// The whole state as bytes (see the module doc for the format).
    pub fn snapshot(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.str(self.policy.name());
        w.u8(adl_price_code(self.adl_price));
        w.u64(self.seed);
        w.u8((self.lights == Lights::Quantity) as u8);
        w.u32(self.cash_decimals);
        put_spec(&mut w, &self.default_spec);
        put_funds(&mut w, &self.funds);
        w.len(self.markets.len());
        for m in &self.markets {
            w.str(&m.name);
            put_spec(&mut w, &m.spec);
            w.opt_i64(m.mark);
        }
        let free = self.store.free_slots();
        w.len(self.store.slot_count());
        for p in self.store.all() {
            w.u64(p.account);
            w.i64(p.qty);
            w.i64(p.entry);
            w.i128(p.margin);
            w.u32(p.market);
            w.u8(p.side.sign() as u8);
            w.u16(p.cap_bp);
            w.u8(p.cross as u8);
        }
        w.len(free.len());
        free.iter().for_each(|&f| w.u32(f));
        let mut cash: Vec<(u64, i128)> = self.cash_entries().collect();
        cash.sort_unstable();
        w.len(cash.len());
        for (a, c) in cash {
            w.u64(a);
            w.i128(c);
        }
        w.f64s(&self.custom);
        w.len(self.labels.len());
        self.labels.names().iter().for_each(|s| w.str(s));
        w.u8(self.clock.is_some() as u8);
        w.str(self.clock.as_deref().unwrap_or(""));
        w.u8(self.keep_fills as u8);
        w.u64(self.drained_upto);
        w.i128(self.bad_debt);
        w.i128(self.book_value);
        w.i128(self.fees);
        w.u64(self.next_event);
        w.opt_i64(self.ts);
        w.len(self.events.len());
        self.events.iter().for_each(|f| put_fill(&mut w, f));
        seal(MAGIC, VERSION, &w.buf)
    }

    /// An engine from `snapshot()` bytes. Truncated, corrupted or unknown-version data is
    /// refused with `AdlError::Corrupt`; nothing is partially built.
    pub fn restore(data: &[u8]) -> Result<Engine> {
        let (version, payload) = unseal_any(MAGIC, OLDEST_VERSION..=VERSION, data, "snapshot")?;
        let mut r = Reader::new(payload, "snapshot");
        let bad = |r: &Reader<'_>, e: AdlError| r.corrupt(e.to_string());
        let policy = Policy::parse(&r.str()?).map_err(|e| bad(&r, e))?;
        let adl_price = match r.u8()? {
            0 => AdlPrice::Bankruptcy,
            1 => AdlPrice::Mark,
            2 => AdlPrice::MarkCapped,
            c => return Err(r.corrupt(format!("unknown ADL price code {c}"))),
        };
        let seed = r.u64()?;
        let lights = match r.u8()? {
            0 => Lights::Count,
            1 => Lights::Quantity,
            c => return Err(r.corrupt(format!("unknown lights code {c}"))),
        };
        let cash_decimals = r.u32()?;
        let default_spec = get_spec(&mut r)?;
        let mut e = Engine::new(policy, 0.0, cash_decimals, default_spec).map_err(|e| bad(&r, e))?;
        e.adl_price = adl_price;
        e.seed = seed;
        e.lights = lights;
        e.funds = get_funds(&mut r)?;
        let n = r.len(8)?;
        for _ in 0..n {
            let name = r.str()?;
            let spec = get_spec(&mut r)?;
            let mark = r.opt_i64()?;
            if e.market_ids.contains_key(&name) {
                return Err(r.corrupt(format!("market {name:?} twice")));
            }
            let id = e.add_market(&name, spec).map_err(|err| bad(&r, err))?;
            if let Some(t) = mark {
                if !e.markets[id as usize].grid.is_price(t) || t.unsigned_abs() > MAX_GRID as u64 {
                    return Err(r.corrupt(format!("mark {t} of {name:?} is not a price")));
                }
                e.markets[id as usize].set_mark(t);
            }
        }
        let n = r.len(36)?;
        let mut slots = Vec::with_capacity(n);
        for _ in 0..n {
            let (account, qty, entry) = (r.u64()?, r.i64()?, r.i64()?);
            // Version 5 widened margins to i128.
            let margin = if version >= 5 { r.i128()? } else { r.i64()? as i128 };
            let (market, side, cap_bp, cross) = (r.u32()?, Side::of(r.u8()? as i8), r.u16()?, r.bool()?);
            // Free slots keep the side of the position they held: always a side too.
            let Some(side) = side else { return Err(r.corrupt(format!("invalid position of account {account}"))) };
            let p = Position { account, qty, entry, margin, market, member_pos: 0, index_pos: NO_INDEX, side, cap_bp, cross };
            let live = p.qty > 0;
            let priced = |p: &Position| e.markets.get(p.market as usize).is_some_and(|m| m.grid.is_price(p.entry));
            if live && (!priced(&p) || p.cap_bp > 10_000) {
                return Err(r.corrupt(format!("invalid position of account {}", p.account)));
            }
            // The ranges input parsing enforces, so that restored values cannot overflow later.
            let in_range = p.qty <= MAX_GRID && p.entry.unsigned_abs() <= MAX_GRID as u64 && p.margin <= MAX_MARGIN;
            if p.qty < 0 || !in_range || (p.cross && p.margin != 0) || p.margin < 0 && !p.cross {
                return Err(r.corrupt(format!("invalid size or margin of account {}", p.account)));
            }
            slots.push(p);
        }
        let n = r.len(4)?;
        let free = (0..n).map(|_| r.u32()).collect::<Result<Vec<u32>>>()?;
        e.store = PositionStore::from_raw(slots, free).ok_or_else(|| r.corrupt("duplicate position keys or a bad free list"))?;
        let n = r.len(24)?;
        let mut cash = FxHashMap::with_capacity_and_hasher(n, Default::default());
        for _ in 0..n {
            let (a, c) = (r.u64()?, r.i128()?);
            if c.abs() > LEDGER_LIMIT {
                return Err(r.corrupt(format!("cash of account {a} out of range")));
            }
            if cash.insert(a, c).is_some() {
                return Err(r.corrupt(format!("account {a} twice")));
            }
        }
        e.cash = cash;
        e.custom = r.f64s()?;
        let expected = if policy == Policy::Custom { e.store.slot_count() } else { 0 };
        if e.custom.len() != expected || e.custom.iter().any(|x| !x.is_finite()) {
            return Err(r.corrupt("custom scores do not match the positions"));
        }
        if version >= 4 {
            let n = r.len(8)?;
            let names = (0..n).map(|_| r.str()).collect::<Result<Vec<String>>>()?;
            e.labels = Labels::from_names(names).map_err(|err| bad(&r, err))?;
            let (zoned, zone) = (r.bool()?, r.str()?);
            e.clock = zoned.then_some(zone);
        }
        if version >= 5 {
            e.keep_fills = r.bool()?;
            e.drained_upto = r.u64()?;
        }
        e.bad_debt = r.i128()?;
        e.book_value = r.i128()?;
        e.fees = r.i128()?;
        if e.bad_debt < 0 || e.fees < 0 || [e.bad_debt, e.book_value, e.fees].iter().any(|x| x.abs() > LEDGER_LIMIT) {
            return Err(r.corrupt("negative bad debt or fees"));
        }
        e.next_event = r.u64()?;
        // Event ids are shown as i64 and counted up by one per event: an id this far is damage.
        if e.next_event > i64::MAX as u64 {
            return Err(r.corrupt(format!("next event id {} out of range", e.next_event)));
        }
        e.ts = r.opt_i64()?;
        if e.drained_upto > e.next_event {
            return Err(r.corrupt(format!("fills drained up to event {}, past the next event id {}", e.drained_upto, e.next_event)));
        }
        let n = r.len(60)?;
        let mut events = EventLog::default();
        for _ in 0..n {
            let f = get_fill(&mut r)?;
            if f.market as usize >= e.markets.len() {
                return Err(r.corrupt("fill in an unknown market"));
            }
            // In event order, none drained, none of an event still to come.
            let last = events.last().map_or(e.drained_upto, |l| l.event);
            if f.event < last || f.event < e.drained_upto || f.event >= e.next_event {
                return Err(r.corrupt(format!("fill of event {} out of order", f.event)));
            }
            events.push(f);
        }
        e.events = events;
        if !r.is_empty() {
            return Err(r.corrupt("trailing bytes in the payload"));
        }
        if !e.labels_cover_accounts() {
            return Err(r.corrupt("an account code has no label"));
        }
        // Caches: member lists and cross totals; ranking indexes are rebuilt on first use.
        let live: Vec<u32> = e.store.iter().map(|(s, _)| s).collect();
        for slot in live {
            let m = e.store.get(slot).market as usize;
            e.markets[m].add_member(&mut e.store, slot);
        }
        e.cross = CrossBook::build(&mut e.cash, &e.store, &e.markets).map_err(|err| r.corrupt(err.to_string()))?;
        Ok(e)
    }
}
