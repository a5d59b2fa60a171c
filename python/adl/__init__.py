"""adl: exchange auto-deleveraging with a Rust core and a Polars API.

>>> import adl, polars as pl
>>> book = pl.DataFrame({"account": [1, 2], "side": ["short", "short"],
...     "qty": [10.0, 10.0], "entry_price": [100.0, 100.0], "margin": [20.0, 60.0]})
>>> adl.rank(book, mark=96.0)["lights"].to_list()
[3, 1]
"""

from adl._adl import AdlState, Totals, __version__
from adl._io import DEFAULT_SYMBOL, KIND, SIDE, Market
from adl.engine import Engine, EngineConfig, LiquidationResult
from adl.errors import (
    AdlError,
    CorruptDataError,
    InsufficientLiquidityError,
    InvalidInputError,
    NotLiquidatableError,
    SchemaError,
    UnknownMarketError,
    StorageError,
    UnknownPositionError,
)
from adl.cascade import SimulationResult, Slippage, compare, simulate
from adl.files import read_accounts, read_marks, read_markets, read_positions, read_prices
from adl.reporting import report
from adl.scenario import VenueBook, crash_path, synthetic_book, venue_book
from adl.stateless import deleverage, rank
from adl.sweeps import FundSizing, scenario_grid, size_fund, sweep
from adl.views import AccountView, PositionView, QueuePlace
from adl.wealth import allocate, allocation_metrics
from adl import lots, severity, severity_sim

__all__ = [
    "DEFAULT_SYMBOL",
    "FundSizing",
    "KIND",
    "SIDE",
    "AccountView",
    "AdlError",
    "AdlState",
    "CorruptDataError",
    "Engine",
    "EngineConfig",
    "InsufficientLiquidityError",
    "InvalidInputError",
    "LiquidationResult",
    "Market",
    "NotLiquidatableError",
    "PositionView",
    "QueuePlace",
    "SchemaError",
    "SimulationResult",
    "Slippage",
    "StorageError",
    "Totals",
    "UnknownMarketError",
    "UnknownPositionError",
    "VenueBook",
    "__version__",
    "allocate",
    "allocation_metrics",
    "compare",
    "crash_path",
    "deleverage",
    "lots",
    "rank",
    "read_accounts",
    "read_marks",
    "read_markets",
    "read_positions",
    "report",
    "read_prices",
    "simulate",
    "scenario_grid",
    "severity",
    "severity_sim",
    "size_fund",
    "sweep",
    "synthetic_book",
    "venue_book",
]
