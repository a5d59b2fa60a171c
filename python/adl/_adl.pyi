"""Raw bindings of the Rust core. Use the typed wrappers in :mod:`adl` instead."""

from collections.abc import Callable
from typing import Any, final

import numpy as np
import numpy.typing as npt
from adl.views import RawView

__all__ = ["Engine", "Simulation", "__version__", "deleverage", "rank"]
__version__: str

_Columns = tuple[
    npt.NDArray[np.uint64],  # account
    npt.NDArray[np.uint32],  # market code (empty: every row in market 0)
    npt.NDArray[np.int8],  # side ±1
    npt.NDArray[np.float64],  # qty
    npt.NDArray[np.float64],  # entry price
    npt.NDArray[np.float64],  # margin
    npt.NDArray[np.float64],  # adl_cap (empty: no caps)
]
# (symbols, marks, qty_decimals, price_decimals, maintenance rates, cash_decimals), per market code
_Markets = tuple[list[str], list[float], list[int], list[int], list[float], int]

def rank(
    columns: _Columns,
    markets: _Markets,
    policy: str,
    scores: npt.NDArray[np.float64] | None = None,
    lights: str | None = None,
) -> dict[str, Any]: ...
def deleverage(
    columns: _Columns,
    markets: _Markets,
    policy: str,
    target_market: int,
    bankrupt_side: int,
    adl_qty: float,
    price: float,
    seed: int,
    scores: npt.NDArray[np.float64] | None = None,
) -> dict[str, Any]: ...

@final
class Engine:
    def __new__(
        cls,
        policy: str,
        insurance_fund: float,
        cash_decimals: int,
        spec: dict[str, Any],
        adl_price: str | None = None,
        seed: int = 0,
        trigger: str = "fund_empty",
        trigger_window: int | None = None,
        trigger_arm: float | None = None,
        trigger_disarm: float | None = None,
        trigger_min_balance: float | None = None,
        lights: str | None = None,
    ) -> Engine: ...
    def adl_state(self, pool: str = "default") -> dict[str, Any]: ...
    def add_market(self, symbol: str, spec: dict[str, Any] | None = None) -> int: ...
    def markets(self) -> dict[str, Any]: ...
    def symbols(self) -> list[str]: ...
    def tiers(self, symbol: str) -> dict[str, Any]: ...
    def adl_marks(
        self, symbol: str, side: int, step: float, max_move: float, account: int | None = None
    ) -> dict[str, Any]: ...
    def load(
        self,
        columns: _Columns,
        names: list[str],
        acc_account: npt.NDArray[np.uint64] | None = None,
        acc_cash: npt.NDArray[np.float64] | None = None,
        margin_mode: npt.NDArray[np.uint8] | None = None,
        scores: npt.NDArray[np.float64] | None = None,
        labels: list[str] | None = None,
    ) -> None: ...
    def upsert(
        self,
        columns: _Columns,
        names: list[str],
        acc_account: npt.NDArray[np.uint64] | None = None,
        acc_cash: npt.NDArray[np.float64] | None = None,
        margin_mode: npt.NDArray[np.uint8] | None = None,
        scores: npt.NDArray[np.float64] | None = None,
        labels: list[str] | None = None,
    ) -> tuple[int, int, int]: ...
    def close_position(self, account: int, symbol: str, side: int, price: float | None = None) -> float: ...
    @property
    def policy(self) -> str: ...
    @property
    def lights(self) -> str: ...
    def snapshot(self) -> bytes: ...
    @staticmethod
    def restore(data: bytes) -> Engine: ...
    def __reduce__(self) -> tuple[Any, tuple[bytes]]: ...
    def save(self, path: str) -> None: ...
    @staticmethod
    def open(path: str) -> Engine: ...
    def log_to(self, path: str, sync: str = "always", group_ms: int = 10) -> None: ...
    def close_log(self) -> None: ...
    def sync(self) -> None: ...
    def log_status(self) -> tuple[int, int] | None: ...
    @staticmethod
    def replay(path: str) -> tuple[Engine, int, int]: ...
    def set_marks(self, names: list[str], prices: list[float], ts: int | None = None, clock: str | None = None) -> None: ...
    def labels(self, start: int = 0) -> list[str]: ...
    def label_count(self) -> int: ...
    def clock(self) -> str | None: ...
    @property
    def max_ts_step(self) -> int | None: ...
    def set_max_ts_step(self, step: int | None) -> None: ...
    @property
    def insurance_fund(self) -> float: ...
    @property
    def bad_debt(self) -> float: ...
    def set_insurance_fund(self, amount: float, pool: str = "default") -> None: ...
    def funds(self) -> dict[str, Any]: ...
    def fund_history(self) -> dict[str, Any]: ...
    def totals(self) -> dict[str, int]: ...
    def liquidate(
        self,
        account: int,
        symbol: str,
        side: int,
        fill_price: float | None = None,
        force: bool = False,
        dry_run: bool = False,
        partial: bool = False,
        max_adl: float | None = None,
    ) -> dict[str, Any]: ...
    def liquidate_account(self, account: int, force: bool = False, partial: bool = False) -> dict[str, Any]: ...
    def liquidate_many(
        self,
        account: npt.NDArray[np.uint64],
        market: npt.NDArray[np.uint32],
        side: npt.NDArray[np.int8],
        fill_price: npt.NDArray[np.float64],
        names: list[str],
        force: bool = False,
        partial: bool = False,
    ) -> dict[str, Any]: ...
    def events(self) -> dict[str, Any]: ...
    def positions(self, which: str = "all") -> dict[str, Any]: ...
    def accounts(self) -> dict[str, Any]: ...
    def indicator(self) -> dict[str, Any]: ...
    def position_view(self, account: int, symbol: str, side: int) -> RawView: ...
    def account_view(self, account: int) -> tuple[float, float, tuple[float, float] | None, list[RawView]]: ...

@final
class Simulation:
    def __new__(
        cls, engine: Engine, bps_per_million: float, window: int, max_bps: float, keep_fills: bool = True
    ) -> Simulation: ...
    def run(
        self,
        step_ts: npt.NDArray[np.int64],
        offsets: npt.NDArray[np.uint64],
        market: npt.NDArray[np.uint32],
        mark: npt.NDArray[np.float64],
        later: npt.NDArray[np.float64],
        severity: Callable[[dict[str, Any], dict[str, Any] | None], int] | None = None,
    ) -> dict[str, Any]: ...
    def tally(self) -> dict[str, Any]: ...
    def rounds(self) -> list[dict[str, Any]]: ...
    def engine(self) -> Engine: ...
