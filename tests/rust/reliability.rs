//! Snapshots, the operation log, upserts and closes: round trips are exact, damaged bytes are
//! refused (or, for a torn log tail, dropped), and errors change nothing.

use std::path::PathBuf;

use _adl::core::engine::AdlPrice;
use _adl::core::persist::oplog::{replay, replay_bytes, Journal, OpLog, SyncPolicy, RECORD_HEADER};
use _adl::core::persist::ops::{Op, OwnedColumns};
use _adl::core::AdlError;
use _adl::core::Trigger;
use _adl::core::{Engine, MarketSpec, Policy, Request, Side};

const SPEC: MarketSpec = MarketSpec::linear(0, 0, 0.05);

#[path = "common.rs"]
mod common;
use common::columns as cols;

fn symbols() -> Vec<String> {
    vec!["X".to_string(), "Y".to_string()]
}

fn book() -> OwnedColumns {
    cols(&[
        (1, 0, Side::Long, 10.0, 100.0, 30.0, false),
        (2, 0, Side::Short, 10.0, 100.0, 100.0, false),
        (3, 0, Side::Short, 5.0, 98.0, 50.0, false),
        (4, 0, Side::Long, 6.0, 100.0, 0.0, true),
        (4, 1, Side::Short, 3.0, 50.0, 0.0, true),
        (5, 1, Side::Long, 8.0, 49.0, 40.0, false),
        (6, 0, Side::Long, 4.0, 101.0, 12.0, false),
    ])
}

/// An engine with markets, a book (isolated and cross), a trigger, marks and one event.
fn busy_engine() -> Engine {
    let mut e = Engine::new(Policy::Bitmex, 25.0, 2, SPEC.clone()).unwrap();
    e.adl_price = AdlPrice::MarkCapped;
    e.seed = 42;
    e.set_trigger(Trigger::FundDrop { arm: 0.7, disarm: 0.9 });
    let b = book();
    e.load(b.view(), &symbols(), Some((&[4, 7], &[60.0, 5.0])), None).unwrap();
    e.set_marks(&[("X".into(), 96.0), ("Y".into(), 51.0)], Some(1_000)).unwrap();
    e.liquidate(Request { account: 1, market: 0, side: Side::Long, fill_price: Some(95.0), force: false, partial: false }, false).unwrap();
    e
}

#[test]
fn snapshot_round_trip_is_exact_and_behaves_the_same() {
    let mut a = busy_engine();
    let bytes = a.snapshot();
    let mut b = Engine::restore(&bytes).unwrap();
    assert_eq!(b.snapshot(), bytes);
    assert_eq!(a.totals(), b.totals());
    assert_eq!(a.events().iter().collect::<Vec<_>>(), b.events().iter().collect::<Vec<_>>());
    // Same rankings, same next event (id, fills, cash).
    for (m, s) in [(0, Side::Short), (0, Side::Long), (1, Side::Long), (1, Side::Short)] {
        let qa: Vec<(usize, u32)> = a.ranking(m, s).unwrap().queue().collect();
        let qb: Vec<(usize, u32)> = b.ranking(m, s).unwrap().queue().collect();
        assert_eq!(qa, qb);
    }
    let req = Request { account: 6, market: 0, side: Side::Long, fill_price: None, force: true, partial: false };
    assert_eq!(a.liquidate(req, false).unwrap(), b.liquidate(req, false).unwrap());
    assert_eq!(a.snapshot(), b.snapshot());
}

#[test]
fn damaged_snapshots_are_refused() {
    let bytes = busy_engine().snapshot();
    for cut in 0..bytes.len() {
        assert!(matches!(Engine::restore(&bytes[..cut]), Err(AdlError::Corrupt { .. })), "prefix of {cut} bytes accepted");
    }
    for at in (0..bytes.len()).step_by(7) {
        let mut bad = bytes.clone();
        bad[at] ^= 0x5a;
        assert!(matches!(Engine::restore(&bad), Err(AdlError::Corrupt { .. })), "flip at byte {at} accepted");
    }
    let mut newer = bytes.clone();
    newer[8] = 99; // version
    let err = Engine::restore(&newer).err().unwrap().to_string();
    assert!(err.contains("version 99"), "{err}");
}

#[test]
fn a_snapshot_side_that_is_not_one_is_damage() {
    // Two positions; account 2's is closed, so its slot is free (qty 0) but still written.
    let mut e = Engine::new(Policy::Bitmex, 0.0, 2, SPEC.clone()).unwrap();
    let rows = cols(&[(987_654_321, 0, Side::Long, 5.0, 100.0, 50.0, false), (2, 0, Side::Short, 5.0, 100.0, 50.0, false)]);
    e.load(rows.view(), &["X".to_string()], None, None).unwrap();
    e.set_marks(&[("X".into(), 100.0)], None).unwrap();
    e.close_position(2, 0, Side::Short, None).unwrap();
    let bytes = e.snapshot();
    // A slot is account (8 bytes), qty (8), entry (8), margin (16), market (4), then the side
    // code; the payload follows a 24-byte header whose last 4 bytes are its CRC.
    let side_at = |account: u64, qty: i64| {
        let key: Vec<u8> = [account.to_le_bytes(), qty.to_le_bytes()].concat();
        bytes.windows(16).position(|w| w == key).expect("the slot") + 44
    };
    let (live, free) = (side_at(987_654_321, 5), side_at(2, 0));
    assert_eq!((bytes[live], bytes[free]), (1, (-1i8) as u8));
    for (at, code) in [(live, 0u8), (live, 3), (free, 0), (free, 0x80)] {
        let mut bad = bytes.clone();
        bad[at] = code;
        let crc = crc32fast::hash(&bad[24..]);
        bad[20..24].copy_from_slice(&crc.to_le_bytes());
        let err = Engine::restore(&bad).err().expect("refused");
        assert!(matches!(err, AdlError::Corrupt { .. }) && err.to_string().contains("invalid position of account"), "{err}");
    }
}

fn temp_log(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("adl-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("engine.log")
}

/// Runs a fixed sequence of operations through a journal logging to `path`.
fn logged_run(path: &PathBuf) -> Journal {
    let mut j = Journal::new(Engine::new(Policy::Bitmex, 25.0, 2, SPEC.clone()).unwrap());
    j.log = Some(OpLog::create(path, &j.engine, SyncPolicy::Never, None).unwrap());
    let b = book();
    let names = symbols();
    j.apply(Op::Load { cols: b.view(), symbols: &names, accounts: Some((&[4], &[60.0])), custom: None, labels: None }).unwrap();
    j.apply(Op::AddMarket { name: "Z", spec: &SPEC }).unwrap();
    j.apply(Op::SetMarks { marks: &[("X".into(), 96.0), ("Y".into(), 51.0)], ts: Some(5), clock: None }).unwrap();
    j.apply(Op::SetTrigger { trigger: Trigger::Drawdown { window: 100, arm: -0.3, disarm: -0.25 } }).unwrap();
    j.apply(Op::Liquidate {
        req: Request { account: 1, market: 0, side: Side::Long, fill_price: Some(95.0), force: false, partial: false },
    })
    .unwrap();
    // A refused operation is not logged.
    assert!(j
        .apply(Op::Liquidate { req: Request { account: 2, market: 0, side: Side::Short, fill_price: None, force: false, partial: false } })
        .is_err());
    let up = cols(&[(8, 0, Side::Short, 7.0, 97.0, 70.0, false), (3, 0, Side::Short, 6.0, 98.0, 60.0, false)]);
    j.apply(Op::Upsert { cols: up.view(), symbols: &names, accounts: Some((&[8], &[1.0])), custom: None, labels: None }).unwrap();
    j.apply(Op::SetFund { amount: 3.0, pool: "default" }).unwrap();
    let symbol_drawdown = Trigger::SymbolDrawdown { window: 100, arm: -0.3, disarm: -0.25, min_balance: 100 };
    j.apply(Op::SetTrigger { trigger: symbol_drawdown }).unwrap();
    j.apply(Op::LiquidateMany {
        reqs: &[Request { account: 6, market: 0, side: Side::Long, fill_price: None, force: true, partial: false }],
    })
    .unwrap();
    j.apply(Op::ClosePosition { account: 5, market: 1, side: Side::Long, price: Some(52.0) }).unwrap();
    j.apply(Op::LiquidateAccount { account: 4, force: true, partial: false }).unwrap();
    j
}

#[test]
fn replay_rebuilds_the_same_engine() {
    let path = temp_log("replay");
    let j = logged_run(&path);
    assert_eq!(j.log.as_ref().unwrap().seq, 11);
    let (e, info) = replay(&path).unwrap();
    assert_eq!(info, _adl::core::ReplayInfo { ops: 11, dropped_bytes: 0 });
    assert_eq!(e.snapshot(), j.engine.snapshot());
}

#[test]
fn a_torn_tail_is_dropped_and_mid_log_damage_is_an_error() {
    let path = temp_log("torn");
    let j = logged_run(&path);
    let data = std::fs::read(&path).unwrap();
    // The last record is the 11th operation; find where it starts by replaying prefixes.
    let full = replay_bytes(&data).unwrap().0.snapshot();
    assert_eq!(full, j.engine.snapshot());
    let mut last_start = None;
    for cut in (0..data.len()).rev() {
        let (e, info) = replay_bytes(&data[..cut]).unwrap_or_else(|err| panic!("cut at {cut}: {err}"));
        if info.ops == 10 && info.dropped_bytes == 0 {
            last_start = Some(cut);
            break;
        }
        assert_eq!(info.ops, 10, "cut at {cut}");
        assert!(info.dropped_bytes > 0);
        drop(e);
    }
    let start = last_start.expect("a record boundary");
    // Garbage in the last record's body: dropped as torn.
    let mut torn = data.clone();
    let n = torn.len();
    torn[n - 1] ^= 0xff;
    assert_eq!(replay_bytes(&torn).unwrap().1.ops, 10);
    // Zeros a crash left after the last record (length 0, CRC 0 would pass a CRC check):
    // a torn tail, dropped; zeros followed by data are damage.
    let mut zeros = data.clone();
    zeros.extend_from_slice(&[0u8; 64]);
    let (_, info) = replay_bytes(&zeros).unwrap();
    assert_eq!((info.ops, info.dropped_bytes), (11, 64));
    zeros.push(1);
    assert!(matches!(replay_bytes(&zeros), Err(AdlError::Corrupt { .. })));
    // Damage in an earlier record, with records after it: an error, not a silent drop.
    let mut bad = data.clone();
    bad[start - 1] ^= 0xff;
    assert!(matches!(replay_bytes(&bad), Err(AdlError::Corrupt { .. })));
}

/// Start offsets of the records of a log (after the 12-byte file header), read from the
/// length fields.
fn record_starts(data: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut pos = 12;
    while pos < data.len() {
        starts.push(pos);
        pos += RECORD_HEADER + u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
    }
    assert_eq!(pos, data.len());
    starts
}

#[test]
fn every_single_bit_flip_of_a_header_is_an_error_or_a_reported_torn_tail() {
    let path = temp_log("flips");
    let j = logged_run(&path);
    let data = std::fs::read(&path).unwrap();
    let starts = record_starts(&data);
    assert_eq!(starts.len(), 12, "a snapshot and 11 operations");
    let last = *starts.last().unwrap();
    let all_but_last = replay_bytes(&data[..last]).unwrap().0.snapshot();
    assert_eq!(replay_bytes(&data).unwrap().0.snapshot(), j.engine.snapshot());
    let (mut errors, mut torn) = (0, 0);
    // The file header, then each record header: 12 bytes × 8 bits each.
    for &start in std::iter::once(&0).chain(&starts) {
        for bit in 0..12 * 8 {
            let mut bad = data.clone();
            bad[start + bit / 8] ^= 1 << (bit % 8);
            match replay_bytes(&bad) {
                Err(AdlError::Corrupt { .. }) => errors += 1,
                Ok((e, info)) if start == last => {
                    // Only the last record may go, reported, leaving the first ten operations.
                    assert_eq!((info.ops, info.dropped_bytes), (10, (data.len() - last) as u64), "bit {bit} of the last header");
                    assert_eq!(e.snapshot(), all_but_last);
                    torn += 1;
                }
                other => panic!("bit {bit} of the header at byte {start}: {:?}", other.map(|(_, i)| i)),
            }
        }
    }
    // CRC-32 over the 8 header bytes detects every single-bit error, the header's own CRC
    // included, so every flip is an error: (1 + 12) headers × 96 bits.
    assert_eq!((errors, torn), (13 * 96, 0));
    // A flipped bit in a payload: an error unless the record is the last (then torn).
    let mut payload_flips = 0;
    for at in (12..data.len()).filter(|&at| !starts.iter().any(|&s| (s..s + RECORD_HEADER).contains(&at))) {
        let mut bad = data.clone();
        bad[at] ^= 1 << (at % 8);
        match replay_bytes(&bad) {
            Err(AdlError::Corrupt { .. }) => assert!(at < last, "byte {at} of the last record is an error"),
            Ok((e, info)) => {
                assert!(at >= last, "byte {at} dropped");
                assert_eq!((info.ops, e.snapshot()), (10, all_but_last.clone()));
            }
            Err(other) => panic!("byte {at}: {other}"),
        }
        payload_flips += 1;
    }
    eprintln!("{} header bit flips, {payload_flips} payload byte flips", errors + torn);
}

#[test]
fn a_failed_last_operation_is_dropped_on_replay_only_at_the_end() {
    // A record written before its operation ran, left by a crash before it was cut off.
    let path = temp_log("aborted");
    let mut j = logged_run(&path);
    let good = std::fs::read(&path).unwrap();
    let refused =
        Op::Liquidate { req: Request { account: 2, market: 0, side: Side::Short, fill_price: None, force: false, partial: false } };
    assert!(j.apply(refused).is_err());
    // The journal cut the refused operation's record off again.
    assert_eq!(std::fs::read(&path).unwrap(), good);
    let payload = _adl::core::persist::ops::encode(&refused);
    let mut rec = Vec::new();
    rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    rec.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    let head = crc32fast::hash(&rec);
    rec.extend_from_slice(&head.to_le_bytes());
    rec.extend_from_slice(&payload);
    let mut crashed = good.clone();
    crashed.extend_from_slice(&rec);
    let (e, info) = replay_bytes(&crashed).unwrap();
    assert_eq!((info.ops, info.dropped_bytes), (11, rec.len() as u64));
    assert_eq!(e.snapshot(), j.engine.snapshot());
    // In the middle it is damage.
    let mut middle = crashed.clone();
    middle.extend_from_slice(&good[record_starts(&good)[10]..]);
    assert!(matches!(replay_bytes(&middle), Err(AdlError::Corrupt { .. })));
}

/// A record of `payload` as the log frames it: `len`, `crc32(payload)`, `crc32` of those 8
/// bytes, then the payload.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut rec = Vec::new();
    rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    rec.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let head = crc32fast::hash(&rec);
    rec.extend_from_slice(&head.to_le_bytes());
    rec.extend_from_slice(payload);
    rec
}

#[test]
fn a_record_whose_side_is_not_one_fails_as_its_operation_did() {
    // Builds before sides were parsed at the boundary logged a request first and refused its
    // side after: such a record can be a crash's last one. Decoding refuses the side as the
    // operation did, so replay drops it at the end and reports it in the middle.
    let path = temp_log("bad_side");
    let j = logged_run(&path);
    let good = std::fs::read(&path).unwrap();
    let req = Request { account: 2, market: 0, side: Side::Short, fill_price: None, force: false, partial: false };
    let mut payload = _adl::core::persist::ops::encode(&Op::Liquidate { req });
    // Tag 7, account (8 bytes), market (4), then the side code.
    assert_eq!(payload[13], (-1i8) as u8);
    payload[13] = 3;
    let rec = framed(&payload);
    let mut crashed = good.clone();
    crashed.extend_from_slice(&rec);
    let (e, info) = replay_bytes(&crashed).unwrap();
    assert_eq!((info.ops, info.dropped_bytes), (11, rec.len() as u64));
    assert_eq!(e.snapshot(), j.engine.snapshot());
    let mut middle = crashed.clone();
    middle.extend_from_slice(&good[record_starts(&good)[10]..]);
    let err = replay_bytes(&middle).err().unwrap().to_string();
    assert!(err.contains("operation 12 failed on replay: side: 3 is not a side"), "{err}");
    // Other damage to a record stays damage: an unknown tag is not a failed operation.
    let mut unknown = payload.clone();
    unknown[0] = 99;
    let mut tail = good.clone();
    tail.extend_from_slice(&framed(&unknown));
    assert!(matches!(replay_bytes(&tail), Err(AdlError::Corrupt { .. })));
}

#[test]
fn one_writer_per_log_and_no_special_files() {
    let path = temp_log("lock");
    let a = Engine::new(Policy::Bitmex, 1.0, 2, SPEC.clone()).unwrap();
    let log = OpLog::create(&path, &a, SyncPolicy::Always, None).unwrap();
    let busy = OpLog::create(&path, &a, SyncPolicy::Always, None).err().unwrap().to_string();
    assert!(busy.contains("locked by another engine"), "{busy}");
    // Its own holder may start it again at the same path.
    let again = OpLog::create(&path, &a, SyncPolicy::Always, Some(&log)).unwrap();
    drop(log);
    assert!(OpLog::create(&path, &a, SyncPolicy::Always, None).is_err());
    drop(again);
    OpLog::create(&path, &a, SyncPolicy::Always, None).unwrap();
    let link = path.with_file_name("link.log");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let err = OpLog::create(&link, &a, SyncPolicy::Always, None).err().unwrap().to_string();
    assert!(err.contains("symbolic link"), "{err}");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    for special in ["/dev/null", "/tmp"] {
        let err = OpLog::create(std::path::Path::new(special), &a, SyncPolicy::Always, None).err().unwrap().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        assert!(a.save(std::path::Path::new(special)).is_err());
    }
}

#[test]
fn upsert_inserts_replaces_and_refuses_bad_batches_whole() {
    let mut e = busy_engine();
    let before = e.snapshot();
    let names = symbols();
    // Row 1 repeats row 0's key: the whole batch is refused.
    let dup = cols(&[(9, 0, Side::Short, 1.0, 100.0, 10.0, false), (9, 0, Side::Short, 2.0, 100.0, 10.0, false)]);
    assert!(matches!(e.upsert(dup.view(), &names, None, None), Err(AdlError::DuplicateKey { row: 1, .. })));
    let nan = cols(&[(9, 0, Side::Short, 1.0, 100.0, 10.0, false), (10, 0, Side::Short, f64::NAN, 100.0, 10.0, false)]);
    assert!(matches!(e.upsert(nan.view(), &names, None, None), Err(AdlError::InvalidValue { row: 1, .. })));
    assert_eq!(e.snapshot(), before);
    // Replace #2's short (10 @100 m100) by 4 @99 m20, insert #9 short 2 @97 m5 in a new market.
    let up = cols(&[(2, 0, Side::Short, 4.0, 99.0, 20.0, false), (9, 2, Side::Short, 2.0, 97.0, 5.0, false)]);
    let names3 = vec!["X".to_string(), "Y".to_string(), "W".to_string()];
    let stats = e.upsert(up.view(), &names3, Some((&[2], &[11.0])), None).unwrap();
    assert_eq!((stats.inserted, stats.replaced, stats.accounts), (1, 1, 1));
    let p = e.store().get(e.store().find(&(2, 0, Side::Short)).unwrap());
    assert_eq!((p.qty, p.entry, p.margin), (4, 99, 2_000));
    assert_eq!(e.cash_of(2), 1_100);
    assert_eq!(e.market_id("W").unwrap(), 2);
    // The queue reflects the new size: X's shorts are #2 (4 lots) and #3 (5 lots).
    let slots: Vec<u32> = e.ranking(0, Side::Short).unwrap().queue().map(|(_, s)| s).collect();
    let lots: Vec<(u64, i64)> = slots.iter().map(|&s| (e.store().get(s).account, e.store().get(s).qty)).collect();
    assert_eq!(lots.iter().map(|l| l.1).sum::<i64>(), 9, "{lots:?}");
}

#[test]
fn close_position_settles_at_the_price_and_conserves_value() {
    let mut e = busy_engine();
    let t = e.totals();
    let v0 = t.value();
    // #5 long 8 @49 m40 closes at 52 with the mark at 51: credit 40 + 8·3 = 64; the book
    // paid 8·(52 − 51) = 8 more than the mark (book value −8).
    let cash = e.cash_of(5);
    assert_eq!(e.close_position(5, 1, Side::Long, Some(52.0)).unwrap(), 6_400);
    assert_eq!(e.cash_of(5), cash + 6_400);
    let t = e.totals();
    assert_eq!(t.value(), v0);
    assert!(matches!(e.close_position(5, 1, Side::Long, None), Err(AdlError::UnknownPosition { .. })));
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rust/fixtures").join(name)
}

/// Files written by the version 3 build (busy_engine's snapshot and logged_run's log)
/// still read, and give the engine this build makes from the same calls.
#[test]
fn version_3_snapshots_and_logs_still_read() {
    let old = std::fs::read(fixture("engine_v3.snap")).unwrap();
    assert_eq!(u32::from_le_bytes(old[8..12].try_into().unwrap()), 3);
    let e = Engine::restore(&old).unwrap();
    assert_eq!(e.snapshot(), busy_engine().snapshot());
    assert!(e.labels().is_empty() && e.clock().is_none());
    let (e, info) = replay(&fixture("engine_v3.log")).unwrap();
    assert_eq!(info.ops, 11);
    assert_eq!(e.snapshot(), logged_run(&temp_log("v3")).engine.snapshot());
}

/// Files written by the version 4 build (`labelled_run`'s final snapshot and its log, with
/// labels and a datetime clock) still read, and give the engine this build makes from the
/// same calls.
#[test]
fn version_4_snapshots_and_logs_still_read() {
    let old = std::fs::read(fixture("engine_v4.snap")).unwrap();
    assert_eq!(u32::from_le_bytes(old[8..12].try_into().unwrap()), 4);
    let now = labelled_run(&temp_log("v4")).engine;
    let e = Engine::restore(&old).unwrap();
    assert_eq!(e.snapshot(), now.snapshot());
    assert_eq!((e.labels(), e.clock()), (now.labels(), Some("Europe/Paris")));
    let log = std::fs::read(fixture("engine_v4.log")).unwrap();
    // The log format itself is version 4 (its first record holds a version 4 snapshot).
    assert_eq!(u32::from_le_bytes(log[8..12].try_into().unwrap()), 4);
    let (e, info) = replay(&fixture("engine_v4.log")).unwrap();
    assert_eq!(info.ops, 4);
    assert_eq!(e.snapshot(), now.snapshot());
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A journal of a labelled book: account codes 0.. with their labels, a datetime clock.
fn labelled_run(path: &PathBuf) -> Journal {
    let mut j = Journal::new(Engine::new(Policy::Bitmex, 0.0, 2, SPEC.clone()).unwrap());
    j.log = Some(OpLog::create(path, &j.engine, SyncPolicy::Never, None).unwrap());
    let names = symbols();
    // Codes in order of first appearance: u-1 = 0, u-2 = 1; the accounts table adds u-9 = 2.
    let b = cols(&[(0, 0, Side::Long, 10.0, 100.0, 44.0, false), (1, 0, Side::Short, 10.0, 100.0, 500.0, false)]);
    let new = strings(&["u-1", "u-2", "u-9"]);
    j.apply(Op::Load { cols: b.view(), symbols: &names, accounts: Some((&[2], &[7.0])), custom: None, labels: Some(&new) }).unwrap();
    let up = cols(&[(3, 0, Side::Short, 5.0, 100.0, 300.0, false), (1, 0, Side::Short, 10.0, 100.0, 400.0, false)]);
    let new = strings(&["u-4"]);
    j.apply(Op::Upsert { cols: up.view(), symbols: &names, accounts: None, custom: None, labels: Some(&new) }).unwrap();
    j.apply(Op::SetMarks { marks: &[("X".into(), 96.0)], ts: Some(1_760_130_900_000), clock: Some("Europe/Paris") }).unwrap();
    j.apply(Op::Liquidate {
        req: Request { account: 0, market: 0, side: Side::Long, fill_price: Some(95.0), force: false, partial: false },
    })
    .unwrap();
    j
}

#[test]
fn labels_and_the_clock_survive_snapshots_and_replay() {
    let path = temp_log("labels");
    let j = labelled_run(&path);
    let e = &j.engine;
    assert_eq!(e.labels().names(), &strings(&["u-1", "u-2", "u-9", "u-4"])[..]);
    assert_eq!((e.labels().code("u-4"), e.clock()), (Some(3), Some("Europe/Paris")));
    let fills: Vec<_> = e.events().iter().map(|f| (f.bankrupt_account, f.account)).collect();
    assert!(fills.iter().all(|&(b, a)| b == 0 && a.is_some_and(|a| a == 1 || a == 3)), "{fills:?}");
    let back = Engine::restore(&e.snapshot()).unwrap();
    assert_eq!(back.snapshot(), e.snapshot());
    assert_eq!((back.labels(), back.clock()), (e.labels(), e.clock()));
    let (again, info) = replay(&path).unwrap();
    assert_eq!(info, _adl::core::ReplayInfo { ops: 4, dropped_bytes: 0 });
    assert_eq!(again.snapshot(), e.snapshot());
    assert_eq!(again.labels().names(), e.labels().names());
}

#[test]
fn ids_of_two_kinds_never_mix_and_a_refused_load_adds_no_labels() {
    let names = symbols();
    let b = cols(&[(0, 0, Side::Long, 10.0, 100.0, 44.0, false), (1, 0, Side::Short, 10.0, 100.0, 500.0, false)]);
    // Integer ids first: labels are refused, with the account field named.
    let mut ints = Engine::new(Policy::Bitmex, 0.0, 2, SPEC.clone()).unwrap();
    ints.apply(Op::Load { cols: b.view(), symbols: &names, accounts: None, custom: None, labels: None }).unwrap();
    let new = strings(&["a", "b"]);
    let err = ints.apply(Op::Upsert { cols: b.view(), symbols: &names, accounts: None, custom: None, labels: Some(&new) });
    assert!(matches!(err, Err(AdlError::InvalidParameter { ref field, .. }) if field == "account"), "{err:?}");
    assert!(ints.labels().is_empty());
    // Labels first: integer ids are refused.
    let mut labelled = Engine::new(Policy::Bitmex, 0.0, 2, SPEC.clone()).unwrap();
    labelled.apply(Op::Load { cols: b.view(), symbols: &names, accounts: None, custom: None, labels: Some(&new) }).unwrap();
    let before = labelled.snapshot();
    let err = labelled.apply(Op::Upsert { cols: b.view(), symbols: &names, accounts: None, custom: None, labels: None });
    assert!(matches!(err, Err(AdlError::InvalidParameter { ref field, .. }) if field == "account"), "{err:?}");
    // A refused upsert (a duplicate key) keeps the labels it brought out of the table.
    let dup = cols(&[(2, 0, Side::Long, 1.0, 100.0, 50.0, false), (2, 0, Side::Long, 1.0, 100.0, 50.0, false)]);
    let c = strings(&["c"]);
    assert!(labelled.apply(Op::Upsert { cols: dup.view(), symbols: &names, accounts: None, custom: None, labels: Some(&c) }).is_err());
    // A code with no label, and a label given twice, are refused.
    let stray = cols(&[(5, 0, Side::Long, 1.0, 100.0, 50.0, false)]);
    assert!(labelled.apply(Op::Upsert { cols: stray.view(), symbols: &names, accounts: None, custom: None, labels: Some(&[]) }).is_err());
    let twice = strings(&["a"]);
    let one = cols(&[(2, 0, Side::Long, 1.0, 100.0, 50.0, false)]);
    assert!(labelled.apply(Op::Upsert { cols: one.view(), symbols: &names, accounts: None, custom: None, labels: Some(&twice) }).is_err());
    assert_eq!(labelled.snapshot(), before);
    assert_eq!(labelled.labels().names(), &new[..]);
}

#[test]
fn a_capped_liquidation_is_logged_with_its_cap_and_replays_the_same() {
    let path = temp_log("capped");
    let mut j = Journal::new(Engine::new(Policy::Bitmex, 0.0, 2, SPEC.clone()).unwrap());
    j.log = Some(OpLog::create(&path, &j.engine, SyncPolicy::Never, None).unwrap());
    let b = book();
    j.apply(Op::Load { cols: b.view(), symbols: &symbols(), accounts: Some((&[4], &[60.0])), custom: None, labels: None }).unwrap();
    j.apply(Op::SetMarks { marks: &[("X".into(), 96.0), ("Y".into(), 51.0)], ts: Some(5), clock: None }).unwrap();
    // Long #1 10 @100 m30: P_bk = 97; 4 of its 10 lots ADL'd, 6 close at 95 with bad debt 6·2 = 12.
    let req = Request { account: 1, market: 0, side: Side::Long, fill_price: Some(95.0), force: false, partial: false };
    let out = j.apply(Op::LiquidateCapped { req, max_adl: 4 }).unwrap();
    let _adl::core::OpOutput::Liquidated(l) = out else { panic!("not a liquidation") };
    assert_eq!((l.adl_lots, l.external_lots, l.bad_debt), (4, 6, 1_200));
    // A refused cap is not logged.
    assert!(j.apply(Op::LiquidateCapped { req: Request { account: 6, force: true, ..req }, max_adl: -1 }).is_err());
    assert_eq!(j.log.as_ref().unwrap().seq, 3);
    let (e, info) = replay(&path).unwrap();
    assert_eq!(info.ops, 3);
    assert_eq!(e.snapshot(), j.engine.snapshot());
    assert_eq!(e.bad_debt(), 1_200);
}

/// Whole lots and ticks, cash in 10^-8 quote (a lot·tick is 10^8 cash units). Account 9 is short
/// 10^12 lots at 1.6·10^10 in X and Y; the bankrupt longs (10^12 at 10^10, margin 10^9) close
/// against it at their bankruptcy price 10^10 − 10^-3, which credits account 9 with
/// 10^9 + 10^12·(0.6·10^10 + 10^-3) = 6·10^21 + 2·10^9 quote ≈ 6·10^29 cash units per event:
/// the first fits the ledger range (10^30), the second does not.
fn two_big_events(lots: f64) -> Engine {
    let mut e = Engine::new(Policy::Bitmex, 0.0, 8, MarketSpec::linear(0, 0, 0.1)).unwrap();
    let b = cols(&[
        (9, 0, Side::Short, lots, 1.6e10, 1e9, false),
        (9, 1, Side::Short, lots, 1.6e10, 1e9, false),
        (1, 0, Side::Long, lots, 1e10, 1e9, false),
        (2, 1, Side::Long, lots, 1e10, 1e9, false),
    ]);
    e.load(b.view(), &symbols(), None, None).unwrap();
    e.set_marks(&[("X".into(), 5e9), ("Y".into(), 5e9)], None).unwrap();
    e
}

fn req(account: u64, market: u32) -> Request {
    Request { account, market, side: Side::Long, fill_price: None, force: false, partial: false }
}

#[test]
fn a_batch_whose_later_step_fails_changes_nothing() {
    let mut e = two_big_events(1e12);
    let before = e.snapshot();
    let err = e.liquidate_many(&[req(1, 0), req(2, 1)]).unwrap_err();
    assert!(matches!(err, AdlError::Overflow { ref context } if context == "account cash"), "{err}");
    assert_eq!(e.snapshot(), before);
    // The same batch one row at a time: the first applies, the second is refused whole.
    e.liquidate(req(1, 0), false).unwrap();
    // 10^9 (released margin) + 10^12·(1.6·10^10 − 10^10 + 10^-3) quote, in 10^-8 quote.
    assert_eq!(e.cash_of(9), (1_000_000_000 + 6_000_000_000_000_000_000_000 + 1_000_000_000) * 100_000_000);
    let after_one = e.snapshot();
    assert!(e.liquidate(req(2, 1), false).is_err());
    assert_eq!(e.snapshot(), after_one);
    // And the engine still rebuilds to the same state from its snapshot.
    assert_eq!(Engine::restore(&after_one).unwrap().snapshot(), after_one);
}

#[test]
fn a_cross_share_beyond_i64_is_liquidated() {
    // Cash in 10^-18 quote: account 1's effective margin is 50 quote = 5·10^19 cash units (beyond
    // i64). Long 10 @ 100, wallet 50, mark 90: TNC = 50 − 100 = −50 < TMMR = 90; bankruptcy price
    // 100 − 50/10 = 95, where account 2 (short 10 @ 100, margin 1) takes the lots: 10·5 + 1 = 51.
    let mut e = Engine::new(Policy::Bitmex, 0.0, 18, MarketSpec::linear(4, 6, 0.1)).unwrap();
    let b = cols(&[(1, 0, Side::Long, 10.0, 100.0, 0.0, true), (2, 0, Side::Short, 10.0, 100.0, 1.0, false)]);
    e.load(b.view(), &symbols()[..1], Some((&[1], &[50.0])), None).unwrap();
    e.set_marks(&[("X".into(), 90.0)], None).unwrap();
    let out = e.liquidate_account(1, false, false).unwrap();
    assert_eq!(out[0].fills[0].price, 95.0);
    assert_eq!((e.cash_of(1), e.cash_of(2)), (0, 51 * 10i128.pow(18)));
}

#[cfg(debug_assertions)]
#[test]
fn a_panic_halfway_through_a_later_step_is_undone() {
    use _adl::core::engine::fault;
    for logged in [false, true] {
        let path = temp_log(&format!("panic-{logged}"));
        let mut j = Journal::new(two_big_events(1e6));
        if logged {
            j.log = Some(OpLog::create(&path, &j.engine, SyncPolicy::Always, None).unwrap());
        }
        // Small events (10^6 lots) that fit: only the injected fault fails the second one.
        let reqs = [req(1, 0), req(2, 1)];
        let before = j.engine.snapshot();
        fault::panic_at_step(2);
        let err = j.apply(Op::LiquidateMany { reqs: &reqs });
        assert!(matches!(err, Err(AdlError::Internal { ref message }) if message.contains("injected fault")), "{err:?}");
        assert_eq!(j.engine.snapshot(), before);
        assert!(j.poisoned.is_none());
        if logged {
            assert_eq!(replay(&path).unwrap().0.snapshot(), before);
        }
        // A single liquidation that panics is undone too, and the engine keeps working.
        fault::panic_at_step(1);
        assert!(j.apply(Op::Liquidate { req: reqs[0] }).is_err());
        assert_eq!(j.engine.snapshot(), before);
        assert!(j.apply(Op::Liquidate { req: reqs[0] }).is_ok());
    }
}

/// The fill log's switch and drain cursor: logged operations that replay to the same engine,
/// snapshot fields (version 5) that older snapshots default (kept, never drained), and a
/// refused drain that changes nothing and is not logged.
#[test]
fn fill_log_drains_and_switches_replay_exactly() {
    let path = temp_log("fill-log");
    let mut j = logged_run(&path);
    let held = j.engine.events().len();
    let next = j.engine.next_event();
    assert!(held > 2 && next >= 3, "{held} fills of {next} events");
    let first = j.engine.events().iter().next().unwrap().event;
    let of_first = j.engine.events().iter().filter(|f| f.event == first).count();
    assert_eq!(j.apply(Op::DrainEvents { upto: first + 1 }).unwrap(), _adl::core::OpOutput::Drained(of_first));
    assert_eq!((j.engine.events().len(), j.engine.drained_upto()), (held - of_first, first + 1));
    assert!(j.engine.events().iter().all(|f| f.event > first));
    // Past the next event id: refused, not logged, nothing changed.
    let (before, seq) = (j.engine.snapshot(), j.log.as_ref().unwrap().seq);
    let err = j.apply(Op::DrainEvents { upto: next + 1 }).unwrap_err();
    assert!(matches!(err, AdlError::InvalidParameter { ref field, .. } if field == "upto"), "{err:?}");
    assert_eq!((j.engine.snapshot(), j.log.as_ref().unwrap().seq), (before, seq));
    j.apply(Op::SetKeepFills { keep: false }).unwrap();
    let held = j.engine.events().len();
    let p = j.engine.store().iter().map(|(_, p)| p).find(|p| !p.cross).expect("an isolated position left");
    let req = Request { account: p.account, market: p.market, side: p.side, fill_price: None, force: true, partial: false };
    let out = j.apply(Op::Liquidate { req }).unwrap();
    assert!(matches!(out, _adl::core::OpOutput::Liquidated(ref l) if !l.fills.is_empty() && l.event == next));
    assert_eq!((j.engine.next_event(), j.engine.events().len()), (next + 1, held), "an event ran and kept no fills");
    let (again, _) = replay(&path).unwrap();
    assert_eq!(again.snapshot(), j.engine.snapshot());
    assert!(!again.keep_fills() && again.drained_upto() == first + 1);
    let back = Engine::restore(&j.engine.snapshot()).unwrap();
    assert_eq!(back.snapshot(), j.engine.snapshot());
    // A version 3 snapshot keeps fills and was never drained.
    let old = Engine::restore(&std::fs::read(fixture("engine_v3.snap")).unwrap()).unwrap();
    assert!(old.keep_fills() && old.drained_upto() == 0 && !old.events().is_empty());
}

/// Isolated margins past i64 (issue 12): at `cash_decimals=18` (lots of 10^-4, ticks of
/// 10^-6: a lot·tick is 10^8 cash units) a margin of `m` quote is `m·10^18` units, beyond
/// i64 (9.2·10^18) from ~9.2 quote on. `m_units` is that product as the f64 input gives it:
/// 10^21 exactly for 10^3 quote, 10^27 + 13,287,555,072 for 10^9 (10^27 is not a double).
/// Margins m/2 and 2m scale by powers of two, so their units are exactly m_units/2 and
/// 2·m_units. With Q = m/10 base units, `m = 10·Q` quote:
/// - #1 long Q @100, margin m: at mark 85 its equity m − 15·Q < 0; bankruptcy price
///   100 − m/Q = 90, the fund is empty: ADL at 90 against the shorts.
/// - #2 short Q/2 @100, margin m/2 (equity 5Q + 7.5Q = 12.5Q, notional 42.5Q: ℓ 3.4) ranks
///   before #4 short Q @100, margin 2m (equity 35Q, notional 85Q: ℓ 2.43).
/// - #1's Q lots: Q/2 from #2 (all; it carries m/2 of #1's margin, its PnL at 90 is
///   (Q/2)·10 = m/2 quote: credit m/2 released + m/2 = m_units) and Q/2 from #4 (released
///   ⌊2m·(Q/2)/Q⌋ = m, carried m/2: credit 1.5·m_units; #4 keeps Q/2 lots and m of margin).
/// - #3 long Q/2 @100, margin m/2, closed by the book at 95: (m/2 − (Q/2)·5 quote) = m/4 goes
///   to the fund (surplus), the book pays (Q/2)·(95 − 85) = 5Q quote over the mark.
fn big_margin_run(m: f64, log: Option<&PathBuf>) -> Journal {
    let q = m / 10.0;
    let mut j = Journal::new(Engine::new(Policy::Bitmex, 0.0, 18, MarketSpec::linear(4, 6, 0.1)).unwrap());
    if let Some(path) = log {
        j.log = Some(OpLog::create(path, &j.engine, SyncPolicy::Never, None).unwrap());
    }
    let b = cols(&[
        (1, 0, Side::Long, q, 100.0, m, false),
        (2, 0, Side::Short, q / 2.0, 100.0, m / 2.0, false),
        (3, 0, Side::Long, q / 2.0, 100.0, m / 2.0, false),
        (4, 0, Side::Short, q, 100.0, 2.0 * m, false),
    ]);
    j.apply(Op::Load { cols: b.view(), symbols: &symbols()[..1], accounts: None, custom: None, labels: None }).unwrap();
    j.apply(Op::SetMarks { marks: &[("X".into(), 85.0)], ts: None, clock: None }).unwrap();
    j
}

#[test]
fn isolated_margins_of_a_thousand_and_a_billion_quote_at_18_decimals() {
    for (m, m_units) in [(1e3, 10i128.pow(21)), (1e9, 10i128.pow(27) + 13_287_555_072)] {
        let path = temp_log(&format!("big-margin-{m}"));
        let mut j = big_margin_run(m, Some(&path));
        let e = &j.engine;
        let slot = |e: &Engine, a: u64| e.store().find(&(a, 0, if a % 2 == 0 { Side::Short } else { Side::Long })).unwrap();
        assert_eq!(({ e.store().get(slot(e, 1)).margin }, { e.store().get(slot(e, 4)).margin }), (m_units, 2 * m_units));
        // Bankruptcy price of #1: 100 − m/Q = 90 quote = 9·10^7 ticks.
        assert_eq!(e.prices(slot(e, 1)).unwrap().0, 90_000_000.0);
        let v0 = e.totals().value();
        let out = j.apply(Op::Liquidate {
            req: Request { account: 1, market: 0, side: Side::Long, fill_price: None, force: false, partial: false },
        });
        let _adl::core::OpOutput::Liquidated(l) = out.unwrap() else { panic!("not a liquidation") };
        let fills: Vec<(Option<u64>, f64)> = l.fills.iter().map(|f| (f.account, f.price)).collect();
        assert_eq!(fills, [(Some(2), 90.0), (Some(4), 90.0)]);
        let e = &j.engine;
        assert_eq!((e.cash_of(1), e.cash_of(2), e.cash_of(4)), (0, m_units, m_units + m_units / 2));
        assert_eq!({ e.store().get(slot(e, 4)).margin }, m_units);
        assert_eq!((e.fund(), e.bad_debt()), (0, 0));
        // #3 through the book at 95: (Q/2)·5 quote = Q·2.5·10^18 units of its m/2 are lost.
        let loss = (m / 10.0 * 2.5) as i128 * 10i128.pow(18);
        j.apply(Op::Liquidate {
            req: Request { account: 3, market: 0, side: Side::Long, fill_price: Some(95.0), force: false, partial: false },
        })
        .unwrap();
        let e = &j.engine;
        assert_eq!((e.cash_of(3), e.fund()), (0, m_units / 2 - loss));
        assert_eq!(e.totals().value(), v0);
        // Saved and restored, and replayed from the log, bit for bit.
        let snap = e.snapshot();
        assert_eq!(u32::from_le_bytes(snap[8..12].try_into().unwrap()), 5);
        let back = Engine::restore(&snap).unwrap();
        assert_eq!(back.snapshot(), snap);
        assert_eq!({ back.store().get(slot(&back, 4)).margin }, m_units);
        assert_eq!(replay(&path).unwrap().0.snapshot(), snap);
    }
}

#[test]
fn a_margin_past_the_ledger_range_is_refused_by_name() {
    let mut e = Engine::new(Policy::Bitmex, 0.0, 18, MarketSpec::linear(4, 6, 0.1)).unwrap();
    // 10^12 quote is 10^30 units as a double product: 10^30 + 19,884,624,838,656 > MAX_MARGIN.
    let b = cols(&[(1, 0, Side::Long, 1.0, 100.0, 5.0, false), (2, 0, Side::Short, 1.0, 100.0, 1e12, false)]);
    let err = e.load(b.view(), &symbols()[..1], None, None).unwrap_err();
    assert!(matches!(err, AdlError::InvalidValue { ref field, row: 1, .. } if field == "margin"), "{err:?}");
    assert!(e.store().is_empty());
    // The last double below (10^30 − 120,852,863,516,672 units) is accepted, and restores.
    let b = cols(&[(2, 0, Side::Short, 1.0, 100.0, 999_999_999_999.999_9, false)]);
    e.upsert(b.view(), &symbols()[..1], None, None).unwrap();
    assert_eq!({ e.store().get(0).margin }, 10i128.pow(30) - 120_852_863_516_672);
    assert_eq!(Engine::restore(&e.snapshot()).unwrap().snapshot(), e.snapshot());
    let err = e.upsert(cols(&[(2, 0, Side::Short, 1.0, 100.0, 1e12, false)]).view(), &symbols()[..1], None, None).unwrap_err();
    assert!(matches!(err, AdlError::InvalidValue { ref field, row: 0, .. } if field == "margin"), "{err:?}");
}

/// A panic anywhere in any mutating operation (the fault hook: one step per liquidation
/// applied, per upsert row applied, and at the end of every other operation) is undone by
/// the engine itself: `Internal` naming the undo, the state as before (snapshot bytes), the
/// log without the operation, no poisoning and no rebuild from the log. Each operation is
/// then retried without the fault and must give what a copy of the engine gives.
#[cfg(debug_assertions)]
#[test]
fn a_panic_at_any_step_of_any_operation_changes_nothing() {
    use _adl::core::engine::fault;
    let names = symbols();
    let b = book();
    let up = cols(&[
        (8, 0, Side::Short, 7.0, 97.0, 70.0, false),
        (3, 0, Side::Short, 6.0, 98.0, 60.0, false),
        (4, 1, Side::Long, 2.0, 50.0, 0.0, true),
    ]);
    let fresh = cols(&[(1, 2, Side::Long, 1.0, 10.0, 5.0, false)]);
    let refill = cols(&[
        (11, 0, Side::Long, 2.0, 96.0, 30.0, false),
        (12, 1, Side::Short, 3.0, 51.0, 0.0, true),
        (13, 0, Side::Short, 1.0, 96.0, 9.0, false),
    ]);
    let three = vec!["X".to_string(), "Y".to_string(), "W".to_string()];
    let marks = [("X".to_string(), 96.0), ("Y".to_string(), 51.0)];
    let later = [("X".to_string(), 95.0)];
    let (plain, finer) = (SPEC.clone(), MarketSpec::linear(1, 1, 0.05));
    let wallets = ([8u64, 4], [1.0, 70.0]);
    let ops: Vec<Op<'_>> = vec![
        Op::Load { cols: b.view(), symbols: &names, accounts: Some((&[4], &[60.0])), custom: None, labels: None },
        Op::AddMarket { name: "Z", spec: &plain },
        Op::AddMarket { name: "Z", spec: &finer },
        Op::SetMarks { marks: &marks, ts: Some(5), clock: Some("UTC") },
        Op::SetTrigger { trigger: Trigger::Drawdown { window: 100, arm: -0.3, disarm: -0.25 } },
        Op::SetFund { amount: 3.0, pool: "default" },
        Op::Upsert { cols: up.view(), symbols: &names, accounts: Some((&wallets.0, &wallets.1)), custom: None, labels: None },
        Op::Upsert { cols: fresh.view(), symbols: &three, accounts: None, custom: None, labels: None },
        Op::SetMarks { marks: &later, ts: Some(6), clock: None },
        Op::Liquidate { req: Request { account: 1, market: 0, side: Side::Long, fill_price: Some(95.0), force: false, partial: false } },
        Op::ClosePosition { account: 5, market: 1, side: Side::Long, price: Some(52.0) },
        Op::LiquidateAccount { account: 4, force: true, partial: false },
        // New keys after positions closed: the rows take the freed slots (the free list's end).
        Op::Upsert { cols: refill.view(), symbols: &names, accounts: None, custom: None, labels: None },
    ];
    for logged in [false, true] {
        let path = temp_log(&format!("any-step-{logged}"));
        let mut j = Journal::new(Engine::new(Policy::Bitmex, 25.0, 2, SPEC.clone()).unwrap());
        if logged {
            j.log = Some(OpLog::create(&path, &j.engine, SyncPolicy::Never, None).unwrap());
        }
        let mut undone = 0;
        for (i, &op) in ops.iter().enumerate() {
            let want = {
                let mut copy = j.engine.clone();
                copy.apply(op).map(|out| (out, copy.snapshot()))
            };
            let before = j.engine.snapshot();
            for k in 1.. {
                fault::panic_at_step(k);
                let got = j.apply(op);
                fault::panic_at_step(0);
                match got {
                    Err(AdlError::Internal { message }) => {
                        assert!(message.contains("injected fault") && message.contains("undone"), "op {i} step {k}: {message}");
                        assert_eq!(j.engine.snapshot(), before, "op {i} step {k}");
                        assert!(j.poisoned.is_none());
                        if logged {
                            assert_eq!(replay(&path).unwrap().0.snapshot(), before, "op {i} step {k}");
                        }
                        undone += 1;
                    }
                    got => {
                        let want = want.as_ref().map(|(out, snap)| (out.clone(), snap.clone())).map_err(|e| e.to_string());
                        assert_eq!(got.map(|out| (out, j.engine.snapshot())).map_err(|e| e.to_string()), want, "op {i}");
                        break;
                    }
                }
            }
        }
        // Every operation had at least its one step (the batch and upserts more).
        assert!(undone >= ops.len(), "{undone}");
        if logged {
            assert_eq!(replay(&path).unwrap().0.snapshot(), j.engine.snapshot());
        }
    }
}
