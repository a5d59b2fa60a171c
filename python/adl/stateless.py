"""Stateless calls: rank a book, or deleverage one quantity against it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

import numpy as np
import polars as pl

from adl import _adl
from adl._io import (
    SIDE, ColumnMap, Frame, LightsMethod, Market, Policy, PositionArrays, ScoreSpec, custom_scores, mapped, margin_mode_codes,
    market_specs, markets_for, marks_for, position_arrays, side_series, side_value,
)
from adl._args import U64, checked, integer, number, price_or_mapping, text
from adl.engine import Engine
from adl.errors import InvalidInputError, UnknownMarketError

CASH_DECIMALS = 8


def _plain(specs: Mapping[str, Market], df: pl.DataFrame, accounts: Frame | None) -> bool:
    """Whether the one-pass column path models this book exactly: linear markets with a flat
    rate, no fee in the maintenance, isolated rows and no account wallets. Other books go
    to an engine loaded for the call (the same policy kernels, so the same answers)."""
    codes = margin_mode_codes(df)
    return accounts is None and (codes is None or not codes.any()) and all(
        not s.inverse and s.multiplier in (None, 1.0) and not s.tiers
        and not (s.fee_convention == "bankruptcy" and (s.liquidation_fee or 0.0) > 0.0)
        for s in specs.values()
    )


def _engine(df: pl.DataFrame, a: PositionArrays, marks: list[float], policy: Policy, specs: Mapping[str, Market],
            score: ScoreSpec, lights: LightsMethod | None, accounts: Frame | None, seed: int = 0) -> Engine:
    """A fresh engine holding the book at its marks, with no fund (nothing is liquidated)."""
    eng = Engine(policy, 0.0, cash_decimals=CASH_DECIMALS, markets=dict(specs), lights=lights, score=score, seed=seed)
    # The engine numbers string ids in order of appearance and breaks ties by that number; the
    # column path breaks them by the ids' sorted order: load them sorted, so both agree.
    eng.load(df if a.account_ids is None else df.sort(pl.col("account").cast(pl.String), maintain_order=True), accounts)
    eng.set_marks(dict(zip(a.names, marks)))
    return eng


def _keys(df: pl.DataFrame, a: PositionArrays) -> list[str]:
    return ["account", "side"] + (["symbol"] if a.has_symbol else [])


def _fills(account: pl.Series, symbol: pl.Series, side: int, core: Mapping[str, Any], price: float) -> pl.DataFrame:
    """The fills frame from the core's ``qty, rank, score`` columns and the counterparties'
    ``account`` and ``symbol`` (in the book's dtypes, so fills join back to it). Every fill is
    on the side opposite the bankrupt one; policies that rank nobody give rank 0 and a NaN
    score, shown as nulls. The frame is built straight from the core's arrays (no expression
    pass: that cost more than the rest of the wrapper); nulls are set only when some are due."""
    n = len(core["qty"])
    rank, score = pl.Series("rank", core["rank"], dtype=pl.UInt32), pl.Series("score", core["score"])
    if not core["rank"].all():
        rank = pl.select(pl.when(rank > 0).then(rank)).to_series()
    if np.isnan(core["score"]).any():
        score = score.fill_nan(None)
    return pl.DataFrame([
        account.alias("account"),
        symbol.alias("symbol"),
        pl.Series("side", ["short" if side > 0 else "long"], dtype=SIDE).new_from_index(0, n),
        pl.Series("qty", core["qty"]),
        pl.Series("price", np.full(n, price)),
        rank,
        score,
    ])


def _fills_on_engine(df: pl.DataFrame, a: PositionArrays, eng: Engine, symbol: str, side: int, qty: float,
                     price: float) -> pl.DataFrame:
    d = eng._core.adl_dry_run(symbol, side, qty, price)
    n = len(d["qty"])
    symbols = pl.Series("symbol", [symbol if a.has_symbol else None]).cast(df["symbol"].dtype if a.has_symbol else pl.String)
    return _fills(eng._shown().account(d["account"]).cast(df["account"].dtype), symbols.new_from_index(0, n), side, d, price)


def _rank_on_engine(df: pl.DataFrame, a: PositionArrays, eng: Engine) -> pl.DataFrame:
    keys = _keys(df, a)
    ind = eng.indicator().select(*keys, "score", "rank", "percentile", "lights").with_columns(
        pl.col("account").cast(df["account"].dtype),
        *([pl.col("symbol").cast(df["symbol"].dtype)] if a.has_symbol else []),
    )
    book = df.with_columns(side_series(a.side)).select(keys).with_row_index("_row")
    got = book.join(ind, on=keys, how="left").sort("_row")
    return df.with_columns(side_series(a.side), got["score"], got["rank"], got["percentile"], got["lights"])


@checked(mark=price_or_mapping(tables=True), policy=text(choices=get_args(Policy)))
def rank(
    positions: Frame,
    mark: float | Mapping[str, float] | Frame,
    *,
    policy: Policy = "bitmex",
    markets: Market | Mapping[str, Market] | None = None,
    score: ScoreSpec = None,
    lights: LightsMethod | None = None,
    accounts: Frame | None = None,
    columns: ColumnMap = None,
) -> pl.DataFrame:
    """Ranks every position in its ADL queue (per symbol and side).

    Returns the rows (``side`` as :data:`adl.SIDE`) plus ``score`` (Float64, null when not eligible), ``rank`` (UInt32,
    1 = first to be deleveraged, null when not eligible: bankrupt, equity <= 0),
    ``percentile`` and ``lights`` (UInt8, ``6 - ceil(5 * percentile)``; 5 = first 20 %).
    ``lights="count"``: percentile = rank / n; ``"quantity"`` (BitMEX, the default for
    ``bitmex``; ``"count"`` for the others): the queue's quantity up to and including the
    position over its total, positions with exactly equal scores sharing their group's end.
    Ties: ascending account, then row order. Values are rounded to the market grid first.
    With ``policy="custom"``, ``score`` (a column name or a Polars expression evaluated on
    the positions) gives the scores; bankrupt positions are still not eligible.
    ``columns`` renames the caller's columns (``{"size": "qty"}``); the result keeps them
    renamed. Account ids may be integers or strings (ties then go to the lower string).
    ``markets`` takes every :class:`adl.Market` parameter (tiers, multipliers, inverse
    markets) and ``accounts`` the cross accounts' wallets (``account, cash``) for rows with
    ``margin_mode = "cross"``: such books are ranked by an engine loaded for the call, exactly
    as :meth:`adl.Engine.indicator` ranks them (keys (account, symbol, side) then unique).

    >>> import adl, polars as pl
    >>> book = pl.DataFrame({"account": [1, 2, 3], "side": ["short"] * 3,
    ...     "qty": [10.0, 10.0, 10.0], "entry_price": [100.0, 100.0, 90.0],
    ...     "margin": [20.0, 60.0, 10.0]})
    >>> adl.rank(book, mark=96.0)["rank"].to_list()
    [1, 2, None]
    """
    df, acc = mapped(columns, ("positions", positions), ("accounts", accounts))
    assert df is not None
    a = position_arrays(df, text_ids=True)
    specs, marks = markets_for(a.names, markets), marks_for(a.names, mark)
    if not _plain(specs, df, acc):
        if not _adl.ranks(policy):
            raise InvalidInputError(f"policy: {policy} does not rank positions", "policy", None)
        return _rank_on_engine(df, a, _engine(df, a, marks, policy, specs, score, lights, acc))
    qd, pd, rates = market_specs(specs)
    custom = custom_scores(df, policy, score)
    out = _adl.rank(a.args(), (a.names, marks, qd, pd, rates, CASH_DECIMALS), policy, custom, lights)
    eligible = pl.Series(out["rank"]) > 0
    return df.with_columns(
        side_series(a.side),   # long/short as the Enum every frame uses (buy/sell, 1/-1 read as sides)
        pl.Series("score", out["score"]).fill_nan(None),
        pl.when(eligible).then(pl.Series(out["rank"])).alias("rank"),
        pl.when(eligible).then(pl.Series(out["percentile"])).alias("percentile"),
        pl.when(eligible).then(pl.Series(out["lights"])).alias("lights"),
    )


@checked(mark=price_or_mapping(tables=True), qty=number(above=0.0), price=number(above=0.0), symbol=text(optional=True),
         policy=text(choices=get_args(Policy)), seed=integer(0, U64))
def deleverage(
    positions: Frame,
    mark: float | Mapping[str, float] | Frame,
    *,
    side: str | int,
    qty: float,
    price: float,
    symbol: str | None = None,
    policy: Policy = "bitmex",
    markets: Market | Mapping[str, Market] | None = None,
    seed: int = 0,
    score: ScoreSpec = None,
    accounts: Frame | None = None,
    columns: ColumnMap = None,
) -> pl.DataFrame:
    """Closes ``qty`` of a bankrupt ``side`` position against the opposite side's queue.

    Returns the ADL fills in queue order with columns ``account, symbol, side`` (the
    counterparty's side), ``qty, price, rank, score``; Σ qty = ``qty`` in whole lots.
    ``price`` is the ADL price (the bankrupt position's bankruptcy price). Under ``dydx`` the
    walk starts at a position drawn from ``seed``; under ``size_pro_rata`` and ``dydx``
    ``rank`` and ``score`` are null.
    Raises :class:`adl.InsufficientLiquidityError` when the opposite side holds less.
    ``account`` and ``symbol`` keep the input's dtypes (string ids too), so fills join back
    to the book; ``columns`` renames the caller's columns as in :func:`adl.rank`, and
    ``markets``/``accounts`` take every engine parameter and cross wallets as there (the lots
    are then placed by the engine's own kernel, as its waterfall would at this price, and the
    keys (account, symbol, side) must be unique).

    >>> import adl, polars as pl
    >>> book = pl.DataFrame({"account": [1, 2], "side": ["short", "short"],
    ...     "qty": [10.0, 10.0], "entry_price": [100.0, 100.0], "margin": [20.0, 60.0]})
    >>> adl.deleverage(book, mark=96.0, side="long", qty=15.0, price=95.0)["qty"].to_list()
    [10.0, 5.0]
    """
    df, acc = mapped(columns, ("positions", positions), ("accounts", accounts))
    assert df is not None
    a = position_arrays(df, text_ids=True)
    if symbol is None:
        if len(a.names) > 1:
            raise InvalidInputError("symbol: required when positions hold several symbols", "symbol", None)
        target = 0
    else:
        if symbol not in a.names:
            raise UnknownMarketError(f"symbol: {symbol!r} does not occur in positions", symbol)
        target = a.names.index(symbol)
    specs, marks = markets_for(a.names, markets), marks_for(a.names, mark)
    if not _plain(specs, df, acc):
        eng = _engine(df, a, marks, policy, specs, score, None, acc, seed)
        return _fills_on_engine(df, a, eng, a.names[target], side_value(side), float(qty), float(price))
    qd, pd, rates = market_specs(specs)
    out = _adl.deleverage(
        a.args(), (a.names, marks, qd, pd, rates, CASH_DECIMALS), policy,
        target, side_value(side), float(qty), float(price), int(seed), custom_scores(df, policy, score),
    )
    rows = out["row"]
    # Integer ids from the NumPy view the core read (a Polars gather of a few thousand rows
    # costs several times more), cast back to the book's dtype: lossless, as checked on the way in.
    accounts = (df["account"].gather(rows) if a.account_ids is not None
                else pl.Series("account", a.account[rows]).cast(df["account"].dtype))
    symbols = (df["symbol"].gather(rows) if a.has_symbol
               else pl.Series("symbol", [None], dtype=pl.String).new_from_index(0, len(rows)))
    return _fills(accounts, symbols, side_value(side), out, float(price))
