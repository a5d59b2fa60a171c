"""Persistence, crash recovery, incremental updates, hostile input and concurrency."""

from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import workload
from conftest import book, conserved_value, whole_units_engine

import adl

HERE = Path(__file__).resolve().parent


def busy() -> adl.Engine:
    eng = workload.new_engine()
    ops = workload.operations(eng, seed=3)
    done = 0
    while done < 40:
        done += next(ops)
    return eng


def test_snapshot_pickle_and_files_round_trip_exactly(tmp_path: Path) -> None:
    eng = busy()
    snap = eng.snapshot()
    for other in (adl.Engine.restore(snap), pickle.loads(pickle.dumps(eng))):
        assert other.snapshot() == snap
        assert other.positions().equals(eng.positions())
        assert other.events().equals(eng.events())
        assert other.indicator().equals(eng.indicator())
    path = tmp_path / "engine.adl"
    eng.save(path)
    assert adl.Engine.open(path).snapshot() == snap
    # The same next operation gives the same result on both.
    twin = adl.Engine.restore(snap)
    liq = eng.positions().row(0, named=True)
    a = eng.liquidate(liq["account"], liq["symbol"], liq["side"], force=True)
    b = twin.liquidate(liq["account"], liq["symbol"], liq["side"], force=True)
    assert a.fills.equals(b.fills) and a.events == b.events


def test_damaged_files_are_refused_clearly(tmp_path: Path) -> None:
    snap = busy().snapshot()
    for bad in (snap[: len(snap) // 2], snap[:10], b"", snap[:-1] + bytes([snap[-1] ^ 1]), b"junk" * 10):
        with pytest.raises(adl.CorruptDataError) as e:
            adl.Engine.restore(bad)
        assert e.value.what == "snapshot"
    with pytest.raises(adl.StorageError) as s:
        adl.Engine.open(tmp_path / "missing.adl")
    assert "missing.adl" in s.value.path


def test_replay_rebuilds_the_logged_engine(tmp_path: Path) -> None:
    path = tmp_path / "ops.log"
    eng = workload.new_engine()
    eng.log_to(path, sync="group", group_ms=5)
    ops = workload.operations(eng, seed=11)
    done = 0
    while done < 200:
        done += next(ops)
    eng.sync()
    assert eng.log_status == {"logged": 200, "durable": 200}
    again = adl.Engine.replay(path)
    assert again.replay_info == {"ops": 200, "dropped_bytes": 0}
    assert again.snapshot() == eng.snapshot()
    # A torn tail (the last record cut short) is dropped, and reported.
    data = path.read_bytes()
    path.write_bytes(data[:-3])
    torn = adl.Engine.replay(path)
    assert torn.replay_info is not None
    assert torn.replay_info["ops"] == 199 and torn.replay_info["dropped_bytes"] > 0
    assert torn.snapshot() == workload.replay_first(199, seed=11).snapshot()


@pytest.mark.parametrize("round_", range(25))
def test_sigkill_mid_stream_loses_no_acknowledged_operation(tmp_path: Path, round_: int) -> None:
    path = tmp_path / "ops.log"
    seed = 100 + round_
    writer = subprocess.Popen(
        [sys.executable, str(HERE / "workload.py"), str(path), str(seed)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(HERE)},
    )
    assert writer.stdout is not None
    acked = 0
    stop_after = random.Random(seed).randint(5, 120)
    for line in writer.stdout:
        acked = int(line)
        if acked >= stop_after:
            break
    # Let it run on a little so the kill lands mid-operation at a random point.
    time.sleep(random.Random(seed).random() * 0.02)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert writer.returncode == -signal.SIGKILL
    eng = adl.Engine.replay(path)
    assert eng.replay_info is not None
    replayed = eng.replay_info["ops"]
    assert replayed >= acked, f"acknowledged {acked}, replayed {replayed}"
    # The replayed state is exactly the first `replayed` operations, re-executed without a log.
    assert eng.snapshot() == workload.replay_first(replayed, seed).snapshot()
    assert eng.insurance_fund >= 0.0
    t = eng.totals()
    assert t.long_lots >= 0 and t.short_lots >= 0


def test_upsert_and_close_are_validated_whole_and_keep_value() -> None:
    eng = whole_units_engine()
    eng.load(book([(1, "long", 10.0, 100.0, 44.0), (2, "short", 10.0, 100.0, 500.0)]))
    eng.set_marks(96.0)
    before = eng.snapshot()
    bad = book([(3, "short", 1.0, 100.0, 10.0), (3, "short", 2.0, 100.0, 10.0)])
    with pytest.raises(adl.InvalidInputError) as e:
        eng.upsert(bad)
    assert e.value.row == 1
    with pytest.raises(adl.InvalidInputError) as e:
        eng.upsert(book([(3, "short", 1.0, 100.0, 10.0), (4, "long", float("nan"), 100.0, 1.0)]))
    assert (e.value.field, e.value.row) == ("qty", 1)
    assert eng.snapshot() == before
    assert eng.upsert(book([(2, "short", 4.0, 99.0, 20.0)])) == {"inserted": 0, "replaced": 1, "accounts": 0}
    # Closing at the mark moves the position's equity to cash: value is unchanged.
    v = conserved_value(eng)
    assert eng.close_position(2, side="short") == 20.0 + 4 * 3
    assert conserved_value(eng) == v
    with pytest.raises(adl.UnknownPositionError):
        eng.close_position(2, side="short")


def test_hostile_input_is_a_clear_error_and_changes_nothing() -> None:
    eng = whole_units_engine()
    eng.load(book([(1, "long", 10.0, 100.0, 44.0)]))
    eng.set_marks(96.0)
    before = eng.snapshot()
    n = 1_000_000
    dupes = pl.DataFrame({"account": np.ones(n, dtype=np.uint64), "side": ["long"] * n, "qty": np.ones(n),
                          "entry_price": np.full(n, 100.0), "margin": np.ones(n)})
    with pytest.raises(adl.InvalidInputError) as e:
        eng.load(dupes)
    assert e.value.row == 1
    with pytest.raises(adl.InvalidInputError):
        eng.upsert(dupes)
    with pytest.raises(adl.SchemaError):
        eng.load(book([(1, "long", 10.0, 100.0, 44.0)]).with_columns(pl.col("qty").cast(pl.String) + "x"))
    with pytest.raises(adl.InvalidInputError):
        eng.load(book([(1, "long", 1e300, 100.0, 44.0)]))             # beyond the fixed point
    with pytest.raises(adl.InvalidInputError):
        eng.set_marks(float("nan"))
    with pytest.raises(adl.UnknownMarketError):
        eng.set_marks({"NOPE": 1.0})
    with pytest.raises(adl.UnknownMarketError):
        eng.liquidate(1, "NOPE", "long")
    assert eng.snapshot() == before
    # No opposite side at all: the liquidation completes and records bad debt.
    res = eng.liquidate(1, side="long", fill_price=90.0)
    assert res.bad_debt == pytest.approx(56.0) and res.fills["kind"].to_list() == ["bad_debt"]
    with pytest.raises(adl.UnknownPositionError):
        eng.liquidate(1, side="long", fill_price=90.0)                  # the same position twice
    empty = book([])
    eng.load(empty)
    assert eng.positions().height == 0 and eng.upsert(empty) == {"inserted": 0, "replaced": 0, "accounts": 0}


def test_threads_sharing_one_engine_agree_with_its_log(tmp_path: Path) -> None:
    """Liquidators, upserters, markers and readers on one engine: no deadlock, only expected
    errors, and the final state is exactly what replaying the log (the order the lock
    serialised the calls in) gives."""
    path = tmp_path / "ops.log"
    eng = workload.new_engine()
    eng.log_to(path, sync="none")
    stop = time.monotonic() + 2.0
    failures: list[BaseException] = []
    expected = (adl.UnknownPositionError, adl.NotLiquidatableError, adl.InvalidInputError)

    def worker(kind: str, seed: int) -> None:
        rng = random.Random(seed)
        try:
            while time.monotonic() < stop:
                try:
                    if kind == "liquidate":
                        liq = eng.liquidatable()
                        if liq.height:
                            r = liq.row(rng.randrange(liq.height), named=True)
                            eng.liquidate(r["account"], r["symbol"], r["side"])
                    elif kind == "upsert":
                        eng.upsert(pl.DataFrame({
                            "account": [rng.randint(1, 80)], "symbol": [rng.choice(workload.SYMBOLS)],
                            "side": [rng.choice(["long", "short"])], "qty": [float(rng.randint(1, 9))],
                            "entry_price": [float(rng.randint(90, 110))], "margin": [float(rng.randint(1, 90))],
                        }))
                    elif kind == "marks":
                        eng.set_marks({s: float(rng.randint(85, 115)) for s in workload.SYMBOLS})
                    else:
                        eng.positions(), eng.totals(), eng.indicator(), eng.accounts(), eng.snapshot()
                except expected:
                    pass
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(e)

    kinds = ["liquidate", "liquidate", "upsert", "marks", "read", "read"]
    threads = [threading.Thread(target=worker, args=(k, i)) for i, k in enumerate(kinds)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert not failures, failures
    status = eng.log_status
    assert status is not None and status["logged"] > 100
    eng.sync()
    assert adl.Engine.replay(path).snapshot() == eng.snapshot()
