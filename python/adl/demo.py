"""The bundled demo: a synthetic two-market book, a price shock, and the liquidation
waterfall (book, insurance fund, ADL, bad debt) run through the engine."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np
import polars as pl

from adl._io import Policy
from adl.engine import Engine, LiquidationResult

MARKS = {"BTC-PERP": 100.0, "ETH-PERP": 20.0}
SHOCK = {"BTC-PERP": 91.0, "ETH-PERP": 18.4}
SLIPPAGE = 0.004
"""The book fills a liquidation 0.4 % worse than the mark."""


def make_book(n_accounts: int = 1_000, seed: int = 7) -> pl.DataFrame:
    """A seeded synthetic book: every account holds one position per market, long or short,
    with lognormal sizes, leverage between 2x and 40x and entries dispersed around the mark.

    >>> from adl.demo import make_book
    >>> make_book(10).height
    20
    """
    rng = np.random.default_rng(seed)
    frames = []
    for symbol, mark in MARKS.items():
        side = rng.choice([1, -1], n_accounts)
        entry = np.round(mark * np.exp(rng.normal(0, 0.03, n_accounts)), 2)
        qty = np.round(np.exp(rng.normal(np.log(50 / mark), 1.0, n_accounts)), 3) + 0.001
        leverage = rng.choice([2, 5, 10, 20, 40], n_accounts, p=[0.2, 0.3, 0.25, 0.15, 0.1])
        margin = np.round(qty * entry / leverage, 2)
        frames.append(
            pl.DataFrame(
                {
                    "account": np.arange(1, n_accounts + 1, dtype=np.uint64),
                    "symbol": symbol,
                    "side": side.astype(np.int8),
                    "qty": qty,
                    "entry_price": entry,
                    "margin": margin,
                }
            )
        )
    return pl.concat(frames)


def bundled_book() -> pl.DataFrame:
    """The demo book shipped with the package (``adl/data/demo_positions.csv``).

    >>> from adl.demo import bundled_book
    >>> bundled_book().columns
    ['account', 'symbol', 'side', 'qty', 'entry_price', 'margin']
    """
    path = resources.files("adl") / "data" / "demo_positions.csv"
    with resources.as_file(path) as p:
        return pl.read_csv(p, schema_overrides={"account": pl.UInt64, "side": pl.Int8})


@dataclass
class DemoRun:
    engine: Engine
    before: pl.DataFrame
    liquidated: pl.DataFrame
    result: LiquidationResult
    fund_start: float


def run_demo(book: pl.DataFrame | None = None, insurance_fund: float = 300.0, policy: Policy = "bitmex") -> DemoRun:
    """Loads the book, shocks the marks and liquidates every position below maintenance
    in the engine's order (worst first), filling on the book with slippage.

    >>> from adl.demo import run_demo
    >>> run = run_demo()
    >>> run.result.adl_qty > 0 and run.engine.insurance_fund >= 0
    True
    """
    book = bundled_book() if book is None else book
    eng = Engine(policy=policy, insurance_fund=insurance_fund, maintenance_rate=0.005)
    for symbol in MARKS:
        eng.add_market(symbol, qty_decimals=3, price_decimals=2)
    eng.load(book)
    eng.set_marks(MARKS, ts=0)
    before = eng.indicator()
    eng.set_marks(SHOCK, ts=60_000)
    liquidated = eng.liquidatable()
    sign = pl.when(pl.col("side") == "long").then(-1.0).otherwise(1.0)
    batch = liquidated.join(eng.markets().select("symbol", "mark"), on="symbol", maintain_order="left").select(
        "account",
        "symbol",
        "side",
        fill_price=(pl.col("mark") * (1 + sign * SLIPPAGE)).round(2),
    )
    result = eng.liquidate_many(batch)
    return DemoRun(eng, before, liquidated, result, insurance_fund)
