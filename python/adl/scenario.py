"""Scenarios for :func:`adl.simulate`: a seeded synthetic book and crash paths (files are
read by :mod:`adl.files`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from adl._args import I64, U64, checked, integer, number, price_or_mapping, symbols as symbol_list
from adl.errors import InvalidInputError


@checked(n=integer(0, 100_000_000), symbols=symbol_list(), mark=number(above=0.0), seed=integer(0, U64),
         size_sigma=number(0.0, 10.0), median_notional=number(above=0.0), high_leverage_share=number(0.0, 1.0),
         entry_sigma=number(0.0, 10.0), hedged_share=number(0.0, 1.0))
def synthetic_book(
    n: int,
    *,
    symbols: Sequence[str] = ("BTC-PERP",),
    mark: float = 100.0,
    seed: int = 0,
    size_sigma: float = 1.0,
    median_notional: float = 2_000.0,
    leverage: tuple[float, float] = (2.0, 50.0),
    high_leverage_share: float = 0.2,
    entry_sigma: float = 0.01,
    hedged_share: float = 0.05,
) -> pl.DataFrame:
    """``n`` isolated positions, half long and half short per symbol:

    - notional lognormal around ``median_notional`` (σ = ``size_sigma``), on a 0.0001 lot;
    - leverage: a mix, ``high_leverage_share`` of them uniform in the top fifth of
      ``leverage``, the rest log-uniform over it; margin = notional at entry / leverage;
    - entry lognormal around ``mark`` (σ = ``entry_sigma``), on a 0.0001 tick;
    - ``hedged_share`` of the accounts hold a long and a short in the same symbol.

    >>> import adl
    >>> book = adl.synthetic_book(1_000, seed=1)
    >>> book.height, book["side"].value_counts().height, book["margin"].min() > 0
    (1000, 2, True)
    """
    lev_ok = isinstance(leverage, (tuple, list)) and len(leverage) == 2 and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) and x >= 1 for x in leverage)
    if not lev_ok or leverage[0] > leverage[1]:
        raise InvalidInputError(f"leverage: {leverage!r} is not a (low, high) pair with 1 <= low <= high", "leverage", None)
    rng = np.random.default_rng(seed)
    sym = np.array(symbols)[rng.integers(0, len(symbols), n)]
    side = np.where(np.arange(n) % 2 == 0, "long", "short")
    entry = np.round(mark * np.exp(entry_sigma * rng.standard_normal(n)), 4)
    notional = median_notional * np.exp(size_sigma * rng.standard_normal(n))
    qty = np.maximum(np.round(notional / entry, 4), 0.0001)
    lo, hi = leverage
    high = rng.random(n) < high_leverage_share
    lev = np.where(high, rng.uniform(hi - (hi - lo) / 5, hi, n), np.exp(rng.uniform(np.log(lo), np.log(hi), n)))
    margin = np.round(qty * entry / lev, 8)
    # Accounts: one per position, except hedged pairs (a long and the next short share one).
    account = np.arange(1, n + 1, dtype=np.uint64)
    pair = (rng.random(n) < hedged_share) & (side == "short")
    account[pair] = account[np.flatnonzero(pair) - 1]
    sym[pair] = sym[np.flatnonzero(pair) - 1]
    return pl.DataFrame({
        "account": account, "symbol": sym, "side": side, "qty": qty, "entry_price": entry, "margin": margin,
    })


@checked(symbols=symbol_list(), start=price_or_mapping(), drop=number(0.0, 1.0, below=1.0), duration=integer(0, I64),
         rebound=number(0.0, 1.0), steps=integer(1, 100_000_000), dt=integer(1, I64), noise=number(0.0, 1.0),
         seed=integer(0, U64))
def crash_path(
    *,
    symbols: Sequence[str] = ("BTC-PERP",),
    start: float | Mapping[str, float] = 100.0,
    drop: float = 0.15,
    duration: int = 600,
    rebound: float = 0.5,
    steps: int = 1_000,
    dt: int = 1_000,
    noise: float = 0.0005,
    seed: int = 0,
) -> pl.DataFrame:
    """A price path (``ts, symbol, mark``) of ``steps`` steps ``dt`` apart (ms by default):
    a fall of ``drop`` (0.15 = 15 %) over the first ``duration`` steps (faster at first), then
    a rebound of ``rebound`` of the fall over the rest, with multiplicative noise. Symbols
    share the path, each with its own noise. ``start``: the first mark of every symbol, or
    one per symbol (``{"BTC": 60_000, "DOGE": 0.15}``; the symbols default to its keys).

    Examples
    --------
    >>> import adl
    >>> p = adl.crash_path(drop=0.2, steps=100, duration=50, rebound=0.0, noise=0.0)
    >>> round(p["mark"][0], 4), round(p["mark"].min(), 4)
    (100.0, 80.0)
    >>> venue = adl.crash_path(start={"BTC": 60_000.0, "DOGE": 0.15}, drop=0.2, steps=10, duration=5, noise=0.0)
    >>> venue.filter(venue["ts"] == 0)["mark"].to_list()
    [60000.0, 0.15]
    """
    if isinstance(start, Mapping):
        if tuple(symbols) == ("BTC-PERP",):
            symbols = tuple(start)
        missing = [s for s in symbols if s not in start]
        if missing:
            raise InvalidInputError(f"start: no first mark for symbol(s) {missing}", "start", None)
        starts = {s: float(start[s]) for s in symbols}
    else:
        starts = {s: float(start) for s in symbols}
    bad = [s for s, p in starts.items() if not (np.isfinite(p) and p > 0)]
    if bad:
        raise InvalidInputError(f"start: the first mark of {bad[0]!r} must be a finite price > 0", "start", None)
    if not 0.0 <= drop < 1.0:
        raise InvalidInputError(f"drop: {drop} would take prices to or below 0; a fall is in [0, 1)", "drop", None)
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    fall = np.minimum(t / max(duration, 1), 1.0)
    shape = 1 - (1 - fall) ** 2                      # fast at first, then flattening
    after = np.clip((t - duration) / max(steps - duration - 1, 1), 0, 1)
    level = 1 - drop * shape + drop * rebound * after
    frames = []
    for s in symbols:
        shock = np.exp(noise * rng.standard_normal(steps))
        shock[0] = 1.0
        frames.append(pl.DataFrame({"ts": (t * dt).astype(np.int64), "symbol": s, "mark": np.round(starts[s] * level * shock, 4)}))
    return pl.concat(frames).sort("ts", "symbol")
