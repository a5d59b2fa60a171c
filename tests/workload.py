"""A deterministic stream of engine operations, shared by the crash test's writer process and
the test that re-executes it. Run as a script it is the writer: it logs to a file and prints
the number of acknowledged (returned, hence synced) operations after each one."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator

import polars as pl

import adl

SYMBOLS = ["X", "Y"]


def new_engine() -> adl.Engine:
    eng = adl.Engine(
        insurance_fund=50.0, cash_decimals=2, qty_decimals=0, price_decimals=0,
        markets={s: adl.Market(0, 0, 0.05) for s in SYMBOLS},
    )
    rng = random.Random(7)
    rows = [
        (a, s, side, float(rng.randint(1, 20)), float(rng.randint(90, 110)), float(rng.randint(5, 200)))
        for a in range(1, 41) for s in SYMBOLS for side in ("long", "short") if rng.random() < 0.6
    ]
    eng.load(pl.DataFrame(rows, schema=["account", "symbol", "side", "qty", "entry_price", "margin"], orient="row"))
    eng.set_marks({"X": 100.0, "Y": 100.0}, ts=0)
    return eng


def operations(eng: adl.Engine, seed: int) -> Iterator[bool]:
    """Applies one random operation per step; yields whether it succeeded (was acknowledged)."""
    rng = random.Random(seed)
    marks = {"X": 100.0, "Y": 100.0}
    step = 0
    while True:
        step += 1
        kind = rng.random()
        try:
            if kind < 0.3:
                s = rng.choice(SYMBOLS)
                marks[s] = float(min(140, max(60, marks[s] + rng.randint(-3, 3))))
                eng.set_marks(marks, ts=step)
            elif kind < 0.6:
                liq = eng.liquidatable()
                if liq.height == 0:
                    yield False
                    continue
                r = liq.row(rng.randrange(liq.height), named=True)
                fill = marks[r["symbol"]] + rng.randint(-2, 2)
                eng.liquidate(r["account"], r["symbol"], r["side"], fill_price=float(fill))
            elif kind < 0.85:
                eng.upsert(pl.DataFrame({
                    "account": [rng.randint(1, 60)], "symbol": [rng.choice(SYMBOLS)],
                    "side": [rng.choice(["long", "short"])], "qty": [float(rng.randint(1, 20))],
                    "entry_price": [float(rng.randint(90, 110))], "margin": [float(rng.randint(5, 200))],
                }))
            elif kind < 0.95:
                pos = eng.positions()
                if pos.height == 0:
                    yield False
                    continue
                r = pos.row(rng.randrange(pos.height), named=True)
                eng.close_position(r["account"], r["symbol"], r["side"])
            else:
                eng.insurance_fund = float(rng.randint(0, 100))
        except adl.AdlError:
            yield False
            continue
        yield True


def replay_first(n_acked: int, seed: int) -> adl.Engine:
    """The engine after the first ``n_acked`` successful operations, without a log."""
    eng = new_engine()
    ops = operations(eng, seed)
    done = 0
    while done < n_acked:
        done += next(ops)
    return eng


if __name__ == "__main__":
    path, seed = sys.argv[1], int(sys.argv[2])
    eng = new_engine()
    eng.log_to(path, sync="always")
    acked = 0
    for ok in operations(eng, seed):
        if ok:
            acked += 1
            print(acked, flush=True)
