"""Stateless ``adl.deleverage`` at 1M rows against a careful NumPy matcher and a plain Polars one.

The book: one market (4 qty decimals, 2 price decimals), seeded, sides at random, lognormal
sizes, entries around the mark, leverage 1–50× (so some rows are bankrupt at the mark and not
eligible). The event: a bankrupt long of 1 % of the short open interest, closed under the
``bitmex`` policy at an ADL price at which every short can pay (so no row is passed over).

Every matcher works on the market grid (lots, ticks, cash units of 1e-8) and computes the BitMEX
score in floats from those integers with the same operations as adl, so equal scores tie exactly
and go by account. All three are checked to give the same fills (account, lots, rank) before
anything is timed. Only adl validates its input (finite values, sides, qty > 0, ...); the two
matchers trust theirs.

  * NumPy: mask of the opposite side, vectorised score, ``np.argpartition`` for the best k rows
    (k grown until they cover the quantity), then a sort of those by (score desc, account), cumsum
    and take.
  * Polars: filter, score, sort by (score desc, account), cum_sum, take the covering prefix.
  * floor: a NumPy sum of each input column (one pass over the 33 MB the call must read).

Timings are wall time (time.perf_counter), best of N, the four run alternately so that all see the
same load. Run with a release build of adl::

    python benches/stateless_deleverage.py [--rows 1000000] [--runs 21]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

import adl
from adl import _adl
from vs_polars import load, machine_info

MARK = 100.0
QD, PD, CD = 4, 2, 8  # qty, price and cash decimals (adl's stateless calls use 8 cash decimals)
FACTOR = 10 ** (CD - QD - PD)  # cash units per lot·tick
MARK_T = round(MARK * 10**PD)
MARKET = adl.Market(qty_decimals=QD, price_decimals=PD)
SEED = 0xAD14


def make_book(n: int, seed: int = SEED) -> pl.DataFrame:
    """``n`` rows of one market at mark 100: accounts (a permutation, so every row is its own
    account and ties go by account), sides ±1, qty on 4 decimals, entry and margin on 2."""
    rng = np.random.default_rng(seed)
    account = rng.permutation(np.arange(1, n + 1, dtype=np.uint64)) * np.uint64(7) + np.uint64(1_000)
    side = rng.choice(np.array([-1, 1], dtype=np.int8), size=n)
    qty = np.maximum(np.round(rng.lognormal(0.0, 1.2, n), QD), 10.0**-QD)
    entry = np.round(MARK * (1.0 + rng.normal(0.0, 0.05, n)), PD).clip(1.0)
    margin = np.round(qty * entry / rng.uniform(1.0, 50.0, n), PD)
    return pl.DataFrame(
        {"account": account, "side": side, "qty": qty, "entry_price": entry, "margin": margin},
        schema={"account": pl.UInt64, "side": pl.Int8, "qty": pl.Float64, "entry_price": pl.Float64, "margin": pl.Float64},
    )


def event(df: pl.DataFrame) -> tuple[float, float]:
    """(qty, price): 1 % of the short open interest, and the highest price on the grid at which
    every short pays, M − q·(P − E) ≥ 0, i.e. P ≤ E + M/q for all of them."""
    shorts = df.filter(pl.col("side") == -1)
    qty = round(float(shorts["qty"].sum()) * 0.01, QD)
    room = (shorts["entry_price"] + shorts["margin"] / shorts["qty"]).min()
    assert isinstance(room, float)
    return qty, np.floor(room * 10**PD - 1e-6) / 10**PD


# ----- the two matchers -----------------------------------------------------------------------


def np_deleverage(cols: dict[str, np.ndarray], side: int, qty: float) -> dict[str, np.ndarray]:
    """Fills (account, lots, rank, score) of a bankrupt ``side`` position of ``qty`` against the
    opposite side, BitMEX queue (score descending, then account), eligible = equity > 0."""
    want = round(qty * 10**QD)
    s = float(-side)
    idx = np.flatnonzero(cols["side"] == -side)
    q = np.rint(cols["qty"][idx] * 10**QD)
    t = np.rint(cols["entry"][idx] * 10**PD)
    m = np.rint(cols["margin"][idx] * 10**CD)
    p = float(MARK_T)
    d = s * (p - t)
    equity = m + s * (q * (p - t) * FACTOR)
    notional = q * p * FACTOR
    win = d > 0.0
    score = d * np.where(win, notional, equity) / (t * np.where(win, equity, notional))
    ok = equity > 0.0
    idx, q, score = idx[ok], q[ok], score[ok]
    # The best k rows by score; k grows until they cover the quantity. Rows tied with the k-th
    # score are all taken, so that the account order among them is decided by the sort below.
    k = min(len(score), max(64, int(4 * want / max(q.mean(), 1.0))))
    while True:
        top = np.argpartition(-score, k - 1)[:k] if k < len(score) else np.arange(len(score))
        edge = score[top].min()
        top = np.flatnonzero(score >= edge)
        order = top[np.lexsort((cols["account"][idx[top]], -score[top]))]
        before = np.cumsum(q[order]) - q[order]
        n_fill = int(np.searchsorted(before, want, side="left"))
        if before[-1] + q[order][-1] >= want or k >= len(score):
            break
        k = min(len(score), 4 * k)
    order = order[:n_fill]
    lots = np.minimum(q[order], want - before[:n_fill])
    if lots.sum() < want:
        raise ValueError("insufficient liquidity")
    rows = idx[order]
    return {"account": cols["account"][rows], "lots": lots.astype(np.int64),
            "rank": np.arange(1, n_fill + 1, dtype=np.uint32), "score": score[order]}


def pl_deleverage(df: pl.DataFrame, side: int, qty: float) -> pl.DataFrame:
    """The same fills with Polars: filter, score, sort, cum_sum, take the covering prefix."""
    want = round(qty * 10**QD)
    sigma = -side
    lots, t, m = (pl.col("qty") * 10**QD).round(), (pl.col("entry_price") * 10**PD).round(), (pl.col("margin") * 10**CD).round()
    d = sigma * (MARK_T - t)
    equity = m + sigma * (lots * (MARK_T - t) * FACTOR)
    notional = lots * MARK_T * FACTOR
    win = d > 0.0
    score = d * pl.when(win).then(notional).otherwise(equity) / (t * pl.when(win).then(equity).otherwise(notional))
    fills = (
        df.lazy()
        .filter(pl.col("side") == sigma)
        .select("account", lots=lots, equity=equity, score=score)
        .filter(pl.col("equity") > 0)
        .sort(["score", "account"], descending=[True, False])
        .with_columns(before=pl.col("lots").cum_sum() - pl.col("lots"))
        .filter(pl.col("before") < want)
        .select(
            "account",
            lots=pl.min_horizontal("lots", want - pl.col("before")).cast(pl.Int64),
            rank=pl.int_range(1, pl.len() + 1, dtype=pl.UInt32),
            score="score",
        )
        .collect()
    )
    if fills["lots"].sum() < want:
        raise ValueError("insufficient liquidity")
    return fills


def floor_pass(cols: dict[str, np.ndarray]) -> float:
    """One read of every input column (what any matcher must at least do)."""
    return float(sum(c.sum() for c in cols.values()))


# ----- checks and timing ----------------------------------------------------------------------


def same_fills(name: str, got: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> None:
    for key in ("account", "lots", "rank"):
        a, b = np.asarray(got[key]), np.asarray(ref[key])
        assert a.shape == b.shape and np.array_equal(a, b), f"{name}: {key} differs from adl's"
    assert np.array_equal(np.asarray(got["score"]), np.asarray(ref["score"])), f"{name}: score differs from adl's"


def timed_round_robin(fns: dict[str, Callable[[], Any]], runs: int) -> dict[str, float]:
    """Best wall time of each function over ``runs`` rounds, the functions run in turn."""
    best = {k: float("inf") for k in fns}
    for _ in range(runs):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def ms(s: float) -> str:
    return f"{s * 1e3:.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=21, help="rounds (best of N)")
    args = ap.parse_args()
    print(machine_info())
    print(f"load average at start: {load()}")

    df = make_book(args.rows)
    qty, price = event(df)
    cols = {"account": df["account"].to_numpy(), "side": df["side"].to_numpy(), "qty": df["qty"].to_numpy(),
            "entry": df["entry_price"].to_numpy(), "margin": df["margin"].to_numpy()}
    mb = sum(c.nbytes for c in cols.values()) / 1e6

    def run_adl() -> pl.DataFrame:
        return adl.deleverage(df, MARK, side="long", qty=qty, price=price, markets=MARKET)

    # The same call without the wrapper: the binding on the same NumPy views.
    empty = np.empty(0)
    raw_args = ((cols["account"], np.empty(0, np.uint32), cols["side"], cols["qty"], cols["entry"], cols["margin"], empty),
                (["X"], [MARK], [QD], [PD], [0.005], CD), "bitmex", 0, 1, qty, price, 0, None)

    def run_raw() -> Any:
        return _adl.deleverage(*raw_args)

    # Correctness first (also the warm-up).
    a = run_adl()
    ref = {"account": a["account"].to_numpy(), "lots": np.rint(a["qty"].to_numpy() * 10**QD).astype(np.int64),
           "rank": a["rank"].to_numpy(), "score": a["score"].to_numpy()}
    assert ref["lots"].sum() == round(qty * 10**QD)
    raw = run_raw()
    assert np.array_equal(cols["account"][raw["row"]], ref["account"]), "raw binding differs"
    same_fills("numpy", np_deleverage(cols, 1, qty), ref)
    p = pl_deleverage(df, 1, qty)
    same_fills("polars", {k: p[k].to_numpy() for k in ("account", "lots", "rank", "score")}, ref)
    n_short = int((cols["side"] == -1).sum())
    print(f"book: {args.rows:,} rows ({mb:.0f} MB of input columns), {n_short:,} shorts; event: long of {qty:,.4f} "
          f"(1 % of short OI) at ADL price {price} (every short pays) → {len(ref['lots']):,} fills; "
          "checked: adl, NumPy and Polars give the same fills (account, lots, rank, score)")

    best = timed_round_robin(
        {
            "adl.deleverage": run_adl,
            "_adl.deleverage (binding only)": run_raw,
            "NumPy matcher": lambda: np_deleverage(cols, 1, qty),
            "Polars matcher": lambda: pl_deleverage(df, 1, qty),
            "floor: NumPy sum of each column": lambda: floor_pass(cols),
        },
        args.runs,
    )
    print(f"\nbest of {args.runs}, run in turn; load average at end: {load()}\n")
    print("| | best | ÷ adl.deleverage |")
    print("|---|---:|---:|")
    t_adl = best["adl.deleverage"]
    for k, t in best.items():
        print(f"| {k} | {ms(t)} | {t / t_adl:.2f}× |")
    print(f"\nNumPy / adl = {best['NumPy matcher'] / t_adl:.2f}× (target ≥ 5×); "
          f"Polars / adl = {best['Polars matcher'] / t_adl:.2f}× (target ≥ 8×); "
          f"adl / floor = {t_adl / best['floor: NumPy sum of each column']:.2f}×")


if __name__ == "__main__":
    main()
