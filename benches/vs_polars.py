"""adl against plain Polars on seeded random books (100k / 1M / 10M positions).

Times, per book size:
  (a) ``adl.deleverage`` and ``adl.rank`` against idiomatic Polars implementations of the same
      BitMEX rule, which validate their input like adl does (nulls, NaN/inf, qty <= 0,
      entry <= 0, margin < 0, side not ±1). Both must give the same fills / ranks first.
  (b) ``Engine.liquidate_many`` (per event) against a Polars loop doing per event what a user
      would write without adl (filter the opposite side, score, sort, cum_sum, take the prefix,
      write the new quantities back), and single ``Engine.liquidate`` calls (p50 / p99).

Run with a release build of adl::

    python3 -m venv --system-site-packages /work/benchvenv
    /work/benchvenv/bin/pip install --no-deps --force-reinstall /work/main
    /work/benchvenv/bin/python benches/vs_polars.py [--sizes 100k,1M,10M] [--quick]

Timings: time.perf_counter, best of N runs after a warm-up run (details printed with the table).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

import adl
from adl import _adl
from adl._io import market_specs, markets_for, marks_for, position_arrays
from adl.stateless import CASH_DECIMALS

MARK = 100.0
QD, PD = 4, 2  # qty / price decimals of the market
LOT = 10.0**-QD
MARKET = adl.Market(qty_decimals=QD, price_decimals=PD)
SEED = 0xAD1
N_BANKRUPT = 9_000  # small bankrupt longs planted in every book (engine events)
BATCH = 1_000  # events per liquidate_many call
SINGLE_CALLS = 2_000  # single liquidate calls timed one by one
CHECK_EVENTS = 20  # events compared between the engine and the Polars loop (5 at 10M rows)

TARGETS = {
    "deleverage": ("stateless call ≥10× faster than Polars at 1M", 10.0),
    "engine": ("per event in liquidate_many ≥800× faster than the Polars loop", 800.0),
    "single": ("single liquidate p50 ≤ 100 µs", 100e-6),
}

SIZE_NAMES = {"100k": 100_000, "1M": 1_000_000, "10M": 10_000_000}


# ----- data ---------------------------------------------------------------------------------


def make_book(n: int, seed: int = SEED) -> tuple[pl.DataFrame, np.ndarray]:
    """A random single-market book at mark 100: unique UInt64 accounts, sides ±1, qty on 4
    decimals, entry and margin on 2 decimals, leverage 1–50× at entry (so some positions are
    bankrupt). ``N_BANKRUPT`` rows at random places are small bankrupt longs (entry 105–110,
    margin 1 % of notional). Returns the frame and those rows' indices (in random order)."""
    rng = np.random.default_rng(seed)
    account = rng.permutation(np.arange(1, n + 1, dtype=np.uint64)) * np.uint64(7) + np.uint64(1_000)
    side = rng.choice(np.array([-1, 1], dtype=np.int8), size=n)
    qty = np.maximum(np.round(rng.lognormal(0.0, 1.2, n), 4), LOT)
    entry = np.round(MARK * (1.0 + rng.normal(0.0, 0.05, n)), 2).clip(1.0)
    lev = rng.uniform(1.0, 50.0, n)
    margin = np.round(qty * entry / lev, 2)
    nb = min(N_BANKRUPT, n // 10)
    bk = rng.choice(n, size=nb, replace=False)
    side[bk] = 1
    qty[bk] = np.round(rng.uniform(0.001, 0.1, nb), 4)
    entry[bk] = np.round(rng.uniform(105.0, 110.0, nb), 2)
    margin[bk] = np.round(qty[bk] * entry[bk] * 0.01, 2)
    df = pl.DataFrame(
        {
            "account": pl.Series(account, dtype=pl.UInt64),
            "side": pl.Series(side, dtype=pl.Int8),
            "qty": qty,
            "entry_price": entry,
            "margin": margin,
        }
    )
    return df, bk


# ----- plain Polars -------------------------------------------------------------------------
#
# Same arithmetic as adl: values are put on the market grid (lots, ticks, cash units of 1e-8) and
# the score is computed in floats from those integers, so equal scores tie exactly and break by
# account (computing from the raw floats gives ulp-level differences that reorder exact ties).

CASH_DECIMALS = 8
FACTOR = 10 ** (CASH_DECIMALS - QD - PD)  # cash units per lot·tick
MARK_T = round(MARK * 10**PD)


def pl_validate(df: pl.DataFrame) -> None:
    """The checks adl makes on a positions frame, as one Polars query (one pass)."""
    bad = df.select(
        nulls=pl.sum_horizontal(pl.all().null_count()) > 0,
        side=~pl.col("side").is_in([1, -1]).all(),
        qty=~(pl.col("qty").is_finite() & (pl.col("qty") > 0)).all(),
        entry_price=~(pl.col("entry_price").is_finite() & (pl.col("entry_price") > 0)).all(),
        margin=~(pl.col("margin").is_finite() & (pl.col("margin") >= 0)).all(),
    ).row(0, named=True)
    if any(bad.values()):
        field = next(k for k, v in bad.items() if v)
        raise ValueError(f"invalid positions: {field}")


def _on_grid(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Integer lots, entry ticks and margin cash units (adl rounds to the grid the same way)."""
    return lf.with_columns(
        lots=(pl.col("qty") * 10**QD).round().cast(pl.Int64),
        et=(pl.col("entry_price") * 10**PD).round().cast(pl.Int64),
        mc=(pl.col("margin") * 10**CASH_DECIMALS).round().cast(pl.Int64),
    )


def _score(sigma: pl.Expr | int, mark_t: int) -> tuple[pl.Expr, pl.Expr]:
    """(equity in cash units, BitMEX score): pnl% = σ(P−E)/E, ℓ = qP/e, pnl%·ℓ or pnl%/ℓ."""
    diff = mark_t - pl.col("et")
    e = pl.col("mc") + sigma * pl.col("lots") * diff * FACTOR
    pnl = (sigma * diff).cast(pl.Float64) / pl.col("et").cast(pl.Float64)
    lev = (pl.col("lots") * (mark_t * FACTOR)).cast(pl.Float64) / e.cast(pl.Float64)
    return e, pl.when(pnl > 0).then(pnl * lev).otherwise(pnl / lev)


def _queue_prefix(lf: pl.LazyFrame, sigma: int, mark_t: int, want: int, keep: tuple[str, ...]) -> pl.LazyFrame:
    """Side ``sigma``'s non-bankrupt rows in queue order (score desc, account asc), cut to the
    prefix that covers ``want`` lots, the last fill partial."""
    e, score = _score(sigma, mark_t)
    return (
        lf.filter(pl.col("side") == sigma)
        .filter(e > 0)
        .with_columns(score=score)
        .sort(["score", "account"], descending=[True, False])
        .with_columns(before=pl.col("lots").cum_sum() - pl.col("lots"))
        .filter(pl.col("before") < want)
        .select(
            *keep,
            "account",
            fill=pl.min_horizontal("lots", want - pl.col("before")),
            rank=pl.int_range(1, pl.len() + 1, dtype=pl.UInt32),
            score="score",
        )
    )


def pl_deleverage(df: pl.DataFrame, mark: float, side: int, qty: float) -> pl.DataFrame:
    """Fills ``account, qty, rank, score`` in queue order; raises on missing liquidity."""
    pl_validate(df)
    want = round(qty * 10**QD)
    fills = _queue_prefix(_on_grid(df.lazy()), -side, round(mark * 10**PD), want, ()).collect()
    if fills["fill"].sum() < want:
        raise ValueError(f"insufficient liquidity: {want - fills['fill'].sum()} lots missing")
    return fills.with_columns(qty=pl.col("fill") / 10**QD).drop("fill")


def pl_rank(df: pl.DataFrame, mark: float) -> pl.DataFrame:
    """The rows plus score, rank (1 = first, per side; ties by account), percentile and lights;
    null when not eligible (equity <= 0). One sort by (side, score desc, account); the rank is
    the inverse permutation (faster here than ``.over("side")`` ranks or sort + sort back)."""
    pl_validate(df)
    e, score = _score(pl.col("side").cast(pl.Int64), round(mark * 10**PD))
    order = pl.int_range(pl.len(), dtype=pl.UInt32).sort_by(
        ["side", "score", "account"], descending=[False, True, False], nulls_last=True
    )
    pos = order.arg_sort() + 1  # shorts (-1) first, then longs
    n_short = (pl.col("side") < 0).sum().cast(pl.UInt32)
    return (
        _on_grid(df.lazy())
        .with_columns(score=pl.when(e > 0).then(score))
        .with_columns(
            rank=pl.when(pl.col("score").is_null())
            .then(None)
            .when(pl.col("side") < 0)
            .then(pos)
            .otherwise(pos - n_short),
            n=pl.col("score").count().over("side"),
        )
        .with_columns(
            percentile=pl.col("rank") / pl.col("n"),
            lights=(6 - (5 * pl.col("rank") + pl.col("n") - 1) // pl.col("n")).cast(pl.UInt8),
        )
        .drop("lots", "et", "mc", "n")
        .collect()
    )


class PolarsBook:
    """What a user writes without adl: the book as a frame (on the grid once, at load), and per
    event: find the bankrupt position, re-score and sort the opposite side, take the prefix and
    write the quantities and the remaining margin (released share rounded down, as adl) back."""

    def __init__(self, df: pl.DataFrame, mark: float) -> None:
        self.book = _on_grid(df.lazy()).select("account", "side", "lots", "et", "mc").collect().with_row_index("row")
        self.mark_t = round(mark * 10**PD)

    def liquidate(self, account: int, side: int) -> pl.DataFrame:
        b = self.book
        me = b.filter((pl.col("account") == account) & (pl.col("side") == side) & (pl.col("lots") > 0))
        row, want = me["row"][0], me["lots"][0]
        live = b.lazy().filter(pl.col("lots") > 0)
        fills = _queue_prefix(live, -side, self.mark_t, want, ("row",)).collect()
        if fills["fill"].sum() < want:
            raise ValueError("insufficient liquidity")
        rows, take = fills["row"], fills["fill"]
        held, mc = b["lots"].gather(rows), b["mc"].gather(rows)
        released = (mc.cast(pl.Int128) * take // held).cast(pl.Int64)
        self.book = b.with_columns(
            b["lots"].scatter(rows, held - take).scatter(row, 0),
            b["mc"].scatter(rows, mc - released).scatter(row, 0),
        )
        return fills.with_columns(qty=pl.col("fill") / 10**QD)


# ----- timing -------------------------------------------------------------------------------


def timed(fn: Callable[[], Any], runs: int) -> float:
    """Best (minimum) wall time of ``runs`` calls, after the caller's warm-up. Best-of-N rather
    than the median: the machine may be shared, and interference only ever adds time."""
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def timed_pair(fa: Callable[[], Any], fb: Callable[[], Any], runs: int) -> tuple[float, float]:
    """Best wall times of ``fa`` and ``fb``, run alternately so that both see the same load."""
    ta, tb = [], []
    for _ in range(runs):
        for fn, ts in ((fa, ta), (fb, tb)):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return min(ta), min(tb)


def fmt_t(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.1f} µs"


def load() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def machine_info() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        pass
    return (
        f"CPU: {cpu}; cores: {os.cpu_count()}; Polars thread pool: {pl.thread_pool_size()}\n"
        f"Python {platform.python_version()}, Polars {pl.__version__}, numpy {np.__version__}, "
        f"adl {adl.__version__} ({adl.__file__})"
    )


# ----- benchmarks ---------------------------------------------------------------------------


def check_queue(
    a_acc: pl.Series, a_score: pl.Series, a_qty: pl.Series,
    p_acc: pl.Series, p_score: pl.Series, p_qty: pl.Series,
    what: str, partial_last: bool = True,
) -> int:
    """Asserts that two queues (adl's, Polars') hold the same accounts and quantities in the same
    order, up to the order inside runs of near-equal scores. adl compares scores exactly (as
    fractions of the fixed-point values), so two positions whose scores are equal as fractions
    tie and go by account even when their floats differ by an ulp; a float sort, as in Polars,
    may order them the other way. Returns the number of positions where the accounts differ."""
    sa, sp = a_score.to_numpy(), p_score.to_numpy()
    assert len(sa) == len(sp), f"{what}: {len(sa)} vs {len(sp)} fills"
    assert np.allclose(sa, sp, rtol=1e-12, atol=0), f"{what}: scores differ"
    if len(sa) == 0:
        return 0
    gap = np.abs(np.diff(sa)) > 1e-12 * np.maximum(np.abs(sa[1:]), np.abs(sa[:-1]))
    run = np.concatenate([[0], np.cumsum(gap)])
    aa, pa = a_acc.to_numpy(), p_acc.to_numpy()
    qa, qp = np.round(a_qty.to_numpy() * 10**QD), np.round(p_qty.to_numpy() * 10**QD)
    oa, op = np.lexsort((aa, run)), np.lexsort((pa, run))
    assert np.array_equal(aa[oa], pa[op]), f"{what}: accounts differ"
    body = run[oa] < run[-1] if partial_last else np.ones(len(run), bool)
    assert np.array_equal(qa[oa][body], qp[op][body]), f"{what}: quantities differ"
    assert qa.sum() == qp.sum(), f"{what}: total quantity differs"
    return int((aa != pa).sum())



def bench_stateless(df: pl.DataFrame, n: int, runs: int, rows: list[dict[str, Any]], notes: list[str]) -> None:
    short_oi = df.filter(pl.col("side") == -1)["qty"].sum()
    qty = round(short_oi * 0.01, QD)  # 1 % of the short open interest
    price = 99.5

    # Correctness first (also the warm-up).
    a = adl.deleverage(df, MARK, side="long", qty=qty, price=price, markets=MARKET)
    p = pl_deleverage(df, MARK, 1, qty)
    swaps = check_queue(a["account"], a["score"], a["qty"], p["account"], p["score"], p["qty"], "deleverage")
    assert a["rank"].equals(p["rank"])
    ra = adl.rank(df, MARK, markets=MARKET, lights="count")  # the Polars rule counts rows
    rp = pl_rank(df, MARK)
    assert ra["score"].is_null().equals(rp["score"].is_null()), "rank: eligibility differs"
    sa, sp = ra["score"].fill_null(0).to_numpy(), rp["score"].fill_null(0).to_numpy()
    assert np.allclose(sa, sp, rtol=1e-12, atol=0), "rank: scores differ"  # equal up to float rounding
    rank_swaps = 0
    for sd, name in ((-1, "short"), (1, "long")):  # adl names the sides in its output
        qa = ra.filter((pl.col("side") == name) & pl.col("rank").is_not_null()).sort("rank")
        qp = rp.filter((pl.col("side") == sd) & pl.col("rank").is_not_null()).sort("rank")
        zero = pl.Series(np.zeros(qa.height))
        rank_swaps += check_queue(qa["account"], qa["score"], zero, qp["account"], qp["score"], zero, "rank", False)
    same = ra["rank"].eq_missing(rp["rank"])
    assert ra["lights"].filter(same).equals(rp["lights"].filter(same)), "lights differ"
    del ra, rp
    notes.append(
        f"{n:,}: deleverage {qty:,.4f} (1 % of short OI) → {a.height:,} fills; checked: same fills and ranks "
        f"(near-tie positions ordered differently: {swaps} in fills, {rank_swaps} in rank)"
    )

    ta, tp = timed_pair(
        lambda: adl.deleverage(df, MARK, side="long", qty=qty, price=price, markets=MARKET),
        lambda: pl_deleverage(df, MARK, 1, qty),
        runs,
    )
    rows.append(dict(op="deleverage", n=n, adl=ta, polars=tp, target="deleverage" if n == 1_000_000 else None))
    ta, tp = timed_pair(lambda: adl.rank(df, MARK, markets=MARKET, lights="count"), lambda: pl_rank(df, MARK), runs)
    rows.append(dict(op="rank", n=n, adl=ta, polars=tp, target=None))

    # Breakdown of adl.deleverage: Python-side input conversion / Rust call / output frame.
    # (uses adl internals: skipped with a note if they change)
    try:
        t_in = timed(lambda: position_arrays(df), runs)
        arr = position_arrays(df)
        qd, pd_, rates = market_specs(markets_for(arr.names, MARKET))
        table = (arr.names, marks_for(arr.names, MARK), qd, pd_, rates, CASH_DECIMALS)
        t_rust = timed(lambda: _adl.deleverage(arr.args(), table, "bitmex", 0, 1, qty, price, 0, None), runs)
        t_val = timed(lambda: pl_validate(df), runs)
        t_rank_rust = timed(lambda: _adl.rank(arr.args(), table, "bitmex", None, "count"), runs)
        notes.append(
            f"{n:,}: adl.deleverage breakdown: input conversion {fmt_t(t_in)}, Rust call {fmt_t(t_rust)} "
            f"(rest = output frame); adl.rank Rust call {fmt_t(t_rank_rust)}; Polars validation alone {fmt_t(t_val)}"
        )
    except Exception as exc:  # noqa: BLE001
        notes.append(f"{n:,}: adl.deleverage breakdown unavailable: {exc!r}")


def bench_engine(
    df: pl.DataFrame, bk: np.ndarray, n: int, runs: int, pl_events: int, rows: list[dict[str, Any]], notes: list[str]
) -> None:
    accounts = df["account"].to_numpy()[bk]
    n_check = CHECK_EVENTS if n < 10_000_000 else 5
    eng = adl.Engine(insurance_fund=0.0, maintenance_rate=0.005, qty_decimals=QD, price_decimals=PD)
    t0 = time.perf_counter()
    eng.load(df)
    eng.set_marks(MARK)
    t_load = time.perf_counter() - t0

    # Correctness: the first n_check events, engine vs Polars loop (same fills per event).
    pb = PolarsBook(df, MARK)
    check = accounts[:n_check]
    t0 = time.perf_counter()
    res = eng.liquidate_many(pl.DataFrame({"account": check, "side": np.ones(len(check), dtype=np.int8)}))
    t_first = time.perf_counter() - t0  # includes building the ranking index
    assert res.adl_qty > 0 and res.external_qty == 0 and res.bad_debt == 0
    got = res.fills.filter(pl.col("kind") == "adl")
    ev_swaps = 0
    t0 = time.perf_counter()
    for i, acc in enumerate(check):
        f = pb.liquidate(int(acc), 1)
        g = got.filter(pl.col("event") == res.events[i])
        ev_swaps += check_queue(g["account"], g["score"], g["qty"], f["account"], f["score"], f["qty"], f"event {i}")
    t_check = time.perf_counter() - t0
    # Timed Polars loop: the next pl_events events (after the n_check warm-up ones).
    nxt = accounts[n_check : n_check + pl_events]
    per = []
    for acc in nxt:
        t0 = time.perf_counter()
        pb.liquidate(int(acc), 1)
        per.append(time.perf_counter() - t0)
    tp = min(per)
    tp_med = statistics.median(per)
    del pb

    # Timed engine: `runs` batches of BATCH disjoint events, best batch, per event.
    pos = n_check + pl_events
    per_event = []
    fills = 0
    runs = min(runs, 5)
    for _ in range(runs):
        batch = pl.DataFrame({"account": accounts[pos : pos + BATCH], "side": np.ones(BATCH, dtype=np.int8)})
        pos += BATCH
        t0 = time.perf_counter()
        r = eng.liquidate_many(batch)
        per_event.append((time.perf_counter() - t0) / BATCH)
        t0 = time.perf_counter()
        fills += r.fills.height  # built on first access, outside the timed call
        t_fills = time.perf_counter() - t0
        assert len(r.events) == BATCH and r.external_qty == 0
    ta = min(per_event)
    notes.append(
        f"{n:,}: per event medians (not best): Polars loop {fmt_t(tp_med)}, liquidate_many "
        f"{fmt_t(statistics.median(per_event))} → {tp_med / statistics.median(per_event):,.0f}×"
    )
    rows.append(dict(op="liquidate_many / event", n=n, adl=ta, polars=tp, target="engine"))

    # Single calls from Python.
    lat = []
    raw = []
    for acc in accounts[pos : pos + SINGLE_CALLS]:
        t0 = time.perf_counter()
        eng.liquidate(int(acc), side="long")
        lat.append(time.perf_counter() - t0)
    pos += SINGLE_CALLS
    lat.sort()
    p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
    rows.append(dict(op="liquidate p50", n=n, adl=p50, polars=None, target="single"))
    rows.append(dict(op="liquidate p99", n=n, adl=p99, polars=None, target=None))

    notes.append(
        f"{n:,}: engine load+set_marks {fmt_t(t_load)}; first batch of {n_check} (builds the short index) "
        f"{fmt_t(t_first)}; Polars loop: {n_check} events checked against the engine ({ev_swaps} near-tie "
        f"positions ordered differently) in {fmt_t(t_check)}, {len(nxt)} timed; "
        f"{runs}×{BATCH} engine events → {fills / runs:.1f} fills/batch; res.fills frame for {BATCH} events {fmt_t(t_fills)}"
    )
    # Breakdown of a single call: the raw binding vs the wrapper.
    # (uses adl internals: skipped with a note if they change)
    try:
        core = eng._core
        left = accounts[pos : pos + SINGLE_CALLS // 2]
        for acc in left:
            t0 = time.perf_counter()
            core.liquidate(int(acc), "default", 1, None, False, False)
            raw.append(time.perf_counter() - t0)
        raw.sort()
        notes.append(
            f"{n:,}: single liquidate breakdown: raw _core.liquidate p50 {fmt_t(raw[len(raw) // 2])} "
            f"p99 {fmt_t(raw[int(len(raw) * 0.99)])} vs Python wrapper p50 {fmt_t(p50)} (wrapper overhead "
            f"≈ {fmt_t(p50 - raw[len(raw) // 2])})"
        )
    except Exception as exc:  # noqa: BLE001
        notes.append(f"{n:,}: single liquidate breakdown unavailable: {exc!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100k,1M,10M", help="comma-separated: 100k, 1M, 10M or integers")
    ap.add_argument("--quick", action="store_true", help="only 100k (smoke test)")
    args = ap.parse_args()
    sizes = [100_000] if args.quick else [SIZE_NAMES.get(s.strip(), None) or int(s) for s in args.sizes.split(",")]

    print(machine_info())
    print(f"Load average at start: {load()}")
    print(
        "Timing: time.perf_counter, best of N (minimum; the machine may be shared). Stateless rows: best "
        "of N = 15 / 9 / 3 runs (<1M / <10M / 10M rows), adl and Polars alternating, after a warm-up; "
        "liquidate_many: best of min(N, 5) "
        "batches of 1,000 events, divided by 1,000; Polars loop: best single event of 20 / 20 / 5 timed "
        f"events after {CHECK_EVENTS} / {CHECK_EVENTS} / 5 checked (warm-up) events; single liquidate = "
        f"p50/p99 of {SINGLE_CALLS:,} calls. Book: seeded numpy, one market, mark {MARK}, "
        f"qty 4 dp, prices/margin 2 dp, {N_BANKRUPT:,} small bankrupt longs, fund 0 (all ADL).\n"
    )
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    t_start = time.perf_counter()
    for n in sizes:
        t0 = time.perf_counter()
        df, bk = make_book(n)
        runs = 15 if n < 1_000_000 else 9 if n < 10_000_000 else 3
        pl_events = 5 if n >= 10_000_000 else 20
        bench_stateless(df, n, runs, rows, notes)
        bench_engine(df, bk, n, runs, pl_events, rows, notes)
        del df
        print(f"[{n:,} rows done in {time.perf_counter() - t0:.1f} s]", file=sys.stderr, flush=True)

    print("| operation | rows | adl | Polars | Polars/adl | target |")
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        ratio = "" if r["polars"] is None else f"{r['polars'] / r['adl']:,.1f}×"
        pol = "—" if r["polars"] is None else fmt_t(r["polars"])
        tgt = ""
        if r["target"]:
            text, goal = TARGETS[r["target"]]
            ok = r["adl"] <= goal if r["target"] == "single" else r["polars"] / r["adl"] >= goal
            tgt = f"{text}: {'MET' if ok else 'MISSED'}"
        print(f"| {r['op']} | {r['n']:,} | {fmt_t(r['adl'])} | {pol} | {ratio} | {tgt} |")
    print("\nNotes:")
    for s in notes:
        print(f"- {s}")
    print(f"\nTotal runtime {time.perf_counter() - t_start:.0f} s; load average at end: {load()}")


if __name__ == "__main__":
    main()
