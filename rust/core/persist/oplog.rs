//! The operation log: every state-changing operation that returned, so that `replay`
//! rebuilds the same engine after a crash.
//!
//! File format (little-endian): magic `ADLLOG\0\0`, version `u32`; then records, each a
//! 12-byte header `len: u32`, `crc32(payload): u32`, `crc32(the 8 bytes before): u32`, then
//! `payload` (`len` bytes). The payload's first byte is the operation tag. The first record is
//! always a full snapshot (tag 0, the state when the log was opened); the others are
//! operations (`Op`, encoded by `ops`). A record is written with one `write` call, before its operation runs;
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

use crate::core::engine::Engine;
use crate::core::persist::codec::{crc32, Reader, Writer};
use crate::core::persist::files;
use crate::core::persist::ops::{decode, encode, Op, OpOutput, TAG_SNAPSHOT};
use crate::core::units::error::{AdlError, Result};

pub const LOG_MAGIC: &[u8; 8] = b"ADLLOG\0\0";
/// Version 4 added the records of labelled books (tags 11, 12) and of datetime marks (13);
/// version 5 those of the fill log (tags 15 `SetKeepFills`, 16 `DrainEvents`) and version 5
/// snapshots. Version 3 and 4 logs hold none of them and read unchanged.
pub const LOG_VERSION: u32 = 5;
const OLDEST_LOG_VERSION: u32 = 3;
/// No record is larger than this (a corrupt length cannot make replay allocate more).
const MAX_RECORD: usize = 1 << 34;

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
                // Records are written before their operation runs and removed if it fails;
                // a crash in between leaves a failing operation as the last record. Decoding
                // refuses a side that is not one as the operation did (not as damage).
                let applied = match decode(payload) {
                    Err(err @ AdlError::Corrupt { .. }) => return Err(err),
                    decoded => decoded.and_then(|op| e.apply(op.op())),
                };
                match applied {
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
