"""adl on a venue's book (`adl.venue_book`): five symbols at real prices, 1-125x leverage, a
share of cross accounts. The figures the venue-scale issue sets targets for, as ratios in one
run:

  (a) a cascade along a crash of every symbol (10 % in the first 1 % of the steps: gaps of
      about 1 % a step, past the bankruptcy price of the most levered; no insurance fund, so
      every deficit goes to ADL): the venue book (35 % cross accounts)
      against the same positions all isolated, and each pro-rata policy against ``bitmex``;
  (b) an interleaved workload: one symbol's mark moves, then ten liquidations in that symbol,
      repeated, for the symbol with 10 % of the positions (DOGE) and the largest (BTC, 40 %):
      ``set_marks`` p50, ``set_marks`` + the first liquidation p50, the other liquidations p99;
  (c) per-request reads p50 from Python: one position (``Engine.position``), one account
      (``Engine.account``: its positions with their queue places), one account's queue rows
      (rank, lights, notional ahead) and the same from filtering whole-book frames; then
      ``preview(account=...)`` p50 and the preview of a whole market side (the smallest, DOGE
      shorts), each in a child process stopped at the budget (one preview can take minutes);
  (d) engine memory per position (resident set growth over the load, divided by positions).
The stateless ``deleverage`` against NumPy and Polars is in ``benches/vs_polars.py``.

Run with a release build of adl (see benches/vs_polars.py)::

    python benches/venue_book.py [--sizes 300k,1M] [--steps 1000] [--budget 120] [--parts abcd]

A measurement that would take longer than ``--budget`` seconds stops early and is reported
over the runs it finished (its row says so).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

import adl
from vs_polars import fmt_t, load, machine_info

PRO_RATA = ("size_pro_rata", "wealth_pro_rata", "levered_pro_rata", "capped_pro_rata")


def rss() -> int:
    """Resident set size of this process, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def engine(v: adl.VenueBook, policy: str = "bitmex") -> adl.Engine:
    eng = adl.Engine(policy, insurance_fund=1e6, markets=v.markets)  # type: ignore[arg-type]
    eng.load(v.positions, accounts=v.accounts)
    eng.set_marks(v.marks)
    return eng


def cascade(v: adl.VenueBook, path: pl.DataFrame, policy: str) -> float:
    t0 = time.perf_counter()
    adl.simulate(v.positions, path, accounts=v.accounts, markets=v.markets, policy=policy,  # type: ignore[arg-type]
                 insurance_fund=0.0, keep_fills=False)
    return time.perf_counter() - t0


def interleaved(v: adl.VenueBook, symbol: str, rounds: int, budget: float, seed: int) -> dict[str, Any]:
    """``rounds`` times: move ``symbol``'s mark by ±0.1 %, then force-liquidate ten random
    positions of that symbol at the mark (cross ones through their account)."""
    eng = engine(v)
    rng = np.random.default_rng(seed)
    rows = v.positions.filter(pl.col("symbol") == symbol).select("account", "side", "margin_mode")
    pick = rows.sample(min(rows.height, rounds * 10), seed=seed, shuffle=True).rows()
    marks: list[float] = []
    first: list[float] = []          # set_marks + the round's first liquidation
    others: list[float] = []
    done: set[int] = set()
    t_end = time.perf_counter() + budget
    for r in range(rounds):
        if time.perf_counter() > t_end:
            break
        mark = v.marks[symbol] * (1 + 0.001 * rng.choice((-1.0, 1.0)))
        t0 = time.perf_counter()
        eng.set_marks({**v.marks, symbol: mark})
        marks.append(time.perf_counter() - t0)
        for i, (account, side, mode) in enumerate(pick[r * 10:(r + 1) * 10]):
            if account in done:
                continue
            t0 = time.perf_counter()
            try:
                if mode == "cross":
                    eng.liquidate_account(account, force=True)
                    done.add(account)
                else:
                    eng.liquidate(account, symbol=symbol, side=side, force=True)
            except adl.AdlError:
                continue
            dt = time.perf_counter() - t0
            if i == 0:
                first.append(marks[-1] + dt)
            else:
                others.append(dt)
    return {
        "rounds": len(marks),
        "set_marks p50": statistics.median(marks),
        "set_marks + first liquidation p50": statistics.median(first) if first else None,
        "other liquidations p99": float(np.quantile(others, 0.99)) if others else None,
    }


def per_account(v: adl.VenueBook, trials: int, budget: float, seed: int) -> dict[str, Any]:
    """An exchange's position screen for random accounts, one request at a time: a position,
    the account with its positions' queue places, the account's queue rows alone, and the
    same rows from whole-book frames. p50 of a pass over the accounts, the best of three
    passes (a shared machine's other jobs only add time)."""
    eng = engine(v)
    accounts = v.positions["account"].unique().sample(trials, seed=seed).to_list()
    one = {a: (s, d) for a, s, d in v.positions.group_by("account").agg(pl.col("symbol", "side").first()).filter(
        pl.col("account").is_in(accounts)).iter_rows()}

    def queue_rows(a: int) -> list[tuple[int, int, float] | None]:
        return [None if p.queue is None else (p.queue.rank, p.queue.lights, p.queue.notional_ahead)
                for p in eng.account(a).positions]

    def frames(a: int) -> Any:
        return eng.positions().filter(pl.col("account") == a), eng.indicator().filter(pl.col("account") == a)

    eng.indicator()                      # ranks every side: the reads below find them current
    out: dict[str, Any] = {}
    for name, fn in (("one position p50: Engine.position", lambda a: eng.position(a, *one[a])),
                     ("one account p50: Engine.account", eng.account),
                     ("one account's queue rows (rank, lights, notional ahead) p50", queue_rows),
                     ("one account's screen p50: whole-book frames, filtered", frames)):
        best: list[float] = []              # p50 of each pass over the accounts; the best of 3
        t_end = time.perf_counter() + budget
        while len(best) < 3 and (not best or time.perf_counter() < t_end):
            ts: list[float] = []
            for a in accounts:
                if ts and time.perf_counter() > t_end:
                    break
                t0 = time.perf_counter()
                fn(a)
                ts.append(time.perf_counter() - t0)
            best.append(statistics.median(ts))
        out[name] = (fmt_t(min(best)), f"{len(ts)} accounts, best of {len(best)} passes")
    return out


def previews(n: int, trials: int, budget: float, seed: int) -> dict[str, Any]:
    """``preview(account=...)`` for random accounts, then the whole DOGE short side, each in a
    child process (``--preview-of``) that prints one time a line and is stopped at ``budget``
    seconds of previewing (its book's build is not counted)."""
    out: dict[str, Any] = {}
    for what, name in (("account", "preview(account=...) p50"), ("side", "preview of a whole side (DOGE shorts)")):
        with tempfile.TemporaryFile("w+") as f:
            child = subprocess.Popen([sys.executable, __file__, "--preview-of", str(n), what, "--seed", str(seed),
                                      "--trials", str(trials)], stdout=f, text=True)
            started, killed = None, False
            while child.poll() is None:
                time.sleep(0.5)
                f.seek(0)
                if started is None and "ready" in f.read():
                    started = time.perf_counter()
                if started is not None and time.perf_counter() - started > budget:
                    child.kill()
                    killed = True
                    break
            if child.wait() != 0 and not killed:
                raise RuntimeError(f"the {what} preview child failed (exit code {child.returncode})")
            f.seek(0)
            times = [float(line) for line in f.read().split() if line != "ready"]
        if what == "side":
            out[name] = (fmt_t(times[0]), "") if times else (f"> {fmt_t(budget)}", "stopped at the budget")
        else:
            # Stopped at the budget, the slowest accounts are missing: the p50 is then a lower bound.
            cut = " (stopped at the budget: a lower bound)" if killed else ""
            out[name] = ((fmt_t(statistics.median(times)), f"{len(times)} accounts{cut}") if times
                         else (f"> {fmt_t(budget)}", "stopped at the budget: no account finished"))
    return out


def preview_here(n: int, what: str, trials: int, seed: int) -> None:
    v = adl.venue_book(n, seed=seed)
    eng = engine(v)
    accounts = v.positions["account"].unique().sample(trials, seed=seed).to_list()
    eng.account(accounts[0])
    print("ready", flush=True)
    if what == "side":
        t0 = time.perf_counter()
        eng.preview("DOGE", "short")
        print(time.perf_counter() - t0, flush=True)
        return
    for a in accounts:
        t0 = time.perf_counter()
        eng.preview(account=a)
        print(time.perf_counter() - t0, flush=True)


def memory(n: int, seed: int) -> float:
    """Bytes per position the engine holds: measured in a fresh process (this one's allocator
    would reuse memory freed by earlier measurements)."""
    out = subprocess.run([sys.executable, __file__, "--memory-of", str(n), "--seed", str(seed)],
                         check=True, capture_output=True, text=True)
    return float(out.stdout)


def memory_here(n: int, seed: int) -> float:
    v = adl.venue_book(n, seed=seed)
    gc.collect()
    before = rss()
    eng = engine(v)
    gc.collect()
    grown = rss() - before
    assert eng.totals().long_lots > 0
    return grown / v.positions.height


def run(n: int, steps: int, budget: float, policies: tuple[str, ...], seed: int, parts: str) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    v = adl.venue_book(n, seed=seed)
    if "a" in parts:
        rows += cascades(v, n, steps, policies, seed)
    if "b" in parts:
        for symbol in ("DOGE", "BTC"):
            share = (v.positions["symbol"] == symbol).mean()
            r = interleaved(v, symbol, rounds=50, budget=budget, seed=seed)
            for k in ("set_marks p50", "set_marks + first liquidation p50", "other liquidations p99"):
                rows.append((f"{symbol} ({share:.0%} of positions): {k}", fmt_t(r[k]) if r[k] is not None else "–",
                             f"{r['rounds']} rounds"))
    if "c" in parts:
        for k, (t, runs) in {**per_account(v, trials=200, budget=budget, seed=seed),
                             **previews(n, trials=200, budget=budget, seed=seed)}.items():
            rows.append((k, t, runs))
    if "d" in parts:
        rows.append(("engine memory per position (RSS growth over the load)", f"{memory(n, seed):.0f} B", ""))
    return rows


def cascades(v: adl.VenueBook, n: int, steps: int, policies: tuple[str, ...], seed: int) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    iso = adl.venue_book(n, seed=seed, cross_share=0.0)      # the same positions, all isolated
    assert iso.positions.drop("margin", "margin_mode").equals(v.positions.drop("margin", "margin_mode"))
    path = adl.crash_path(start=v.marks, drop=0.1, steps=steps, duration=max(steps // 100, 1), rebound=0.3, seed=seed)
    t_iso = cascade(iso, path, "bitmex")
    t_venue = cascade(v, path, "bitmex")
    rows.append((f"cascade, {steps} steps, bitmex: venue book vs all isolated",
                 f"{fmt_t(t_venue)} vs {fmt_t(t_iso)}", f"{t_venue / t_iso:.1f}×"))
    for policy in policies:
        if policy == "bitmex":
            continue
        t = cascade(v, path, policy)
        rows.append((f"cascade, venue book: {policy} vs bitmex", f"{fmt_t(t)} vs {fmt_t(t_venue)}", f"{t / t_venue:.1f}×"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="300k", help="comma-separated book sizes, e.g. 300k,1M")
    ap.add_argument("--steps", type=int, default=1000, help="steps of the crash path")
    ap.add_argument("--budget", type=float, default=120.0, help="seconds per repeated measurement")
    ap.add_argument("--policies", default="bitmex,size_pro_rata", help="cascade policies, or 'all'")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--parts", default="abcd", help="which measurements: any of a, b, c, d (see above)")
    ap.add_argument("--memory-of", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--preview-of", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--trials", type=int, default=200, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.preview_of:
        preview_here(int(args.preview_of[0]), args.preview_of[1], args.trials, args.seed)
        return
    if args.memory_of:
        print(memory_here(args.memory_of, args.seed))
        return
    sizes = [int(float(s.lower().replace("k", "e3").replace("m", "e6"))) for s in args.sizes.split(",")]
    policies = ("bitmex", *PRO_RATA) if args.policies == "all" else tuple(args.policies.split(","))
    print(machine_info())
    for n in sizes:
        print(f"\n## venue book, {n:,} positions (load average before: {load()})\n")
        print("| measurement | time | ratio / runs |\n|---|---:|---:|")
        for row in run(n, args.steps, args.budget, policies, args.seed, args.parts):
            print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
