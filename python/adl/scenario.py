"""Scenarios for :func:`adl.simulate`: a seeded synthetic book and crash paths (files are
read by :mod:`adl.files`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from adl._args import I64, U64, checked, integer, number, price_or_mapping, symbols as symbol_list, timestamp
from adl._io import MARGIN_MODE, SIDE, Market, ts_series, ts_value
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
        "account": account, "symbol": sym, "side": pl.Series(side, dtype=SIDE), "qty": qty, "entry_price": entry,
        "margin": margin,
    })


class VenueSymbol(NamedTuple):
    """A listed market of :func:`venue_book`: its mark, its grid, and how often an account
    picks it (``weight``; the listing's weights need not sum to 1)."""

    mark: float
    qty_decimals: int
    price_decimals: int
    weight: float


VENUE_SYMBOLS: dict[str, VenueSymbol] = {
    "BTC": VenueSymbol(60_000.0, 3, 1, 0.570),
    "ETH": VenueSymbol(3_000.0, 3, 2, 0.226),
    "SOL": VenueSymbol(150.0, 2, 3, 0.097),
    "DOGE": VenueSymbol(0.15, 0, 5, 0.0535),
    "XRP": VenueSymbol(0.5, 0, 4, 0.0535),
}
"""The default listing: real price levels, each on a grid a venue would use. The weights are
calibrated so that BTC holds 40 % of the positions, ETH 25 %, SOL 15 %, DOGE and XRP 10 %
each (an account trading k markets draws k distinct ones, which flattens the weights)."""

# The leverage settings traders pick (a venue's slider stops) and how often, in percent.
LEVERAGE_SETTINGS = np.array([1, 2, 3, 5, 10, 20, 25, 50, 75, 100, 125], dtype=np.float64)
LEVERAGE_WEIGHTS = np.array([4, 7, 6, 14, 24, 18, 8, 10, 4, 3, 2], dtype=np.float64)
# How many markets an account trades: 1 for most, up to every listed one (skewed).
POSITIONS_PER_ACCOUNT = np.array([55, 22, 12, 7, 4], dtype=np.float64)


class VenueBook(NamedTuple):
    """A venue's book for :class:`adl.Engine` / :func:`adl.simulate`: ``positions`` (with
    ``margin_mode``), the cross accounts' wallets (``accounts``: ``account, cash``), the
    ``markets`` (grids) and the ``marks`` the book was drawn at."""

    positions: pl.DataFrame
    accounts: pl.DataFrame
    markets: dict[str, Market]
    marks: dict[str, float]


@checked(n=integer(1, 100_000_000), cross_share=number(0.0, 1.0), seed=integer(0, U64),
         median_notional=number(above=0.0), size_sigma=number(0.0, 10.0), entry_sigma=number(0.0, 1.0),
         maintenance_rate=number(0.0, 0.5))
def venue_book(
    n: int,
    *,
    cross_share: float = 0.35,
    seed: int = 0,
    median_notional: float = 2_000.0,
    size_sigma: float = 1.2,
    entry_sigma: float = 0.02,
    maintenance_rate: float = 0.005,
    symbols: Mapping[str, VenueSymbol] | None = None,
) -> VenueBook:
    """About ``n`` positions as a real venue holds them (issue: venue-scale books):

    - several symbols at real price levels (:data:`VENUE_SYMBOLS`: BTC 60,000 … DOGE 0.15),
      each on its own grid (by default BTC holds 40 % of the positions, DOGE 10 %), long or
      short with equal odds;
    - accounts trading 1 to 5 markets (skewed: 55 % one, 4 % five), one position per market;
    - a ``cross_share`` of the accounts in cross margin, with a wallet of 1.2–3× their
      positions' initial margin; the others isolated, margin = notional / leverage;
    - leverage from the settings traders pick, 1× to 125× (:data:`LEVERAGE_SETTINGS`);
    - notionals lognormal around ``median_notional`` (σ = ``size_sigma``), at least one lot;
    - entries lognormal around the mark (σ = ``entry_sigma``), but never so far against the
      position that it starts within 30 % of its distance to maintenance (a 125× position
      at ``maintenance_rate`` 0.5 % sits within 0.2 % of the mark): nobody is liquidatable
      at the marks the book is drawn at.

    Cash is in quote units to 6 decimals; use an engine with ``cash_decimals >= 6`` and
    ``maintenance_rate`` as here, and pass ``markets`` (the grids).

    >>> import adl
    >>> v = adl.venue_book(2_000, seed=1)
    >>> eng = adl.Engine(insurance_fund=0.0, markets=v.markets)
    >>> eng.load(v.positions, accounts=v.accounts)
    >>> eng.set_marks(v.marks)
    >>> eng.liquidatable().height, sorted(v.marks)
    (0, ['BTC', 'DOGE', 'ETH', 'SOL', 'XRP'])
    """
    listing = dict(symbols if symbols is not None else VENUE_SYMBOLS)
    if not listing or any(not (np.isfinite(v.mark) and v.mark > 0 and v.weight > 0) for v in listing.values()):
        raise InvalidInputError("symbols: each needs a mark > 0 and a weight > 0", "symbols", None)
    rng = np.random.default_rng(seed)
    names = list(listing)
    k_max = min(len(names), len(POSITIONS_PER_ACCOUNT))
    per_account = POSITIONS_PER_ACCOUNT[:k_max] / POSITIONS_PER_ACCOUNT[:k_max].sum()
    # Accounts until n positions are held; the last account may hold fewer than it drew.
    mean = float(per_account @ np.arange(1, k_max + 1))
    counts = rng.choice(np.arange(1, k_max + 1), size=int(n / mean * 1.1) + k_max, p=per_account)
    while counts.sum() < n:   # rarely short: more accounts (each holds at least one position)
        more = rng.choice(np.arange(1, k_max + 1), size=n - int(counts.sum()), p=per_account)
        counts = np.concatenate([counts, more])
    counts = counts[: int(np.searchsorted(np.cumsum(counts), n)) + 1]
    counts[-1] -= int(counts.sum()) - n
    accounts = len(counts)
    # Each account's markets: weighted sampling without replacement (Gumbel top-k).
    weight = np.array([listing[s].weight for s in names])
    keys = np.log(weight / weight.sum()) + rng.gumbel(size=(accounts, len(names)))
    order = np.argsort(-keys, axis=1)
    owner = np.repeat(np.arange(accounts), counts)
    nth = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    sym_idx = order[owner, nth]
    cross_acc = rng.random(accounts) < cross_share
    cross = cross_acc[owner]
    # One leverage setting per account (cross accounts use it for their whole wallet).
    lev = rng.choice(LEVERAGE_SETTINGS, size=accounts, p=LEVERAGE_WEIGHTS / LEVERAGE_WEIGHTS.sum())[owner]
    long = rng.random(n) < 0.5
    mark = np.array([listing[s].mark for s in names])[sym_idx]
    qd = np.array([listing[s].qty_decimals for s in names])[sym_idx]
    pd = np.array([listing[s].price_decimals for s in names])[sym_idx]
    lot, tick = 10.0 ** -qd, 10.0 ** -pd
    notional = median_notional * np.exp(size_sigma * rng.standard_normal(n))
    qty = np.maximum(np.round(notional / mark / lot), 1) * lot
    # Entry drift: free in the position's favour, capped against it at 70 % of the way from
    # initial margin (1/lev) to maintenance.
    drift = entry_sigma * rng.standard_normal(n)
    room = 0.7 * np.maximum(1.0 / lev - maintenance_rate, 0.0)
    sigma = np.where(long, 1.0, -1.0)
    against = sigma * drift                # > 0 when the entry is worse than the mark
    drift = np.where(against > room, sigma * room, drift)
    entry = np.maximum(np.round(mark * np.exp(drift) / tick), 1) * tick
    initial = qty * entry / lev
    margin = np.where(cross, 0.0, np.ceil(initial * 1e6) / 1e6)
    positions = pl.DataFrame({
        "account": (owner + 1).astype(np.uint64), "symbol": np.array(names)[sym_idx],
        "side": pl.Series(np.where(long, "long", "short"), dtype=SIDE), "qty": qty, "entry_price": entry,
        "margin": margin, "margin_mode": pl.Series(np.where(cross, "cross", "isolated"), dtype=MARGIN_MODE),
    })
    # Cross wallets: 1.2–3× the account's initial margin, plus what its entries lost at the mark.
    loss = np.maximum(sigma * qty * (entry - mark), 0.0)
    need = np.bincount(owner, weights=np.where(cross, initial + loss, 0.0), minlength=accounts)
    ids = np.flatnonzero(cross_acc)
    wallet = np.ceil(need[ids] * rng.uniform(1.2, 3.0, ids.size) * 1e6) / 1e6
    wallets = pl.DataFrame({"account": (ids + 1).astype(np.uint64), "cash": wallet})
    markets = {s: Market(listing[s].qty_decimals, listing[s].price_decimals) for s in names}
    return VenueBook(positions, wallets, markets, {s: listing[s].mark for s in names})


@checked(symbols=symbol_list(), start=price_or_mapping(), drop=number(0.0, 1.0, below=1.0), duration=integer(0, I64),
         rebound=number(0.0, 1.0), steps=integer(1, 100_000_000), dt=integer(1, I64), noise=number(0.0, 1.0),
         seed=integer(0, U64), t0=timestamp())
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
    t0: int | Any = 0,
) -> pl.DataFrame:
    """A price path (``ts, symbol, mark``) of ``steps`` steps ``dt`` apart (ms by default)
    from ``t0`` (an integer, or a ``datetime``: then ``ts`` is ``Datetime("ms")`` in its zone
    and ``dt`` is in ms):
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
    >>> import datetime as dt
    >>> adl.crash_path(steps=2, t0=dt.datetime(2025, 10, 10, 21, 0, tzinfo=dt.timezone.utc))["ts"].to_list()[-1]
    datetime.datetime(2025, 10, 10, 21, 0, 1, tzinfo=zoneinfo.ZoneInfo(key='UTC'))
    """
    start_ms, zone = ts_value(t0, "t0")
    assert start_ms is not None
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
        ts = ts_series(start_ms + (t * dt).astype(np.int64), zone)
        frames.append(pl.DataFrame({"ts": ts, "symbol": s, "mark": np.round(starts[s] * level * shock, 4)}))
    return pl.concat(frames).sort("ts", "symbol")
