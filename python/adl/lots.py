"""Allocating one ADL round's budget over accounts (docs/model.md §4, §8; docs/severity.md).

A book of one round lists, per account, ``lots`` (whole contracts it can give up, an integer
q_i >= 0) and ``lot_value`` (cash units seized per lot, an integer v_i >= 0: with ADL at the
bankruptcy price every lot of a market costs its holder the same |P - P_bk|). Its capacity is
u_i = q_i·v_i. An allocation seizes x_i with 0 <= x_i <= u_i; its burden is x_i/u_i and the
round's worst burden is m = max_i x_i/u_i (the fairness term of §8).

- :func:`queue` and :func:`pro_rata` are the continuous wealth-space allocators of
  :func:`adl.allocate` (they may split a lot); Σx = min(B, U).
- :func:`mirror_descent`: one projected (Euclidean mirror) step on the haircut vector,
  h = Proj(h0 - η·g) onto {h in [0, 1]^n : Σ u_i·h_i = min(B, U)}; continuous.
- :func:`contract_pro_rata`: whole lots, each account closes floor(B·q_i/U) lots, then one more
  by largest remainder while Σx <= B. Never exceeds the budget.
- :func:`min_max_lots`: the exact lot-feasible min-max integer program: whole lots, Σx >= B
  (it covers the budget, as the paper's ILP does), minimal worst burden max_i k_i/q_i. Decided
  by exact rational comparison over the candidate levels k/q_i, never by a float bisection.

Budgets and values of the lot allocators are exact integers (cash units: cents if you like).
"""

from __future__ import annotations

import random
from fractions import Fraction
from typing import Any

import numpy as np
import polars as pl

from adl._io import Frame, cast_lossless, collect, is_text
from adl.errors import InvalidInputError, SchemaError

Array = np.ndarray[Any, np.dtype[np.float64]]


def _book(book: Frame) -> pl.DataFrame:
    df = collect(book, "book")
    for name in ("account", "lots", "lot_value"):
        if name not in df.columns:
            raise SchemaError(f"book: missing column {name!r}", name, None)
    out = df.with_columns(
        # Integer ids, or string ids kept as strings (ties: the lower one in sorted order).
        account=df["account"].cast(pl.String) if is_text(df["account"].dtype) else cast_lossless(
            df["account"], pl.UInt64(), "account"),
        lots=cast_lossless(df["lots"], pl.Int64(), "lots"),
        lot_value=cast_lossless(df["lot_value"], pl.Int64(), "lot_value"),
    )
    for name in ("lots", "lot_value"):
        bad = out[name] < 0
        if bad.any():
            row = int(bad.arg_max() or 0)
            raise InvalidInputError(f"book: {name}[row {row}] = {out[name][row]} must be >= 0", name, row)
    return out.with_columns(capacity=pl.col("lots") * pl.col("lot_value"))


def _budget(budget: int | float, integer: bool) -> None:
    ok = isinstance(budget, int) if integer else isinstance(budget, (int, float)) and np.isfinite(budget)
    if not ok or budget < 0:
        kind = "an integer amount of cash units" if integer else "a finite amount"
        raise InvalidInputError(f"budget: {budget!r} must be {kind} >= 0", "budget", None)


def _result(df: pl.DataFrame, seized: pl.Series, closed: list[int] | None = None) -> pl.DataFrame:
    out = df.with_columns(seized=seized)
    if closed is not None:
        out = out.with_columns(closed=pl.Series(closed, dtype=pl.Int64))
    cap = pl.col("capacity").cast(pl.Float64)
    return out.with_columns(burden=pl.when(cap > 0).then(pl.col("seized").cast(pl.Float64) / cap).otherwise(0.0))


def _wealth(df: pl.DataFrame, budget: float, policy: str) -> pl.DataFrame:
    from adl.wealth import allocate

    accounts = df.select("account", cash=pl.lit(0.0), pnl=pl.col("capacity").cast(pl.Float64))
    if "score" in df.columns:
        accounts = accounts.with_columns(score=df["score"])
    seized = allocate(accounts, policy=policy, budget=float(budget))["seized"]  # type: ignore[arg-type]
    return _result(df, seized)


def queue(book: Frame, budget: float) -> pl.DataFrame:
    """Whole capacities in descending ``score`` (default: capacity), the last one partial:
    production ADL, through :func:`adl.allocate`. Adds ``capacity``, ``seized``, ``burden``.

    >>> import adl.lots, polars as pl
    >>> book = pl.DataFrame({"account": [1, 2], "lots": [4, 2], "lot_value": [5, 5]})  # u = 20, 10
    >>> adl.lots.queue(book, 25)["seized"].to_list()
    [20.0, 5.0]
    """
    _budget(budget, integer=False)
    return _wealth(_book(book), budget, "queue")


def pro_rata(book: Frame, budget: float) -> pl.DataFrame:
    """Continuous pro-rata: every account gives the same share min(1, B/U) of its capacity
    (:func:`adl.allocate`, policy ``pro_rata``); the worst burden B/U is the least possible.

    >>> import adl.lots, polars as pl
    >>> book = pl.DataFrame({"account": [1, 2], "lots": [4, 2], "lot_value": [5, 5]})
    >>> adl.lots.pro_rata(book, 15)["burden"].to_list()    # 15 / 30
    [0.5, 0.5]
    """
    _budget(budget, integer=False)
    return _wealth(_book(book), budget, "pro_rata")


def _project(y: Array, u: Array, target: float) -> Array:
    """Euclidean projection of y onto {h in [0, 1]^n : Σ u_i h_i = target}, 0 <= target <= Σ u.
    h_i(λ) = clip(y_i - λ·u_i, 0, 1) is piecewise linear in λ; Σ u_i h_i(λ) decreases, so sort
    its breakpoints and solve the linear piece that holds the target (no bisection)."""
    live = u > 0
    h = np.clip(y, 0.0, 1.0)
    h[~live] = 0.0
    if not live.any():
        return h
    yl, ul = y[live], u[live]
    knots = np.unique(np.concatenate(((yl - 1.0) / ul, yl / ul)))

    def mass(lam: float) -> float:
        return float(ul @ np.clip(yl - lam * ul, 0.0, 1.0))

    values = np.array([mass(k) for k in knots])  # non-increasing in λ
    # The first knot whose mass is <= target; the root lies on the segment before it.
    j = int(np.searchsorted(-values, -target, side="left"))
    if j == 0:
        lam = float(knots[0])
    else:
        lo, hi = float(knots[j - 1]), float(knots[j])
        # On (lo, hi) the free accounts (0 < h < 1) give a slope -Σ u_i²; solve exactly.
        mid = (lo + hi) / 2
        free = (yl - mid * ul > 0) & (yl - mid * ul < 1)
        slope = float((ul[free] ** 2).sum())
        lam = lo + (values[j - 1] - target) / slope if slope > 0 else hi
    h[live] = np.clip(yl - lam * ul, 0.0, 1.0)
    return h


def mirror_descent(book: Frame, budget: float, *, step: float = 0.15) -> pl.DataFrame:
    """One projected step of vector mirror descent (Euclidean mirror map) on the haircut vector:
    h = Proj(h0 - step·g) onto {h in [0, 1]^n : Σ u_i·h_i = min(B, U)}. Optional columns
    ``start`` (h0, default 0: the previous round's haircuts when run across rounds) and
    ``gradient`` (g, default 0). From h0 = g = 0 the step gives h_i = min(1, μ·u_i): burdens
    grow with capacity (the paper's benchmark, which starts every wave from zero).

    >>> import adl.lots, polars as pl
    >>> book = pl.DataFrame({"account": [1, 2], "lots": [1, 3], "lot_value": [10, 10]})  # u = 10, 30
    >>> adl.lots.mirror_descent(book, 20)["seized"].round(9).to_list()   # h = μ·u, 100μ + 900μ = 20
    [2.0, 18.0]
    """
    _budget(budget, integer=False)
    df = _book(book)
    u = df["capacity"].cast(pl.Float64).to_numpy()
    h0 = df["start"].cast(pl.Float64).to_numpy() if "start" in df.columns else np.zeros_like(u)
    g = df["gradient"].cast(pl.Float64).to_numpy() if "gradient" in df.columns else np.zeros_like(u)
    h = _project(h0 - step * g, u, min(float(budget), float(u.sum())))
    return _result(df, pl.Series(h * u))


def contract_pro_rata(book: Frame, budget: int) -> pl.DataFrame:
    """Integer contract pro-rata: each account closes floor(B·q_i/U) whole lots (the same share
    of its contracts), then one more lot by largest remainder (ties: lower account) while
    Σx <= B. Adds ``closed`` (lots) and ``seized`` = closed·lot_value (exact integers).

    >>> import adl.lots, polars as pl
    >>> book = pl.DataFrame({"account": [1, 2, 3], "lots": [3, 3, 4], "lot_value": [10, 10, 10]})
    >>> adl.lots.contract_pro_rata(book, 50)["closed"].to_list()   # 1.5, 1.5, 2 -> 1, 1, 2 (+1 to account 1)
    [2, 1, 2]
    """
    _budget(budget, integer=True)
    df = _book(book)
    q, v = df["lots"].to_list(), df["lot_value"].to_list()
    acct = df["account"].to_list()
    cap = sum(qi * vi for qi, vi in zip(q, v))
    if budget >= cap:
        closed = list(q)
    else:
        closed = [budget * qi // cap for qi in q]
        left = budget - sum(k * vi for k, vi in zip(closed, v))
        # Remainders (B·q_i mod U)/U share the denominator U: compare the integers.
        for i in sorted(range(len(q)), key=lambda i: (-(budget * q[i] % cap), acct[i])):
            if closed[i] < q[i] and 0 < v[i] <= left:
                closed[i] += 1
                left -= v[i]
    return _result(df, pl.Series([k * vi for k, vi in zip(closed, v)], dtype=pl.Int64), closed)


def min_max_level(q: list[int], v: list[int], budget: int) -> Fraction:
    """The least worst burden m* = min max_i k_i/q_i over whole lots 0 <= k_i <= q_i with
    Σ k_i·v_i >= budget (1 if the budget exceeds the capacity, 0 if it is 0).

    Taken(m) = Σ floor(m·q_i)·v_i is a non-decreasing step function that jumps only at the
    candidate levels k/q_i, so m* is the least candidate with Taken >= budget. Randomised
    selection over the candidates in (lo, hi] (a seeded pivot, expected O(log Σq) rounds of
    O(n) exact integer arithmetic).

    >>> from adl.lots import min_max_level
    >>> min_max_level([3, 2], [1, 1], 3)    # 2 of 3 and 1 of 2 lots, or 1 and 2: m* = 2/3
    Fraction(2, 3)
    """
    rng = random.Random(0)
    if budget <= 0:
        return Fraction(0)
    if budget >= sum(qi * vi for qi, vi in zip(q, v)):
        return Fraction(1)
    # Levels are k/q_i with k <= q_i, so every product below is at most max(q)²·max(v) (and a
    # sum of them at most Σ q_i·v_i): exact in int64 when those fit, else Python integers.
    top = max(q, default=0)
    exact64 = top * top * max(v, default=0) < 2**62 and sum(qi * vi for qi, vi in zip(q, v)) * top < 2**62
    qa, va = np.asarray(q, dtype=np.int64 if exact64 else object), np.asarray(v, dtype=np.int64 if exact64 else object)
    lo, hi = Fraction(0), Fraction(1)  # Taken(lo) < budget <= Taken(hi)
    while True:
        # Candidates k/q_i in (lo, hi]: k from floor(lo·q_i)+1 to floor(hi·q_i).
        first = lo.numerator * qa // lo.denominator
        counts = np.where(qa > 0, hi.numerator * qa // hi.denominator - first, 0)
        total = int(counts.sum())
        if total <= 1:
            return hi
        pick = rng.randrange(total)
        i = int(np.searchsorted(np.cumsum(counts), pick, side="right"))
        pick -= int(counts[:i].sum())
        pivot = Fraction(int(first[i]) + 1 + pick, q[i])
        if pivot == hi:
            # Several accounts may share the level hi: step to the largest candidate below it.
            below = [Fraction(-(-hi.numerator * qi // hi.denominator) - 1, qi) for qi in q if qi > 0]
            inside = [c for c in below if c > lo]
            if not inside:
                return hi
            pivot = max(inside)
        if int((pivot.numerator * qa // pivot.denominator * va).sum()) >= budget:
            hi = pivot
        else:
            lo = pivot


def min_max_lots(book: Frame, budget: int) -> pl.DataFrame:
    """The exact lot-feasible min-max program: whole lots, Σx >= B, least worst burden m*
    (:func:`min_max_level`). Every account closes floor(m*·q_i) lots except those whose level
    m*·q_i is a whole number: they close one lot less, then get it back one at a time until
    the budget is covered, the lot that covers the rest with the smallest value first, else
    the largest (ties: lower account); so the overshoot is below one lot. Adds ``closed`` and
    ``seized`` (exact integers).

    >>> import adl.lots, polars as pl
    >>> book = pl.DataFrame({"account": [1, 2], "lots": [3, 2], "lot_value": [1, 1]})
    >>> adl.lots.min_max_lots(book, 3)["closed"].to_list()    # m* = 2/3: 2 and 1 lots
    [2, 1]
    """
    _budget(budget, integer=True)
    df = _book(book)
    q, v, acct = df["lots"].to_list(), df["lot_value"].to_list(), df["account"].to_list()
    m = min_max_level(q, v, budget)
    closed = [m.numerator * qi // m.denominator for qi in q]
    if 0 < budget < sum(qi * vi for qi, vi in zip(q, v)):
        edge = [i for i, qi in enumerate(q) if qi > 0 and (m.numerator * qi) % m.denominator == 0 and v[i] > 0]
        for i in edge:
            closed[i] -= 1
        short = budget - sum(k * vi for k, vi in zip(closed, v))
        while short > 0:
            covering = [i for i in edge if v[i] >= short]
            i = min(covering, key=lambda i: (v[i], acct[i])) if covering else min(edge, key=lambda i: (-v[i], acct[i]))
            edge.remove(i)
            closed[i] += 1
            short -= v[i]
    return _result(df, pl.Series([k * vi for k, vi in zip(closed, v)], dtype=pl.Int64), closed)


__all__ = ["contract_pro_rata", "min_max_level", "min_max_lots", "mirror_descent", "pro_rata", "queue"]
