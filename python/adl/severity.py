"""Severity: how much to deleverage, round by round, scored as in docs/model.md §8.

A **round** t (one ADL wave) has a deficit D_t, a capacity U_t = Σ u_i (profits that can be
seized; per-account u_i where known) and an ex-post need B_t^needed. A policy picks a severity
θ_t in [0, 1], a budget B_t = θ_t·D_t, seizes H_t = min(B_t, U_t) and allocates it; its worst
burden is m_t = max_i x_i/u_i. With only aggregates the allocation is continuous pro-rata,
whose worst burden is H_t/U_t. The loss of a round (Chitra, Thogiti, Trujillo Ramirez, Xu,
arXiv:2602.15182) is

    tracking_t = |H_t - B_t^needed|,   fairness_t = λ·B_t^needed·|m_t - m_t^ILP|,

with m_t^ILP the worst burden of the min-max integer program at B_t^needed. Severity targets
θ*_t = min(1, B_t^needed/D_t), path length P = Σ_t |θ*_t - θ*_{t-1}|, envelope
B_inst = sqrt((1 + 2P)·Σ D_t²).

**The online rule.** A controller's :meth:`Controller.decide` receives a :class:`RoundStart`,
which has no need field: D_t, U_t, the round's book and markets (lots to deleverage, not their
execution gaps). Only after it returned θ_t does :func:`run` call :meth:`Controller.observe`
with the :class:`RoundOutcome` (need, m^ILP, gaps). Controllers that need the whole record
(η*, the best θ in hindsight, the oracle) are built from :class:`Rounds` by the ``ex_post``
constructors and say ``online = False``; every result row carries that flag.

>>> import adl
>>> lab = adl.severity.hl_oct10()
>>> s = adl.severity.summary(lab, lab.recorded, lam=1.0)
>>> s.filter(pl.col("policy") == "min_max_ilp")["total"].round(2).item()
106205.81
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import polars as pl

from adl._io import Frame, collect
from adl.errors import InvalidInputError, SchemaError

DATA = Path(__file__).resolve().parent / "data" / "hl_oct10"

# Columns of the per-wave table behind each recorded policy (Table 2 of arXiv:2602.15182).
RECORDED = {
    "production": "prod",
    "contract_pro_rata": "contract_pr",
    "vector_mirror_descent": "vector",
    "min_max_ilp": "fixed_point_ilp_integer",
    "pro_rata": "pr",
}


@dataclass(frozen=True)
class RoundStart:
    """What is known when round ``index`` starts, and all a controller sees before deciding.
    It has no need: B_t^needed is ex-post. ``markets`` (``market``, ``qty``: lots to deleverage
    per market) and ``book`` (per-account ``account``, ``capacity``) are None when not known.

    >>> RoundStart(0, "1", 10.0, 50.0).capacity
    50.0
    """

    index: int
    label: str
    deficit: float
    capacity: float
    markets: pl.DataFrame | None = None
    book: pl.DataFrame | None = None


@dataclass(frozen=True)
class RoundOutcome:
    """What a round revealed after the decision: the need, the ILP's worst burden, the
    per-market gaps (``market``, ``qty``, ``need``) and the policy's own result.

    >>> o = RoundOutcome(RoundStart(0, "1", 10.0, 50.0), need=4.0, ilp_burden=0.1, theta=0.5, seized=5.0, burden=0.1)
    >>> o.theta_star                      # min(1, 4 / 10)
    0.4
    """

    start: RoundStart
    need: float
    ilp_burden: float
    theta: float
    seized: float
    burden: float
    markets: pl.DataFrame | None = None

    @property
    def theta_star(self) -> float:
        """θ*_t = min(1, B_t^needed / D_t) (1 when D_t = 0)."""
        return min(1.0, self.need / self.start.deficit) if self.start.deficit > 0 else 1.0


class Controller(Protocol):
    """A severity controller: ``decide`` a θ in [0, 1] from the round's start, then
    ``observe`` the outcome. ``online`` is False for ex-post references."""

    name: str
    online: bool

    def decide(self, start: RoundStart) -> float: ...

    def observe(self, outcome: RoundOutcome) -> None: ...


@dataclass(frozen=True)
class Rounds:
    """The rounds of an episode. ``table``: ``round`` (0, 1, ...), ``label``, ``deficit`` D,
    ``capacity`` U, ``need`` B^needed, ``ilp_burden`` m^ILP. ``markets`` (optional): ``round``,
    ``market``, ``qty``, ``need`` (Σ over a round = the round's need). ``books`` (optional):
    ``round``, ``account``, ``capacity``. ``recorded`` (optional): decisions read from a record,
    ``policy``, ``online``, ``round``, ``theta``, ``budget``, ``seized``, ``burden``.

    >>> r = Rounds.from_frame(pl.DataFrame({"deficit": [10.0], "capacity": [50.0], "need": [4.0], "ilp_burden": [0.1]}))
    >>> r.table["label"].to_list(), r.envelope()     # sqrt((1 + 0)·100)
    (['0'], 10.0)
    """

    table: pl.DataFrame
    markets: pl.DataFrame | None = None
    books: pl.DataFrame | None = None
    recorded: pl.DataFrame = field(default_factory=lambda: _decisions([]))

    @staticmethod
    def from_frame(rounds: Frame, markets: Frame | None = None, books: Frame | None = None) -> Rounds:
        """Validates ``rounds`` (``deficit``, ``capacity``, ``need``, ``ilp_burden``; optional
        ``label``), numbering them in the given order."""
        df = collect(rounds, "rounds")
        for name in ("deficit", "capacity", "need", "ilp_burden"):
            if name not in df.columns:
                raise SchemaError(f"rounds: missing column {name!r}", name, None)
            s = df[name].cast(pl.Float64, strict=False)
            bad = s.is_null() | s.is_nan() | s.is_infinite() | (s < 0)
            if bad.any():
                row = int(bad.arg_max() or 0)
                raise InvalidInputError(f"rounds: {name}[row {row}] = {df[name][row]!r} must be a finite number >= 0", name, row)
        label = df["label"].cast(pl.String) if "label" in df.columns else pl.Series([str(i) for i in range(df.height)])
        table = pl.DataFrame(
            {
                "round": pl.Series(range(df.height), dtype=pl.Int64),
                "label": label,
                **{c: df[c].cast(pl.Float64) for c in ("deficit", "capacity", "need", "ilp_burden")},
            }
        )
        m = collect(markets, "markets") if markets is not None else None
        b = collect(books, "books") if books is not None else None
        for frame, what, cols in ((m, "markets", ("round", "market", "qty", "need")), (b, "books", ("round", "account", "capacity"))):
            if frame is not None:
                for c in cols:
                    if c not in frame.columns:
                        raise SchemaError(f"{what}: missing column {c!r}", c, None)
        return Rounds(table, m, b)

    def __len__(self) -> int:
        return self.table.height

    def starts(self) -> Iterator[tuple[RoundStart, pl.DataFrame | None]]:
        """Each round's start and its per-market gaps (the latter for the outcome only)."""
        for row in self.table.iter_rows(named=True):
            t = row["round"]
            mk = self.markets.filter(pl.col("round") == t) if self.markets is not None else None
            bk = self.books.filter(pl.col("round") == t).drop("round") if self.books is not None else None
            yield RoundStart(t, row["label"], row["deficit"], row["capacity"],
                             mk.select("market", "qty") if mk is not None else None, bk), mk

    def theta_star(self) -> pl.Series:
        """θ*_t = min(1, B_t^needed/D_t) (1 when D_t = 0)."""
        d, n = pl.col("deficit"), pl.col("need")
        return self.table.select(pl.when(d > 0).then(pl.min_horizontal(n / d, 1.0)).otherwise(1.0).alias("theta_star")).to_series()

    def path_length(self) -> float:
        """P = Σ_{t>=1} |θ*_t - θ*_{t-1}|."""
        return float(self.theta_star().diff().abs().sum())

    def envelope(self) -> float:
        """B_inst = sqrt((1 + 2P)·Σ D_t²), the dynamic-regret bound of OGD at η* (Prop. 1)."""
        return math.sqrt((1 + 2 * self.path_length()) * float((self.table["deficit"] ** 2).sum()))


def _decisions(rows: Iterable[dict[str, object]]) -> pl.DataFrame:
    schema = {"policy": pl.String, "online": pl.Boolean, "round": pl.Int64, "theta": pl.Float64,
              "budget": pl.Float64, "seized": pl.Float64, "burden": pl.Float64}
    return pl.DataFrame(list(rows), schema=schema)


def hl_oct10() -> Rounds:
    """The 16 waves of Hyperliquid's 10 Oct 2025 ADL (python/adl/data/hl_oct10, MIT, from
    the paper's reproduction package): D = ``deficit_usd``, U = ``total_cap``, need =
    ``budget_needed``, m^ILP = ``max_pct_fixed_point_ilp_integer``; markets from
    ``two_pass_wave_coin_gap_per_contract.csv`` (``qty_contracts``, ``gap_usd_x_qty``).
    ``recorded`` holds the five policies of the paper's Table 2 as the table records them
    (budget ``budget_*``, worst burden ``max_pct_*``); the allocations behind them need
    per-account data that is not public, so they can only be read, not recomputed.

    >>> lab = hl_oct10()
    >>> len(lab), round(lab.path_length(), 4), round(lab.envelope() / 1e6, 2)
    (16, 7.0595, 129.7)
    """
    w = pl.read_csv(DATA / "policy_per_wave_metrics.csv")
    rounds = Rounds.from_frame(
        w.select(label=pl.col("wave").cast(pl.String), deficit="deficit_usd", capacity="total_cap",
                 need="budget_needed", ilp_burden="max_pct_fixed_point_ilp_integer")
    )
    index = rounds.table.select("round", wave="label")
    coins = pl.read_csv(DATA / "two_pass_wave_coin_gap_per_contract.csv", schema_overrides={"wave": pl.String})
    markets = coins.join(index, on="wave").select("round", market="coin", qty="qty_contracts", need="gap_usd_x_qty")
    t = rounds.table
    recorded = []
    for policy, col in RECORDED.items():
        budget = w[f"budget_{col}"]
        recorded.append(pl.DataFrame({
            "policy": policy, "online": policy == "production", "round": t["round"],
            "theta": budget / t["deficit"], "budget": budget, "seized": budget, "burden": w[f"max_pct_{col}"],
        }).cast({"online": pl.Boolean}))
    return Rounds(rounds.table, markets, None, pl.concat(recorded).select(_decisions([]).columns))


def _check_theta(theta: float, name: str, index: int) -> float:
    if not isinstance(theta, (int, float)) or not 0.0 <= theta <= 1.0:
        raise InvalidInputError(f"theta: controller {name!r} returned {theta!r} in round {index}, not in [0, 1]", "theta", index)
    return float(theta)


def run(rounds: Rounds, controller: Controller,
        allocate: Callable[[pl.DataFrame, float], pl.DataFrame] | None = None) -> pl.DataFrame:
    """Plays ``controller`` over ``rounds``: per round it decides θ_t from the start alone,
    then observes the outcome. H_t = min(θ_t·D_t, U_t). The worst burden is H_t/U_t
    (continuous pro-rata on the aggregates) unless the rounds have per-account books and an
    ``allocate(book, budget)`` (e.g. :func:`adl.lots.pro_rata`) is given: then it is the max
    of its ``burden`` column. Returns the decisions (``policy``, ``online``, ``round``,
    ``theta``, ``budget``, ``seized``, ``burden``) for :func:`losses`.

    >>> r = Rounds.from_frame(pl.DataFrame({"deficit": [10.0, 10.0], "capacity": [50.0, 50.0],
    ...                                     "need": [4.0, 2.0], "ilp_burden": [0.1, 0.05]}))
    >>> run(r, LastTheta(theta0=0.5))["seized"].to_list()   # 0.5·10, then θ*_0 = 0.4
    [5.0, 4.0]
    """
    rows = []
    for start, gaps in rounds.starts():
        theta = _check_theta(controller.decide(start), controller.name, start.index)
        budget = theta * start.deficit
        seized = min(budget, start.capacity)
        if allocate is not None and start.book is not None:
            burden = float(allocate(start.book, seized)["burden"].max() or 0.0)  # type: ignore[arg-type]
        else:
            burden = min(1.0, seized / start.capacity) if start.capacity > 0 else 0.0
        row = rounds.table.row(start.index, named=True)
        controller.observe(RoundOutcome(start, row["need"], row["ilp_burden"], theta, seized, burden, gaps))
        rows.append({"policy": controller.name, "online": controller.online, "round": start.index,
                     "theta": theta, "budget": budget, "seized": seized, "burden": burden})
    return _decisions(rows)


def losses(rounds: Rounds, decisions: pl.DataFrame, *, lam: float = 1.0) -> pl.DataFrame:
    """Per round and policy: ``tracking`` = |H - B^needed|, ``fairness`` =
    λ·B^needed·|m - m^ILP|, ``total`` (docs/model.md §8).

    >>> r = Rounds.from_frame(pl.DataFrame({"deficit": [10.0], "capacity": [50.0], "need": [4.0], "ilp_burden": [0.2]}))
    >>> losses(r, run(r, FixedTheta(0.5)), lam=2.0).select("tracking", "fairness", "total").row(0)
    (1.0, 0.8, 1.8)
    """
    if not (lam >= 0 and math.isfinite(lam)):
        raise InvalidInputError(f"lam: {lam} must be a finite number >= 0", "lam", None)
    need, ilp = pl.col("need"), pl.col("ilp_burden")
    return (
        decisions.with_row_index("_order")
        .join(rounds.table, on="round", how="inner")
        .sort("_order")
        .drop("_order")
        .with_columns(tracking=(pl.col("seized") - need).abs(), fairness=lam * need * (pl.col("burden") - ilp).abs())
        .with_columns(total=pl.col("tracking") + pl.col("fairness"))
    )


def summary(rounds: Rounds, decisions: pl.DataFrame, *, lam: float = 1.0) -> pl.DataFrame:
    """Per policy: ``tracking``, ``fairness``, ``total`` over the rounds and ``pct_envelope``
    = 100·total/B_inst, in the order the policies first appear.

    >>> r = Rounds.from_frame(pl.DataFrame({"deficit": [10.0], "capacity": [50.0], "need": [4.0], "ilp_burden": [0.2]}))
    >>> summary(r, run(r, FixedTheta(0.5)), lam=2.0)["pct_envelope"].item()   # 1.8 / 10
    18.0
    """
    env = rounds.envelope()
    per = losses(rounds, decisions, lam=lam)
    return (
        per.group_by("policy", maintain_order=True)
        .agg(pl.col("online").first(), pl.col("tracking").sum(), pl.col("fairness").sum(), pl.col("total").sum())
        .with_columns(pct_envelope=100 * pl.col("total") / env if env > 0 else pl.lit(None, pl.Float64))
    )


# --- controllers -------------------------------------------------------------------------


@dataclass
class FixedTheta:
    """θ_t = ``theta`` every round.

    >>> FixedTheta(0.25).decide(RoundStart(0, "1", 10.0, 50.0))
    0.25
    """

    theta: float
    name: str = "fixed_theta"
    online: bool = True

    def decide(self, start: RoundStart) -> float:
        return self.theta

    def observe(self, outcome: RoundOutcome) -> None:
        pass

    @staticmethod
    def ex_post(rounds: Rounds, *, lam: float = 1.0) -> FixedTheta:
        """The best fixed θ in hindsight (ex-post). The loss is piecewise linear in θ, so the
        minimum is at a kink: θ = B^needed/D, U/D or m^ILP·U/D of some round, or 0 or 1."""
        t = rounds.table.filter(pl.col("deficit") > 0)
        kinks = {0.0, 1.0}
        for d, u, n, m in t.select("deficit", "capacity", "need", "ilp_burden").iter_rows():
            kinks |= {min(1.0, x) for x in (n / d, u / d, m * u / d)}

        def total(theta: float) -> float:
            return float(losses(rounds, run(rounds, FixedTheta(theta)), lam=lam)["total"].sum())

        best = min(sorted(kinks), key=total)
        return FixedTheta(best, name="best_fixed_theta", online=False)


@dataclass
class LastTheta:
    """θ_t = θ*_{t-1}, the last round's target (``theta0`` in the first round).

    >>> c = LastTheta(theta0=0.5); c.decide(RoundStart(0, "1", 10.0, 50.0))
    0.5
    """

    theta0: float = 0.5
    name: str = "last_theta"
    online: bool = True
    _last: float | None = None

    def decide(self, start: RoundStart) -> float:
        return self.theta0 if self._last is None else self._last

    def observe(self, outcome: RoundOutcome) -> None:
        self._last = outcome.theta_star


@dataclass
class MeanTheta:
    """θ_t = the mean of θ*_s over the rounds s < t (``theta0`` in the first round).

    >>> c = MeanTheta()
    >>> c.observe(RoundOutcome(RoundStart(0, "1", 10.0, 50.0), 2.0, 0.0, 0.5, 5.0, 0.1))
    >>> c.observe(RoundOutcome(RoundStart(1, "2", 10.0, 50.0), 4.0, 0.0, 0.5, 5.0, 0.1))
    >>> round(c.decide(RoundStart(2, "3", 10.0, 50.0)), 12)    # (0.2 + 0.4) / 2
    0.3
    """

    theta0: float = 0.5
    name: str = "mean_theta"
    online: bool = True
    _sum: float = 0.0
    _n: int = 0

    def decide(self, start: RoundStart) -> float:
        return self.theta0 if self._n == 0 else self._sum / self._n

    def observe(self, outcome: RoundOutcome) -> None:
        self._sum += outcome.theta_star
        self._n += 1


def _gradient(o: RoundOutcome, lam: float) -> float:
    """A subgradient in θ of the round's loss |min(θD, U) - n| + λ·n·|min(1, θD/U) - m^ILP|
    (pro-rata burden), at the θ that was played."""
    d, u = o.start.deficit, o.start.capacity
    g = 0.0
    if o.theta * d < u:  # H = θD still grows with θ
        g += d * (1 if o.seized > o.need else -1 if o.seized < o.need else 0)
        if u > 0:
            g += lam * o.need * d / u * (1 if o.burden > o.ilp_burden else -1 if o.burden < o.ilp_burden else 0)
    return g


@dataclass
class OGD:
    """Projected online (sub)gradient descent on θ with a fixed ``step`` η:
    θ_{t+1} = clip(θ_t - η·g_t, 0, 1), g_t a subgradient of round t's loss at θ_t.

    >>> c = OGD(step=0.01, theta0=0.5)
    >>> c.observe(RoundOutcome(RoundStart(0, "1", 10.0, 50.0), 4.0, 0.1, 0.5, 5.0, 0.1))
    >>> round(c.decide(RoundStart(1, "2", 10.0, 50.0)), 12)    # g = 10 (overshoot): 0.5 - 0.1
    0.4
    """

    step: float
    theta0: float = 0.5
    lam: float = 1.0
    name: str = "ogd"
    online: bool = True
    _theta: float | None = None

    def decide(self, start: RoundStart) -> float:
        return self.theta0 if self._theta is None else self._theta

    def observe(self, outcome: RoundOutcome) -> None:
        self._theta = min(1.0, max(0.0, outcome.theta - self.step * _gradient(outcome, self.lam)))

    @staticmethod
    def ex_post(rounds: Rounds, *, theta0: float = 0.5, lam: float = 1.0) -> OGD:
        """OGD with η* = sqrt((1 + 2P)/Σ D_t²), which needs P and Σ D² of every round."""
        s = float((rounds.table["deficit"] ** 2).sum())
        eta = math.sqrt((1 + 2 * rounds.path_length()) / s) if s > 0 else 0.0
        return OGD(eta, theta0, lam, name="ogd_eta_star", online=False)


@dataclass
class DoublingOGD:
    """OGD whose step uses past rounds only (the doubling trick): η = sqrt((1 + 2P̂)/Ŝ) with
    P̂ the path length of θ* and Ŝ = Σ D² over the rounds seen when the current epoch began; a
    new epoch begins when (1 + 2P̂)·Ŝ has more than doubled. No step before the first round.

    >>> c = DoublingOGD()
    >>> c.observe(RoundOutcome(RoundStart(0, "1", 10.0, 50.0), 4.0, 0.1, 0.5, 5.0, 0.1))
    >>> round(c.decide(RoundStart(1, "2", 10.0, 50.0)), 12)    # η = sqrt(1/100) = 0.1, g = 10
    0.0
    """

    theta0: float = 0.5
    lam: float = 1.0
    name: str = "ogd_doubling"
    online: bool = True
    _theta: float | None = None
    _sq: float = 0.0
    _path: float = 0.0
    _last_star: float | None = None
    _epoch: float = 0.0
    _step: float = 0.0

    def decide(self, start: RoundStart) -> float:
        return self.theta0 if self._theta is None else self._theta

    def observe(self, outcome: RoundOutcome) -> None:
        self._sq += outcome.start.deficit ** 2
        if self._last_star is not None:
            self._path += abs(outcome.theta_star - self._last_star)
        self._last_star = outcome.theta_star
        scale = (1 + 2 * self._path) * self._sq
        if scale > 2 * self._epoch:  # a new epoch: refresh the step from what is known now
            self._epoch = scale
            self._step = math.sqrt((1 + 2 * self._path) / self._sq) if self._sq > 0 else 0.0
        self._theta = min(1.0, max(0.0, outcome.theta - self._step * _gradient(outcome, self.lam)))


def _weighted_median(values: list[float], weights: list[float]) -> float:
    """The least v with Σ weight(values <= v) >= half the weight: it minimises Σ w·|v_s - v|."""
    pairs = sorted(zip(values, weights))
    half, acc = sum(weights) / 2, 0.0
    for v, w in pairs:
        acc += w
        if acc >= half:
            return v
    return pairs[-1][0]


@dataclass
class NeedRatio:
    """Ours, from aggregates only: predict B_t^needed = r·U_t with r the capacity-weighted
    median of past B^needed/U (it minimises the past tracking loss Σ_s |r·U_s - B_s^needed|:
    follow the leader), θ_t = min(1, r·U_t/D_t); ``theta0`` in the first round.

    >>> c = NeedRatio()
    >>> c.observe(RoundOutcome(RoundStart(0, "1", 10.0, 100.0), 2.0, 0.0, 0.5, 5.0, 0.1))
    >>> c.decide(RoundStart(1, "2", 10.0, 200.0))    # r = 2/100, B = 4
    0.4
    """

    theta0: float = 0.5
    name: str = "ours_need_ratio"
    online: bool = True
    _ratios: list[float] = field(default_factory=list)
    _weights: list[float] = field(default_factory=list)

    def decide(self, start: RoundStart) -> float:
        if not self._ratios or start.deficit <= 0:
            return self.theta0
        return min(1.0, _weighted_median(self._ratios, self._weights) * start.capacity / start.deficit)

    def observe(self, outcome: RoundOutcome) -> None:
        if outcome.start.capacity > 0:
            self._ratios.append(outcome.need / outcome.start.capacity)
            self._weights.append(outcome.start.capacity)


@dataclass
class ImpactSlope:
    """Ours: predict the need from the lots the round must deleverage and an execution-impact
    slope fitted on past rounds. The need is Σ_k |p_exec - p_bk|·|q_k| (model §8), so per
    market c the slope is ĝ_c = Σ_{s<t} need_{s,c} / Σ_{s<t} qty_{s,c} (cash per lot) and
    B̂_t = Σ_c ĝ_c·qty_{t,c}; markets never seen before add nothing. θ_t = min(1, B̂_t/D_t);
    ``theta0`` while no market has a slope (or without market data).

    >>> c = ImpactSlope()
    >>> m0 = pl.DataFrame({"market": ["BTC"], "qty": [2.0], "need": [6.0]})
    >>> c.observe(RoundOutcome(RoundStart(0, "1", 10.0, 100.0, m0.drop("need")), 6.0, 0.0, 0.5, 5.0, 0.1, m0))
    >>> c.decide(RoundStart(1, "2", 20.0, 100.0, pl.DataFrame({"market": ["BTC", "ETH"], "qty": [4.0, 9.0]})))
    0.6
    """

    theta0: float = 0.5
    name: str = "ours_impact_slope"
    online: bool = True
    _need: dict[str, float] = field(default_factory=dict)
    _qty: dict[str, float] = field(default_factory=dict)

    def decide(self, start: RoundStart) -> float:
        if start.markets is None or start.deficit <= 0:
            return self.theta0
        seen = [(m, q) for m, q in start.markets.select("market", "qty").iter_rows() if self._qty.get(m, 0.0) > 0]
        if not seen:
            return self.theta0
        estimate = sum(self._need[m] / self._qty[m] * abs(float(q)) for m, q in seen)
        return min(1.0, float(estimate) / start.deficit)

    def observe(self, outcome: RoundOutcome) -> None:
        if outcome.markets is None:
            return
        for m, q, n in outcome.markets.select("market", "qty", "need").iter_rows():
            self._qty[m] = self._qty.get(m, 0.0) + abs(q)
            self._need[m] = self._need.get(m, 0.0) + n


@dataclass
class Oracle:
    """Ex-post: θ_t = θ*_t, read from the record (tracking-perfect whenever θ*·D <= U)."""

    thetas: list[float]
    name: str = "oracle_theta_star"
    online: bool = False

    def decide(self, start: RoundStart) -> float:
        return self.thetas[start.index]

    def observe(self, outcome: RoundOutcome) -> None:
        pass

    @staticmethod
    def ex_post(rounds: Rounds) -> Oracle:
        return Oracle(rounds.theta_star().to_list())


def online_baselines(theta0: float = 0.5, lam: float = 1.0) -> list[Controller]:
    """The online baselines of issue 16 plus our two controllers, fresh (they keep state)."""
    return [LastTheta(theta0), MeanTheta(theta0), DoublingOGD(theta0, lam), NeedRatio(theta0), ImpactSlope(theta0)]


def ex_post_references(rounds: Rounds, theta0: float = 0.5, lam: float = 1.0) -> list[Controller]:
    """Controllers that read the whole record: OGD at η*, the best fixed θ, the oracle θ*."""
    return [OGD.ex_post(rounds, theta0=theta0, lam=lam), FixedTheta.ex_post(rounds, lam=lam), Oracle.ex_post(rounds)]


def lab(rounds: Rounds, *, lam: float = 1.0, theta0: float = 0.5) -> pl.DataFrame:
    """Every policy on ``rounds`` in one table: the recorded ones (production and the paper's
    ex-post allocators), the online controllers and the ex-post controllers; with ``gap`` =
    total minus the best ex-post total, and ``gap_oracle`` = total minus the oracle θ* with the
    same (pro-rata) allocation: the cost of not knowing the need.

    >>> t = lab(hl_oct10())
    >>> t.filter(pl.col("policy") == "production")["pct_envelope"].round(1).item()
    50.0
    """
    controllers = online_baselines(theta0, lam) + ex_post_references(rounds, theta0, lam)
    decisions = pl.concat([rounds.recorded] + [run(rounds, c) for c in controllers])
    s = summary(rounds, decisions, lam=lam)
    best = s.filter(~pl.col("online"))["total"].min()
    oracle = s.filter(pl.col("policy") == "oracle_theta_star")["total"].item()
    return s.with_columns(gap=pl.col("total") - (best if best is not None else 0.0), gap_oracle=pl.col("total") - oracle)


def chart(rounds: Rounds, decisions: pl.DataFrame, path: str | Path) -> Path:
    """Writes an interactive, self-contained HTML chart (needs the ``report`` extra: plotly,
    its JS inlined): per round, the need and what each policy in ``decisions`` seized, on a
    log scale. Returns the path."""
    from adl.reporting import _plotly

    go, _, _ = _plotly()
    x = rounds.table["label"].to_list()
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=rounds.table["need"].to_list(), name="need (ex-post)",
                             line={"color": "black", "width": 3}))
    for (policy,), d in decisions.group_by("policy", maintain_order=True):
        d = d.sort("round")
        fig.add_trace(go.Scatter(x=[x[i] for i in d["round"].to_list()], y=[max(v, 1.0) for v in d["seized"].to_list()],
                                 name=str(policy), mode="lines+markers", marker={"size": 4}))
    fig.update_layout(title="Need and budget seized per round", xaxis_title="round (wave)", yaxis_title="USD (log)",
                      yaxis_type="log", template="plotly_white")
    out = Path(path)
    fig.write_html(out, include_plotlyjs=True, full_html=True)
    return out


# --- instability diagnostics (per-account books) -------------------------------------------


def order_inversions(before: Frame) -> float:
    """Share of adjacent pairs whose order an ADL round inverts: sort the accounts by
    ``before`` (descending; ties by ``account``), then count adjacent pairs with
    after_i < after_{i+1} (strictly). Columns ``account``, ``before``, ``after`` (e.g. equity
    or profit before and after the round). A pro-rata haircut keeps the order (0); a queue that
    wipes the top account inverts it. NaN with fewer than two accounts.

    >>> f = pl.DataFrame({"account": [1, 2, 3], "before": [40.0, 20.0, 10.0], "after": [0.0, 20.0, 10.0]})
    >>> order_inversions(f)    # (1, 2) inverted, (2, 3) kept
    0.5
    """
    df = collect(before, "before")
    for c in ("account", "before", "after"):
        if c not in df.columns:
            raise SchemaError(f"before: missing column {c!r}", c, None)
    if df.height < 2:
        return math.nan
    after = df.sort(["before", "account"], descending=[True, False])["after"]
    return float((after.diff() > 0).sum()) / (df.height - 1)


def burden_rank_correlation(burdens: Frame) -> pl.DataFrame:
    """Spearman rank correlation of the normalised burdens x_i/u_i between adjacent rounds, over
    the accounts present in both (average ranks for ties; the Pearson correlation of the
    ranks). Columns ``round``, ``account``, ``burden``; returns ``round`` (the later one),
    ``accounts``, ``spearman`` (null when fewer than two accounts or a constant side).

    >>> b = pl.DataFrame({"round": [0, 0, 0, 1, 1, 1], "account": [1, 2, 3, 1, 2, 3],
    ...                   "burden": [0.1, 0.2, 0.3, 0.9, 0.5, 0.1]})
    >>> burden_rank_correlation(b)["spearman"].to_list()    # order reversed
    [-1.0]
    """
    df = collect(burdens, "burdens")
    for c in ("round", "account", "burden"):
        if c not in df.columns:
            raise SchemaError(f"burdens: missing column {c!r}", c, None)
    rounds = sorted(df["round"].unique().to_list())
    rows = []
    for a, b in zip(rounds, rounds[1:]):
        pair = (df.filter(pl.col("round") == a).select("account", x="burden")
                .join(df.filter(pl.col("round") == b).select("account", y="burden"), on="account"))
        rho = None
        if pair.height >= 2:
            r = pair.select(pl.corr(pl.col("x").rank("average"), pl.col("y").rank("average"))).item()
            rho = None if r is None or math.isnan(r) else float(r)
        rows.append({"round": b, "accounts": pair.height, "spearman": rho})
    return pl.DataFrame(rows, schema={"round": df["round"].dtype, "accounts": pl.Int64, "spearman": pl.Float64})


def cascade_burdens(fills: Frame, positions: Frame) -> pl.DataFrame:
    """Per-account burdens of a simulated cascade, one round per time step with ADL fills:
    burden = the contracts ADL closed on the account in that step / the contracts it held at
    the start (all its positions), 0 for accounts not hit. ``fills`` is
    :attr:`adl.SimulationResult.fills` (``ts``, ``account``, ``qty``, ``kind``); ``positions``
    the starting book (``account``, ``qty``). Feed it to :func:`burden_rank_correlation`.

    >>> fills = pl.DataFrame({"ts": [5, 5, 9], "account": [2, 3, 2], "qty": [1.0, 2.0, 3.0], "kind": ["adl"] * 3})
    >>> book = pl.DataFrame({"account": [1, 2, 3], "qty": [4.0, 4.0, 8.0]})
    >>> cascade_burdens(fills, book).sort("round", "account")["burden"].to_list()
    [0.0, 0.25, 0.25, 0.0, 0.75, 0.0]
    """
    f, p = collect(fills, "fills"), collect(positions, "positions")
    for frame, what, cols in ((f, "fills", ("ts", "account", "qty", "kind")), (p, "positions", ("account", "qty"))):
        for c in cols:
            if c not in frame.columns:
                raise SchemaError(f"{what}: missing column {c!r}", c, None)
    held = p.group_by("account").agg(held=pl.col("qty").cast(pl.Float64).sum()).with_columns(pl.col("account").cast(pl.UInt64))
    adl = (f.filter(pl.col("kind").cast(pl.String) == "adl")
           .group_by(pl.col("ts").alias("round"), pl.col("account").cast(pl.UInt64))
           .agg(closed=pl.col("qty").cast(pl.Float64).sum()))
    grid = adl.select("round").unique().join(held, how="cross")
    return (grid.join(adl, on=["round", "account"], how="left")
            .select("round", "account", burden=pl.when(pl.col("held") > 0)
                    .then(pl.col("closed").fill_null(0.0) / pl.col("held")).otherwise(0.0))
            .sort("round", "account"))


__all__ = [
    "Controller", "cascade_burdens", "chart", "DoublingOGD", "FixedTheta", "ImpactSlope", "LastTheta", "MeanTheta", "NeedRatio", "OGD", "Oracle",
    "RoundOutcome", "RoundStart", "Rounds", "burden_rank_correlation", "ex_post_references", "hl_oct10", "lab",
    "losses", "online_baselines", "order_inversions", "run", "summary",
]
