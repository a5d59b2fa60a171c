"""Many scenario × policy simulations (Monte Carlo fund sizing) on all local cores, or on a
Ray cluster with the ``ray`` extra, as one Polars frame."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Literal

import polars as pl

from adl._args import checked, integer, text
from adl.cascade import simulate
from adl.errors import InvalidInputError
from adl.scenario import crash_path, synthetic_book

BOOK_KEYS = ("positions", "seed", "symbols", "mark", "size_sigma", "median_notional", "leverage", "high_leverage_share",
             "entry_sigma", "hedged_share")
PATH_KEYS = ("start", "drop", "duration", "rebound", "steps", "dt", "noise")


# Scenario keys that hold the user's own data rather than a parameter.
DATA_KEYS = ("book", "prices")


def run_scenario(scenario: Mapping[str, Any], policy: str) -> dict[str, Any]:
    """One simulation. The book is the scenario's ``book`` (the user's own positions, any
    table) or a synthetic one from its ``positions``, ``seed``…; the path is its ``prices``
    (a price history) or a crash path from ``drop``, ``steps``…; any other key is passed to
    :func:`adl.simulate`. Returns the summary row with the scenario's keys (not its data) in
    front."""
    s = dict(scenario)
    book, prices = s.pop("book", None), s.pop("prices", None)
    s.pop("path", None)   # a label for the user's price history
    book_args = {k: s.pop(k) for k in BOOK_KEYS if k in s}
    path_args = {k: s.pop(k) for k in PATH_KEYS if k in s}
    seed = int(book_args.get("seed", 0))
    if book is None:
        book = synthetic_book(int(book_args.pop("positions", 10_000)), **book_args)
    if prices is None:
        path_args.setdefault("start", book_args.get("mark", 100.0))   # the path starts at the book's mark
        prices = crash_path(symbols=book_args.get("symbols", ("BTC-PERP",)), seed=seed, **path_args)
    s.setdefault("keep_fills", False)
    summary = simulate(book, prices, policy=policy, **s).summary.row(0, named=True)  # type: ignore[arg-type]
    labels = {k: v for k, v in scenario.items() if k not in DATA_KEYS}
    scalar = (int, float, str, bool, type(None))
    return {**{f"scenario_{k}": (v if isinstance(v, scalar) else str(v)) for k, v in labels.items()}, **summary}


def scenario_grid(*, book: Any = None, paths: Mapping[str, Any] | None = None, **axes: Sequence[Any]) -> list[dict[str, Any]]:
    """Scenarios for :func:`sweep` over the user's own data: every combination of the named
    price paths (``{label: prices}``, e.g. replayed histories) and the values of each axis
    (any :func:`adl.simulate` argument, e.g. ``insurance_fund=[0, 1e5]``), on ``book``.
    Labels and values become the ``scenario_*`` columns of the sweep.

    Examples
    --------
    >>> import adl
    >>> runs = adl.scenario_grid(book=adl.synthetic_book(100), paths={"crash": adl.crash_path(steps=10)},
    ...                          insurance_fund=[0.0, 1e3], horizon=[0])
    >>> [(r["path"], r["insurance_fund"]) for r in runs]
    [('crash', 0.0), ('crash', 1000.0)]
    """
    runs: list[dict[str, Any]] = [{}]
    if book is not None:
        runs = [{"book": book}]
    if paths is not None:
        runs = [{**r, "path": label, "prices": p} for r in runs for label, p in paths.items()]
    for key, values in axes.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise InvalidInputError(f"{key}: expected a list of values to sweep, got {values!r}", key, None)
        runs = [{**r, key: v} for r in runs for v in values]
    return runs


@dataclass(frozen=True)
class FundSizing:
    """The answer of :func:`size_fund`: ``fund``, the smallest insurance fund on the grid for
    which the share of scenarios reaching ADL or bad debt is below the target (``None`` when
    no fund on the grid gets there), and ``table``: per fund, ``runs``, ``adl_runs``,
    ``bad_debt_runs`` and ``probability`` (ADL or bad debt, over the scenarios)."""

    fund: float | None
    table: pl.DataFrame


def size_fund(
    positions: Any,
    paths: Mapping[str, Any] | Sequence[Any],
    *,
    funds: Sequence[float],
    max_probability: float = 0.05,
    policy: str = "bitmex",
    backend: Literal["local", "ray"] = "local",
    workers: int | None = None,
    **simulate_args: Any,
) -> FundSizing:
    """Sizes the insurance fund on the user's book: simulates every price path (scenario)
    with every fund of the grid and returns the smallest fund whose probability of ADL or bad
    debt over the scenarios is below ``max_probability`` (paths weigh equally). The grid is
    searched, not interpolated: the answer is one of ``funds``.

    Examples
    --------
    >>> import adl
    >>> book = adl.synthetic_book(500, seed=3)
    >>> paths = [adl.crash_path(steps=30, duration=20, drop=d, seed=3) for d in (0.1, 0.2)]
    >>> answer = adl.size_fund(book, paths, funds=[0.0, 1e9], max_probability=0.5)
    >>> answer.fund, answer.table["probability"].to_list()
    (1000000000.0, [1.0, 0.0])
    """
    if not 0.0 < max_probability <= 1.0:
        raise InvalidInputError(f"max_probability: {max_probability} is not in (0, 1]", "max_probability", None)
    if not funds:
        raise InvalidInputError("funds: give at least one fund amount to try", "funds", None)
    named = dict(paths) if isinstance(paths, Mapping) else {str(i): p for i, p in enumerate(paths)}
    runs = scenario_grid(book=positions, paths=named, insurance_fund=sorted(float(f) for f in funds), **{
        k: [v] for k, v in simulate_args.items()})
    table = sweep(runs, [policy], backend=backend, workers=workers)
    per_fund = table.group_by("scenario_insurance_fund").agg(
        runs=pl.len(),
        adl_runs=(pl.col("adl_notional") > 0).sum(),
        bad_debt_runs=(pl.col("bad_debt") > 0).sum(),
        probability=((pl.col("adl_notional") > 0) | (pl.col("bad_debt") > 0)).mean(),
    ).rename({"scenario_insurance_fund": "insurance_fund"}).sort("insurance_fund")
    ok = per_fund.filter(pl.col("probability") < max_probability)
    return FundSizing(fund=ok["insurance_fund"].min() if ok.height else None, table=per_fund)  # type: ignore[arg-type]


@checked(backend=text(choices=("local", "ray")), workers=integer(1, 4096, optional=True))
def sweep(
    scenarios: Sequence[Mapping[str, Any]],
    policies: Sequence[str] = ("bitmex", "size_pro_rata", "min_max_leverage"),
    *,
    backend: Literal["local", "ray"] = "local",
    workers: int | None = None,
    progress: bool | Callable[[int, int], None] = False,
) -> pl.DataFrame:
    """Runs every scenario under every policy and returns one row per run (the scenario's
    keys prefixed ``scenario_``, then :attr:`SimulationResult.summary`), in input order.
    Scenarios over the user's own book and price histories: :func:`scenario_grid`.

    A scenario is a dict: ``positions`` (book size), ``seed``, and any argument of
    :func:`adl.synthetic_book`, :func:`adl.crash_path` or :func:`adl.simulate` (for example
    ``drop``, ``steps``, ``insurance_fund``, ``horizon``). ``backend="local"`` uses a thread
    pool of ``workers`` (default: all cores; the simulation releases the GIL);
    ``backend="ray"`` sends each run to Ray (``pip install 'adl[ray]'``; it connects to a
    running cluster or starts a local one). ``progress=True`` shows a progress bar.

    Examples
    --------
    >>> import adl
    >>> runs = [{"positions": 500, "seed": s, "steps": 30, "duration": 20, "insurance_fund": f}
    ...         for s in (1, 2) for f in (0.0, 1e6)]
    >>> table = adl.sweep(runs, ["bitmex"])
    >>> table.select("scenario_seed", "scenario_insurance_fund", "policy").rows()[:2]
    [(1, 0.0, 'bitmex'), (1, 1000000.0, 'bitmex')]
    """
    if not (isinstance(progress, bool) or callable(progress)):
        raise InvalidInputError(f"progress: {progress!r} is not True, False or a callable", "progress", None)
    jobs = [(i, dict(s), p) for i, s in enumerate(scenarios) for p in policies]
    rows: list[tuple[int, int, dict[str, Any]]] = []
    report = _progress(progress, len(jobs))
    if backend == "local":
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            futures = {pool.submit(run_scenario, s, p): (i, k) for k, (i, s, p) in enumerate(jobs)}
            for f in as_completed(futures):
                i, k = futures[f]
                rows.append((i, k, f.result()))
                report(len(rows))
    else:
        rows = _ray(jobs, report)
    report(-1)
    rows.sort(key=lambda r: (r[0], r[1]))
    return pl.DataFrame([r[2] for r in rows])


def _ray(jobs: list[tuple[int, dict[str, Any], str]], report: Callable[[int], None]) -> list[tuple[int, int, dict[str, Any]]]:
    try:
        import ray
    except ImportError as e:
        raise ImportError("backend='ray' needs ray: pip install 'adl[ray]'") from e
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True, log_to_driver=False,
                 include_dashboard=False)
    task = ray.remote(run_scenario)
    pending = {task.remote(s, p): (i, k) for k, (i, s, p) in enumerate(jobs)}
    rows: list[tuple[int, int, dict[str, Any]]] = []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            i, k = pending.pop(ref)
            rows.append((i, k, ray.get(ref)))
            report(len(rows))
    return rows


def _progress(progress: bool | Callable[[int, int], None], total: int) -> Callable[[int], None]:
    """A callback taking runs done (-1 = finished)."""
    if callable(progress):
        user = progress
        return lambda done: user(done, total) if done >= 0 else None
    if not progress:
        return lambda done: None
    from rich.progress import Progress

    bar = Progress(transient=True)
    task = bar.add_task("sweeping", total=total)
    bar.start()

    def update(done: int) -> None:
        if done < 0:
            bar.stop()
        else:
            bar.update(task, completed=done)

    return update
