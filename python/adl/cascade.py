"""Liquidation cascades over a price path, and the same book under several policies.

The loop runs in Rust (``adl._adl.Simulation``): each step moves the marks, takes the positions
the mark has pushed past their liquidation price (kept sorted, no rescans), and liquidates
them worst first through the engine's waterfall at the slippage model's fill price. Python
only shapes the frames and computes the haircut statistics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, cast, get_args, overload

import numpy as np
import polars as pl

from adl import _adl
from adl._args import I64, checked, flag, instance, integer, number, optional_callable, text
from adl._io import (
    SIDE, ColumnMap, Frame, LightsMethod, Market, Policy, Zone, mapped, numpy_view, side_series, ts_column, ts_series,
)
from adl.engine import AdlPrice, Engine, EngineConfig, Trigger
from adl.inequality import ptsr_pmr
from adl.errors import InvalidInputError, SchemaError
from adl.severity import Controller
from adl.severity_sim import Driver, SeverityRun, severity_run


@dataclass(frozen=True)
class Slippage:
    """The external book's fill price for a liquidation of notional ``N`` (settlement
    currency: the quote, or the coin of an inverse market):
    the mark moved against the liquidated side by ``bps_per_million`` basis points per
    million of ``N + R``, where ``R`` is the notional liquidated in the same market within
    the last ``window`` time units, capped at ``max_bps``. Rounded to the price grid away
    from the liquidated side (a long sells at or below the mark).

    >>> import adl
    >>> adl.Slippage(bps_per_million=5.0).bps_per_million
    5.0
    """

    bps_per_million: float = 5.0
    window: int = 60_000
    max_bps: float = 500.0

    def __post_init__(self) -> None:
        for name, check in (("bps_per_million", number(0.0)), ("window", integer(0, I64)), ("max_bps", number(0.0))):
            object.__setattr__(self, name, check(name, getattr(self, name)))


def _prices_frame(df: pl.DataFrame) -> tuple[pl.DataFrame, Zone]:
    """The path with Int64 ``ts`` (Datetime as epoch ms) sorted by it, and its clock."""
    missing = [c for c in ("ts", "symbol", "mark") if c not in df.columns]
    if missing:
        raise SchemaError(f"prices: missing column(s) {missing}; required ['ts', 'symbol', 'mark']", missing[0], None)
    if not (df["ts"].dtype.is_integer() or isinstance(df["ts"].dtype, pl.Datetime)):
        raise SchemaError(f"prices: ts has dtype {df['ts'].dtype}, expected integers (your clock's unit) or Datetime",
                          "ts", None)
    if not df["mark"].dtype.is_numeric():
        raise SchemaError(f"prices: mark has dtype {df['mark'].dtype}, expected numbers", "mark", None)
    for c in ("ts", "symbol", "mark"):
        if df[c].null_count():
            row = int(df[c].is_null().arg_max() or 0)
            raise InvalidInputError(f"prices: {c}[row {row}] is null", c, row)
    mark = df["mark"].cast(pl.Float64)
    bad = ~(mark.is_finite() & (mark > 0))
    if bad.any():
        row = int(bad.arg_max() or 0)
        raise InvalidInputError(f"prices: mark[row {row}] = {mark[row]} must be finite and > 0", "mark", row)
    ts, zone = ts_column(df["ts"])
    out = pl.DataFrame({"ts": ts, "symbol": df["symbol"].cast(pl.String), "mark": mark})
    return out.sort("ts", maintain_order=True), zone


def _num(x: Any) -> float:
    """A Polars scalar aggregate as a float (0.0 for null)."""
    return 0.0 if x is None else float(x)


class SimulationResult:
    """Frames of one simulated cascade (all Polars):

    - ``liquidations``: one row per liquidation (``ts, event, symbol, account, side, qty, mark,
      fill_price, to_fund, from_fund, bad_debt, adl_qty, external_qty``);
    - ``fills``: the engine's fill records (docs/model.md §5; empty with ``keep_fills=False``);
    - ``fund``: per step ``ts, fund`` (at the step's end), ``fund_min`` (its low within the
      step), ``bad_debt, liquidations, liquidated_notional, adl_notional``;
    - ``accounts``: per ADL counterparty ``adl_qty, adl_notional, profit_taken`` (its lots'
      profit at the event's mark), ``loss_vs_mark`` (``σ·q·(P_mark − P_ADL)`` summed: what closing
      at the ADL price instead of the mark cost it; negative when the ADL price was better for
      it than the mark, the usual case in a cascade, see :attr:`summary`),
      ``haircut`` (``x(Δ) = σ·q·(P_{t+Δ} − P_ADL)`` summed), ``equity_start`` and
      ``haircut_pct`` of it (computed in Rust as the run goes, so they need no fill log);
    - ``summary``: one row of totals (see :attr:`summary`); ``timeline``: when the cascade
      turned (see :attr:`timeline`); ``params``: the arguments of the run;
    - ``severity``: with ``simulate(..., severity=controller)``, the rounds the controller
      played (:class:`adl.severity_sim.SeverityRun`: per round the budget, ADL done, bad debt,
      need and the losses of docs/model.md §8); else None.

    The report's glossary (:data:`adl.report.GLOSSARY`) defines every column with its unit and sign.
    """

    def __init__(self, policy: str, steps: pl.DataFrame, liquidations: pl.DataFrame, engine: Engine,
                 prices: pl.DataFrame, tally: pl.DataFrame, equity_start: pl.DataFrame,
                 fund_start: float, horizon: int, params: Mapping[str, Any] | None = None, zone: Zone = None,
                 severity: SeverityRun | None = None) -> None:
        self.policy = policy
        self.fund = steps
        self.liquidations = liquidations
        self.engine = engine
        self._prices = prices
        self._tally = tally
        self._equity_start = equity_start
        self._fund_start = fund_start
        self.horizon = horizon
        self.params: dict[str, Any] = dict(params or {})
        self._zone = zone
        self.severity = severity

    @cached_property
    def fills(self) -> pl.DataFrame:
        return self.engine.events()

    @cached_property
    def accounts(self) -> pl.DataFrame:
        per = self._tally.rename({"need": "loss_vs_mark"}).join(self._equity_start, on="account", how="left")
        return per.with_columns(
            haircut_pct=pl.when(pl.col("equity_start") > 0).then(100.0 * pl.col("haircut") / pl.col("equity_start"))
        ).sort("haircut", "account", descending=[True, False])

    @cached_property
    def summary(self) -> pl.DataFrame:
        """One row of totals (quote units unless said; the glossary in :mod:`adl.report`):

        - ``loss_vs_mark`` = Σ σ·q·(P_mark − P_ADL) over the ADL fills: the counterparties' loss
          against the mark at the event. Negative when they were closed at a better price than
          the mark: a position is liquidated at its *liquidation* price, before it reaches its
          bankruptcy price, so ADL at P_bk buys its counterparties out inside the mark; it is
          positive only when the mark gapped past P_bk;
        - ``deficit_covered`` = Σ σ_b·q·(P_ADL − F) over the ADL lots (σ_b the bankrupt side, F the
          book's fill price): the loss those lots would have left at the book's price, that ADL
          took over (>= 0); = ``loss_vs_mark`` + the book's slippage on the ADL lots;
        - ``haircut`` = Σ x(Δ) = Σ σ·q·(P_{t+Δ} − P_ADL): the profit the counterparties gave up,
          valued ``horizon`` later; ``overshoot`` = haircut − deficit_covered;
        - ``bad_debt``: the deficit nobody covered (docs/model.md §4's residual ``D − H``);
        - ``ptsr``/``pmr`` as docs/model.md §4 with ``w`` = each account's profit on the lots
          taken and ``D`` = deficit_covered + bad_debt (null when bad_debt = 0: undefined).
        """
        acc, liq = self.accounts, self.liquidations
        loss_vs_mark = float(acc["loss_vs_mark"].sum()) if acc.height else 0.0
        haircut = float(acc["haircut"].sum()) if acc.height else 0.0
        covered = loss_vs_mark + self._adl_slippage()
        residual = float(self.engine.bad_debt)
        kept = _num((acc["profit_taken"] - acc["haircut"].clip(0.0)).clip(0.0).max()) if acc.height else 0.0
        deficit = covered + residual
        max_loss = _num((liq["from_fund"] + liq["bad_debt"]).max()) if liq.height else 0.0
        ptsr, pmr = ptsr_pmr(kept, residual, deficit, max_loss)
        fund = self.fund["fund"]
        return pl.DataFrame({
            "policy": [self.policy],
            "steps": [self.fund.height],
            "liquidations": [liq.height],
            "liquidated_notional": [float(self.fund["liquidated_notional"].sum())],
            "adl_events": [int((liq["adl_qty"] > 0).sum()) if liq.height else 0],
            "adl_notional": [float(self.fund["adl_notional"].sum())],
            "accounts_hit": [acc.height],
            "bad_debt": [residual],
            "fund_start": [self._fund_start],
            "fund_min": [min(self._fund_start, _num(self.fund["fund_min"].min())) if fund.len() else self._fund_start],
            "fund_end": [float(fund[-1]) if fund.len() else self._fund_start],
            "loss_vs_mark": [loss_vs_mark],
            "deficit_covered": [covered],
            "haircut": [haircut],
            "overshoot": [haircut - covered],
            "max_haircut_pct": [_num(acc["haircut_pct"].max()) if acc.height else 0.0],
            "ptsr": pl.Series([ptsr], dtype=pl.Float64),
            "pmr": pl.Series([pmr], dtype=pl.Float64),
            "horizon": [self.horizon],
        })

    def _adl_slippage(self) -> float:
        """Σ σ_b·(V(P_mark) − V(F)) over the ADL lots of each liquidation: what the book's fill
        price F would have cost them against the mark (V as in the Rust tally: ``q·m·P``, or
        ``−q·m/P`` in an inverse market)."""
        liq = self.liquidations.filter(pl.col("adl_qty") > 0)
        if not liq.height:
            return 0.0
        spec = self.engine.markets().select("symbol", "multiplier", "inverse")
        liq = liq.join(spec, on="symbol", how="left")
        sign = pl.when(pl.col("side") == "long").then(1.0).otherwise(-1.0)

        def value(price: str) -> pl.Expr:
            q = pl.col("adl_qty") * pl.col("multiplier")
            return pl.when(pl.col("inverse")).then(-q / pl.col(price)).otherwise(q * pl.col(price))

        return _num(liq.select((sign * (value("mark") - value("fill_price"))).sum()).item())

    @cached_property
    def timeline(self) -> pl.DataFrame:
        """When the cascade turned, one row per moment (``moment, ts, step``; step counts from
        0; null ts and step when it never happened): ``first_liquidation``, ``fund_exhausted``
        (the first step whose fund low is at most 0.1 % of the starting fund: a fund is seldom
        left at exactly 0, it keeps less than one lot's deficit), ``first_adl`` (the first step with ADL notional),
        ``first_bad_debt`` and ``peak`` (the step with the most liquidated notional; the
        first on ties; null when nothing was liquidated).

        >>> import adl, polars as pl
        >>> book = pl.DataFrame({"account": [1, 2], "side": ["long", "short"], "qty": [10.0, 10.0],
        ...     "entry_price": [100.0, 100.0], "margin": [50.0, 300.0]})
        >>> path = pl.DataFrame({"ts": [0, 5, 9], "symbol": ["default"] * 3, "mark": [100.0, 98.0, 94.0]})
        >>> adl.simulate(book, path, insurance_fund=0.0).timeline.filter(pl.col("moment") == "first_adl").row(0)
        ('first_adl', 9, 2)
        """
        f = self.fund.with_row_index("step")

        def first(cond: pl.Expr) -> tuple[Any, int | None]:
            hit = f.filter(cond)
            return (hit["ts"][0], int(hit["step"][0])) if hit.height else (None, None)

        peak: tuple[Any, int | None] = (None, None)
        if f.height and _num(f["liquidated_notional"].max()) > 0:
            i = int(f["liquidated_notional"].arg_max() or 0)
            peak = (f["ts"][i], i)
        moments = {
            "first_liquidation": first(pl.col("liquidations") > 0),
            "fund_exhausted": first(pl.col("fund_min") <= 0.001 * self._fund_start),
            "first_adl": first(pl.col("adl_notional") > 0),
            "first_bad_debt": first(pl.col("bad_debt") > 0),
            "peak": peak,
        }
        return pl.DataFrame({"moment": list(moments), "ts": [v[0] for v in moments.values()],
                             "step": [v[1] for v in moments.values()]},
                            schema={"moment": pl.String, "ts": f["ts"].dtype, "step": pl.Int64})

    def report(self, path: str | Path) -> Path:
        """Writes a self-contained HTML report (needs the ``report`` extra); see :func:`adl.report`."""
        from adl.reporting import report

        return report([self], path)

    def _repr_html_(self) -> str:
        """Notebooks show the main totals as a small table (all of them: :attr:`summary`)."""
        cols = ["policy", "liquidations", "adl_events", "accounts_hit", "bad_debt", "fund_start", "fund_min",
                "deficit_covered", "haircut", "max_haircut_pct"]
        row = self.summary.select(cols).with_columns(pl.selectors.float().round(2))
        return str(row.transpose(include_header=True, header_name="metric", column_names=["value"])
                   .with_columns(pl.col("value").cast(pl.String))._repr_html_())

    def __repr__(self) -> str:
        s = self.summary.row(0, named=True)
        return (f"SimulationResult(policy={s['policy']!r}, liquidations={s['liquidations']}, "
                f"bad_debt={s['bad_debt']:.2f}, fund_min={s['fund_min']:.2f}, accounts_hit={s['accounts_hit']})")


class _Default:
    """Marks simulate's default of an engine keyword, so that ``engine=`` can tell a keyword
    the caller gave (which then overrides the configuration's) from one left alone."""


class _Float(float, _Default):
    pass


class _Int(int, _Default):
    pass


class _Str(str, _Default):
    pass


def _plain(value: Any) -> Any:
    """A marked default as the plain value it stands for (any other value as it is)."""
    for kind in (float, int, str):
        if isinstance(value, kind) and isinstance(value, _Default):
            return kind(value)
    return value


@checked(liquidation=instance(Slippage), horizon=integer(0, I64), keep_fills=flag(), chunk=integer(1, I64),
         progress=optional_callable(), trigger_min_balance=number(0.0, optional=True),
         lights=text(optional=True, choices=get_args(LightsMethod)), policy=text(optional=True, choices=get_args(Policy)))
def simulate(
    positions: Frame,
    prices: Frame,
    *,
    policy: Policy | None = None,
    insurance_fund: float = _Float(1e6),
    maintenance_rate: float = _Float(0.005),
    liquidation: Slippage = Slippage(),
    accounts: Frame | None = None,
    markets: Mapping[str, Market] | None = None,
    horizon: int = 0,
    cash_decimals: int = _Int(8),
    qty_decimals: int = _Int(4),
    price_decimals: int = _Int(4),
    adl_price: AdlPrice | None = None,
    seed: int = _Int(0),
    trigger: Trigger = cast(Trigger, _Str("fund_empty")),
    trigger_min_balance: float | None = None,
    lights: LightsMethod | None = None,
    keep_fills: bool = True,
    chunk: int = 100,
    progress: Any = None,
    columns: ColumnMap = None,
    severity: Controller | None = None,
    engine: EngineConfig | Engine | None = None,
) -> SimulationResult:
    """Runs a liquidation cascade of ``positions`` along ``prices`` (``ts, symbol, mark``).

    ``ts`` is integers (the caller's clock) or Datetime (any unit and zone, run as epoch ms:
    ``horizon`` and the slippage ``window`` are then in ms); the frames of the result carry
    ``ts`` as it came in (``Datetime("ms")`` in the path's zone). Account ids may be strings
    (see :meth:`adl.Engine.load`) and come back as strings; symbols keep the book's dtype.
    ``columns`` renames the caller's columns in ``positions``, ``prices`` and ``accounts``.

    Every distinct ``ts`` is a step: its marks are set, the positions below maintenance are
    liquidated worst first (lowest equity / maintenance) through the waterfall at the
    ``liquidation`` model's fill price, then cross accounts below maintenance (largest
    shortfall first). Closed and deleveraged positions leave the book. ``horizon`` (Δ, in
    ``ts`` units) is how much later the haircuts ``x(Δ) = σ·q·(P_{t+Δ} − P_ADL)`` are valued;
    at Δ = 0 with ADL at the bankruptcy price the haircut equals the covered deficit.
    ``progress`` is called with (steps done, steps) after each chunk of ``chunk`` steps.
    ``trigger``, ``trigger_min_balance`` and ``lights`` are :class:`adl.Engine`'s (the final
    engine, ``result.engine``, shows its queue lights by that method). ``engine`` (an
    :class:`adl.EngineConfig`, or an :class:`adl.Engine` for its configuration, not its book)
    sets every engine option instead (fees, tiers, trigger window and
    thresholds, ``max_ts_step``…); an engine keyword given as well replaces the configuration's
    value (:func:`adl.compare` varies ``policy``, :func:`adl.size_fund` ``insurance_fund``).
    ``policy`` defaults to the configuration's, else ``"bitmex"``.
    ``keep_fills=False`` keeps no fill log (pro-rata policies close a share of every opposite
    position at every event: tens of millions of fills, ~120 bytes each); the frames of
    liquidations, fund and accounts and the summary do not need it.

    ``severity`` (a controller of :mod:`adl.severity`) makes every liquidation that reaches
    ADL a round of the severity model: the controller sees the round's start (deficit D_t at
    the book's price, capacity U_t, lots Q_t; never the need), returns θ_t, and the engine
    deleverages at most ⌊θ_t·Q_t⌋ lots; the rest closes against the book, the fund pays what
    it can and the remainder is bad debt. :attr:`SimulationResult.severity` holds the rounds
    and their losses; the mapping is in :mod:`adl.severity_sim` and docs/severity.md.

    >>> import adl, polars as pl
    >>> book = pl.DataFrame({"account": [1, 2, 3], "side": ["long", "short", "short"],
    ...     "qty": [10.0, 6.0, 6.0], "entry_price": [100.0, 100.0, 100.0],
    ...     "margin": [50.0, 100.0, 300.0]})
    >>> path = pl.DataFrame({"ts": [0, 1, 2], "symbol": ["default"] * 3, "mark": [100.0, 97.0, 94.0]})
    >>> res = adl.simulate(book, path, insurance_fund=0.0, liquidation=adl.Slippage(0.0))
    >>> res.liquidations.select("ts", "account", "adl_qty").rows()
    [(2, 1, 10.0)]
    >>> res.fills.select("account", "qty", "price").rows()    # P_bk = 100 - 50/10 = 95
    [(2, 6.0, 95.0), (3, 4.0, 95.0)]
    >>> half = adl.simulate(book, path, insurance_fund=0.0, liquidation=adl.Slippage(0.0),
    ...                     severity=adl.severity.FixedTheta(0.5))
    >>> half.severity.table.select("qty", "cap_qty", "adl_qty").row(0)   # ⌊0.5·10⌋ lots
    (10.0, 5.0, 5.0)
    """
    config = _engine_config(engine, policy, {
        "insurance_fund": insurance_fund, "maintenance_rate": maintenance_rate, "cash_decimals": cash_decimals,
        "qty_decimals": qty_decimals, "price_decimals": price_decimals, "markets": markets, "adl_price": adl_price,
        "seed": seed, "trigger": trigger, "trigger_min_balance": trigger_min_balance, "lights": lights,
    })
    eng = Engine.from_config(config)
    pos, path, acc = mapped(columns, ("positions", positions), ("prices", prices), ("accounts", accounts))
    assert pos is not None and path is not None
    eng.load(pos, acc)
    px, zone = _prices_frame(path)
    names = eng._names()
    unknown = px.filter(~pl.col("symbol").is_in(names))
    if unknown.height:
        raise InvalidInputError(f"prices: symbol {unknown['symbol'][0]!r} is not in the positions or markets", "symbol", None)
    # Equity at each market's first mark: the base of haircut percentages (a market the path
    # never prices counts its positions' margin only).
    first = px.group_by("symbol", maintain_order=True).agg(pl.col("mark").first())
    if first.height:
        marks = dict(first.iter_rows())
        if zone is None:
            eng.set_marks(marks)
        else:   # the engine's clock shows fills and fund history as datetimes in the path's zone
            eng._core.set_marks(list(marks), list(marks.values()), int(px["ts"][0]), zone)
    equity_start = eng.accounts().select("account", pl.col("equity").alias("equity_start"))
    fund_start = eng.insurance_fund
    sim = _adl.Simulation(eng._core, liquidation.bps_per_million, int(liquidation.window), liquidation.max_bps, keep_fills)
    driver = None
    if severity is not None:
        if not all(callable(getattr(severity, m, None)) for m in ("decide", "observe")) or not isinstance(getattr(severity, "name", None), str):
            raise InvalidInputError(f"severity: {severity!r} is not a controller (name, online, decide, observe)", "severity", None)
        scale = [10.0 ** d for d in eng.markets()["qty_decimals"].to_list()]
        shown = eng._shown()
        price_ts = [np.sort(px.filter(pl.col("symbol") == n)["ts"].to_numpy()) for n in names]
        driver = Driver(severity, names, scale, int(horizon), lambda codes: shown.account(codes), price_ts)
    codes = px["symbol"].cast(pl.Enum(names)).to_physical().cast(pl.UInt32)
    ts = px["ts"]
    step_ts = ts.unique(maintain_order=True)
    later = _later_marks(px, step_ts, names, int(horizon))
    offsets = np.concatenate([[0], np.cumsum(ts.unique_counts().to_numpy())]).astype(np.uint64)
    mark, code = numpy_view(px["mark"]), numpy_view(codes)
    step_cols: list[dict[str, Any]] = []
    liq_cols: list[dict[str, Any]] = []
    n = step_ts.len()
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        lo, hi = int(offsets[a]), int(offsets[b])
        nm = len(names)
        out = sim.run(numpy_view(step_ts[a:b]), offsets[a:b + 1] - offsets[a], code[lo:hi], mark[lo:hi], later[a * nm:b * nm],
                      driver)
        step_cols.append(out["steps"])
        liq_cols.append(out["liquidations"])
        if progress is not None:
            progress(b, n)
    steps = pl.concat([pl.DataFrame(c) for c in step_cols]) if step_cols else pl.DataFrame(
        schema={"ts": pl.Int64, "fund": pl.Float64, "fund_min": pl.Float64, "bad_debt": pl.Float64, "liquidations": pl.UInt32,
                "liquidated_notional": pl.Float64, "adl_notional": pl.Float64})
    steps = steps.with_columns(ts_series(steps["ts"], zone))
    liq = pl.concat([pl.DataFrame(c) for c in liq_cols]) if liq_cols else None
    final = Engine._from_core(sim.engine(), eng._score)
    final._symbol_dtype = eng._symbol_dtype
    final._config = eng._config
    shown = final._shown()
    liquidations = _liquidations_frame(liq, names, shown)
    raw_tally = pl.DataFrame(sim.tally())
    tally = raw_tally.with_columns(shown.account(raw_tally["account"].cast(pl.UInt64)))
    c = config
    params = {
        "policy": str(c.policy), "insurance_fund": fund_start, "maintenance_rate": c.maintenance_rate,
        "slippage": liquidation, "horizon": int(horizon), "trigger": str(c.trigger),
        "trigger_min_balance": c.trigger_min_balance, "lights": eng.lights,
        "adl_price": eng.adl_price,
        "positions": pos.height, "accounts": int(pos["account"].n_unique()) if "account" in pos.columns else 0,
        "symbols": names, "price_rows": px.height, "steps": n, "seed": c.seed,
        "decimals": {"cash": c.cash_decimals, "qty": c.qty_decimals, "price": c.price_decimals},
    }
    sev = None
    if driver is not None:
        params["severity"] = driver.controller.name
        sev = severity_run(driver, sim.rounds())
    return SimulationResult(str(c.policy), steps, liquidations, final, px, tally, equity_start, fund_start, int(horizon), params,
                            zone, sev)


def _engine_config(engine: EngineConfig | Engine | None, policy: Policy | None, keywords: dict[str, Any]) -> EngineConfig:
    """The engine a cascade runs on: ``engine`` with the engine keywords the caller gave (and
    ``policy``, as :func:`compare` and the sweeps vary it) put over it, else one from
    :func:`simulate`'s engine keywords and their defaults."""
    if engine is None:
        values = {k: _plain(v) for k, v in keywords.items()}
        return EngineConfig(policy if policy is not None else "bitmex", **values)
    if isinstance(engine, Engine):
        if engine.config is None:
            raise InvalidInputError("engine: a restored engine keeps its options in its state; pass an adl.EngineConfig",
                                    "engine", None)
        engine = engine.config
    if not isinstance(engine, EngineConfig):
        raise InvalidInputError(f"engine: {engine!r} is not an adl.EngineConfig (Engine.config gives one)", "engine", None)
    given = {k: v for k, v in keywords.items() if v is not None and not isinstance(v, _Default)}
    if policy is not None and policy != engine.policy:
        given.update(policy=policy, score=engine.score if policy == "custom" else None)
    return replace(engine, **given) if given else engine


def _later_marks(px: pl.DataFrame, step_ts: pl.Series, names: list[str], horizon: int) -> np.ndarray[Any, Any]:
    """For each step and market (row-major), the market's mark ``horizon`` after the step: the
    first price at or after ``ts + horizon``, else its last price; NaN for a market with none."""
    grid = pl.DataFrame({"ts_later": step_ts + horizon}).with_row_index("step").join(
        pl.DataFrame({"symbol": names}).with_row_index("market"), how="cross"
    ).sort("ts_later")
    later = px.rename({"ts": "ts_later"}).sort("ts_later")
    joined = grid.join_asof(later, on="ts_later", by="symbol", strategy="forward", check_sortedness=False)
    last = px.group_by("symbol").agg(pl.col("mark").last().alias("last"))
    joined = joined.join(last, on="symbol", how="left").with_columns(pl.col("mark").fill_null(pl.col("last")))
    return joined.sort("step", "market")["mark"].fill_null(float("nan")).to_numpy().astype(np.float64)


def _liquidations_frame(liq: pl.DataFrame | None, names: list[str], shown: Any) -> pl.DataFrame:
    cols = ["ts", "event", "symbol", "account", "side", "qty", "mark", "fill_price", "to_fund", "from_fund",
            "bad_debt", "adl_qty", "external_qty"]
    if liq is None or liq.height == 0:
        return pl.DataFrame(schema={
            "ts": shown.ts([]).dtype, "event": pl.UInt64, "symbol": shown.symbol(np.empty(0, np.uint32), names).dtype,
            "account": shown.account_dtype(), "side": SIDE,
            "qty": pl.Float64, "mark": pl.Float64, "fill_price": pl.Float64, "to_fund": pl.Float64,
            "from_fund": pl.Float64, "bad_debt": pl.Float64, "adl_qty": pl.Float64, "external_qty": pl.Float64,
        })
    return liq.with_columns(
        ts=shown.ts(liq["ts"]),
        symbol=shown.symbol(liq["market"].to_numpy(), names),
        account=shown.account(liq["account"].cast(pl.UInt64)),
        side=side_series(liq["side"].to_numpy()),
    ).select(cols)


@overload
def compare(positions: Frame, prices: Frame, *, policies: Sequence[Policy] = ...,
            return_results: Literal[False] = ..., **kwargs: Any) -> pl.DataFrame: ...
@overload
def compare(positions: Frame, prices: Frame, *, policies: Sequence[Policy] = ...,
            return_results: Literal[True], **kwargs: Any) -> tuple[pl.DataFrame, list[SimulationResult]]: ...
def compare(positions: Frame, prices: Frame, *, policies: Sequence[Policy] = ("bitmex", "size_pro_rata", "min_max_leverage"),
            return_results: bool = False, **kwargs: Any) -> pl.DataFrame | tuple[pl.DataFrame, list[SimulationResult]]:
    """Runs :func:`simulate` once per policy on the same book and path (same other arguments,
    ``engine=`` included, its policy replaced by each; no fill log unless ``keep_fills=True``) and returns the summaries, one row per policy;
    with ``return_results=True``, ``(summaries, results)``, the results ready for :func:`adl.report`.

    >>> import adl, polars as pl
    >>> book = pl.DataFrame({"account": [1, 2, 3], "side": ["long", "short", "short"],
    ...     "qty": [10.0, 6.0, 6.0], "entry_price": [100.0] * 3, "margin": [50.0, 100.0, 300.0]})
    >>> path = pl.DataFrame({"ts": [0, 1], "symbol": ["default"] * 2, "mark": [100.0, 94.0]})
    >>> adl.compare(book, path, policies=["bitmex", "size_pro_rata"], insurance_fund=0.0)["accounts_hit"].to_list()
    [2, 2]
    >>> table, results = adl.compare(book, path, policies=["bitmex"], insurance_fund=0.0, return_results=True)
    >>> results[0].policy
    'bitmex'
    """
    kwargs.setdefault("keep_fills", False)
    results = [simulate(positions, prices, policy=p, **kwargs) for p in policies]
    table = pl.concat([r.summary for r in results], how="vertical_relaxed")
    return (table, results) if return_results else table
