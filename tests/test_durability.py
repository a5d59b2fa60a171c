"""Durability under an operator's abuse: concurrent saves, a full disk, two writers on one
log, special files, threads reading during long calls and racing market creation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import book

import adl


def small_engine(fund: float) -> adl.Engine:
    eng = adl.Engine(insurance_fund=fund, qty_decimals=0, price_decimals=0, cash_decimals=2)
    eng.load(book([(1, "long", 10.0, 100.0, 44.0), (2, "short", 10.0, 100.0, 500.0)]))
    return eng


def test_concurrent_saves_in_one_directory_never_swap_snapshots(tmp_path: Path) -> None:
    # Names that differ only by extension: the old fixed temporary name ("book.adl-tmp") was
    # shared by all of them. 8 engines, each saving 15 times to its own file, and all to one
    # shared file.
    engines = [small_engine(float(i + 1)) for i in range(8)]
    snaps = [e.snapshot() for e in engines]
    errors: list[BaseException] = []

    def saver(i: int) -> None:
        try:
            for _ in range(15):
                engines[i].save(tmp_path / f"book.v{i}")
                engines[i].save(tmp_path / "book.shared")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=saver, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in range(8):
        assert (tmp_path / f"book.v{i}").read_bytes() == snaps[i]
        assert adl.Engine.open(tmp_path / f"book.v{i}").insurance_fund == float(i + 1)
    # The shared file is one whole snapshot of one of them; no temporary file is left.
    assert (tmp_path / "book.shared").read_bytes() in snaps
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"book.v{i}" for i in range(8)] + ["book.shared"])


def test_concurrent_saving_processes(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import sys, adl
        eng = adl.Engine(insurance_fund=float(sys.argv[2]))
        for _ in range(30):
            eng.save(sys.argv[1] + "." + sys.argv[2])
            eng.save(sys.argv[1] + ".shared")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "book"), str(i)]) for i in range(1, 5)]
    assert [p.wait() for p in procs] == [0] * 4
    for i in range(1, 5):
        assert adl.Engine.open(tmp_path / f"book.{i}").insurance_fund == float(i)
    assert adl.Engine.open(tmp_path / "book.shared").insurance_fund in {1.0, 2.0, 3.0, 4.0}
    assert len(list(tmp_path.iterdir())) == 5


FULL_DISK = textwrap.dedent("""
    import json, os, resource, sys
    import polars as pl
    import adl
    path, fresh = sys.argv[1], sys.argv[2]
    eng = adl.Engine(insurance_fund=1.0, qty_decimals=0, price_decimals=0, cash_decimals=2)
    eng.load(pl.DataFrame({"account": [1, 2], "side": ["long", "short"], "qty": [10.0, 10.0],
                           "entry_price": [100.0, 100.0], "margin": [44.0, 500.0]}))
    eng.log_to(path)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # Room for a few small records; then an upsert of 400 rows is cut off mid-record.
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + 200, hard))
    out = {"acked": 0}
    n = 0
    while True:
        before, size = eng.snapshot(), os.path.getsize(path)
        try:
            if n < 3:
                eng.set_fund(float(n + 2))
            else:
                eng.upsert(pl.DataFrame({"account": list(range(10, 410)), "side": ["short"] * 400,
                                         "qty": [1.0] * 400, "entry_price": [100.0] * 400, "margin": [50.0] * 400}))
            n += 1
            out["acked"] = n
        except adl.StorageError as e:
            out["error"] = str(e)
            break
    out["unchanged"] = eng.snapshot() == before
    out["size_kept"] = os.path.getsize(path) == size
    # Every later mutation is refused, and changes nothing, until a new log is started.
    refused = 0
    for call in (lambda: eng.set_fund(99.0), lambda: eng.set_marks(101.0), lambda: eng.close_position(1, side="long")):
        try:
            call()
        except adl.StorageError:
            refused += 1
    out["refused"] = refused
    out["still_unchanged"] = eng.snapshot() == before
    out["replay_equals_live"] = adl.Engine.replay(path).snapshot() == eng.snapshot()
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    eng.log_to(fresh)
    eng.set_fund(7.0)
    out["after_relog"] = adl.Engine.replay(fresh).insurance_fund
    print(json.dumps(out))
""")


def test_a_failed_log_write_changes_nothing_and_refuses_later_calls(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path / "ops.log"), str(tmp_path / "fresh.log")],
                         capture_output=True, text=True, check=True)
    out = json.loads(res.stdout)
    # 3 set_fund records fit in 200 bytes (about 30 each), an upsert of 400 rows (~17 kB) does not.
    assert out["acked"] == 3
    assert "File too large" in out["error"]
    assert out["unchanged"] and out["size_kept"] and out["still_unchanged"]
    assert out["refused"] == 3
    assert out["replay_equals_live"]
    assert out["after_relog"] == 7.0


def test_one_writer_per_log(tmp_path: Path) -> None:
    path = tmp_path / "ops.log"
    a, b = small_engine(1.0), small_engine(2.0)
    a.log_to(path)
    with pytest.raises(adl.StorageError, match="locked by another engine"):
        b.log_to(path)
    a.set_fund(5.0)
    a.log_to(path)  # its holder may restart it (a fresh compacted log)
    a.set_fund(6.0)
    with pytest.raises(adl.StorageError):
        b.log_to(path)
    assert adl.Engine.replay(path).insurance_fund == 6.0
    # Held by another process: refused too.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import adl, sys; e = adl.Engine(); e.log_to(sys.argv[1]); print('ok', flush=True); sys.stdin.read()",
         str(tmp_path / "other.log")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
    with pytest.raises(adl.StorageError, match="locked"):
        b.log_to(tmp_path / "other.log")
    holder.communicate("")
    b.log_to(tmp_path / "other.log")  # released when its holder exited
    a.close_log()
    b.log_to(path)  # released by close_log
    b.set_fund(3.0)
    assert adl.Engine.replay(path).insurance_fund == 3.0


def test_special_targets_are_refused(tmp_path: Path) -> None:
    eng = small_engine(1.0)
    target = tmp_path / "real.log"
    target.write_bytes(b"keep")
    link = tmp_path / "link.log"
    link.symlink_to(target)
    for call in (eng.log_to, eng.save):
        with pytest.raises(adl.StorageError, match="symbolic link"):
            call(link)
        with pytest.raises(adl.StorageError, match="not a regular file"):
            call("/dev/null")
        with pytest.raises(adl.StorageError, match="not a regular file"):
            call(tmp_path)
    assert link.is_symlink() and target.read_bytes() == b"keep"
    assert Path("/dev/null").is_char_device()


def test_other_threads_run_while_a_long_load_holds_the_engine() -> None:
    def book_of(n: int) -> pl.DataFrame:
        return pl.DataFrame({
            "account": np.arange(n, dtype=np.uint64), "side": np.where(np.arange(n) % 2 == 0, "long", "short"),
            "qty": np.ones(n), "entry_price": np.full(n, 100.0), "margin": np.full(n, 10.0),
        })

    # A load long enough to tell on this build (debug or release): double the book until a
    # plain load takes half a second.
    n = 600_000
    while True:
        big = book_of(n)
        t0 = time.perf_counter()
        adl.Engine().load(big)
        if time.perf_counter() - t0 > 0.5 or n >= 16_000_000:
            break
        n *= 2
    eng = adl.Engine()
    done = threading.Event()

    def loader() -> None:
        eng.load(big)
        done.set()

    def reader() -> None:
        while not done.is_set():
            _ = eng.insurance_fund, eng.bad_debt, eng.totals(), eng.log_status

    threads = [threading.Thread(target=loader), threading.Thread(target=reader)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    gaps, last = [], time.perf_counter()
    while not done.is_set():
        time.sleep(0.002)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    for t in threads:
        t.join()
    took = time.perf_counter() - start
    assert took > 0.3, f"the load took {took:.2f} s: too short to tell"
    # The main thread kept ticking: no pause near the load's length (a getter waiting for the
    # lock with the GIL held froze every thread until the load ended).
    assert max(gaps) < took / 3, (max(gaps), took)
    assert eng.totals().long_lots == n // 2 * 10_000  # qty_decimals 4: 1.0 = 10^4 lots


def test_upserting_new_markets_while_reading_positions() -> None:
    eng = adl.Engine(qty_decimals=0, price_decimals=0, cash_decimals=2)
    eng.load(book([(1, "long", 1.0, 100.0, 50.0)], symbol="S0"))
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        try:
            for i in range(1, 150):
                eng.upsert(book([(i, "short", 1.0, 100.0, 50.0)], symbol=f"S{i}"))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            stop.set()

    def reader() -> None:
        try:
            while not stop.is_set():
                p = eng.positions()
                assert p["symbol"].null_count() == 0
                eng.events(), eng.indicator(), eng.markets()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    p = eng.positions()
    assert p.height == 150 and set(p["symbol"]) == {f"S{i}" for i in range(150)}


def test_extreme_accepted_values_compute_exact_totals() -> None:
    # 10^15 lots at 10^15 (qty and price decimals 0, cash decimals 8: a lot·tick is 10^8 cash
    # units). Two longs bought at 1 and marked at 10^15 each hold upnl 10^15·(10^15 − 1)·10^8
    # = 10^38 − 10^23 cash units: their sum is beyond i128 (1.7·10^38).
    eng = adl.Engine(qty_decimals=0, price_decimals=0, cash_decimals=8)
    eng.load(pl.DataFrame({"account": [1, 2, 3], "side": ["long", "long", "short"], "qty": [1e15] * 3,
                           "entry_price": [1.0, 1.0, 1e15], "margin": [1e9, 1e9, 1e9]}))
    eng.set_marks(1e15)
    t = eng.totals()
    margin = 10**9 * 10**8  # 10^9 quote in cash units
    assert t.position_equity == 2 * (10**38 - 10**23 + margin) + margin
    assert (t.long_lots, t.short_lots) == (2 * 10**15, 10**15)
    assert t.position_equity > 2**127  # really beyond i128


def test_a_crafted_snapshot_with_the_last_event_id_is_refused() -> None:
    import struct
    import zlib

    snap = adl.Engine(insurance_fund=1.0).snapshot()
    # Layout: magic 8, version 4, payload length 8, CRC 4, payload. An engine with no events
    # and no clock ends its payload with next_event u64, ts (flag 1 + i64 8), events count u64.
    head, payload = snap[:24], bytearray(snap[24:])
    assert struct.unpack("<Q", payload[-25:-17])[0] == 0

    def with_next_event(v: int) -> bytes:
        payload[-25:-17] = struct.pack("<Q", v)
        return head[:20] + struct.pack("<I", zlib.crc32(bytes(payload))) + bytes(payload)

    with pytest.raises(adl.CorruptDataError, match="next event id"):
        adl.Engine.restore(with_next_event(2**64 - 1))
    with pytest.raises(adl.CorruptDataError, match="next event id"):
        adl.Engine.restore(with_next_event(2**63))
    eng = adl.Engine.restore(with_next_event(2**63 - 2))  # the largest accepted, and one event fits
    eng.load(book([(1, "long", 10.0, 100.0, 44.0), (2, "short", 10.0, 100.0, 500.0)]))
    eng.set_marks(96.0)
    assert eng.liquidate(1, side="long", fill_price=95.0).events == [2**63 - 2]


def test_preview_bounds_its_trials() -> None:
    eng = small_engine(0.0)
    eng.set_marks(100.0)
    start = time.perf_counter()
    with pytest.raises(adl.InvalidInputError, match="step") as e:
        eng.preview(step=1e-12)
    assert e.value.field == "step" and time.perf_counter() - start < 5
    # 0.5 / 10,000 = 5e-5 is the finest step; steps finer than a tick try each tick once.
    assert eng.preview(side="long", step=5e-5).height == 1


def test_restore_is_linear_in_the_number_of_markets() -> None:
    def timed(n: int) -> float:
        eng = adl.Engine(markets={f"M{i}": adl.Market() for i in range(n)})
        snap = eng.snapshot()
        start = time.perf_counter()
        assert len(adl.Engine.restore(snap).markets()) == n
        return time.perf_counter() - start

    timed(500)  # warm up
    small, large = min(timed(2_000) for _ in range(2)), min(timed(16_000) for _ in range(2))
    # 8 times the markets: about 8 times the time when linear, 64 when quadratic.
    assert large / small < 24, (small, large)


def test_rank_uses_a_bounded_pool_of_threads() -> None:
    # Two big queues (50,000 rows each) make rank settle queues in parallel; 2,000 one-row
    # markets beside them used to get an OS thread each.
    n = 50_000
    big = pl.DataFrame({"account": np.arange(2 * n, dtype=np.uint64), "symbol": ["A"] * n + ["B"] * n,
                        "side": ["long"] * (2 * n), "qty": np.ones(2 * n), "entry_price": np.full(2 * n, 100.0),
                        "margin": np.full(2 * n, 10.0)})
    tiny = pl.DataFrame({"account": np.arange(2 * n, 2 * n + 2_000, dtype=np.uint64),
                         "symbol": [f"S{i}" for i in range(2_000)], "side": ["long"] * 2_000, "qty": np.ones(2_000),
                         "entry_price": np.full(2_000, 100.0), "margin": np.full(2_000, 10.0)})
    book_ = pl.concat([big, tiny])
    peak, done = [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], len(os.listdir("/proc/self/task")))

    base = len(os.listdir("/proc/self/task"))
    w = threading.Thread(target=watch)
    w.start()
    marks = dict.fromkeys(book_["symbol"].unique().to_list(), 100.0)
    for _ in range(3):
        out = adl.rank(book_, mark=marks)
    done.set()
    w.join()
    assert out["rank"].max() == n
    # The watcher thread itself, plus at most 8 workers.
    assert peak[0] <= base + 1 + 8, (base, peak[0])


SAVER = textwrap.dedent("""
    import sys, adl
    eng = adl.Engine(insurance_fund=float(sys.argv[2]))
    print("ready", flush=True)
    while True:
        eng.save(sys.argv[1] + "." + sys.argv[2])
        eng.save(sys.argv[1] + ".shared")
""")


@pytest.mark.parametrize("round_", range(5))
def test_sigkill_during_concurrent_saves_leaves_whole_snapshots(tmp_path: Path, round_: int) -> None:
    import random
    import signal

    procs = [subprocess.Popen([sys.executable, "-c", SAVER, str(tmp_path / "book"), str(i)], stdout=subprocess.PIPE, text=True)
             for i in range(1, 4)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    rng = random.Random(round_)
    for p in procs:
        time.sleep(rng.random() * 0.05)
        p.send_signal(signal.SIGKILL)
        p.wait()
    for i in range(1, 4):
        if (tmp_path / f"book.{i}").exists():
            assert adl.Engine.open(tmp_path / f"book.{i}").insurance_fund == float(i)
    assert adl.Engine.open(tmp_path / "book.shared").insurance_fund in {1.0, 2.0, 3.0}
    # Anything else is a temporary file a killed saver left.
    others = {p.name for p in tmp_path.iterdir()} - {f"book.{i}" for i in range(1, 4)} - {"book.shared"}
    assert all(n.startswith(".adl-") and n.endswith(".tmp") for n in others), others
