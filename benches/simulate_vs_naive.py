"""adl.simulate against the naive loop (every step rescans the whole book and liquidates from
Python: tests/naive.py, the tests' oracle), on the same seeded book and crash path, in one run.

    python benches/simulate_vs_naive.py [--positions 1000000] [--steps 1000]

Both give the same liquidations (checked before the ratio is printed)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import polars as pl

import adl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from naive import simulate_naive  # noqa: E402  (the tests' oracle, not part of the package)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--positions", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=1_000)
    ap.add_argument("--drop", type=float, default=0.15)
    ap.add_argument("--fund", type=float, default=0.0)
    a = ap.parse_args()
    book = adl.synthetic_book(a.positions, seed=1)
    path = adl.crash_path(steps=a.steps, drop=a.drop, duration=int(a.steps * 0.6), seed=2)
    kw = {"insurance_fund": a.fund, "liquidation": adl.Slippage()}
    t = time.perf_counter()
    fast = adl.simulate(book, path, keep_fills=False, **kw)  # type: ignore[arg-type]
    t_fast = time.perf_counter() - t
    t = time.perf_counter()
    slow = simulate_naive(book, path, **kw)  # type: ignore[arg-type]
    t_slow = time.perf_counter() - t
    cols = ["ts", "account", "symbol", "side", "fill_price", "adl_qty"]
    same = fast.liquidations.select(cols).with_columns(pl.col("adl_qty").round(8)).equals(
        slow.select(cols).with_columns(pl.col("adl_qty").round(8)))
    s = fast.summary.row(0, named=True)
    print(f"{a.positions:,} positions x {a.steps:,} steps, {s['liquidations']:,} liquidations "
          f"({s['adl_events']:,} with ADL), same liquidations: {same}")
    print(f"adl.simulate {t_fast:.2f} s; naive rescan loop {t_slow:.2f} s; ratio {t_slow / t_fast:.1f}x")


if __name__ == "__main__":
    main()
