"""The test oracle for :func:`adl.simulate`: the same cascade written the plain way (not part
of the package: the tests compare with it and ``benches/simulate_vs_naive.py`` times it)."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import polars as pl

from adl import Engine, Slippage
from adl._io import SIDE, Frame, Policy, collect
from adl.cascade import _prices_frame
from adl.errors import UnknownPositionError


def simulate_naive(
    positions: Frame,
    prices: Frame,
    *,
    policy: Policy = "bitmex",
    insurance_fund: float = 1e6,
    maintenance_rate: float = 0.005,
    liquidation: Slippage = Slippage(),
    cash_decimals: int = 8,
    qty_decimals: int = 4,
    price_decimals: int = 4,
) -> pl.DataFrame:
    """The same cascade as :func:`simulate` for isolated books, written the plain way: every
    step rescans the whole book (``Engine.liquidatable``) and liquidates from Python. It is
    the reference the tests compare :func:`simulate` with, and the baseline of
    ``benches/simulate_vs_naive.py``. Returns the liquidations frame.

    >>> import polars as pl
    >>> book = pl.DataFrame({"account": [1, 2], "side": ["long", "short"], "qty": [10.0, 10.0],
    ...     "entry_price": [100.0, 100.0], "margin": [50.0, 300.0]})
    >>> path = pl.DataFrame({"ts": [0, 1], "symbol": ["default"] * 2, "mark": [100.0, 94.0]})
    >>> simulate_naive(book, path, insurance_fund=0.0)["account"].to_list()
    [1]
    """
    eng = Engine(policy, insurance_fund, maintenance_rate, cash_decimals=cash_decimals, qty_decimals=qty_decimals,
                 price_decimals=price_decimals)
    eng.load(positions)
    px, _ = _prices_frame(collect(prices, "prices"))
    scale = 10.0 ** price_decimals
    units = 10 ** (cash_decimals - qty_decimals - price_decimals)   # cash units per lot·tick
    recent: dict[str, tuple[deque[tuple[int, int]], list[int]]] = {}   # per symbol: window, [its sum]
    rows: list[dict[str, Any]] = []
    for (ts,), step in px.group_by("ts", maintain_order=True):
        marks = dict(zip(step["symbol"], step["mark"]))
        eng.set_marks(marks, ts=int(ts))
        current = dict(zip(eng.markets()["symbol"], eng.markets()["mark"]))
        for r in eng.liquidatable().iter_rows(named=True):
            sym, side, mark = r["symbol"], r["side"], current[r["symbol"]]
            window, total = recent.setdefault(sym, (deque(), [0]))
            while window and window[0][0] < int(ts) - liquidation.window:
                total[0] -= window.popleft()[1]
            try:  # its size now: an earlier ADL in this step may have shrunk or closed it
                now = eng.liquidate(r["account"], sym, side, force=True, dry_run=True)
            except UnknownPositionError:
                continue
            qty = now.adl_qty + now.external_qty
            # Notional in exact cash units, as the engine sums it.
            notional = round(qty * 10**qty_decimals) * round(mark * 10**price_decimals) * units
            volume = float(notional + total[0]) / float(10**cash_decimals)
            bps = min(liquidation.bps_per_million * volume / 1e6, liquidation.max_bps)
            raw = mark * (1.0 - (1 if side == "long" else -1) * bps / 1e4)
            fill = max(math.floor(raw * scale) if side == "long" else math.ceil(raw * scale), 1) / scale
            res = eng.liquidate(r["account"], sym, side, fill_price=fill, force=True)
            window.append((int(ts), notional))
            total[0] += notional
            rows.append({"ts": int(ts), "account": r["account"], "symbol": sym, "side": str(side), "qty": qty,
                         "fill_price": fill, "adl_qty": res.adl_qty, "bad_debt": res.bad_debt})
    return pl.DataFrame(rows, schema={"ts": pl.Int64, "account": pl.UInt64, "symbol": pl.String, "side": SIDE,
                                      "qty": pl.Float64, "fill_price": pl.Float64, "adl_qty": pl.Float64, "bad_debt": pl.Float64})
